/* The shadow cache (SHADOW_OPT_CACHE): shadow tables kept per guest table
 * across guest CR3 writes, in the manner of KVM's shadow MMU.
 *
 * A shadow page (SP) shadows one guest table, keyed by (its GPA, level, the
 * rights combined over the entries above it): the rights are in the key
 * because shadow leaves carry the guest's combined rights (non-leaf shadow
 * entries grant everything; see spte.h), which is also what lets CR0.WP = 0
 * be emulated.  A "direct" SP maps part of a guest huge page with smaller
 * leaves, keyed by the frame it maps.  SPs are shared by every parent that
 * reaches the same key; roots are kept per guest CR3 (up to CACHE_ROOTS).
 *
 * Coherence: a guest table with a keyed SP is "tracked": no shadow leaf maps
 * it writable.  A guest write to it faults; the fault drops every SP of that
 * table (unprotect) and the write is retried through a writable leaf (no
 * instruction emulation).  A table written again and again (CACHE_FLOOD
 * unprotects), or one that maps itself on the path of the write, is
 * "volatile": its SPs are not keyed or tracked and are dropped at every guest
 * CR3 write and invlpg, exactly as the virtual TLB does.  Volatile roots are
 * revalidated against the guest PML4 at invlpg.
 *
 * Reverse maps record every writable shadow leaf by guest frame (4 KiB, and
 * 2 MiB for huge leaves), so that tracking a table finds and write-protects
 * them; parent lists record every entry linking to an SP, so that dropping
 * an SP unlinks it everywhere.  Every structure is bounded by the pool: when
 * pages or links run out, other roots are dropped first, then everything. */
#ifndef SHADOWVM_CACHE_H
#define SHADOWVM_CACHE_H

#include "engine.h"

/* Guest CR3 roots kept at once. */
#define CACHE_ROOTS 32
/* Unprotects of one guest table before it is left volatile. */
#define CACHE_FLOOD 3
/* Root switches (CR3 writes) after which a table's past unprotects are
 * forgotten, and a volatile table, shadowed again, is tracked again: its
 * writes cannot be seen while it is volatile, so only a new try tells
 * whether it is still written (KVM likewise re-shadows a zapped flooded
 * page at its next fault).  A table written once while a process grows
 * must not stay volatile for good: its shadows would go at every CR3
 * write, and every page it maps would fault again after each. */
#define CACHE_FLOOD_RETRY 64

extern const struct shadow_engine_ops shadow_cache_ops;

/* The cache's state (the state block, engine.h): cache.c runs the engine,
 * cache_map.c keeps its books, invariant.c checks them. */
/* An SP's role: its level, and what beyond the guest table's address makes
 * two shadows of it differ. */
#define CACHE_ROLE_LEVEL 0x7u
#define CACHE_ROLE_DIRECT 0x8u /* maps part of a guest huge page */
#define CACHE_ROLE_W 0x10u     /* rights combined above (direct: over the walk) */
#define CACHE_ROLE_U 0x20u
#define CACHE_ROLE_NX 0x40u
#define CACHE_ROLE_DIRTY 0x80u /* direct: the guest huge leaf's D */
#define CACHE_ROLE_PWT 0x100u  /* direct: the guest huge leaf's memory type bits */
#define CACHE_ROLE_PCD 0x200u
#define CACHE_ROLE_PAT 0x400u
/* The control bits the shadow was built under: CR0.WP, CR4.SMEP/SMAP and
 * EFER.NXE change what a shadow leaf grants (spte.h), so every SP is keyed
 * by them; a guest toggling one switches roots instead of dropping every
 * shadow, and shadows built under one setting are never used under another. */
#define CACHE_ROLE_CPU_WP 0x800u
#define CACHE_ROLE_CPU_SMEP 0x1000u
#define CACHE_ROLE_CPU_SMAP 0x2000u
#define CACHE_ROLE_CPU_NXE 0x4000u
/* 32-bit paging (SDM 3A §4.3): the guest's tables hold 1024 4-byte entries,
 * the shadow's 512 8-byte ones, so one guest table has several SPs, told
 * apart by the quadrant of it that they shadow (KVM's role.quadrant):
 *  - level 1: half q of a page table (guest PTEs 512q..512q+511, 2 MiB);
 *  - level 2: quarter q of the page directory (guest PDEs 256q..256q+255,
 *    each 4 MiB, two shadow entries apiece: 1 GiB);
 *  - levels 4 and 3 have no guest table: they are keyed by the directory
 *    and link to its quarters, entry 0 of the root and entries 0-3 below.
 * Direct SPs (a 2 MiB half of a 4 MiB page) are the same in every mode. */
#define CACHE_ROLE_G32 0x8000u
#define CACHE_ROLE_QUAD_SHIFT 16
#define CACHE_ROLE_QUAD (0x3u << CACHE_ROLE_QUAD_SHIFT)

#define CACHE_SP_USED 0x1u
#define CACHE_SP_KEYED 0x2u    /* in the hash; a non-direct one tracks its table */
#define CACHE_SP_VOLATILE 0x4u /* dropped at every guest CR3 write and invlpg */
#define CACHE_SP_ROOT 0x8u

#define CACHE_FLOOD_VOLATILE 0x80u
#define CACHE_FLOOD_COUNT 0x7fu

#define CACHE_NIL 0u /* list and chain indices are stored plus one */

struct cache_sp {
	gpa_t gfn; /* guest table (direct: first GPA mapped) */
	uint32_t role;
	uint32_t hnext;   /* hash chain: page + 1 */
	uint32_t parents; /* list of entries linking here: link + 1 */
	uint32_t stamp;   /* roots: last use */
	uint32_t flags;
};

/* One present shadow entry, named by its slot (pool page * 512 + index):
 * each link is either an entry pointing to an SP (on that SP's parent list)
 * or a writable leaf (on a reverse map), so pages * 512 links suffice. */
struct cache_link {
	uint32_t slot;
	uint32_t next;
};

/* At the start of the engine's state (engine.h), followed by its arrays,
 * each named by its offset from this header (a pointer would tie the block to one
 * address: shadow_rebase, the monitor). */
struct shadow_cache {
	uint64_t sp_off;   /* struct cache_sp[pages]: per pool page */
	uint64_t hash_off; /* uint32_t[hmask + 1] */
	uint32_t hmask;
	uint64_t link_off; /* struct cache_link[nlinks] */
	uint32_t nlinks, link_next, link_free;
	uint64_t frames, frames2m;
	uint64_t rmap_off; /* uint32_t[frames + 1]: per guest 4 KiB frame, writable 4 KiB leaves */
	uint64_t rmap2m_off;  /* uint32_t[frames2m + 1]: per 2 MiB frame, writable 2 MiB leaves */
	uint64_t tracked_off; /* uint16_t[frames + 1]: per 4 KiB frame, keyed SPs of that table */
	uint64_t
		tracked2m_off; /* uint32_t[frames2m + 1]: per 2 MiB frame, the sum over its 4 KiB frames */
	uint64_t
		flood_off; /* uint8_t[frames + 1]: per 4 KiB frame, unprotects | CACHE_FLOOD_VOLATILE */
	uint64_t flood_at_off; /* uint16_t[frames + 1]: per 4 KiB frame, `stamp` at its last
				  unprotect or retry (wrapping) */
	uint32_t roots[CACHE_ROOTS];
	unsigned nroots;
	uint32_t cur; /* the current root's page */
	uint32_t stamp;
	uint32_t nvolatile;
};

/* The cache's header, at the start of the engine's state. */
static inline struct shadow_cache *cache_of(const struct shadow *s)
{
	return (struct shadow_cache *)shadow_engine_state(s);
}

/* The arrays after the header (offsets from it, the block's base).  Like
 * strchr, they hand a const header's arrays back writable. */
#define CACHE_ARRAY(c, off, type) ((type *)((char *)(uintptr_t)(c) + (c)->off))

static inline struct cache_sp *cache_sp(const struct shadow_cache *c)
{
	return CACHE_ARRAY(c, sp_off, struct cache_sp);
}

static inline uint32_t *cache_hash(const struct shadow_cache *c)
{
	return CACHE_ARRAY(c, hash_off, uint32_t);
}

static inline struct cache_link *cache_link(const struct shadow_cache *c)
{
	return CACHE_ARRAY(c, link_off, struct cache_link);
}

static inline uint32_t *cache_rmap(const struct shadow_cache *c)
{
	return CACHE_ARRAY(c, rmap_off, uint32_t);
}

static inline uint32_t *cache_rmap2m(const struct shadow_cache *c)
{
	return CACHE_ARRAY(c, rmap2m_off, uint32_t);
}

static inline uint16_t *cache_tracked(const struct shadow_cache *c)
{
	return CACHE_ARRAY(c, tracked_off, uint16_t);
}

static inline uint32_t *cache_tracked2m(const struct shadow_cache *c)
{
	return CACHE_ARRAY(c, tracked2m_off, uint32_t);
}

static inline uint8_t *cache_flood(const struct shadow_cache *c)
{
	return CACHE_ARRAY(c, flood_off, uint8_t);
}

static inline uint16_t *cache_flood_at(const struct shadow_cache *c)
{
	return CACHE_ARRAY(c, flood_at_off, uint16_t);
}

/* Whether frame f's flood state is older than CACHE_FLOOD_RETRY root
 * switches. */
static inline bool cache_flood_old(const struct shadow_cache *c, uint64_t f)
{
	return (uint16_t)(c->stamp - cache_flood_at(c)[f]) >= CACHE_FLOOD_RETRY;
}

/* The shadow entry in `slot` (pool page * 512 + index). */
static inline uint64_t *cache_slot(const struct shadow *s, uint32_t slot)
{
	return s->tab.pool.host + slot;
}

/* Host view of SP `page`'s table. */
static inline uint64_t *cache_table(const struct shadow *s, uint32_t page)
{
	return s->tab.pool.host + (size_t)page * X86_PT_ENTRIES;
}

/* Machine address of entry i of SP `page` (what reverse maps and events name). */
static inline mpa_t cache_entry_mpa(const struct shadow *s, uint32_t page, unsigned i)
{
	return s->tab.pool.base + 8 * ((mpa_t)page * X86_PT_ENTRIES + i);
}

/* The SP a present shadow non-leaf entry links to. */
static inline uint32_t cache_page_of(const struct shadow *s, uint64_t e)
{
	assert(shadow_pool_contains(&s->tab.pool, e & X86_PTE_ADDR_MASK));
	return shadow_pool_index(&s->tab.pool, e & X86_PTE_ADDR_MASK);
}

static inline uint32_t cache_role_rights(struct shadow_rights r)
{
	return (r.write ? CACHE_ROLE_W : 0) | (r.user ? CACHE_ROLE_U : 0) |
	       (r.nx ? CACHE_ROLE_NX : 0);
}

static inline struct shadow_rights cache_role_to_rights(uint32_t role)
{
	return (struct shadow_rights){ role & CACHE_ROLE_W, role & CACHE_ROLE_U,
				       role & CACHE_ROLE_NX };
}

static inline uint32_t cache_cpu_role(const struct shadow_cpu *cpu)
{
	return (cpu->cr0_wp ? CACHE_ROLE_CPU_WP : 0) | (cpu->cr4_smep ? CACHE_ROLE_CPU_SMEP : 0) |
	       (cpu->cr4_smap ? CACHE_ROLE_CPU_SMAP : 0) | (cpu->efer_nxe ? CACHE_ROLE_CPU_NXE : 0);
}

static inline unsigned cache_role_level(uint32_t role)
{
	return role & CACHE_ROLE_LEVEL;
}

static inline unsigned cache_role_quad(uint32_t role)
{
	return (role & CACHE_ROLE_QUAD) >> CACHE_ROLE_QUAD_SHIFT;
}

/* Whether the cache shadows 32-bit paging now (the roles carry G32). */
static inline bool cache_g32(const struct shadow *s)
{
	return s->core->paging == SHADOW_PAGING_32;
}

/* The guest entry that entry i of a non-direct SP with `role` and guest
 * table `gfn` shadows: its address, and whether there is one (a 32-bit
 * shadow's levels 4 and 3 have none).  4-level: entry i of the table. */
static inline bool cache_guest_entry_at(gpa_t gfn, uint32_t role, unsigned i, gpa_t *at)
{
	unsigned level = cache_role_level(role), q = cache_role_quad(role);

	if (!(role & CACHE_ROLE_G32)) {
		*at = gfn + 8 * (gpa_t)i;
		return true;
	}
	if (level == 1)
		*at = gfn + 4 * (gpa_t)(512 * q + i);
	else if (level == 2)
		*at = gfn + 4 * (gpa_t)(256 * q + i / 2);
	else
		return false;
	return true;
}

/* The guest entry shadowed by entry i of SP (gfn, role) (see above). */
static inline int cache_read_guest_entry(const struct shadow *s, gpa_t gfn, uint32_t role,
					 unsigned i, uint64_t *g)
{
	gpa_t at;

	if (!cache_guest_entry_at(gfn, role, i, &at))
		return SHADOW_MEM_OUTSIDE;
	return shadow_read_entry(&s->mem, at, role & CACHE_ROLE_G32 ? 4 : 8, g);
}

/* ---- the books (cache_map.c) ---- */

/* Push `slot` on the list at *head, remove it (false if absent), or give
 * back link l already unlinked. */
void cache_link_push(struct shadow_cache *c, uint32_t *head, uint32_t slot);
bool cache_link_remove(struct shadow_cache *c, uint32_t *head, uint32_t slot);
void cache_link_release(struct shadow_cache *c, uint32_t l);

/* A keyed SP of guest table gfn now exists (write-protect every leaf that
 * maps it), or is gone. */
void cache_track(struct shadow *s, gpa_t gfn);
void cache_untrack(struct shadow_cache *c, gpa_t gfn);
/* Whether the guest page at gpa is a tracked table (ops->tracked). */
bool cache_is_tracked(const struct shadow *s, gpa_t gpa);

/* Write leaf `spte` (level 1, or 2 for a 2 MiB leaf) at entry `e`, machine
 * address `at`, keeping the reverse maps and write protection: a tracked
 * page never gets a writable leaf (ops->set_leaf). */
void cache_set_leaf(struct shadow *s, uint64_t *e, mpa_t at, int level, uint64_t spte);

/* The hash chain of guest table gfn; the keyed SP (gfn, role), as page + 1
 * or CACHE_NIL; adding and removing an SP's key. */
uint32_t cache_bucket(const struct shadow_cache *c, gpa_t gfn);
uint32_t cache_lookup(const struct shadow_cache *c, gpa_t gfn, uint32_t role);
void cache_hash_insert(struct shadow_cache *c, uint32_t page);
void cache_hash_remove(struct shadow_cache *c, uint32_t page);

#endif
