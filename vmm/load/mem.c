#include <stddef.h>
#include <sys/mman.h>

#include "mem.h"

int mem_alloc(struct guest_mem *mem, uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	mem->host = p;
	mem->size = size;
	return 0;
}

void mem_free(struct guest_mem *mem)
{
	if (mem->host)
		munmap(mem->host, mem->size);
	mem->host = NULL;
	mem->size = 0;
}

void *mem_gpa(const struct guest_mem *mem, gpa_t gpa, uint64_t len)
{
	if (gpa > mem->size || len > mem->size - gpa)
		return NULL;
	return mem->host + gpa;
}
