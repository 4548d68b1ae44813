/* The shadow cache: keyed shadow pages, write-protected guest tables,
 * reverse maps (see cache.h for the design). */
#include "cache.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

/* An SP's role: its level, and what beyond the guest table's address makes
 * two shadows of it differ. */
#define ROLE_LEVEL 0x7u
#define ROLE_DIRECT 0x8u   /* maps part of a guest huge page */
#define ROLE_W 0x10u       /* rights combined above (direct: over the walk) */
#define ROLE_U 0x20u
#define ROLE_NX 0x40u
#define ROLE_DIRTY 0x80u   /* direct: the guest huge leaf's D */
#define ROLE_PWT 0x100u    /* direct: the guest huge leaf's memory type bits */
#define ROLE_PCD 0x200u
#define ROLE_PAT 0x400u
#define ROLE_CPU_SHIFT 11  /* the control bits the shadow was built under */

#define SP_USED 0x1u
#define SP_KEYED 0x2u      /* in the hash; a non-direct one tracks its table */
#define SP_VOLATILE 0x4u   /* dropped at every guest CR3 write and invlpg */
#define SP_ROOT 0x8u

#define FLOOD_VOLATILE 0x80u
#define FLOOD_COUNT 0x7fu

#define NIL 0u /* list and chain indices are stored plus one */

struct sp {
	gpa_t gfn;        /* guest table (direct: first GPA mapped) */
	uint32_t role;
	uint32_t hnext;   /* hash chain: page + 1 */
	uint32_t parents; /* list of entries linking here: link + 1 */
	uint32_t stamp;   /* roots: last use */
	uint32_t flags;
};

/* One present shadow entry, named by its slot (pool page * 512 + index):
 * each link is either an entry pointing to an SP (on that SP's parent list)
 * or a writable leaf (on a reverse map), so pages * 512 links suffice. */
struct link {
	uint32_t slot;
	uint32_t next;
};

struct shadow_cache {
	struct sp *sp;         /* per pool page */
	uint32_t *hash;
	uint32_t hmask;
	struct link *link;
	uint32_t nlinks, link_next, link_free;
	uint64_t frames, frames2m;
	uint32_t *rmap;        /* per guest 4 KiB frame: writable 4 KiB leaves */
	uint32_t *rmap2m;      /* per guest 2 MiB frame: writable 2 MiB leaves */
	uint16_t *tracked;     /* per 4 KiB frame: keyed SPs of that table */
	uint32_t *tracked2m;   /* per 2 MiB frame: the sum over its 4 KiB frames */
	uint8_t *flood;        /* per 4 KiB frame: unprotects | FLOOD_VOLATILE */
	uint32_t roots[CACHE_ROOTS];
	unsigned nroots;
	uint32_t cur;          /* the current root's page */
	uint32_t stamp;
	uint32_t nvolatile;
};

/* ---- small helpers ------------------------------------------------------------- */

static uint64_t *slot_ptr(const struct shadow *s, uint32_t slot)
{
	return s->tab.pool.host + slot;
}

static uint64_t *table_of(const struct shadow *s, uint32_t page)
{
	return s->tab.pool.host + (size_t)page * X86_PT_ENTRIES;
}

/* Machine address of entry i of SP `page` (what reverse maps and events name). */
static mpa_t entry_mpa(const struct shadow *s, uint32_t page, unsigned i)
{
	return s->tab.pool.base + 8 * ((mpa_t)page * X86_PT_ENTRIES + i);
}

static uint32_t page_of_entry(const struct shadow *s, uint64_t e)
{
	assert(shadow_pool_contains(&s->tab.pool, e & X86_PTE_ADDR_MASK));
	return shadow_pool_index(&s->tab.pool, e & X86_PTE_ADDR_MASK);
}

static uint32_t role_rights(struct shadow_rights r)
{
	return (r.write ? ROLE_W : 0) | (r.user ? ROLE_U : 0) | (r.nx ? ROLE_NX : 0);
}

static struct shadow_rights rights_of_role(uint32_t role)
{
	return (struct shadow_rights){ role & ROLE_W, role & ROLE_U, role & ROLE_NX };
}

/* CR0.WP, CR4.SMEP, CR4.SMAP and EFER.NXE change what a shadow leaf grants
 * (fill.c): every SP is keyed by them, so that a guest toggling one switches
 * roots instead of dropping every shadow, and shadows built under one
 * setting are never used under another. */
static uint32_t cpu_role(const struct shadow_cpu *cpu)
{
	return (uint32_t)(cpu->cr0_wp | cpu->cr4_smep << 1 | cpu->cr4_smap << 2 |
			  cpu->efer_nxe << 3) << ROLE_CPU_SHIFT;
}

static unsigned role_level(uint32_t role)
{
	return role & ROLE_LEVEL;
}

/* ---- links ----------------------------------------------------------------------- */

static void link_push(struct shadow_cache *c, uint32_t *head, uint32_t slot)
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
	c->link[l] = (struct link){ slot, *head };
	*head = l + 1;
}

static void link_release(struct shadow_cache *c, uint32_t l)
{
	c->link[l].next = c->link_free;
	c->link_free = l + 1;
}

static bool link_remove(struct shadow_cache *c, uint32_t *head, uint32_t slot)
{
	uint32_t *pp = head;

	while (*pp) {
		uint32_t l = *pp - 1;

		if (c->link[l].slot == slot) {
			*pp = c->link[l].next;
			link_release(c, l);
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
	struct shadow_cache *c = s->cache;

	while (*head) {
		uint32_t l = *head - 1;

		*slot_ptr(s, c->link[l].slot) &= ~X86_PTE_W;
		*head = c->link[l].next;
		link_release(c, l);
		s->tlb_flush = true;
	}
}

static void track(struct shadow *s, gpa_t gfn)
{
	struct shadow_cache *c = s->cache;
	uint64_t f = gfn >> X86_PAGE_SHIFT;

	assert(f < c->frames);
	if (c->tracked[f]++ == 0)
		write_protect(s, &c->rmap[f]);
	if (c->tracked2m[f >> 9]++ == 0)
		write_protect(s, &c->rmap2m[f >> 9]);
}

static void untrack(struct shadow_cache *c, gpa_t gfn)
{
	uint64_t f = gfn >> X86_PAGE_SHIFT;

	assert(c->tracked[f] && c->tracked2m[f >> 9]);
	c->tracked[f]--;
	c->tracked2m[f >> 9]--;
}

bool shadow_cache_tracked(const struct shadow *s, gpa_t gpa)
{
	uint64_t f = gpa >> X86_PAGE_SHIFT;

	return s->cache && f < s->cache->frames && s->cache->tracked[f];
}

void shadow_cache_set_leaf(struct shadow *s, uint64_t *e, mpa_t at, int level, uint64_t spte)
{
	struct shadow_cache *c = s->cache;
	uint32_t slot;
	uint64_t old = *e;

	if (!c) {
		*e = spte;
		return;
	}
	slot = (uint32_t)((at - s->tab.pool.base) >> 3);
	if ((old & X86_PTE_P) && (old & X86_PTE_W))
		link_remove(c, rmap_head(c, level, old), slot);
	if ((spte & X86_PTE_P) && (spte & X86_PTE_W)) {
		uint64_t f = (spte & X86_PTE_ADDR_MASK) >> X86_PAGE_SHIFT;
		bool prot = level == 1 ? c->tracked[f] != 0 : c->tracked2m[f >> 9] != 0;

		if (prot)
			spte &= ~X86_PTE_W;
		else
			link_push(c, rmap_head(c, level, spte), slot);
	}
	*e = spte;
}

/* ---- the hash of keyed SPs ---------------------------------------------------- */

static uint32_t bucket(const struct shadow_cache *c, gpa_t gfn)
{
	return (uint32_t)(((gfn >> X86_PAGE_SHIFT) * 0x9e3779b97f4a7c15ull) >> 32) & c->hmask;
}

static uint32_t lookup(const struct shadow_cache *c, gpa_t gfn, uint32_t role)
{
	uint32_t i;

	for (i = c->hash[bucket(c, gfn)]; i; i = c->sp[i - 1].hnext)
		if (c->sp[i - 1].gfn == gfn && c->sp[i - 1].role == role)
			return i;
	return NIL;
}

static void hash_insert(struct shadow_cache *c, uint32_t page)
{
	uint32_t *b = &c->hash[bucket(c, c->sp[page].gfn)];

	c->sp[page].hnext = *b;
	*b = page + 1;
	c->sp[page].flags |= SP_KEYED;
}

static void hash_remove(struct shadow_cache *c, uint32_t page)
{
	uint32_t *pp = &c->hash[bucket(c, c->sp[page].gfn)];

	while (*pp != page + 1) {
		assert(*pp);
		pp = &c->sp[*pp - 1].hnext;
	}
	*pp = c->sp[page].hnext;
	c->sp[page].flags &= ~SP_KEYED;
}

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
	struct shadow_cache *c = s->cache;
	uint64_t *e = table_of(s, page) + i;
	uint32_t child = page_of_entry(s, *e);
	bool found;

	*e = 0;
	s->tlb_flush = true;
	found = link_remove(c, &c->sp[child].parents, page * X86_PT_ENTRIES + i);
	assert(found);
	(void)found;
	if (!c->sp[child].parents && !(c->sp[child].flags & SP_ROOT))
		zap(s, child);
}

/* Clear every entry of SP `page` (a root keeps the hypervisor entry). */
static void clear_table(struct shadow *s, uint32_t page)
{
	struct shadow_cache *c = s->cache;
	unsigned level = role_level(c->sp[page].role);
	uint64_t *tab = table_of(s, page);

	for (unsigned i = 0; i < X86_PT_ENTRIES; i++) {
		uint64_t e = tab[i];

		if (!(e & X86_PTE_P) || (level == SHADOW_LEVELS && i == s->tab.hv_index))
			continue;
		if (level == 1 || (e & X86_PTE_PS)) {
			shadow_cache_set_leaf(s, &tab[i], entry_mpa(s, page, i),
					      (int)level, 0);
			s->tlb_flush = true;
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
	struct shadow_cache *c = s->cache;
	struct sp *sp = &c->sp[page];

	assert(sp->flags & SP_USED);
	while (sp->parents) {
		uint32_t l = sp->parents - 1;

		*slot_ptr(s, c->link[l].slot) = 0;
		sp->parents = c->link[l].next;
		link_release(c, l);
	}
	if (sp->flags & SP_KEYED) {
		hash_remove(c, page);
		if (!(sp->role & ROLE_DIRECT))
			untrack(c, sp->gfn);
	}
	if (sp->flags & SP_VOLATILE)
		c->nvolatile--;
	if (sp->flags & SP_ROOT)
		forget_root(c, page);
	clear_table(s, page);
	*sp = (struct sp){ 0 };
	shadow_pool_free(&s->tab.pool, shadow_pool_mpa(&s->tab.pool, page));
	s->tlb_flush = true;
}

/* The current root stops being a cached shadow of its guest table: emptied
 * and volatile until the next CR3 write. */
static void root_to_volatile(struct shadow *s, uint32_t page)
{
	struct shadow_cache *c = s->cache;
	struct sp *sp = &c->sp[page];

	if (sp->flags & SP_KEYED) {
		hash_remove(c, page);
		untrack(c, sp->gfn);
		forget_root(c, page);
		sp->flags |= SP_VOLATILE;
		c->nvolatile++;
	}
	clear_table(s, page);
}

/* Drop every volatile SP but the current root. */
static void drop_volatile(struct shadow *s)
{
	struct shadow_cache *c = s->cache;

	for (uint32_t p = 0; c->nvolatile && p < s->tab.pool.pages; p++)
		if ((c->sp[p].flags & SP_VOLATILE) && p != c->cur)
			zap(s, p);
}

/* ---- allocation, eviction, roots ---------------------------------------------- */

static bool new_sp(struct shadow *s, gpa_t gfn, uint32_t role, uint32_t *page)
{
	struct shadow_cache *c = s->cache;
	uint64_t f = gfn >> X86_PAGE_SHIFT;
	mpa_t mpa;

	if (!shadow_pool_alloc(&s->tab.pool, &mpa))
		return false;
	*page = shadow_pool_index(&s->tab.pool, mpa);
	c->sp[*page] = (struct sp){ .gfn = gfn, .role = role, .flags = SP_USED };
	if (role & ROLE_DIRECT) {
		hash_insert(c, *page);
	} else if (f < c->frames && !(c->flood[f] & FLOOD_VOLATILE)) {
		hash_insert(c, *page);
		track(s, gfn);
	} else {
		c->sp[*page].flags |= SP_VOLATILE;
		c->nvolatile++;
	}
	return true;
}

/* Drop the least recently used cached root other than `keep`. */
static bool evict_one(struct shadow *s, uint32_t keep)
{
	struct shadow_cache *c = s->cache;
	uint32_t victim = UINT32_MAX;

	for (unsigned i = 0; i < c->nroots; i++)
		if (c->roots[i] != keep &&
		    (victim == UINT32_MAX || c->sp[c->roots[i]].stamp < c->sp[victim].stamp))
			victim = c->roots[i];
	if (victim == UINT32_MAX)
		return false;
	zap(s, victim);
	shadow_note_evict(s, 0);
	return true;
}

static uint32_t root_role(const struct shadow *s)
{
	return SHADOW_LEVELS | ROLE_W | ROLE_U | cpu_role(&s->cpu);
}

/* Make the root for s->vcr3 current: the cached one, or a new one (which
 * may evict other roots, or empty the pool: the reset makes the root). */
static void switch_root(struct shadow *s)
{
	struct shadow_cache *c = s->cache;
	uint32_t found = lookup(c, s->vcr3, root_role(s));
	uint32_t page;

	if (found) {
		page = found - 1;
		s->stats.roots_reused++;
	} else {
		if (c->nroots == CACHE_ROOTS)
			evict_one(s, UINT32_MAX);
		while (!new_sp(s, s->vcr3, root_role(s), &page)) {
			if (!evict_one(s, UINT32_MAX)) {
				shadow_cache_reset(s);
				shadow_note_evict(s, 0);
				return;
			}
		}
		c->sp[page].flags |= SP_ROOT;
		table_of(s, page)[s->tab.hv_index] = s->tab.hv_entry;
		if (c->sp[page].flags & SP_KEYED)
			c->roots[c->nroots++] = page;
	}
	c->sp[page].stamp = ++c->stamp;
	c->cur = page;
	s->tab.root = shadow_pool_mpa(&s->tab.pool, page);
}

/* ---- life cycle ------------------------------------------------------------------ */

bool shadow_cache_create(struct shadow *s)
{
	struct shadow_cache *c = calloc(1, sizeof(*c));
	uint32_t pages = s->tab.pool.pages, hsize = 1;

	if (!c)
		return false;
	while (hsize < pages)
		hsize <<= 1;
	c->hmask = hsize - 1;
	c->nlinks = pages * X86_PT_ENTRIES;
	c->frames = s->mem.ram_size >> X86_PAGE_SHIFT;
	c->frames2m = (s->mem.ram_size + (1u << 21) - 1) >> 21;
	c->sp = calloc(pages, sizeof(*c->sp));
	c->hash = calloc(hsize, sizeof(*c->hash));
	c->link = calloc(c->nlinks, sizeof(*c->link));
	c->rmap = calloc(c->frames + 1, sizeof(*c->rmap));
	c->rmap2m = calloc(c->frames2m + 1, sizeof(*c->rmap2m));
	c->tracked = calloc(c->frames + 1, sizeof(*c->tracked));
	c->tracked2m = calloc(c->frames2m + 1, sizeof(*c->tracked2m));
	c->flood = calloc(c->frames + 1, sizeof(*c->flood));
	s->cache = c;
	if (!c->sp || !c->hash || !c->link || !c->rmap || !c->rmap2m || !c->tracked ||
	    !c->tracked2m || !c->flood) {
		shadow_cache_destroy(s);
		return false;
	}
	shadow_cache_reset(s);
	s->tlb_flush = false; /* nothing was ever loaded */
	return true;
}

void shadow_cache_destroy(struct shadow *s)
{
	struct shadow_cache *c = s->cache;

	if (!c)
		return;
	free(c->sp);
	free(c->hash);
	free(c->link);
	free(c->rmap);
	free(c->rmap2m);
	free(c->tracked);
	free(c->tracked2m);
	free(c->flood);
	free(c);
	s->cache = NULL;
}

void shadow_cache_reset(struct shadow *s)
{
	struct shadow_cache *c = s->cache;
	uint32_t pages = s->tab.pool.pages;

	shadow_pool_reset(&s->tab.pool, 0);
	memset(c->sp, 0, pages * sizeof(*c->sp));
	memset(c->hash, 0, (c->hmask + 1) * sizeof(*c->hash));
	c->link_next = c->link_free = 0;
	memset(c->rmap, 0, c->frames * sizeof(*c->rmap));
	memset(c->rmap2m, 0, c->frames2m * sizeof(*c->rmap2m));
	memset(c->tracked, 0, c->frames * sizeof(*c->tracked));
	memset(c->tracked2m, 0, c->frames2m * sizeof(*c->tracked2m));
	memset(c->flood, 0, c->frames * sizeof(*c->flood));
	c->nroots = 0;
	c->nvolatile = 0;
	s->tlb_flush = true;
	switch_root(s); /* the pool is empty: this cannot evict */
}

/* ---- guest events ---------------------------------------------------------------- */

void shadow_cache_set_cr3(struct shadow *s)
{
	struct shadow_cache *c = s->cache;
	uint32_t old = c->cur;
	bool old_volatile = c->sp[old].flags & SP_VOLATILE;

	drop_volatile(s);
	switch_root(s);
	if (old_volatile && c->cur != old && (c->sp[old].flags & SP_VOLATILE))
		zap(s, old);
}

/* Drop the shadow leaf (or the huge page's subtree) of gva in the current root. */
static void drop_gva(struct shadow *s, gva_t gva)
{
	struct shadow_cache *c = s->cache;
	uint32_t page = c->cur;

	if (X86_LEVEL_INDEX(gva, SHADOW_LEVELS) == s->tab.hv_index)
		return;
	for (int level = SHADOW_LEVELS; level >= 1; level--) {
		unsigned i = X86_LEVEL_INDEX(gva, level);
		uint64_t *e = table_of(s, page) + i;

		if (!(*e & X86_PTE_P))
			return;
		if (level == 1 || (*e & X86_PTE_PS)) {
			shadow_cache_set_leaf(s, e, entry_mpa(s, page, i), level,
					      0);
			s->tlb_flush = true;
			return;
		}
		if (*e & SHADOW_SPTE_HUGE) {
			unlink_entry(s, page, i);
			return;
		}
		page = page_of_entry(s, *e);
	}
}

/* A volatile root's entries are checked against the guest PML4 again: an
 * entry whose guest PML4E no longer leads to the same SP goes. */
static void revalidate_root(struct shadow *s)
{
	struct shadow_cache *c = s->cache;
	uint64_t *tab = table_of(s, c->cur);

	for (unsigned i = 0; i < X86_PT_ENTRIES; i++) {
		const struct sp *child;
		uint64_t g;

		if (!(tab[i] & X86_PTE_P) || i == s->tab.hv_index)
			continue;
		child = &c->sp[page_of_entry(s, tab[i])];
		if (s->mem.read64(s->mem.opaque, s->vcr3 + 8 * i, &g) != SHADOW_MEM_OK ||
		    !(g & X86_PTE_P) || shadow_walk_reserved(&s->cpu, SHADOW_LEVELS, g) ||
		    (g & X86_PTE_ADDR_MASK) != child->gfn ||
		    child->role != ((SHADOW_LEVELS - 1) | cpu_role(&s->cpu) |
				    role_rights(shadow_entry_rights(&s->cpu, g))))
			unlink_entry(s, c->cur, i);
	}
}

void shadow_cache_invlpg(struct shadow *s, gva_t gva)
{
	struct shadow_cache *c = s->cache;

	/* invlpg also empties every paging-structure cache (SDM 3A §4.10.4.1):
	 * only volatile SPs can be stale */
	drop_volatile(s);
	if (c->sp[c->cur].flags & SP_VOLATILE)
		revalidate_root(s);
	if (x86_is_canonical48(gva))
		drop_gva(s, gva);
}

void shadow_cache_drop_gva(struct shadow *s, gva_t gva)
{
	if (x86_is_canonical48(gva))
		drop_gva(s, gva);
}

void shadow_cache_unprotect(struct shadow *s, gpa_t gpa, bool self)
{
	struct shadow_cache *c = s->cache;
	gpa_t gfn = gpa & X86_PAGE_MASK;
	uint64_t f = gfn >> X86_PAGE_SHIFT;
	struct shadow_event ev = { .kind = SHADOW_EV_UNPROTECT, .gpa = gfn };
	uint32_t i;

	s->stats.unprotects++;
again:
	for (i = c->hash[bucket(c, gfn)]; i; i = c->sp[i - 1].hnext) {
		const struct sp *sp = &c->sp[i - 1];

		if (sp->gfn != gfn || (sp->role & ROLE_DIRECT))
			continue;
		s->stats.zaps++;
		ev.zapped++;
		if (i - 1 == c->cur)
			root_to_volatile(s, i - 1);
		else
			zap(s, i - 1);
		goto again; /* the chain changed under us */
	}
	assert(!c->tracked[f]);
	if ((c->flood[f] & FLOOD_COUNT) < FLOOD_COUNT)
		c->flood[f]++;
	if (!(c->flood[f] & FLOOD_VOLATILE) && (self || (c->flood[f] & FLOOD_COUNT) >= CACHE_FLOOD)) {
		c->flood[f] |= FLOOD_VOLATILE;
		s->stats.floods++;
	}
	ev.volatile_table = c->flood[f] & FLOOD_VOLATILE;
	shadow_emit(s, &ev);
}

/* ---- install --------------------------------------------------------------------- */

static bool huge_ok(const struct shadow *s, const struct shadow_walk *w)
{
	return shadow_huge_fits(s, w) && !s->cache->tracked2m[w->gpa >> 21];
}

/* The key of the SP below entry `level` of the walk. */
static void child_key(const struct shadow *s, const struct shadow_walk *w, int level,
		      struct shadow_rights *acc, gpa_t *gfn, uint32_t *role)
{
	if (level > w->level) {
		*acc = shadow_rights_and(*acc, shadow_entry_rights(&s->cpu, w->pte[level]));
		*gfn = w->pte[level] & X86_PTE_ADDR_MASK;
		*role = (uint32_t)(level - 1) | role_rights(*acc) | cpu_role(&s->cpu);
	} else {
		uint64_t g = w->pte[w->level];

		*acc = (struct shadow_rights){ w->write, w->user, w->nx };
		*gfn = w->gpa & ~(X86_LEVEL_SIZE(level) - 1);
		*role = (uint32_t)(level - 1) | ROLE_DIRECT | role_rights(*acc) |
			(g & X86_PTE_D ? ROLE_DIRTY : 0) | (g & X86_PTE_PWT ? ROLE_PWT : 0) |
			(g & X86_PTE_PCD ? ROLE_PCD : 0) | (g & X86_PTE_PAT_LARGE ? ROLE_PAT : 0) |
			cpu_role(&s->cpu);
	}
}

enum { INSTALL_OK, INSTALL_NOMEM };

static int try_install(struct shadow *s, gva_t gva, const struct shadow_walk *w, uint64_t *spte,
		       mpa_t *spte_mpa, int *out_level)
{
	struct shadow_cache *c = s->cache;
	struct shadow_rights acc = SHADOW_RIGHTS_ALL;
	uint32_t page = c->cur;
	int level;

	for (level = SHADOW_LEVELS; level >= 2; level--) {
		unsigned i = X86_LEVEL_INDEX(gva, level);
		uint64_t *e = table_of(s, page) + i;
		mpa_t at = entry_mpa(s, page, i);
		uint32_t role, child;
		gpa_t gfn;

		if (level == 2 && level <= w->level && huge_ok(s, w)) {
			uint64_t big = shadow_fill_spte_2m(*spte);

			if ((*e & X86_PTE_P) && !(*e & X86_PTE_PS))
				unlink_entry(s, page, i);
			shadow_cache_set_leaf(s, e, at, 2, big);
			*spte = *e;
			*spte_mpa = at;
			*out_level = 2;
			s->stats.huge_leaves++;
			return INSTALL_OK;
		}
		child_key(s, w, level, &acc, &gfn, &role);
		if (*e & X86_PTE_P) {
			if (level == 2 && (*e & X86_PTE_PS)) {
				shadow_cache_set_leaf(s, e, at, 2, 0);
				s->tlb_flush = true;
			} else {
				child = page_of_entry(s, *e);
				if (c->sp[child].gfn == gfn && c->sp[child].role == role) {
					page = child;
					continue;
				}
				unlink_entry(s, page, i);
			}
		}
		child = lookup(c, gfn, role);
		if (child)
			child--;
		else if (!new_sp(s, gfn, role, &child))
			return INSTALL_NOMEM;
		*e = shadow_pool_mpa(&s->tab.pool, child) | SHADOW_SPTE_TABLE |
		     (level <= w->level ? SHADOW_SPTE_HUGE : 0);
		link_push(c, &c->sp[child].parents, page * X86_PT_ENTRIES + i);
		page = child;
	}
	{
		unsigned i = X86_LEVEL_INDEX(gva, 1);
		mpa_t at = entry_mpa(s, page, i);
		uint64_t *e = table_of(s, page) + i;
		shadow_cache_set_leaf(s, e, at, 1, *spte);
		*spte = *e;
		*spte_mpa = at;
		*out_level = 1;
	}
	return INSTALL_OK;
}

bool shadow_cache_fast_fault(struct shadow *s, gva_t gva, unsigned access,
			     struct shadow_fault_result *res)
{
	struct shadow_cache *c = s->cache;
	uint32_t page = c->cur;
	struct shadow_walk w;
	struct shadow_rights r;
	const struct sp *sp;
	uint64_t pte, want;
	unsigned i;
	gpa_t at, gpa;

	if (c->sp[page].flags & SP_VOLATILE)
		return false;
	for (int level = SHADOW_LEVELS; level > 1; level--) {
		uint64_t e = table_of(s, page)[X86_LEVEL_INDEX(gva, level)];

		if (!(e & X86_PTE_P) || (level == 2 && (e & X86_PTE_PS)))
			return false;
		/* the hot path: shadow_check vouches for the pointer, the bound
		 * keeps even a broken one from reading past c->sp */
		page = (uint32_t)(((e & X86_PTE_ADDR_MASK) - s->tab.pool.base) >> X86_PAGE_SHIFT);
		if (page >= s->tab.pool.pages || (c->sp[page].flags & SP_VOLATILE) ||
		    (c->sp[page].role & ROLE_DIRECT))
			return false;
	}
	sp = &c->sp[page];
	i = X86_LEVEL_INDEX(gva, 1);
	at = sp->gfn + 8 * i;
	if (s->mem.read64(s->mem.opaque, at, &pte) != SHADOW_MEM_OK || !(pte & X86_PTE_P) ||
	    shadow_walk_reserved(&s->cpu, 1, pte))
		return false;
	r = shadow_rights_and(rights_of_role(sp->role), shadow_entry_rights(&s->cpu, pte));
	gpa = pte & X86_PTE_ADDR_MASK;
	if (!shadow_walk_allows(&s->cpu, r.user, r.write, r.nx, access) ||
	    gpa >= s->mem.ram_size || ((access & SHADOW_ACC_WRITE) && c->tracked[gpa >> X86_PAGE_SHIFT]))
		return false;
	/* A (and D on a write) in the PTE only: the upper entries' A bits are
	 * set, or their tables' shadows would be gone (§4.8) */
	want = X86_PTE_A | (access & SHADOW_ACC_WRITE ? X86_PTE_D : 0);
	if ((pte & want) != want) {
		uint64_t expected = pte;

		if (s->mem.cmpxchg64(s->mem.opaque, at, &expected, pte | want) != SHADOW_MEM_OK)
			return false;
		s->stats.a_sets += !(pte & X86_PTE_A);
		s->stats.d_sets += (want & X86_PTE_D) && !(pte & X86_PTE_D);
	}
	w.level = 1;
	w.pte[1] = pte | want;
	w.user = r.user;
	w.write = r.write;
	w.nx = r.nx;
	shadow_cache_set_leaf(s, table_of(s, page) + i,
			      entry_mpa(s, page, i), 1,
			      shadow_fill_spte(&w, &s->cpu, access, (mpa_t)gpa));
	s->stats.fills[1]++;
	s->stats.fast_fills++;
	*res = (struct shadow_fault_result){ .status = SHADOW_FILLED, .gpa = gpa | (gva & 0xfff),
					     .level = 1 };
	/* as after a full walk: prefetch around a page accessed before */
	if ((s->opts & SHADOW_OPT_PREFETCH) && (pte & X86_PTE_A))
		shadow_cache_prefetch(s, gva, 0, entry_mpa(s, page, i));
	return true;
}

void shadow_cache_prefetch(struct shadow *s, gva_t gva, uint64_t huge_pte, mpa_t spte_mpa)
{
	uint32_t page = shadow_pool_index(&s->tab.pool, spte_mpa & X86_PAGE_MASK);
	const struct sp *sp = &s->cache->sp[page];
	struct shadow_prefetch pf = {
		.tab = table_of(s, page), .tab_mpa = spte_mpa & X86_PAGE_MASK,
		.idx = X86_LEVEL_INDEX(gva, 1), .gva = gva, .direct = sp->role & ROLE_DIRECT,
		.guest_pt = sp->gfn, .huge_pte = huge_pte, .above = rights_of_role(sp->role),
	};

	assert(role_level(sp->role) == 1);
	shadow_prefetch(s, &pf);
}

bool shadow_cache_install(struct shadow *s, gva_t gva, const struct shadow_walk *w,
			  uint64_t *spte, mpa_t *spte_mpa, int *level)
{
	struct shadow_cache *c = s->cache;
	uint64_t want = *spte;
	bool reset = false;

	for (;;) {
		*spte = want;
		if (try_install(s, gva, w, spte, spte_mpa, level) == INSTALL_OK)
			return true;
		if (evict_one(s, c->cur))
			continue;
		if (reset)
			return false;
		shadow_cache_reset(s);
		shadow_note_evict(s, gva);
		reset = true;
	}
}

/* ---- invariants ------------------------------------------------------------------ */

__attribute__((format(printf, 3, 4)))
static bool bad(char *why, size_t len, const char *fmt, ...);

static bool bad(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return false;
}

static bool check_leaf(const struct shadow *s, uint32_t page, unsigned i, int level, uint64_t e,
		       char *why, size_t len)
{
	const struct shadow_cache *c = s->cache;
	uint64_t size = level == 1 ? X86_PAGE_SIZE : 1ull << 21;
	mpa_t mpa = e & (level == 1 ? X86_PTE_ADDR_MASK : X86_PTE_ADDR_2M_MASK);
	uint64_t f = mpa >> X86_PAGE_SHIFT;

	if (e & X86_PTE_G)
		return bad(why, len, "shadow: global leaf: sp=%u index=%u spte=0x%016llx", page, i,
			   (unsigned long long)e);
	if (mpa >= s->mem.ram_size || s->mem.ram_size - mpa < size)
		return bad(why, len, "shadow: leaf maps outside guest RAM: sp=%u index=%u spte=0x%016llx",
			   page, i, (unsigned long long)e);
	if (level == 2 && (e & X86_PTE_ADDR_MASK & ((1ull << 21) - 1) & ~X86_PTE_PAT_LARGE))
		return bad(why, len, "shadow: misaligned 2M leaf: sp=%u index=%u spte=0x%016llx", page,
			   i, (unsigned long long)e);
	if ((e & X86_PTE_W) && (level == 1 ? c->tracked[f] != 0 : c->tracked2m[f >> 9] != 0))
		return bad(why, len,
			   "shadow: writable leaf on a write-protected guest table: sp=%u index=%u spte=0x%016llx",
			   page, i, (unsigned long long)e);
	return true;
}

/* Coherence of a non-volatile SP with the guest tables it shadows, entry by
 * entry: what write protection promises.  A link names the SP the guest
 * entry leads to with the rights combined so far; a leaf maps the guest's
 * page with no more than the guest's combined rights (writable only if
 * dirty, or as a CR0.WP = 0 supervisor leaf).  Volatile SPs may be stale
 * until the next invlpg or CR3 write, as a TLB may. */
static bool coherent(const struct shadow *s, uint32_t page, char *why, size_t len)
{
	const struct shadow_cache *c = s->cache;
	const struct sp *sp = &c->sp[page];
	unsigned level = role_level(sp->role);
	const uint64_t *tab = table_of(s, page);
	struct shadow_rights above = rights_of_role(sp->role);
	struct shadow_cpu built = s->cpu; /* the control bits this SP was built under */

	if (sp->flags & SP_VOLATILE)
		return true;
	built.cr0_wp = sp->role & (1u << ROLE_CPU_SHIFT);
	built.efer_nxe = sp->role & (8u << ROLE_CPU_SHIFT);
	for (unsigned i = 0; i < X86_PT_ENTRIES; i++) {
		uint64_t e = tab[i], g = 0;
		struct shadow_rights r = above;
		bool guest_leaf, dirty, shadow_leaf;
		gpa_t expect;

		if (!(e & X86_PTE_P) || (level == SHADOW_LEVELS && i == s->tab.hv_index))
			continue;
		if (sp->role & ROLE_DIRECT) {
			expect = sp->gfn + (gpa_t)i * X86_LEVEL_SIZE(level);
			dirty = sp->role & ROLE_DIRTY;
			guest_leaf = true;
		} else {
			if (s->mem.read64(s->mem.opaque, sp->gfn + 8 * i, &g) != SHADOW_MEM_OK ||
			    !(g & X86_PTE_P) || !(g & X86_PTE_A))
				return bad(why, len, "shadow: sp=%u index=%u: shadow entry 0x%016llx for a guest entry 0x%016llx not present or not accessed",
					   page, i, (unsigned long long)e, (unsigned long long)g);
			r = shadow_rights_and(above, shadow_entry_rights(&built, g));
			guest_leaf = level == 1 || (g & X86_PTE_PS);
			expect = g & (level == 1 ? X86_PTE_ADDR_MASK :
				      level == 2 && guest_leaf ? X86_PTE_ADDR_2M_MASK :
				      level == 3 && guest_leaf ? X86_PTE_ADDR_1G_MASK : X86_PTE_ADDR_MASK);
			dirty = g & X86_PTE_D;
		}
		shadow_leaf = level == 1 || (e & X86_PTE_PS);
		if (shadow_leaf) {
			mpa_t mpa = e & (level == 1 ? X86_PTE_ADDR_MASK : X86_PTE_ADDR_2M_MASK);
			bool wp0 = e & SHADOW_SPTE_WP0;

			if (!guest_leaf || mpa != expect ||
			    ((e & X86_PTE_W) && !wp0 && !(r.write && dirty)) ||
			    (wp0 && (built.cr0_wp || (e & X86_PTE_U))) ||
			    ((e & X86_PTE_U) && !r.user) || (!(e & X86_PTE_NX) && r.nx))
				return bad(why, len, "shadow: sp=%u index=%u: leaf 0x%016llx exceeds or misplaces the guest's 0x%016llx",
					   page, i, (unsigned long long)e, (unsigned long long)g);
		} else {
			const struct sp *ch = &c->sp[page_of_entry(s, e)];
			uint32_t rights = ch->role & (ROLE_W | ROLE_U | ROLE_NX);

			if (guest_leaf != !!(ch->role & ROLE_DIRECT) ||
			    ch->gfn != expect ||
			    rights != role_rights(r))
				return bad(why, len, "shadow: sp=%u index=%u: link to sp %u (gfn 0x%llx role 0x%x) does not follow the guest's 0x%016llx",
					   page, i, page_of_entry(s, e), (unsigned long long)ch->gfn, ch->role,
					   (unsigned long long)g);
		}
	}
	return true;
}

bool shadow_cache_check(const struct shadow *s, char *why, size_t len)
{
	const struct shadow_cache *c = s->cache;
	const struct shadow_pool *pool = &s->tab.pool;
	uint32_t used = 0;

	if (shadow_pool_in_use(pool) > pool->pages)
		return bad(why, len, "shadow: pool use %u exceeds its %u pages", shadow_pool_in_use(pool),
			   pool->pages);
	if (!(c->sp[c->cur].flags & SP_ROOT) || s->tab.root != shadow_pool_mpa(pool, c->cur))
		return bad(why, len, "shadow: current root 0x%llx is not a root page",
			   (unsigned long long)s->tab.root);
	for (uint32_t p = 0; p < pool->pages; p++) {
		const struct sp *sp = &c->sp[p];
		const uint64_t *tab;
		unsigned level;

		if (!(sp->flags & SP_USED))
			continue;
		used++;
		level = role_level(sp->role);
		tab = table_of(s, p);
		if (!(sp->flags & SP_ROOT) && !sp->parents)
			return bad(why, len, "shadow: sp %u (level %u) has no parent", p, level);
		for (unsigned i = 0; i < X86_PT_ENTRIES; i++) {
			uint64_t e = tab[i];

			if (level == SHADOW_LEVELS && i == s->tab.hv_index) {
				if (e != s->tab.hv_entry)
					return bad(why, len, "shadow: hypervisor entry changed in root %u: 0x%016llx",
						   p, (unsigned long long)e);
				continue;
			}
			if (!(e & X86_PTE_P))
				continue;
			if (level == 1 || (e & X86_PTE_PS)) {
				if (shadow_pool_contains(pool, e & X86_PTE_ADDR_MASK))
					return bad(why, len, "shadow: leaf maps a shadow page: sp=%u index=%u spte=0x%016llx",
						   p, i, (unsigned long long)e);
				if (level > 2)
					return bad(why, len, "shadow: huge leaf at level %u: sp=%u index=%u", level, p, i);
				if (!check_leaf(s, p, i, (int)level, e, why, len))
					return false;
				continue;
			}
			if (!shadow_pool_contains(pool, e & X86_PTE_ADDR_MASK))
				return bad(why, len, "shadow: table pointer outside the pool: sp=%u index=%u spte=0x%016llx",
					   p, i, (unsigned long long)e);
			{
				const struct sp *ch = &c->sp[page_of_entry(s, e)];

				if ((e & ~(X86_PTE_ADDR_MASK | SHADOW_SPTE_HUGE)) != SHADOW_SPTE_TABLE)
					return bad(why, len, "shadow: table entry with unexpected bits: sp=%u index=%u spte=0x%016llx",
						   p, i, (unsigned long long)e);
				if (!(ch->flags & SP_USED) || role_level(ch->role) != level - 1)
					return bad(why, len, "shadow: entry sp=%u index=%u links a free or wrong-level page",
						   p, i);
			}
		}
	}
	for (uint32_t p = 0; p < pool->pages; p++)
		if ((c->sp[p].flags & SP_USED) && !coherent(s, p, why, len))
			return false;
	if (used != shadow_pool_in_use(pool))
		return bad(why, len, "shadow: %u pages marked used, the pool counts %u", used,
			   shadow_pool_in_use(pool));
	return true;
}
