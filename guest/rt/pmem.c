#include "pmem.h"

#include "guest.h"
#include "x86.h"

static uint64_t next, end, used;

void pmem_init(const struct shadowvm_boot_info *bi)
{
	next = (bi->free_start + X86_PAGE_SIZE - 1) & X86_PAGE_MASK;
	end = bi->ram_size;
	used = 0;
}

uint64_t pmem_alloc(void)
{
	uint64_t pa = next;

	if (pa + X86_PAGE_SIZE > end) {
		printf("pmem: out of frames at 0x%lx\n", (unsigned long)pa);
		guest_exit(GUEST_EXIT_RUNTIME);
	}
	next += X86_PAGE_SIZE;
	used++;
	memset((void *)(uintptr_t)pa, 0, X86_PAGE_SIZE);
	return pa;
}

uint64_t pmem_used(void)
{
	return used;
}
