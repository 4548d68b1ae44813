/* paging: the guest builds its own 4-level tables and exercises them — map,
 * unmap with demand fault-in, remap with invlpg, leaf and upper-level A/D
 * bits after reads and writes, a 2 MiB leaf, and two address spaces that map
 * one VA to different frames.  Every line is architectural, so the transcript
 * is the same under --paging=hw and --paging=shadow. */
#include "cpu.h"
#include "guest.h"
#include "paging.h"
#include "pmem.h"
#include "trap.h"

#define TEST_VA 0x0000100000000000ull /* PML4 slot 32, far from RAM */
#define TEST_PAGES 8
#define BIG_VA 0x0000100040000000ull /* a 2 MiB leaf, own PDPT entry */
#define MAX_TOUCHED 32

static uint64_t root_a, root_b;
static uint64_t touched[MAX_TOUCHED];
static unsigned ntouched;
static uint64_t pf_err, pf_cr2;
static unsigned pf_count;

static uint64_t page_va(unsigned i)
{
	return TEST_VA + (uint64_t)i * X86_PAGE_SIZE;
}

static void touch(uint64_t va)
{
	uint64_t page = va & X86_PAGE_MASK;

	for (unsigned i = 0; i < ntouched; i++)
		if (touched[i] == page)
			return;
	if (ntouched < MAX_TOUCHED)
		touched[ntouched++] = page;
}

static uint64_t rd(uint64_t va)
{
	touch(va);
	return *(volatile uint64_t *)(uintptr_t)va;
}

static void wr(uint64_t va, uint64_t v)
{
	touch(va);
	*(volatile uint64_t *)(uintptr_t)va = v;
}

static int bit(uint64_t e, uint64_t mask)
{
	return (e & mask) != 0;
}

/* Demand paging: a not-present fault in the test region gets a fresh frame
 * and the access is retried. */
static void on_pf(struct trap_frame *f)
{
	uint64_t cr2 = read_cr2();

	if (trap_from_user(f) || (f->error & X86_PF_P) || (cr2 & ~0xffffffull) != TEST_VA) {
		printf("paging: unexpected #PF err=0x%lx cr2=0x%lx\n", (unsigned long)f->error,
		       (unsigned long)cr2);
		guest_exit(GUEST_EXIT_RUNTIME);
	}
	pf_err = f->error;
	pf_cr2 = cr2;
	pf_count++;
	pt_map(read_cr3(), cr2, pmem_alloc(), X86_PTE_W | X86_PTE_NX);
	invlpg(cr2);
}

static void setup(const struct shadowvm_boot_info *bi)
{
	pmem_init(bi);
	trap_init();
	trap_set_handler(X86_EXC_PF, on_pf);
	root_a = pt_new_identity(bi->ram_size);
	write_cr3(root_a);
	check(read_cr3() == root_a, "cr3 reads back the new root");
	printf("paging: own 4-level tables loaded, RAM identity-mapped with 2 MiB leaves\n");
}

static void map_and_fill(void)
{
	for (unsigned i = 0; i < TEST_PAGES; i++)
		pt_map(root_a, page_va(i), pmem_alloc(), X86_PTE_W | X86_PTE_NX);
	for (unsigned i = 0; i < TEST_PAGES; i++)
		wr(page_va(i) + 8 * i, 0xa0a0000000000000ull | i);
	for (unsigned i = 0; i < TEST_PAGES; i++) {
		uint64_t v = rd(page_va(i) + 8 * i);

		printf("map: page %u va=0x%lx reads 0x%lx\n", i, (unsigned long)page_va(i),
		       (unsigned long)v);
		check(v == (0xa0a0000000000000ull | i), "mapped page reads what was written");
	}
}

static void clear_ad(uint64_t *e, uint64_t va)
{
	*e &= ~(X86_PTE_A | X86_PTE_D);
	invlpg(va);
}

static void print_ad(const char *when, uint64_t e, int want_a, int want_d)
{
	printf("ad: leaf after %s: A=%d D=%d\n", when, bit(e, X86_PTE_A), bit(e, X86_PTE_D));
	check(bit(e, X86_PTE_A) == want_a && bit(e, X86_PTE_D) == want_d, when);
}

static void leaf_ad(void)
{
	uint64_t va = page_va(1);
	volatile uint64_t *pte = pt_pte(root_a, va);

	clear_ad((uint64_t *)pte, va);
	print_ad("clear", *pte, 0, 0);
	rd(va);
	print_ad("read", *pte, 1, 0);
	clear_ad((uint64_t *)pte, va);
	wr(va, 0x1111);
	print_ad("write", *pte, 1, 1);
	/* Write after a read with no flush between: the CPU must notice D=0 in
	 * the cached translation and set it (SDM 3A §4.8). */
	clear_ad((uint64_t *)pte, va);
	rd(va);
	print_ad("read (before write, no flush)", *pte, 1, 0);
	wr(va, 0x2222);
	print_ad("write (no flush since read)", *pte, 1, 1);
}

static void upper_ad(void)
{
	uint64_t va = page_va(2);
	uint64_t *e[X86_PT_LEVELS + 1];

	for (int l = 1; l <= X86_PT_LEVELS; l++) {
		e[l] = pt_entry(root_a, va, l, 0);
		*e[l] &= ~X86_PTE_A;
	}
	write_cr3(read_cr3());
	rd(va);
	printf("ad: after a read, A bits pml4=%d pdpt=%d pd=%d pt=%d\n", bit(*e[4], X86_PTE_A),
	       bit(*e[3], X86_PTE_A), bit(*e[2], X86_PTE_A), bit(*e[1], X86_PTE_A));
	check((*e[4] & *e[3] & *e[2] & *e[1] & X86_PTE_A) != 0, "A set at every level");
	printf("ad: upper levels D stay clear: pml4=%d pdpt=%d pd=%d\n", bit(*e[4], X86_PTE_D),
	       bit(*e[3], X86_PTE_D), bit(*e[2], X86_PTE_D));
	check(!((*e[4] | *e[3] | *e[2]) & X86_PTE_D), "no D in non-leaf entries");
}

static void big_page(void)
{
	uint64_t frame = pmem_alloc();
	uint64_t va = BIG_VA + (frame & (X86_LEVEL_SIZE(2) - 1));
	volatile uint64_t *pde;

	*(volatile uint64_t *)(uintptr_t)frame = 0x2b2b;
	pt_map_2m(root_a, BIG_VA, frame & X86_PTE_ADDR_2M_MASK, X86_PTE_W | X86_PTE_NX);
	pde = pt_entry(root_a, BIG_VA, 2, 0);
	printf("big: 2 MiB leaf reads 0x%lx through its alias\n", (unsigned long)rd(va));
	print_ad("2M read", *pde, 1, 0);
	wr(va, 0x3c3c);
	print_ad("2M write", *pde, 1, 1);
	check(*(volatile uint64_t *)(uintptr_t)frame == 0x3c3c, "2M alias writes the frame");
}

static void unmap_demand(void)
{
	uint64_t va = page_va(3) + 0x18;
	uint64_t v;

	pt_unmap(root_a, va);
	invlpg(va);
	v = rd(va);
	printf("unmap: read after unmap faulted %u time(s): err=0x%lx cr2=0x%lx; fresh frame reads 0x%lx\n",
	       pf_count, (unsigned long)pf_err, (unsigned long)pf_cr2, (unsigned long)v);
	check(pf_count == 1 && pf_err == 0 && pf_cr2 == va && v == 0, "demand read fault");
	pt_unmap(root_a, page_va(4));
	invlpg(page_va(4));
	wr(page_va(4) + 0x20, 0x4444);
	printf("unmap: write after unmap faulted: err=0x%lx cr2=0x%lx; reads back 0x%lx\n",
	       (unsigned long)pf_err, (unsigned long)pf_cr2, (unsigned long)rd(page_va(4) + 0x20));
	check(pf_count == 2 && pf_err == X86_PF_W, "demand write fault");
}

static void remap(void)
{
	uint64_t frame = pmem_alloc();
	uint64_t va = page_va(0);

	*(volatile uint64_t *)(uintptr_t)frame = 0x5eed;
	printf("remap: before, page 0 reads 0x%lx\n", (unsigned long)rd(va));
	pt_map(root_a, va, frame, X86_PTE_W | X86_PTE_NX);
	invlpg(va);
	printf("remap: after invlpg, page 0 reads 0x%lx\n", (unsigned long)rd(va));
	check(rd(va) == 0x5eed, "remapped page reads the new frame");
}

static void two_spaces(const struct shadowvm_boot_info *bi)
{
	uint64_t va = page_va(5);
	uint64_t a, b, a2;

	root_b = pt_new_identity(bi->ram_size);
	pt_map(root_b, va, pmem_alloc(), X86_PTE_W | X86_PTE_NX);
	wr(va, 0xaaaa);
	write_cr3(root_b);
	wr(va, 0xbbbb);
	b = rd(va);
	write_cr3(root_a);
	a = rd(va);
	write_cr3(root_b);
	wr(va + 8, 0xb2);
	write_cr3(root_a);
	a2 = rd(va + 8);
	printf("cr3: same VA 0x%lx: space A reads 0x%lx, space B reads 0x%lx, A at +8 reads 0x%lx\n",
	       (unsigned long)va, (unsigned long)a, (unsigned long)b, (unsigned long)a2);
	check(a == 0xaaaa && b == 0xbbbb && a2 == 0, "address spaces stay apart");
}

int main(const struct shadowvm_boot_info *bi)
{
	setup(bi);
	map_and_fill();
	leaf_ad();
	upper_ad();
	big_page();
	unmap_demand();
	remap();
	two_spaces(bi);
	printf("summary: pages touched=%u frames allocated=%lu page faults=%u failures=%u\n",
	       ntouched, (unsigned long)pmem_used(), pf_count, check_failures());
	return (int)check_failures();
}
