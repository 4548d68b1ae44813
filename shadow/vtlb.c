/* The virtual TLB: shadow tables as a tree below one root. */
#include "vtlb.h"

#include "invariant.h"

/* Reset the root to the hypervisor entry alone and free every other page. */
static void reset(struct shadow *s)
{
	struct shadow_tables *t = &s->tab;
	uint64_t *root = shadow_pool_table(&t->pool, s->core->root);

	shadow_pool_reset(&t->pool, 1);
	shadow_pool_zero(&t->pool, s->core->root);
	shadow_pool_set(&t->pool, root + s->core->hv_index, s->core->hv_entry);
}

/* Nothing in the state block but the pool's free stack. */
static uint64_t state_size(const struct shadow *s)
{
	(void)s;
	return 0;
}

static bool create(struct shadow *s)
{
	if (!shadow_pool_alloc(&s->tab.pool, s->state, &s->core->root))
		return false;
	reset(s);
	return true;
}

/* Free the table at `mpa` (a level-`level` table) and everything below. */
static void free_table(struct shadow *s, mpa_t mpa, int level)
{
	struct shadow_tables *t = &s->tab;

	if (level > 1) {
		uint64_t *tab = shadow_pool_table(&t->pool, mpa);
		int i;

		for (i = 0; i < X86_PT_ENTRIES; i++)
			if ((tab[i] & X86_PTE_P) && !(level == 2 && (tab[i] & X86_PTE_PS)))
				free_table(s, tab[i] & X86_PTE_ADDR_MASK, level - 1);
	}
	shadow_pool_free(&t->pool, s->state, mpa);
}

/* Drop the shadow translation of `gva` (the whole subtree for a huge page). */
static void drop_gva(struct shadow *s, gva_t gva)
{
	struct shadow_tables *t = &s->tab;
	mpa_t table = s->core->root;
	int level;

	if (X86_LEVEL_INDEX(gva, SHADOW_LEVELS) == s->core->hv_index)
		return;
	for (level = SHADOW_LEVELS; level >= 1; level--) {
		uint64_t *e = shadow_pool_table(&t->pool, table) + X86_LEVEL_INDEX(gva, level);

		if (!(*e & X86_PTE_P))
			return;
		if (shadow_spte_is_leaf(level, *e) || (*e & SHADOW_SPTE_HUGE)) {
			if (level > 1 && !(*e & X86_PTE_PS))
				free_table(s, *e & X86_PTE_ADDR_MASK, level - 1);
			shadow_pool_set(&t->pool, e, 0);
			return;
		}
		table = *e & X86_PTE_ADDR_MASK;
	}
}

static void set_cr3(struct shadow *s)
{
	shadow_drop_all(s, SHADOW_FLUSH_CR3, 0);
}

static void set_cpu(struct shadow *s)
{
	shadow_drop_all(s, SHADOW_FLUSH_CPU_STATE, 0);
}

static void invlpg(struct shadow *s, gva_t gva)
{
	if (x86_is_canonical48(gva))
		drop_gva(s, gva);
}

/* Nothing is write-protected: no guest table is tracked. */
static bool tracked(const struct shadow *s, gpa_t gpa)
{
	(void)s;
	(void)gpa;
	return false;
}

static void unprotect(struct shadow *s, gpa_t gpa, bool self)
{
	(void)s;
	(void)gpa;
	(void)self;
}

/* Install `spte` as the shadow leaf for `gva` at `leaf_level` (1, or 2 for a
 * 2 MiB leaf made by shadow_spte_2m), creating tables as needed;
 * guest_level > leaf_level marks the huge page's subtree.  Returns false,
 * with nothing installed, if the pool ran out. */
static bool install_at(struct shadow *s, gva_t gva, int guest_level, int leaf_level, uint64_t spte,
		       mpa_t *spte_mpa)
{
	struct shadow_tables *t = &s->tab;
	mpa_t table = s->core->root;
	uint64_t *e;
	int level;

	assert(X86_LEVEL_INDEX(gva, SHADOW_LEVELS) != s->core->hv_index);
	for (level = SHADOW_LEVELS; level > leaf_level; level--) {
		e = shadow_pool_table(&t->pool, table) + X86_LEVEL_INDEX(gva, level);
		if (level == 2 && (*e & X86_PTE_PS))
			shadow_pool_set(&t->pool, e, 0); /* a 2 MiB leaf gives way to a table */
		if (!(*e & X86_PTE_P)) {
			mpa_t page;

			if (!shadow_pool_alloc(&t->pool, s->state, &page))
				return false;
			shadow_pool_set(&t->pool, e, page | SHADOW_SPTE_TABLE);
		}
		if (level == guest_level && !(*e & SHADOW_SPTE_HUGE))
			shadow_pool_set(&t->pool, e, *e | SHADOW_SPTE_HUGE);
		table = *e & X86_PTE_ADDR_MASK;
	}
	e = shadow_pool_table(&t->pool, table) + X86_LEVEL_INDEX(gva, leaf_level);
	/* a table gives way to a 2 MiB leaf */
	if (leaf_level == 2 && (*e & X86_PTE_P) && !(*e & X86_PTE_PS))
		free_table(s, *e & X86_PTE_ADDR_MASK, 1);
	*spte_mpa = table + 8 * X86_LEVEL_INDEX(gva, leaf_level);
	shadow_pool_set(&t->pool, e, spte);
	return true;
}

/* A 2 MiB leaf where SHADOW_OPT_HUGE allows, else a 4 KiB leaf. */
static inline bool try_install(struct shadow *s, gva_t gva, const struct shadow_walk *w,
			       uint64_t *spte, mpa_t *spte_mpa, int *leaf_level)
{
	if (shadow_huge_fits(s, w)) {
		*spte = shadow_spte_2m(*spte);
		if (!install_at(s, gva, w->level, 2, *spte, spte_mpa))
			return false;
		s->core->stats.huge_leaves++;
		*leaf_level = 2;
		return true;
	}
	*leaf_level = 1;
	return install_at(s, gva, w->level, 1, *spte, spte_mpa);
}

/* A full pool is emptied once: the virtual TLB keeps nothing worth more. */
static bool install(struct shadow *s, gva_t gva, const struct shadow_walk *w, uint64_t *spte,
		    mpa_t *spte_mpa, int *leaf_level)
{
	uint64_t want = *spte;

	if (try_install(s, gva, w, spte, spte_mpa, leaf_level))
		return true;
	shadow_drop_all(s, SHADOW_FLUSH_EVICT, gva);
	*spte = want;
	return try_install(s, gva, w, spte, spte_mpa, leaf_level);
}

static void prefetch(struct shadow *s, gva_t gva, const struct shadow_walk *w, mpa_t spte_mpa)
{
	struct shadow_prefetch pf = {
		.tab_mpa = spte_mpa & X86_PAGE_MASK,
		.idx = X86_LEVEL_INDEX(gva, 1),
		.gva = gva,
		.direct = w->level > 1,
		.huge_pte = w->pte[w->level],
		.above = w->rights,
	};

	pf.tab = shadow_pool_table(&s->tab.pool, pf.tab_mpa);
	if (pf.direct) {
		pf.guest_pt = w->gpa & X86_PTE_ADDR_2M_MASK;
	} else {
		pf.guest_pt = w->pte_gpa[1] & X86_PAGE_MASK;
		pf.above = SHADOW_RIGHTS_ALL;
		for (int level = SHADOW_LEVELS; level > 1; level--)
			pf.above = shadow_rights_and(
				pf.above, shadow_entry_rights(&s->core->cpu, w->pte[level]));
	}
	shadow_prefetch(s, &pf);
}

static void set_leaf(struct shadow *s, uint64_t *e, mpa_t at, int level, uint64_t spte)
{
	(void)at;
	(void)level;
	shadow_pool_set(&s->tab.pool, e, spte);
}

const struct shadow_engine_ops shadow_vtlb_ops = {
	.state_size = state_size,
	.create = create,
	.reset = reset,
	.set_cr3 = set_cr3,
	.set_cpu = set_cpu,
	.invlpg = invlpg,
	.drop_gva = drop_gva,
	.fast_fault = NULL, /* every hidden fault walks: nothing vouches for the guest tables */
	.tracked = tracked,
	.unprotect = unprotect,
	.install = install,
	.prefetch = prefetch,
	.set_leaf = set_leaf,
	.check = shadow_check_vtlb,
};
