/* Physical page-frame allocator: hands out zeroed 4 KiB frames from
 * boot_info.free_start up to the end of RAM, never frees.  Frames are used
 * through the identity mapping (GVA == GPA), which every address space the
 * runtime builds keeps. */
#ifndef SHADOWVM_GUEST_PMEM_H
#define SHADOWVM_GUEST_PMEM_H

#include <stdint.h>

#include "shadowvm_abi.h"

void pmem_init(const struct shadowvm_boot_info *bi);
/* A zeroed frame's GPA; ends the run (status 62) when RAM is exhausted. */
uint64_t pmem_alloc(void);
/* Frames handed out so far. */
uint64_t pmem_used(void);

#endif
