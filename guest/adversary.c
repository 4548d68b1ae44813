/* adversary: one hostile act per run, chosen by "case=NAME" on the command
 * line.  Each must end in a specific diagnosis (or a correctly reflected
 * fault) with the VMM intact; tests/check_integration.c asserts the outcome
 * of each.  Cases that need no IDT run on the boot state, so their faults
 * end as triple faults in both paging modes. */
#include "cpu.h"
#include "guest.h"
#include "paging.h"
#include "pmem.h"
#include "shadowvm_abi.h"

#define MONITOR_IDT_VA (SHADOWVM_ABI_RESERVED_VA_BASE + 3 * 4096)
#define MONITOR_STUB_VA (SHADOWVM_ABI_RESERVED_VA_BASE + 21 * 4096)
#define MONITOR_STACK_VA (SHADOWVM_ABI_RESERVED_VA_BASE + 23 * 4096)
#define HV_MACHINE_ADDR 0x800000000ull /* where the monitor and pool live */
#define SPARSE_VA 0x0000100000000000ull

static volatile uint64_t sink;

static void monitor_write(void)
{
	printf("writing the monitor's IDT page\n");
	*(volatile uint64_t *)MONITOR_IDT_VA = 0;
}

static void map_reserved(void)
{
	uint64_t root = read_cr3() & X86_PTE_ADDR_MASK;
	uint64_t *pml4 = (uint64_t *)(uintptr_t)root;

	printf("mapping PML4 slot %u\n", SHADOWVM_ABI_RESERVED_PML4_INDEX);
	pml4[SHADOWVM_ABI_RESERVED_PML4_INDEX] = pmem_alloc() | PT_TABLE_FLAGS;
	write_cr3(root);
	sink = *(volatile uint64_t *)SHADOWVM_ABI_RESERVED_VA_BASE;
}

/* Map SPARSE_VA to machine address `mpa` with a guest PTE of its own. */
static volatile uint64_t *map_machine(uint64_t mpa)
{
	pt_map(read_cr3() & X86_PTE_ADDR_MASK, SPARSE_VA, mpa, X86_PTE_W);
	invlpg(SPARSE_VA);
	return (volatile uint64_t *)SPARSE_VA;
}

static void pte_beyond_ram(void)
{
	printf("mapping machine address 0x%lx\n", (unsigned long)HV_MACHINE_ADDR);
	sink = *map_machine(HV_MACHINE_ADDR);
}

/* The monitor's own pages (vmm/cpu/monitor.h): the store applier's code page,
 * the store queue, the pool and the monitor's root.  The queue and the pool
 * are mapped only in the monitor's root, never in the guest's. */
#define MONITOR_APPLIER_VA (SHADOWVM_ABI_RESERVED_VA_BASE + 22 * 4096)
#define MONITOR_QUEUE_VA (SHADOWVM_ABI_RESERVED_VA_BASE + 28 * 4096)
#define MONITOR_QUEUE_MPA (HV_MACHINE_ADDR + 28 * 4096)
#define MONITOR_POOL_MPA (HV_MACHINE_ADDR + 32 * 4096)
#define MONITOR_ROOT_MPA (HV_MACHINE_ADDR + 25 * 4096)

static void map_and_write(const char *what, uint64_t mpa)
{
	printf("writing %s through a PTE to 0x%lx\n", what, (unsigned long)mpa);
	*map_machine(mpa) = 0x8000000000000067ull;
}

static void write_pool(void)
{
	map_and_write("the shadow pool", MONITOR_POOL_MPA);
}

static void write_queue(void)
{
	map_and_write("the store queue", MONITOR_QUEUE_MPA);
}

static void write_applier(void)
{
	printf("writing the monitor's store applier\n");
	*(volatile uint64_t *)MONITOR_APPLIER_VA = 0;
}

static void write_queue_va(void)
{
	printf("writing the store queue at its monitor address\n");
	*(volatile uint64_t *)MONITOR_QUEUE_VA = 1;
}

static void cr3_monitor_root(void)
{
	printf("loading the monitor's root into CR3\n");
	write_cr3(MONITOR_ROOT_MPA);
	sink = *(volatile uint64_t *)SPARSE_VA;
}

static void load_dt(int gdt, uint16_t limit, uint64_t base)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} d = { limit, base };

	if (gdt)
		__asm__ volatile("lgdt %0" : : "m"(d));
	else
		__asm__ volatile("lidt %0" : : "m"(d));
}

static void lgdt_garbage(void)
{
	printf("lgdt with a 64 KiB limit\n");
	load_dt(1, 0xffff, 0x200000);
}

static void lidt_garbage(void)
{
	printf("lidt of an unmapped base, then ud2\n");
	load_dt(0, 0xfff, 0xdead000000ull);
	__asm__ volatile("ud2");
}

static void stub_jump(void)
{
	printf("calling a monitor stub\n");
	((void (*)(void))MONITOR_STUB_VA)();
}

static void forge_trap_stack(void)
{
	volatile uint64_t *p = (volatile uint64_t *)(MONITOR_STACK_VA + 4096 - 64);

	printf("forging the trap stack\n");
	for (int i = 0; i < 8; i++)
		p[i] = 0x4141414141414141ull;
	/* a fresh page: the next hidden fault must still be served */
	sink = *(volatile uint64_t *)(uintptr_t)(pmem_alloc() + 8);
	printf("still running after a fault\n");
}

static void cr3_zero(void)
{
	printf("loading CR3 = 0\n");
	write_cr3(0);
}

static void cr3_outside_ram(const struct shadowvm_boot_info *bi)
{
	printf("loading CR3 past RAM\n");
	write_cr3(bi->ram_size + 0x100000);
}

/* More shadow tables than the default pool holds: 512 pages, each under its
 * own PDPT, PD and PT, written then read back. */
static void pool_exhaust(void)
{
	uint64_t root = read_cr3() & X86_PTE_ADDR_MASK, sum = 0;
	enum { PAGES = 512 };
	static uint64_t frame[PAGES];

	for (unsigned i = 0; i < PAGES; i++) {
		uint64_t va = SPARSE_VA + ((uint64_t)i << 30) + ((uint64_t)i << 21);
		frame[i] = pmem_alloc();
		pt_map(root, va, frame[i], X86_PTE_W);
		*(volatile uint64_t *)va = i * 0x9e3779b97f4a7c15ull;
	}
	for (unsigned i = 0; i < PAGES; i++) {
		uint64_t va = SPARSE_VA + ((uint64_t)i << 30) + ((uint64_t)i << 21);
		uint64_t v = *(volatile uint64_t *)va;
		if (v != i * 0x9e3779b97f4a7c15ull)
			printf("FAIL: page %u reads 0x%lx\n", i, (unsigned long)v);
		sum += v;
	}
	printf("pool_exhaust: %u sparse pages written and read back, sum=0x%lx\n", PAGES,
	       (unsigned long)sum);
}

static void invlpg_noncanonical(void)
{
	invlpg(0x8000000000000000ull);
	invlpg(0x0000800000000000ull);
	printf("invlpg of non-canonical addresses: no fault\n");
}

static void hlt_forever(void)
{
	printf("cli; hlt\n");
	__asm__ volatile("cli; hlt");
}

static const struct {
	const char *name;
	void (*fn)(const struct shadowvm_boot_info *bi);
} cases[] = {
#define CASE(n)                                                    \
	{                                                          \
#n, (void (*)(const struct shadowvm_boot_info *))n \
	}
	CASE(monitor_write),    CASE(map_reserved), CASE(pte_beyond_ram),      CASE(lgdt_garbage),
	CASE(lidt_garbage),     CASE(stub_jump),    CASE(forge_trap_stack),    CASE(cr3_zero),
	CASE(cr3_outside_ram),  CASE(pool_exhaust), CASE(invlpg_noncanonical), CASE(hlt_forever),
	CASE(write_pool),       CASE(write_queue),  CASE(write_applier),       CASE(write_queue_va),
	CASE(cr3_monitor_root),
#undef CASE
};

int main(const struct shadowvm_boot_info *bi)
{
	char name[32];

	pmem_init(bi);
	if (!cmdline_get(bi, "case", name, sizeof(name))) {
		printf("usage: adversary case=NAME\n");
		return 2;
	}
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (strcmp(name, cases[i].name) == 0) {
			cases[i].fn(bi);
			return 0;
		}
	}
	printf("adversary: unknown case %s\n", name);
	return 2;
}
