/* bench: the workloads of `make bench`, one per run, chosen by `case=NAME`
 * with `pages=N rounds=R procs=K` (and `dry=1`: the set-up alone; `cycles=0`:
 * the cycle count printed as 0, so that transcripts compare byte for byte).
 *
 *   firsttouch    map N fresh 4 KiB pages (guest PTEs with A=0), touch each
 *   firsttouch_a  the same with A and D already set in the guest PTEs
 *   retouch       N pages touched once; then CR3 to another space and back,
 *                 and all N touched again
 *   pingpong      K processes sharing the kernel's tables, N pages each,
 *                 round-robin CR3 switches touching all N of each
 *   fork          a fork-like copy of an N-page space (new tables, PTEs
 *                 copied, both sides made read-only), the child writes each
 *                 page (COW: the guest copies it), then the parent writes
 *                 each page (the only owner left: the guest re-enables W)
 *   huge          N/512 2 MiB pages mapped fresh, touched at every 4 KiB
 *
 * The set-up (frames, tables, first touches a steady state needs) is the same
 * with dry=0 and dry=1; only the measured phase, R rounds, is left out when
 * dry.  The VMM's counters of the two runs subtract to the phase's own, which
 * the guest cannot see.  Every line has the same length whether dry or not
 * (numbers are printed at a fixed width), so the console's port writes
 * cancel too.  The measured phase's rdtsc cycles are on a line of their own,
 * the only line that differs between --paging=hw and --paging=shadow.
 *
 * A touch is a write of the page's first word, then a read of its second,
 * which the set-up filled with a value naming the frame: the write is the
 * page's first access (one write fault; a read first would fault twice where
 * the guest D bit is clear, and so would a locked exchange under QEMU TCG,
 * which reads before it writes), and the read, through the translation the
 * write installed, feeds a digest that shows a wrong frame or a lost COW
 * copy in the transcript.
 *
 * Port 0x80 (a no-op sink) marks the measured phase, before and after it, so
 * that callgrind --dump-before=post_pio can cut the VMM's profile there. */
#include "cpu.h"
#include "guest.h"
#include "paging.h"
#include "pmem.h"
#include "trap.h"

#define BENCH_VA 0x0000100000000000ull /* PML4 slot 32, far from RAM */
#define REGION_SIZE X86_LEVEL_SIZE(3)  /* one PDPT entry: a round's own PD */
#define MAX_ROUNDS 256u
#define MAX_PROCS 64u
#define HUGE_PAGES 512u /* 4 KiB pages in a 2 MiB page */
#define LEAF_FLAGS (X86_PTE_W | X86_PTE_NX)
#define FRAME_SALT 0x5a5a000000000000ull
#define PORT_MARK 0x80 /* the VMM's no-op port */

struct params {
	char name[32];
	uint64_t pages, rounds, procs;
	int dry;
	int cycles; /* cycles=0: print zero cycles, for byte-identical transcripts */
};

static uint64_t ram, kroot, digest;

static volatile uint64_t *at(uint64_t va)
{
	return (volatile uint64_t *)(uintptr_t)va;
}

static uint64_t *table(uint64_t pa)
{
	return (uint64_t *)(uintptr_t)(pa & X86_PTE_ADDR_MASK);
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi) : : "memory");
	return ((uint64_t)hi << 32) | lo;
}

/* One write access to `va` storing `v`, then the page's second word into
 * the digest. */
static void touch(uint64_t va, uint64_t v)
{
	*at(va) = v;
	digest = (digest ^ *at(va + 8)) * 0x100000001b3ull;
}

static uint64_t page_va(uint64_t region, uint64_t i)
{
	return BENCH_VA + region * REGION_SIZE + i * X86_PAGE_SIZE;
}

/* `n` frames at consecutive GPAs, the first aligned to `align`, each
 * holding a value that names it in its second word. */
static uint64_t frames(uint64_t n, uint64_t align)
{
	uint64_t base, f;

	do
		base = pmem_alloc();
	while (base & (align - 1));
	*at(base + 8) = base ^ FRAME_SALT;
	for (uint64_t i = 1; i < n; i++) {
		f = pmem_alloc();
		if (f != base + i * X86_PAGE_SIZE) {
			printf("bench: frames not contiguous at 0x%lx\n", (unsigned long)f);
			guest_exit(GUEST_EXIT_RUNTIME);
		}
		*at(f + 8) = f ^ FRAME_SALT;
	}
	return base;
}

/* A process's address space: its own PML4 sharing the kernel's identity
 * tables (slot 0), like every process sharing the kernel half. */
static uint64_t space_new(void)
{
	uint64_t root = pt_new_root();

	table(root)[0] = table(kroot)[0];
	return root;
}

/* Create the tables down to `level` for `n` pages of `region`, entries left
 * not present: a round's mapping writes only leaves of tables that no walk
 * has seen yet. */
static void prepare(uint64_t root, uint64_t region, uint64_t n, int level)
{
	uint64_t step = X86_LEVEL_SIZE(level) / X86_PAGE_SIZE;

	for (uint64_t i = 0; i < n; i += step)
		pt_entry(root, page_va(region, i), level, 1);
}

static void map4k(uint64_t root, uint64_t region, uint64_t n, uint64_t base, uint64_t flags)
{
	for (uint64_t i = 0; i < n; i++)
		*pt_pte(root, page_va(region, i)) = (base + i * X86_PAGE_SIZE) | flags | X86_PTE_P;
}

static void touch_all(uint64_t region, uint64_t n, uint64_t tag)
{
	for (uint64_t i = 0; i < n; i++)
		touch(page_va(region, i), tag << 32 | i);
}

/* ---- the workloads: set up, then `run` the measured phase ---- */

struct workload {
	const char *name;
	void (*setup)(const struct params *p);
	void (*run)(const struct params *p);
	uint64_t (*units)(const struct params *p); /* pages touched by the phase */
};

static uint64_t root_a, root_b, data;
static uint64_t procs[MAX_PROCS];

static void firsttouch_setup(const struct params *p)
{
	root_a = space_new();
	data = frames(p->pages, X86_PAGE_SIZE);
	for (uint64_t r = 0; r < p->rounds; r++)
		prepare(root_a, r, p->pages, 1);
	write_cr3(root_a);
}

static void firsttouch_rounds(const struct params *p, uint64_t flags)
{
	for (uint64_t r = 0; r < p->rounds; r++) {
		map4k(root_a, r, p->pages, data, LEAF_FLAGS | flags);
		touch_all(r, p->pages, r + 1);
	}
}

static void firsttouch_run(const struct params *p)
{
	firsttouch_rounds(p, 0);
}

static void firsttouch_a_run(const struct params *p)
{
	firsttouch_rounds(p, X86_PTE_A | X86_PTE_D);
}

static void retouch_setup(const struct params *p)
{
	root_a = space_new();
	root_b = space_new();
	data = frames(p->pages, X86_PAGE_SIZE);
	prepare(root_a, 0, p->pages, 1);
	map4k(root_a, 0, p->pages, data, LEAF_FLAGS);
	write_cr3(root_a);
	touch_all(0, p->pages, 1);
	write_cr3(root_b);
	write_cr3(root_a);
}

static void retouch_run(const struct params *p)
{
	for (uint64_t r = 0; r < p->rounds; r++) {
		write_cr3(root_b);
		write_cr3(root_a);
		touch_all(0, p->pages, r + 2);
	}
}

static void pingpong_round(const struct params *p, uint64_t tag)
{
	for (uint64_t k = 0; k < p->procs; k++) {
		write_cr3(procs[k]);
		touch_all(0, p->pages, tag << 8 | k);
	}
}

static void pingpong_setup(const struct params *p)
{
	for (uint64_t k = 0; k < p->procs; k++) {
		procs[k] = space_new();
		prepare(procs[k], 0, p->pages, 1);
		map4k(procs[k], 0, p->pages, frames(p->pages, X86_PAGE_SIZE), LEAF_FLAGS);
	}
	pingpong_round(p, 0); /* the measured rounds are the steady state */
}

static void pingpong_run(const struct params *p)
{
	for (uint64_t r = 0; r < p->rounds; r++)
		pingpong_round(p, r + 1);
}

static uint64_t huge_data;

static void huge_setup(const struct params *p)
{
	root_a = space_new();
	huge_data = frames(p->pages, X86_LEVEL_SIZE(2));
	for (uint64_t r = 0; r < p->rounds; r++)
		prepare(root_a, r, p->pages, 2);
	write_cr3(root_a);
}

static void huge_run(const struct params *p)
{
	for (uint64_t r = 0; r < p->rounds; r++) {
		for (uint64_t i = 0; i < p->pages; i += HUGE_PAGES)
			*pt_entry(root_a, page_va(r, i), 2, 0) = (huge_data + i * X86_PAGE_SIZE) |
								 LEAF_FLAGS | X86_PTE_P |
								 X86_PTE_PS;
		touch_all(r, p->pages, r + 1);
	}
}

/* ---- fork: copy-on-write resolved by the guest's own #PF handler ---- */

static uint64_t cur_root, copies, child_tables, child_next;
static int in_child;
static uint64_t cow_copies, cow_reuses;

static uint64_t child_alloc(void)
{
	uint64_t f = child_tables + child_next++ * X86_PAGE_SIZE;

	memset((void *)(uintptr_t)f, 0, X86_PAGE_SIZE);
	return f;
}

/* A write to a COW page: the child copies it into its own frame, the parent
 * (the only owner once the child is gone) takes it back writable. */
static void on_pf(struct trap_frame *f)
{
	uint64_t cr2 = read_cr2() & X86_PAGE_MASK, i = (cr2 - BENCH_VA) / X86_PAGE_SIZE;
	uint64_t *pte = pt_pte(cur_root, cr2);

	if (f->error != (X86_PF_P | X86_PF_W) || !pte || (*pte & X86_PTE_W)) {
		printf("bench: unexpected #PF err=0x%lx cr2=0x%lx\n", (unsigned long)f->error,
		       (unsigned long)cr2);
		guest_exit(GUEST_EXIT_RUNTIME);
	}
	if (in_child) {
		uint64_t copy = copies + i * X86_PAGE_SIZE;

		memcpy((void *)(uintptr_t)copy, table(*pte), X86_PAGE_SIZE);
		*pte = copy | LEAF_FLAGS | X86_PTE_P;
		cow_copies++;
	} else {
		*pte |= X86_PTE_W;
		cow_reuses++;
	}
	invlpg(cr2);
}

static void fork_setup(const struct params *p)
{
	uint64_t tables = 3 + (p->pages + 511) / 512; /* PML4, PDPT, PD, PTs */

	trap_set_handler(X86_EXC_PF, on_pf);
	root_a = space_new();
	prepare(root_a, 0, p->pages, 1);
	map4k(root_a, 0, p->pages, frames(p->pages, X86_PAGE_SIZE), LEAF_FLAGS);
	copies = frames(p->pages, X86_PAGE_SIZE);
	child_tables = frames(tables * p->rounds, X86_PAGE_SIZE);
	cur_root = root_a;
	write_cr3(root_a);
	touch_all(0, p->pages, 1);
}

/* The child: a fresh PML4 sharing the kernel half, fresh tables for the
 * region, every PTE copied with W cleared on both sides. */
static uint64_t fork_space(const struct params *p)
{
	uint64_t child = child_alloc();

	table(child)[0] = table(kroot)[0];
	for (uint64_t i = 0; i < p->pages; i++) {
		uint64_t va = page_va(0, i), *from = pt_pte(root_a, va);

		for (int l = X86_PT_LEVELS; l > 1; l--) {
			uint64_t *e = pt_entry(child, va, l, 0);

			if (!(*e & X86_PTE_P))
				*e = child_alloc() | PT_TABLE_FLAGS;
		}
		*from &= ~X86_PTE_W;
		*pt_pte(child, va) = *from;
	}
	return child;
}

static void fork_run(const struct params *p)
{
	for (uint64_t r = 0; r < p->rounds; r++) {
		uint64_t child = fork_space(p);

		write_cr3(root_a); /* flush the parent's now read-only translations */
		cur_root = child, in_child = 1;
		write_cr3(child);
		touch_all(0, p->pages, 2 * r + 2);
		cur_root = root_a, in_child = 0;
		write_cr3(root_a);
		touch_all(0, p->pages, 2 * r + 3);
	}
}

static uint64_t units_pages(const struct params *p)
{
	return p->pages * p->rounds;
}

static uint64_t units_procs(const struct params *p)
{
	return p->pages * p->rounds * p->procs;
}

static const struct workload workloads[] = {
	{ "firsttouch", firsttouch_setup, firsttouch_run, units_pages },
	{ "firsttouch_a", firsttouch_setup, firsttouch_a_run, units_pages },
	{ "retouch", retouch_setup, retouch_run, units_pages },
	{ "pingpong", pingpong_setup, pingpong_run, units_procs },
	{ "fork", fork_setup, fork_run, units_pages },
	{ "huge", huge_setup, huge_run, units_pages },
};

/* ---- command line ---- */

static uint64_t arg(const struct shadowvm_boot_info *bi, const char *key, uint64_t def)
{
	char buf[32];

	return cmdline_get(bi, key, buf, sizeof(buf)) ? strtou64(buf, NULL) : def;
}

static const struct workload *parse(const struct shadowvm_boot_info *bi, struct params *p)
{
	if (!cmdline_get(bi, "case", p->name, sizeof(p->name)))
		p->name[0] = 0;
	p->pages = arg(bi, "pages", 1024);
	p->rounds = arg(bi, "rounds", 4);
	p->procs = arg(bi, "procs", 1);
	p->dry = arg(bi, "dry", 0) != 0;
	p->cycles = arg(bi, "cycles", 1) != 0;
	if (!p->pages || p->pages > 65536 || !p->rounds || p->rounds > MAX_ROUNDS || !p->procs ||
	    p->procs > MAX_PROCS) {
		printf("bench: need 1 <= pages <= 65536, 1 <= rounds <= %u, 1 <= procs <= %u\n",
		       MAX_ROUNDS, MAX_PROCS);
		return NULL;
	}
	for (unsigned i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
		if (!strcmp(p->name, workloads[i].name))
			return &workloads[i];
	printf("bench: unknown case '%s' (firsttouch, firsttouch_a, retouch, pingpong, fork, huge)\n",
	       p->name);
	return NULL;
}

int main(const struct shadowvm_boot_info *bi)
{
	struct params p;
	const struct workload *w = parse(bi, &p);
	uint64_t t0, t1;

	if (!w)
		return 1;
	if (!strcmp(w->name, "huge") && p.pages % HUGE_PAGES) {
		printf("bench: huge needs pages a multiple of %u\n", HUGE_PAGES);
		return 1;
	}
	ram = bi->ram_size;
	pmem_init(bi);
	trap_init();
	kroot = pt_new_identity(ram);
	write_cr3(kroot);
	printf("bench: case=%s pages=%lu rounds=%lu procs=%lu dry=%d\n", w->name,
	       (unsigned long)p.pages, (unsigned long)p.rounds, (unsigned long)p.procs, p.dry);
	w->setup(&p);
	digest = 0;
	outb(PORT_MARK, 1);
	t0 = rdtsc();
	if (!p.dry)
		w->run(&p);
	t1 = rdtsc();
	outb(PORT_MARK, 2);
	write_cr3(kroot);
	printf("bench: units=%lu digest=0x%016lx cow=%08lu/%08lu\n", (unsigned long)w->units(&p),
	       (unsigned long)digest, (unsigned long)cow_copies, (unsigned long)cow_reuses);
	printf("cycles=%020lu\n", p.cycles ? (unsigned long)(t1 - t0) : 0ul);
	return (int)check_failures();
}
