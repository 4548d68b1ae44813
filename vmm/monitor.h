/* The monitor (DESIGN.md §2): the hypervisor's own pages inside the VM — IDT,
 * GDT, TSS, one trap stub per vector, a syscall stub and the trap stack — in
 * a second memslot at HV_BASE, mapped read-only (but for the stack) through
 * the reserved PML4 slot.  The shadow pool follows them in the same slot. */
#ifndef SHADOWVM_MONITOR_H
#define SHADOWVM_MONITOR_H

#include <stdbool.h>
#include <stdint.h>

#include "shadowvm_abi.h"
#include "types.h"

/* MPA of the hypervisor slot: far above guest RAM (at most 4 GiB) and below
 * 2^36, the smallest MAXPHYADDR of any x86-64 CPU. */
#define HV_BASE 0x800000000ull

/* Pages of the slot, by index. */
enum {
	HV_PG_PDPT = 0,   /* tables mapping the reserved slot: never mapped themselves */
	HV_PG_PD = 1,
	HV_PG_PT = 2,
	HV_PG_IDT = 3,
	HV_PG_GDT = 4,    /* 16 pages: a full 8192-entry GDT */
	HV_PG_TSS = 20,
	HV_PG_STUBS = 21, /* 2 pages: 256 trap stubs, then the syscall stub */
	HV_PG_STACK = 23, /* the trap stack, the only writable page */
	HV_PG_MAPPED_END = 24, /* page 24 is an unmapped guard */
	HV_PG_POOL = 32,  /* first shadow-pool page */
};
#define HV_GDT_PAGES 16

#define HV_VA(pg) (SVM_ABI_RESERVED_VA_BASE + (uint64_t)(pg) * 4096)
#define HV_MPA(pg) (HV_BASE + (uint64_t)(pg) * 4096)
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

/* What a trap stub leaves on the trap stack (IST1 = HV_STACK_TOP). */
struct hv_trap_frame {
	uint64_t vector;
	uint64_t error_code; /* 0 for vectors without one */
	uint64_t rip, cs, rflags, rsp, ss;
};
#define HV_TRAP_FRAME_VA (HV_STACK_TOP - sizeof(struct hv_trap_frame))

struct monitor {
	uint8_t *host;      /* host view of the slot */
	uint64_t size;      /* bytes: monitor pages + pool */
	uint32_t pool_pages;
	uint64_t pml4e;     /* the hypervisor entry of every root */
};

/* Map the slot and build the monitor: page tables, IDT, GDT (monitor
 * descriptors only), TSS, stubs.  Returns 0, or -1 with errno set. */
int monitor_create(struct monitor *m, uint32_t pool_pages);
void monitor_destroy(struct monitor *m);

/* Host pointer to the page `pg` of the slot. */
void *monitor_page(const struct monitor *m, unsigned pg);

/* Translate the guest's GDT (`count` 8-byte descriptors read by the caller)
 * into the real GDT: code/data DPL 0 becomes 1 and gets its accessed bit;
 * system descriptors and gates never reach the real GDT (zeroed). */
void monitor_load_gdt(struct monitor *m, const uint64_t *guest, unsigned count);

/* The trap frame just pushed by a stub. */
const struct hv_trap_frame *monitor_frame(const struct monitor *m);

/* Real descriptor for `sel` (0 if outside the GDT or null). */
uint64_t monitor_descriptor(const struct monitor *m, uint16_t sel);

#endif
