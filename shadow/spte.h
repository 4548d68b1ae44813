/* Shadow page-table entries (SPTEs), in the manner of Linux
 * arch/x86/kvm/mmu/spte.h: the architectural bits of x86.h plus the
 * software bits below, and the one place a shadow leaf is built.  Shadow
 * tables are always IA-32e 4-level tables, whatever the guest's mode. */
#ifndef SHADOWVM_SPTE_H
#define SHADOWVM_SPTE_H

#include "lib.h"
#include "walk.h"

/* Software bits live in bits 11:9, ignored by the hardware in every 4-level
 * paging entry (SDM 3A tables 4-15 to 4-20). */

/* In a shadow PDPTE/PDE: the tables below shadow one guest 1 GiB / 2 MiB
 * page with 4 KiB leaves.  The guest's invlpg of any address inside must
 * drop all of them, as it drops the one hardware TLB entry of a huge page
 * (SDM 3A §4.10.4.1), so the engines drop the whole subtree. */
#define SHADOW_SPTE_HUGE_BIT 9
#define SHADOW_SPTE_HUGE X86_BIT(SHADOW_SPTE_HUGE_BIT)

/* In a shadow leaf: writable only because the guest runs with CR0.WP = 0
 * (supervisor-only, see shadow_spte_leaf); kept for the trace and tests. */
#define SHADOW_SPTE_WP0_BIT 10
#define SHADOW_SPTE_WP0 X86_BIT(SHADOW_SPTE_WP0_BIT)

/* In a shadow leaf of a device window with SHADOW_MMIO_MARK: bit 51, above
 * MAXPHYADDR and so reserved (SDM 3A §4.5, table 4-20: a reserved bit makes
 * the access fault with PFERR.RSVD whatever the rights, §4.7), as KVM's
 * MMIO SPTEs do.  Lies inside X86_PTE_ADDR_MASK: a leaf's frame is
 * shadow_spte_frame's. */
#define SHADOW_SPTE_MMIO_MARK X86_BIT(51)

static inline mpa_t shadow_spte_frame(uint64_t e)
{
	return e & X86_PTE_ADDR_MASK & ~SHADOW_SPTE_MMIO_MARK;
}

#define SHADOW_SPTE_SW_MASK (SHADOW_SPTE_HUGE | SHADOW_SPTE_WP0)
#define SHADOW_SPTE_HW_MASK                                                                      \
	(X86_PTE_P | X86_PTE_W | X86_PTE_U | X86_PTE_PWT | X86_PTE_PCD | X86_PTE_A | X86_PTE_D | \
	 X86_PTE_PS | X86_PTE_G | X86_PTE_ADDR_MASK | X86_PTE_NX)
static_assert((SHADOW_SPTE_SW_MASK & SHADOW_SPTE_HW_MASK) == 0,
	      "shadow software bits collide with hardware bits");
static_assert(SHADOW_SPTE_HUGE != SHADOW_SPTE_WP0, "shadow software bits are distinct");

/* What every shadow non-leaf entry grants: everything.  Rights are enforced
 * by the leaf alone, which carries the guest's rights combined over all
 * levels, so the hardware's combination (AND of R/W and U/S, OR of XD)
 * yields exactly the leaf's. */
#define SHADOW_SPTE_TABLE (X86_PTE_P | X86_PTE_W | X86_PTE_U | X86_PTE_A)

/* Whether present shadow entry `e` at `level` maps a page (a 4 KiB leaf, or
 * a 2 MiB one at level 2; the engines never make larger ones). */
static inline bool shadow_spte_is_leaf(int level, uint64_t e)
{
	return level == 1 || (e & X86_PTE_PS);
}

/* The 4 KiB shadow leaf mapping machine page `mpa` for guest leaf `gpte` at
 * guest level `level` (its A/D already synced), whose rights combined over
 * the walk are `r`, filled for `access` (SHADOW_ACC_*; 0 for a prefetch).
 * Never grants more than `r`: writable only if the guest leaf is dirty, and
 * under CR0.WP = 0 a supervisor write to a read-only page gets a writable,
 * supervisor-only leaf (not executable when SMEP forbids it), as KVM does. */
uint64_t shadow_spte_leaf(const struct shadow_cpu *cpu, uint64_t gpte, int level,
			  struct shadow_rights r, unsigned access, mpa_t mpa);

/* The 2 MiB shadow leaf equivalent to 4 KiB leaf `spte` of a guest huge
 * page: the frame's base, PS, and PAT moved to bit 12 (SDM 3A table 4-18). */
uint64_t shadow_spte_2m(uint64_t spte);

#endif
