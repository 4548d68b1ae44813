/* The shadow's invariants, both engines (invariant.h). */
#include "invariant.h"

#include "cache.h"

__attribute__((format(printf, 3, 4))) static bool bad(char *why, size_t len, const char *fmt, ...);

static bool bad(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	shadow_vformat(why, len, fmt, ap);
	va_end(ap);
	return false;
}

/* What is wrong with present entry `e` at index i of a level-`level` shadow
 * table, either engine, or NULL: the hypervisor entry, a table pointer, or
 * a leaf (SDM 3A §4.9.2: bit 7 of a 4 KiB leaf is PAT, copied from the
 * guest). */
static const char *entry_problem(const struct shadow *s, int level, unsigned i, uint64_t e)
{
	const struct shadow_pool *pool = &s->tab.pool;
	mpa_t mpa = level == 1 ? shadow_spte_frame(e) : e & X86_PTE_ADDR_2M_MASK;

	if (level == SHADOW_LEVELS && i == s->core->hv_index)
		return e == s->core->hv_entry ? NULL : "hypervisor entry changed";
	if (!shadow_spte_is_leaf(level, e)) {
		if (!shadow_pool_contains(pool, e & X86_PTE_ADDR_MASK))
			return "table pointer outside the pool";
		if ((e & ~(X86_PTE_ADDR_MASK | SHADOW_SPTE_HUGE)) != SHADOW_SPTE_TABLE)
			return "table entry with unexpected bits";
		return NULL;
	}
	if (level > 2)
		return "huge shadow entry above 2 MiB";
	if (e & X86_PTE_G)
		return "global leaf";
	if (level == 2 && (e & X86_PTE_ADDR_MASK & ~X86_PTE_ADDR_2M_MASK & ~X86_PTE_PAT_LARGE))
		return "misaligned 2 MiB leaf";
	if (level == 1 && shadow_gpa_in_mmio(s, mpa))
		return NULL; /* a device window: the MPA is the GPA, in no memslot */
	if (mpa >= s->mem.ram_size || s->mem.ram_size - mpa < X86_LEVEL_SIZE(level))
		return "leaf maps outside guest RAM";
	/* the pool lies outside RAM (shadow_create), so this holds for 2 MiB too */
	if (shadow_pool_contains(pool, mpa))
		return "leaf maps a shadow page";
	return NULL;
}

static bool bad_entry(char *why, size_t len, const char *what, int level, mpa_t table, unsigned i,
		      uint64_t e)
{
	return bad(why, len, "shadow: %s: level=%d table=0x%llx index=%u spte=0x%016llx", what,
		   level, (unsigned long long)table, i, (unsigned long long)e);
}

static bool pool_within_bound(const struct shadow_pool *pool, char *why, size_t len)
{
	if (shadow_pool_in_use(pool) <= pool->pages)
		return true;
	return bad(why, len, "shadow: pool use %u exceeds its %u pages", shadow_pool_in_use(pool),
		   pool->pages);
}

/* ---- the virtual TLB: a tree ---- */

/* Shadow tables form a tree at most four deep, so recursion is bounded. */
static bool check_tree(const struct shadow *s, mpa_t table, int level, char *why, size_t len)
{
	const uint64_t *pt = shadow_pool_table(&s->tab.pool, table);

	for (unsigned i = 0; i < X86_PT_ENTRIES; i++) {
		uint64_t e = pt[i];
		const char *what;

		if (!(e & X86_PTE_P) && !(level == SHADOW_LEVELS && i == s->core->hv_index))
			continue;
		what = entry_problem(s, level, i, e);
		if (what)
			return bad_entry(why, len, what, level, table, i, e);
		if (shadow_spte_is_leaf(level, e) ||
		    (level == SHADOW_LEVELS && i == s->core->hv_index))
			continue;
		if (!check_tree(s, e & X86_PTE_ADDR_MASK, level - 1, why, len))
			return false;
	}
	return true;
}

/* In the modes with 32-bit linear addresses (paging off, 32-bit, PAE) no
 * shadow entry maps a GVA at or above 4 GiB: the root holds entry 0 and
 * the hypervisor's, the PDPT below entry 0 entries 0..3 only. */
static bool below_4g(const struct shadow *s, char *why, size_t len)
{
	const uint64_t *root = shadow_pool_table(&s->tab.pool, s->core->root), *pdpt;

	if (s->core->paging == SHADOW_PAGING_LONG4 || s->core->paging == SHADOW_PAGING_LONG5)
		return true;
	for (unsigned i = 1; i < X86_PT_ENTRIES; i++)
		if ((root[i] & X86_PTE_P) && i != s->core->hv_index)
			return bad_entry(why, len, "shadow entry above 4 GiB in a 32-bit mode",
					 SHADOW_LEVELS, s->core->root, i, root[i]);
	if (!(root[0] & X86_PTE_P) || shadow_spte_is_leaf(SHADOW_LEVELS, root[0]))
		return true; /* check_tree judges such an entry */
	pdpt = shadow_pool_table(&s->tab.pool, root[0] & X86_PTE_ADDR_MASK);
	for (unsigned i = 4; i < X86_PT_ENTRIES; i++)
		if (pdpt[i] & X86_PTE_P)
			return bad_entry(why, len, "shadow entry above 4 GiB in a 32-bit mode",
					 SHADOW_LEVELS - 1, root[0] & X86_PTE_ADDR_MASK, i,
					 pdpt[i]);
	return true;
}

bool shadow_check_vtlb(const struct shadow *s, char *why, size_t len)
{
	if (!pool_within_bound(&s->tab.pool, why, len))
		return false;
	if (!shadow_pool_contains(&s->tab.pool, s->core->root))
		return bad(why, len, "shadow: root 0x%llx outside the pool",
			   (unsigned long long)s->core->root);
	return check_tree(s, s->core->root, SHADOW_LEVELS, why, len) && below_4g(s, why, len);
}

/* ---- the cache: shadow pages ---- */

/* Whether leaf `e` at `level` is writable on a tracked guest table. */
static bool writable_on_tracked(const struct shadow_cache *c, int level, uint64_t e)
{
	uint64_t f = (e & X86_PTE_ADDR_MASK) >> X86_PAGE_SHIFT;

	if (!(e & X86_PTE_W) || f >= c->frames)
		return false; /* read-only, or a device window past RAM */
	return level == 1 ? cache_tracked(c)[f] != 0 : cache_tracked2m(c)[f >> 9] != 0;
}

/* Entry i of SP `page`, on top of entry_problem: its leaf's write
 * protection, its link's target. */
static const char *cache_entry_problem(const struct shadow *s, uint32_t page, unsigned i,
				       uint64_t e)
{
	const struct shadow_cache *c = cache_of(s);
	int level = (int)cache_role_level(cache_sp(c)[page].role);
	const struct cache_sp *ch;
	const char *what = entry_problem(s, level, i, e);

	if (what || (level == SHADOW_LEVELS && i == s->core->hv_index))
		return what;
	if (shadow_spte_is_leaf(level, e))
		return writable_on_tracked(c, level, e)
			       ? "writable leaf on a write-protected guest table"
			       : NULL;
	ch = &cache_sp(c)[cache_page_of(s, e)];
	if (!(ch->flags & CACHE_SP_USED) || (int)cache_role_level(ch->role) != level - 1)
		return "entry links a free or wrong-level page";
	return NULL;
}

/* SP `page`'s own books and every entry of its table. */
static bool check_sp(const struct shadow *s, uint32_t page, char *why, size_t len)
{
	const struct shadow_cache *c = cache_of(s);
	const struct cache_sp *sp = &cache_sp(c)[page];
	unsigned level = cache_role_level(sp->role);
	const uint64_t *tab = cache_table(s, page);

	if (!(sp->flags & CACHE_SP_ROOT) && !sp->parents)
		return bad(why, len, "shadow: sp %u (level %u) has no parent", page, level);
	for (unsigned i = 0; i < X86_PT_ENTRIES; i++) {
		const char *what;

		if (!(tab[i] & X86_PTE_P) && !(level == SHADOW_LEVELS && i == s->core->hv_index))
			continue;
		what = cache_entry_problem(s, page, i, tab[i]);
		if (what)
			return bad_entry(why, len, what, (int)level,
					 shadow_pool_mpa(&s->tab.pool, page), i, tab[i]);
	}
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
	const struct shadow_cache *c = cache_of(s);
	const struct cache_sp *sp = &cache_sp(c)[page];
	unsigned level = cache_role_level(sp->role);
	const uint64_t *tab = cache_table(s, page);
	struct shadow_rights above = cache_role_to_rights(sp->role);
	struct shadow_cpu built = s->core->cpu; /* the control bits this SP was built under */

	if (sp->flags & CACHE_SP_VOLATILE)
		return true;
	built.cr0_wp = sp->role & CACHE_ROLE_CPU_WP;
	built.efer_nxe = sp->role & CACHE_ROLE_CPU_NXE;
	for (unsigned i = 0; i < X86_PT_ENTRIES; i++) {
		uint64_t e = tab[i], g = 0;
		struct shadow_rights r = above;
		bool guest_leaf, dirty, shadow_leaf;
		gpa_t expect;

		if (!(e & X86_PTE_P) || (level == SHADOW_LEVELS && i == s->core->hv_index))
			continue;
		if (sp->role & CACHE_ROLE_DIRECT) {
			expect = sp->gfn + (gpa_t)i * X86_LEVEL_SIZE(level);
			dirty = sp->role & CACHE_ROLE_DIRTY;
			guest_leaf = true;
		} else if ((sp->role & CACHE_ROLE_G32) && level > 2) {
			/* 32-bit, no guest table: a link to the directory's
			 * quarter, from the root's entry 0 or the next level's 0-3 */
			if (i >= (level == SHADOW_LEVELS ? 1u : 4u))
				return bad(
					why, len,
					"shadow: sp=%u index=%u: 32-bit level %u entry 0x%016llx "
					"beyond 4 GiB",
					page, i, level, (unsigned long long)e);
			expect = sp->gfn;
			guest_leaf = false;
			dirty = false;
		} else {
			bool g32 = sp->role & CACHE_ROLE_G32;

			if (cache_read_guest_entry(s, sp->gfn, sp->role, i, &g) != SHADOW_MEM_OK ||
			    !(g & X86_PTE_P) || !(g & X86_PTE_A))
				return bad(
					why, len,
					"shadow: sp=%u index=%u: shadow entry 0x%016llx for a guest entry 0x%016llx not present or not accessed",
					page, i, (unsigned long long)e, (unsigned long long)g);
			r = shadow_rights_and(above, shadow_entry_rights(&built, g));
			/* a 32-bit PDE maps a page only with CR4.PSE */
			guest_leaf = level == 1 || ((g & X86_PTE_PS) && (!g32 || built.cr4_pse));
			if (!guest_leaf || level == 1)
				expect = g & X86_PTE_ADDR_MASK;
			else if (
				g32) /* half of a 4 MiB page: bits 31:22, PSE-36's 39:32 in 20:13 */
				expect = ((g & 0xffc00000ull) | (g & 0x1fe000ull) << 19) +
					 (i & 1) * X86_LEVEL_SIZE(2);
			else
				expect = g &
					 (level == 2 ? X86_PTE_ADDR_2M_MASK : X86_PTE_ADDR_1G_MASK);
			dirty = g & X86_PTE_D;
		}
		shadow_leaf = shadow_spte_is_leaf((int)level, e);
		if (shadow_leaf) {
			mpa_t mpa = level == 1 ? shadow_spte_frame(e) : e & X86_PTE_ADDR_2M_MASK;
			bool wp0 = e & SHADOW_SPTE_WP0;

			if (!guest_leaf || mpa != expect ||
			    ((e & X86_PTE_W) && !wp0 && !(r.write && dirty)) ||
			    (wp0 && (built.cr0_wp || (e & X86_PTE_U))) ||
			    ((e & X86_PTE_U) && !r.user) || (!(e & X86_PTE_NX) && r.nx))
				return bad(
					why, len,
					"shadow: sp=%u index=%u: leaf 0x%016llx exceeds or misplaces the guest's 0x%016llx",
					page, i, (unsigned long long)e, (unsigned long long)g);
		} else {
			const struct cache_sp *ch = &cache_sp(c)[cache_page_of(s, e)];
			uint32_t rights = ch->role & (CACHE_ROLE_W | CACHE_ROLE_U | CACHE_ROLE_NX);

			/* a 32-bit link also names the quadrant it shadows */
			uint32_t quad = !(sp->role & CACHE_ROLE_G32) || guest_leaf ? 0
					: level == 3                               ? i
					: level == 2                               ? i & 1
										   : 0;

			if (guest_leaf != !!(ch->role & CACHE_ROLE_DIRECT) || ch->gfn != expect ||
			    rights != cache_role_rights(r) ||
			    (!guest_leaf && ((ch->role ^ sp->role) & CACHE_ROLE_G32)) ||
			    (!guest_leaf && cache_role_quad(ch->role) != quad))
				return bad(
					why, len,
					"shadow: sp=%u index=%u: link to sp %u (gfn 0x%llx role 0x%x) does not follow the guest's 0x%016llx",
					page, i, cache_page_of(s, e), (unsigned long long)ch->gfn,
					ch->role, (unsigned long long)g);
		}
	}
	return true;
}

bool shadow_check_cache(const struct shadow *s, char *why, size_t len)
{
	const struct shadow_cache *c = cache_of(s);
	const struct shadow_pool *pool = &s->tab.pool;
	uint32_t used = 0;

	if (!pool_within_bound(pool, why, len))
		return false;
	if (!(cache_sp(c)[c->cur].flags & CACHE_SP_ROOT) ||
	    s->core->root != shadow_pool_mpa(pool, c->cur))
		return bad(why, len, "shadow: current root 0x%llx is not a root page",
			   (unsigned long long)s->core->root);
	for (uint32_t p = 0; p < pool->pages; p++) {
		if (!(cache_sp(c)[p].flags & CACHE_SP_USED))
			continue;
		used++;
		if (!check_sp(s, p, why, len))
			return false;
	}
	for (uint32_t p = 0; p < pool->pages; p++)
		if ((cache_sp(c)[p].flags & CACHE_SP_USED) && !coherent(s, p, why, len))
			return false;
	if (used != shadow_pool_in_use(pool))
		return bad(why, len, "shadow: %u pages marked used, the pool counts %u", used,
			   shadow_pool_in_use(pool));
	return true;
}
