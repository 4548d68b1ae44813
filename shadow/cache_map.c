/* The cache's books (cache.h): the links of parent lists and reverse maps,
 * the tracked (write-protected) guest frames, the hash of keyed SPs. */
#include "cache.h"

/* ---- links ----------------------------------------------------------------------- */

void cache_link_push(struct shadow_cache *c, uint32_t *head, uint32_t slot)
{
	uint32_t l;

	if (c->link_free) {
		l = c->link_free - 1;
		c->link_free = cache_link(c)[l].next;
	} else {
		/* one link per present entry: the pool bounds them */
		assert(c->link_next < c->nlinks);
		l = c->link_next++;
	}
	cache_link(c)[l] = (struct cache_link){ slot, *head };
	*head = l + 1;
}

void cache_link_release(struct shadow_cache *c, uint32_t l)
{
	cache_link(c)[l].next = c->link_free;
	c->link_free = l + 1;
}

bool cache_link_remove(struct shadow_cache *c, uint32_t *head, uint32_t slot)
{
	uint32_t *pp = head;

	while (*pp) {
		uint32_t l = *pp - 1;

		if (cache_link(c)[l].slot == slot) {
			*pp = cache_link(c)[l].next;
			cache_link_release(c, l);
			return true;
		}
		pp = &cache_link(c)[l].next;
	}
	return false;
}

/* ---- tracking and reverse maps ------------------------------------------------ */

static uint32_t *rmap_head(struct shadow_cache *c, int level, uint64_t e)
{
	gpa_t gpa = e & X86_PTE_ADDR_MASK;

	return level == 1 ? &cache_rmap(c)[gpa >> X86_PAGE_SHIFT] : &cache_rmap2m(c)[gpa >> 21];
}

/* Take write access away from every leaf on the list. */
static void write_protect(struct shadow *s, uint32_t *head)
{
	struct shadow_cache *c = cache_of(s);

	while (*head) {
		uint32_t l = *head - 1;

		uint64_t *e = cache_slot(s, cache_link(c)[l].slot);

		shadow_pool_set(&s->tab.pool, e, *e & ~X86_PTE_W);
		*head = cache_link(c)[l].next;
		cache_link_release(c, l);
		s->core->tlb_flush = true;
	}
}

void cache_track(struct shadow *s, gpa_t gfn)
{
	struct shadow_cache *c = cache_of(s);
	uint64_t f = gfn >> X86_PAGE_SHIFT;

	assert(f < c->frames);
	if (cache_tracked(c)[f]++ == 0)
		write_protect(s, &cache_rmap(c)[f]);
	if (cache_tracked2m(c)[f >> 9]++ == 0)
		write_protect(s, &cache_rmap2m(c)[f >> 9]);
}

void cache_untrack(struct shadow_cache *c, gpa_t gfn)
{
	uint64_t f = gfn >> X86_PAGE_SHIFT;

	assert(cache_tracked(c)[f] && cache_tracked2m(c)[f >> 9]);
	cache_tracked(c)[f]--;
	cache_tracked2m(c)[f >> 9]--;
}

bool cache_is_tracked(const struct shadow *s, gpa_t gpa)
{
	const struct shadow_cache *c = cache_of(s);
	uint64_t f = gpa >> X86_PAGE_SHIFT;

	return f < c->frames && cache_tracked(c)[f];
}

void cache_set_leaf(struct shadow *s, uint64_t *e, mpa_t at, int level, uint64_t spte)
{
	struct shadow_cache *c = cache_of(s);
	uint32_t slot = (uint32_t)((at - s->tab.pool.base) >> 3);
	uint64_t old = *e;

	/* device windows lie past RAM: no guest table there to protect, no
	 * reverse map to keep */
	if ((old & X86_PTE_P) && (old & X86_PTE_W) &&
	    ((old & X86_PTE_ADDR_MASK) >> X86_PAGE_SHIFT) < c->frames)
		cache_link_remove(c, rmap_head(c, level, old), slot);
	if ((spte & X86_PTE_P) && ((spte & X86_PTE_ADDR_MASK) >> X86_PAGE_SHIFT) >= c->frames) {
		shadow_pool_set(&s->tab.pool, e, spte);
		return;
	}
	if ((spte & X86_PTE_P) && (spte & X86_PTE_W)) {
		uint64_t f = (spte & X86_PTE_ADDR_MASK) >> X86_PAGE_SHIFT;
		bool prot = level == 1 ? cache_tracked(c)[f] != 0 : cache_tracked2m(c)[f >> 9] != 0;

		if (prot)
			spte &= ~X86_PTE_W;
		else
			cache_link_push(c, rmap_head(c, level, spte), slot);
	}
	shadow_pool_set(&s->tab.pool, e, spte);
}

/* ---- the hash of keyed SPs ---------------------------------------------------- */

uint32_t cache_bucket(const struct shadow_cache *c, gpa_t gfn)
{
	return (uint32_t)(((gfn >> X86_PAGE_SHIFT) * 0x9e3779b97f4a7c15ull) >> 32) & c->hmask;
}

uint32_t cache_lookup(const struct shadow_cache *c, gpa_t gfn, uint32_t role)
{
	uint32_t i;

	for (i = cache_hash(c)[cache_bucket(c, gfn)]; i; i = cache_sp(c)[i - 1].hnext)
		if (cache_sp(c)[i - 1].gfn == gfn && cache_sp(c)[i - 1].role == role)
			return i;
	return CACHE_NIL;
}

void cache_hash_insert(struct shadow_cache *c, uint32_t page)
{
	uint32_t *b = &cache_hash(c)[cache_bucket(c, cache_sp(c)[page].gfn)];

	cache_sp(c)[page].hnext = *b;
	*b = page + 1;
	cache_sp(c)[page].flags |= CACHE_SP_KEYED;
}

void cache_hash_remove(struct shadow_cache *c, uint32_t page)
{
	uint32_t *pp = &cache_hash(c)[cache_bucket(c, cache_sp(c)[page].gfn)];

	while (*pp != page + 1) {
		assert(*pp);
		pp = &cache_sp(c)[*pp - 1].hnext;
	}
	*pp = cache_sp(c)[page].hnext;
	cache_sp(c)[page].flags &= ~CACHE_SP_KEYED;
}
