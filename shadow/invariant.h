/* The shadow's safety invariants (DESIGN.md §3), checked by walking every
 * shadow table from the root: what --check-invariants, the tests and the
 * walker fuzzer assert after every operation. */
#ifndef SHADOWVM_INVARIANT_H
#define SHADOWVM_INVARIANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fill.h"

/* True if: the root holds the hypervisor entry unchanged; every other
 * present non-leaf entry names a pool page; every leaf maps a page wholly
 * inside guest RAM [0, ram_size), never a pool page, never global; and
 * the pool's use is within its bound.  Otherwise false, with one line in
 * why naming the entry. */
bool shadow_invariants_hold(const struct shadow_tables *t, uint64_t ram_size, char *why,
			    size_t len);

#endif
