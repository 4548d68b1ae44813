/* The interface between the API (shadow.c) and the two shadow engines, the
 * virtual TLB (vtlb.h) and the cache (cache.h): the shadow context and one
 * table of operations, picked once in shadow_create; shadow.c never asks
 * which engine it has.  Not part of the library's API. */
#ifndef SHADOWVM_ENGINE_H
#define SHADOWVM_ENGINE_H

#include "lib.h"
#include "pool.h"
#include "shadow.h"
#include "spte.h"
#include "walk.h"

struct shadow_tables {
	struct shadow_pool pool;
};

struct shadow_engine_ops;

/* The engine's scalars, at the base of the state block: plain data that
 * every view of the context (shadow_attach) reads and writes in place. */
struct shadow_core {
	uint64_t magic; /* SHADOW_CORE_MAGIC */
	uint64_t state_size;
	uint64_t ram_size;
	mpa_t pool_base;
	uint32_t pool_pages;
	uint32_t opts; /* SHADOW_OPT_* */
	uint64_t free_off;
	mpa_t root; /* the current root's machine address */
	uint64_t hv_entry;
	uint32_t hv_index;
	bool tlb_flush;
	struct shadow_cpu cpu;
	gpa_t vcr3;
	/* enum shadow_paging, a number: every view maps it to its own
	 * descriptor and engine (shadow_guest_mode, shadow_ops) */
	uint32_t paging;
	bool cache_on;     /* the engine is the cache (shadow_ops): CACHE in LONG4 */
	uint64_t pdpte[4]; /* PAE: the PDPTE registers (§4.4.1) */
	struct shadow_mmio mmio[SHADOW_MMIO_MAX]; /* device windows outside RAM */
	uint32_t nmmio;
	struct shadow_stats stats;
	struct shadow_pool_books books;
};

#define SHADOW_CORE_MAGIC 0x53484457434f5245ull /* "SHDWCORE" */

/* Where the engine's own state starts: after the core, at a cache line. */
#define SHADOW_ENGINE_OFF ((sizeof(struct shadow_core) + 63) & ~(size_t)63)

/* The state block: every mutable structure of the engine and the pool's
 * books, allocated once by shadow_create, laid out as
 *
 *	[0, ENGINE_OFF)        struct shadow_core
 *	[ENGINE_OFF, free_off) the engine's state (ops->state_size bytes; the
 *	                       cache: struct shadow_cache, then its arrays)
 *	[free_off, state_size) the pool's free stack
 *
 * Inside the block and the pool every reference is an offset, a page index
 * or an MPA, never a pointer.  struct shadow is one view of it: the
 * block's and the pool's addresses and the callbacks of whoever holds the
 * view (the VMM, or the monitor inside the VM), so that the same bytes work
 * wherever they are mapped (shadow_rebase, shadow_attach); the engine and
 * the guest's paging mode are numbers in the block, each view's code
 * (shadow_ops, shadow_guest_mode) maps them to its own addresses. */
struct shadow {
	void *state;              /* the state block's base */
	struct shadow_core *core; /* == state */
	struct shadow_mem mem;
	struct shadow_alloc alloc;
	struct shadow_tables tab;
	shadow_event_fn hook;
	void *hook_opaque;
	bool own_state; /* the block came from alloc */
};

extern const struct shadow_engine_ops shadow_vtlb_ops, shadow_cache_ops;

/* The engine in force: the cache only with SHADOW_OPT_CACHE in 4-level and
 * 32-bit paging (cache.h: a 32-bit table has several shadow pages), else
 * the virtual TLB (PAE, whose top level is the PDPTE registers).  Read from the state block at every use, so that a
 * mode change made through one view holds in every other. */
static inline bool shadow_cache_in_force(const struct shadow_core *c)
{
	return (c->opts & SHADOW_OPT_CACHE) &&
	       (c->paging == SHADOW_PAGING_LONG4 || c->paging == SHADOW_PAGING_32);
}

static inline const struct shadow_engine_ops *shadow_ops(const struct shadow *s)
{
	/* cache_on == shadow_cache_in_force(s->core), kept by shadow.c */
	return s->core->cache_on ? &shadow_cache_ops : &shadow_vtlb_ops;
}

/* The guest mode's walk descriptor (none for SHADOW_PAGING_OFF: callers
 * handle it first; 4-level is answered for it). */
static inline const struct shadow_mode *shadow_guest_mode(const struct shadow *s)
{
	static const struct shadow_mode *const by_paging[] = {
		[SHADOW_PAGING_OFF] = &shadow_mode_long4,
		[SHADOW_PAGING_32] = &shadow_mode_legacy32,
		[SHADOW_PAGING_PAE] = &shadow_mode_pae,
		[SHADOW_PAGING_LONG4] = &shadow_mode_long4,
		[SHADOW_PAGING_LONG5] = &shadow_mode_long5,
	};

	/* shadow_set_paging stores only these */
	return by_paging[s->core->paging];
}

/* The walk environment of the guest's current mode, CR3 and PDPTEs. */
static inline struct shadow_walk_env shadow_walk_env_of(const struct shadow *s)
{
	return (struct shadow_walk_env){ .mode = shadow_guest_mode(s),
					 .mem = &s->mem,
					 .cpu = &s->core->cpu,
					 .cr3 = s->core->vcr3,
					 .pdpte = s->core->pdpte };
}

/* The engine's own state (after the core). */
static inline void *shadow_engine_state(const struct shadow *s)
{
	return (char *)s->state + SHADOW_ENGINE_OFF;
}

/* One shadow engine (Linux struct kvm_mmu's per-role hooks).  Every hook
 * is set except where it says "may be NULL". */
struct shadow_engine_ops {
	/* Bytes of the engine's state at the start of the state block, for
	 * s->tab.pool and s->mem as configured (0: none). */
	uint64_t (*state_size)(const struct shadow *s);
	/* Lay out the engine's state in the zeroed block and make the root
	 * for s->core->vcr3 (s->core->root) hold the hypervisor entry alone.  False
	 * if the pool cannot hold the root.  Allocates nothing. */
	bool (*create)(struct shadow *s);
	/* Drop every shadow but the hypervisor entry (shadow_drop_all). */
	void (*reset)(struct shadow *s);
	/* s->core->vcr3 was written (the guest's mov cr3). */
	void (*set_cr3)(struct shadow *s);
	/* CR0.WP, CR4.SMEP/SMAP or EFER.NXE changed: what a leaf grants. */
	void (*set_cpu)(struct shadow *s);
	/* The guest's invlpg of gva, canonical or not (then a no-op for the
	 * translation, SDM 2 INVLPG). */
	void (*invlpg)(struct shadow *s, gva_t gva);
	/* A guest #PF at canonical gva: drop its shadow leaf (§4.10.4.1). */
	void (*drop_gva)(struct shadow *s, gva_t gva);
	/* May be NULL.  Resolve a hidden fault at canonical gva without the
	 * full walk: true with `res` filled, or false having changed nothing. */
	bool (*fast_fault)(struct shadow *s, gva_t gva, unsigned access,
			   struct shadow_fault_result *res);
	/* Whether the guest page at gpa is write-protected as a shadowed table. */
	bool (*tracked)(const struct shadow *s, gpa_t gpa);
	/* A guest write to the page at gpa: stop write-protecting it; `self`
	 * (the page translates the write itself): volatile at once (with the
	 * cache, until CACHE_FLOOD_RETRY root switches have passed). */
	void (*unprotect)(struct shadow *s, gpa_t gpa, bool self);
	/* Install the shadow of walk `w` for gva: `*spte` is the 4 KiB leaf, a
	 * 2 MiB leaf replaces it where SHADOW_OPT_HUGE allows; *spte, *spte_mpa
	 * and *level report what was written where.  Evicts as needed; false
	 * only if the pool cannot hold one path even when emptied. */
	bool (*install)(struct shadow *s, gva_t gva, const struct shadow_walk *w, uint64_t *spte,
			mpa_t *spte_mpa, int *level);
	/* Prefetch around the 4 KiB leaf of walk `w` just written at spte_mpa. */
	void (*prefetch)(struct shadow *s, gva_t gva, const struct shadow_walk *w, mpa_t spte_mpa);
	/* Write leaf `spte` (level 1, or 2 for a 2 MiB leaf) at entry `e`,
	 * machine address `at`, keeping the engine's books on its leaves. */
	void (*set_leaf)(struct shadow *s, uint64_t *e, mpa_t at, int level, uint64_t spte);
	/* The invariants (invariant.h). */
	bool (*check)(const struct shadow *s, char *why, size_t len);
};

/* Hand an event to the hook, if any (fills in vcr3 and pages_in_use). */
void shadow_emit(const struct shadow *s, struct shadow_event *ev);

/* Pool pressure dropped shadows: count it and tell the trace. */
void shadow_note_evict(struct shadow *s, gva_t gva);

/* Drop every shadow but the hypervisor entry (ops->reset), ask for a real
 * TLB flush, count and report it: as an eviction at gva for
 * SHADOW_FLUSH_EVICT, as a flush otherwise. */
void shadow_drop_all(struct shadow *s, enum shadow_flush_reason reason, gva_t gva);

/* Whether walk `w` ends in a guest 2M/1G page whose 2 MiB frame around
 * the address lies wholly in RAM: what a 2 MiB shadow leaf needs
 * (SHADOW_OPT_HUGE; the cache also wants the frame free of its tables). */
static inline bool shadow_huge_fits(const struct shadow *s, const struct shadow_walk *w)
{
	gpa_t frame = w->gpa & X86_PTE_ADDR_2M_MASK;

	return (s->core->opts & SHADOW_OPT_HUGE) && w->level >= 2 &&
	       frame + X86_LEVEL_SIZE(2) <= s->mem.ram_size;
}

/* Prefetch (SHADOW_OPT_PREFETCH): after a 4 KiB fill at index `idx` of the
 * leaf table `tab`, also map the neighbours in an aligned window whose guest
 * entry is present, valid and already accessed, through ops->set_leaf.
 * `guest_pt` is the guest table's GPA, or, with `direct`, the GPA of the
 * frame the table maps (a guest huge page `huge_pte`).  `above` are the
 * rights combined over the levels above the table (for `direct`: over the
 * whole guest walk).  Returns the leaves installed. */
struct shadow_prefetch {
	uint64_t *tab;
	mpa_t tab_mpa;
	unsigned idx;
	gva_t gva; /* the fault's address: the window's GVAs follow */
	bool direct;
	gpa_t guest_pt;
	uint64_t huge_pte;
	struct shadow_rights above;
};
unsigned shadow_prefetch(struct shadow *s, const struct shadow_prefetch *pf);

#endif
