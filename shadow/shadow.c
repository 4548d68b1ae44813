/* The shadow MMU context: hidden faults, the virtual TLB, control state. */
#include "shadow.h"

#include <assert.h>
#include <stdlib.h>

#include "cache.h"
#include "fill.h"
#include "internal.h"
#include "invariant.h"
#include "pool.h"
#include "walk.h"

/* Walks repeated when guest entries keep changing under the A/D update
 * before the fault is handed back as SHADOW_RETRY. */
#define AD_TRIES 8

static bool cpu_valid(const struct shadow_cpu *cpu)
{
	return cpu->maxphyaddr >= 32 && cpu->maxphyaddr <= 52;
}

static bool config_valid(const struct shadow_config *cfg)
{
	const struct shadow_pool_cfg *p = &cfg->pool;
	uint64_t bytes = (uint64_t)p->pages << X86_PAGE_SHIFT;

	if (!cfg->mem.read64 || !cfg->mem.cmpxchg64 || (cfg->mem.ram_size & ~X86_PAGE_MASK))
		return false;
	if (!p->host || ((uintptr_t)p->host & ~X86_PAGE_MASK) || (p->base & ~X86_PAGE_MASK))
		return false;
	if (p->pages < SHADOW_POOL_MIN_PAGES || p->base + bytes < p->base)
		return false;
	/* the pool must not overlap guest RAM's MPA range [0, ram_size) */
	if (p->base < cfg->mem.ram_size || p->base + bytes > X86_BIT(cfg->cpu.maxphyaddr))
		return false;
	return cfg->hv_index < X86_PT_ENTRIES && cpu_valid(&cfg->cpu) &&
	       !(cfg->opts & ~SHADOW_OPT_ALL) &&
	       !(cfg->vcr3 >> cfg->cpu.maxphyaddr);
}

struct shadow *shadow_create(const struct shadow_config *cfg)
{
	struct shadow *s;

	if (!config_valid(cfg))
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->mem = cfg->mem;
	s->cpu = cfg->cpu;
	s->vcr3 = cfg->vcr3 & X86_CR3_ADDR_MASK;
	s->hook = cfg->hook;
	s->hook_opaque = cfg->hook_opaque;
	s->tab.hv_index = cfg->hv_index;
	s->tab.hv_entry = cfg->hv_entry;
	s->opts = cfg->opts;
	if (shadow_pool_init(&s->tab.pool, cfg->pool.base, cfg->pool.host, cfg->pool.pages))
		goto err;
	if (s->opts & SHADOW_OPT_CACHE) {
		if (!shadow_cache_create(s))
			goto err;
		return s;
	}
	if (!shadow_pool_alloc(&s->tab.pool, &s->tab.root))
		goto err;
	shadow_fill_drop_all(&s->tab);
	return s;
err:
	shadow_cache_destroy(s);
	shadow_pool_fini(&s->tab.pool);
	free(s);
	return NULL;
}

void shadow_destroy(struct shadow *s)
{
	if (!s)
		return;
	shadow_cache_destroy(s);
	shadow_pool_fini(&s->tab.pool);
	free(s);
}

bool shadow_gpa_to_mpa(const struct shadow *s, gpa_t gpa, mpa_t *mpa)
{
	if (gpa >= s->mem.ram_size)
		return false;
	*mpa = (mpa_t)gpa;
	return true;
}

void shadow_emit(const struct shadow *s, struct shadow_event *ev)
{
	if (!s->hook)
		return;
	ev->vcr3 = s->vcr3;
	ev->pages_in_use = shadow_pool_in_use(&s->tab.pool);
	s->hook(s->hook_opaque, ev);
}

/* A fault-path event: the access, the guest entries walked and the A/D
 * bits this fault set (ad_set may be NULL). */
static void walk_event(struct shadow_event *ev, enum shadow_event_kind kind, gva_t gva,
		       unsigned access, const struct shadow_walk *w, const uint64_t *ad_set)
{
	int level;

	*ev = (struct shadow_event){ .kind = kind, .gva = gva, .access = access,
				     .level = w->level, .depth = w->depth };
	for (level = SHADOW_LEVELS; level > SHADOW_LEVELS - w->depth; level--) {
		ev->gpte[level] = w->pte[level];
		ev->gpte_gpa[level] = w->pte_gpa[level];
		ev->ad_set[level] = ad_set ? ad_set[level] : 0;
	}
}

void shadow_note_evict(struct shadow *s, gva_t gva)
{
	struct shadow_event ev = { .kind = SHADOW_EV_EVICT, .gva = gva, .reason = SHADOW_FLUSH_EVICT };

	s->stats.evictions++;
	shadow_emit(s, &ev);
}

static void drop_all(struct shadow *s, enum shadow_flush_reason reason, gva_t gva)
{
	struct shadow_event ev = { .kind = SHADOW_EV_FLUSH, .gva = gva, .reason = reason };

	if (s->cache)
		shadow_cache_reset(s);
	else
		shadow_fill_drop_all(&s->tab);
	s->tlb_flush = true;
	if (reason == SHADOW_FLUSH_EVICT) {
		shadow_note_evict(s, gva);
		return;
	}
	s->stats.flushes++;
	shadow_emit(s, &ev);
}

static enum shadow_status fail(struct shadow_fault_result *res, enum shadow_error err, gpa_t gpa)
{
	res->status = SHADOW_ERROR;
	res->err = err;
	res->gpa = gpa;
	return SHADOW_ERROR;
}

static enum shadow_status guest_fault(struct shadow *s, gva_t gva, unsigned access,
				      const struct shadow_walk *w, bool gp,
				      struct shadow_fault_result *res)
{
	struct shadow_event ev;

	s->stats.guest_faults++;
	/* a #PF invalidates the TLB entries for its address (SDM 3A
	 * §4.10.4.1): a stale shadow leaf must not outlive the fault */
	if (!gp) {
		if (s->cache)
			shadow_cache_drop_gva(s, gva);
		else
			shadow_fill_drop_gva(&s->tab, gva);
		s->tlb_flush = true;
	}
	res->status = gp ? SHADOW_GUEST_GP : SHADOW_GUEST_PF;
	res->pferr = gp ? 0 : w->pferr;
	res->level = w->level;
	if (s->hook) {
		walk_event(&ev, SHADOW_EV_GUEST_FAULT, gva, access, w, NULL);
		ev.vector = gp ? X86_EXC_GP : X86_EXC_PF;
		ev.pferr = res->pferr;
		shadow_emit(s, &ev);
	}
	return res->status;
}

/* Count the A/D bits a walk set; true if it set any. */
static bool count_ad(struct shadow *s, const uint64_t set[SHADOW_LEVELS + 1])
{
	uint64_t any = 0;
	int level;

	for (level = 1; level <= SHADOW_LEVELS; level++) {
		s->stats.a_sets += !!(set[level] & X86_PTE_A);
		s->stats.d_sets += !!(set[level] & X86_PTE_D);
		any |= set[level];
	}
	return any;
}

/* Virtual-TLB install: a 2 MiB leaf where SHADOW_OPT_HUGE allows, else a
 * 4 KiB leaf and its prefetched neighbours. */
static bool vtlb_install(struct shadow *s, gva_t gva, const struct shadow_walk *w,
			 uint64_t *spte, mpa_t *spte_mpa, int *leaf_level)
{
	if (shadow_huge_fits(s, w)) {
		*spte = shadow_fill_spte_2m(*spte);
		if (!shadow_fill_install(&s->tab, gva, w->level, 2, *spte, spte_mpa))
			return false;
		s->stats.huge_leaves++;
		*leaf_level = 2;
		return true;
	}
	*leaf_level = 1;
	return shadow_fill_install(&s->tab, gva, w->level, 1, *spte, spte_mpa);
}

/* Virtual-TLB prefetch around the 4 KiB leaf just written at spte_mpa. */
static void vtlb_prefetch(struct shadow *s, gva_t gva, const struct shadow_walk *w,
			  mpa_t spte_mpa)
{
	struct shadow_prefetch pf;
	int level;

	pf = (struct shadow_prefetch){
		.tab_mpa = spte_mpa & X86_PAGE_MASK, .idx = X86_LEVEL_INDEX(gva, 1), .gva = gva,
		.direct = w->level > 1, .huge_pte = w->pte[w->level],
		.above = { w->write, w->user, w->nx },
	};
	pf.tab = shadow_pool_table(&s->tab.pool, pf.tab_mpa);
	if (pf.direct) {
		pf.guest_pt = w->gpa & X86_PTE_ADDR_2M_MASK;
	} else {
		pf.guest_pt = w->pte_gpa[1] & X86_PAGE_MASK;
		pf.above = SHADOW_RIGHTS_ALL;
		for (level = SHADOW_LEVELS; level > 1; level--)
			pf.above = shadow_rights_and(pf.above, shadow_entry_rights(&s->cpu, w->pte[level]));
	}
	shadow_prefetch(s, &pf);
}

static bool install(struct shadow *s, gva_t gva, const struct shadow_walk *w, uint64_t *spte,
		    mpa_t *spte_mpa, int *leaf_level)
{
	if (s->cache)
		return shadow_cache_install(s, gva, w, spte, spte_mpa, leaf_level);
	return vtlb_install(s, gva, w, spte, spte_mpa, leaf_level);
}

/* Install the shadow leaf of a synced walk, evicting once if the pool is full. */
static enum shadow_status fill(struct shadow *s, gva_t gva, unsigned access,
			       const struct shadow_walk *w, mpa_t mpa, const uint64_t *ad_set,
			       struct shadow_fault_result *res)
{
	uint64_t want = shadow_fill_spte(w, &s->cpu, access, mpa), spte = want;
	struct shadow_event ev;
	mpa_t spte_mpa;
	int leaf_level;

	for (int round = 0;; round++) {
		spte = want;
		if (!install(s, gva, w, &spte, &spte_mpa, &leaf_level)) {
			if (s->cache)
				return fail(res, SHADOW_ERR_NOMEM, w->gpa); /* pool < minimum */
			drop_all(s, SHADOW_FLUSH_EVICT, gva);
			spte = want;
			if (!install(s, gva, w, &spte, &spte_mpa, &leaf_level))
				return fail(res, SHADOW_ERR_NOMEM, w->gpa); /* pool < minimum */
		}
		/* A write must leave a writable leaf.  With the cache the install
		 * itself can write-protect the page written: it became a shadowed
		 * table on this very path, or an eviction emptied the cache and
		 * with it the page's flood state.  Unprotect it for good and
		 * install again; if even that fails, nothing is promised. */
		if (!(access & SHADOW_ACC_WRITE) || (spte & X86_PTE_W))
			break;
		if (!s->cache || round == 2) {
			res->status = SHADOW_RETRY;
			return SHADOW_RETRY;
		}
		shadow_cache_unprotect(s, w->gpa, true);
	}
	s->stats.fills[w->level]++;
	res->status = SHADOW_FILLED;
	res->gpa = w->gpa;
	res->level = w->level;
	if (s->hook) {
		walk_event(&ev, SHADOW_EV_FILL, gva, access, w, ad_set);
		ev.gpa = w->gpa;
		ev.spte = spte;
		ev.spte_mpa = spte_mpa;
		shadow_emit(s, &ev);
	}
	/* Prefetch (after the fill's event) only around a page the guest had
	 * accessed before: a leaf whose A bit this very fault set is a first
	 * touch, and its neighbours most likely are too (A clear: nothing to
	 * prefetch). */
	if ((s->opts & SHADOW_OPT_PREFETCH) && leaf_level == 1 && !(ad_set[w->level] & X86_PTE_A)) {
		if (s->cache)
			shadow_cache_prefetch(s, gva, w->pte[w->level], spte_mpa);
		else
			vtlb_prefetch(s, gva, w, spte_mpa);
	}
	return SHADOW_FILLED;
}

/* Whether the page written is one of the tables below the root on the
 * walk's own path (a self-mapping): keeping it write-protected would make
 * the write fault for ever. */
static bool translates_itself(const struct shadow_walk *w)
{
	gpa_t page = w->gpa & X86_PAGE_MASK;

	for (int level = SHADOW_LEVELS; level > w->level; level--)
		if ((w->pte[level] & X86_PTE_ADDR_MASK) == page)
			return true;
	return false;
}

/* One walk + A/D sync + fill; SHADOW_RETRY if a guest entry changed. */
static enum shadow_status fault_once(struct shadow *s, gva_t gva, unsigned access,
				     struct shadow_fault_result *res)
{
	struct shadow_walk_env env = { .mem = &s->mem, .cpu = &s->cpu, .cr3 = s->vcr3 };
	uint64_t ad_set[SHADOW_LEVELS + 1];
	struct shadow_event ev;
	struct shadow_walk w;
	mpa_t mpa;

	switch (shadow_walk(&env, gva, access, &w)) {
	case SHADOW_WALK_OK:
		break;
	case SHADOW_WALK_PF:
		return guest_fault(s, gva, access, &w, false, res);
	case SHADOW_WALK_GP:
		return guest_fault(s, gva, access, &w, true, res);
	case SHADOW_WALK_BAD_TABLE:
		res->level = w.level;
		return fail(res, SHADOW_ERR_TABLE_OUTSIDE_RAM, w.bad_gpa);
	}
	/* checked before A/D: an access that ends the run leaves no trace */
	if (!shadow_gpa_to_mpa(s, w.gpa & X86_PAGE_MASK, &mpa)) {
		res->level = w.level;
		return fail(res, SHADOW_ERR_PAGE_OUTSIDE_RAM, w.gpa);
	}
	switch (shadow_walk_set_ad(&s->mem, &w, access, ad_set)) {
	case SHADOW_AD_OK:
		break;
	case SHADOW_AD_CHANGED:
		count_ad(s, ad_set);
		return SHADOW_RETRY;
	case SHADOW_AD_OUTSIDE:
		return fail(res, SHADOW_ERR_TABLE_OUTSIDE_RAM, w.pte_gpa[w.level]);
	}
	if (count_ad(s, ad_set) && s->hook) {
		walk_event(&ev, SHADOW_EV_AD_SET, gva, access, &w, ad_set);
		shadow_emit(s, &ev);
	}
	if ((access & SHADOW_ACC_WRITE) && shadow_cache_tracked(s, w.gpa))
		shadow_cache_unprotect(s, w.gpa, translates_itself(&w));
	return fill(s, gva, access, &w, mpa, ad_set, res);
}

enum shadow_status shadow_fault(struct shadow *s, gva_t gva, unsigned access,
				struct shadow_fault_result *res)
{
	int try;

	*res = (struct shadow_fault_result){ .status = SHADOW_ERROR };
	s->stats.hidden_faults++;
	if ((access & ~(SHADOW_ACC_WRITE | SHADOW_ACC_USER | SHADOW_ACC_FETCH)) ||
	    ((access & SHADOW_ACC_WRITE) && (access & SHADOW_ACC_FETCH)))
		return fail(res, SHADOW_ERR_BAD_ARG, 0);
	if (x86_is_canonical48(gva) && X86_LEVEL_INDEX(gva, SHADOW_LEVELS) == s->tab.hv_index)
		return fail(res, SHADOW_ERR_RESERVED_SLOT, 0);
	if (s->cache && !s->hook && x86_is_canonical48(gva) &&
	    shadow_cache_fast_fault(s, gva, access, res))
		return SHADOW_FILLED;
	for (try = 0; try < AD_TRIES; try++) {
		enum shadow_status st = fault_once(s, gva, access, res);

		if (st != SHADOW_RETRY)
			return st;
		s->stats.ad_retries++;
	}
	res->status = SHADOW_RETRY;
	return SHADOW_RETRY;
}

bool shadow_set_cr3(struct shadow *s, uint64_t vcr3)
{
	struct shadow_event ev = { .kind = SHADOW_EV_CR3 };

	/* without PCIDE, bits 63:MAXPHYADDR of CR3 are reserved (§4.5) */
	if (vcr3 >> s->cpu.maxphyaddr)
		return false;
	s->vcr3 = vcr3 & X86_CR3_ADDR_MASK;
	s->stats.cr3_loads++;
	shadow_emit(s, &ev);
	if (s->cache)
		shadow_cache_set_cr3(s);
	else
		drop_all(s, SHADOW_FLUSH_CR3, 0);
	return true;
}

void shadow_invlpg(struct shadow *s, gva_t gva)
{
	struct shadow_event ev = { .kind = SHADOW_EV_INVLPG, .gva = gva };

	s->stats.invlpgs++;
	/* invlpg of a non-canonical address is a no-op (SDM 2, INVLPG) */
	if (s->cache)
		shadow_cache_invlpg(s, gva);
	else if (x86_is_canonical48(gva))
		shadow_fill_drop_gva(&s->tab, gva);
	s->tlb_flush = true;
	shadow_emit(s, &ev);
}

void shadow_flush(struct shadow *s)
{
	drop_all(s, SHADOW_FLUSH_EXPLICIT, 0);
}

bool shadow_set_cpu(struct shadow *s, const struct shadow_cpu *cpu)
{
	const struct shadow_cpu *o = &s->cpu;
	bool keyed, walk;

	if (!cpu_valid(cpu))
		return false;
	keyed = o->cr0_wp != cpu->cr0_wp || o->cr4_smep != cpu->cr4_smep ||
		o->cr4_smap != cpu->cr4_smap || o->efer_nxe != cpu->efer_nxe;
	walk = o->gbpages != cpu->gbpages || o->maxphyaddr != cpu->maxphyaddr;
	s->cpu = *cpu;
	if (walk || (keyed && !s->cache)) {
		drop_all(s, SHADOW_FLUSH_CPU_STATE, 0);
	} else if (keyed) {
		/* the cache keys its shadows by these bits: switch roots */
		shadow_cache_set_cr3(s);
		s->tlb_flush = true;
	}
	return true;
}

mpa_t shadow_root(const struct shadow *s)
{
	return s->tab.root;
}

bool shadow_take_tlb_flush(struct shadow *s)
{
	bool f = s->tlb_flush;

	s->tlb_flush = false;
	return f;
}

gpa_t shadow_vcr3(const struct shadow *s)
{
	return s->vcr3;
}

const struct shadow_cpu *shadow_cpu_state(const struct shadow *s)
{
	return &s->cpu;
}

void shadow_get_stats(const struct shadow *s, struct shadow_stats *out)
{
	*out = s->stats;
	out->pages_in_use = shadow_pool_in_use(&s->tab.pool);
	out->pages_peak = s->tab.pool.peak;
}

bool shadow_check(const struct shadow *s, char *why, size_t len)
{
	/* the cache's check goes page by page: shared tables make a walk from
	 * the root cost up to the product of the fan-outs */
	if (s->cache)
		return shadow_cache_check(s, why, len);
	return shadow_invariants_hold(&s->tab, s->mem.ram_size, why, len);
}
