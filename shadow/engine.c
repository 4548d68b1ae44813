/* What both engines share: events, dropping everything, prefetch. */
#include "engine.h"

void shadow_emit(const struct shadow *s, struct shadow_event *ev)
{
	if (!s->hook)
		return;
	ev->vcr3 = s->core->vcr3;
	ev->pages_in_use = shadow_pool_in_use(&s->tab.pool);
	s->hook(s->hook_opaque, ev);
}

void shadow_note_evict(struct shadow *s, gva_t gva)
{
	struct shadow_event ev = { .kind = SHADOW_EV_EVICT,
				   .gva = gva,
				   .reason = SHADOW_FLUSH_EVICT };

	s->core->stats.evictions++;
	shadow_emit(s, &ev);
}

void shadow_drop_all(struct shadow *s, enum shadow_flush_reason reason, gva_t gva)
{
	struct shadow_event ev = { .kind = SHADOW_EV_FLUSH, .gva = gva, .reason = reason };

	shadow_ops(s)->reset(s);
	s->core->tlb_flush = true;
	if (reason == SHADOW_FLUSH_EVICT) {
		shadow_note_evict(s, gva);
		return;
	}
	s->core->stats.flushes++;
	shadow_emit(s, &ev);
}

/* Neighbours mapped per prefetch: an aligned window around the fault. */
#define PREFETCH_WINDOW 16u

unsigned shadow_prefetch(struct shadow *s, const struct shadow_prefetch *pf)
{
	unsigned first = pf->idx & ~(PREFETCH_WINDOW - 1), n = 0, j;
	uint64_t rsvd = shadow_walk_reserved_mask(&shadow_mode_long4, &s->core->cpu, 1, 0);
	void (*set_leaf)(struct shadow *, uint64_t *, mpa_t, int, uint64_t) =
		shadow_ops(s)->set_leaf;

	for (j = first; j < first + PREFETCH_WINDOW; j++) {
		struct shadow_rights r;
		uint64_t g;
		gpa_t gpa;
		int level;

		if (j == pf->idx || (pf->tab[j] & X86_PTE_P))
			continue;
		if (pf->direct) {
			g = pf->huge_pte;
			gpa = pf->guest_pt + (gpa_t)j * X86_PAGE_SIZE;
			level = 2; /* any huge level: PAT is bit 12 */
			r = pf->above;
		} else {
			if (s->mem.read64(s->mem.opaque, pf->guest_pt + 8 * j, &g) != SHADOW_MEM_OK)
				break;
			/* only what the hardware could have cached: present,
			 * valid, accessed (SDM 3A §4.10.2.3 allows caching any
			 * translation whose entries have A set) */
			if (!(g & X86_PTE_P) || !(g & X86_PTE_A) || (g & rsvd))
				continue;
			gpa = g & X86_PTE_ADDR_MASK;
			level = 1;
			r = shadow_rights_and(pf->above, shadow_entry_rights(&s->core->cpu, g));
		}
		if (gpa >= s->mem.ram_size || s->mem.ram_size - gpa < X86_PAGE_SIZE)
			continue;
		set_leaf(s, &pf->tab[j], pf->tab_mpa + 8 * j, 1,
			 shadow_spte_leaf(&s->core->cpu, g, level, r, 0, (mpa_t)gpa));
		n++;
		if (s->hook) {
			struct shadow_event ev = {
				.kind = SHADOW_EV_PREFETCH,
				.level = level,
				.gpa = gpa,
				.gva = (pf->gva & ~(gva_t)(X86_LEVEL_SIZE(2) - 1)) |
				       ((gva_t)j << X86_PAGE_SHIFT),
				.spte = pf->tab[j],
				.spte_mpa = pf->tab_mpa + 8 * j,
			};
			shadow_emit(s, &ev);
		}
	}
	s->core->stats.prefetched += n;
	return n;
}
