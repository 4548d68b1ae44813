/* The state every part of one guest run shares (struct vm).  The run itself,
 * from image to exit status, is run.c, the top of the VMM. */
#ifndef SHADOWVM_VM_H
#define SHADOWVM_VM_H

#include <linux/kvm.h>
#include <stdbool.h>

#include "cli.h"
#include "console.h"
#include "devices.h"
#include "elf_load.h"
#include "kvm.h"
#include "mem.h"
#include "monitor.h"
#include "vcpu.h"

struct shadow;
struct trace;

/* Returned by exit and trap handlers: resume the guest. */
#define VM_CONTINUE (-1)

/* The guest's virtual CPU state under --paging=shadow: what the guest
 * believes is loaded, never what the hardware runs with. */
struct vcpu_virt {
	uint64_t cr0, cr2, cr3, cr4, efer;
	uint64_t gdt_base, idt_base;
	uint16_t gdt_limit, idt_limit;
	uint16_t tr, ldtr;
	uint64_t tr_base;
	uint64_t star, lstar, cstar, sfmask, tsc_aux;
};

/* Counters of the shadow-mode trap path. */
struct trap_stats {
	uint64_t traps;     /* monitor entries */
	uint64_t emulated;  /* privileged instructions emulated */
	uint64_t reflected; /* events delivered to the guest's IDT */
	uint64_t syscalls;
	uint64_t interrupts;  /* external interrupts reflected (vectors 32..255) */
	uint64_t halts;       /* hlt emulated as a wait for an interrupt */
	uint64_t in_replays;  /* string INs served again after a hidden fault */
	uint64_t applies;     /* resumes through the monitor's store applier */
	uint64_t stores;      /* shadow stores queued for the monitor */
	uint64_t drains;      /* store queues applied mid-trap (full) */
	uint64_t stores_peak; /* most stores queued for one resume */
};

/* The trap path's memory of the last hidden faults (trap.c). */
struct trap_fault_history {
	gva_t gva;
	uint64_t rip, err, trap;
	unsigned n; /* repeats in a row */
};

struct trap_evict_history {
	uint64_t rip, evictions;
	gva_t page[4];
	unsigned n, next;
};

struct trap_history {
	struct trap_fault_history repeat;
	struct trap_evict_history evict;
};

struct vm {
	const struct options *opts;
	struct kvm kvm;
	struct guest_mem mem;
	struct vcpu vcpu;
	struct devices dev;
	struct console console; /* stdin into COM1, Multiboot images */
	struct elf_image img;
	/* shadow mode */
	bool shadow_mode;
	struct monitor mon;
	struct shadow *shadow;
	struct vcpu_virt virt;
	struct trap_stats tstats;
	struct trap_history history;
	bool queue_failed;           /* a drain of the store queue failed */
	bool ring_failed;            /* the fill monitor's event ring lost records */
	uint64_t tsc_khz, tsc0, ns0; /* the guest TSC's rate, and at trace time ns0 */
	uint64_t entry_cr3;          /* the real CR3 at this trap's entry */
	struct trace *trace;         /* --trace, or NULL */
	uint64_t cr4_allowed;        /* guest CR4 bits the CPU supports */
	bool umip;                   /* real CR4.UMIP available */
	unsigned maxphyaddr;
	bool gbpages;
	bool pse36;                        /* CPUID.01H:EDX.PSE-36 */
	uint64_t gdt_copy[HV_GDT_ENTRIES]; /* lgdt's read of the guest GDT */
	/* the CS and SS the guest last resumed with, when the real GDT no
	 * longer holds them at their selectors (segments_stale, trap.c) */
	bool pinned;
	struct kvm_segment resumed_cs, resumed_ss;
	bool halt; /* an emulated hlt: resume KVM_MP_STATE_HALTED */
	/* the data of a string IN whose store will take a hidden fault
	 * (trap_in_done), for its retry */
	struct {
		bool armed;
		uint16_t port;
		unsigned size;
		uint32_t count;
		uint8_t data[4096];
	} in_replay;
	/* register cache of the current trap */
	struct kvm_regs regs;
	struct kvm_sregs sregs;
};

#endif
