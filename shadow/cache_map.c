/* The cache's books (cache.h): the links of parent lists and reverse maps,
 * the tracked (write-protected) guest frames, the hash of keyed SPs. */
#include "cache.h"

/* ---- links ----------------------------------------------------------------------- */

void cache_link_push(struct shadow_cache *c, uint32_t *head, uint32_t slot)
{
	uint32_t l;

	if (c->link_free) {
		l = c->link_free - 1;
		c->link_free = c->link[l].next;
	} else {
		/* one link per present entry: the pool bounds them */
		assert(c->link_next < c->nlinks);
		l = c->link_next++;
	}
	c->link[l] = (struct cache_link){ slot, *head };
	*head = l + 1;
}

void cache_link_release(struct shadow_cache *c, uint32_t l)
{
	c->link[l].next = c->link_free;
	c->link_free = l + 1;
}

bool cache_link_remove(struct shadow_cache *c, uint32_t *head, uint32_t slot)
{
	uint32_t *pp = head;

	while (*pp) {
		uint32_t l = *pp - 1;

		if (c->link[l].slot == slot) {
			*pp = c->link[l].next;
			cache_link_release(c, l);
			return true;
		}
		pp = &c->link[l].next;
	}
	return false;
}

/* ---- tracking and reverse maps ------------------------------------------------ */

static uint32_t *rmap_head(struct shadow_cache *c, int level, uint64_t e)
{
	gpa_t gpa = e & X86_PTE_ADDR_MASK;

	return level == 1 ? &c->rmap[gpa >> X86_PAGE_SHIFT] : &c->rmap2m[gpa >> 21];
}

/* Take write access away from every leaf on the list. */
static void write_protect(struct shadow *s, uint32_t *head)
{
	struct shadow_cache *c = s->engine;

	while (*head) {
		uint32_t l = *head - 1;

		*cache_slot(s, c->link[l].slot) &= ~X86_PTE_W;
		*head = c->link[l].next;
		cache_link_release(c, l);
		s->tlb_flush = true;
	}
}

void cache_track(struct shadow *s, gpa_t gfn)
{
	struct shadow_cache *c = s->engine;
	uint64_t f = gfn >> X86_PAGE_SHIFT;

	assert(f < c->frames);
	if (c->tracked[f]++ == 0)
		write_protect(s, &c->rmap[f]);
	if (c->tracked2m[f >> 9]++ == 0)
		write_protect(s, &c->rmap2m[f >> 9]);
}

void cache_untrack(struct shadow_cache *c, gpa_t gfn)
{
	uint64_t f = gfn >> X86_PAGE_SHIFT;

	assert(c->tracked[f] && c->tracked2m[f >> 9]);
	c->tracked[f]--;
	c->tracked2m[f >> 9]--;
}

bool cache_tracked(const struct shadow *s, gpa_t gpa)
{
	const struct shadow_cache *c = s->engine;
	uint64_t f = gpa >> X86_PAGE_SHIFT;

	return f < c->frames && c->tracked[f];
}

void cache_set_leaf(struct shadow *s, uint64_t *e, mpa_t at, int level, uint64_t spte)
{
	struct shadow_cache *c = s->engine;
	uint32_t slot = (uint32_t)((at - s->tab.pool.base) >> 3);
	uint64_t old = *e;

	if ((old & X86_PTE_P) && (old & X86_PTE_W))
		cache_link_remove(c, rmap_head(c, level, old), slot);
	if ((spte & X86_PTE_P) && (spte & X86_PTE_W)) {
		uint64_t f = (spte & X86_PTE_ADDR_MASK) >> X86_PAGE_SHIFT;
		bool prot = level == 1 ? c->tracked[f] != 0 : c->tracked2m[f >> 9] != 0;

		if (prot)
			spte &= ~X86_PTE_W;
		else
			cache_link_push(c, rmap_head(c, level, spte), slot);
	}
	*e = spte;
}

/* ---- the hash of keyed SPs ---------------------------------------------------- */

uint32_t cache_bucket(const struct shadow_cache *c, gpa_t gfn)
{
	return (uint32_t)(((gfn >> X86_PAGE_SHIFT) * 0x9e3779b97f4a7c15ull) >> 32) & c->hmask;
}

uint32_t cache_lookup(const struct shadow_cache *c, gpa_t gfn, uint32_t role)
{
	uint32_t i;

	for (i = c->hash[cache_bucket(c, gfn)]; i; i = c->sp[i - 1].hnext)
		if (c->sp[i - 1].gfn == gfn && c->sp[i - 1].role == role)
			return i;
	return CACHE_NIL;
}

void cache_hash_insert(struct shadow_cache *c, uint32_t page)
{
	uint32_t *b = &c->hash[cache_bucket(c, c->sp[page].gfn)];

	c->sp[page].hnext = *b;
	*b = page + 1;
	c->sp[page].flags |= CACHE_SP_KEYED;
}

void cache_hash_remove(struct shadow_cache *c, uint32_t page)
{
	uint32_t *pp = &c->hash[cache_bucket(c, c->sp[page].gfn)];

	while (*pp != page + 1) {
		assert(*pp);
		pp = &c->sp[*pp - 1].hnext;
	}
	*pp = c->sp[page].hnext;
	c->sp[page].flags &= ~CACHE_SP_KEYED;
}
