/* The shadow MMU on synthetic guest tables, with the hardware simulated: a
 * page is "touched" by looking for a shadow leaf that allows the access, and
 * only a miss is a hidden fault (an exit) handed to shadow_fault.
 *
 *   bench_shadow OPTS WORKLOAD
 *   OPTS      none | all | cache | prefetch | huge   (--shadow-opts)
 *   WORKLOAD  first     first touch of N pages (guest PTEs with A clear)
 *             first_a   the same with A and D already set in the guest PTEs
 *             retouch   touch N pages, switch CR3 away and back, touch again
 *
 * Only the measured phase's shadow calls are collected (`make bench-shadow`
 * runs it under callgrind with --collect-atstart=no); it prints the exits,
 * fills and leaves installed for the measured phase. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_TOGGLE_COLLECT
#endif

#include "fake_mem.h"
#include "shadow.h"
#include "shadowvm_abi.h"

#define PAGES 16384u /* 64 MiB touched */
#define RAM (128ull << 20)
#define PML4 0x10000ull
#define OTHER_PML4 0xf000ull /* a second address space, empty */
#define PDPT 0x11000ull
#define PD 0x12000ull
#define PT0 0x13000ull    /* PAGES / 512 page tables from here */
#define DATA 0x1000000ull /* the touched pages' GPAs */
#define GVA_BASE 0x0000400000000000ull
#define POOL_PAGES 64u
#define POOL_BASE (1ull << 32)
#define PWU (X86_PTE_P | X86_PTE_W | X86_PTE_U)

static uint8_t *ram;

static struct fake_mem mem;

static void put(gpa_t gpa, uint64_t v)
{
	fake_mem_set(&mem, gpa, v);
}

static void build_tables(uint64_t ad)
{
	uint32_t i;

	put(PML4 + 8 * X86_LEVEL_INDEX(GVA_BASE, 4), PDPT | PWU);
	put(PDPT + 8 * X86_LEVEL_INDEX(GVA_BASE, 3), PD | PWU);
	for (i = 0; i < PAGES / 512; i++)
		put(PD + 8 * (X86_LEVEL_INDEX(GVA_BASE, 2) + i), (PT0 + i * 0x1000ull) | PWU);
	for (i = 0; i < PAGES; i++)
		put(PT0 + 8ull * i, (DATA + i * 0x1000ull) | PWU | ad);
}

static uint64_t *pool_host;

/* The hardware: does the shadow map gva for this user access? */
static bool hw_maps(const struct shadow *s, gva_t gva, bool write)
{
	uint64_t e = shadow_root(s);

	for (int level = 4; level >= 1; level--) {
		e = pool_host[((e & X86_PTE_ADDR_MASK) - POOL_BASE) / 8 +
			      X86_LEVEL_INDEX(gva, level)];
		if (!(e & X86_PTE_P) || !(e & X86_PTE_U) || (write && !(e & X86_PTE_W)))
			return false;
		if (level == 1 || (level == 2 && (e & X86_PTE_PS)))
			return true;
	}
	return false;
}

static unsigned opts_of(const char *name)
{
	static const struct {
		const char *n;
		unsigned o;
	} t[] = {
		{ "none", 0 },
		{ "all", SHADOW_OPT_ALL },
		{ "cache", SHADOW_OPT_CACHE },
		{ "prefetch", SHADOW_OPT_PREFETCH },
		{ "huge", SHADOW_OPT_HUGE },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(name, t[i].n))
			return t[i].o;
	return ~0u;
}

/* Touch every page (odd ones written); returns the hidden faults taken. */
static uint32_t touch_all(struct shadow *s, bool measured, uint32_t *filled)
{
	struct shadow_fault_result r;
	uint32_t i, faults = 0;

	for (i = 0; i < PAGES; i++) {
		gva_t gva = GVA_BASE + i * 0x1000ull;
		unsigned acc = SHADOW_ACC_USER | (i & 1 ? SHADOW_ACC_WRITE : 0);
		int tries = 0;

		while (!hw_maps(s, gva, i & 1)) {
			if (++tries > 4)
				exit(2); /* the fill did not resolve the fault */
			faults++;
			if (measured)
				CALLGRIND_TOGGLE_COLLECT;
			*filled += shadow_fault(s, gva, acc, &r) == SHADOW_FILLED;
			if (measured)
				CALLGRIND_TOGGLE_COLLECT;
		}
	}
	return faults;
}

int main(int argc, char **argv)
{
	void *pool = aligned_alloc(X86_PAGE_SIZE, POOL_PAGES * X86_PAGE_SIZE);
	struct shadow_config cfg = {
		.pool = { .base = POOL_BASE, .host = pool, .pages = POOL_PAGES },
		.hv_index = SHADOWVM_ABI_RESERVED_PML4_INDEX,
		.hv_entry = 0x200000000ull | X86_PTE_P | X86_PTE_W,
		.cpu = { .cr0_wp = true, .efer_nxe = true, .gbpages = true, .maxphyaddr = 40 },
		.vcr3 = PML4,
	};
	struct shadow_stats before, after;
	struct shadow *s;
	uint32_t faults, filled = 0, unmeasured = 0;
	const char *work = argc == 3 ? argv[2] : "";

	cfg.opts = argc == 3 ? opts_of(argv[1]) : ~0u;
	if (cfg.opts == ~0u ||
	    (strcmp(work, "first") && strcmp(work, "first_a") && strcmp(work, "retouch"))) {
		fprintf(stderr,
			"usage: bench_shadow none|all|cache|prefetch|huge first|first_a|retouch\n");
		return 64;
	}
	ram = calloc(1, RAM);
	pool_host = pool;
	if (!ram || !pool)
		return 1;
	fake_mem_init(&mem, ram, RAM);
	cfg.mem = fake_mem_accessor(&mem);
	build_tables(strcmp(work, "first") ? X86_PTE_A | X86_PTE_D : 0);
	s = shadow_create(&cfg);
	if (!s)
		return 1;
	if (!strcmp(work, "retouch")) {
		touch_all(s, false, &unmeasured);
		if (!shadow_set_cr3(s, OTHER_PML4) || !shadow_set_cr3(s, PML4))
			return 1;
	}
	shadow_get_stats(s, &before);
	faults = touch_all(s, true, &filled);
	shadow_get_stats(s, &after);
	printf("pages %u faults %u fills %u leaves %llu evictions %llu\n", PAGES, faults, filled,
	       (unsigned long long)(filled + after.prefetched - before.prefetched),
	       (unsigned long long)(after.evictions - before.evictions));
	shadow_destroy(s);
	free(ram);
	free(pool);
	return 0;
}
