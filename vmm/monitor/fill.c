/* The fill monitor (DESIGN.md §3, issue 14): the shadow MMU run inside the
 * VM, at CPL0 on the monitor's own root, on every hidden #PF.  It walks the
 * guest's tables through its mapping of guest RAM, sets A/D with lock
 * cmpxchg, writes the shadow leaf into the real tables and returns to the
 * guest with iretq: no exit.  What it does not resolve it hands to the VMM
 * (enum hv_mon_exit), decided here and nowhere else.
 *
 * It works on the VMM's context (the same state block and pool, seen at
 * other addresses: shadow_attach) while the vCPU runs; the VMM touches that
 * context only while the vCPU is stopped.  Built freestanding with
 * -mcmodel=kernel and linked at HV_MON_IMAGE_VA (image.ld). */
#include "hv_mon.h"
#include "monitor_asm.h"
#include "shadow.h"
#include "x86.h"

#define MON ((struct hv_mon *)HV_ASM_MON_VA)

static uint8_t stack[HV_MON_STACK_BYTES] __attribute__((aligned(16)));
static uint64_t view[SHADOW_VIEW_BYTES / 8];
static struct shadow *sh;

uint64_t hv_mon_fault(struct hv_mon_frame *f);

/* image.ld's: the end of code and read-only data, and of everything */
extern char hv_mon_text_end[], hv_mon_end[];

__attribute__((section(".mon_head"), used)) static const struct hv_mon_head head = {
	.magic = HV_MON_MAGIC,
	.entry = (uint64_t)hv_mon_fault,
	.stack_top = (uint64_t)(stack + sizeof(stack)),
	.text_bytes = (uint64_t)hv_mon_text_end - HV_MON_IMAGE_VA,
	.image_bytes = (uint64_t)hv_mon_end - HV_MON_IMAGE_VA,
};

/* ---- guest memory: RAM at HV_MON_RAM_VA ------------------------------------------- */

static uint64_t *ram(gpa_t gpa)
{
	uint64_t size = MON->ram_size;

	if ((gpa & 7) || size < 8 || gpa > size - 8)
		return 0;
	return (uint64_t *)(HV_MON_RAM_VA + gpa);
}

static int ram_read(void *opaque, gpa_t gpa, uint64_t *val)
{
	uint64_t *p = ram(gpa);

	(void)opaque;
	if (!p)
		return SHADOW_MEM_OUTSIDE;
	*val = __atomic_load_n(p, __ATOMIC_SEQ_CST);
	return SHADOW_MEM_OK;
}

static int ram_write(void *opaque, gpa_t gpa, uint64_t val)
{
	uint64_t *p = ram(gpa);

	(void)opaque;
	if (!p)
		return SHADOW_MEM_OUTSIDE;
	__atomic_store_n(p, val, __ATOMIC_SEQ_CST);
	return SHADOW_MEM_OK;
}

static int ram_cmpxchg(void *opaque, gpa_t gpa, uint64_t *expected, uint64_t desired)
{
	uint64_t *p = ram(gpa);

	(void)opaque;
	if (!p)
		return SHADOW_MEM_OUTSIDE;
	return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_SEQ_CST,
					   __ATOMIC_SEQ_CST)
		       ? SHADOW_MEM_OK
		       : SHADOW_MEM_CHANGED;
}

/* ---- the real tables: every store the shadow MMU makes to its view ------------- */

static uint64_t *real(mpa_t mpa)
{
	return (uint64_t *)(MON->pool_va + (mpa - HV_ASM_POOL_MPA));
}

static void real_store(void *opaque, mpa_t entry, uint64_t value)
{
	(void)opaque;
	*(volatile uint64_t *)real(entry) = value;
}

static void real_zero(void *opaque, mpa_t page)
{
	uint64_t *p = real(page);

	(void)opaque;
	for (unsigned i = 0; i < X86_PT_ENTRIES; i++)
		((volatile uint64_t *)p)[i] = 0;
}

/* ---- events into the ring ------------------------------------------------------- */

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static uint64_t ring_used(void)
{
	return MON->ring_head - MON->ring_tail;
}

/* hv_mon_fault keeps HV_MON_EVENTS_PER_FAULT free before it starts, so
 * this never finds the ring full; if it ever did, the record would still
 * not be lost: the head would pass the tail and the VMM would refuse the
 * ring (a run error, never a silent gap). */
static void ring_push(void *opaque, const struct shadow_event *ev)
{
	struct hv_mon_event *r = (struct hv_mon_event *)MON->ring_va;
	uint64_t at = MON->ring_head % MON->ring_cap;

	(void)opaque;
	r[at].tsc = rdtsc();
	r[at].ev = *ev;
	MON->ring_head++;
}

/* ---- the fault --------------------------------------------------------------------- */

static bool attach(void)
{
	struct shadow_view v = {
		.mem = { ram_read, ram_write, ram_cmpxchg, 0, MON->ram_size },
		.pool = { .host = (void *)MON->copy_va, .store = real_store, .zero = real_zero },
	};

	if (sh)
		return true;
	if (MON->magic != HV_MON_MAGIC)
		return false;
	if (MON->flags & HV_MON_TRACE)
		v.hook = ring_push;
	sh = shadow_attach(view, (void *)MON->state_va, MON->state_bytes, &v);
	return sh != 0;
}

static uint64_t read_cr2(void)
{
	uint64_t v;

	__asm__ volatile("mov %%cr2, %0" : "=r"(v));
	return v;
}

static uint64_t leave(enum hv_mon_exit why)
{
	MON->exit_reason = why;
	MON->exits[why]++;
	MON->last_gva = MON->last_rip = MON->last_err = ~0ull;
	return 0;
}

/* Whether the guest maps the reserved slot (DESIGN.md §2): the VMM stops
 * the run then, so the monitor must not hide it behind a fill. */
static bool maps_reserved_slot(void)
{
	uint64_t e;

	if (ram_read(0, (shadow_vcr3(sh) & X86_CR3_ADDR_MASK) + MON->guest_pml4_slot * 8, &e) !=
	    SHADOW_MEM_OK)
		return true;
	return e & X86_PTE_P;
}

/* The CR3 to return to the guest on, or 0: leave the fault to the VMM
 * (the entry stub then exits through the #PF trap stub). */
uint64_t hv_mon_fault(struct hv_mon_frame *f)
{
	struct shadow_fault_result res;
	struct shadow_cpu cpu;
	uint64_t gva = read_cr2();
	enum shadow_status st;

	if (!attach())
		return leave(HV_MON_EXIT_NOT_READY);
	if (f->error_code & X86_PF_RSVD)
		return leave(HV_MON_EXIT_RSVD);
	if (gva == MON->last_gva && f->rip == MON->last_rip && f->error_code == MON->last_err)
		return leave(HV_MON_EXIT_REPEAT);
	if (shadow_pool_free_pages(sh) < SHADOW_LEVELS - 1)
		return leave(HV_MON_EXIT_POOL);
	if ((MON->flags & HV_MON_TRACE) && MON->ring_cap - ring_used() < HV_MON_EVENTS_PER_FAULT)
		return leave(HV_MON_EXIT_RING);
	if (maps_reserved_slot())
		return leave(HV_MON_EXIT_SLOT);
	/* SMAP's view of the access: the guest's RFLAGS.AC (control.c) */
	cpu = *shadow_cpu_state(sh);
	cpu.rflags_ac = f->rflags & X86_RFLAGS_AC;
	shadow_set_cpu(sh, &cpu);
	st = shadow_fault(sh, gva, (uint32_t)f->error_code, &res);
	if ((st == SHADOW_FILLED || st == SHADOW_RETRY) && !(MON->flags & HV_MON_CHECK)) {
		/* entries were only added or raised, or dropped (an unprotect's
		 * zaps): the return's MOV to CR3 flushes either way */
		shadow_take_tlb_flush(sh);
		MON->resolved++;
		MON->last_gva = gva;
		MON->last_rip = f->rip;
		MON->last_err = f->error_code;
		return shadow_root(sh);
	}
	MON->handoff = 1;
	MON->handoff_gva = gva;
	MON->handoff_err = f->error_code;
	MON->handoff_res = res;
	if (st == SHADOW_FILLED || st == SHADOW_RETRY) {
		/* the VMM checks, takes the TLB flush if one is due, and resumes */
		MON->resolved++;
		return leave(HV_MON_EXIT_CHECK);
	}
	return leave(st == SHADOW_ERROR ? HV_MON_EXIT_ERROR : HV_MON_EXIT_GUEST_FAULT);
}
