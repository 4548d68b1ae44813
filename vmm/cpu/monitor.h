/* The monitor (DESIGN.md §2): the hypervisor's own pages inside the VM — IDT,
 * GDT, TSS, one trap stub per vector, a syscall stub and the trap stack — in
 * a second memslot at HV_BASE, mapped read-only (but for the stack) through
 * the reserved PML4 slot.  The shadow pool follows them in the same slot. */
#ifndef SHADOWVM_MONITOR_H
#define SHADOWVM_MONITOR_H

#include <stdbool.h>
#include <stdint.h>

#include "hv_mon.h"
#include "shadowvm_abi.h"
#include "types.h"

/* MPA of the hypervisor slot: far above guest RAM (at most 4 GiB) and below
 * 2^36, the smallest MAXPHYADDR of any x86-64 CPU. */
#define HV_BASE 0x800000000ull

/* Pages of the slot, by index. */
enum {
	HV_PG_PDPT = 0, /* tables mapping the reserved slot: never mapped themselves */
	HV_PG_PD = 1,
	HV_PG_PT = 2,
	HV_PG_IDT = 3,
	HV_PG_GDT = 4, /* 16 pages: a full 8192-entry GDT */
	HV_PG_TSS = 20,
	HV_PG_STUBS = 21,      /* 2 pages: 256 trap stubs, then the syscall stub */
	HV_PG_STACK = 23,      /* the trap stack, the only writable page */
	HV_PG_MAPPED_END = 24, /* page 24 is an unmapped guard */
	/* The monitor's own address space (DESIGN.md §2): its root maps the
	 * pages above plus the store queue and the pool, writable; the roots
	 * the guest runs on never map them.  Its page tables follow the pool. */
	HV_PG_MROOT = 25,
	HV_PG_MPDPT = 26,
	HV_PG_MPD = 27,
	HV_PG_QUEUE = 28, /* 3 pages: struct hv_queue */
	HV_QUEUE_PAGES = 3,
	HV_PG_MON = 31,  /* struct hv_mon: the fill monitor's control page */
	HV_PG_POOL = 32, /* first shadow-pool page */
			 /* After the pool (struct monitor names where): the shadow MMU's own
	 * view of the pool, the event ring, the state block, the fill
	 * monitor's image, the monitor root's tables for PML4 511 (the image
	 * and guest RAM), and last the page tables of its slot 510. */
};
#define HV_RING_PAGES 16u
#define HV_GDT_PAGES 16

#define HV_VA(pg) (SHADOWVM_ABI_RESERVED_VA_BASE + (uint64_t)(pg)*4096)
#define HV_MPA(pg) (HV_BASE + (uint64_t)(pg)*4096)
#define HV_STACK_TOP HV_VA(HV_PG_STACK + 1)
#define HV_STUB_SIZE 16
#define HV_SYSCALL_STUB (HV_VA(HV_PG_STUBS) + 256 * HV_STUB_SIZE)

/* The monitor's descriptors sit at the top of the GDT; a guest GDT must end
 * below them.  STAR needs CS and SS adjacent. */
#define HV_GDT_ENTRIES 8192u
#define HV_GDT_CS_INDEX 8184u
#define HV_GDT_SS_INDEX 8185u
#define HV_GDT_TSS_INDEX 8186u /* 16 bytes: 8186..8187 */
#define HV_SEL_CS (HV_GDT_CS_INDEX << 3)
#define HV_SEL_SS (HV_GDT_SS_INDEX << 3)
#define HV_SEL_TSS (HV_GDT_TSS_INDEX << 3)
#define HV_GUEST_GDT_LIMIT_MAX (HV_GDT_CS_INDEX * 8 - 1)

/* Ports the stubs write (from CPL0 only; the VMM checks). */
#define HV_PORT_TRAP 0xf6u
#define HV_PORT_SYSCALL 0xf7u
#define HV_PORT_APPLIED 0xf8u /* the applier, when told to stop (exit_after) */

/* The store queue: shadow-table stores the VMM's shadow MMU made, for the
 * monitor to apply at CPL0 on the next resume (monitor_apply.S).  `where`
 * is the entry's VA in the monitor's root; bit 0 set: zero that page. */
struct hv_queue_op {
	uint64_t where, value;
};
struct hv_queue {
	uint64_t ops;        /* queued; the applier sets 0 when done */
	uint64_t root;       /* the CR3 to return to the guest on */
	uint64_t exit_after; /* enum hv_apply_end */
	uint64_t reserved[5];
	struct hv_queue_op op[];
};
#define HV_QUEUE_OPS_MAX \
	((HV_QUEUE_PAGES * 4096 - sizeof(struct hv_queue)) / sizeof(struct hv_queue_op))
#define HV_APPLY_VA (HV_VA(HV_PG_STUBS + 1) + 64)
#define HV_PF_VA (HV_VA(HV_PG_STUBS + 1) + 512) /* the fill monitor's #PF entry */
#define HV_GP_VA (HV_PF_VA + 16)                /* and its #GP entry */
/* The applier's iretq frame (RIP, CS, RFLAGS, RSP, SS) below the stack top. */
#define HV_APPLY_FRAME_VA (HV_STACK_TOP - 5 * 8)

/* What a trap stub leaves on the trap stack (IST1 = HV_STACK_TOP). */
struct hv_trap_frame {
	uint64_t vector;
	uint64_t error_code; /* 0 for vectors without one */
	uint64_t rip, cs, rflags, rsp, ss;
};
#define HV_TRAP_FRAME_VA (HV_STACK_TOP - sizeof(struct hv_trap_frame))

/* The fill monitor's local-APIC fast path (monitor_apply.S, DESIGN.md §3):
 * a guest-kernel load or store through a marked leaf of the APIC's page
 * (SHADOW_MMIO_MARK) faults with PFERR.RSVD into the #PF entry, which
 * emulates it on the guest's own root, with no exit and no CR3 switch: a
 * read of the ID register from `id`, anything else through the alias of
 * the APIC at HV_PT_LAPIC (KVM's in-kernel APIC serves it, as it would
 * have served the guest).  It sits at the bottom of the trap stack page,
 * the only page of the slot the guest's roots map writable (the stubs use
 * its top 200 bytes). */
struct hv_lapic {
	uint32_t enabled; /* VMM: the mark is in force, the APIC at its default
	                       base in xAPIC mode */
	uint32_t stac;    /* VMM: real CR4.SMAP is on: fetch with AC set */
	uint32_t id;      /* the ID register (offset 0x20), as last read */
	uint32_t reserved;
	uint64_t id_reads;  /* loads of the ID register served from `id` */
	uint64_t forwarded; /* other loads and stores, made through the alias */
	uint64_t declined;  /* marked faults left to the full path */
};
#define HV_PT_LAPIC 511 /* the slot's PT entry mapping the APIC's page */
#define HV_LAPIC_ALIAS_VA HV_VA(HV_PT_LAPIC)

struct monitor_config {
	uint32_t pool_pages;
	uint64_t state_bytes; /* the shadow MMU's state block (shadow_state_bytes) */
	uint64_t ram_size;    /* at most HV_MON_RAM_MAX */
	bool fill;            /* IDT vector 14 to the fill monitor (--fill=monitor) */
	gpa_t lapic;          /* the local APIC's page, aliased at HV_PT_LAPIC (0: none) */
};

struct monitor {
	uint8_t *host; /* host view of the slot */
	uint64_t size; /* bytes */
	uint32_t pool_pages;
	uint64_t pml4e; /* the hypervisor entry of every root */
	/* first pages of the regions after the pool, and their sizes */
	uint32_t pg_copy, pg_ring, pg_state, pg_image, pg_tables, pg_mpt, pg_end;
	uint32_t state_pages, image_pages, ram_pds;
	uint64_t ram_size;
	bool fill;
	gpa_t lapic;
};

/* The slot's layout for `cfg` (every field of struct monitor but host and
 * pml4e); false if the image is not a monitor image or RAM is too large. */
bool monitor_layout(struct monitor *m, const struct monitor_config *cfg);

/* Map the slot and build the monitor: page tables, IDT, GDT (monitor
 * descriptors only), TSS, stubs, the fill monitor's image and control
 * page.  Returns 0, or -1 with errno set. */
int monitor_create(struct monitor *m, const struct monitor_config *cfg);

/* The control page, the state block's host view, the pool's two views. */
struct hv_mon *monitor_mon(const struct monitor *m);
void *monitor_state(const struct monitor *m);
uint64_t *monitor_pool(const struct monitor *m); /* the real tables */
uint64_t *monitor_copy(const struct monitor *m); /* the shadow MMU's own view */
void monitor_destroy(struct monitor *m);

/* The local-APIC fast path's state (struct hv_lapic). */
struct hv_lapic *monitor_lapic(const struct monitor *m);

/* Host pointer to the page `pg` of the slot. */
void *monitor_page(const struct monitor *m, unsigned pg);

/* Translate the guest's GDT (`count` 8-byte descriptors read by the caller)
 * into the real GDT: code/data DPL 0 becomes 1 and gets its accessed bit;
 * system descriptors and gates never reach the real GDT (zeroed). */
void monitor_load_gdt(struct monitor *m, const uint64_t *guest, unsigned count, bool legacy);

/* The trap frame just pushed by a stub. */
const struct hv_trap_frame *monitor_frame(const struct monitor *m);

/* Real descriptor for `sel` (0 if outside the GDT or null). */
uint64_t monitor_descriptor(const struct monitor *m, uint16_t sel);

/* Queue the store of `value` into the shadow entry at `mpa` (in the pool),
 * or the zeroing of the pool page at `mpa`.  False when the queue is full:
 * the caller has the monitor drain it first. */
bool monitor_queue_store(struct monitor *m, mpa_t mpa, uint64_t value);
bool monitor_queue_zero(struct monitor *m, mpa_t page);
unsigned monitor_queue_len(const struct monitor *m);

/* How the applier ends once the stores are made. */
enum hv_apply_end {
	HV_APPLY_RETURN,       /* load the guest's root, iretq to the guest */
	HV_APPLY_EXIT,         /* stop at HV_PORT_APPLIED (a drain mid-trap) */
	HV_APPLY_EXIT_ON_ROOT, /* load the guest's root (the flush), then stop:
	                          the VMM sets the guest's registers itself */
};

/* Make the applier's entry: the guest's return frame and the root to
 * return on.  The caller then enters HV_APPLY_VA at CPL0 with CR3 =
 * HV_MPA(HV_PG_MROOT), RSP = HV_APPLY_FRAME_VA. */
void monitor_apply_setup(struct monitor *m, const uint64_t frame[5], mpa_t root,
			 enum hv_apply_end end);

#endif
