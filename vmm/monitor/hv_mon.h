/* What the VMM and the fill monitor (DESIGN.md §3, issue 14) share: the
 * monitor image's head, the control page and the event ring, all in the
 * hypervisor slot.  Plain data only (no host pointer): the VMM sees these
 * bytes through its mapping of the slot, the monitor at the VAs below.
 * Included by the monitor (freestanding) and by the VMM. */
#ifndef SHADOWVM_HV_MON_H
#define SHADOWVM_HV_MON_H

#include <stdint.h>

#include "shadow.h"

/* Where the image runs: the top 2 GiB of the monitor root (PML4 511,
 * -mcmodel=kernel), mapped only there; guest RAM is mapped from
 * HV_MON_RAM_VA, also in the monitor root only. */
#define HV_MON_IMAGE_VA 0xffffffff80000000ull
#define HV_MON_RAM_VA 0xffffff8000000000ull
#define HV_MON_RAM_MAX (4ull << 30)

#define HV_MON_MAGIC 0x314e4f4d56444853ull /* "SHDVMON1" */
#define HV_MON_STACK_BYTES 16384u

/* At the image's first byte (vmm/monitor/image.ld). */
struct hv_mon_head {
	uint64_t magic;
	uint64_t entry;       /* VA of hv_mon_fault */
	uint64_t stack_top;   /* VA: the monitor's own stack, 16-byte aligned */
	uint64_t text_bytes;  /* [0, text_bytes): code and rodata, page-aligned */
	uint64_t image_bytes; /* everything, bss included, page-aligned */
};

/* Why the monitor left a hidden #PF to the VMM (DESIGN.md §3's list; the
 * README shows it).  Decided in one place: hv_mon_fault. */
enum hv_mon_exit {
	HV_MON_EXIT_GUEST_FAULT, /* a genuine #PF/#GP: the VMM reflects it */
	HV_MON_EXIT_ERROR,       /* outside RAM, the reserved slot: the VMM decides */
	HV_MON_EXIT_RSVD,        /* a reserved-bit fault on a shadow entry */
	HV_MON_EXIT_REPEAT,      /* the fault it just resolved came back */
	HV_MON_EXIT_POOL,        /* too few free pool pages: the fill might evict */
	HV_MON_EXIT_RING,        /* the event ring has no room for a fault's events */
	HV_MON_EXIT_SLOT,        /* the guest maps the reserved PML4 slot */
	HV_MON_EXIT_NOT_READY,   /* no context to attach to */
	HV_MON_EXIT_CHECK,       /* resolved, then shown to --check-invariants */
	HV_MON_EXIT_INSN,        /* a #GP it does not emulate: all but mov to CR3,
	                            mov from CR2 and invlpg */
	HV_MON_EXIT_MODE,        /* a #GP in guest paging other than 4-level,
	                            or from compatibility-mode code */
	HV_MON_EXITS,
};

/* Flags the VMM sets in hv_mon.flags. */
#define HV_MON_TRACE 0x1u /* events go to the ring */
#define HV_MON_CHECK 0x2u /* --check-invariants: every fault resolved is handed over */

/* One record of the ring, stamped with the guest TSC: an event the
 * monitor's view of the shadow MMU made, or an instruction it emulated
 * (the VMM's `emulate` record: at rip, after #GP, `len` bytes, done). */
#define HV_MON_MNEMONIC_MAX 8
enum hv_mon_rec { HV_MON_REC_SHADOW, HV_MON_REC_EMULATE };
struct hv_mon_event {
	uint64_t tsc;
	uint32_t type; /* enum hv_mon_rec */
	uint32_t vector;
	uint64_t rip;
	uint8_t len;
	uint8_t bytes[15];
	char mnemonic[HV_MON_MNEMONIC_MAX]; /* NUL-terminated */
	struct shadow_event ev;
};

/* The control page.  The monitor writes only: ring_head, handoff, the
 * counters and last; the VMM the rest, while the vCPU is stopped. */
struct hv_mon {
	uint64_t magic;
	uint32_t flags;
	uint32_t reserved0;
	/* the shadow MMU's context: state block and pools, as VAs */
	uint64_t state_va, state_bytes;
	uint64_t pool_va;         /* the real tables, the ones the CPU walks */
	uint64_t copy_va;         /* the shadow MMU's own view (shadow_pool_cfg.host) */
	uint64_t ram_size;        /* guest RAM at HV_MON_RAM_VA */
	uint64_t guest_pml4_slot; /* HV slot's index, checked in the guest's PML4 */
	/* the event ring: records [tail, head) modulo cap are unread */
	uint64_t ring_va;
	uint32_t ring_cap;
	uint32_t reserved1;
	uint64_t ring_head; /* monitor */
	uint64_t ring_tail; /* VMM */
	/* the fault the monitor left to the VMM, already run through the
	 * shadow MMU (GUEST_FAULT, ERROR, CHECK): the VMM takes this result
	 * instead of running the fault again */
	uint32_t handoff; /* 1 when set */
	uint32_t exit_reason;
	uint64_t handoff_gva, handoff_err;
	struct shadow_fault_result handoff_res;
	/* the guest's mov to CR3 the monitor emulated: the VMM's virtual CR3
	 * from now on (cr3_written set), and how many it emulated since the
	 * VMM last looked */
	uint64_t guest_cr3;
	uint32_t cr3_written;
	uint32_t reserved2;
	uint64_t emulated;
	uint64_t guest_cr2; /* the VMM's virtual CR2, set before every resume */
	/* counters */
	uint64_t resolved; /* hidden faults resolved without an exit */
	uint64_t exits[HV_MON_EXITS];
	/* the last fault resolved, to see it come back */
	uint64_t last_gva, last_rip, last_err;
};

/* Room kept in the ring for the events of one fault: A/D, the fill, a
 * prefetch window, an unprotect. */
#define HV_MON_EVENTS_PER_FAULT 32u

/* The frame the entry stub (monitor_apply.S) hands hv_mon_fault: the
 * guest's GPRs it pushed, the vector, then what the CPU pushed for the
 * #PF or #GP. */
struct hv_mon_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rdi, rsi, rbp, rdx, rcx, rbx, rax;
	uint64_t vector, error_code, rip, cs, rflags, rsp, ss;
};

#endif
