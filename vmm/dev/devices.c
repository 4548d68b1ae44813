#include <string.h>

#include "devices.h"
#include "log.h"
#include "shadowvm_abi.h"
#include "status.h"

/* 16550 register offsets and bits (National Semiconductor PC16550D). */
#define UART_RBR_THR 0
#define UART_IER 1
#define UART_IIR_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7
#define UART_LCR_DLAB 0x80
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_IIR_NONE 0x01
#define UART_MSR_DCD_DSR_CTS 0xb0

#define PORT_POST 0x80
#define PORT_CRTC 0x3d4 /* index; data at 0x3d5 */
#define PORT_KBD_DATA 0x60
#define PORT_KBD_STATUS 0x64
#define PORT_IMCR 0x22

/* 8259A (Intel 8259A datasheet, "Programming the 8259A"). */
#define PORT_PIC_MASTER 0x20
#define PORT_PIC_SLAVE 0xa0
#define PORT_ELCR 0x4d0    /* master; the slave's at 0x4d1 */
#define PIC_ICW1 0x10      /* command-port write with D4 set: ICW1 */
#define PIC_ICW1_IC4 0x01  /* ICW4 follows */
#define PIC_ICW1_SNGL 0x02 /* single PIC: no ICW3 */
#define PIC_ICW2 2
#define PIC_ICW3 3
#define PIC_ICW4 4
/* PIIX ELCR: IRQ 0, 1, 2, 8 and 13 are edge-triggered only (as QEMU). */
static const uint8_t elcr_mask[2] = { 0xf8, 0xde };

/* QEMU's fw_cfg, traditional interface (QEMU docs/specs/fw_cfg.rst). */
#define PORT_FW_CFG 0x510 /* selector, 16-bit write; 0x511 data, 8-bit reads */
#define FW_CFG_SIGNATURE 0x0000
#define FW_CFG_ID 0x0001
#define FW_CFG_RAM_SIZE 0x0003
#define FW_CFG_NB_CPUS 0x0005
#define FW_CFG_MAX_CPUS 0x000f
#define FW_CFG_FILE_DIR 0x0019
#define FW_CFG_ID_TRADITIONAL 1u /* bit 0: port I/O; bit 1 (DMA) clear */
#define FW_CFG_CPUS 1u

typedef int (*pio_fn)(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size);

/* IIR values (PC16550D table 4): the highest-priority pending source. */
#define UART_IIR_RDA 0x04
#define UART_IIR_THRE 0x02
#define UART_IIR_FIFO 0xc0 /* FIFOs enabled (FCR bit 0) */
#define UART_IER_RDA 0x01
#define UART_IER_THRE 0x02
#define UART_LSR_DR 0x01
#define UART_FCR_ENABLE 0x01
#define UART_FCR_CLEAR_RX 0x02

static bool rx_ready(const struct uart *u)
{
	return u->rx_tail != u->rx_head;
}

/* The IRQ 4 level: received data or an empty THR, where IER enables them.
 * (A PC gates the line with MCR.OUT2; QEMU does not, and kernels such as
 * xv6 leave OUT2 clear, so neither does this.)  Called with the lock. */
static void uart_update(struct uart *u)
{
	bool level = ((u->ier & UART_IER_RDA) && rx_ready(u)) ||
		     ((u->ier & UART_IER_THRE) && u->thre_pending);

	if (level == u->line)
		return;
	u->line = level;
	if (u->irq)
		u->irq(u->irq_opaque, DEVICES_IRQ_COM1, level);
}

static uint8_t uart_iir(struct uart *u)
{
	uint8_t fifo = u->fcr & UART_FCR_ENABLE ? UART_IIR_FIFO : 0;

	if ((u->ier & UART_IER_RDA) && rx_ready(u))
		return fifo | UART_IIR_RDA;
	if ((u->ier & UART_IER_THRE) && u->thre_pending) {
		u->thre_pending = false; /* reading IIR clears a THRE source */
		return fifo | UART_IIR_THRE;
	}
	return fifo | UART_IIR_NONE;
}

static uint8_t uart_rbr(struct uart *u)
{
	uint8_t v;

	if (!rx_ready(u))
		return 0;
	v = u->rx[u->rx_head++ % UART_RX_SIZE];
	u->received++;
	pthread_cond_signal(&u->room);
	return v;
}

static uint8_t uart_read(struct uart *u, uint16_t off)
{
	bool dlab = u->lcr & UART_LCR_DLAB;

	switch (off) {
	case UART_RBR_THR: return dlab ? (uint8_t)u->divisor : uart_rbr(u);
	case UART_IER: return dlab ? (uint8_t)(u->divisor >> 8) : u->ier;
	case UART_IIR_FCR: return uart_iir(u);
	case UART_LCR: return u->lcr;
	case UART_MCR: return u->mcr;
	case UART_LSR: /* the transmitter is always empty: output is written at once */
		return UART_LSR_THRE | UART_LSR_TEMT | (rx_ready(u) ? UART_LSR_DR : 0);
	case UART_MSR: return UART_MSR_DCD_DSR_CTS;
	default: return u->scr;
	}
}

static void uart_write(struct uart *u, uint16_t off, uint8_t v)
{
	bool dlab = u->lcr & UART_LCR_DLAB;

	switch (off) {
	case UART_RBR_THR:
		if (dlab) {
			u->divisor = (uint16_t)((u->divisor & 0xff00) | v);
			break;
		}
		fputc(v, u->out);
		if (u->flush)
			fflush(u->out);
		u->thre_pending = true; /* sent at once: the THR is empty again */
		break;
	case UART_IER:
		if (dlab) {
			u->divisor = (uint16_t)((u->divisor & 0x00ff) | (v << 8));
			break;
		}
		/* enabling THRE with the THR empty raises it at once */
		if ((v & UART_IER_THRE) && !(u->ier & UART_IER_THRE))
			u->thre_pending = true;
		u->ier = v & 0x0f;
		break;
	case UART_IIR_FCR:
		u->fcr = v & UART_FCR_ENABLE;
		if (v & UART_FCR_CLEAR_RX) {
			u->rx_head = u->rx_tail;
			pthread_cond_signal(&u->room);
		}
		break;
	case UART_LCR: u->lcr = v; break;
	case UART_MCR: u->mcr = v & 0x1f; break;
	case UART_SCR: u->scr = v; break;
	default: break; /* LSR, MSR writes: nothing to model */
	}
}

size_t uart_receive(struct uart *u, const uint8_t *buf, size_t n)
{
	size_t took = 0;

	pthread_mutex_lock(&u->lock);
	while (took < n && u->rx_tail - u->rx_head < UART_RX_SIZE)
		u->rx[u->rx_tail++ % UART_RX_SIZE] = buf[took++];
	uart_update(u);
	pthread_mutex_unlock(&u->lock);
	return took;
}

bool uart_nudge(struct uart *u)
{
	bool waiting;

	pthread_mutex_lock(&u->lock);
	waiting = rx_ready(u);
	if (waiting && u->line && u->received == u->nudge_mark && u->irq) {
		u->irq(u->irq_opaque, DEVICES_IRQ_COM1, 0);
		u->irq(u->irq_opaque, DEVICES_IRQ_COM1, 1);
	}
	u->nudge_mark = u->received;
	pthread_mutex_unlock(&u->lock);
	return waiting;
}

void uart_wait_room(struct uart *u, const volatile bool *stop)
{
	pthread_mutex_lock(&u->lock);
	while (!*stop && u->rx_tail - u->rx_head >= UART_RX_SIZE)
		pthread_cond_wait(&u->room, &u->lock);
	pthread_mutex_unlock(&u->lock);
}

void uart_wake(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	pthread_cond_broadcast(&u->room);
	pthread_mutex_unlock(&u->lock);
}

static int com1_pio(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	struct uart *u = &dev->com1;

	/* A 16-bit or 32-bit access touches consecutive registers. */
	pthread_mutex_lock(&u->lock);
	for (unsigned i = 0; i < size && off + i < 8; i++) {
		if (in)
			data[i] = uart_read(u, (uint16_t)(off + i));
		else
			uart_write(u, (uint16_t)(off + i), data[i]);
	}
	uart_update(u);
	pthread_mutex_unlock(&u->lock);
	return -1;
}

static int exit_pio(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	uint32_t v = 0;

	(void)off;
	if (in) {
		memset(data, 0, size);
		return -1;
	}
	memcpy(&v, data, size);
	dev->exited = true;
	dev->exit_value = v;
	if (dev->isa_debug_exit)
		return DEVICES_DEBUG_EXIT_STATUS(v);
	if (v > SHADOWVM_ABI_EXIT_MAX) {
		pr_err("guest exit value %u exceeds the ABI maximum %u", v, SHADOWVM_ABI_EXIT_MAX);
		return VMM_E_EXITRANGE;
	}
	return (int)v;
}

static int post_pio(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	(void)dev, (void)off;
	if (in)
		memset(data, 0xff, size);
	return -1;
}

/* ICW1 starts the initialisation: the IMR is cleared, and ICW2, then ICW3
 * (cascade mode) and ICW4 (if IC4) follow on the data port. */
static void pic_command(struct pic *p, uint8_t v)
{
	if (!(v & PIC_ICW1))
		return; /* OCW2 (EOI, priority) and OCW3 (read IRR/ISR): nothing pends */
	p->imr = 0;
	p->need_icw3 = !(v & PIC_ICW1_SNGL);
	p->need_icw4 = v & PIC_ICW1_IC4;
	p->icw4 = 0;
	p->step = PIC_ICW2;
}

static void pic_data(struct pic *p, uint8_t v)
{
	switch (p->step) {
	case PIC_ICW2:
		p->vector = v & 0xf8; /* x86 mode: T7..T3 */
		p->step = p->need_icw3 ? PIC_ICW3 : p->need_icw4 ? PIC_ICW4 : 0;
		break;
	case PIC_ICW3:
		p->icw3 = v;
		p->step = p->need_icw4 ? PIC_ICW4 : 0;
		break;
	case PIC_ICW4:
		p->icw4 = v;
		p->step = 0;
		break;
	default: p->imr = v; break; /* OCW1 */
	}
}

static uint8_t pic_read(const struct pic *p, uint16_t off)
{
	return off ? p->imr : 0; /* IRR or ISR, as OCW3 picks: no interrupts, 0 */
}

/* One byte at port `off` of a two-port device. */
typedef void (*byte_fn)(struct devices *dev, unsigned off, bool in, uint8_t *v);

/* A 16- or 32-bit access to a two-port device (index/data, command/data)
 * touches its ports one byte at a time, and nothing past the second. */
static int two_ports(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size,
		     byte_fn fn)
{
	for (unsigned i = 0; i < size && off + i < 2; i++)
		fn(dev, off + i, in, &data[i]);
	return -1;
}

static void pic_byte(struct pic *p, unsigned off, bool in, uint8_t *v)
{
	if (in)
		*v = pic_read(p, (uint16_t)off);
	else if (off == 0)
		pic_command(p, *v);
	else
		pic_data(p, *v);
}

static void master_byte(struct devices *dev, unsigned off, bool in, uint8_t *v)
{
	pic_byte(&dev->pic[0], off, in, v);
}

static void slave_byte(struct devices *dev, unsigned off, bool in, uint8_t *v)
{
	pic_byte(&dev->pic[1], off, in, v);
}

static int master_pio(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	return two_ports(dev, off, in, data, size, master_byte);
}

static int slave_pio(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	return two_ports(dev, off, in, data, size, slave_byte);
}

static void elcr_byte(struct devices *dev, unsigned off, bool in, uint8_t *v)
{
	if (in)
		*v = dev->pic[off].elcr;
	else
		dev->pic[off].elcr = *v & elcr_mask[off];
}

static int elcr_pio(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	return two_ports(dev, off, in, data, size, elcr_byte);
}

static void put_le(uint8_t *buf, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		buf[i] = (uint8_t)(v >> (8 * i));
}

/* The bytes of fw_cfg item `key` into buf; their count, 0 for an unknown
 * key. */
static unsigned fw_cfg_item(const struct fw_cfg *f, uint16_t key, uint8_t buf[8])
{
	memset(buf, 0, 8);
	switch (key) {
	case FW_CFG_SIGNATURE: memcpy(buf, "QEMU", 4); return 4;
	case FW_CFG_ID: put_le(buf, FW_CFG_ID_TRADITIONAL, 4); return 4;
	case FW_CFG_RAM_SIZE: put_le(buf, f->ram_size, 8); return 8;
	case FW_CFG_NB_CPUS:
	case FW_CFG_MAX_CPUS: put_le(buf, FW_CFG_CPUS, 2); return 2;
	case FW_CFG_FILE_DIR: return 4; /* a big-endian count of 0 files */
	default: return 0;
	}
}

/* A 16-bit (or wider) write to the selector picks an item and rewinds it;
 * each data-port byte read returns the next byte of it, 0 past its end.  A
 * byte write to the selector is a data write in QEMU, ignored here as the
 * items are read-only. */
static int fw_cfg_pio(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	struct fw_cfg *f = &dev->fw_cfg;
	uint8_t buf[8];
	unsigned len = fw_cfg_item(f, f->key, buf);

	if (!in) {
		if (off == 0 && size >= 2) {
			f->key = (uint16_t)(data[0] | data[1] << 8);
			f->offset = 0;
		}
		return -1;
	}
	for (unsigned i = 0; i < size; i++) {
		data[i] = off == 1 && f->offset < len ? buf[f->offset] : 0;
		if (off == 1 && f->offset < UINT32_MAX)
			f->offset++;
	}
	return -1;
}

static void crtc_byte(struct devices *dev, unsigned off, bool in, uint8_t *v)
{
	struct crtc *c = &dev->crtc;
	uint8_t *r = off == 0 ? &c->index : &c->reg[c->index % sizeof(c->reg)];

	if (in)
		*v = *r;
	else
		*r = *v;
}

static int crtc_pio(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	return two_ports(dev, off, in, data, size, crtc_byte);
}

/* The 8042: no keyboard is attached, so the status port says "output
 * buffer empty, input buffer empty" and the data port reads 0; commands
 * are accepted and do nothing. */
static int kbd_pio(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	(void)dev, (void)off;
	if (in)
		memset(data, 0, size);
	return -1;
}

/* The IMCR (MP spec 1.4 §3.6.2.1): index 0x70 at port 0x22 selects it, bit
 * 0 at 0x23 routes the 8259 away from the BSP's INTR.  Nothing is wired
 * through it here (the MP table says IMCRP is clear), so it only reads back. */
static void imcr_byte(struct devices *dev, unsigned off, bool in, uint8_t *v)
{
	uint8_t *r = off == 0 ? &dev->imcr_index : &dev->imcr;
	bool selected = off == 0 || dev->imcr_index == 0x70;

	if (in)
		*v = selected ? *r : 0xff;
	else if (selected)
		*r = *v;
}

static int imcr_pio(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	return two_ports(dev, off, in, data, size, imcr_byte);
}

/* The IDE channel: only a failed FLUSH CACHE is fatal (writes the guest
 * was told are done may be lost). */
static int ide_port(struct devices *dev, uint16_t port, bool in, uint8_t *data, unsigned size)
{
	if (ide_pio(&dev->ide, port, in, data, size) == 0)
		return -1;
	pr_err("ide: %s", dev->ide.err);
	return VMM_E_INTERNAL;
}

static int ide_cmd_pio(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	return ide_port(dev, (uint16_t)(IDE_PORT_BASE + off), in, data, size);
}

static int ide_ctl_pio(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	return ide_port(dev, (uint16_t)(IDE_PORT_CTL + off), in, data, size);
}

static const struct {
	uint16_t base, count;
	pio_fn fn;
} port_map[] = {
	{ SHADOWVM_ABI_PORT_COM1, 8, com1_pio },
	{ SHADOWVM_ABI_PORT_EXIT, 1, exit_pio },
	{ PORT_POST, 1, post_pio },
	{ PORT_PIC_MASTER, 2, master_pio },
	{ PORT_PIC_SLAVE, 2, slave_pio },
	{ PORT_ELCR, 2, elcr_pio },
	{ PORT_FW_CFG, 2, fw_cfg_pio },
	{ PORT_CRTC, 2, crtc_pio },
	{ PORT_KBD_DATA, 1, kbd_pio },
	{ PORT_KBD_STATUS, 1, kbd_pio },
	{ PORT_IMCR, 2, imcr_pio },
	{ IDE_PORT_BASE, 8, ide_cmd_pio },
	{ IDE_PORT_CTL, 1, ide_ctl_pio },
};

/* The PICs as a BIOS leaves them: initialised, vectors 0x08 and 0x70, the
 * slave on the master's IRQ 2, every line masked. */
void devices_init(struct devices *dev, FILE *console, uint64_t ram_size, bool isa_debug_exit)
{
	memset(dev, 0, sizeof(*dev));
	dev->com1.out = console;
	pthread_mutex_init(&dev->com1.lock, NULL);
	pthread_cond_init(&dev->com1.room, NULL);
	ide_init(&dev->ide, NULL, NULL);
	dev->pic[0] = (struct pic){ .imr = 0xff, .vector = 0x08, .icw3 = 0x04, .icw4 = 0x01 };
	dev->pic[1] = (struct pic){ .imr = 0xff, .vector = 0x70, .icw3 = 0x02, .icw4 = 0x01 };
	dev->fw_cfg.ram_size = ram_size;
	dev->isa_debug_exit = isa_debug_exit;
}

/* The IDE channel's INTRQ, on ISA IRQ 14. */
static void ide_line(void *opaque, int level)
{
	struct devices *dev = opaque;

	if (dev->irq)
		dev->irq(dev->irq_opaque, DEVICES_IRQ_IDE, level);
}

void devices_set_irq(struct devices *dev, devices_irq_fn fn, void *opaque)
{
	pthread_mutex_lock(&dev->com1.lock);
	dev->com1.irq = fn;
	dev->com1.irq_opaque = opaque;
	pthread_mutex_unlock(&dev->com1.lock);
	dev->irq = fn;
	dev->irq_opaque = opaque;
	dev->ide.irq = ide_line;
	dev->ide.opaque = dev;
}

void devices_fini(struct devices *dev)
{
	ide_close(&dev->ide);
}

/* Whether a read of `size` bytes at `port` changes a device's state: pops
 * a received byte, clears a pending interrupt identification, advances a
 * data phase or acknowledges an interrupt.  Only such a read must not be
 * repeated when its instruction is retried (trap.c, INS under a hidden
 * fault); a wide access covers consecutive byte ports (com1_pio, ide_pio). */
bool devices_read_consumes(const struct devices *dev, uint16_t port, unsigned size)
{
	for (unsigned i = 0; i < size; i++) {
		switch ((uint16_t)(port + i)) {
		case SHADOWVM_ABI_PORT_COM1 + UART_RBR_THR:
			if (!(dev->com1.lcr & UART_LCR_DLAB))
				return true;
			break;
		case SHADOWVM_ABI_PORT_COM1 + UART_IIR_FCR:
		case PORT_FW_CFG + 1:
		case IDE_PORT_BASE + IDE_REG_DATA:
		case IDE_PORT_BASE + IDE_REG_STATUS: return true;
		default: break;
		}
	}
	return false;
}

int devices_pio(struct devices *dev, uint16_t port, bool in, uint8_t *data, unsigned size)
{
	for (size_t i = 0; i < sizeof(port_map) / sizeof(port_map[0]); i++) {
		if (port >= port_map[i].base && port - port_map[i].base < port_map[i].count)
			return port_map[i].fn(dev, (uint16_t)(port - port_map[i].base), in, data,
					      size);
	}
	/* Unclaimed ports behave as on a PC with nothing decoding them. */
	dev->unclaimed++;
	pr_debug("pio: unclaimed port=0x%x %s size=%u", port, in ? "in" : "out", size);
	if (in)
		memset(data, 0xff, size);
	return -1;
}
