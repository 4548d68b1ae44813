#include "control.h"
#include "monitor.h"
#include "shadow.h"
#include "vm.h"
#include "x86.h"

static void to_shadow(struct vm *vm)
{
	struct shadow_cpu c = *shadow_cpu_state(vm->shadow);

	c.cr0_wp = vm->virt.cr0 & X86_CR0_WP;
	c.cr4_smep = vm->virt.cr4 & X86_CR4_SMEP;
	c.cr4_smap = vm->virt.cr4 & X86_CR4_SMAP;
	c.cr4_pse = vm->virt.cr4 & X86_CR4_PSE;
	c.pse36 = vm->pse36;
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
	 * shadow, DESIGN.md §3), NXE and, where offered, UMIP always on.  With
	 * the guest's paging off the shadow leaves are user pages, on which
	 * SMEP and SMAP would act though the guest's have no effect. */
	const uint64_t cr0_pass = X86_CR0_MP | X86_CR0_EM | X86_CR0_TS | X86_CR0_AM;
	uint64_t cr4_pass = X86_CR4_SMEP | X86_CR4_SMAP | X86_CR4_FSGSBASE | X86_CR4_OSXSAVE;

	if (!(vm->virt.cr0 & X86_CR0_PG))
		cr4_pass &= ~(X86_CR4_SMEP | X86_CR4_SMAP);
	to_shadow(vm);
	vm->sregs.cr0 = X86_CR0_PE | X86_CR0_PG | X86_CR0_WP | X86_CR0_NE | X86_CR0_ET |
			(vm->virt.cr0 & cr0_pass);
	vm->sregs.cr4 = X86_CR4_PAE | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT |
			(vm->umip ? X86_CR4_UMIP : 0) | (vm->virt.cr4 & cr4_pass);
	vm->sregs.efer =
		X86_EFER_LME | X86_EFER_LMA | X86_EFER_NXE | (vm->virt.efer & X86_EFER_SCE);
	/* the APIC fast path reads the guest kernel's code at CPL0 */
	monitor_lapic(&vm->mon)->stac = !!(vm->sregs.cr4 & X86_CR4_SMAP);
	vm->sregs.cr3 = shadow_root(vm->shadow);
	vm->sregs.cr2 = vm->virt.cr2;
}

/* The guest paging mode its CR0, CR4 and EFER select (SDM 3A §4.1.1,
 * table 4-1).  CR4.LA57 is never offered. */
static enum shadow_paging paging_of(uint64_t cr0, uint64_t cr4, uint64_t efer)
{
	if (!(cr0 & X86_CR0_PG))
		return SHADOW_PAGING_OFF;
	if (!(cr4 & X86_CR4_PAE))
		return SHADOW_PAGING_32;
	return efer & X86_EFER_LMA ? SHADOW_PAGING_LONG4 : SHADOW_PAGING_PAE;
}

/* CR3 as the mode reads it: 32 bits outside IA-32e mode. */
static uint64_t cr3_for(enum shadow_paging p, uint64_t cr3)
{
	return p == SHADOW_PAGING_LONG4 ? cr3 : (uint32_t)cr3;
}

/* Take a new CR0/CR4/EFER triple: a change of paging mode reloads the
 * shadow MMU's mode (PAE loads the PDPTEs, which can #GP, SDM 3A §4.4.1)
 * and flushes; IA-32e mode entered or left re-translates the GDT (the L
 * bit is ignored outside it).  False, changing nothing, for #GP. */
static bool take(struct vm *vm, uint64_t cr0, uint64_t cr4, uint64_t efer)
{
	enum shadow_paging old = paging_of(vm->virt.cr0, vm->virt.cr4, vm->virt.efer),
			   now = paging_of(cr0, cr4, efer);
	bool lma_changed = (efer ^ vm->virt.efer) & X86_EFER_LMA;

	if (now != old &&
	    shadow_set_paging(vm->shadow, now, cr3_for(now, vm->virt.cr3)) != SHADOW_OK)
		return false;
	vm->virt.cr0 = cr0;
	vm->virt.cr4 = cr4;
	vm->virt.efer = efer;
	if (lma_changed)
		monitor_load_gdt(&vm->mon, vm->gdt_copy, ((unsigned)vm->virt.gdt_limit + 1) / 8,
				 !(efer & X86_EFER_LMA));
	to_shadow(vm);
	return true;
}

bool control_write_cr0(struct vm *vm, uint64_t v)
{
	uint64_t old = vm->virt.cr0, efer = vm->virt.efer;
	bool pg = v & X86_CR0_PG, was_pg = old & X86_CR0_PG;

	/* SDM 2A MOV CR0: reserved bits 63:32, PG without PE, NW without CD */
	if ((v >> 32) || (pg && !(v & X86_CR0_PE)) || ((v & X86_CR0_NW) && !(v & X86_CR0_CD)))
		return false;
	/* real mode is not emulated: clearing PE is refused as #GP */
	if (!(v & X86_CR0_PE))
		return false;
	if (pg && !was_pg && (efer & X86_EFER_LME)) {
		/* entering IA-32e mode (SDM 3A §9.8.5): PAE on, not from a
		 * 64-bit code segment; LMA follows */
		if (!(vm->virt.cr4 & X86_CR4_PAE) || vm->sregs.cs.l)
			return false;
		efer |= X86_EFER_LMA;
	}
	if (!pg && was_pg && (efer & X86_EFER_LMA)) {
		/* leaving it: only from compatibility mode (SDM 2A MOV CR0) */
		if (vm->sregs.cs.l)
			return false;
		efer &= ~X86_EFER_LMA;
	}
	return take(vm, v | X86_CR0_ET, vm->virt.cr4, efer);
}

bool control_write_cr3(struct vm *vm, uint64_t v)
{
	enum shadow_paging p = paging_of(vm->virt.cr0, vm->virt.cr4, vm->virt.efer);

	v = cr3_for(p, v);
	if (shadow_load_cr3(vm->shadow, v) != SHADOW_OK)
		return false;
	vm->virt.cr3 = v;
	return true;
}

bool control_write_cr4(struct vm *vm, uint64_t v)
{
	uint64_t old = vm->virt.cr4;

	/* SDM 2A MOV CR4: bits the CPU does not offer (LA57 is never offered,
	 * nor may it change in IA-32e mode), PAE cleared in IA-32e mode */
	if ((v & ~vm->cr4_allowed) || ((v ^ old) & X86_CR4_LA57) ||
	    ((vm->virt.efer & X86_EFER_LMA) && !(v & X86_CR4_PAE)))
		return false;
	if (!take(vm, vm->virt.cr0, v, vm->virt.efer))
		return false;
	/* SDM 3A §4.10.4.1: toggling PGE (or PSE, SMEP...) invalidates all. */
	if ((v ^ old) & (X86_CR4_PGE | X86_CR4_PSE))
		shadow_flush(vm->shadow);
	return true;
}

bool control_write_efer(struct vm *vm, uint64_t v)
{
	const uint64_t ok = X86_EFER_SCE | X86_EFER_LME | X86_EFER_LMA | X86_EFER_NXE;
	uint64_t old = vm->virt.efer;

	/* SDM 4 (IA32_EFER): reserved bits; LME may not change with paging
	 * on; LMA is the CPU's, a write of it is ignored */
	if ((v & ~ok) || (((v ^ old) & X86_EFER_LME) && (vm->virt.cr0 & X86_CR0_PG)))
		return false;
	return take(vm, vm->virt.cr0, vm->virt.cr4, (v & ~X86_EFER_LMA) | (old & X86_EFER_LMA));
}

bool control_legacy(const struct vm *vm)
{
	return !(vm->virt.efer & X86_EFER_LMA);
}
