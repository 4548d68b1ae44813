/* mbos's devices, after xv6's mp.c, lapic.c, ioapic.c, picirq.c, ide.c
 * and uart.c: the MP table search (MP spec 1.4 §4), the local APIC and its
 * timer, the IOAPIC's redirection table, the masked 8259s, the primary IDE
 * disk by PIO with IRQ 14 and COM1's receive interrupt into a ring. */
#include "mbos.h"

#define MP_FP_SIZE 16
#define MP_HDR_SIZE 44
#define MP_PROC 0
#define MP_BUS 1
#define MP_IOAPIC 2
#define MP_IOINTR 3
#define MP_LINTR 4
#define MP_PROC_BP 0x02
#define MP_IMCRP 0x80
#define BDA_EBDA_SEG 0x40e
#define BDA_BASE_KIB 0x413

/* local APIC registers, byte offsets (SDM 3A table 11-1) */
#define LAPIC_ID 0x020
#define LAPIC_VER 0x030
#define LAPIC_TPR 0x080
#define LAPIC_EOI 0x0b0
#define LAPIC_SVR 0x0f0
#define LAPIC_SVR_ENABLE 0x100
#define LAPIC_ESR 0x280
#define LAPIC_ICRLO 0x300
#define LAPIC_ICRHI 0x310
#define LAPIC_ICR_INIT 0x500
#define LAPIC_ICR_DELIVS 0x1000
#define LAPIC_ICR_LEVEL 0x8000
#define LAPIC_ICR_BCAST 0x80000
#define LAPIC_TIMER 0x320
#define LAPIC_PCINT 0x340
#define LAPIC_LINT0 0x350
#define LAPIC_LINT1 0x360
#define LAPIC_ERROR 0x370
#define LAPIC_LVT_MASKED 0x10000
#define LAPIC_LVT_PERIODIC 0x20000
#define LAPIC_TICR 0x380
#define LAPIC_TDCR 0x3e0
#define LAPIC_TDCR_16 0x3
/* 100 ms at the 1 GHz APIC bus of QEMU and KVM, ten times xv6's period: the
 * timer runs on host time, and on the slowest host the tests use (KVM's
 * shadow MMU under TCG, --shadow-opts=none, where every hidden fault is an
 * exit of ~1 ms) one tick's traps take ~20 ms, so a 10 ms tick would leave
 * the interrupted program no time at all.  Its length is never printed. */
#define LAPIC_TIMER_COUNT 6250000
#define LAPIC_ICR_POLLS 100000

#define IOAPIC_REG_ID 0x00
#define IOAPIC_REG_VER 0x01
#define IOAPIC_REG_TABLE 0x10
#define IOAPIC_MASKED 0x10000

#define IDE_DATA 0x1f0
#define IDE_COUNT 0x1f2
#define IDE_DEVICE 0x1f6
#define IDE_STATUS 0x1f7 /* read; command on write */
#define IDE_CTL 0x3f6    /* device control: nIEN (bit 1) clear = interrupts */
#define IDE_BSY 0x80
#define IDE_DRDY 0x40
#define IDE_DF 0x20
#define IDE_DRQ 0x08
#define IDE_ERR 0x01
#define IDE_CMD_READ 0x20
#define IDE_CMD_WRITE 0x30
#define IDE_CMD_IDENTIFY 0xec
#define IDE_POLLS 100000 /* status reads: each one a VM exit under a VMM */
#define IDE_IRQ_TICKS 20 /* two seconds of timer ticks for one interrupt */

#define COM1 0x3f8
#define UART_LSR_DR 0x01
#define UART_RING 256

static volatile uint32_t *lapic;
static volatile uint32_t *ioapic;
static volatile uint32_t ide_irqs;
static volatile uint8_t ring[UART_RING];
static volatile uint32_t ring_head, ring_tail;
static volatile int uart_throttled;

static uint8_t sum8(const uint8_t *p, uint32_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

static const uint8_t *mp_search(uint32_t base, uint32_t len)
{
	for (uint32_t a = base; a + MP_FP_SIZE <= base + len; a += 16) {
		const uint8_t *p = (const uint8_t *)a;

		if (p[0] == '_' && p[1] == 'M' && p[2] == 'P' && p[3] == '_' &&
		    sum8(p, MP_FP_SIZE) == 0)
			return p;
	}
	return 0;
}

/* A BDA word; the pointer goes through asm, or GCC takes a constant
 * address this low for a null-pointer offset (-Warray-bounds). */
static uint16_t bda16(uint32_t a)
{
	const volatile uint16_t *p;

	__asm__("" : "=r"(p) : "0"(a));
	return *p;
}

/* xv6's mpsearch: the EBDA's first KiB, else base memory's last KiB, then
 * the BIOS ROM. */
static const uint8_t *mp_floating(void)
{
	uint32_t ebda = (uint32_t)bda16(BDA_EBDA_SEG) << 4;
	uint32_t kib = bda16(BDA_BASE_KIB);
	const uint8_t *p = 0;

	if (ebda)
		p = mp_search(ebda, 1024);
	else if (kib)
		p = mp_search(kib * 1024 - 1024, 1024);
	return p ? p : mp_search(0xf0000, 0x10000);
}

static const uint8_t *mp_config(const uint8_t *fp, uint32_t ram_end)
{
	uint32_t a = *(const uint32_t *)(fp + 4);
	const uint8_t *c = (const uint8_t *)a;
	uint16_t len;

	if (a == 0 || a >= ram_end || ram_end - a < MP_HDR_SIZE) {
		mb_printf("mp: no configuration table\n");
		return 0;
	}
	len = *(const uint16_t *)(c + 4);
	if (c[0] != 'P' || c[1] != 'C' || c[2] != 'M' || c[3] != 'P' || len < MP_HDR_SIZE ||
	    ram_end - a < len || (c[6] != 1 && c[6] != 4) || sum8(c, len) != 0) {
		mb_printf("mp: bad configuration table\n");
		return 0;
	}
	return c;
}

static void mp_entries(struct mbos_mp *mp, const uint8_t *c)
{
	const uint8_t *p = c + MP_HDR_SIZE, *e = c + *(const uint16_t *)(c + 4);

	while (p < e) {
		switch (*p) {
		case MP_PROC:
			if (p[3] & MP_PROC_BP)
				mp->bsp_apicid = p[1];
			mp->ncpu++;
			p += 20;
			break;
		case MP_IOAPIC:
			if (mp->nioapic++ == 0) {
				mp->ioapic_id = p[1];
				mp->ioapic_addr = *(const uint32_t *)(p + 4);
			}
			p += 8;
			break;
		case MP_BUS:
		case MP_IOINTR:
		case MP_LINTR: p += 8; break;
		default: mb_printf("mp: unknown entry type %u, walk stopped\n", *p); return;
		}
	}
}

/* Fill mp from the MP table, or with the defaults (LAPIC 0xfee00000,
 * IOAPIC 0xfec00000, BSP 0) and found = 0 where there is none usable. */
void mbos_mp_find(struct mbos_mp *mp, uint32_t ram_end)
{
	const uint8_t *fp = mp_floating(), *c;

	mb_memset(mp, 0, sizeof(*mp));
	mp->lapic_addr = 0xfee00000u;
	mp->ioapic_addr = 0xfec00000u;
	if (!fp) {
		mb_printf("mp: no floating pointer\n");
		return;
	}
	mp->imcrp = (fp[12] & MP_IMCRP) != 0;
	c = mp_config(fp, ram_end);
	if (!c)
		return;
	mp->found = 1;
	mp->lapic_addr = *(const uint32_t *)(c + 36);
	mp_entries(mp, c);
}

static void lapic_w(uint32_t reg, uint32_t v)
{
	lapic[reg / 4] = v;
	(void)lapic[LAPIC_ID / 4]; /* wait for the write to finish, by reading */
}

/* xv6's lapicinit: enabled with spurious vector 63, a periodic timer at
 * vector 32, LINT0/LINT1 (and the performance counter) masked, errors to
 * vector 51, the ESR cleared, an EOI for anything pending, the INIT
 * level-deassert broadcast that syncs arbitration IDs, TPR 0. */
void mbos_lapic_init(uint32_t base)
{
	lapic = (volatile uint32_t *)base;
	lapic_w(LAPIC_SVR, LAPIC_SVR_ENABLE | MBOS_T_SPURIOUS);
	lapic_w(LAPIC_TDCR, LAPIC_TDCR_16);
	lapic_w(LAPIC_TIMER, LAPIC_LVT_PERIODIC | MBOS_T_TIMER);
	lapic_w(LAPIC_TICR, LAPIC_TIMER_COUNT);
	lapic_w(LAPIC_LINT0, LAPIC_LVT_MASKED);
	lapic_w(LAPIC_LINT1, LAPIC_LVT_MASKED);
	if (((lapic[LAPIC_VER / 4] >> 16) & 0xff) >= 4)
		lapic_w(LAPIC_PCINT, LAPIC_LVT_MASKED);
	lapic_w(LAPIC_ERROR, MBOS_T_ERROR);
	lapic_w(LAPIC_ESR, 0);
	lapic_w(LAPIC_ESR, 0);
	lapic_w(LAPIC_EOI, 0);
	lapic_w(LAPIC_ICRHI, 0);
	lapic_w(LAPIC_ICRLO, LAPIC_ICR_BCAST | LAPIC_ICR_INIT | LAPIC_ICR_LEVEL);
	for (uint32_t i = 0; i < LAPIC_ICR_POLLS && (lapic[LAPIC_ICRLO / 4] & LAPIC_ICR_DELIVS);
	     i++)
		;
	lapic_w(LAPIC_TPR, 0);
}

uint32_t mbos_lapic_id(void)
{
	return lapic[LAPIC_ID / 4] >> 24;
}

uint32_t mbos_lapic_id_by_add(void)
{
	uint32_t v = 0;

	__asm__ volatile("addl %1, %0" : "+r"(v) : "m"(lapic[LAPIC_ID / 4]));
	return v >> 24;
}

uint32_t mbos_lapic_version(void)
{
	return lapic[LAPIC_VER / 4];
}

void mbos_lapic_eoi(void)
{
	lapic_w(LAPIC_EOI, 0);
}

static uint32_t ioapic_read(uint32_t reg)
{
	ioapic[0] = reg;
	return ioapic[4];
}

static void ioapic_write(uint32_t reg, uint32_t v)
{
	ioapic[0] = reg;
	ioapic[4] = v;
}

/* Mask every redirection entry (xv6's ioapicinit); returns the count of
 * entries and *id the ID register's. */
unsigned mbos_ioapic_init(uint32_t base, unsigned *id)
{
	unsigned max;

	ioapic = (volatile uint32_t *)base;
	max = (ioapic_read(IOAPIC_REG_VER) >> 16) & 0xff;
	*id = (ioapic_read(IOAPIC_REG_ID) >> 24) & 0x0f;
	for (unsigned i = 0; i <= max; i++) {
		ioapic_write(IOAPIC_REG_TABLE + 2 * i, IOAPIC_MASKED | (MBOS_T_IRQ0 + i));
		ioapic_write(IOAPIC_REG_TABLE + 2 * i + 1, 0);
	}
	return max + 1;
}

/* irq to vector at apicid: fixed, physical, edge, active high, unmasked. */
void mbos_ioapic_route(unsigned irq, unsigned vector, unsigned apicid)
{
	ioapic_write(IOAPIC_REG_TABLE + 2 * irq + 1, apicid << 24);
	ioapic_write(IOAPIC_REG_TABLE + 2 * irq, vector);
}

/* Mask IRQ `irq` (bit 16 of the redirection entry), as every pin is at
 * reset and until xv6's ioapicenable. */
void mbos_ioapic_mask(unsigned irq, unsigned vector)
{
	ioapic_write(IOAPIC_REG_TABLE + 2 * irq, IOAPIC_MASKED | vector);
}

void mbos_pic_mask(void)
{
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
}

/* ---- IDE: every wait is bounded, by polls or by timer ticks ---- */

static inline void insl(uint16_t port, void *addr, uint32_t n)
{
	__asm__ volatile("cld; rep insl" : "+D"(addr), "+c"(n) : "d"(port) : "memory", "cc");
}

static inline void outsl(uint16_t port, const void *addr, uint32_t n)
{
	__asm__ volatile("cld; rep outsl" : "+S"(addr), "+c"(n) : "d"(port) : "cc");
}

/* Reading the status register acknowledges the disk's interrupt. */
void mbos_ide_intr(void)
{
	(void)inb(IDE_STATUS);
	ide_irqs++;
}

/* Status once (status & mask) == want, or -1 after IDE_POLLS reads. */
static int ide_wait(uint8_t mask, uint8_t want)
{
	for (uint32_t i = 0; i < IDE_POLLS; i++) {
		uint8_t s = inb(IDE_STATUS);

		if ((s & mask) == want)
			return s;
	}
	return -1;
}

/* Called with IF clear: sleep in sti;hlt until IRQ 14 has come since
 * `seen`, or IDE_IRQ_TICKS timer ticks passed (then the polls decide). */
static void ide_wait_irq(uint32_t seen)
{
	uint32_t t0 = mbos_ticks;

	while (ide_irqs == seen && mbos_ticks - t0 < IDE_IRQ_TICKS)
		sti_hlt_cli();
}

/* A data phase's start: DRQ with BSY clear and no error. */
static int ide_drq(void)
{
	int s = ide_wait(IDE_BSY | IDE_DRQ, IDE_DRQ);

	return s >= 0 && !(s & (IDE_ERR | IDE_DF));
}

static void ide_command(uint32_t lba, unsigned count, uint8_t cmd)
{
	outb(IDE_CTL, 0);
	outb(IDE_COUNT, (uint8_t)count);
	outb(IDE_COUNT + 1, (uint8_t)lba);
	outb(IDE_COUNT + 2, (uint8_t)(lba >> 8));
	outb(IDE_COUNT + 3, (uint8_t)(lba >> 16));
	outb(IDE_DEVICE, (uint8_t)(0xe0 | ((lba >> 24) & 0x0f))); /* LBA, master */
	outb(IDE_STATUS, cmd);
}

/* Whether the primary master answers: its status is no floating bus and
 * shows DRDY, BSY clear, within IDE_POLLS reads of selecting it. */
int mbos_ide_present(void)
{
	if (inb(IDE_STATUS) == 0xff)
		return 0;
	outb(IDE_DEVICE, 0xe0);
	return ide_wait(IDE_BSY | IDE_DRDY, IDE_DRDY) >= 0;
}

/* IDENTIFY DEVICE into id; 0 on success, -1 (an ATAPI device or none). */
int mbos_ide_identify(uint16_t id[256], uint32_t *irqs)
{
	uint32_t seen = ide_irqs;

	ide_command(0, 0, IDE_CMD_IDENTIFY);
	ide_wait_irq(seen);
	if (!ide_drq())
		return -1;
	insl(IDE_DATA, id, 128);
	*irqs = ide_irqs - seen;
	return 0;
}

/* READ SECTORS: count (1..255) sectors from lba, one interrupt and one
 * data phase each; 0 on success, -1 on an error or a timeout. */
int mbos_ide_read(uint32_t lba, void *buf, unsigned count, uint32_t *irqs)
{
	uint32_t first = ide_irqs, seen = first;

	ide_command(lba, count, IDE_CMD_READ);
	for (unsigned i = 0; i < count; i++) {
		ide_wait_irq(seen);
		seen = ide_irqs;
		if (!ide_drq())
			return -1;
		insl(IDE_DATA, (uint8_t *)buf + 512 * i, 128);
	}
	*irqs = ide_irqs - first;
	return 0;
}

/* WRITE SECTORS: one sector; the interrupt ends the command. */
int mbos_ide_write(uint32_t lba, const void *buf, uint32_t *irqs)
{
	uint32_t seen = ide_irqs;
	int s;

	ide_command(lba, 1, IDE_CMD_WRITE);
	if (!ide_drq())
		return -1;
	outsl(IDE_DATA, buf, 128);
	ide_wait_irq(seen);
	s = ide_wait(IDE_BSY, 0);
	*irqs = ide_irqs - seen;
	return s >= 0 && !(s & (IDE_ERR | IDE_DF | IDE_DRQ)) ? 0 : -1;
}

/* ---- COM1 input ---- */

/* xv6's uartinit: 9600 8N1, FIFO off, MCR 0 (xv6 leaves OUT2 clear and
 * QEMU's UART does not gate the IRQ on it), then the receive interrupt.
 * IER goes 0 before 1, so data already waiting makes an edge on IRQ 4. */
void mbos_uart_init(void)
{
	outb(COM1 + 1, 0);
	outb(COM1 + 2, 0);
	outb(COM1 + 3, 0x80); /* DLAB */
	outb(COM1 + 0, 12);   /* 115200 / 9600 */
	outb(COM1 + 1, 0);
	outb(COM1 + 3, 0x03); /* 8 bits, no parity, 1 stop bit; DLAB off */
	outb(COM1 + 4, 0);
	outb(COM1 + 1, 0x01); /* receive data available */
	(void)inb(COM1 + 2);
}

/* IRQ 4: move every byte the UART holds into the ring; when the ring is
 * full, stop the receive interrupt until the reader has room again. */
void mbos_uart_intr(void)
{
	(void)inb(COM1 + 2); /* IIR */
	while (inb(COM1 + 5) & UART_LSR_DR) {
		if (ring_head - ring_tail == UART_RING) {
			outb(COM1 + 1, 0);
			uart_throttled = 1;
			return;
		}
		ring[ring_head++ % UART_RING] = inb(COM1);
	}
}

/* The next received byte, or -1; called with IF clear. */
int mbos_uart_getc(void)
{
	int c;

	if (ring_head == ring_tail)
		return -1;
	c = ring[ring_tail++ % UART_RING];
	if (uart_throttled && ring_head - ring_tail < UART_RING / 2) {
		uart_throttled = 0;
		outb(COM1 + 1, 0x01); /* 0 -> 1 with data waiting: a new edge */
	}
	return c;
}
