#include <Zydis/Zydis.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "control.h"
#include "emulate.h"
#include "log.h"
#include "reflect.h"
#include "segment.h"
#include "shadow.h"
#include "status.h"
#include "trace.h"
#include "vm.h"
#include "x86.h"

enum emu {
	EMU_DONE,    /* emulated: advance RIP past the instruction */
	EMU_JUMPED,  /* emulated: the handler set RIP (iret, sysret, far ret) */
	EMU_GP,      /* raise #GP(0) in the guest */
	EMU_FAULT,   /* raise x->ev in the guest */
	EMU_FATAL,   /* the run ends with x->status (already reported) */
	EMU_REFLECT, /* not ours: reflect the original fault */
	EMU_UNSUPPORTED,
};

static const char *emu_result_name(enum emu e)
{
	static const char *const names[] = {
		[EMU_DONE] = "done",
		[EMU_JUMPED] = "jumped",
		[EMU_GP] = "gp",
		[EMU_FAULT] = "fault",
		[EMU_FATAL] = "fatal",
		[EMU_REFLECT] = "reflect",
		[EMU_UNSUPPORTED] = "unsupported",
	};
	return names[e];
}

struct insn {
	ZydisDecodedInstruction in;
	ZydisDecodedOperand op[ZYDIS_MAX_OPERAND_COUNT];
	uint8_t bytes[ZYDIS_MAX_INSTRUCTION_LENGTH];
	size_t len;
	unsigned vcpl, acc; /* virtual CPL; SHADOW_ACC_USER at CPL3 */
	struct x86_event ev;
	int status;
};

static enum emu from_gva(enum gva_status st)
{
	return st == GVA_OK ? EMU_DONE : st == GVA_FAULT ? EMU_FAULT : EMU_FATAL;
}

/* ---- registers -------------------------------------------------------------- */

static uint64_t *gpr(struct vm *vm, ZydisRegister r)
{
	struct kvm_regs *g = &vm->regs;
	uint64_t *tab[16] = { (uint64_t *)&g->rax, (uint64_t *)&g->rcx, (uint64_t *)&g->rdx,
			      (uint64_t *)&g->rbx, (uint64_t *)&g->rsp, (uint64_t *)&g->rbp,
			      (uint64_t *)&g->rsi, (uint64_t *)&g->rdi, (uint64_t *)&g->r8,
			      (uint64_t *)&g->r9,  (uint64_t *)&g->r10, (uint64_t *)&g->r11,
			      (uint64_t *)&g->r12, (uint64_t *)&g->r13, (uint64_t *)&g->r14,
			      (uint64_t *)&g->r15 };
	ZydisRegister big = ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, r);

	if (big < ZYDIS_REGISTER_RAX || big > ZYDIS_REGISTER_R15)
		return NULL;
	return tab[big - ZYDIS_REGISTER_RAX];
}

static unsigned reg_width(ZydisRegister r)
{
	return ZydisRegisterGetWidth(ZYDIS_MACHINE_MODE_LONG_64, r);
}

static uint64_t reg_read(struct vm *vm, ZydisRegister r)
{
	uint64_t *p = gpr(vm, r);
	unsigned w = reg_width(r);

	return p ? (w >= 64 ? *p : *p & ((1ull << w) - 1)) : 0;
}

/* 32-bit writes zero-extend, 16-bit writes merge (SDM 1 §3.4.1.1). */
static void reg_write(struct vm *vm, ZydisRegister r, uint64_t v)
{
	uint64_t *p = gpr(vm, r);
	unsigned w = reg_width(r);

	if (!p)
		return;
	if (w >= 32)
		*p = w == 64 ? v : (uint32_t)v;
	else
		*p = (*p & ~((1ull << w) - 1)) | (v & ((1ull << w) - 1));
}

static uint64_t effective_address(struct vm *vm, const struct insn *x,
				  const ZydisDecodedOperand *op)
{
	static ZydisRegisterContext ctx;
	uint64_t ea = 0;

	for (ZydisRegister r = ZYDIS_REGISTER_AX; r <= ZYDIS_REGISTER_R15; r++)
		if (gpr(vm, r))
			ctx.values[r] = reg_read(vm, r);
	ZydisCalcAbsoluteAddressEx(&x->in, op, vm->regs.rip, &ctx, &ea);
	/* every segment's base counts outside 64-bit mode, FS and GS only in
	 * it (SDM 3A §3.4.4); linear addresses wrap at 4 GiB there */
	switch (op->mem.segment) {
	case ZYDIS_REGISTER_FS: ea += vm->sregs.fs.base; break;
	case ZYDIS_REGISTER_GS: ea += vm->sregs.gs.base; break;
	case ZYDIS_REGISTER_DS: ea += vm->sregs.cs.l ? 0 : vm->sregs.ds.base; break;
	case ZYDIS_REGISTER_ES: ea += vm->sregs.cs.l ? 0 : vm->sregs.es.base; break;
	case ZYDIS_REGISTER_SS: ea += vm->sregs.cs.l ? 0 : vm->sregs.ss.base; break;
	case ZYDIS_REGISTER_CS: ea += vm->sregs.cs.l ? 0 : vm->sregs.cs.base; break;
	default: break;
	}
	return vm->sregs.cs.l ? ea : (uint32_t)ea;
}

/* Read an r/m operand of at most 8 bytes. */
static enum emu rm_read(struct vm *vm, struct insn *x, const ZydisDecodedOperand *op, uint64_t *v)
{
	*v = 0;
	if (op->type == ZYDIS_OPERAND_TYPE_REGISTER) {
		*v = reg_read(vm, op->reg.value);
		return EMU_DONE;
	}
	return from_gva(gva_read(vm, effective_address(vm, x, op), v, op->size / 8, x->acc, &x->ev,
				 &x->status));
}

static enum emu rm_write(struct vm *vm, struct insn *x, const ZydisDecodedOperand *op, uint64_t v)
{
	if (op->type == ZYDIS_OPERAND_TYPE_REGISTER) {
		reg_write(vm, op->reg.value, v);
		return EMU_DONE;
	}
	return from_gva(gva_write(vm, effective_address(vm, x, op), &v, op->size / 8, x->acc,
				  &x->ev, &x->status));
}

/* ---- control registers ------------------------------------------------------------ */

static enum emu mov_cr(struct vm *vm, struct insn *x)
{
	bool to_cr = x->op[0].reg.value >= ZYDIS_REGISTER_CR0 &&
		     x->op[0].reg.value <= ZYDIS_REGISTER_CR15;
	const ZydisDecodedOperand *crop = to_cr ? &x->op[0] : &x->op[1];
	const ZydisDecodedOperand *gop = to_cr ? &x->op[1] : &x->op[0];
	unsigned cr = crop->reg.value - ZYDIS_REGISTER_CR0;
	uint64_t v = reg_read(vm, gop->reg.value);
	uint64_t *vals[] = {
		[0] = &vm->virt.cr0, [2] = &vm->virt.cr2, [3] = &vm->virt.cr3, [4] = &vm->virt.cr4
	};

	if (cr == 8)
		return to_cr ? EMU_DONE : (reg_write(vm, gop->reg.value, 0), EMU_DONE);
	if (cr >= sizeof(vals) / sizeof(vals[0]) || !vals[cr])
		return EMU_UNSUPPORTED;
	if (!to_cr) {
		reg_write(vm, gop->reg.value, *vals[cr]);
		return EMU_DONE;
	}
	switch (cr) {
	case 0: return control_write_cr0(vm, v) ? EMU_DONE : EMU_GP;
	case 2: vm->virt.cr2 = v; return EMU_DONE;
	case 3: return control_write_cr3(vm, v) ? EMU_DONE : EMU_GP;
	default: return control_write_cr4(vm, v) ? EMU_DONE : EMU_GP;
	}
}

/* ---- descriptor tables ------------------------------------------------------------- */

/* Copy the guest's GDT into the real one (monitor_load_gdt translates). */
static enum emu gdt_sync(struct vm *vm, struct insn *x)
{
	uint64_t *buf = vm->gdt_copy;
	unsigned count = ((unsigned)vm->virt.gdt_limit + 1) / 8;

	memset(buf, 0, sizeof(vm->gdt_copy));
	if (gva_read(vm, vm->virt.gdt_base, buf, count * 8, 0, &x->ev, &x->status) != GVA_OK) {
		pr_err("guest broke the ABI: GDT at 0x%llx (limit 0x%x) is not mapped at lgdt, rip=0x%llx",
		       (unsigned long long)vm->virt.gdt_base, vm->virt.gdt_limit,
		       (unsigned long long)vm->regs.rip);
		x->status = VMM_E_CONTRACT;
		return EMU_FATAL;
	}
	monitor_load_gdt(&vm->mon, buf, count, control_legacy(vm));
	return EMU_DONE;
}

/* LGDT/LIDT (SDM 2A): a 16-bit limit and a 64-bit base in 64-bit mode,
 * else a 32-bit base (24 bits of it with a 16-bit operand). */
static enum emu load_dt(struct vm *vm, struct insn *x, bool gdt)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} d = { 0 };
	bool wide = vm->sregs.cs.l;
	enum emu e = from_gva(gva_read(vm, effective_address(vm, x, &x->op[0]), &d,
				       wide ? sizeof(d) : 6, x->acc, &x->ev, &x->status));

	if (e != EMU_DONE)
		return e;
	if (!wide && x->in.operand_width == 16)
		d.base &= 0xffffff;
	if (!x86_is_canonical48(d.base))
		return EMU_GP;
	if (!gdt) {
		vm->virt.idt_base = d.base, vm->virt.idt_limit = d.limit;
		return EMU_DONE;
	}
	if (d.limit > HV_GUEST_GDT_LIMIT_MAX) {
		pr_err("guest broke the ABI: GDT limit 0x%x exceeds 0x%x (the top descriptors belong to the monitor)",
		       d.limit, HV_GUEST_GDT_LIMIT_MAX);
		x->status = VMM_E_CONTRACT;
		return EMU_FATAL;
	}
	vm->virt.gdt_base = d.base, vm->virt.gdt_limit = d.limit;
	return gdt_sync(vm, x);
}

static enum emu store_dt(struct vm *vm, struct insn *x, bool gdt)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} d = {
		gdt ? vm->virt.gdt_limit : vm->virt.idt_limit,
		gdt ? vm->virt.gdt_base : vm->virt.idt_base,
	};

	return from_gva(gva_write(vm, effective_address(vm, x, &x->op[0]), &d, sizeof(d), x->acc,
				  &x->ev, &x->status));
}

static enum emu sel_fault(struct insn *x, unsigned vector, uint16_t sel)
{
	x->ev = (struct x86_event){ .vector = vector, .has_err = true, .err = sel & ~3u };
	return EMU_FAULT;
}

/* LTR (SDM 2A): an available TSS in the GDT, then marked busy: a 16-byte
 * 64-bit TSS descriptor in IA-32e mode, an 8-byte 32-bit one outside it
 * (the same type code, SDM 3A table 3-2). */
static enum emu ltr(struct vm *vm, struct insn *x)
{
	bool legacy = control_legacy(vm);
	uint64_t sel, d[2] = { 0, 0 };
	gva_t at;
	enum emu e;

	if ((e = rm_read(vm, x, &x->op[0], &sel)) != EMU_DONE)
		return e;
	sel &= 0xffff;
	if ((sel & ~3u) == 0)
		return EMU_GP;
	if ((sel & X86_SEL_TI) || (sel | 7) + (legacy ? 0 : 8) > vm->virt.gdt_limit)
		return sel_fault(x, X86_EXC_GP, (uint16_t)sel);
	at = vm->virt.gdt_base + (sel & ~7u);
	if ((e = from_gva(gva_read(vm, at, d, legacy ? 8 : 16, 0, &x->ev, &x->status))) != EMU_DONE)
		return e;
	if ((d[0] & X86_DESC_S) || x86_desc_type(d[0]) != X86_SEG_TYPE_TSS64_AVAIL)
		return sel_fault(x, X86_EXC_GP, (uint16_t)sel);
	if (!(d[0] & X86_DESC_P))
		return sel_fault(x, X86_EXC_NP, (uint16_t)sel);
	d[0] |= X86_DESC_TYPE(X86_SEG_TYPE_TSS64_BUSY);
	if ((e = from_gva(gva_write(vm, at, d, 8, 0, &x->ev, &x->status))) != EMU_DONE)
		return e;
	vm->virt.tr = (uint16_t)sel;
	vm->virt.tr_base = x86_desc_base(d[0]) | (d[1] << 32); /* SDM 3A §8.2.3 */
	return EMU_DONE;
}

static enum emu lldt(struct vm *vm, struct insn *x)
{
	uint64_t sel;
	enum emu e = rm_read(vm, x, &x->op[0], &sel);

	if (e != EMU_DONE)
		return e;
	if ((sel & 0xfffc) != 0)
		return EMU_UNSUPPORTED; /* LDTs: not emulated */
	vm->virt.ldtr = 0;
	return EMU_DONE;
}

/* ---- MSRs -------------------------------------------------------------------------- */

/* MSRs KVM keeps for the vCPU that the guest may use as it would under
 * --paging=hw: KVM's answer (or its refusal, #GP) is the same in both
 * modes.  Test kernels touch the performance counters without asking
 * CPUID (AMD's PERF_CTL/CTR0-3, Intel's PMC/PERFEVTSEL0-3). */
static bool msr_passed(uint32_t idx)
{
	return idx == 0x10 /* TSC */ || idx == X86_MSR_APIC_BASE ||
	       (idx >= 0x174 && idx <= 0x176) /* SYSENTER_CS/ESP/EIP */ ||
	       idx == 0x1a0 /* MISC_ENABLE */ || idx == 0x277 /* PAT */ ||
	       (idx >= 0xc1 && idx <= 0xc4) || (idx >= 0x186 && idx <= 0x189) ||
	       (idx >= 0xc0010000u && idx <= 0xc0010007u);
}

static enum emu msr(struct vm *vm, bool write)
{
	uint32_t idx = (uint32_t)vm->regs.rcx;
	uint64_t v = (vm->regs.rdx << 32) | (uint32_t)vm->regs.rax;
	uint64_t *virt = NULL;

	switch (idx) {
	case X86_MSR_EFER:
		if (write)
			return control_write_efer(vm, v) ? EMU_DONE : EMU_GP;
		v = vm->virt.efer;
		break;
	case X86_MSR_STAR: virt = &vm->virt.star; break;
	case X86_MSR_LSTAR: virt = &vm->virt.lstar; break;
	case X86_MSR_CSTAR: virt = &vm->virt.cstar; break;
	case X86_MSR_SFMASK: virt = &vm->virt.sfmask; break;
	case X86_MSR_FS_BASE:
	case X86_MSR_GS_BASE: {
		__u64 *base = idx == X86_MSR_FS_BASE ? &vm->sregs.fs.base : &vm->sregs.gs.base;
		if (write && !x86_is_canonical48(v))
			return EMU_GP;
		if (write)
			*base = v;
		v = *base;
		break;
	}
	case X86_MSR_KERNEL_GS_BASE:
	case X86_MSR_TSC_AUX:
		if (write && idx == X86_MSR_KERNEL_GS_BASE && !x86_is_canonical48(v))
			return EMU_GP;
		if (write && (idx == X86_MSR_TSC_AUX) && (v >> 32))
			return EMU_GP;
		if (vcpu_msr(&vm->vcpu, idx, &v, write) != 0)
			return EMU_GP;
		break;
	default:
		if (!msr_passed(idx) || vcpu_msr(&vm->vcpu, idx, &v, write) != 0)
			return EMU_GP; /* an MSR no CPU has: #GP, as on hardware */
		/* the APIC moved, went off or to x2APIC mode: its page is no
		 * longer the one the fast path serves (for the rest of the run) */
		if (write && idx == X86_MSR_APIC_BASE &&
		    (v & ~(uint64_t)X86_APIC_BASE_BSP) != (VMM_LAPIC_GPA | X86_APIC_BASE_EN))
			monitor_lapic(&vm->mon)->enabled = 0;
		break;
	}
	if (virt && write) {
		if ((idx == X86_MSR_LSTAR || idx == X86_MSR_CSTAR) && !x86_is_canonical48(v))
			return EMU_GP;
		*virt = idx == X86_MSR_SFMASK ? (uint32_t)v : v;
	} else if (virt) {
		v = *virt;
	}
	if (!write) {
		vm->regs.rax = (uint32_t)v;
		vm->regs.rdx = v >> 32;
	}
	return EMU_DONE;
}

/* ---- control transfers that return to the guest kernel --------------------------- */

static uint64_t rflags_from_guest(struct vm *vm, uint64_t v, bool kernel)
{
	/* The guest kernel may change IF, AC, ID ...; IOPL is always 1 and VM,
	 * RF are never set (DESIGN.md §2). */
	uint64_t keep = kernel ? ~0ull : ~(X86_RFLAGS_IF | X86_RFLAGS_IOPL_MASK);
	uint64_t r = (v & keep) | (vm->regs.rflags & ~keep);

	r &= ~(X86_RFLAGS_VM | X86_RFLAGS_RF | X86_RFLAGS_IOPL_MASK | X86_RFLAGS_RESERVED);
	return r | X86_RFLAGS_FIXED | (1ull << X86_RFLAGS_IOPL_SHIFT);
}

/* Load CS:RIP, and SS:RSP when `stack`, for a return to `sel`'s privilege. */
static enum emu far_return(struct vm *vm, struct insn *x, uint64_t rip, uint16_t cs, bool stack,
			   uint64_t rsp, uint16_t ss)
{
	unsigned vcpl = (cs & 3) == 3 ? 3 : 0, cpl = seg_real_cpl(vcpl);
	struct kvm_segment old_cs = vm->sregs.cs;

	if (vcpl < x->vcpl)
		return sel_fault(x, X86_EXC_GP, cs);
	if (!x86_is_canonical48(rip))
		return EMU_GP;
	if (!seg_load_cs(vm, cs, cpl))
		return sel_fault(x, seg_load_fault(vm, cs, cpl, false), cs);
	if (stack && !seg_load_ss(vm, ss, cpl)) {
		vm->sregs.cs = old_cs; /* a fault changes nothing */
		return sel_fault(x, seg_load_fault(vm, ss, cpl, true), ss);
	}
	vm->regs.rip = rip;
	if (stack)
		vm->regs.rsp = rsp;
	return EMU_JUMPED;
}

/* IRET (SDM 2A): IRETQ, or IRETD from 32-bit code.  In 64-bit mode the
 * frame always holds SS:RSP; from compatibility-mode (or legacy) code only
 * a return to an outer privilege level pops them. */
static enum emu iret(struct vm *vm, struct insn *x)
{
	unsigned w = x->in.operand_width / 8;
	uint64_t f[5] = { 0 }; /* RIP, CS, RFLAGS, RSP, SS */
	uint8_t raw[5 * 8];
	bool outer;
	enum emu e;

	if (w != 8 && w != 4)
		return EMU_UNSUPPORTED;
	if ((e = from_gva(gva_read(vm, vm->regs.rsp, raw, 3 * w, x->acc, &x->ev, &x->status))))
		return e;
	for (unsigned i = 0; i < 3; i++)
		memcpy(&f[i], raw + i * w, w);
	outer = vm->sregs.cs.l || ((f[1] & 3) == 3 && x->vcpl == 0);
	if (outer) {
		if ((e = from_gva(gva_read(vm, vm->regs.rsp + 3 * w, raw, 2 * w, x->acc, &x->ev,
					   &x->status))))
			return e;
		memcpy(&f[3], raw, w);
		memcpy(&f[4], raw + w, w);
	}
	if (vm->regs.rflags & X86_RFLAGS_NT)
		return EMU_GP; /* task return: not emulated (none in IA-32e mode) */
	if ((e = far_return(vm, x, f[0], (uint16_t)f[1], outer, f[3], (uint16_t)f[4])) !=
	    EMU_JUMPED)
		return e;
	if (!outer)
		vm->regs.rsp = (uint32_t)(vm->regs.rsp + 3 * w);
	vm->regs.rflags = rflags_from_guest(vm, f[2], x->vcpl == 0);
	return EMU_JUMPED;
}

static enum emu lret(struct vm *vm, struct insn *x)
{
	unsigned w = x->in.operand_width / 8;
	uint64_t f[4] = { 0 }; /* RIP, CS, [RSP, SS] */
	uint64_t imm = x->op[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE ? x->op[0].imm.value.u : 0;
	uint64_t sp = vm->regs.rsp;
	uint8_t raw[32];
	bool outer;
	enum emu e;

	if ((e = from_gva(gva_read(vm, sp, raw, 2 * w, x->acc, &x->ev, &x->status))))
		return e;
	memcpy(&f[0], raw, w);
	memcpy(&f[1], raw + w, w);
	outer = ((f[1] & 3) == 3) && x->vcpl == 0;
	sp += 2 * w + imm;
	if (outer) {
		if ((e = from_gva(gva_read(vm, sp, raw, 2 * w, x->acc, &x->ev, &x->status))))
			return e;
		memcpy(&f[2], raw, w);
		memcpy(&f[3], raw + w, w);
		f[2] += imm; /* SDM 2A RET: the outer stack's parameters too */
	}
	if ((e = far_return(vm, x, f[0], (uint16_t)f[1], outer, f[2], (uint16_t)f[3])) !=
	    EMU_JUMPED)
		return e;
	if (!outer)
		vm->regs.rsp = sp;
	return EMU_JUMPED;
}

static enum emu mov_ss(struct vm *vm, struct insn *x)
{
	uint64_t sel;
	enum emu e = rm_read(vm, x, &x->op[1], &sel);

	if (e != EMU_DONE)
		return e;
	if ((sel & 3) != (x->vcpl == 3 ? 3u : 0u) && (sel & 3) != 1)
		return sel_fault(x, X86_EXC_GP, (uint16_t)sel);
	if (!seg_load_ss(vm, (uint16_t)sel, seg_real_cpl(x->vcpl)))
		return sel_fault(x, seg_load_fault(vm, (uint16_t)sel, seg_real_cpl(x->vcpl), true),
				 (uint16_t)sel);
	return EMU_DONE;
}

/* SYSRET (SDM 2B): 64-bit form only. */
static enum emu sysret(struct vm *vm, struct insn *x)
{
	uint16_t base = (uint16_t)(vm->virt.star >> 48);

	if (x->in.operand_width != 64)
		return EMU_UNSUPPORTED;
	if (!x86_is_canonical48(vm->regs.rcx))
		return EMU_GP;
	vm->regs.rip = vm->regs.rcx;
	vm->regs.rflags = rflags_from_guest(
		vm, (vm->regs.r11 & X86_RFLAGS_SYSRET_MASK) | X86_RFLAGS_FIXED, true);
	seg_flat(&vm->sregs.cs, (uint16_t)((base + 16) | 3), true, 3);
	seg_flat(&vm->sregs.ss, (uint16_t)((base + 8) | 3), false, 3);
	return EMU_JUMPED;
}

static enum emu swapgs(struct vm *vm)
{
	uint64_t k;

	if (vcpu_msr(&vm->vcpu, X86_MSR_KERNEL_GS_BASE, &k, false) != 0)
		return EMU_UNSUPPORTED;
	uint64_t g = vm->sregs.gs.base;
	if (vcpu_msr(&vm->vcpu, X86_MSR_KERNEL_GS_BASE, &g, true) != 0)
		return EMU_UNSUPPORTED;
	vm->sregs.gs.base = k;
	return EMU_DONE;
}

/* HLT (SDM 2A): with KVM's irqchip (Multiboot images) and IF set, the vCPU
 * waits in KVM for the next interrupt, which then reaches the guest's IDT
 * through the monitor: trap_resume leaves it KVM_MP_STATE_HALTED past the
 * hlt.  Otherwise nothing can wake it: no device raises interrupts without
 * the irqchip, and none of ours raises an NMI.  (Under --paging=hw KVM
 * halts in the kernel then, and the run ends only by --timeout.) */
static enum emu hlt(struct vm *vm, struct insn *x)
{
	if (vm->kvm.irqchip && (vm->regs.rflags & X86_RFLAGS_IF)) {
		vm->halt = true;
		return EMU_DONE;
	}
	pr_err("guest halted forever: hlt with interrupts %s at rip=0x%llx",
	       vm->regs.rflags & X86_RFLAGS_IF ? "on, but no device interrupts" : "off",
	       (unsigned long long)vm->regs.rip);
	x->status = VMM_E_HALTED;
	return EMU_FATAL;
}

/* ---- dispatch ---------------------------------------------------------------------- */

static enum emu umip_store(struct vm *vm, struct insn *x)
{
	switch (x->in.mnemonic) {
	case ZYDIS_MNEMONIC_SGDT: return store_dt(vm, x, true);
	case ZYDIS_MNEMONIC_SIDT: return store_dt(vm, x, false);
	case ZYDIS_MNEMONIC_STR: return rm_write(vm, x, &x->op[0], vm->virt.tr);
	case ZYDIS_MNEMONIC_SLDT: return rm_write(vm, x, &x->op[0], vm->virt.ldtr);
	case ZYDIS_MNEMONIC_SMSW: return rm_write(vm, x, &x->op[0], vm->virt.cr0);
	default: return EMU_REFLECT;
	}
}

static bool is_mov_of(const struct insn *x, ZydisRegisterClass class)
{
	return x->in.mnemonic == ZYDIS_MNEMONIC_MOV &&
	       (ZydisRegisterGetClass(x->op[0].reg.value) == class ||
		ZydisRegisterGetClass(x->op[1].reg.value) == class);
}

/* The kernel-mode privileged set (DESIGN.md §2). */
static enum emu kernel_insn(struct vm *vm, struct insn *x)
{
	if (is_mov_of(x, ZYDIS_REGCLASS_CONTROL))
		return mov_cr(vm, x);
	if (is_mov_of(x, ZYDIS_REGCLASS_DEBUG))
		return EMU_UNSUPPORTED; /* #GP above CPL0 (SDM 2B MOV DR) */
	switch (x->in.mnemonic) {
	case ZYDIS_MNEMONIC_MOV:
		return x->op[0].reg.value == ZYDIS_REGISTER_SS ? mov_ss(vm, x) : EMU_REFLECT;
	case ZYDIS_MNEMONIC_INVLPG:
		shadow_invlpg(vm->shadow, effective_address(vm, x, &x->op[0]));
		return EMU_DONE;
	case ZYDIS_MNEMONIC_LGDT: return load_dt(vm, x, true);
	case ZYDIS_MNEMONIC_LIDT: return load_dt(vm, x, false);
	case ZYDIS_MNEMONIC_LTR: return ltr(vm, x);
	case ZYDIS_MNEMONIC_LLDT: return lldt(vm, x);
	case ZYDIS_MNEMONIC_RDMSR: return msr(vm, false);
	case ZYDIS_MNEMONIC_WRMSR: return msr(vm, true);
	case ZYDIS_MNEMONIC_SWAPGS: return swapgs(vm);
	case ZYDIS_MNEMONIC_SYSRET: return sysret(vm, x);
	case ZYDIS_MNEMONIC_IRETQ:
	case ZYDIS_MNEMONIC_IRETD: return iret(vm, x);
	case ZYDIS_MNEMONIC_RET:
		return x->in.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR ? lret(vm, x) : EMU_REFLECT;
	case ZYDIS_MNEMONIC_HLT: return hlt(vm, x);
	case ZYDIS_MNEMONIC_CLTS: vm->virt.cr0 &= ~X86_CR0_TS; return EMU_DONE;
	case ZYDIS_MNEMONIC_WBINVD:
	case ZYDIS_MNEMONIC_INVD: return EMU_DONE; /* no caches to model */
	case ZYDIS_MNEMONIC_IRET:
	case ZYDIS_MNEMONIC_LMSW:
	case ZYDIS_MNEMONIC_XSETBV:
	case ZYDIS_MNEMONIC_INVPCID:
	case ZYDIS_MNEMONIC_MONITOR:
	case ZYDIS_MNEMONIC_MWAIT:
	case ZYDIS_MNEMONIC_SYSEXIT: return EMU_UNSUPPORTED;
	default: return umip_store(vm, x);
	}
}

/* Fetch and decode the instruction at RIP; a fetch fault is the guest's. */
static enum emu decode(struct vm *vm, struct insn *x)
{
	ZydisDecoder dec;
	gva_t rip = vm->regs.rip;
	size_t first = X86_PAGE_SIZE - (rip & (X86_PAGE_SIZE - 1));
	unsigned acc = SHADOW_ACC_FETCH | x->acc;
	enum emu e;

	x->len = first < sizeof(x->bytes) ? first : sizeof(x->bytes);
	if ((e = from_gva(gva_read(vm, rip, x->bytes, x->len, acc, &x->ev, &x->status))))
		return e;
	if (x->len < sizeof(x->bytes) &&
	    gva_read(vm, rip + x->len, x->bytes + x->len, sizeof(x->bytes) - x->len, acc, &x->ev,
		     &x->status) == GVA_OK)
		x->len = sizeof(x->bytes);
	/* the mode of the code segment: 64-bit, or compatibility mode */
	if (vm->sregs.cs.l)
		ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
	else if (vm->sregs.cs.db)
		ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_COMPAT_32, ZYDIS_STACK_WIDTH_32);
	else
		ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_COMPAT_16, ZYDIS_STACK_WIDTH_16);
	if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, x->bytes, x->len, &x->in, x->op)))
		return x->len < sizeof(x->bytes) ? EMU_FAULT : EMU_REFLECT;
	return EMU_DONE;
}

static int unsupported(struct vm *vm, const struct insn *x)
{
	char hex[3 * ZYDIS_MAX_INSTRUCTION_LENGTH + 1] = "";
	size_t n = x->in.length ? x->in.length : x->len;

	for (size_t i = 0; i < n; i++)
		snprintf(hex + 3 * i, 4, "%s%02x", i ? " " : "", x->bytes[i]);
	pr_err("guest crash: unsupported instruction %s at rip=0x%llx", hex,
	       (unsigned long long)vm->regs.rip);
	return VMM_E_CRASH;
}

/* Software interrupts reach the monitor as #GP(vector * 8 + 2) because its
 * gates have DPL 0 (SDM 3A §6.12.1.1): deliver them through the guest IDT. */
/* Software interrupts reach the monitor as #GP(IDT) because its gates have
 * DPL 0 (SDM 3A §6.12.1.1): deliver them through the guest IDT.  The vector
 * comes from the instruction; the error code only says "IDT, not external". */
static bool soft_int(struct insn *x, uint32_t err, unsigned *vector)
{
	if (!(err & 2) || (err & 1))
		return false;
	switch (x->in.mnemonic) {
	case ZYDIS_MNEMONIC_INT: *vector = (unsigned)x->op[0].imm.value.u & 0xff; return true;
	case ZYDIS_MNEMONIC_INT3: *vector = X86_EXC_BP; return true;
	case ZYDIS_MNEMONIC_INTO: *vector = X86_EXC_OF; return true;
	default: return false;
	}
}

static enum emu run_insn(struct vm *vm, struct insn *x, unsigned vector, uint32_t err)
{
	unsigned sv;

	if (vector == X86_EXC_UD) {
		bool st = x->in.mnemonic == ZYDIS_MNEMONIC_STAC,
		     cl = x->in.mnemonic == ZYDIS_MNEMONIC_CLAC;
		if (!(st || cl) || x->vcpl != 0 || !(vm->virt.cr4 & X86_CR4_SMAP))
			return EMU_REFLECT;
		vm->regs.rflags =
			st ? vm->regs.rflags | X86_RFLAGS_AC : vm->regs.rflags & ~X86_RFLAGS_AC;
		return EMU_DONE;
	}
	if (soft_int(x, err, &sv)) {
		x->ev = (struct x86_event){ .vector = sv, .soft = true, .insn_len = x->in.length };
		return EMU_FAULT;
	}
	if (x->vcpl == 3)
		return vm->virt.cr4 & X86_CR4_UMIP ? EMU_REFLECT : umip_store(vm, x);
	return kernel_insn(vm, x);
}

int emulate_fault(struct vm *vm, unsigned vector, uint32_t err)
{
	struct insn x = { .vcpl = seg_vcpl(vm) };
	struct x86_event orig = { .vector = vector, .has_err = vector == X86_EXC_GP, .err = err };
	gva_t rip = vm->regs.rip;
	enum emu e;

	x.acc = x.vcpl == 3 ? SHADOW_ACC_USER : 0;
	e = decode(vm, &x);
	if (e == EMU_DONE)
		e = run_insn(vm, &x, vector, err);
	pr_debug("emulate: vector=%u err=0x%x rip=0x%llx cpl=%u insn=%s result=%d", vector, err,
		 (unsigned long long)vm->regs.rip, x.vcpl,
		 e == EMU_FAULT && x.in.length == 0 ? "?" : ZydisMnemonicGetString(x.in.mnemonic),
		 e);
	trace_emulate(vm->trace, rip, vector,
		      x.in.length ? ZydisMnemonicGetString(x.in.mnemonic) : "?", x.bytes,
		      x.in.length ? x.in.length : x.len, emu_result_name(e));
	switch (e) {
	case EMU_DONE:
		vm->regs.rip += x.in.length;
		vm->regs.rflags &= ~X86_RFLAGS_RF;
		vm->tstats.emulated++;
		return VM_CONTINUE;
	case EMU_JUMPED: vm->tstats.emulated++; return VM_CONTINUE;
	case EMU_GP:
		return reflect_event(vm,
				     (struct x86_event){ .vector = X86_EXC_GP, .has_err = true });
	case EMU_FAULT: return reflect_event(vm, x.ev);
	case EMU_FATAL: return x.status;
	case EMU_UNSUPPORTED: return unsupported(vm, &x);
	case EMU_REFLECT:
	default: return reflect_event(vm, orig);
	}
}
