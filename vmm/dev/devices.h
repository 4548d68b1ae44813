/* Port-I/O devices: a 16550-style UART on COM1 (console, with a receive
 * side fed from stdin and its interrupt on IRQ 4), the exit port, the
 * POST/debug port 0x80 (accepted and ignored, a cheap exit for timing), and
 * the PC pieces test kernels and small operating systems probe: the two
 * 8259 PICs (to be masked), their ELCRs, QEMU's fw_cfg (the traditional,
 * port-I/O interface), the CGA's CRT controller index/data pair, the 8042
 * keyboard controller's status port, the IMCR, and an IDE disk channel
 * (ide.h).  They are there for every image: an ABI guest that never
 * touches them sees no difference.  Under KVM's in-kernel irqchip (Multiboot
 * images) the PIC and ELCR ports never reach user space. */
#ifndef SHADOWVM_DEVICES_H
#define SHADOWVM_DEVICES_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ide.h"

/* An interrupt line's new level: `gsi` as KVM_IRQ_LINE names it (the ISA
 * IRQ number). */
typedef void (*devices_irq_fn)(void *opaque, unsigned gsi, int level);

#define UART_RX_SIZE 4096u
#define DEVICES_IRQ_COM1 4u
#define DEVICES_IRQ_IDE 14u

/* The receive side is shared with the console's input thread (console.h):
 * `lock` guards rx, the pending THRE interrupt and the line level. */
struct uart {
	uint8_t ier, lcr, mcr, scr, fcr;
	uint16_t divisor;
	FILE *out;
	bool flush; /* flush out after every byte (an interactive console) */
	pthread_mutex_t lock;
	pthread_cond_t room; /* rx has room again */
	uint8_t rx[UART_RX_SIZE];
	uint32_t rx_head, rx_tail; /* free-running; rx_tail - rx_head bytes wait */
	bool thre_pending;         /* THR-empty interrupt, until IIR is read or THR written */
	bool line;                 /* the IRQ 4 level last reported */
	uint64_t received;         /* bytes the guest has read */
	uint64_t nudge_mark;       /* `received` at the last uart_nudge */
	devices_irq_fn irq;
	void *irq_opaque;
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

/* The CGA's CRT controller (6845): an index at 0x3d4 and the register it
 * selects at 0x3d5, read back as written (kernels keep the cursor there). */
struct crtc {
	uint8_t index;
	uint8_t reg[32];
};

struct devices {
	struct uart com1;
	struct crtc crtc;
	struct ide ide;
	uint8_t imcr_index, imcr; /* the IMCR at 0x22/0x23 (MP spec §3.6.2.1) */
	struct pic pic[2];        /* master 0x20/0x21, slave 0xa0/0xa1 */
	struct fw_cfg fw_cfg;
	bool isa_debug_exit; /* exit port with QEMU's isa-debug-exit rule */
	bool exited;         /* the guest wrote the exit port */
	uint64_t exit_value;
	uint64_t unclaimed; /* accesses to ports no device claims */
	devices_irq_fn irq;
	void *irq_opaque;
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

/* Wire the interrupt lines (COM1's IRQ 4, the IDE channel's IRQ 14) to
 * `fn`; without it the devices raise none. */
void devices_set_irq(struct devices *dev, devices_irq_fn fn, void *opaque);

/* Close the disks; the devices are unusable after it. */
void devices_fini(struct devices *dev);

/* Bytes from the console into COM1's receive buffer: how many it took
 * (fewer than n when it is full).  Thread-safe against devices_pio. */
size_t uart_receive(struct uart *u, const uint8_t *buf, size_t n);

/* Wait until COM1's receive buffer has room, or `*stop` is set (the
 * caller's flag, checked under the lock; uart_wake() wakes the wait). */
void uart_wait_room(struct uart *u, const volatile bool *stop);
void uart_wake(struct uart *u);
/* Input is waiting, IRQ 4 is high and the guest has read nothing since
 * the last call: lower and raise the line, a new edge.  An edge-triggered
 * pin that was masked when the line rose has lost that edge for good (KVM's
 * IOAPIC keeps no IRR for a masked edge pin; xv6's uartinit unmasks IRQ 4
 * after enabling the receive interrupt), and no further edge comes while
 * the line stays high.  True while input waits (call again later). */
bool uart_nudge(struct uart *u);

/* Emulate one port access of `size` bytes (1, 2 or 4) at `port`.  On input the
 * device fills data.  Returns -1 to continue, or a final VMM status. */
int devices_pio(struct devices *dev, uint16_t port, bool in, uint8_t *data, unsigned size);

/* Whether reading `size` bytes at `port` changes device state (a receive
 * buffer popped, a data phase advanced, an interrupt acknowledged), so
 * that the same read made again would not return the same data. */
bool devices_read_consumes(const struct devices *dev, uint16_t port, unsigned size);

#endif
