#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "control.h"
#include "log.h"
#include "reflect.h"
#include "segment.h"
#include "shadow.h"
#include "status.h"
#include "trace.h"
#include "vm.h"
#include "x86.h"

static struct x86_event fault_ev(unsigned vector, uint32_t err)
{
	return (struct x86_event){ .vector = vector, .has_err = true, .err = err };
}

/* SDM 3A table 6-5: which pairs of faults make a double fault. */
static bool contributory(unsigned v)
{
	return v == X86_EXC_DE || (v >= X86_EXC_TS && v <= X86_EXC_GP);
}

static bool double_fault(unsigned first, unsigned second)
{
	if (first == X86_EXC_PF)
		return contributory(second) || second == X86_EXC_PF;
	return contributory(first) && contributory(second);
}

/* A frame listed in push order (the top down), n slots of w bytes,
 * reversed into memory order. */
static void memory_order(void *frame, int n, size_t w)
{
	uint8_t *f = frame, t[8];

	for (int i = 0; i < n / 2; i++) {
		memcpy(t, f + i * w, w);
		memcpy(f + i * w, f + (n - 1 - i) * w, w);
		memcpy(f + (n - 1 - i) * w, t, w);
	}
}

/* Where the handler's frame goes: IST, RSP0 on a privilege change, or the
 * current stack (SDM 3A §6.14.2, §6.14.5). */
static enum gva_status handler_stack(struct vm *vm, uint64_t gate, unsigned new_vcpl, uint64_t *rsp,
				     struct x86_event *f, int *status)
{
	unsigned ist = x86_gate_ist(gate);
	gva_t slot;

	if (ist)
		slot = vm->virt.tr_base + offsetof(struct x86_tss64, ist[ist - 1]);
	else if (new_vcpl < seg_vcpl(vm))
		slot = vm->virt.tr_base + offsetof(struct x86_tss64, rsp[0]);
	else {
		*rsp = vm->regs.rsp;
		return GVA_OK;
	}
	return gva_read(vm, slot, rsp, 8, 0, f, status);
}

/* One delivery attempt: GVA_OK, GVA_FAULT with the fault in *f, GVA_FATAL. */
static enum gva_status deliver(struct vm *vm, const struct x86_event *ev, struct x86_event *f,
			       int *status)
{
	uint32_t idt_err = ev->vector * 8 + 2 + (ev->soft ? 0 : 1);
	unsigned vcpl = seg_vcpl(vm), new_vcpl, type;
	uint64_t gate[2], frame[6], rsp, desc, target;
	uint16_t sel;
	enum gva_status st;
	int n = 0;

	if (ev->vector * 16 + 15 > vm->virt.idt_limit)
		return *f = fault_ev(X86_EXC_GP, idt_err), GVA_FAULT;
	if ((st = gva_read(vm, vm->virt.idt_base + ev->vector * 16, gate, 16, 0, f, status)))
		return st;
	type = x86_desc_type(gate[0]);
	if (type != X86_GATE_TYPE_INTR && type != X86_GATE_TYPE_TRAP)
		return *f = fault_ev(X86_EXC_GP, idt_err), GVA_FAULT;
	if (ev->soft && x86_desc_dpl(gate[0]) < vcpl)
		return *f = fault_ev(X86_EXC_GP, idt_err), GVA_FAULT;
	if (!(gate[0] & X86_DESC_P))
		return *f = fault_ev(X86_EXC_NP, idt_err), GVA_FAULT;
	sel = x86_gate_sel(gate[0]);
	desc = monitor_descriptor(&vm->mon, sel);
	/* Real DPL 1 is the guest kernel's 0. */
	new_vcpl = x86_desc_dpl(desc) == 3 ? 3 : 0;
	if (new_vcpl > vcpl)
		return *f = fault_ev(X86_EXC_GP, (sel & ~3u) + !ev->soft), GVA_FAULT;
	/* SDM 3A §6.14.1: in IA-32e mode a gate's target is 64-bit code */
	if (!x86_desc_bit(desc, X86_DESC_L_BIT) || x86_desc_bit(desc, X86_DESC_DB_BIT))
		return *f = fault_ev(X86_EXC_GP, (sel & ~3u) + !ev->soft), GVA_FAULT;
	if ((st = handler_stack(vm, gate[0], new_vcpl, &rsp, f, status)))
		return st;
	/* SDM 2A INT n (IA-32e mode): a non-canonical target is #GP(EXT). */
	target = x86_gate_offset(gate[0], gate[1]);
	if (!x86_is_canonical48(target))
		return *f = fault_ev(X86_EXC_GP, !ev->soft), GVA_FAULT;
	rsp &= ~0xfull;
	frame[n++] = vm->sregs.ss.selector;
	frame[n++] = vm->regs.rsp;
	frame[n++] = vm->regs.rflags;
	frame[n++] = vm->sregs.cs.selector;
	frame[n++] = vm->regs.rip + (ev->soft ? ev->insn_len : 0);
	if (ev->has_err)
		frame[n++] = ev->err;
	memory_order(frame, n, sizeof(frame[0]));
	rsp -= (uint64_t)n * 8;
	if ((st = gva_write(vm, rsp, frame, (size_t)n * 8, new_vcpl == 3 ? SHADOW_ACC_USER : 0, f,
			    status)))
		return st;
	if (!seg_load_cs(vm, sel, seg_real_cpl(new_vcpl)))
		return *f = fault_ev(seg_load_fault(vm, sel, seg_real_cpl(new_vcpl), false),
				     (sel & ~3u) + !ev->soft),
		       GVA_FAULT;
	if (new_vcpl != vcpl)
		seg_load_ss(vm, 0, seg_real_cpl(new_vcpl));
	vm->regs.rsp = rsp;
	vm->regs.rip = target;
	vm->regs.rflags &= ~(X86_RFLAGS_TF | X86_RFLAGS_NT | X86_RFLAGS_RF | X86_RFLAGS_VM);
	if (type == X86_GATE_TYPE_INTR)
		vm->regs.rflags &= ~X86_RFLAGS_IF;
	return GVA_OK;
}

/* Delivery through a legacy-mode IDT (EFER.LMA = 0): 8-byte 32-bit
 * interrupt and trap gates, the stack switch from the 32-bit TSS's
 * SS0:ESP0, read from guest memory at every delivery, and a frame of
 * 4-byte slots (SDM 3A §6.11, §6.12.1, figure 6-4).  Task gates and 16-bit
 * gates are refused as #GP. */
static enum gva_status deliver32(struct vm *vm, const struct x86_event *ev, struct x86_event *f,
				 int *status)
{
	uint32_t idt_err = ev->vector * 8 + 2 + (ev->soft ? 0 : 1);
	unsigned vcpl = seg_vcpl(vm), new_vcpl, type, cpl;
	uint32_t frame[6], esp, target, tss[3];
	uint64_t gate, desc;
	uint16_t sel, ss0 = 0;
	enum gva_status st;
	int n = 0;

	if (ev->vector * 8 + 7 > vm->virt.idt_limit)
		return *f = fault_ev(X86_EXC_GP, idt_err), GVA_FAULT;
	if ((st = gva_read(vm, (uint32_t)(vm->virt.idt_base + ev->vector * 8), &gate, 8, 0, f,
			   status)))
		return st;
	type = x86_desc_type(gate);
	if ((gate & X86_DESC_S) || (type != X86_GATE_TYPE_INTR && type != X86_GATE_TYPE_TRAP))
		return *f = fault_ev(X86_EXC_GP, idt_err), GVA_FAULT;
	if (ev->soft && x86_desc_dpl(gate) < vcpl)
		return *f = fault_ev(X86_EXC_GP, idt_err), GVA_FAULT;
	if (!(gate & X86_DESC_P))
		return *f = fault_ev(X86_EXC_NP, idt_err), GVA_FAULT;
	sel = x86_gate_sel(gate);
	desc = monitor_descriptor(&vm->mon, sel);
	new_vcpl = x86_desc_dpl(desc) == 3 ? 3 : 0;
	if (new_vcpl > vcpl)
		return *f = fault_ev(X86_EXC_GP, (sel & ~3u) + !ev->soft), GVA_FAULT;
	target = (uint32_t)(gate & 0xffff) | (uint32_t)(gate >> 32 & 0xffff0000u);
	cpl = seg_real_cpl(new_vcpl);
	esp = (uint32_t)vm->regs.rsp;
	if (new_vcpl < vcpl) {
		/* ESP0 at offset 4, SS0 at 8 (SDM 3A figure 8-2) */
		if ((st = gva_read(vm, (uint32_t)(vm->virt.tr_base + 4), tss, 8, 0, f, status)))
			return st;
		esp = tss[0];
		ss0 = (uint16_t)tss[1];
		frame[n++] = vm->sregs.ss.selector;
		frame[n++] = (uint32_t)vm->regs.rsp;
	}
	frame[n++] = (uint32_t)vm->regs.rflags;
	frame[n++] = vm->sregs.cs.selector;
	frame[n++] = (uint32_t)vm->regs.rip + (ev->soft ? ev->insn_len : 0);
	if (ev->has_err)
		frame[n++] = ev->err;
	memory_order(frame, n, sizeof(frame[0]));
	esp -= (uint32_t)n * 4;
	{
		struct kvm_segment old_ss = vm->sregs.ss;

		if (new_vcpl < vcpl && !seg_load_ss(vm, ss0, cpl))
			return *f = fault_ev(X86_EXC_TS, ss0 & ~3u), GVA_FAULT;
		st = gva_write(vm, (uint32_t)(vm->sregs.ss.base + esp), frame, (size_t)n * 4,
			       new_vcpl == 3 ? SHADOW_ACC_USER : 0, f, status);
		if (st == GVA_OK && !seg_load_cs(vm, sel, cpl)) {
			*f = fault_ev(seg_load_fault(vm, sel, cpl, false), (sel & ~3u) + !ev->soft);
			st = GVA_FAULT;
		}
		if (st != GVA_OK) {
			vm->sregs.ss = old_ss;
			return st;
		}
	}
	vm->regs.rsp = esp;
	vm->regs.rip = target;
	vm->regs.rflags &= ~(X86_RFLAGS_TF | X86_RFLAGS_NT | X86_RFLAGS_RF | X86_RFLAGS_VM);
	if (type == X86_GATE_TYPE_INTR)
		vm->regs.rflags &= ~X86_RFLAGS_IF;
	return GVA_OK;
}

static int triple_fault(struct vm *vm, const struct x86_event *ev)
{
	pr_err("guest crash: triple fault (fault vector %u while delivering #DF) at rip=0x%llx cr2=0x%llx",
	       ev->vector, (unsigned long long)vm->regs.rip, (unsigned long long)vm->virt.cr2);
	return VMM_E_CRASH;
}

int reflect_event(struct vm *vm, struct x86_event ev)
{
	struct x86_event f;
	int status = VMM_E_INTERNAL;

	for (;;) {
		if (ev.vector == X86_EXC_PF)
			vm->virt.cr2 = ev.cr2;
		switch (control_legacy(vm) ? deliver32(vm, &ev, &f, &status)
					   : deliver(vm, &ev, &f, &status)) {
		case GVA_OK:
			vm->tstats.reflected++;
			trace_reflect(vm->trace, ev.vector, ev.has_err, ev.err, ev.cr2, ev.soft,
				      vm->regs.rip);
			return VM_CONTINUE;
		case GVA_FATAL: return status;
		case GVA_FAULT: break;
		}
		if (ev.vector == X86_EXC_DF)
			return triple_fault(vm, &f);
		if (f.vector == X86_EXC_PF)
			vm->virt.cr2 = f.cr2;
		if (double_fault(ev.vector, f.vector))
			f = fault_ev(X86_EXC_DF, 0);
		ev = f;
	}
}
