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
	case UART_LSR: return UART_LSR_THRE | UART_LSR_TEMT; /* always ready */
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

static const struct {
	uint16_t base, count;
	pio_fn fn;
} port_map[] = {
	{ SHADOWVM_ABI_PORT_COM1, 8, com1_pio },
	{ SHADOWVM_ABI_PORT_EXIT, 1, exit_pio },
	{ PORT_POST, 1, post_pio },
};

void devices_init(struct devices *dev, FILE *console)
{
	memset(dev, 0, sizeof(*dev));
	dev->com1.out = console;
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
