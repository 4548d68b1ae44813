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

static uint8_t uart_read(struct uart *u, uint16_t off)
{
	bool dlab = u->lcr & UART_LCR_DLAB;

	switch (off) {
	case UART_RBR_THR: return dlab ? (uint8_t)u->divisor : 0; /* no input */
	case UART_IER: return dlab ? (uint8_t)(u->divisor >> 8) : u->ier;
	case UART_IIR_FCR: return UART_IIR_NONE;
	case UART_LCR: return u->lcr;
	case UART_MCR: return u->mcr;
	case UART_LSR: return UART_LSR_THRE | UART_LSR_TEMT; /* always ready, !DR */
	case UART_MSR: return UART_MSR_DCD_DSR_CTS;
	default: return u->scr;
	}
}

static void uart_write(struct uart *u, uint16_t off, uint8_t v)
{
	bool dlab = u->lcr & UART_LCR_DLAB;

	switch (off) {
	case UART_RBR_THR:
		if (dlab)
			u->divisor = (uint16_t)((u->divisor & 0xff00) | v);
		else
			fputc(v, u->out);
		break;
	case UART_IER:
		if (dlab)
			u->divisor = (uint16_t)((u->divisor & 0x00ff) | (v << 8));
		else
			u->ier = v & 0x0f;
		break;
	case UART_LCR: u->lcr = v; break;
	case UART_MCR: u->mcr = v & 0x1f; break;
	case UART_SCR: u->scr = v; break;
	default: break; /* FCR, LSR, MSR writes: nothing to model */
	}
}

static int com1_pio(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	/* A 16-bit or 32-bit access touches consecutive registers. */
	for (unsigned i = 0; i < size && off + i < 8; i++) {
		if (in)
			data[i] = uart_read(&dev->com1, (uint16_t)(off + i));
		else
			uart_write(&dev->com1, (uint16_t)(off + i), data[i]);
	}
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

static int pic_pio(struct pic *p, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	for (unsigned i = 0; i < size && off + i < 2; i++) {
		if (in)
			data[i] = pic_read(p, (uint16_t)(off + i));
		else if (off + i == 0)
			pic_command(p, data[i]);
		else
			pic_data(p, data[i]);
	}
	return -1;
}

static int master_pio(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	return pic_pio(&dev->pic[0], off, in, data, size);
}

static int slave_pio(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	return pic_pio(&dev->pic[1], off, in, data, size);
}

static int elcr_pio(struct devices *dev, uint16_t off, bool in, uint8_t *data, unsigned size)
{
	for (unsigned i = 0; i < size && off + i < 2; i++) {
		if (in)
			data[i] = dev->pic[off + i].elcr;
		else
			dev->pic[off + i].elcr = data[i] & elcr_mask[off + i];
	}
	return -1;
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
};

/* The PICs as a BIOS leaves them: initialised, vectors 0x08 and 0x70, the
 * slave on the master's IRQ 2, every line masked. */
void devices_init(struct devices *dev, FILE *console, uint64_t ram_size, bool isa_debug_exit)
{
	memset(dev, 0, sizeof(*dev));
	dev->com1.out = console;
	dev->pic[0] = (struct pic){ .imr = 0xff, .vector = 0x08, .icw3 = 0x04, .icw4 = 0x01 };
	dev->pic[1] = (struct pic){ .imr = 0xff, .vector = 0x70, .icw3 = 0x02, .icw4 = 0x01 };
	dev->fw_cfg.ram_size = ram_size;
	dev->isa_debug_exit = isa_debug_exit;
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
