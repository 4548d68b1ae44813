/* Shadow tables: install, drop, flush. */
#include "fill.h"

#include <string.h>

#include "cache.h"
#include "internal.h"

uint64_t shadow_fill_spte(const struct shadow_walk *w, const struct shadow_cpu *cpu,
			  unsigned access, mpa_t mpa)
{
	uint64_t g = w->pte[w->level];
	uint64_t pat = w->level == 1 ? X86_PTE_PAT : X86_PTE_PAT_LARGE;
	/* A and D preset: the guest's bits are synced by the walker, and the
	 * hardware then never needs to write a shadow entry.  G never: a shadow
	 * translation must not outlive the real CR3 reload of a guest CR3 write. */
	uint64_t spte = mpa | X86_PTE_P | X86_PTE_A | (g & (X86_PTE_PWT | X86_PTE_PCD));
	bool sup_write = (access & SHADOW_ACC_WRITE) && !(access & SHADOW_ACC_USER);

	assert(!(mpa & ~X86_PTE_ADDR_MASK));
	if (g & pat)
		spte |= X86_PTE_PAT;
	if (w->user)
		spte |= X86_PTE_U;
	if (w->nx)
		spte |= X86_PTE_NX;
	if (w->write && (g & X86_PTE_D)) {
		/* a clean guest leaf stays read-only until its first write (§4.8) */
		spte |= X86_PTE_W | X86_PTE_D;
	} else if (sup_write && !w->write && !cpu->cr0_wp) {
		/* WP=0 emulated under the real WP=1: the page becomes supervisor
		 * so that no user access rides on the extra write right */
		spte = (spte & ~X86_PTE_U) | X86_PTE_W | X86_PTE_D | SHADOW_SPTE_WP0;
		/* now supervisor, the hardware's SMEP no longer guards a user page */
		if (cpu->cr4_smep && w->user)
			spte |= X86_PTE_NX;
	}
	return spte;
}

uint64_t shadow_fill_spte_2m(uint64_t spte)
{
	uint64_t big = (spte & ~(X86_PTE_ADDR_MASK | X86_PTE_PAT)) | (spte & X86_PTE_ADDR_2M_MASK) |
		       X86_PTE_PS;

	return spte & X86_PTE_PAT ? big | X86_PTE_PAT_LARGE : big;
}

static void free_table(struct shadow_tables *t, mpa_t mpa, int level);

bool shadow_fill_install(struct shadow_tables *t, gva_t gva, int guest_level, int leaf_level,
			 uint64_t spte, mpa_t *spte_mpa)
{
	mpa_t table = t->root;
	int level;

	assert(X86_LEVEL_INDEX(gva, SHADOW_LEVELS) != t->hv_index);
	for (level = SHADOW_LEVELS; level > leaf_level; level--) {
		uint64_t *e = shadow_pool_table(&t->pool, table) + X86_LEVEL_INDEX(gva, level);

		if (level == 2 && (*e & X86_PTE_PS))
			*e = 0; /* a 2 MiB leaf gives way to a table */
		if (!(*e & X86_PTE_P)) {
			mpa_t page;

			if (!shadow_pool_alloc(&t->pool, &page))
				return false;
			*e = page | SHADOW_SPTE_TABLE;
		}
		if (level == guest_level)
			*e |= SHADOW_SPTE_HUGE;
		table = *e & X86_PTE_ADDR_MASK;
	}
	{
		uint64_t *e = shadow_pool_table(&t->pool, table) + X86_LEVEL_INDEX(gva, leaf_level);

		/* a table gives way to a 2 MiB leaf */
		if (leaf_level == 2 && (*e & X86_PTE_P) && !(*e & X86_PTE_PS))
			free_table(t, *e & X86_PTE_ADDR_MASK, 1);
		*spte_mpa = table + 8 * X86_LEVEL_INDEX(gva, leaf_level);
		*e = spte;
	}
	return true;
}

void shadow_fill_drop_all(struct shadow_tables *t)
{
	uint64_t *root = shadow_pool_table(&t->pool, t->root);

	shadow_pool_reset(&t->pool, 1);
	memset(root, 0, X86_PAGE_SIZE);
	root[t->hv_index] = t->hv_entry;
}

/* Free the table at `mpa` (a level-`level` table) and everything below. */
static void free_table(struct shadow_tables *t, mpa_t mpa, int level)
{
	if (level > 1) {
		uint64_t *tab = shadow_pool_table(&t->pool, mpa);
		int i;

		for (i = 0; i < X86_PT_ENTRIES; i++)
			if ((tab[i] & X86_PTE_P) && !(level == 2 && (tab[i] & X86_PTE_PS)))
				free_table(t, tab[i] & X86_PTE_ADDR_MASK, level - 1);
	}
	shadow_pool_free(&t->pool, mpa);
}

void shadow_fill_drop_gva(struct shadow_tables *t, gva_t gva)
{
	mpa_t table = t->root;
	int level;

	if (X86_LEVEL_INDEX(gva, SHADOW_LEVELS) == t->hv_index)
		return;
	for (level = SHADOW_LEVELS; level >= 1; level--) {
		uint64_t *e = shadow_pool_table(&t->pool, table) + X86_LEVEL_INDEX(gva, level);

		if (!(*e & X86_PTE_P))
			return;
		if (level == 1 || (level == 2 && (*e & X86_PTE_PS)) || (*e & SHADOW_SPTE_HUGE)) {
			if (level > 1 && !(*e & X86_PTE_PS))
				free_table(t, *e & X86_PTE_ADDR_MASK, level - 1);
			*e = 0;
			return;
		}
		table = *e & X86_PTE_ADDR_MASK;
	}
}

/* Neighbours mapped per prefetch: an aligned window around the fault. */
#define PREFETCH_WINDOW 16u

unsigned shadow_prefetch(struct shadow *s, const struct shadow_prefetch *pf)
{
	unsigned first = pf->idx & ~(PREFETCH_WINDOW - 1), n = 0, j;

	for (j = first; j < first + PREFETCH_WINDOW; j++) {
		struct shadow_walk w; /* only what shadow_fill_spte reads is set */
		struct shadow_rights r;
		uint64_t g;
		gpa_t gpa;
		int level;

		if (j == pf->idx || (pf->tab[j] & X86_PTE_P))
			continue;
		if (pf->direct) {
			g = pf->huge_pte;
			gpa = pf->guest_pt + (gpa_t)j * X86_PAGE_SIZE;
			level = 2; /* any huge level: PAT is bit 12 */
			r = pf->above;
		} else {
			if (s->mem.read64(s->mem.opaque, pf->guest_pt + 8 * j, &g) != SHADOW_MEM_OK)
				break;
			/* only what the hardware could have cached: present,
			 * valid, accessed (SDM 3A §4.10.2.3 allows caching any
			 * translation whose entries have A set) */
			if (!(g & X86_PTE_P) || !(g & X86_PTE_A) || shadow_walk_reserved(&s->cpu, 1, g))
				continue;
			gpa = g & X86_PTE_ADDR_MASK;
			level = 1;
			r = shadow_rights_and(pf->above, shadow_entry_rights(&s->cpu, g));
		}
		if (gpa >= s->mem.ram_size || s->mem.ram_size - gpa < X86_PAGE_SIZE)
			continue;
		w.level = level;
		w.pte[level] = g;
		w.user = r.user;
		w.write = r.write;
		w.nx = r.nx;
		shadow_cache_set_leaf(s, &pf->tab[j], pf->tab_mpa + 8 * j, 1,
				      shadow_fill_spte(&w, &s->cpu, 0, (mpa_t)gpa));
		n++;
		if (s->hook) {
			struct shadow_event ev = {
				.kind = SHADOW_EV_PREFETCH, .level = level, .gpa = gpa,
				.gva = (pf->gva & ~(gva_t)0x1fffff) | ((gva_t)j << X86_PAGE_SHIFT),
				.spte = pf->tab[j], .spte_mpa = pf->tab_mpa + 8 * j,
			};
			shadow_emit(s, &ev);
		}
	}
	s->stats.prefetched += n;
	return n;
}
