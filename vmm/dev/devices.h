/* Port-I/O devices: a 16550-style UART on COM1 (console), the exit port,
 * the POST/debug port 0x80 (accepted and ignored, a cheap exit for timing),
 * and the PC pieces Multiboot test kernels probe: the two 8259 PICs (to be
 * masked), their ELCRs, and QEMU's fw_cfg (the traditional, port-I/O
 * interface).  PIC, ELCR and fw_cfg are there for every image: an ABI guest
 * that never touches them sees no difference. */
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

/* One 8259A: what its initialisation sequence and OCW1 leave behind. */
struct pic {
	uint8_t imr;    /* interrupt mask (OCW1) */
	uint8_t vector; /* ICW2: vector base */
	uint8_t icw3;   /* cascade wiring */
	uint8_t icw4;
	uint8_t elcr; /* edge/level control (port 0x4d0/0x4d1) */
	uint8_t step; /* the ICW expected next (2..4), 0 once initialised */
	bool need_icw3, need_icw4;
};

/* fw_cfg's selected item and the offset of the next data byte. */
struct fw_cfg {
	uint16_t key;
	uint32_t offset;
	uint64_t ram_size;
};

struct devices {
	struct uart com1;
	struct pic pic[2]; /* master 0x20/0x21, slave 0xa0/0xa1 */
	struct fw_cfg fw_cfg;
	bool isa_debug_exit; /* exit port with QEMU's isa-debug-exit rule */
	bool exited;         /* the guest wrote the exit port */
	uint64_t exit_value;
	uint64_t unclaimed; /* accesses to ports no device claims */
};

/* The exit status a Multiboot guest's write of N to the exit port ends the
 * run with, as QEMU's isa-debug-exit: (N << 1) | 1, cut to the 8 bits a
 * process exit status keeps. */
#define DEVICES_DEBUG_EXIT_STATUS(n) ((int)((((uint64_t)(n) << 1) | 1) & 0xff))

/* Reset every device; the console writes to `console`, fw_cfg reports
 * `ram_size` bytes, and the exit port follows isa-debug-exit when
 * `isa_debug_exit` (Multiboot images), else the ABI (status N, at most
 * SHADOWVM_ABI_EXIT_MAX). */
void devices_init(struct devices *dev, FILE *console, uint64_t ram_size, bool isa_debug_exit);

/* Emulate one port access of `size` bytes (1, 2 or 4) at `port`.  On input the
 * device fills data.  Returns -1 to continue, or a final VMM status. */
int devices_pio(struct devices *dev, uint16_t port, bool in, uint8_t *data, unsigned size);

#endif
