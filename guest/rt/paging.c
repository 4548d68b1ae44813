#include "paging.h"

#include "guest.h"
#include "pmem.h"

static uint64_t *table(uint64_t pa)
{
	return (uint64_t *)(uintptr_t)(pa & X86_PTE_ADDR_MASK);
}

uint64_t pt_new_root(void)
{
	return pmem_alloc();
}

uint64_t *pt_entry(uint64_t root, uint64_t va, int level, int alloc)
{
	uint64_t *t = table(root);

	for (int l = X86_PT_LEVELS; l > level; l--) {
		uint64_t *e = &t[X86_LEVEL_INDEX(va, l)];

		if (!(*e & X86_PTE_P)) {
			if (!alloc)
				return NULL;
			*e = pmem_alloc() | PT_TABLE_FLAGS;
		} else if (l < X86_PT_LEVELS && (*e & X86_PTE_PS)) {
			return NULL;
		}
		t = table(*e);
	}
	return &t[X86_LEVEL_INDEX(va, level)];
}

uint64_t *pt_pte(uint64_t root, uint64_t va)
{
	return pt_entry(root, va, 1, 0);
}

void pt_map(uint64_t root, uint64_t va, uint64_t pa, uint64_t flags)
{
	*pt_entry(root, va, 1, 1) = (pa & X86_PTE_ADDR_MASK) | flags | X86_PTE_P;
}

void pt_map_2m(uint64_t root, uint64_t va, uint64_t pa, uint64_t flags)
{
	*pt_entry(root, va, 2, 1) = (pa & X86_PTE_ADDR_2M_MASK) | flags | X86_PTE_P | X86_PTE_PS;
}

void pt_unmap(uint64_t root, uint64_t va)
{
	uint64_t *e = pt_pte(root, va);

	if (e)
		*e = 0;
}

uint64_t pt_new_identity(uint64_t ram_size)
{
	uint64_t root = pt_new_root();
	const uint64_t big = X86_LEVEL_SIZE(2);

	for (uint64_t pa = 0; pa < ram_size; pa += big) {
		uint64_t *pde = pt_entry(root, pa, 2, 1);

		*pde = pa | X86_PTE_P | X86_PTE_W | X86_PTE_PS;
	}
	/* Identity tables are kernel-only all the way down. */
	for (uint64_t pa = 0; pa < ram_size; pa += X86_LEVEL_SIZE(3)) {
		*pt_entry(root, pa, 4, 0) &= ~X86_PTE_U;
		*pt_entry(root, pa, 3, 0) &= ~X86_PTE_U;
	}
	return root;
}
