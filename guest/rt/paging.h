/* 4-level page-table helpers for guest kernels.  Tables are frames from
 * pmem, reached through the identity mapping; a root is the GPA of a PML4.
 * Callers flush (invlpg or a CR3 load) after changing a live entry, as the
 * architecture requires (SDM 3A §4.10.4). */
#ifndef SHADOWVM_GUEST_PAGING_H
#define SHADOWVM_GUEST_PAGING_H

#include <stdint.h>

#include "x86.h"

/* Flags every intermediate entry the helpers create carries: the leaf alone
 * decides the access rights of a mapping. */
#define PT_TABLE_FLAGS (X86_PTE_P | X86_PTE_W | X86_PTE_U)

/* A fresh, empty PML4. */
uint64_t pt_new_root(void);
/* A fresh PML4 that identity-maps [0, ram_size) like the boot tables: 2 MiB
 * leaves, supervisor, writable, executable (A/D left clear). */
uint64_t pt_new_identity(uint64_t ram_size);
/* The entry for `va` in the table at `level` (4 = PML4 .. 1 = PT).  Missing
 * tables are created when `alloc`, else the result is NULL; NULL too when a
 * larger leaf sits above `level`. */
uint64_t *pt_entry(uint64_t root, uint64_t va, int level, int alloc);
/* The 4 KiB leaf PTE of `va`, or NULL. */
uint64_t *pt_pte(uint64_t root, uint64_t va);
/* Map the 4 KiB page at `va` to `pa` with `flags` (P is added). */
void pt_map(uint64_t root, uint64_t va, uint64_t pa, uint64_t flags);
/* Map the 2 MiB page at `va` to `pa` with `flags` (P and PS are added). */
void pt_map_2m(uint64_t root, uint64_t va, uint64_t pa, uint64_t flags);
/* Clear the 4 KiB leaf of `va` (no flush). */
void pt_unmap(uint64_t root, uint64_t va);

#endif
