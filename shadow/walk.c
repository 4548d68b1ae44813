/* Guest page-table walker, Intel SDM Vol. 3A §4.5-§4.8. */
#include "walk.h"

#include <assert.h>

/* Bits hi..lo (inclusive) set. */
static uint64_t bit_range(unsigned lo, unsigned hi)
{
	assert(lo <= hi && hi < 64);
	return (~0ULL >> (63 - hi)) & ~(X86_BIT(lo) - 1);
}

/* Reserved in every present entry: address bits at and above MAXPHYADDR,
 * and XD without EFER.NXE. */
static uint64_t reserved_any_level(const struct shadow_cpu *cpu)
{
	uint64_t m = cpu->maxphyaddr < 52 ? bit_range(cpu->maxphyaddr, 51) : 0;

	return cpu->efer_nxe ? m : m | X86_PTE_NX;
}

/* Reserved bits of a present entry at `level` (SDM 3A §4.5, tables 4-14 to
 * 4-19: "must be 0"; §4.6.1 and table 4-12 for XD without NXE). */
static uint64_t reserved_mask(const struct shadow_cpu *cpu, uint64_t any_level, int level,
			      uint64_t pte)
{
	uint64_t m = any_level;

	switch (level) {
	case 4: /* PS is reserved in a PML4E */
		m |= X86_PTE_PS;
		break;
	case 3: /* 1 GiB page: bits 29:13 reserved, PS itself without Page1GB */
		if (pte & X86_PTE_PS)
			m |= cpu->gbpages ? bit_range(13, 29) : X86_PTE_PS;
		break;
	case 2: /* 2 MiB page: bits 20:13 reserved */
		if (pte & X86_PTE_PS)
			m |= bit_range(13, 20);
		break;
	default: /* level 1: bit 7 is PAT, nothing beyond address and XD */
		break;
	}
	return m;
}

bool shadow_walk_reserved(const struct shadow_cpu *cpu, int level, uint64_t pte)
{
	return pte & reserved_mask(cpu, reserved_any_level(cpu), level, pte);
}

/* Bit 7 means "maps a page" only in a PDPTE or PDE; in a PTE it is PAT. */
static bool is_leaf(int level, uint64_t pte)
{
	return level == 1 || (pte & X86_PTE_PS);
}

static gpa_t leaf_gpa(int level, uint64_t pte, gva_t gva)
{
	static const uint64_t frame[SHADOW_LEVELS] = {
		X86_PTE_ADDR_MASK, X86_PTE_ADDR_2M_MASK, X86_PTE_ADDR_1G_MASK, 0,
	};

	assert(level >= 1 && level <= 3);
	return (pte & frame[level - 1]) | (gva & (X86_LEVEL_SIZE(level) - 1));
}

/* Error code bits describing the access itself (SDM 3A §4.7): W/R, U/S, and
 * I/D only for fetches when NXE or SMEP is on. */
static uint32_t access_pferr(const struct shadow_cpu *cpu, unsigned access)
{
	uint32_t e = access & (SHADOW_ACC_WRITE | SHADOW_ACC_USER);

	if ((access & SHADOW_ACC_FETCH) && (cpu->efer_nxe || cpu->cr4_smep))
		e |= X86_PF_I;
	return e;
}

bool shadow_walk_allows(const struct shadow_cpu *cpu, bool user, bool write, bool nx,
			unsigned access)
{
	bool no_exec = nx && cpu->efer_nxe;

	if (access & SHADOW_ACC_USER) {
		if (!user)
			return false;
		if (access & SHADOW_ACC_WRITE)
			return write;
		return !(access & SHADOW_ACC_FETCH) || !no_exec;
	}
	if (access & SHADOW_ACC_FETCH)
		return !(user && cpu->cr4_smep) && !no_exec;
	/* SMAP: explicit supervisor data access to a user page needs AC=1 */
	if (user && cpu->cr4_smap && !cpu->rflags_ac)
		return false;
	if (access & SHADOW_ACC_WRITE)
		return write || !cpu->cr0_wp;
	return true;
}

static enum shadow_walk_status fault(struct shadow_walk *w, int level, uint32_t bits)
{
	w->level = level;
	w->pferr |= bits;
	return SHADOW_WALK_PF;
}

enum shadow_walk_status shadow_walk(const struct shadow_walk_env *env, gva_t gva,
				    unsigned access, struct shadow_walk *w)
{
	const struct shadow_cpu *cpu = env->cpu;
	gpa_t table = env->cr3 & X86_CR3_ADDR_MASK;
	uint64_t rsvd = reserved_any_level(cpu);
	uint64_t and_bits = X86_PTE_U | X86_PTE_W, or_bits = 0; /* rights combined (§4.6) */
	int level;

	/* only the scalars: pte[] and pte_gpa[] are valid for depth levels */
	w->depth = 0;
	w->level = SHADOW_LEVELS;
	w->gpa = 0;
	w->user = w->write = w->nx = false;
	w->pferr = 0;
	w->bad_gpa = 0;
	if (!x86_is_canonical48(gva))
		return SHADOW_WALK_GP;
	w->pferr = access_pferr(cpu, access);
	for (level = SHADOW_LEVELS; level >= 1; level--) {
		gpa_t gpa = table + 8 * X86_LEVEL_INDEX(gva, level);
		uint64_t pte;

		w->level = level;
		if (env->mem->read64(env->mem->opaque, gpa, &pte) != SHADOW_MEM_OK) {
			w->bad_gpa = gpa;
			return SHADOW_WALK_BAD_TABLE;
		}
		w->pte[level] = pte;
		w->pte_gpa[level] = gpa;
		w->depth++;
		if (!(pte & X86_PTE_P))
			return fault(w, level, 0);
		/* a reserved bit stops the walk at this level, P=1 (§4.7) */
		if (pte & reserved_mask(cpu, rsvd, level, pte))
			return fault(w, level, X86_PF_P | X86_PF_RSVD);
		and_bits &= pte;
		or_bits |= pte;
		if (is_leaf(level, pte))
			break;
		table = pte & X86_PTE_ADDR_MASK;
	}
	w->user = and_bits & X86_PTE_U;
	w->write = and_bits & X86_PTE_W;
	w->nx = or_bits & X86_PTE_NX;
	if (!shadow_walk_allows(cpu, w->user, w->write, w->nx, access))
		return fault(w, level, X86_PF_P);
	w->gpa = leaf_gpa(level, w->pte[level], gva);
	return SHADOW_WALK_OK;
}

/* Bits this access must find set in the entry at `level`. */
static uint64_t wanted_ad(const struct shadow_walk *w, int level, unsigned access)
{
	if (level == w->level && (access & SHADOW_ACC_WRITE))
		return X86_PTE_A | X86_PTE_D;
	return X86_PTE_A;
}

enum shadow_ad_status shadow_walk_set_ad(const struct shadow_mem *mem, struct shadow_walk *w,
					 unsigned access, uint64_t set[SHADOW_LEVELS + 1])
{
	int level, l;

	for (level = SHADOW_LEVELS; level >= 0; level--)
		set[level] = 0;
	/* top down, as the hardware sets them while it walks */
	for (level = SHADOW_LEVELS; level >= w->level; level--) {
		uint64_t old = w->pte[level];
		uint64_t bits = wanted_ad(w, level, access) & ~old;
		uint64_t expected = old;
		int rc;

		if (!bits)
			continue;
		rc = mem->cmpxchg64(mem->opaque, w->pte_gpa[level], &expected, old | bits);
		if (rc == SHADOW_MEM_CHANGED)
			return SHADOW_AD_CHANGED;
		if (rc != SHADOW_MEM_OK)
			return SHADOW_AD_OUTSIDE;
		set[level] = bits;
		/* a hostile graph can use one entry at several levels: the
		 * lower reads of it now see what was just written */
		for (l = level; l >= w->level; l--)
			if (w->pte_gpa[l] == w->pte_gpa[level] && w->pte[l] == old)
				w->pte[l] = old | bits;
	}
	return SHADOW_AD_OK;
}
