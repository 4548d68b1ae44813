#include <stdio.h>

#include "invariant.h"

struct checker {
	const struct shadow_tables *t;
	uint64_t ram_size;
	char *why;
	size_t len;
};

static bool violated(struct checker *c, const char *what, int level, unsigned idx, uint64_t e)
{
	snprintf(c->why, c->len, "shadow: %s: level=%d index=%u spte=0x%016llx", what, level, idx,
		 (unsigned long long)e);
	return false;
}

static bool check_leaf(struct checker *c, unsigned idx, uint64_t e)
{
	mpa_t mpa = e & X86_PTE_ADDR_MASK;

	/* bit 7 of a 4 KiB entry is PAT, copied from the guest (SDM 3A §4.9.2) */
	if (e & X86_PTE_G)
		return violated(c, "global leaf", 1, idx, e);
	if (mpa >= c->ram_size || c->ram_size - mpa < X86_PAGE_SIZE)
		return violated(c, "leaf maps outside guest RAM", 1, idx, e);
	if (shadow_pool_contains(&c->t->pool, mpa))
		return violated(c, "leaf maps a shadow page", 1, idx, e);
	return true;
}

/* Shadow tables form a tree at most four deep, so recursion is bounded. */
static bool check_table(struct checker *c, mpa_t table, int level)
{
	const uint64_t *pt = shadow_pool_table(&c->t->pool, table);

	for (unsigned i = 0; i < X86_PT_ENTRIES; i++) {
		uint64_t e = pt[i];
		mpa_t next = e & X86_PTE_ADDR_MASK;

		if (level == X86_PT_LEVELS && i == c->t->hv_index) {
			if (e != c->t->hv_entry)
				return violated(c, "hypervisor entry changed", level, i, e);
			continue;
		}
		if (!(e & X86_PTE_P))
			continue;
		if (level == 1) {
			if (!check_leaf(c, i, e))
				return false;
			continue;
		}
		if (e & X86_PTE_PS)
			return violated(c, "huge shadow entry", level, i, e);
		if (!shadow_pool_contains(&c->t->pool, next))
			return violated(c, "table pointer outside the pool", level, i, e);
		if (!check_table(c, next, level - 1))
			return false;
	}
	return true;
}

bool shadow_invariants_hold(const struct shadow_tables *t, uint64_t ram_size, char *why,
			    size_t len)
{
	struct checker c = { t, ram_size, why, len };

	if (shadow_pool_in_use(&t->pool) > t->pool.pages) {
		snprintf(why, len, "shadow: pool use %u exceeds its %u pages",
			 shadow_pool_in_use(&t->pool), t->pool.pages);
		return false;
	}
	if (!shadow_pool_contains(&t->pool, t->root)) {
		snprintf(why, len, "shadow: root 0x%llx outside the pool", (unsigned long long)t->root);
		return false;
	}
	return check_table(&c, t->root, X86_PT_LEVELS);
}
