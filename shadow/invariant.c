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

/* A 4 KiB leaf, or a 2 MiB one at level 2. */
static bool check_leaf(struct checker *c, int level, unsigned idx, uint64_t e)
{
	uint64_t size = X86_LEVEL_SIZE(level);
	mpa_t mpa = e & (level == 1 ? X86_PTE_ADDR_MASK : X86_PTE_ADDR_2M_MASK);

	/* bit 7 of a 4 KiB entry is PAT, copied from the guest (SDM 3A §4.9.2) */
	if (e & X86_PTE_G)
		return violated(c, "global leaf", level, idx, e);
	if (level == 2 && (e & (X86_PTE_ADDR_MASK & ~X86_PTE_ADDR_2M_MASK & ~X86_PTE_PAT_LARGE)))
		return violated(c, "misaligned 2 MiB leaf", level, idx, e);
	if (mpa >= c->ram_size || c->ram_size - mpa < size)
		return violated(c, "leaf maps outside guest RAM", level, idx, e);
	/* the pool lies outside RAM (shadow_create), so this holds for 2 MiB too */
	if (shadow_pool_contains(&c->t->pool, mpa))
		return violated(c, "leaf maps a shadow page", level, idx, e);
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
		if (level == 1 || (level == 2 && (e & X86_PTE_PS))) {
			if (!check_leaf(c, level, i, e))
				return false;
			continue;
		}
		if (e & X86_PTE_PS)
			return violated(c, "huge shadow entry above 2 MiB", level, i, e);
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
