/* Shadow tables: building entries on a fill, dropping them on invlpg, flush
 * and eviction.  Shadow entries (SPTEs) use the architectural bits of
 * x86.h plus the software bits below. */
#ifndef SHADOWVM_FILL_H
#define SHADOWVM_FILL_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#include "pool.h"
#include "shadow.h"
#include "walk.h"

/* Software bits live in bits 11:9, ignored by the hardware in every 4-level
 * paging entry (SDM 3A tables 4-15 to 4-20). */

/* In a shadow PDPTE/PDE: the tables below shadow one guest 1 GiB / 2 MiB
 * page with 4 KiB leaves.  The guest's invlpg of any address inside must
 * drop all of them, as it drops the one hardware TLB entry of a huge page
 * (SDM 3A §4.10.4.1), so shadow_fill_drop_gva drops the whole subtree. */
#define SHADOW_SPTE_HUGE_BIT 9
#define SHADOW_SPTE_HUGE X86_BIT(SHADOW_SPTE_HUGE_BIT)

/* In a shadow leaf: writable only because the guest runs with CR0.WP = 0
 * (supervisor-only, see shadow_fill_spte); kept for the trace and tests. */
#define SHADOW_SPTE_WP0_BIT 10
#define SHADOW_SPTE_WP0 X86_BIT(SHADOW_SPTE_WP0_BIT)

#define SHADOW_SPTE_SW_MASK (SHADOW_SPTE_HUGE | SHADOW_SPTE_WP0)
#define SHADOW_SPTE_HW_MASK                                                               \
	(X86_PTE_P | X86_PTE_W | X86_PTE_U | X86_PTE_PWT | X86_PTE_PCD | X86_PTE_A |      \
	 X86_PTE_D | X86_PTE_PS | X86_PTE_G | X86_PTE_ADDR_MASK | X86_PTE_NX)
static_assert((SHADOW_SPTE_SW_MASK & SHADOW_SPTE_HW_MASK) == 0,
	      "shadow software bits collide with hardware bits");
static_assert(SHADOW_SPTE_HUGE != SHADOW_SPTE_WP0, "shadow software bits are distinct");

/* What every shadow non-leaf entry grants: everything.  Rights are enforced
 * by the leaf alone, which carries the guest's rights combined over all
 * levels, so the hardware's combination (AND of R/W and U/S, OR of XD)
 * yields exactly the leaf's. */
#define SHADOW_SPTE_TABLE (X86_PTE_P | X86_PTE_W | X86_PTE_U | X86_PTE_A)

struct shadow_tables {
	struct shadow_pool pool;
	mpa_t root;          /* the first page of the pool, kept across flushes */
	unsigned hv_index;
	uint64_t hv_entry;
};

/* The shadow leaf for a successful walk `w` (A/D already synced) of
 * `access`, mapping machine page `mpa`.  Never grants more than the guest's
 * combined rights: writable only if the guest leaf is dirty, and under
 * CR0.WP = 0 a supervisor write to a read-only page gets a writable,
 * supervisor-only leaf (not executable when SMEP forbids it), as KVM does. */
uint64_t shadow_fill_spte(const struct shadow_walk *w, const struct shadow_cpu *cpu,
			  unsigned access, mpa_t mpa);

/* The 2 MiB shadow leaf equivalent to 4 KiB leaf `spte` of a guest huge
 * page: the frame's base, PS, and PAT moved to bit 12 (SDM 3A table 4-18). */
uint64_t shadow_fill_spte_2m(uint64_t spte);

/* Install `spte` as the shadow leaf for `gva` at `leaf_level` (1, or 2 for a
 * 2 MiB leaf made by shadow_fill_spte_2m), creating tables as needed;
 * guest_level > leaf_level marks the huge page's subtree.  Returns false,
 * with nothing installed, if the pool ran out (the caller evicts and
 * retries). */
bool shadow_fill_install(struct shadow_tables *t, gva_t gva, int guest_level, int leaf_level,
			 uint64_t spte, mpa_t *spte_mpa);

/* Reset the root to the hypervisor entry alone and free every other page. */
void shadow_fill_drop_all(struct shadow_tables *t);

/* Drop the shadow translation of `gva` (the whole subtree for a huge page). */
void shadow_fill_drop_gva(struct shadow_tables *t, gva_t gva);

#endif
