#include "control.h"
#include "shadow.h"
#include "vm.h"
#include "x86.h"

static void to_shadow(struct vm *vm)
{
	struct shadow_cpu c = *shadow_cpu_state(vm->shadow);

	c.cr0_wp = vm->virt.cr0 & X86_CR0_WP;
	c.cr4_smep = vm->virt.cr4 & X86_CR4_SMEP;
	c.cr4_smap = vm->virt.cr4 & X86_CR4_SMAP;
	c.efer_nxe = vm->virt.efer & X86_EFER_NXE;
	c.rflags_ac = vm->regs.rflags & X86_RFLAGS_AC;
	shadow_set_cpu(vm->shadow, &c);
}

void control_refresh_ac(struct vm *vm)
{
	to_shadow(vm);
}

void control_sync(struct vm *vm)
{
	/* The real CPU runs with paging, WP (the guest's WP is emulated in the
	 * shadow, DESIGN.md §3), NXE and, where offered, UMIP always on. */
	const uint64_t cr0_pass = X86_CR0_MP | X86_CR0_EM | X86_CR0_TS | X86_CR0_AM;
	const uint64_t cr4_pass = X86_CR4_SMEP | X86_CR4_SMAP | X86_CR4_FSGSBASE | X86_CR4_OSXSAVE;

	to_shadow(vm);
	vm->sregs.cr0 = X86_CR0_PE | X86_CR0_PG | X86_CR0_WP | X86_CR0_NE | X86_CR0_ET |
			(vm->virt.cr0 & cr0_pass);
	vm->sregs.cr4 = X86_CR4_PAE | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT |
			(vm->umip ? X86_CR4_UMIP : 0) | (vm->virt.cr4 & cr4_pass);
	vm->sregs.efer =
		X86_EFER_LME | X86_EFER_LMA | X86_EFER_NXE | (vm->virt.efer & X86_EFER_SCE);
	vm->sregs.cr3 = shadow_root(vm->shadow);
	vm->sregs.cr2 = vm->virt.cr2;
}

bool control_write_cr0(struct vm *vm, uint64_t v)
{
	/* SDM 2A MOV CR0: reserved bits 63:32, PG without PE, NW without CD;
	 * clearing PG or PE in 64-bit mode would leave IA-32e mode. */
	if ((v >> 32) || !(v & X86_CR0_PG) || !(v & X86_CR0_PE) ||
	    ((v & X86_CR0_NW) && !(v & X86_CR0_CD)))
		return false;
	vm->virt.cr0 = v | X86_CR0_ET;
	return true;
}

bool control_write_cr3(struct vm *vm, uint64_t v)
{
	if (!shadow_set_cr3(vm->shadow, v))
		return false;
	vm->virt.cr3 = v;
	return true;
}

bool control_write_cr4(struct vm *vm, uint64_t v)
{
	uint64_t old = vm->virt.cr4;

	if ((v & ~vm->cr4_allowed) || !(v & X86_CR4_PAE) || ((v ^ old) & X86_CR4_LA57))
		return false;
	vm->virt.cr4 = v;
	/* SDM 3A §4.10.4.1: toggling PGE (or PSE, SMEP...) invalidates all. */
	if ((v ^ old) & (X86_CR4_PGE | X86_CR4_PSE))
		shadow_flush(vm->shadow);
	return true;
}
