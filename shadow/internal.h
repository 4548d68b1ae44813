/* The shadow context, shared by the virtual-TLB engine (shadow.c, fill.c)
 * and the shadow cache (cache.c).  Not part of the library's API. */
#ifndef SHADOWVM_INTERNAL_H
#define SHADOWVM_INTERNAL_H

#include <stdbool.h>

#include "fill.h"
#include "shadow.h"

struct shadow_cache;

struct shadow {
	struct shadow_mem mem;
	struct shadow_tables tab;
	struct shadow_cpu cpu;
	gpa_t vcr3;
	struct shadow_stats stats;
	shadow_event_fn hook;
	void *hook_opaque;
	bool tlb_flush;
	unsigned opts;              /* SHADOW_OPT_* */
	struct shadow_cache *cache; /* SHADOW_OPT_CACHE, else NULL */
};

/* Hand an event to the hook, if any (fills in vcr3 and pages_in_use). */
void shadow_emit(const struct shadow *s, struct shadow_event *ev);

/* Pool pressure dropped shadows: count it and tell the trace. */
void shadow_note_evict(struct shadow *s, gva_t gva);

/* Whether walk `w` ends in a guest 2M/1G page whose 2 MiB frame around
 * the address lies wholly in RAM: what a 2 MiB shadow leaf needs
 * (SHADOW_OPT_HUGE; the cache also wants the frame free of its tables). */
static inline bool shadow_huge_fits(const struct shadow *s, const struct shadow_walk *w)
{
	gpa_t frame = w->gpa & X86_PTE_ADDR_2M_MASK;

	return (s->opts & SHADOW_OPT_HUGE) && w->level >= 2 &&
	       frame + X86_LEVEL_SIZE(2) <= s->mem.ram_size;
}

/* Rights combined over the guest entries above a table (SDM 3A §4.6). */
struct shadow_rights {
	bool write, user, nx;
};

/* Rights of one guest entry. */
static inline struct shadow_rights shadow_entry_rights(const struct shadow_cpu *cpu, uint64_t pte)
{
	return (struct shadow_rights){ .write = pte & X86_PTE_W, .user = pte & X86_PTE_U,
				       .nx = cpu->efer_nxe && (pte & X86_PTE_NX) };
}

static inline struct shadow_rights shadow_rights_and(struct shadow_rights a, struct shadow_rights b)
{
	return (struct shadow_rights){ a.write && b.write, a.user && b.user, a.nx || b.nx };
}

#define SHADOW_RIGHTS_ALL ((struct shadow_rights){ true, true, false })

/* Prefetch (SHADOW_OPT_PREFETCH): after a 4 KiB fill at index `idx` of the
 * leaf table `tab`, also map the neighbours in an aligned window whose guest
 * entry is present, valid and already accessed.  `guest_pt` is the guest
 * table's GPA, or, with `direct`, the GPA of the frame the table maps (a
 * guest huge page `huge_pte`).  `above` are the rights combined over the
 * levels above the table (for `direct`: over the whole guest walk).  `track`
 * (may be NULL) vetoes write access to a page and records writable leaves. */
struct shadow_prefetch {
	uint64_t *tab;
	mpa_t tab_mpa;
	unsigned idx;
	gva_t gva;           /* the fault's address: the window's GVAs follow */
	bool direct;
	gpa_t guest_pt;
	uint64_t huge_pte;
	struct shadow_rights above;
};
unsigned shadow_prefetch(struct shadow *s, const struct shadow_prefetch *pf);

#endif
