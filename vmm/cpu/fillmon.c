#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "fillmon.h"
#include "log.h"
#include "monitor.h"
#include "trace.h"
#include "vm.h"
#include "x86.h"

void fillmon_init(struct vm *vm)
{
	struct hv_mon *mon = monitor_mon(&vm->mon);
	int khz;

	mon->flags =
		(vm->trace ? HV_MON_TRACE : 0) | (vm->opts->check_invariants ? HV_MON_CHECK : 0);
	/* the guest TSC and the trace's clock at one moment, and the rate
	 * between them (KVM's TSC frequency for this vCPU) */
	khz = ioctl(vm->vcpu.fd, KVM_GET_TSC_KHZ, 0);
	vm->tsc_khz = khz > 0 ? (uint64_t)khz : 0;
	if (vcpu_msr(&vm->vcpu, X86_MSR_TSC, &vm->tsc0, false) != 0)
		vm->tsc_khz = 0;
	vm->ns0 = trace_ns(vm->trace);
}

/* The trace time of a guest TSC stamp; without a rate, the time now. */
static uint64_t tsc_ns(const struct vm *vm, uint64_t tsc)
{
	if (!vm->tsc_khz || tsc < vm->tsc0)
		return trace_ns(vm->trace);
	return vm->ns0 + (uint64_t)((unsigned __int128)(tsc - vm->tsc0) * 1000000u / vm->tsc_khz);
}

void fillmon_drain(void *opaque)
{
	struct vm *vm = opaque;
	struct hv_mon *mon = monitor_mon(&vm->mon);
	const struct hv_mon_event *ring = monitor_page(&vm->mon, vm->mon.pg_ring);
	uint64_t head = mon->ring_head, tail = mon->ring_tail;

	/* what the monitor emulated: the guest's virtual CR3, the count */
	if (mon->cr3_written) {
		vm->virt.cr3 = mon->guest_cr3;
		mon->cr3_written = 0;
	}
	vm->tstats.emulated += mon->emulated;
	mon->emulated = 0;
	if (head == tail)
		return;
	if (head - tail > mon->ring_cap) { /* also a head behind the tail */
		if (!vm->ring_failed)
			pr_err("monitor: the event ring lost records (head %llu, tail %llu, %u slots)",
			       (unsigned long long)head, (unsigned long long)tail, mon->ring_cap);
		vm->ring_failed = true;
		mon->ring_tail = head;
		return;
	}
	for (; tail != head; tail++) {
		const struct hv_mon_event *r = &ring[tail % mon->ring_cap];

		if (r->type == HV_MON_REC_EMULATE)
			trace_emulate_at(vm->trace, r->rip, r->vector,
					 strnlen(r->mnemonic, HV_MON_MNEMONIC_MAX) <
							 HV_MON_MNEMONIC_MAX
						 ? r->mnemonic
						 : "?",
					 r->bytes, r->len, "done", tsc_ns(vm, r->tsc));
		else
			trace_shadow_event_at(vm->trace, &r->ev, tsc_ns(vm, r->tsc));
	}
	mon->ring_tail = tail;
}

enum fillmon_take fillmon_take(struct vm *vm, gva_t gva, uint64_t err, enum shadow_status *st,
			       struct shadow_fault_result *res)
{
	struct hv_mon *mon = monitor_mon(&vm->mon);

	if (!mon->handoff)
		return FILLMON_NONE;
	mon->handoff = 0;
	if (mon->handoff_gva != gva || mon->handoff_err != err) {
		pr_err("monitor: handed over the fault at 0x%llx err 0x%llx, trapped at 0x%llx err 0x%llx",
		       (unsigned long long)mon->handoff_gva, (unsigned long long)mon->handoff_err,
		       (unsigned long long)gva, (unsigned long long)err);
		return FILLMON_BAD;
	}
	*res = mon->handoff_res;
	*st = res->status;
	return FILLMON_TAKEN;
}
