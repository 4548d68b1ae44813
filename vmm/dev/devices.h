/* Port-I/O devices: a 16550-style UART on COM1 (console), the exit port and
 * the POST/debug port 0x80 (accepted and ignored, a cheap exit for timing). */
#ifndef SHADOWVM_DEVICES_H
#define SHADOWVM_DEVICES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct uart {
	uint8_t ier, lcr, mcr, scr;
	uint16_t divisor;
	FILE *out;
};

struct devices {
	struct uart com1;
	bool exited; /* the guest wrote the exit port */
	uint64_t exit_value;
	uint64_t unclaimed; /* accesses to ports no device claims */
};

void devices_init(struct devices *dev, FILE *console);

/* Emulate one port access of `size` bytes (1, 2 or 4) at `port`.  On input the
 * device fills data.  Returns -1 to continue, or a final VMM status. */
int devices_pio(struct devices *dev, uint16_t port, bool in, uint8_t *data, unsigned size);

#endif
