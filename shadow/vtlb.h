/* The virtual-TLB engine (DESIGN.md §3, "coherence, first version"): one
 * shadow root, emptied at every guest CR3 write and keyed control-bit
 * change, its entries dropped at invlpg, exactly as a TLB is.  The baseline
 * every faster engine must agree with.  Shadow tables form a tree below the
 * root (no sharing), walked from the root to drop or check them. */
#ifndef SHADOWVM_VTLB_H
#define SHADOWVM_VTLB_H

#include "engine.h"

extern const struct shadow_engine_ops shadow_vtlb_ops;

#endif
