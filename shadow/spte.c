/* Building shadow leaves. */
#include "spte.h"

uint64_t shadow_spte_leaf(const struct shadow_cpu *cpu, uint64_t gpte, int level,
			  struct shadow_rights r, unsigned access, mpa_t mpa)
{
	uint64_t pat = level == 1 ? X86_PTE_PAT : X86_PTE_PAT_LARGE;
	/* A and D preset: the guest's bits are synced by the walker, and the
	 * hardware then never needs to write a shadow entry.  G never: a shadow
	 * translation must not outlive the real CR3 reload of a guest CR3 write. */
	uint64_t spte = mpa | X86_PTE_P | X86_PTE_A | (gpte & (X86_PTE_PWT | X86_PTE_PCD));
	bool sup_write = (access & SHADOW_ACC_WRITE) && !(access & SHADOW_ACC_USER);

	assert(!(mpa & ~X86_PTE_ADDR_MASK));
	if (gpte & pat)
		spte |= X86_PTE_PAT;
	if (r.user)
		spte |= X86_PTE_U;
	if (r.nx)
		spte |= X86_PTE_NX;
	if (r.write && (gpte & X86_PTE_D)) {
		/* a clean guest leaf stays read-only until its first write (§4.8) */
		spte |= X86_PTE_W | X86_PTE_D;
	} else if (sup_write && !r.write && !cpu->cr0_wp) {
		/* WP=0 emulated under the real WP=1: the page becomes supervisor
		 * so that no user access rides on the extra write right */
		spte = (spte & ~X86_PTE_U) | X86_PTE_W | X86_PTE_D | SHADOW_SPTE_WP0;
		/* now supervisor, the hardware's SMEP no longer guards a user page */
		if (cpu->cr4_smep && r.user)
			spte |= X86_PTE_NX;
	}
	return spte;
}

uint64_t shadow_spte_2m(uint64_t spte)
{
	uint64_t big = (spte & ~(X86_PTE_ADDR_MASK | X86_PTE_PAT)) | (spte & X86_PTE_ADDR_2M_MASK) |
		       X86_PTE_PS;

	return spte & X86_PTE_PAT ? big | X86_PTE_PAT_LARGE : big;
}
