/* Guest page-table walker, Intel SDM Vol. 3A §4.5-§4.8. */
#include "walk.h"

/* Bits hi..lo (inclusive) set. */
#define BIT_RANGE(lo, hi) ((~0ULL >> (63 - (hi))) & ~(X86_BIT(lo) - 1))

const struct shadow_mode shadow_mode_long4 = {
	.name = "4-level",
	.levels = 4,
	.entry_size = 8,
	.index_bits = 9,
	.va_bits = 48,
	.cr3_mask = X86_CR3_ADDR_MASK,
	.table_mask = X86_PTE_ADDR_MASK,
	.xd = true,
	.level = {
		[1] = { .shift = 12, .ps = SHADOW_PS_LEAF, .frame = X86_PTE_ADDR_MASK },
		/* 2 MiB page: bits 20:13 reserved (table 4-18) */
		[2] = { .shift = 21, .ps = SHADOW_PS_PAGE, .rsvd_page = BIT_RANGE(13, 20),
			.frame = X86_PTE_ADDR_2M_MASK },
		/* 1 GiB page: bits 29:13 reserved, PS itself without Page1GB (table 4-16) */
		[3] = { .shift = 30, .ps = SHADOW_PS_PAGE_1G, .rsvd_page = BIT_RANGE(13, 29),
			.frame = X86_PTE_ADDR_1G_MASK },
		/* PS is reserved in a PML4E (table 4-15) */
		[4] = { .shift = 39, .ps = SHADOW_PS_RESERVED, .rsvd = X86_PTE_PS },
	},
};

/* Reserved in every present entry: address bits at and above MAXPHYADDR,
 * and XD without EFER.NXE (§4.6.1, table 4-12). */
static inline __attribute__((always_inline)) uint64_t reserved_any_level(
	const struct shadow_mode *m, const struct shadow_cpu *cpu)
{
	uint64_t r =
		m->entry_size == 8 && cpu->maxphyaddr < 52 ? BIT_RANGE(cpu->maxphyaddr, 51) : 0;

	return m->xd && !cpu->efer_nxe ? r | X86_PTE_NX : r;
}

/* Reserved bits of a present entry at `level` (SDM 3A §4.5: "must be 0"). */
static inline __attribute__((always_inline)) uint64_t reserved_mask(const struct shadow_mode *m,
								    const struct shadow_cpu *cpu,
								    uint64_t any_level, int level,
								    uint64_t pte)
{
	const struct shadow_mode_level *l = &m->level[level];
	uint64_t r = any_level | l->rsvd;

	if ((pte & X86_PTE_PS) && l->ps >= SHADOW_PS_PAGE)
		r |= l->ps == SHADOW_PS_PAGE_1G && !cpu->gbpages ? X86_PTE_PS : l->rsvd_page;
	return r;
}

uint64_t shadow_walk_reserved_mask(const struct shadow_mode *m, const struct shadow_cpu *cpu,
				   int level, uint64_t pte)
{
	const struct shadow_mode *l4 = &shadow_mode_long4;

	/* the descriptor folds into constants for the mode that exists */
	if (m == l4)
		return reserved_mask(l4, cpu, reserved_any_level(l4, cpu), level, pte);
	return reserved_mask(m, cpu, reserved_any_level(m, cpu), level, pte);
}

bool shadow_walk_reserved(const struct shadow_mode *m, const struct shadow_cpu *cpu, int level,
			  uint64_t pte)
{
	return pte & shadow_walk_reserved_mask(m, cpu, level, pte);
}

/* Whether a present, valid entry maps a page (bit 7 of a PTE is PAT). */
static bool is_leaf(const struct shadow_mode *m, int level, uint64_t pte)
{
	enum shadow_mode_ps ps = m->level[level].ps;

	return ps == SHADOW_PS_LEAF || (ps != SHADOW_PS_RESERVED && (pte & X86_PTE_PS));
}

static gpa_t leaf_gpa(const struct shadow_mode *m, int level, uint64_t pte, gva_t gva)
{
	const struct shadow_mode_level *l = &m->level[level];

	return (pte & l->frame) | (gva & (X86_BIT(l->shift) - 1));
}

/* The entry at `gpa`: 8 bytes, or the half of the aligned quadword that
 * holds a 4-byte entry (the accessor reads aligned quadwords only). */
static inline __attribute__((always_inline)) int read_entry(const struct shadow_mode *m,
							    const struct shadow_mem *mem, gpa_t gpa,
							    uint64_t *pte)
{
	uint64_t q;
	int rc;

	if (m->entry_size == 8)
		return mem->read64(mem->opaque, gpa, pte);
	rc = mem->read64(mem->opaque, gpa & ~7ull, &q);
	*pte = (uint32_t)(q >> (8 * (gpa & 4)));
	return rc;
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

static enum shadow_walk_status fault(struct shadow_walk *w, int level, uint32_t bits)
{
	w->level = level;
	w->pferr |= bits;
	return SHADOW_WALK_PF;
}

/* The walker for mode `m`.  Always inlined, so that for a constant `m`
 * the descriptor folds into the code (what paging_tmpl.h gets by being
 * included once per mode). */
static inline __attribute__((always_inline)) enum shadow_walk_status walk(
	const struct shadow_mode *m, const struct shadow_walk_env *env, gva_t gva, unsigned access,
	struct shadow_walk *w)
{
	const struct shadow_cpu *cpu = env->cpu;
	gpa_t table = env->cr3 & m->cr3_mask;
	uint64_t rsvd = reserved_any_level(m, cpu);
	uint64_t and_bits = X86_PTE_U | X86_PTE_W, or_bits = 0; /* rights combined (§4.6) */
	int level;

	assert(m->levels <= SHADOW_LEVELS);
	/* only the scalars: pte[] and pte_gpa[] are valid for depth levels */
	w->depth = 0;
	w->level = m->levels;
	w->gpa = 0;
	w->rights = (struct shadow_rights){ 0 };
	w->pferr = 0;
	w->bad_gpa = 0;
	if (!shadow_mode_canonical(m, gva))
		return SHADOW_WALK_GP;
	w->pferr = access_pferr(cpu, access);
#pragma GCC unroll 5
	for (level = m->levels; level >= 1; level--) {
		gpa_t gpa = table + m->entry_size * shadow_mode_index(m, gva, level);
		uint64_t pte;

		w->level = level;
		if (read_entry(m, env->mem, gpa, &pte) != SHADOW_MEM_OK) {
			w->bad_gpa = gpa;
			return SHADOW_WALK_BAD_TABLE;
		}
		w->pte[level] = pte;
		w->pte_gpa[level] = gpa;
		w->depth++;
		if (!(pte & X86_PTE_P))
			return fault(w, level, 0);
		/* a reserved bit stops the walk at this level, P=1 (§4.7) */
		if (pte & reserved_mask(m, cpu, rsvd, level, pte))
			return fault(w, level, X86_PF_P | X86_PF_RSVD);
		and_bits &= pte;
		or_bits |= pte;
		if (is_leaf(m, level, pte))
			break;
		table = pte & m->table_mask;
	}
	w->rights = (struct shadow_rights){ .write = and_bits & X86_PTE_W,
					    .user = and_bits & X86_PTE_U,
					    .nx = or_bits & X86_PTE_NX };
	if (!shadow_walk_allows(cpu, w->rights, access))
		return fault(w, level, X86_PF_P);
	w->gpa = leaf_gpa(m, level, w->pte[level], gva);
	return SHADOW_WALK_OK;
}

enum shadow_walk_status shadow_walk(const struct shadow_walk_env *env, gva_t gva, unsigned access,
				    struct shadow_walk *w)
{
	if (env->mode == &shadow_mode_long4)
		return walk(&shadow_mode_long4, env, gva, access, w);
	return walk(env->mode, env, gva, access, w);
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
	for (level = w->level + w->depth - 1; level >= w->level; level--) {
		uint64_t old = w->pte[level], want = wanted_ad(w, level, access);
		enum shadow_ad_status st;

		if (!(want & ~old))
			continue;
		st = shadow_walk_set_entry_ad(mem, w->pte_gpa[level], &w->pte[level], want,
					      &set[level]);
		if (st != SHADOW_AD_OK)
			return st;
		/* a hostile graph can use one entry at several levels: the
		 * lower reads of it now see what was just written */
		for (l = level - 1; l >= w->level; l--)
			if (w->pte_gpa[l] == w->pte_gpa[level] && w->pte[l] == old)
				w->pte[l] = w->pte[level];
	}
	return SHADOW_AD_OK;
}
