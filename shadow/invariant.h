/* The shadow's safety invariants (DESIGN.md §3), for both engines, in one
 * place: what shadow_check (--check-invariants, the unit suites and the
 * walk fuzzer) asserts after every operation.  Each engine's ops->check is
 * one of these. */
#ifndef SHADOWVM_INVARIANT_H
#define SHADOWVM_INVARIANT_H

#include "engine.h"

/* Virtual TLB, walking the tree from the root: the root holds the
 * hypervisor entry unchanged; every other present non-leaf entry names a
 * pool page and grants everything; every leaf maps a page wholly inside
 * guest RAM, never a pool page, never global; the pool's use is within its
 * bound; in a guest mode with 32-bit linear addresses, nothing maps a GVA
 * at or above 4 GiB.  True, or false with one line in why naming the
 * entry.  (A virtual TLB may be stale against the guest's tables, as a
 * TLB may: the guest is not walked again.) */
bool shadow_check_vtlb(const struct shadow *s, char *why, size_t len);

/* Cache, page by page (shared tables make a walk from the root cost up to
 * the product of the fan-outs): the same per entry, plus no writable leaf
 * on a tracked table, links and keys consistent, and every non-volatile
 * shadow coherent with the guest table it shadows. */
bool shadow_check_cache(const struct shadow *s, char *why, size_t len);

#endif
