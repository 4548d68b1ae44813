/* The shadow cache: keyed shadow pages, write-protected guest tables,
 * reverse maps (see cache.h for the design). */
#include "cache.h"

#include "invariant.h"

static void reset(struct shadow *s);
/* ---- dropping SPs --------------------------------------------------------------- */

static void zap(struct shadow *s, uint32_t page);

static void forget_root(struct shadow_cache *c, uint32_t page)
{
	for (unsigned i = 0; i < c->nroots; i++)
		if (c->roots[i] == page) {
			c->roots[i] = c->roots[--c->nroots];
			return;
		}
}

/* Remove the link in entry `i` of SP `page`; an SP left without parents goes. */
static void unlink_entry(struct shadow *s, uint32_t page, unsigned i)
{
	struct shadow_cache *c = cache_of(s);
	uint64_t *e = cache_table(s, page) + i;
	uint32_t child = cache_page_of(s, *e);
	bool found;

	shadow_pool_set(&s->tab.pool, e, 0);
	s->core->tlb_flush = true;
	found = cache_link_remove(c, &cache_sp(c)[child].parents, page * X86_PT_ENTRIES + i);
	assert(found);
	(void)found;
	if (!cache_sp(c)[child].parents && !(cache_sp(c)[child].flags & CACHE_SP_ROOT))
		zap(s, child);
}

/* Clear every entry of SP `page` (a root keeps the hypervisor entry). */
static void clear_table(struct shadow *s, uint32_t page)
{
	struct shadow_cache *c = cache_of(s);
	unsigned level = cache_role_level(cache_sp(c)[page].role);
	uint64_t *tab = cache_table(s, page);

	for (unsigned i = 0; i < X86_PT_ENTRIES; i++) {
		uint64_t e = tab[i];

		if (!(e & X86_PTE_P) || (level == SHADOW_LEVELS && i == s->core->hv_index))
			continue;
		if (level == 1 || (e & X86_PTE_PS)) {
			cache_set_leaf(s, &tab[i], cache_entry_mpa(s, page, i), (int)level, 0);
			s->core->tlb_flush = true;
		} else {
			unlink_entry(s, page, i);
		}
	}
}

/* Drop SP `page`: unlinked from every parent, its entries cleared (children
 * left without parents go too), its page freed.  Depth is bounded by the
 * four levels. */
static void zap(struct shadow *s, uint32_t page)
{
	struct shadow_cache *c = cache_of(s);
	struct cache_sp *sp = &cache_sp(c)[page];

	assert(sp->flags & CACHE_SP_USED);
	while (sp->parents) {
		uint32_t l = sp->parents - 1;

		shadow_pool_set(&s->tab.pool, cache_slot(s, cache_link(c)[l].slot), 0);
		sp->parents = cache_link(c)[l].next;
		cache_link_release(c, l);
	}
	if (sp->flags & CACHE_SP_KEYED) {
		cache_hash_remove(c, page);
		if (!(sp->role & CACHE_ROLE_DIRECT))
			cache_untrack(c, sp->gfn);
	}
	if (sp->flags & CACHE_SP_VOLATILE)
		c->nvolatile--;
	if (sp->flags & CACHE_SP_ROOT)
		forget_root(c, page);
	clear_table(s, page);
	*sp = (struct cache_sp){ 0 };
	shadow_pool_free(&s->tab.pool, s->state, shadow_pool_mpa(&s->tab.pool, page));
	s->core->tlb_flush = true;
}

/* The current root stops being a cached shadow of its guest table: emptied
 * and volatile until the next CR3 write. */
static void root_to_volatile(struct shadow *s, uint32_t page)
{
	struct shadow_cache *c = cache_of(s);
	struct cache_sp *sp = &cache_sp(c)[page];

	if (sp->flags & CACHE_SP_KEYED) {
		cache_hash_remove(c, page);
		cache_untrack(c, sp->gfn);
		forget_root(c, page);
		sp->flags |= CACHE_SP_VOLATILE;
		c->nvolatile++;
	}
	clear_table(s, page);
}

/* Drop every volatile SP but the current root. */
static void drop_volatile(struct shadow *s)
{
	struct shadow_cache *c = cache_of(s);

	for (uint32_t p = 0; c->nvolatile && p < s->tab.pool.pages; p++)
		if ((cache_sp(c)[p].flags & CACHE_SP_VOLATILE) && p != c->cur)
			zap(s, p);
}

/* ---- allocation, eviction, roots ---------------------------------------------- */

static bool new_sp(struct shadow *s, gpa_t gfn, uint32_t role, uint32_t *page)
{
	struct shadow_cache *c = cache_of(s);
	uint64_t f = gfn >> X86_PAGE_SHIFT;
	mpa_t mpa;

	if (!shadow_pool_alloc(&s->tab.pool, s->state, &mpa))
		return false;
	*page = shadow_pool_index(&s->tab.pool, mpa);
	cache_sp(c)[*page] = (struct cache_sp){ .gfn = gfn, .role = role, .flags = CACHE_SP_USED };
	/* a volatile table gets another try after a while (CACHE_FLOOD_RETRY) */
	if (!(role & CACHE_ROLE_DIRECT) && f < c->frames &&
	    (cache_flood(c)[f] & CACHE_FLOOD_VOLATILE) && cache_flood_old(c, f)) {
		cache_flood(c)[f] = 0;
		cache_flood_at(c)[f] = (uint16_t)c->stamp;
	}
	if (role & CACHE_ROLE_DIRECT) {
		cache_hash_insert(c, *page);
	} else if (f < c->frames && !(cache_flood(c)[f] & CACHE_FLOOD_VOLATILE)) {
		cache_hash_insert(c, *page);
		cache_track(s, gfn);
	} else {
		cache_sp(c)[*page].flags |= CACHE_SP_VOLATILE;
		c->nvolatile++;
	}
	return true;
}

/* Drop the least recently used cached root other than `keep`. */
static bool evict_one(struct shadow *s, uint32_t keep)
{
	struct shadow_cache *c = cache_of(s);
	uint32_t victim = UINT32_MAX;

	for (unsigned i = 0; i < c->nroots; i++)
		if (c->roots[i] != keep &&
		    (victim == UINT32_MAX ||
		     cache_sp(c)[c->roots[i]].stamp < cache_sp(c)[victim].stamp))
			victim = c->roots[i];
	if (victim == UINT32_MAX)
		return false;
	zap(s, victim);
	shadow_note_evict(s, 0);
	return true;
}

static uint32_t root_role(const struct shadow *s)
{
	return SHADOW_LEVELS | CACHE_ROLE_W | CACHE_ROLE_U | cache_cpu_role(&s->core->cpu) |
	       (cache_g32(s) ? CACHE_ROLE_G32 : 0);
}

/* Make the root for s->core->vcr3 current: the cached one, or a new one (which
 * may evict other roots, or empty the pool: the reset makes the root). */
static void switch_root(struct shadow *s)
{
	struct shadow_cache *c = cache_of(s);
	uint32_t found = cache_lookup(c, s->core->vcr3, root_role(s));
	uint32_t page;

	if (found) {
		page = found - 1;
		s->core->stats.roots_reused++;
	} else {
		if (c->nroots == CACHE_ROOTS)
			evict_one(s, UINT32_MAX);
		while (!new_sp(s, s->core->vcr3, root_role(s), &page)) {
			if (!evict_one(s, UINT32_MAX)) {
				reset(s);
				shadow_note_evict(s, 0);
				return;
			}
		}
		cache_sp(c)[page].flags |= CACHE_SP_ROOT;
		shadow_pool_set(&s->tab.pool, cache_table(s, page) + s->core->hv_index,
				s->core->hv_entry);
		if (cache_sp(c)[page].flags & CACHE_SP_KEYED)
			c->roots[c->nroots++] = page;
	}
	cache_sp(c)[page].stamp = ++c->stamp;
	c->cur = page;
	s->core->root = shadow_pool_mpa(&s->tab.pool, page);
}

/* ---- life cycle ------------------------------------------------------------------ */

/* Where each array goes after the header, cache-line aligned, for the pool
 * and RAM configured; returns the bytes (ops->state_size). */
static uint64_t layout(const struct shadow *s, struct shadow_cache *c)
{
	uint32_t pages = s->tab.pool.pages, hsize = 1;
	uint64_t at;

	while (hsize < pages)
		hsize <<= 1;
	c->hmask = hsize - 1;
	c->nlinks = pages * X86_PT_ENTRIES;
	c->frames = s->mem.ram_size >> X86_PAGE_SHIFT;
	c->frames2m = (s->mem.ram_size + (1u << 21) - 1) >> 21;
	/* each array `off` holds n of `type`, from the next cache line */
#define LINE(x) (((x) + 63) & ~(uint64_t)63)
#define PLACE(off, n, type) (c->off = at, at = LINE(at + (uint64_t)(n) * sizeof(type)))
	at = LINE(sizeof(*c));
	PLACE(sp_off, pages, struct cache_sp);
	PLACE(hash_off, hsize, uint32_t);
	PLACE(link_off, c->nlinks, struct cache_link);
	PLACE(rmap_off, c->frames + 1, uint32_t);
	PLACE(rmap2m_off, c->frames2m + 1, uint32_t);
	PLACE(tracked_off, c->frames + 1, uint16_t);
	PLACE(tracked2m_off, c->frames2m + 1, uint32_t);
	PLACE(flood_off, c->frames + 1, uint8_t);
	PLACE(flood_at_off, c->frames + 1, uint16_t);
#undef PLACE
#undef LINE
	return at;
}

static uint64_t state_size(const struct shadow *s)
{
	struct shadow_cache c;

	return layout(s, &c);
}

static bool create(struct shadow *s)
{
	layout(s, cache_of(s));
	reset(s);
	s->core->tlb_flush = false; /* nothing was ever loaded */
	return true;
}

static void reset(struct shadow *s)
{
	struct shadow_cache *c = cache_of(s);
	uint32_t pages = s->tab.pool.pages;

	shadow_pool_reset(&s->tab.pool, 0);
	memset(cache_sp(c), 0, pages * sizeof(struct cache_sp));
	memset(cache_hash(c), 0, (c->hmask + 1) * sizeof(uint32_t));
	c->link_next = c->link_free = 0;
	memset(cache_rmap(c), 0, c->frames * sizeof(uint32_t));
	memset(cache_rmap2m(c), 0, c->frames2m * sizeof(uint32_t));
	memset(cache_tracked(c), 0, c->frames * sizeof(uint16_t));
	memset(cache_tracked2m(c), 0, c->frames2m * sizeof(uint32_t));
	memset(cache_flood(c), 0, c->frames * sizeof(uint8_t));
	memset(cache_flood_at(c), 0, c->frames * sizeof(uint16_t));
	c->nroots = 0;
	c->nvolatile = 0;
	s->core->tlb_flush = true;
	switch_root(s); /* the pool is empty: this cannot evict */
}

/* ---- guest events ---------------------------------------------------------------- */

static void set_cr3(struct shadow *s)
{
	struct shadow_cache *c = cache_of(s);
	uint32_t old = c->cur;
	bool old_volatile = cache_sp(c)[old].flags & CACHE_SP_VOLATILE;

	drop_volatile(s);
	switch_root(s);
	if (old_volatile && c->cur != old && (cache_sp(c)[old].flags & CACHE_SP_VOLATILE))
		zap(s, old);
}

/* Drop the shadow leaf (or the huge page's subtree) of gva in the current root. */
static void drop_gva(struct shadow *s, gva_t gva)
{
	struct shadow_cache *c = cache_of(s);
	uint32_t page = c->cur;

	if (X86_LEVEL_INDEX(gva, SHADOW_LEVELS) == s->core->hv_index)
		return;
	for (int level = SHADOW_LEVELS; level >= 1; level--) {
		unsigned i = X86_LEVEL_INDEX(gva, level);
		uint64_t *e = cache_table(s, page) + i;

		if (!(*e & X86_PTE_P))
			return;
		if (level == 1 || (*e & X86_PTE_PS)) {
			cache_set_leaf(s, e, cache_entry_mpa(s, page, i), level, 0);
			s->core->tlb_flush = true;
			return;
		}
		if (*e & SHADOW_SPTE_HUGE) {
			unlink_entry(s, page, i);
			return;
		}
		page = cache_page_of(s, *e);
	}
}

/* A volatile root's entries are checked against the guest PML4 again: an
 * entry whose guest PML4E no longer leads to the same SP goes. */
static void revalidate_root(struct shadow *s)
{
	struct shadow_cache *c = cache_of(s);
	uint64_t *tab = cache_table(s, c->cur);

	/* a 32-bit root has no guest entries: what it links to shadows the
	 * same directory, volatile as well, and drop_volatile took it */
	if (cache_g32(s))
		return;
	for (unsigned i = 0; i < X86_PT_ENTRIES; i++) {
		const struct cache_sp *child;
		uint64_t g;

		if (!(tab[i] & X86_PTE_P) || i == s->core->hv_index)
			continue;
		child = &cache_sp(c)[cache_page_of(s, tab[i])];
		if (s->mem.read64(s->mem.opaque, s->core->vcr3 + 8 * i, &g) != SHADOW_MEM_OK ||
		    !(g & X86_PTE_P) ||
		    shadow_walk_reserved(&shadow_mode_long4, &s->core->cpu, SHADOW_LEVELS, g) ||
		    (g & X86_PTE_ADDR_MASK) != child->gfn ||
		    child->role != ((SHADOW_LEVELS - 1) | cache_cpu_role(&s->core->cpu) |
				    cache_role_rights(shadow_entry_rights(&s->core->cpu, g))))
			unlink_entry(s, c->cur, i);
	}
}

static void invlpg(struct shadow *s, gva_t gva)
{
	struct shadow_cache *c = cache_of(s);

	/* invlpg also empties every paging-structure cache (SDM 3A §4.10.4.1):
	 * only volatile SPs can be stale */
	drop_volatile(s);
	if (cache_sp(c)[c->cur].flags & CACHE_SP_VOLATILE)
		revalidate_root(s);
	if (x86_is_canonical48(gva))
		drop_gva(s, gva);
}

static void drop_gva_canonical(struct shadow *s, gva_t gva)
{
	if (x86_is_canonical48(gva))
		drop_gva(s, gva);
}

static void unprotect(struct shadow *s, gpa_t gpa, bool self)
{
	struct shadow_cache *c = cache_of(s);
	gpa_t gfn = gpa & X86_PAGE_MASK;
	uint64_t f = gfn >> X86_PAGE_SHIFT;
	struct shadow_event ev = { .kind = SHADOW_EV_UNPROTECT, .gpa = gfn };
	uint32_t i;

	s->core->stats.unprotects++;
again:
	for (i = cache_hash(c)[cache_bucket(c, gfn)]; i; i = cache_sp(c)[i - 1].hnext) {
		const struct cache_sp *sp = &cache_sp(c)[i - 1];

		if (sp->gfn != gfn || (sp->role & CACHE_ROLE_DIRECT))
			continue;
		s->core->stats.zaps++;
		ev.zapped++;
		if (i - 1 == c->cur)
			root_to_volatile(s, i - 1);
		else
			zap(s, i - 1);
		goto again; /* the chain changed under us */
	}
	assert(!cache_tracked(c)[f]);
	/* unprotects further apart than CACHE_FLOOD_RETRY root switches are
	 * no flood */
	if (!(cache_flood(c)[f] & CACHE_FLOOD_VOLATILE) && cache_flood_old(c, f))
		cache_flood(c)[f] = 0;
	cache_flood_at(c)[f] = (uint16_t)c->stamp;
	if ((cache_flood(c)[f] & CACHE_FLOOD_COUNT) < CACHE_FLOOD_COUNT)
		cache_flood(c)[f]++;
	if (!(cache_flood(c)[f] & CACHE_FLOOD_VOLATILE) &&
	    (self || (cache_flood(c)[f] & CACHE_FLOOD_COUNT) >= CACHE_FLOOD)) {
		cache_flood(c)[f] |= CACHE_FLOOD_VOLATILE;
		s->core->stats.floods++;
	}
	ev.volatile_table = cache_flood(c)[f] & CACHE_FLOOD_VOLATILE;
	shadow_emit(s, &ev);
}

/* ---- install --------------------------------------------------------------------- */

static bool huge_ok(const struct shadow *s, const struct shadow_walk *w)
{
	const struct shadow_cache *c = cache_of(s);

	return shadow_huge_fits(s, w) && !cache_tracked2m(c)[w->gpa >> 21];
}

/* The key of a direct SP below shadow entry `level` (level 2 or 1 of the
 * walk's huge leaf `w->pte[w->level]`): the frame it maps, the rights over
 * the whole walk and the leaf's D and memory type. */
static void direct_key(const struct shadow *s, const struct shadow_walk *w, int level,
		       struct shadow_rights *acc, gpa_t *gfn, uint32_t *role)
{
	uint64_t g = w->pte[w->level];

	*acc = w->rights;
	*gfn = w->gpa & ~(X86_LEVEL_SIZE(level) - 1);
	*role = (uint32_t)(level - 1) | CACHE_ROLE_DIRECT | cache_role_rights(*acc) |
		(g & X86_PTE_D ? CACHE_ROLE_DIRTY : 0) | (g & X86_PTE_PWT ? CACHE_ROLE_PWT : 0) |
		(g & X86_PTE_PCD ? CACHE_ROLE_PCD : 0) |
		(g & X86_PTE_PAT_LARGE ? CACHE_ROLE_PAT : 0) | cache_cpu_role(&s->core->cpu);
}

/* 32-bit paging (cache.h, CACHE_ROLE_G32): the key of the SP below shadow
 * entry `level` for gva.  The root's entry 0 and the next level's entries
 * 0-3 lead to the directory's quarters with every right; a shadow level-2
 * entry is half of a guest PDE's 4 MiB: the half of its page table, or of
 * its 4 MiB page (direct). */
static void child_key32(const struct shadow *s, const struct shadow_walk *w, gva_t gva, int level,
			struct shadow_rights *acc, gpa_t *gfn, uint32_t *role)
{
	uint32_t base = CACHE_ROLE_G32 | cache_cpu_role(&s->core->cpu);

	if (level > 2) {
		unsigned q = level == 3 ? X86_LEVEL_INDEX(gva, 3) : 0;

		*gfn = s->core->vcr3;
		*role = (uint32_t)(level - 1) | CACHE_ROLE_W | CACHE_ROLE_U | base |
			(uint32_t)q << CACHE_ROLE_QUAD_SHIFT;
	} else if (w->level == 1) {
		*acc = shadow_rights_and(*acc, shadow_entry_rights(&s->core->cpu, w->pte[2]));
		*gfn = w->pte[2] & X86_PTE_ADDR_MASK;
		*role = 1 | cache_role_rights(*acc) | base |
			(uint32_t)(X86_LEVEL_INDEX(gva, 2) & 1) << CACHE_ROLE_QUAD_SHIFT;
	} else {
		direct_key(s, w, level, acc, gfn, role);
	}
}

/* The key of the SP below entry `level` of the walk. */
static void child_key(const struct shadow *s, const struct shadow_walk *w, gva_t gva, int level,
		      struct shadow_rights *acc, gpa_t *gfn, uint32_t *role)
{
	if (cache_g32(s)) {
		child_key32(s, w, gva, level, acc, gfn, role);
	} else if (level > w->level) {
		*acc = shadow_rights_and(*acc, shadow_entry_rights(&s->core->cpu, w->pte[level]));
		*gfn = w->pte[level] & X86_PTE_ADDR_MASK;
		*role = (uint32_t)(level - 1) | cache_role_rights(*acc) |
			cache_cpu_role(&s->core->cpu);
	} else {
		direct_key(s, w, level, acc, gfn, role);
	}
}

enum { INSTALL_OK, INSTALL_NOMEM };

static int try_install(struct shadow *s, gva_t gva, const struct shadow_walk *w, uint64_t *spte,
		       mpa_t *spte_mpa, int *out_level)
{
	struct shadow_cache *c = cache_of(s);
	struct shadow_rights acc = SHADOW_RIGHTS_ALL;
	uint32_t page = c->cur;
	int level;

	for (level = SHADOW_LEVELS; level >= 2; level--) {
		unsigned i = X86_LEVEL_INDEX(gva, level);
		uint64_t *e = cache_table(s, page) + i;
		mpa_t at = cache_entry_mpa(s, page, i);
		uint32_t role, child;
		gpa_t gfn;

		if (level == 2 && level <= w->level && huge_ok(s, w)) {
			uint64_t big = shadow_spte_2m(*spte);

			if ((*e & X86_PTE_P) && !(*e & X86_PTE_PS))
				unlink_entry(s, page, i);
			cache_set_leaf(s, e, at, 2, big);
			*spte = *e;
			*spte_mpa = at;
			*out_level = 2;
			s->core->stats.huge_leaves++;
			return INSTALL_OK;
		}
		child_key(s, w, gva, level, &acc, &gfn, &role);
		if (*e & X86_PTE_P) {
			if (level == 2 && (*e & X86_PTE_PS)) {
				cache_set_leaf(s, e, at, 2, 0);
				s->core->tlb_flush = true;
			} else {
				child = cache_page_of(s, *e);
				if (cache_sp(c)[child].gfn == gfn &&
				    cache_sp(c)[child].role == role) {
					page = child;
					continue;
				}
				unlink_entry(s, page, i);
			}
		}
		child = cache_lookup(c, gfn, role);
		if (child)
			child--;
		else if (!new_sp(s, gfn, role, &child))
			return INSTALL_NOMEM;
		shadow_pool_set(&s->tab.pool, e,
				shadow_pool_mpa(&s->tab.pool, child) | SHADOW_SPTE_TABLE |
					(level <= w->level ? SHADOW_SPTE_HUGE : 0));
		cache_link_push(c, &cache_sp(c)[child].parents, page * X86_PT_ENTRIES + i);
		page = child;
	}
	{
		unsigned i = X86_LEVEL_INDEX(gva, 1);
		mpa_t at = cache_entry_mpa(s, page, i);
		uint64_t *e = cache_table(s, page) + i;
		cache_set_leaf(s, e, at, 1, *spte);
		*spte = *e;
		*spte_mpa = at;
		*out_level = 1;
	}
	return INSTALL_OK;
}

static void prefetch_at(struct shadow *s, gva_t gva, uint64_t huge_pte, mpa_t spte_mpa)
{
	uint32_t page = shadow_pool_index(&s->tab.pool, spte_mpa & X86_PAGE_MASK);
	const struct shadow_cache *c = cache_of(s);
	const struct cache_sp *sp = &cache_sp(c)[page];
	struct shadow_prefetch pf = {
		.tab = cache_table(s, page),
		.tab_mpa = spte_mpa & X86_PAGE_MASK,
		.idx = X86_LEVEL_INDEX(gva, 1),
		.gva = gva,
		.direct = sp->role & CACHE_ROLE_DIRECT,
		.guest_pt = sp->gfn,
		.huge_pte = huge_pte,
		.above = cache_role_to_rights(sp->role),
	};

	assert(cache_role_level(sp->role) == 1);
	shadow_prefetch(s, &pf);
}

static bool fast_fault(struct shadow *s, gva_t gva, unsigned access,
		       struct shadow_fault_result *res)
{
	struct shadow_cache *c = cache_of(s);
	const struct cache_sp *sps = cache_sp(c); /* hoisted: the loop would reload the offset */
	uint32_t page = c->cur;
	struct shadow_rights r;
	const struct cache_sp *sp;
	uint64_t pte, now, set;
	unsigned i;
	gpa_t at, gpa;

	/* 4-level only: a 32-bit leaf's guest entry is 4 bytes (the full walk) */
	if ((sps[page].flags & CACHE_SP_VOLATILE) || (sps[page].role & CACHE_ROLE_G32))
		return false;
	for (int level = SHADOW_LEVELS; level > 1; level--) {
		uint64_t e = cache_table(s, page)[X86_LEVEL_INDEX(gva, level)];

		if (!(e & X86_PTE_P) || (level == 2 && (e & X86_PTE_PS)))
			return false;
		/* the hot path: shadow_check vouches for the pointer, the bound
		 * keeps even a broken one from reading past the SPs */
		page = (uint32_t)(((e & X86_PTE_ADDR_MASK) - s->tab.pool.base) >> X86_PAGE_SHIFT);
		if (page >= s->tab.pool.pages || (sps[page].flags & CACHE_SP_VOLATILE) ||
		    (sps[page].role & CACHE_ROLE_DIRECT))
			return false;
	}
	sp = &sps[page];
	i = X86_LEVEL_INDEX(gva, 1);
	at = sp->gfn + 8 * i;
	if (s->mem.read64(s->mem.opaque, at, &pte) != SHADOW_MEM_OK || !(pte & X86_PTE_P) ||
	    shadow_walk_reserved(&shadow_mode_long4, &s->core->cpu, 1, pte))
		return false;
	r = shadow_rights_and(cache_role_to_rights(sp->role),
			      shadow_entry_rights(&s->core->cpu, pte));
	gpa = pte & X86_PTE_ADDR_MASK;
	if (!shadow_walk_allows(&s->core->cpu, r, access) || gpa >= s->mem.ram_size ||
	    ((access & SHADOW_ACC_WRITE) && cache_tracked(c)[gpa >> X86_PAGE_SHIFT]))
		return false;
	/* A (and D on a write) in the PTE only: the upper entries' A bits are
	 * set, or their tables' shadows would be gone (§4.8) */
	now = pte;
	if (shadow_walk_set_entry_ad(&s->mem, at, &now,
				     X86_PTE_A | (access & SHADOW_ACC_WRITE ? X86_PTE_D : 0),
				     &set) != SHADOW_AD_OK)
		return false;
	s->core->stats.a_sets += !!(set & X86_PTE_A);
	s->core->stats.d_sets += !!(set & X86_PTE_D);
	cache_set_leaf(s, cache_table(s, page) + i, cache_entry_mpa(s, page, i), 1,
		       shadow_spte_leaf(&s->core->cpu, now, 1, r, access, (mpa_t)gpa));
	s->core->stats.fills[1]++;
	s->core->stats.fast_fills++;
	*res = (struct shadow_fault_result){ .status = SHADOW_FILLED,
					     .gpa = gpa | (gva & ~X86_PAGE_MASK),
					     .level = 1 };
	/* as after a full walk: prefetch around a page accessed before */
	if ((s->core->opts & SHADOW_OPT_PREFETCH) && (pte & X86_PTE_A))
		prefetch_at(s, gva, 0, cache_entry_mpa(s, page, i));
	return true;
}

static bool install(struct shadow *s, gva_t gva, const struct shadow_walk *w, uint64_t *spte,
		    mpa_t *spte_mpa, int *level)
{
	struct shadow_cache *c = cache_of(s);
	uint64_t want = *spte;
	bool emptied = false;

	for (;;) {
		*spte = want;
		if (try_install(s, gva, w, spte, spte_mpa, level) == INSTALL_OK)
			return true;
		if (evict_one(s, c->cur))
			continue;
		if (emptied)
			return false;
		reset(s);
		shadow_note_evict(s, gva);
		emptied = true;
	}
}

static void prefetch(struct shadow *s, gva_t gva, const struct shadow_walk *w, mpa_t spte_mpa)
{
	prefetch_at(s, gva, w->pte[w->level], spte_mpa);
}

/* The keyed control bits changed: their own root, as at a CR3 write. */
static void set_cpu(struct shadow *s)
{
	set_cr3(s);
	s->core->tlb_flush = true;
}

const struct shadow_engine_ops shadow_cache_ops = {
	.state_size = state_size,
	.create = create,
	.reset = reset,
	.set_cr3 = set_cr3,
	.set_cpu = set_cpu,
	.invlpg = invlpg,
	.drop_gva = drop_gva_canonical,
	.fast_fault = fast_fault,
	.tracked = cache_is_tracked,
	.unprotect = unprotect,
	.install = install,
	.prefetch = prefetch,
	.set_leaf = cache_set_leaf,
	.check = shadow_check_cache,
};
