/* First touch of N pages through the shadow MMU on synthetic guest tables:
 * the cost of one hidden fault (walk, A/D sync, fill).  `make bench-shadow`
 * runs it under callgrind, which counts only the instrumented loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#endif

#include "shadow.h"
#include "shadowvm_abi.h"

#define PAGES 16384u               /* 64 MiB touched */
#define RAM (128ull << 20)
#define PML4 0x10000ull
#define PDPT 0x11000ull
#define PD 0x12000ull
#define PT0 0x13000ull             /* PAGES / 512 page tables from here */
#define DATA 0x1000000ull          /* the touched pages' GPAs */
#define GVA_BASE 0x0000400000000000ull
#define POOL_PAGES 64u
#define POOL_BASE (1ull << 32)
#define PWU (X86_PTE_P | X86_PTE_W | X86_PTE_U)

static uint8_t *ram;

static int rd(void *o, gpa_t gpa, uint64_t *v)
{
	(void)o;
	if (gpa > RAM - 8)
		return SHADOW_MEM_OUTSIDE;
	memcpy(v, ram + gpa, 8);
	return SHADOW_MEM_OK;
}

static int wr(void *o, gpa_t gpa, uint64_t v)
{
	(void)o;
	if (gpa > RAM - 8)
		return SHADOW_MEM_OUTSIDE;
	memcpy(ram + gpa, &v, 8);
	return SHADOW_MEM_OK;
}

static int cx(void *o, gpa_t gpa, uint64_t *expected, uint64_t desired)
{
	uint64_t *p = (uint64_t *)(ram + gpa);

	(void)o;
	if (gpa > RAM - 8)
		return SHADOW_MEM_OUTSIDE;
	if (__atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_SEQ_CST,
					__ATOMIC_SEQ_CST))
		return SHADOW_MEM_OK;
	return SHADOW_MEM_CHANGED;
}

static void put(gpa_t gpa, uint64_t v)
{
	memcpy(ram + gpa, &v, 8);
}

static void build_tables(void)
{
	uint32_t i;

	put(PML4 + 8 * X86_LEVEL_INDEX(GVA_BASE, 4), PDPT | PWU);
	put(PDPT + 8 * X86_LEVEL_INDEX(GVA_BASE, 3), PD | PWU);
	for (i = 0; i < PAGES / 512; i++)
		put(PD + 8 * (X86_LEVEL_INDEX(GVA_BASE, 2) + i), (PT0 + i * 0x1000ull) | PWU);
	for (i = 0; i < PAGES; i++)
		put(PT0 + 8ull * i, (DATA + i * 0x1000ull) | PWU);
}

int main(void)
{
	void *pool = aligned_alloc(X86_PAGE_SIZE, POOL_PAGES * X86_PAGE_SIZE);
	struct shadow_config cfg = {
		.mem = { .read64 = rd, .write64 = wr, .cmpxchg64 = cx, .ram_size = RAM },
		.pool = { .base = POOL_BASE, .host = pool, .pages = POOL_PAGES },
		.hv_index = SVM_ABI_RESERVED_PML4_INDEX,
		.hv_entry = 0x200000000ull | X86_PTE_P | X86_PTE_W,
		.cpu = { .cr0_wp = true, .efer_nxe = true, .gbpages = true, .maxphyaddr = 40 },
		.vcr3 = PML4,
	};
	struct shadow_fault_result r;
	struct shadow_stats st;
	struct shadow *s;
	uint32_t i, filled = 0;

	ram = calloc(1, RAM);
	if (!ram || !pool)
		return 1;
	build_tables();
	s = shadow_create(&cfg);
	if (!s)
		return 1;
	CALLGRIND_START_INSTRUMENTATION;
	for (i = 0; i < PAGES; i++)
		filled += shadow_fault(s, GVA_BASE + i * 0x1000ull,
				       SHADOW_ACC_USER | (i & 1 ? SHADOW_ACC_WRITE : 0),
				       &r) == SHADOW_FILLED;
	CALLGRIND_STOP_INSTRUMENTATION;
	shadow_get_stats(s, &st);
	printf("fills %u\n", filled);
	printf("pages %u evictions %llu\n", st.pages_peak, (unsigned long long)st.evictions);
	shadow_destroy(s);
	free(ram);
	free(pool);
	return filled == PAGES ? 0 : 1;
}
