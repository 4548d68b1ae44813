/* The shadow MMU's API: the context, the hidden-fault flow, guest control
 * events.  What differs between the engines is behind shadow_ops (engine.h). */
#include "shadow.h"

#include "cache.h"
#include "engine.h"
#include "vtlb.h"

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
	if (cfg->nmmio > SHADOW_MMIO_MAX)
		return false;
	for (unsigned i = 0; i < cfg->nmmio; i++) {
		const struct shadow_mmio *w = &cfg->mmio[i];

		/* outside RAM and the pool, inside the physical address space */
		if (((w->base | w->size) & ~X86_PAGE_MASK) || !w->size ||
		    w->base < cfg->mem.ram_size || w->base + w->size < w->base ||
		    w->base + w->size > X86_BIT(cfg->cpu.maxphyaddr) ||
		    (w->base < p->base + bytes && p->base < w->base + w->size))
			return false;
	}
	return cfg->hv_index < X86_PT_ENTRIES && cpu_valid(&cfg->cpu) &&
	       !(cfg->opts & ~SHADOW_OPT_ALL) && !(cfg->vcr3 >> cfg->cpu.maxphyaddr);
}

/* Where the engine's state ends, the pool's free stack starts at a cache
 * line; the block's base needs only what its widest field does. */
#define STATE_ALIGN 64u
#define STATE_BASE_ALIGN ((uintptr_t) _Alignof(uint64_t))

/* The pool view and the callbacks of one view of the context. */
static void set_view(struct shadow *s, const struct shadow_view *v)
{
	const struct shadow_core *c = s->core;

	s->mem = v->mem;
	s->mem.ram_size = c->ram_size;
	s->hook = v->hook;
	s->hook_opaque = v->hook_opaque;
	shadow_pool_init(&s->tab.pool, c->pool_base, v->pool.host, c->pool_pages, &s->core->books,
			 c->free_off);
	s->tab.pool.store = v->pool.store;
	s->tab.pool.zero = v->pool.zero;
	s->tab.pool.opaque = v->pool.opaque;
}

/* The core of a new context for cfg, its block's layout included: sized on
 * a view of its own (the engine's state_size reads the pool and RAM). */
static bool new_core(const struct shadow_config *cfg, struct shadow_core *core)
{
	const struct shadow_view view = { cfg->mem, cfg->pool, cfg->hook, cfg->hook_opaque };
	struct shadow probe = { .core = core };
	uint64_t engine;

	if (!config_valid(cfg))
		return false;
	*core = (struct shadow_core){
		.magic = SHADOW_CORE_MAGIC,
		.ram_size = cfg->mem.ram_size,
		.nmmio = cfg->nmmio,
		.pool_base = cfg->pool.base,
		.pool_pages = cfg->pool.pages,
		.opts = cfg->opts,
		.hv_entry = cfg->hv_entry,
		.hv_index = cfg->hv_index,
		.cpu = cfg->cpu,
		.vcr3 = cfg->vcr3 & X86_CR3_ADDR_MASK,
		.paging = SHADOW_PAGING_LONG4,
		.cache_on = cfg->opts & SHADOW_OPT_CACHE,
	};
	for (unsigned i = 0; i < cfg->nmmio; i++)
		core->mmio[i] = cfg->mmio[i];
	set_view(&probe, &view);
	/* sized in 4-level paging: the configured engine, the largest */
	engine = SHADOW_ENGINE_OFF + shadow_ops(&probe)->state_size(&probe);
	core->free_off = (engine + STATE_ALIGN - 1) & ~(uint64_t)(STATE_ALIGN - 1);
	core->state_size = core->free_off + shadow_pool_stack_bytes(cfg->pool.pages);
	return core->state_size == (size_t)core->state_size;
}

uint64_t shadow_state_bytes(const struct shadow_config *cfg)
{
	struct shadow_core core;

	return new_core(cfg, &core) ? core.state_size : 0;
}

struct shadow *shadow_create(const struct shadow_config *cfg)
{
	const struct shadow_view view = { cfg->mem, cfg->pool, cfg->hook, cfg->hook_opaque };
	struct shadow_core core;
	struct shadow *s;

	if (!new_core(cfg, &core))
		return NULL;
	s = shadow_zalloc(&cfg->alloc, sizeof(*s));
	if (!s)
		return NULL;
	s->alloc = cfg->alloc;
	/* the one allocation of the state: nothing later allocates */
	s->own_state = !cfg->state;
	s->state = cfg->state ? cfg->state : shadow_zalloc(&s->alloc, (size_t)core.state_size);
	if (!s->state || ((uintptr_t)s->state & (STATE_BASE_ALIGN - 1)))
		goto err;
	s->core = s->state;
	*s->core = core;
	set_view(s, &view);
	if (!shadow_ops(s)->create(s))
		goto err;
	return s;
err:
	shadow_destroy(s);
	return NULL;
}

void shadow_destroy(struct shadow *s)
{
	struct shadow_alloc alloc;

	if (!s)
		return;
	alloc = s->alloc;
	if (s->state && s->own_state)
		shadow_free(&alloc, s->state);
	shadow_free(&alloc, s);
}

void *shadow_state(const struct shadow *s, size_t *bytes)
{
	*bytes = (size_t)s->core->state_size;
	return s->state;
}

static bool block_aligned(const void *state, const void *pool_host)
{
	return state && !((uintptr_t)state & (STATE_BASE_ALIGN - 1)) && pool_host &&
	       !((uintptr_t)pool_host & ~X86_PAGE_MASK);
}

bool shadow_rebase(struct shadow *s, void *state, void *pool_host)
{
	if (!block_aligned(state, pool_host))
		return false;
	s->state = state;
	s->core = state;
	s->tab.pool.host = pool_host;
	s->tab.pool.bk = &s->core->books;
	return true;
}

static_assert(sizeof(struct shadow) <= SHADOW_VIEW_BYTES, "SHADOW_VIEW_BYTES");

struct shadow *shadow_attach(void *mem, void *state, uint64_t bytes, const struct shadow_view *v)
{
	const struct shadow_core *c = state;
	struct shadow *s = mem;

	if (!mem || ((uintptr_t)mem & 7) || !block_aligned(state, v->pool.host) ||
	    bytes < sizeof(*c) || c->magic != SHADOW_CORE_MAGIC || c->state_size > bytes ||
	    c->free_off + shadow_pool_stack_bytes(c->pool_pages) != c->state_size ||
	    c->free_off < SHADOW_ENGINE_OFF || !v->mem.read64 || !v->mem.cmpxchg64 ||
	    c->paging > SHADOW_PAGING_LONG4 || c->cache_on != shadow_cache_in_force(c))
		return NULL;
	*s = (struct shadow){ .state = state, .core = state };
	set_view(s, v);
	return s;
}

bool shadow_translate(const struct shadow *s, gva_t gva, unsigned access, gpa_t *gpa)
{
	struct shadow_walk_env env = shadow_walk_env_of(s);
	struct shadow_walk w;

	if (s->core->paging == SHADOW_PAGING_OFF) {
		if ((gva >> 32) || gva >= s->mem.ram_size)
			return false;
		*gpa = gva;
		return true;
	}
	if (shadow_walk(&env, gva, access, &w) != SHADOW_WALK_OK || w.gpa >= s->mem.ram_size)
		return false;
	*gpa = w.gpa;
	return true;
}

uint32_t shadow_pool_free_pages(const struct shadow *s)
{
	return s->tab.pool.pages - shadow_pool_in_use(&s->tab.pool);
}

/* The device window holding gpa, or NULL. */
static const struct shadow_mmio *mmio_window(const struct shadow *s, gpa_t gpa)
{
	for (uint32_t i = 0; i < s->core->nmmio; i++)
		if (gpa >= s->core->mmio[i].base &&
		    gpa - s->core->mmio[i].base < s->core->mmio[i].size)
			return &s->core->mmio[i];
	return NULL;
}

bool shadow_gpa_in_mmio(const struct shadow *s, gpa_t gpa)
{
	return mmio_window(s, gpa) != NULL;
}

/* Leaf `spte` of device page `mpa` with SHADOW_SPTE_MMIO_MARK where its
 * window asks for it (shadow.h SHADOW_MMIO_MARK): only a leaf through which
 * the guest kernel may read and write, the guest leaf already dirty, so
 * that the emulator serving the mark needs no rights check and no A/D of
 * its own; and only where bit 51 is reserved (MAXPHYADDR < 52). */
static uint64_t mmio_mark(const struct shadow *s, mpa_t mpa, uint64_t spte)
{
	const uint64_t need = X86_PTE_P | X86_PTE_W | X86_PTE_D;
	const uint64_t look = need | X86_PTE_U | SHADOW_SPTE_WP0;
	const struct shadow_mmio *w;

	if (!shadow_mmio_mark_possible(s->core->cpu.maxphyaddr) || (spte & look) != need)
		return spte;
	w = mmio_window(s, mpa);
	return w && (w->flags & SHADOW_MMIO_MARK) ? spte | SHADOW_SPTE_MMIO_MARK : spte;
}

bool shadow_mmio_unmark(struct shadow *s, gva_t gva)
{
	const struct shadow_pool *pool = &s->tab.pool;
	mpa_t table = s->core->root;

	for (int level = SHADOW_LEVELS; level >= 1; level--) {
		unsigned i = (unsigned)X86_LEVEL_INDEX(gva, level);
		uint64_t *e;

		/* the hypervisor's entry leads to no pool table */
		if ((level == SHADOW_LEVELS && i == s->core->hv_index) ||
		    !shadow_pool_contains(pool, table))
			return false;
		e = shadow_pool_table(pool, table) + i;
		if (!(*e & X86_PTE_P))
			return false;
		if (shadow_spte_is_leaf(level, *e)) {
			if (level != 1 || !(*e & SHADOW_SPTE_MMIO_MARK))
				return false;
			shadow_ops(s)->set_leaf(s, e, table + 8 * i, 1,
						*e & ~SHADOW_SPTE_MMIO_MARK);
			s->core->stats.mmio_unmarks++;
			s->core->tlb_flush = true;
			return true;
		}
		table = *e & X86_PTE_ADDR_MASK;
	}
	return false;
}

bool shadow_gpa_to_mpa(const struct shadow *s, gpa_t gpa, mpa_t *mpa)
{
	if (gpa >= s->mem.ram_size && !shadow_gpa_in_mmio(s, gpa))
		return false;
	*mpa = (mpa_t)gpa; /* RAM at MPA 0, device windows where they are */
	return true;
}

/* A fault-path event: the access, the guest entries walked and the A/D
 * bits this fault set (ad_set may be NULL). */
static void walk_event(struct shadow_event *ev, enum shadow_event_kind kind, gva_t gva,
		       uint32_t pferr, const struct shadow_walk *w, const uint64_t *ad_set)
{
	int level;

	*ev = (struct shadow_event){ .kind = kind,
				     .gva = gva,
				     .access = shadow_access_from_pferr(pferr),
				     .error_code = pferr,
				     .level = w->level,
				     .depth = w->depth };
	assert(w->level + w->depth - 1 <= SHADOW_LEVELS); /* no 5-level walk here */
	for (level = w->level + w->depth - 1; level >= w->level; level--) {
		ev->gpte[level] = w->pte[level];
		ev->gpte_gpa[level] = w->pte_gpa[level];
		ev->ad_set[level] = ad_set ? ad_set[level] : 0;
	}
}

static enum shadow_status fail(struct shadow_fault_result *res, enum shadow_error err, gpa_t gpa)
{
	res->status = SHADOW_ERROR;
	res->err = err;
	res->gpa = gpa;
	return SHADOW_ERROR;
}

/* Drop the shadow of the guest page holding gva.  A 4 MiB page of 32-bit
 * paging is shadowed in two 2 MiB halves, each marked huge (or a 2 MiB
 * leaf): the other half goes too, as the one TLB entry of the page would
 * (§4.10.4.1; for a 4 KiB page that drops one more leaf than needed, which
 * a TLB may do). */
static void drop_gva(struct shadow *s, gva_t gva)
{
	shadow_ops(s)->drop_gva(s, gva);
	if (s->core->paging == SHADOW_PAGING_32)
		shadow_ops(s)->drop_gva(s, gva ^ X86_LEVEL_SIZE(2));
}

static enum shadow_status guest_fault(struct shadow *s, gva_t gva, uint32_t pferr,
				      const struct shadow_walk *w, bool gp,
				      struct shadow_fault_result *res)
{
	struct shadow_event ev;

	s->core->stats.guest_faults++;
	/* a #PF invalidates the TLB entries for its address (SDM 3A
	 * §4.10.4.1): a stale shadow leaf must not outlive the fault */
	if (!gp) {
		drop_gva(s, gva);
		s->core->tlb_flush = true;
	}
	res->status = gp ? SHADOW_GUEST_GP : SHADOW_GUEST_PF;
	res->pferr = gp ? 0 : w->pferr;
	res->level = w->level;
	if (s->hook) {
		walk_event(&ev, SHADOW_EV_GUEST_FAULT, gva, pferr, w, NULL);
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
		s->core->stats.a_sets += !!(set[level] & X86_PTE_A);
		s->core->stats.d_sets += !!(set[level] & X86_PTE_D);
		any |= set[level];
	}
	return any;
}

/* Install the shadow leaf of a synced walk (the engine evicts as needed).
 * Inlined in both callers: the hidden fault's hot path. */
static inline __attribute__((always_inline)) enum shadow_status fill(
	struct shadow *s, const struct shadow_engine_ops *ops, gva_t gva, uint32_t pferr,
	const struct shadow_walk *w, mpa_t mpa, const uint64_t *ad_set,
	struct shadow_fault_result *res)
{
	unsigned access = shadow_access_from_pferr(pferr);
	uint64_t want =
		shadow_spte_leaf(&s->core->cpu, w->pte[w->level], w->level, w->rights, access, mpa);
	uint64_t spte;
	struct shadow_event ev;
	mpa_t spte_mpa;
	int leaf_level;

	if (mpa >= s->mem.ram_size)
		want = mmio_mark(s, mpa, want);
	for (int round = 0;; round++) {
		spte = want;
		if (!ops->install(s, gva, w, &spte, &spte_mpa, &leaf_level))
			return fail(res, SHADOW_ERR_NOMEM, w->gpa); /* pool < minimum */
		/* A write must leave a writable leaf.  With the cache the install
		 * itself can write-protect the page written: it became a shadowed
		 * table on this very path, or an eviction emptied the cache and
		 * with it the page's flood state.  Unprotect it as volatile and
		 * install again; if even that fails, nothing is promised. */
		if (!(access & SHADOW_ACC_WRITE) || (spte & X86_PTE_W))
			break;
		if (round == 2) {
			res->status = SHADOW_RETRY;
			return SHADOW_RETRY;
		}
		ops->unprotect(s, w->gpa, true);
	}
	s->core->stats.fills[w->level]++;
	s->core->stats.mmio_marks += !!(spte & SHADOW_SPTE_MMIO_MARK);
	res->status = SHADOW_FILLED;
	res->gpa = w->gpa;
	res->level = w->level;
	if (s->hook) {
		walk_event(&ev, SHADOW_EV_FILL, gva, pferr, w, ad_set);
		ev.gpa = w->gpa;
		ev.spte = spte;
		ev.spte_mpa = spte_mpa;
		shadow_emit(s, &ev);
	}
	/* Prefetch (after the fill's event) only around a page the guest had
	 * accessed before: a leaf whose A bit this very fault set is a first
	 * touch, and its neighbours most likely are too (A clear: nothing to
	 * prefetch). */
	if ((s->core->opts & SHADOW_OPT_PREFETCH) && s->core->paging == SHADOW_PAGING_LONG4 &&
	    leaf_level == 1 && !(ad_set[w->level] & X86_PTE_A))
		ops->prefetch(s, gva, w, spte_mpa);
	return SHADOW_FILLED;
}

/* Whether the page written is one of the tables below the root on the
 * walk's own path (a self-mapping): keeping it write-protected would make
 * the write fault for ever. */
static bool translates_itself(const struct shadow_walk *w)
{
	gpa_t page = w->gpa & X86_PAGE_MASK;

	for (int level = w->level + w->depth - 1; level > w->level; level--)
		if ((w->pte[level] & X86_PTE_ADDR_MASK) == page)
			return true;
	return false;
}

/* Paging off: the identity, every right, no guest entry and no A/D (SDM
 * 3A §4.1.2); linear addresses are 32 bits, so a GVA above is #GP as in
 * the 32-bit modes. */
static enum shadow_status fault_identity(struct shadow *s, gva_t gva, uint32_t pferr,
					 struct shadow_fault_result *res)
{
	static const uint64_t none[SHADOW_WALK_LEVELS + 1];
	struct shadow_walk w = {
		.level = 1, .entry_size = 4, .gpa = gva, .rights = SHADOW_RIGHTS_ALL
	};
	mpa_t mpa;

	if (gva >> 32)
		return guest_fault(s, gva, pferr, &w, true, res);
	if (!shadow_gpa_to_mpa(s, gva & X86_PAGE_MASK, &mpa)) {
		res->level = 1;
		return fail(res, SHADOW_ERR_PAGE_OUTSIDE_RAM, gva);
	}
	/* the leaf a dirty, writable user page would get (U = 1: the
	 * contract in shadow.h asks for real SMEP = SMAP = 0 then) */
	w.pte[1] = X86_PTE_P | X86_PTE_W | X86_PTE_U | X86_PTE_A | X86_PTE_D;
	return fill(s, shadow_ops(s), gva, pferr, &w, mpa, none, res);
}

/* One walk + A/D sync + fill; SHADOW_RETRY if a guest entry changed. */
static enum shadow_status fault_once(struct shadow *s, const struct shadow_engine_ops *ops,
				     gva_t gva, uint32_t pferr, struct shadow_fault_result *res)
{
	unsigned access = shadow_access_from_pferr(pferr);
	struct shadow_walk_env env = shadow_walk_env_of(s);
	uint64_t ad_set[SHADOW_WALK_LEVELS + 1];
	struct shadow_event ev;
	struct shadow_walk w;
	mpa_t mpa;

	if (s->core->paging == SHADOW_PAGING_OFF)
		return fault_identity(s, gva, pferr, res);
	switch (shadow_walk(&env, gva, access, &w)) {
	case SHADOW_WALK_OK: break;
	case SHADOW_WALK_PF: return guest_fault(s, gva, pferr, &w, false, res);
	case SHADOW_WALK_GP: return guest_fault(s, gva, pferr, &w, true, res);
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
	case SHADOW_AD_OK: break;
	case SHADOW_AD_CHANGED: count_ad(s, ad_set); return SHADOW_RETRY;
	case SHADOW_AD_OUTSIDE: return fail(res, SHADOW_ERR_TABLE_OUTSIDE_RAM, w.pte_gpa[w.level]);
	}
	if (count_ad(s, ad_set) && s->hook) {
		walk_event(&ev, SHADOW_EV_AD_SET, gva, pferr, &w, ad_set);
		shadow_emit(s, &ev);
	}
	if ((access & SHADOW_ACC_WRITE) && ops->tracked(s, w.gpa))
		ops->unprotect(s, w.gpa, translates_itself(&w));
	return fill(s, ops, gva, pferr, &w, mpa, ad_set, res);
}

enum shadow_status shadow_fault(struct shadow *s, gva_t gva, uint32_t pferr,
				struct shadow_fault_result *res)
{
	unsigned access = shadow_access_from_pferr(pferr);
	/* once: every engine call of the fault goes through it */
	const struct shadow_engine_ops *ops = shadow_ops(s);
	int try;

	*res = (struct shadow_fault_result){ .status = SHADOW_ERROR };
	s->core->stats.hidden_faults++;
	if ((pferr & ~(X86_PF_P | SHADOW_ACC_WRITE | SHADOW_ACC_USER | SHADOW_ACC_FETCH)) ||
	    ((access & SHADOW_ACC_WRITE) && (access & SHADOW_ACC_FETCH)))
		return fail(res, SHADOW_ERR_BAD_ARG, 0);
	if (x86_is_canonical48(gva) && X86_LEVEL_INDEX(gva, SHADOW_LEVELS) == s->core->hv_index)
		return fail(res, SHADOW_ERR_RESERVED_SLOT, 0);
	if (ops->fast_fault && !s->hook && x86_is_canonical48(gva) &&
	    ops->fast_fault(s, gva, access, res))
		return SHADOW_FILLED;
	for (try = 0; try < AD_TRIES; try++) {
		enum shadow_status st = fault_once(s, ops, gva, pferr, res);

		if (st != SHADOW_RETRY)
			return st;
		s->core->stats.ad_retries++;
	}
	res->status = SHADOW_RETRY;
	return SHADOW_RETRY;
}

/* Whether vcr3 sets a reserved bit in the current mode: without PCIDE,
 * bits 63:MAXPHYADDR in 4-level paging (§4.5); CR3 is 32 bits in the
 * others, the VMM passes the low half (table 4-3, table 4-7). */
static bool cr3_reserved(const struct shadow *s, enum shadow_paging mode, uint64_t vcr3)
{
	if (mode == SHADOW_PAGING_LONG4 || mode == SHADOW_PAGING_LONG5)
		return vcr3 >> s->core->cpu.maxphyaddr;
	return vcr3 >> 32;
}

/* CR3's bits that address the root table (paging off: as in 32-bit). */
static gpa_t cr3_addr(enum shadow_paging mode, uint64_t vcr3)
{
	switch (mode) {
	case SHADOW_PAGING_PAE: return vcr3 & shadow_mode_pae.cr3_mask;
	case SHADOW_PAGING_OFF:
	case SHADOW_PAGING_32: return vcr3 & shadow_mode_legacy32.cr3_mask;
	default: return vcr3 & X86_CR3_ADDR_MASK;
	}
}

/* What loading vcr3 in `mode` gives: SHADOW_OK with the PDPTEs in pdpte[]
 * (PAE), or the #GP / outside-RAM outcome. */
static enum shadow_status cr3_check(const struct shadow *s, enum shadow_paging mode, uint64_t vcr3,
				    uint64_t pdpte[4])
{
	if (cr3_reserved(s, mode, vcr3))
		return SHADOW_GUEST_GP;
	memset(pdpte, 0, 4 * sizeof(*pdpte));
	if (mode != SHADOW_PAGING_PAE)
		return SHADOW_OK;
	switch (shadow_pae_load_pdptes(&s->mem, &s->core->cpu, vcr3, pdpte)) {
	case SHADOW_PDPTE_OK: return SHADOW_OK;
	case SHADOW_PDPTE_GP: return SHADOW_GUEST_GP;
	default: return SHADOW_ERROR;
	}
}

static void note_cr3(struct shadow *s, uint64_t vcr3, const uint64_t pdpte[4])
{
	struct shadow_event ev = { .kind = SHADOW_EV_CR3 };

	s->core->vcr3 = cr3_addr(s->core->paging, vcr3);
	memcpy(s->core->pdpte, pdpte, sizeof(s->core->pdpte));
	s->core->stats.cr3_loads++;
	shadow_emit(s, &ev);
}

enum shadow_status shadow_load_cr3(struct shadow *s, uint64_t vcr3)
{
	uint64_t pdpte[4];
	enum shadow_status st = cr3_check(s, s->core->paging, vcr3, pdpte);

	if (st != SHADOW_OK)
		return st;
	note_cr3(s, vcr3, pdpte);
	shadow_ops(s)->set_cr3(s);
	return SHADOW_OK;
}

bool shadow_set_cr3(struct shadow *s, uint64_t vcr3)
{
	return shadow_load_cr3(s, vcr3) == SHADOW_OK;
}

enum shadow_status shadow_set_paging(struct shadow *s, enum shadow_paging mode, gpa_t cr3)
{
	const struct shadow_engine_ops *was = shadow_ops(s);
	uint64_t pdpte[4];
	enum shadow_status st;

	/* a 4-level shadow cannot map 57-bit addresses: LONG5 is walker-only */
	if (mode != SHADOW_PAGING_OFF && mode != SHADOW_PAGING_32 && mode != SHADOW_PAGING_PAE &&
	    mode != SHADOW_PAGING_LONG4)
		return SHADOW_ERROR;
	st = cr3_check(s, mode, cr3, pdpte);
	if (st != SHADOW_OK)
		return st;
	s->core->paging = mode;
	s->core->cache_on = shadow_cache_in_force(s->core);
	note_cr3(s, cr3, pdpte);
	/* the engine follows the mode: the new one starts on an empty pool */
	if (shadow_ops(s) != was) {
		bool made;

		shadow_pool_reset(&s->tab.pool, 0);
		made = shadow_ops(s)->create(s); /* an empty pool holds a root */
		assert(made);
		(void)made;
	}
	shadow_drop_all(s, SHADOW_FLUSH_CPU_STATE, 0);
	return SHADOW_OK;
}

enum shadow_paging shadow_paging_mode(const struct shadow *s)
{
	return (enum shadow_paging)s->core->paging;
}

const uint64_t *shadow_pae_pdptes(const struct shadow *s)
{
	return s->core->pdpte;
}

void shadow_invlpg(struct shadow *s, gva_t gva)
{
	struct shadow_event ev = { .kind = SHADOW_EV_INVLPG, .gva = gva };

	s->core->stats.invlpgs++;
	/* invlpg of a non-canonical address is a no-op (SDM 2, INVLPG) */
	shadow_ops(s)->invlpg(s, gva);
	/* the other 2 MiB half of a 4 MiB page (drop_gva) */
	if (s->core->paging == SHADOW_PAGING_32 && !(gva >> 32))
		shadow_ops(s)->invlpg(s, gva ^ X86_LEVEL_SIZE(2));
	s->core->tlb_flush = true;
	shadow_emit(s, &ev);
}

void shadow_flush(struct shadow *s)
{
	shadow_drop_all(s, SHADOW_FLUSH_EXPLICIT, 0);
}

bool shadow_set_cpu(struct shadow *s, const struct shadow_cpu *cpu)
{
	const struct shadow_cpu *o = &s->core->cpu;
	bool keyed, walk;

	if (!cpu_valid(cpu))
		return false;
	keyed = o->cr0_wp != cpu->cr0_wp || o->cr4_smep != cpu->cr4_smep ||
		o->cr4_smap != cpu->cr4_smap || o->efer_nxe != cpu->efer_nxe;
	/* CR4.PSE and PSE-36 change 32-bit walks; a mov to CR4 that changes
	 * PSE flushes the whole TLB (§4.10.4.1) */
	walk = o->gbpages != cpu->gbpages || o->maxphyaddr != cpu->maxphyaddr ||
	       o->cr4_pse != cpu->cr4_pse || o->pse36 != cpu->pse36;
	s->core->cpu = *cpu;
	if (walk)
		shadow_drop_all(s, SHADOW_FLUSH_CPU_STATE, 0);
	else if (keyed)
		shadow_ops(s)->set_cpu(s);
	return true;
}

mpa_t shadow_root(const struct shadow *s)
{
	return s->core->root;
}

bool shadow_take_tlb_flush(struct shadow *s)
{
	bool f = s->core->tlb_flush;

	s->core->tlb_flush = false;
	return f;
}

gpa_t shadow_vcr3(const struct shadow *s)
{
	return s->core->vcr3;
}

const struct shadow_cpu *shadow_cpu_state(const struct shadow *s)
{
	return &s->core->cpu;
}

void shadow_get_stats(const struct shadow *s, struct shadow_stats *out)
{
	*out = s->core->stats;
	out->pages_in_use = shadow_pool_in_use(&s->tab.pool);
	out->pages_peak = s->tab.pool.bk->peak;
}

bool shadow_check(const struct shadow *s, char *why, size_t len)
{
	return shadow_ops(s)->check(s, why, len);
}
