/* torture: seeded random page-table mutations with the invalidations the
 * architecture requires (invlpg after changing a live entry of the current
 * space, SDM 3A §4.10.4.1; a CR3 write for the others), random reads and
 * writes checked against a model of what the guest wrote, and random CR3
 * switches among several address spaces.  Command line: seed=N steps=M
 * (defaults 1 and 2000).  Prints a running digest every REPORT steps and a
 * final one; only outcomes the architecture fixes enter the digest (values
 * read, fault error codes, leaf A after a successful access, leaf D). */
#include "cpu.h"
#include "guest.h"
#include "paging.h"
#include "pmem.h"
#include "probe.h"
#include "trap.h"

#define TVA 0x0000200000000000ull /* PML4 slot 64 */
#define NSPACE 4
#define NREGION 4 /* 2 MiB regions, one PT each */
#define RPAGES 16 /* pages used per region */
#define NVPAGE (NREGION * RPAGES)
#define NFRAME 32
#define NSLOT 8
#define REPORT 500
#define MAX_FAIL_LINES 10

static uint64_t rng, digest = 0xcbf29ce484222325ull;
static uint64_t root[NSPACE];
static volatile uint64_t *pde[NSPACE][NREGION], *pt[NSPACE][NREGION];
static uint64_t pt_pa[NSPACE][NREGION];
static int map[NSPACE][NVPAGE];   /* frame index, -1 when not mapped */
static int dirty[NSPACE][NVPAGE]; /* the model of the leaf's D bit */
static uint64_t frame[NFRAME], model[NFRAME][NSLOT];
static int cur;
static unsigned long step, fails, nfaults, nreads, nwrites;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static unsigned below(unsigned n)
{
	return (unsigned)((rnd() >> 33) % n);
}

static void mix(uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8) {
		digest ^= v & 0xff;
		digest *= 0x100000001b3ull;
	}
}

static void fail(const char *what, uint64_t got, uint64_t want)
{
	if (++fails <= MAX_FAIL_LINES)
		printf("FAIL: step %lu %s: got 0x%lx want 0x%lx\n", step, what, (unsigned long)got,
		       (unsigned long)want);
}

static uint64_t va_of(unsigned v)
{
	return TVA + (uint64_t)(v / RPAGES) * X86_LEVEL_SIZE(2) +
	       (uint64_t)(v % RPAGES) * X86_PAGE_SIZE;
}

static volatile uint64_t *pte_of(int s, unsigned v)
{
	return &pt[s][v / RPAGES][v % RPAGES];
}

/* A changed entry of the current space must be flushed before it is relied
 * on; other spaces get flushed by the CR3 write that enters them. */
static void flush(int s, unsigned v)
{
	if (s == cur)
		invlpg(va_of(v));
}

static void op_map(void)
{
	int s = (int)below(NSPACE), f = (int)below(NFRAME);
	unsigned v = below(NVPAGE);

	if (!(*pde[s][v / RPAGES] & X86_PTE_P))
		*pde[s][v / RPAGES] = pt_pa[s][v / RPAGES] | PT_TABLE_FLAGS;
	*pte_of(s, v) = frame[f] | X86_PTE_P | (below(4) ? X86_PTE_W : 0);
	map[s][v] = f;
	dirty[s][v] = 0;
	flush(s, v);
}

static void op_unmap(void)
{
	int s = (int)below(NSPACE);
	unsigned v = below(NVPAGE);

	*pte_of(s, v) = 0;
	map[s][v] = -1;
	flush(s, v);
}

static void op_protect(void)
{
	int s = (int)below(NSPACE);
	unsigned v = below(NVPAGE);

	if (map[s][v] < 0)
		return;
	*pte_of(s, v) ^= X86_PTE_W;
	flush(s, v);
}

static void op_clear_ad(void)
{
	int s = (int)below(NSPACE);
	unsigned v = below(NVPAGE);

	*pte_of(s, v) &= ~(X86_PTE_A | X86_PTE_D);
	dirty[s][v] = 0;
	flush(s, v);
}

/* Drop a whole page table: its PDE and every PTE.  invlpg of each page
 * drops its TLB entry and the paging-structure caches (§4.10.4.1). */
static void op_zap_region(void)
{
	int s = (int)below(NSPACE);
	unsigned r = below(NREGION);

	*pde[s][r] = 0;
	for (unsigned i = 0; i < RPAGES; i++) {
		pt[s][r][i] = 0;
		map[s][r * RPAGES + i] = -1;
		flush(s, r * RPAGES + i);
	}
}

static void op_switch(void)
{
	cur = (int)below(NSPACE);
	write_cr3(root[cur]);
	mix(0xc3c3 + (uint64_t)cur);
}

static void expect_fault(enum probe_access acc, uint64_t va, uint64_t err)
{
	struct probe_result r;

	probe_access(acc, 0, va, &r);
	nfaults++;
	mix(r.faulted ? probe_arch_error(&r) : 0xdead);
	if (!r.faulted || r.vector != X86_EXC_PF || probe_arch_error(&r) != err || r.cr2 != va)
		fail("expected #PF", r.faulted ? probe_arch_error(&r) : 0xdead, err);
}

static void check_leaf(unsigned v)
{
	uint64_t e = *pte_of(cur, v);

	mix(e & (X86_PTE_A | X86_PTE_D));
	if (!(e & X86_PTE_A) || !!(e & X86_PTE_D) != dirty[cur][v])
		fail("leaf A/D", e & (X86_PTE_A | X86_PTE_D),
		     X86_PTE_A | (dirty[cur][v] ? X86_PTE_D : 0));
}

static void op_access(int write)
{
	unsigned v = below(NVPAGE), slot = below(NSLOT);
	uint64_t va = va_of(v) + slot * 512;
	int f = map[cur][v];

	if (f < 0) {
		expect_fault(write ? PROBE_WRITE : PROBE_READ, va, write ? X86_PF_W : 0);
		return;
	}
	if (write && !(*pte_of(cur, v) & X86_PTE_W)) {
		expect_fault(PROBE_WRITE, va, X86_PF_P | X86_PF_W);
		return;
	}
	if (write) {
		uint64_t x = rnd();

		*(volatile uint64_t *)(uintptr_t)va = x;
		model[f][slot] = x;
		dirty[cur][v] = 1;
		nwrites++;
	} else {
		uint64_t x = *(volatile uint64_t *)(uintptr_t)va;

		mix(x);
		nreads++;
		if (x != model[f][slot])
			fail("read value", x, model[f][slot]);
	}
	check_leaf(v);
}

static void one_step(void)
{
	unsigned op = below(100);

	if (op < 20)
		op_map();
	else if (op < 25)
		op_unmap();
	else if (op < 30)
		op_protect();
	else if (op < 34)
		op_clear_ad();
	else if (op < 35)
		op_zap_region();
	else if (op < 42)
		op_switch();
	else
		op_access(op >= 71);
	mix(op);
}

static void setup(const struct shadowvm_boot_info *bi)
{
	pmem_init(bi);
	trap_init();
	probe_init();
	for (int f = 0; f < NFRAME; f++) {
		frame[f] = pmem_alloc();
		for (int i = 0; i < NSLOT; i++) {
			model[f][i] = rnd();
			*(volatile uint64_t *)(uintptr_t)(frame[f] + (uint64_t)i * 512) =
				model[f][i];
		}
	}
	for (int s = 0; s < NSPACE; s++) {
		root[s] = pt_new_identity(bi->ram_size);
		for (int r = 0; r < NREGION; r++) {
			uint64_t va = TVA + (uint64_t)r * X86_LEVEL_SIZE(2);

			pt_map(root[s], va, frame[0], 0);
			pde[s][r] = pt_entry(root[s], va, 2, 0);
			pt_pa[s][r] = *pde[s][r] & X86_PTE_ADDR_MASK;
			pt[s][r] = (volatile uint64_t *)(uintptr_t)pt_pa[s][r];
			pt[s][r][0] = 0;
		}
		for (int v = 0; v < NVPAGE; v++)
			map[s][v] = -1;
	}
	cur = 0;
	write_cr3(root[0]);
}

int main(const struct shadowvm_boot_info *bi)
{
	char buf[32];
	uint64_t seed = 1, steps = 2000;

	if (cmdline_get(bi, "seed", buf, sizeof(buf)))
		seed = strtou64(buf, NULL);
	if (cmdline_get(bi, "steps", buf, sizeof(buf)))
		steps = strtou64(buf, NULL);
	rng = seed * 0x9e3779b97f4a7c15ull + 1;
	setup(bi);
	printf("torture: seed=%lu steps=%lu spaces=%d pages=%d frames=%d\n", (unsigned long)seed,
	       (unsigned long)steps, NSPACE, NVPAGE, NFRAME);
	for (step = 1; step <= steps; step++) {
		one_step();
		if (step % REPORT == 0)
			printf("step %lu digest=%016lx\n", step, (unsigned long)digest);
	}
	printf("summary: steps=%lu reads=%lu writes=%lu faults=%lu digest=%016lx failures=%lu\n",
	       (unsigned long)steps, nreads, nwrites, nfaults, (unsigned long)digest, fails);
	return fails ? (int)(fails > 61 ? 61 : fails) : 0;
}
