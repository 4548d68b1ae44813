/* Guest page-table walker, Intel SDM Vol. 3A §4.5-§4.8. */
#include "walk.h"

/* Bits hi..lo (inclusive) set. */
#define BIT_RANGE(lo, hi) ((~0ULL >> (63 - (hi))) & ~(X86_BIT(lo) - 1))

/* The IA-32e levels 1 to 4, shared by 4- and 5-level paging. */
#define IA32E_LEVELS                                                                                                                  \
	[1] = { .shift = 12,                                                                                                          \
		.ps = SHADOW_PS_LEAF,                                                                                                 \
		.frame = X86_PTE_ADDR_MASK }, /* 2 MiB page: bits 20:13 reserved (table 4-18) */                                      \
		[2] = { .shift = 21,                                                                                                  \
			.ps = SHADOW_PS_PAGE,                                                                                         \
			.rsvd_page = BIT_RANGE(13, 20),                                                                               \
			.frame =                                                                                                      \
				X86_PTE_ADDR_2M_MASK }, /* 1 GiB page: bits 29:13 reserved, PS itself without Page1GB (table 4-16) */ \
		[3] = { .shift = 30,                                                                                                  \
			.ps = SHADOW_PS_PAGE_1G,                                                                                      \
			.rsvd_page = BIT_RANGE(13, 29),                                                                               \
			.frame =                                                                                                      \
				X86_PTE_ADDR_1G_MASK }, /* PS is reserved in a PML4E (table 4-15) */                                  \
		[4] = { .shift = 39, .ps = SHADOW_PS_RESERVED, .rsvd = X86_PTE_PS }

const struct shadow_mode shadow_mode_long4 = {
	.name = "4-level",
	.levels = 4,
	.entry_size = 8,
	.index_bits = 9,
	.va_bits = 48,
	.cr3_mask = X86_CR3_ADDR_MASK,
	.table_mask = X86_PTE_ADDR_MASK,
	.xd = true,
	.rsvd_hi = 51,
	.level = { IA32E_LEVELS },
};

/* 32-bit paging (§4.3): 4-byte entries, 10 index bits; no reserved bit but
 * in a 4 MiB PDE (SHADOW_PS_PAGE_PSE), no XD, no MAXPHYADDR check (a
 * 4-byte entry holds 32-bit addresses, PSE-36 aside). */
const struct shadow_mode shadow_mode_legacy32 = {
	.name = "32-bit",
	.levels = 2,
	.entry_size = 4,
	.index_bits = 10,
	.va_bits = 32,
	.linear32 = true,
	.cr3_mask = 0xfffff000ull, /* CR3 bits 31:12 (table 4-3) */
	.table_mask = 0xfffff000ull,
	.xd = false,
	.level = {
		[1] = { .shift = 12, .ps = SHADOW_PS_LEAF, .frame = 0xfffff000ull },
		/* 4 MiB page (table 4-4): the frame is bits 31:22 plus PSE-36's
		 * bits 20:13 (leaf_gpa); its reserved bits follow CPUID */
		[2] = { .shift = 22, .ps = SHADOW_PS_PAGE_PSE, .frame = 0xffc00000ull },
	},
};

/* PAE paging (§4.4): 8-byte entries, a PDPT of 4 entries held in registers,
 * PDE and PTE as in 4-level paging (tables 4-9 to 4-11). */
const struct shadow_mode shadow_mode_pae = {
	.name = "PAE",
	.levels = 3,
	.entry_size = 8,
	.index_bits = 9, /* the PDPT index is bits 31:30: 2 bits of a 32-bit address */
	.va_bits = 32,
	.linear32 = true,
	.root_regs = true,
	.cr3_mask = 0xffffffe0ull, /* CR3 bits 31:5: a 32-byte aligned PDPT (table 4-7) */
	.table_mask = X86_PTE_ADDR_MASK,
	.xd = true,
	.rsvd_hi = 62,
	.level = {
		[1] = { .shift = 12, .ps = SHADOW_PS_LEAF, .frame = X86_PTE_ADDR_MASK },
		/* 2 MiB page whatever CR4.PSE says: bits 20:13 reserved (table 4-9) */
		[2] = { .shift = 21, .ps = SHADOW_PS_PAGE, .rsvd_page = BIT_RANGE(13, 20),
			.frame = X86_PTE_ADDR_2M_MASK },
		[3] = { .shift = 30, .ps = SHADOW_PS_RESERVED },
	},
};

/* 5-level paging: a PML5 above the 4 levels, PS reserved in a PML5E as in
 * a PML4E (§4.5.1, table 4-14 for the PML5E). */
const struct shadow_mode shadow_mode_long5 = {
	.name = "5-level",
	.levels = 5,
	.entry_size = 8,
	.index_bits = 9,
	.va_bits = 57,
	.cr3_mask = X86_CR3_ADDR_MASK,
	.table_mask = X86_PTE_ADDR_MASK,
	.xd = true,
	.rsvd_hi = 51,
	.level = { IA32E_LEVELS, [5] = { .shift = 48,
					 .ps = SHADOW_PS_RESERVED,
					 .rsvd = X86_PTE_PS } },
};

/* The reserved bits of a 4 MiB PDE of 32-bit paging (table 4-4): 21:13
 * without PSE-36; with it, M = min(MAXPHYADDR, 40) and bits 21:(M-19). */
static inline uint64_t pse_4m_reserved(const struct shadow_cpu *cpu)
{
	unsigned m = cpu->maxphyaddr < 40 ? cpu->maxphyaddr : 40;

	return cpu->pse36 ? BIT_RANGE(m - 19, 21) : BIT_RANGE(13, 21);
}

/* Reserved in every present entry: address bits at and above MAXPHYADDR,
 * and XD without EFER.NXE (§4.6.1, table 4-12). */
static inline __attribute__((always_inline)) uint64_t reserved_any_level(
	const struct shadow_mode *m, const struct shadow_cpu *cpu)
{
	uint64_t r = m->rsvd_hi && cpu->maxphyaddr <= m->rsvd_hi
			     ? BIT_RANGE(cpu->maxphyaddr, m->rsvd_hi)
			     : 0;

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

	/* entry_size first: the test folds away for the 8-byte modes */
	if (m->entry_size == 4 && l->ps == SHADOW_PS_PAGE_PSE)
		return (pte & X86_PTE_PS) && cpu->cr4_pse ? r | pse_4m_reserved(cpu) : r;
	if ((pte & X86_PTE_PS) && l->ps >= SHADOW_PS_PAGE)
		r |= l->ps == SHADOW_PS_PAGE_1G && !cpu->gbpages ? X86_PTE_PS : l->rsvd_page;
	return r;
}

static __attribute__((noinline)) uint64_t reserved_mask_generic(const struct shadow_mode *m,
								const struct shadow_cpu *cpu,
								int level, uint64_t pte)
{
	return reserved_mask(m, cpu, reserved_any_level(m, cpu), level, pte);
}

uint64_t shadow_walk_reserved_mask(const struct shadow_mode *m, const struct shadow_cpu *cpu,
				   int level, uint64_t pte)
{
	const struct shadow_mode *l4 = &shadow_mode_long4;

	/* the descriptor folds into constants for the hot mode, compiled
	 * apart from the others' */
	if (m == l4)
		return reserved_mask(l4, cpu, reserved_any_level(l4, cpu), level, pte);
	return reserved_mask_generic(m, cpu, level, pte);
}

uint64_t shadow_pae_pdpte_reserved(const struct shadow_cpu *cpu)
{
	uint64_t r = BIT_RANGE(1, 2) | BIT_RANGE(5, 8);

	return r | BIT_RANGE(cpu->maxphyaddr, 63);
}

enum shadow_pdpte_status shadow_pae_load_pdptes(const struct shadow_mem *mem,
						const struct shadow_cpu *cpu, gpa_t cr3,
						uint64_t pdpte[4])
{
	gpa_t pdpt = cr3 & shadow_mode_pae.cr3_mask;
	uint64_t v[4], rsvd = shadow_pae_pdpte_reserved(cpu);

	for (int i = 0; i < 4; i++) {
		if (mem->read64(mem->opaque, pdpt + 8 * (gpa_t)i, &v[i]) != SHADOW_MEM_OK)
			return SHADOW_PDPTE_OUTSIDE;
		/* a reserved bit in a present PDPTE fails the load with #GP (§4.4.1) */
		if ((v[i] & X86_PTE_P) && (v[i] & rsvd))
			return SHADOW_PDPTE_GP;
	}
	memcpy(pdpte, v, sizeof(v));
	return SHADOW_PDPTE_OK;
}

bool shadow_walk_reserved(const struct shadow_mode *m, const struct shadow_cpu *cpu, int level,
			  uint64_t pte)
{
	return pte & shadow_walk_reserved_mask(m, cpu, level, pte);
}

/* Whether a present, valid entry maps a page (bit 7 of a PTE is PAT; of a
 * 32-bit PDE without CR4.PSE, ignored). */
static inline __attribute__((always_inline)) bool is_leaf(const struct shadow_mode *m,
							  const struct shadow_cpu *cpu, int level,
							  uint64_t pte)
{
	enum shadow_mode_ps ps = m->level[level].ps;

	if (m->entry_size == 4 && ps == SHADOW_PS_PAGE_PSE)
		return cpu->cr4_pse && (pte & X86_PTE_PS);
	return ps == SHADOW_PS_LEAF || (ps != SHADOW_PS_RESERVED && (pte & X86_PTE_PS));
}

static inline __attribute__((always_inline)) gpa_t leaf_gpa(const struct shadow_mode *m, int level,
							    uint64_t pte, gva_t gva)
{
	const struct shadow_mode_level *l = &m->level[level];
	gpa_t gpa = (pte & l->frame) | (gva & (X86_BIT(l->shift) - 1));

	/* PSE-36: PDE bits 20:13 are address bits 39:32 (table 4-4); those
	 * beyond M were refused as reserved */
	if (m->entry_size == 4 && l->ps == SHADOW_PS_PAGE_PSE) /* folds away for 8-byte modes */
		gpa |= (pte & BIT_RANGE(13, 20)) << 19;
	return gpa;
}

/* Error code bits describing the access itself (SDM 3A §4.7): W/R, U/S, and
 * I/D only for fetches with SMEP, or with NXE in a mode that has XD (PAE
 * and IA-32e paging: never in 32-bit paging, whatever EFER.NXE says). */
static inline __attribute__((always_inline)) uint32_t access_pferr(const struct shadow_mode *m,
								   const struct shadow_cpu *cpu,
								   unsigned access)
{
	uint32_t e = access & (SHADOW_ACC_WRITE | SHADOW_ACC_USER);

	if ((access & SHADOW_ACC_FETCH) && ((m->xd && cpu->efer_nxe) || cpu->cr4_smep))
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

	assert(m->levels <= SHADOW_WALK_LEVELS);
	/* only the scalars: pte[] and pte_gpa[] are valid for depth levels */
	w->depth = 0;
	w->entry_size = m->entry_size;
	w->level = m->levels;
	w->gpa = 0;
	w->rights = (struct shadow_rights){ 0 };
	w->pferr = 0;
	w->bad_gpa = 0;
	if (!shadow_mode_canonical(m, gva))
		return SHADOW_WALK_GP;
	w->pferr = access_pferr(m, cpu, access);
	if (m->root_regs) {
		/* PAE: a PDPTE register, checked at its load (§4.4.1); not
		 * present, the walk faults here with P = 0 (§4.7) */
		uint64_t pdpte = env->pdpte[shadow_mode_index(m, gva, m->levels) & 3];

		if (!(pdpte & X86_PTE_P))
			return fault(w, m->levels, 0);
		table = pdpte & m->table_mask;
	}
#pragma GCC unroll 5
	for (level = m->root_regs ? m->levels - 1 : m->levels; level >= 1; level--) {
		gpa_t gpa = table + m->entry_size * shadow_mode_index(m, gva, level);
		uint64_t pte;

		w->level = level;
		if (shadow_read_entry(env->mem, gpa, m->entry_size, &pte) != SHADOW_MEM_OK) {
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
		if (is_leaf(m, cpu, level, pte))
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

/* One specialised walker per mode, each a function of its own: each
 * descriptor folds into its code, and the 4-level one is compiled alone. */
#define MODE_WALKER(name, mode)                                                \
	static __attribute__((noinline)) enum shadow_walk_status name(         \
		const struct shadow_walk_env *env, gva_t gva, unsigned access, \
		struct shadow_walk *w)                                         \
	{                                                                      \
		return walk(mode, env, gva, access, w);                        \
	}
MODE_WALKER(walk_long4, &shadow_mode_long4)
MODE_WALKER(walk_legacy32, &shadow_mode_legacy32)
MODE_WALKER(walk_pae, &shadow_mode_pae)
MODE_WALKER(walk_long5, &shadow_mode_long5)
MODE_WALKER(walk_generic, env->mode)

enum shadow_walk_status shadow_walk(const struct shadow_walk_env *env, gva_t gva, unsigned access,
				    struct shadow_walk *w)
{
	if (env->mode == &shadow_mode_long4)
		return walk_long4(env, gva, access, w);
	if (env->mode == &shadow_mode_legacy32)
		return walk_legacy32(env, gva, access, w);
	if (env->mode == &shadow_mode_pae)
		return walk_pae(env, gva, access, w);
	if (env->mode == &shadow_mode_long5)
		return walk_long5(env, gva, access, w);
	return walk_generic(env, gva, access, w);
}

/* How many times a change of the other half of the quadword alone is
 * retried before the update reports a change. */
#define AD32_TRIES 4

enum shadow_ad_status shadow_walk_set_entry_ad32(const struct shadow_mem *mem, gpa_t gpa,
						 uint64_t *pte, uint64_t want, uint64_t *set)
{
	uint64_t old = *pte, bits = want & ~old, q;
	gpa_t at = gpa & ~(gpa_t)7;
	unsigned shift = 8 * (unsigned)(gpa & 4);
	int rc;

	*set = 0;
	if (!bits)
		return SHADOW_AD_OK;
	if (mem->read64(mem->opaque, at, &q) != SHADOW_MEM_OK)
		return SHADOW_AD_OUTSIDE;
	for (int i = 0; i < AD32_TRIES; i++) {
		uint64_t expected = q;

		if ((uint32_t)(q >> shift) != old)
			return SHADOW_AD_CHANGED;
		rc = mem->cmpxchg64(mem->opaque, at, &expected, q | bits << shift);
		if (rc == SHADOW_MEM_OK) {
			*pte = old | bits;
			*set = bits;
			return SHADOW_AD_OK;
		}
		if (rc != SHADOW_MEM_CHANGED)
			return SHADOW_AD_OUTSIDE;
		q = expected; /* the current quadword: is it only the other half? */
	}
	return SHADOW_AD_CHANGED;
}

/* Bits this access must find set in the entry at `level`. */
static uint64_t wanted_ad(const struct shadow_walk *w, int level, unsigned access)
{
	if (level == w->level && (access & SHADOW_ACC_WRITE))
		return X86_PTE_A | X86_PTE_D;
	return X86_PTE_A;
}

/* shadow_walk_set_ad for 4-byte (`four`) or 8-byte entries: inlined
 * twice, so the 8-byte walk pays no test per entry. */
static inline __attribute__((always_inline)) enum shadow_ad_status set_ad(
	const struct shadow_mem *mem, struct shadow_walk *w, unsigned access,
	uint64_t set[SHADOW_WALK_LEVELS + 1], bool four)
{
	int level, l;

	for (level = SHADOW_WALK_LEVELS; level >= 0; level--)
		set[level] = 0;
	/* top down, as the hardware sets them while it walks */
	for (level = w->level + w->depth - 1; level >= w->level; level--) {
		uint64_t old = w->pte[level], want = wanted_ad(w, level, access);
		enum shadow_ad_status st;

		if (!(want & ~old))
			continue;
		st = four ? shadow_walk_set_entry_ad32(mem, w->pte_gpa[level], &w->pte[level], want,
						       &set[level])
			  : shadow_walk_set_entry_ad(mem, w->pte_gpa[level], &w->pte[level], want,
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

enum shadow_ad_status shadow_walk_set_ad(const struct shadow_mem *mem, struct shadow_walk *w,
					 unsigned access, uint64_t set[SHADOW_WALK_LEVELS + 1])
{
	if (w->entry_size == 4)
		return set_ad(mem, w, access, set, true);
	return set_ad(mem, w, access, set, false);
}
