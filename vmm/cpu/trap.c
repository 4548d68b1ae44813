#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "control.h"
#include "emulate.h"
#include "fillmon.h"
#include "gva.h"
#include "log.h"
#include "reflect.h"
#include "segment.h"
#include "shadow.h"
#include "status.h"
#include "trace.h"
#include "trap.h"
#include "vcpu.h"
#include "vm.h"
#include "x86.h"

#define REPEAT_LIMIT 16 /* identical hidden faults in a row: the fill is broken */
/* Hidden faults in a row at one RIP that each emptied the pool: the
 * instruction needs more shadow pages than the pool holds, and every fill
 * evicts the translation another of its accesses needs. */
#define EVICT_LOOP_LIMIT 64

/* ---- the trap path ------------------------------------------------------------------ */

static bool has_error_code(unsigned v)
{
	return v == X86_EXC_DF || (v >= X86_EXC_TS && v <= X86_EXC_PF) || v == X86_EXC_AC ||
	       v == X86_EXC_CP;
}

/* A segment of the interrupted context: what the real GDT holds at its
 * selector, but while the guest runs on segments it loaded before an lgdt
 * replaced them (vm->pinned), the ones it resumed with when the selector
 * is still theirs.  (A native reload of that same selector before the next
 * trap would be missed: kernels reload CS with a far return, which traps.) */
static bool restore_seg(struct vm *vm, uint16_t sel, unsigned cpl, bool ss)
{
	const struct kvm_segment *pin = ss ? &vm->resumed_ss : &vm->resumed_cs;

	if (vm->pinned && sel == pin->selector) {
		*(ss ? &vm->sregs.ss : &vm->sregs.cs) = *pin;
		return true;
	}
	return ss ? seg_load_ss(vm, sel, cpl) : seg_load_cs(vm, sel, cpl);
}

/* Put the interrupted guest context of the frame back into regs/sregs. */
static bool restore_frame(struct vm *vm, const struct hv_trap_frame *f)
{
	unsigned cpl = f->cs & 3;

	vm->regs.rip = f->rip;
	vm->regs.rsp = f->rsp;
	vm->regs.rflags = f->rflags;
	return cpl != 0 && restore_seg(vm, (uint16_t)f->cs, cpl, false) &&
	       restore_seg(vm, (uint16_t)f->ss, cpl, true);
}

/* True (with the diagnosis printed) once EVICT_LOOP_LIMIT hidden faults in a
 * row at the same RIP, on pages it faulted on just before, each evicted: a
 * livelock that a larger pool would end.  (A loop touching new pages from
 * one instruction evicts at every fault too, but on pages never seen.) */
static bool evict_loop(struct vm *vm, gva_t gva)
{
	struct trap_evict_history *ev = &vm->history.evict;
	struct shadow_stats st;
	bool seen = false;

	gva &= X86_PAGE_MASK;
	for (unsigned i = 0; i < 4; i++)
		seen |= ev->page[i] == gva;
	shadow_get_stats(vm->shadow, &st);
	if (st.evictions != ev->evictions && vm->regs.rip == ev->rip && seen)
		ev->n++;
	else
		ev->n = 0;
	ev->rip = vm->regs.rip;
	ev->evictions = st.evictions;
	ev->page[ev->next++ % 4] = gva;
	if (ev->n < EVICT_LOOP_LIMIT)
		return false;
	pr_err("shadow: the instruction at rip=0x%llx needs more shadow pages than the pool's %u: each of its faults evicts what another needs (raise --shadow-pool)",
	       (unsigned long long)vm->regs.rip, vm->opts->pool_pages);
	return true;
}

/* A count that grows by exactly one from one trap to the next only when
 * nothing happened in between: no other trap, and nothing the fill monitor
 * resolved or emulated without one. */
static uint64_t activity(const struct vm *vm)
{
	return vm->tstats.traps + vm->tstats.emulated + monitor_mon(&vm->mon)->resolved;
}

/* True (with the diagnosis printed) when the same hidden fault comes back
 * REPEAT_LIMIT times in a row: the fill did not take.  Only back-to-back
 * traps count: a guest that rewrites its entry and flushes (trapping, or
 * through the fill monitor) in between may fault at the same place again. */
static bool fill_stuck(struct vm *vm, gva_t gva, uint64_t err)
{
	struct trap_fault_history *last = &vm->history.repeat;
	uint64_t now = activity(vm);

	if (last->trap + 1 == now && last->gva == gva && last->rip == vm->regs.rip &&
	    last->err == err) {
		last->trap = now;
		if (++last->n < REPEAT_LIMIT)
			return false;
		pr_err("shadow: fill did not resolve the fault gva=0x%llx err=0x%llx rip=0x%llx",
		       (unsigned long long)gva, (unsigned long long)err,
		       (unsigned long long)vm->regs.rip);
		return true;
	}
	*last = (struct trap_fault_history){
		.gva = gva, .rip = vm->regs.rip, .err = err, .trap = now
	};
	return false;
}

static int hidden_pf(struct vm *vm, uint64_t err)
{
	struct shadow_fault_result res;
	enum shadow_status st;
	gva_t gva = vm->sregs.cr2;
	struct x86_event ev;
	int rc = VMM_E_INTERNAL;

	if (err & X86_PF_RSVD) {
		/* a marked device leaf the APIC fast path left: plain from now
		 * on, KVM serves the access and the hardware checks its rights */
		if (shadow_mmio_unmark(vm->shadow, gva))
			return VM_CONTINUE;
		pr_err("shadow: reserved-bit fault on a shadow entry gva=0x%llx err=0x%llx",
		       (unsigned long long)gva, (unsigned long long)err);
		return VMM_E_INTERNAL;
	}
	if (fill_stuck(vm, gva, err))
		return VMM_E_INTERNAL;
	/* a fault the fill monitor ran already is not run twice */
	switch (fillmon_take(vm, gva, err, &st, &res)) {
	case FILLMON_NONE:
		st = shadow_fault(vm->shadow, gva, (uint32_t)err, &res);
		if (evict_loop(vm, gva))
			return VMM_E_INTERNAL;
		break;
	case FILLMON_TAKEN: break;
	case FILLMON_BAD: return VMM_E_INTERNAL;
	}
	switch (gva_outcome(vm, st, &res, gva, &ev, &rc)) {
	case GVA_OK: return VM_CONTINUE;
	case GVA_FAULT: return reflect_event(vm, ev);
	case GVA_FATAL: break;
	}
	return rc;
}

static int dispatch_vector(struct vm *vm, unsigned vector, uint64_t err)
{
	switch (vector) {
	case X86_EXC_PF: return hidden_pf(vm, err);
	case X86_EXC_GP: return emulate_fault(vm, X86_EXC_GP, (uint32_t)err);
	case X86_EXC_UD: return emulate_fault(vm, X86_EXC_UD, 0);
	default:
		if (vector >= X86_EXC_COUNT)
			vm->tstats.interrupts++;
		return reflect_event(vm, (struct x86_event){ .vector = vector,
							     .has_err = has_error_code(vector),
							     .err = (uint32_t)err });
	}
}

/* SYSCALL (SDM 2B) as the guest's virtual STAR/LSTAR/SFMASK define it. */
static int syscall_entry(struct vm *vm)
{
	uint16_t cs = (uint16_t)(vm->virt.star >> 32) & 0xfffc;
	uint64_t fl = vm->regs.r11 & ~vm->virt.sfmask;

	vm->tstats.syscalls++;
	vm->regs.rip = vm->virt.lstar;
	vm->regs.rflags = (fl & ~(X86_RFLAGS_RF | X86_RFLAGS_VM | X86_RFLAGS_IOPL_MASK)) |
			  X86_RFLAGS_FIXED | (1ull << X86_RFLAGS_IOPL_SHIFT);
	seg_flat(&vm->sregs.cs, (uint16_t)(cs | 1), true, 1);
	seg_flat(&vm->sregs.ss, (uint16_t)((cs + 8) | 1), false, 1);
	return VM_CONTINUE;
}

/* DESIGN.md §2: the guest may never map its own reserved PML4 slot; the
 * shadow would silently show the monitor there instead. */
static int check_reserved_slot(struct vm *vm)
{
	gpa_t at;
	const uint64_t *e;

	/* only a 4-level guest has a PML4: a 32-bit or PAE guest's addresses
	 * never reach the slot, which lies above 4 GiB */
	if (shadow_paging_mode(vm->shadow) != SHADOW_PAGING_LONG4)
		return VM_CONTINUE;
	at = (shadow_vcr3(vm->shadow) & X86_CR3_ADDR_MASK) + SHADOWVM_ABI_RESERVED_PML4_INDEX * 8;
	e = mem_gpa(&vm->mem, at, 8);
	if (e && (*e & X86_PTE_P)) {
		pr_err("guest broke the ABI: PML4 entry %u (the hypervisor's reserved slot) is present: 0x%llx at GPA 0x%llx",
		       SHADOWVM_ABI_RESERVED_PML4_INDEX, (unsigned long long)*e,
		       (unsigned long long)at);
		return VMM_E_CONTRACT;
	}
	return VM_CONTINUE;
}

/* Enter the monitor's applier (monitor_apply.S) at CPL0 on the monitor's
 * root, every register but RIP/RSP/RFLAGS/CS/SS the guest's own: it makes
 * the queued shadow stores, then loads the guest's shadow root and returns
 * to the guest through the frame left here, or stops (enum hv_apply_end). */
static int enter_applier(struct vm *vm, enum hv_apply_end end)
{
	const uint64_t frame[5] = { vm->regs.rip, vm->sregs.cs.selector, vm->regs.rflags,
				    vm->regs.rsp, vm->sregs.ss.selector };
	struct kvm_regs r = vm->regs;
	struct kvm_sregs sr = vm->sregs;

	if (monitor_queue_len(&vm->mon) > vm->tstats.stores_peak)
		vm->tstats.stores_peak = monitor_queue_len(&vm->mon);
	monitor_apply_setup(&vm->mon, frame, vm->sregs.cr3, end);
	r.rip = HV_APPLY_VA;
	r.rsp = HV_APPLY_FRAME_VA;
	r.rflags = X86_RFLAGS_FIXED;
	seg_from_desc(&sr.cs, HV_SEL_CS, monitor_descriptor(&vm->mon, HV_SEL_CS));
	seg_from_desc(&sr.ss, HV_SEL_SS, monitor_descriptor(&vm->mon, HV_SEL_SS));
	sr.cr3 = HV_MPA(HV_PG_MROOT);
	if (ioctl(vm->vcpu.fd, KVM_SET_REGS, &r) < 0 ||
	    ioctl(vm->vcpu.fd, KVM_SET_SREGS, &sr) < 0) {
		pr_err("entering the monitor's applier: %s", strerror(errno));
		return VMM_E_INTERNAL;
	}
	vm->tstats.applies++;
	return VM_CONTINUE;
}

/* Whether the guest's CS or SS differs from what the real GDT now holds at
 * its selector: a guest that ran lgdt keeps the descriptors it loaded
 * until it loads the segments again (SDM 3A §3.4.3), which an IRETQ
 * through the new table would not. */
static bool segments_stale(const struct vm *vm)
{
	const struct kvm_segment *seg[2] = { &vm->sregs.cs, &vm->sregs.ss };

	for (int i = 0; i < 2; i++) {
		struct kvm_segment t;

		if (seg[i]->unusable)
			continue;
		seg_from_desc(&t, seg[i]->selector, monitor_descriptor(&vm->mon, seg[i]->selector));
		if (t.base != seg[i]->base || t.limit != seg[i]->limit ||
		    (t.type | 1) != (seg[i]->type | 1) || t.s != seg[i]->s ||
		    t.dpl != seg[i]->dpl || t.present != seg[i]->present || t.l != seg[i]->l ||
		    t.db != seg[i]->db || t.g != seg[i]->g)
			return true;
	}
	return false;
}

/* Run the applier to its stop (HV_APPLY_EXIT or HV_APPLY_EXIT_ON_ROOT) now,
 * the queue then empty: false if it did not get there. */
static bool apply_now(struct vm *vm, enum hv_apply_end end)
{
	return enter_applier(vm, end) == VM_CONTINUE &&
	       vcpu_run_to_port(&vm->vcpu, HV_PORT_APPLIED) == 0 && !monitor_queue_len(&vm->mon);
}

void trap_drain(struct vm *vm)
{
	if (vm->queue_failed || !apply_now(vm, HV_APPLY_EXIT)) {
		vm->queue_failed = true;
		return;
	}
	vm->tstats.drains++;
}

/* DESIGN.md §3: every store to a shadow table is the vCPU's, made by the
 * monitor, and every invalidation is its MOV to CR3.  A resume with nothing
 * queued, no flush asked for and the same root sets the registers alone. */
int trap_resume(struct vm *vm)
{
	bool flush = shadow_take_tlb_flush(vm->shadow);

	/* what the fill monitor's mov from CR2 reads */
	monitor_mon(&vm->mon)->guest_cr2 = vm->virt.cr2;

	if (vm->queue_failed) {
		pr_err("monitor: the store queue could not be drained");
		return VMM_E_INTERNAL;
	}
	if (vm->ring_failed)
		return VMM_E_INTERNAL;
	vm->pinned = segments_stale(vm);
	vm->resumed_cs = vm->sregs.cs;
	vm->resumed_ss = vm->sregs.ss;
	if (flush || monitor_queue_len(&vm->mon) || vm->sregs.cr3 != vm->entry_cr3) {
		if (!vm->pinned && !vm->halt)
			return enter_applier(vm, HV_APPLY_RETURN);
		/* the applier's iretq would reload CS or SS from a GDT the
		 * guest has replaced since it loaded them, or a halt would
		 * catch the vCPU inside the applier with IF clear: it stops
		 * after the stores and the flush, and the registers are set
		 * from here */
		if (!apply_now(vm, HV_APPLY_EXIT_ON_ROOT)) {
			pr_err("monitor: the store queue could not be applied");
			return VMM_E_INTERNAL;
		}
	}
	if (ioctl(vm->vcpu.fd, KVM_SET_REGS, &vm->regs) < 0 ||
	    ioctl(vm->vcpu.fd, KVM_SET_SREGS, &vm->sregs) < 0) {
		pr_err("resuming the guest: %s", strerror(errno));
		return VMM_E_INTERNAL;
	}
	if (vm->halt) {
		struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_HALTED };

		vm->halt = false;
		vm->tstats.halts++;
		if (ioctl(vm->vcpu.fd, KVM_SET_MP_STATE, &mp) < 0) {
			pr_err("halting the vCPU (KVM_SET_MP_STATE): %s", strerror(errno));
			return VMM_E_INTERNAL;
		}
	}
	return VM_CONTINUE;
}

/* Write the state back; flush the real TLB when shadows were dropped.  A
 * change of CR3 through KVM_SET_SREGS resets KVM's MMU context, whose reload
 * flushes the vCPU's TLB: setting a different CR3 first forces that even when
 * the shadow root stays the same page. */
static int commit(struct vm *vm)
{
	int rc;

	if ((rc = check_reserved_slot(vm)) != VM_CONTINUE)
		return rc;
	if (vm->opts->check_invariants) {
		char why[192];
		if (!shadow_check(vm->shadow, why, sizeof(why))) {
			pr_err("invariant broken after trap at rip=0x%llx: %s",
			       (unsigned long long)vm->regs.rip, why);
			return VMM_E_INTERNAL;
		}
	}
	control_sync(vm);
	return trap_resume(vm);
}

/* --check-invariants: the monitor applied every store the shadow MMU made
 * (the pool as the vCPU sees it equals the shadow MMU's own copy), so no
 * store reached a shadow table any other way. */
static int check_applied(struct vm *vm)
{
	const uint8_t *real = (const uint8_t *)monitor_pool(&vm->mon);
	const uint8_t *copy = (const uint8_t *)monitor_copy(&vm->mon);

	if (monitor_queue_len(&vm->mon)) {
		pr_err("monitor: %u queued stores were not applied", monitor_queue_len(&vm->mon));
		return VMM_E_INTERNAL;
	}
	for (uint32_t pg = 0; pg < vm->mon.pool_pages; pg++) {
		size_t off = (size_t)pg * 4096;
		const uint64_t *r = (const uint64_t *)(real + off);
		const uint64_t *c = (const uint64_t *)(copy + off);

		if (!memcmp(r, c, 4096))
			continue;
		for (unsigned i = 0; i < X86_PT_ENTRIES; i++)
			if (r[i] != c[i]) {
				pr_err("invariant broken: shadow entry at 0x%llx is 0x%llx, the shadow MMU made it 0x%llx (a store the monitor did not make)",
				       (unsigned long long)HV_MPA(HV_PG_POOL + pg) + i * 8,
				       (unsigned long long)r[i], (unsigned long long)c[i]);
				break;
			}
		return VMM_E_INTERNAL;
	}
	return VM_CONTINUE;
}

static int monitor_entry(struct vm *vm, uint16_t port)
{
	const struct hv_trap_frame *f = monitor_frame(&vm->mon);

	if (port == HV_PORT_SYSCALL) {
		/* KVM reports port I/O with RIP still at the `out`. */
		if (vm->regs.rip != HV_SYSCALL_STUB)
			return VM_CONTINUE;
		return syscall_entry(vm);
	}
	if (vm->regs.rsp != HV_TRAP_FRAME_VA || f->vector > 255) {
		pr_err("monitor: bad trap frame rsp=0x%llx rip=0x%llx",
		       (unsigned long long)vm->regs.rsp, (unsigned long long)vm->regs.rip);
		return VMM_E_INTERNAL;
	}
	if ((f->cs & 3) == 0 || !restore_frame(vm, f)) {
		pr_err("monitor: fault in the monitor itself: vector %llu err 0x%llx rip=0x%llx cs=0x%llx",
		       (unsigned long long)f->vector, (unsigned long long)f->error_code,
		       (unsigned long long)f->rip, (unsigned long long)f->cs);
		return VMM_E_INTERNAL;
	}
	return dispatch_vector(vm, (unsigned)f->vector, f->error_code);
}

int trap_handle(void *opaque, uint16_t port)
{
	struct vm *vm = opaque;
	int rc;

	if (ioctl(vm->vcpu.fd, KVM_GET_REGS, &vm->regs) < 0 ||
	    ioctl(vm->vcpu.fd, KVM_GET_SREGS, &vm->sregs) < 0) {
		pr_err("reading the trap state: %s", strerror(errno));
		return VMM_E_INTERNAL;
	}
	/* Only the monitor runs at CPL0; the guest kernel may write these
	 * ports too (IOPL 1), and then it is just an unclaimed port. */
	if (vm->sregs.cs.selector != HV_SEL_CS)
		return VM_CONTINUE;
	vm->tstats.traps++;
	vm->entry_cr3 = vm->sregs.cr3;
	if (vm->opts->check_invariants && (rc = check_applied(vm)) != VM_CONTINUE)
		return rc;
	control_refresh_ac(vm);
	rc = monitor_entry(vm, port);
	if (rc != VM_CONTINUE)
		return rc;
	return commit(vm);
}

/* Whether a write at `la` (real CPL1 or CPL3) goes through the shadow the
 * vCPU runs on without a fault: the real 4-level walk over the pool, as the
 * monitor applied it (nothing is queued outside a trap). */
static bool shadow_writable(const struct vm *vm, gva_t la, bool user)
{
	const uint64_t *pool = monitor_copy(&vm->mon);
	mpa_t table = vm->sregs.cr3 & X86_CR3_ADDR_MASK;
	uint64_t need = X86_PTE_P | X86_PTE_W | (user ? X86_PTE_U : 0);

	for (int level = 4; level >= 1; level--) {
		uint64_t off = table - HV_MPA(HV_PG_POOL), e;

		if (table < HV_MPA(HV_PG_POOL) || off >= (uint64_t)vm->mon.pool_pages * 4096)
			return true; /* not a table of ours: nothing to predict */
		e = pool[off / 8 + ((la >> (12 + 9 * (level - 1))) & 511)];
		if ((e & need) != need)
			return false;
		if (level == 1 || (level <= 3 && (e & X86_PTE_PS)))
			return true;
		table = e & X86_PTE_ADDR_MASK;
	}
	return true;
}

/* Whether the instruction at RIP is INS (opcode 6C/6D after prefixes, SDM
 * 2A), and its address size in bytes.  Read through the guest's own
 * translation, with no side effect on the shadow: nothing may be queued
 * for the monitor outside a trap. */
static bool is_ins(const struct vm *vm, unsigned *asize)
{
	bool l = vm->sregs.cs.l;
	gva_t rip = l ? vm->regs.rip : (uint32_t)(vm->sregs.cs.base + vm->regs.rip);
	unsigned a = l ? 8 : vm->sregs.cs.db ? 4 : 2;
	gpa_t gpa;
	const uint8_t *b;

	if (!shadow_translate(vm->shadow, rip, SHADOW_ACC_FETCH, &gpa) ||
	    (rip & X86_PAGE_MASK) != ((rip + 14) & X86_PAGE_MASK) ||
	    !(b = mem_gpa(&vm->mem, gpa, 15)))
		return false;
	for (int i = 0; i < 15; i++) {
		switch (b[i]) {
		case 0x67: a = l ? 4 : a == 4 ? 2 : 4; continue;
		case 0x66:
		case 0xf2:
		case 0xf3:
		case 0x26:
		case 0x2e:
		case 0x36:
		case 0x3e:
		case 0x64:
		case 0x65: continue;
		default:
			if (l && (b[i] & 0xf0) == 0x40)
				continue; /* REX */
			*asize = a;
			return b[i] == 0x6c || b[i] == 0x6d;
		}
	}
	return false;
}

void trap_in_done(void *opaque, uint16_t port, unsigned size, uint32_t count, const uint8_t *data)
{
	struct vm *vm = opaque;
	unsigned asize;
	uint64_t di, bytes = (uint64_t)size * count;
	gva_t lo, hi;

	vm->in_replay.armed = false;
	if (bytes > sizeof(vm->in_replay.data) || ioctl(vm->vcpu.fd, KVM_GET_REGS, &vm->regs) < 0 ||
	    ioctl(vm->vcpu.fd, KVM_GET_SREGS, &vm->sregs) < 0 ||
	    vm->sregs.cs.selector == HV_SEL_CS || !is_ins(vm, &asize))
		return;
	di = asize == 8   ? vm->regs.rdi
	     : asize == 4 ? (uint32_t)vm->regs.rdi
			  : (uint16_t)vm->regs.rdi;
	/* ES:rDI, counting down with DF (SDM 2A INS); outside 64-bit mode
	 * with ES's base, wrapping at 4 GiB */
	lo = vm->regs.rflags & X86_RFLAGS_DF ? di - (bytes - size) : di;
	if (!vm->sregs.cs.l)
		lo = (uint32_t)(lo + vm->sregs.es.base);
	hi = lo + bytes - 1;
	if (shadow_writable(vm, lo, (vm->sregs.cs.selector & 3) == 3) &&
	    shadow_writable(vm, hi, (vm->sregs.cs.selector & 3) == 3))
		return;
	vm->in_replay.armed = true;
	vm->in_replay.port = port;
	vm->in_replay.size = size;
	vm->in_replay.count = count;
	memcpy(vm->in_replay.data, data, bytes);
}

bool trap_in_replay(void *opaque, uint16_t port, unsigned size, uint32_t count, uint8_t *data)
{
	struct vm *vm = opaque;

	if (!vm->in_replay.armed)
		return false;
	vm->in_replay.armed = false;
	if (port != vm->in_replay.port || size != vm->in_replay.size ||
	    count != vm->in_replay.count)
		return false;
	memcpy(data, vm->in_replay.data, (size_t)size * count);
	vm->tstats.in_replays++;
	return true;
}
