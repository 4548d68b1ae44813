/* The shadow cache (SHADOW_OPT_CACHE): shadow tables kept per guest table
 * across guest CR3 writes, in the manner of KVM's shadow MMU.
 *
 * A shadow page (SP) shadows one guest table, keyed by (its GPA, level, the
 * rights combined over the entries above it): the rights are in the key
 * because shadow leaves carry the guest's combined rights (non-leaf shadow
 * entries grant everything; see fill.h), which is also what lets CR0.WP = 0
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

#include <stdbool.h>
#include <stddef.h>

#include "internal.h"
#include "walk.h"

/* Guest CR3 roots kept at once. */
#define CACHE_ROOTS 32
/* Unprotects of one guest table before it is left volatile. */
#define CACHE_FLOOD 3

/* Allocate the cache and the root for s->vcr3 (s->tab.root).  False when out
 * of host memory. */
bool shadow_cache_create(struct shadow *s);
void shadow_cache_destroy(struct shadow *s);

/* Drop every SP and reverse map; a fresh root for s->vcr3. */
void shadow_cache_reset(struct shadow *s);

/* s->vcr3 changed (or was reloaded), or the control bits that key every
 * SP (CR0.WP, CR4.SMEP/SMAP, EFER.NXE) did: switch to the cached root for
 * both, or a new one, dropping volatile SPs. */
void shadow_cache_set_cr3(struct shadow *s);

/* Guest invlpg: drop gva's leaf, volatile SPs, stale volatile root entries. */
void shadow_cache_invlpg(struct shadow *s, gva_t gva);

/* A guest #PF at gva: drop its shadow leaf (SDM 3A §4.10.4.1). */
void shadow_cache_drop_gva(struct shadow *s, gva_t gva);

/* Whether the guest page at `gpa` is a tracked (write-protected) table. */
bool shadow_cache_tracked(const struct shadow *s, gpa_t gpa);

/* A guest write to tracked `gpa`: drop the SPs of that table, count it
 * towards flooding; `self` (the table translates the write itself) makes it
 * volatile at once. */
void shadow_cache_unprotect(struct shadow *s, gpa_t gpa, bool self);

/* Install the shadow of walk `w` for `gva`: `spte` is the 4 KiB leaf
 * (shadow_fill_spte); a 2 MiB leaf replaces it where SHADOW_OPT_HUGE allows.
 * *spte and *level report what was written where.
 * False only if the pool cannot hold one path even when emptied. */
bool shadow_cache_install(struct shadow *s, gva_t gva, const struct shadow_walk *w,
			  uint64_t *spte, mpa_t *spte_mpa, int *level);

/* Prefetch around the 4 KiB leaf written at spte_mpa for gva; huge_pte is
 * the guest huge leaf when that leaf table is a direct one. */
void shadow_cache_prefetch(struct shadow *s, gva_t gva, uint64_t huge_pte, mpa_t spte_mpa);

/* The fast path of a hidden fault at canonical `gva`: when the shadow
 * already links gva's path down to a 4 KiB leaf table through non-volatile
 * shadows of guest tables, write protection guarantees that the guest's
 * upper entries are still what they were when linked (present, accessed,
 * leading there with the rights in the keys), so only the guest PTE is read.
 * True with `res` filled when it installed the leaf; false, having changed
 * nothing, for anything else (no such path, a PTE that is not present,
 * reserved or refuses the access, a write to a protected page, a compare-
 * exchange that lost a race): the full walk then decides. */
bool shadow_cache_fast_fault(struct shadow *s, gva_t gva, unsigned access,
			     struct shadow_fault_result *res);

/* Write leaf `spte` (level 1, or 2 for a 2 MiB leaf) at entry `e` (machine
 * address `at`), keeping the reverse maps and write protection: a tracked
 * page never gets a writable leaf.  A no-op bookkeeping-wise without the
 * cache. */
void shadow_cache_set_leaf(struct shadow *s, uint64_t *e, mpa_t at, int level, uint64_t spte);

/* The cache's own invariants on top of shadow_invariants_hold: every table
 * reachable from every root; no writable leaf on a tracked table; links and
 * keys consistent. */
bool shadow_cache_check(const struct shadow *s, char *why, size_t len);

#endif
