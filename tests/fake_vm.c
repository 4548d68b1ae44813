#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "fake_mem.h"
#include "fake_vm.h"
#include "monitor.h"
#include "segment.h"
#include "shadow.h"
#include "vm.h"
#include "x86.h"

#define POOL_PAGES 64u
#define PWUAD (X86_PTE_P | X86_PTE_W | X86_PTE_U | X86_PTE_A | X86_PTE_D)

/* The VM and the shadow MMU's accessor over its RAM, freed together. */
struct fake_vm {
	struct vm vm;
	struct fake_mem mem;
};

static uint64_t vcpu_msrs[2];

uint64_t *fake_vm_vcpu_msr(uint32_t index)
{
	switch (index) {
	case X86_MSR_KERNEL_GS_BASE: return &vcpu_msrs[0];
	case X86_MSR_TSC_AUX: return &vcpu_msrs[1];
	default: return NULL;
	}
}

int vcpu_msr(const struct vcpu *vcpu, uint32_t index, uint64_t *val, bool set)
{
	uint64_t *p = fake_vm_vcpu_msr(index);

	(void)vcpu;
	if (!p)
		return -1;
	if (set)
		*p = *val;
	else
		*val = *p;
	return 0;
}

void *fake_vm_ptr(struct vm *vm, gpa_t gpa, size_t len)
{
	void *p = mem_gpa(&vm->mem, gpa, len);

	ck_assert_msg(p, "gpa 0x%llx + %zu outside the fake RAM", (unsigned long long)gpa, len);
	return p;
}

uint64_t fake_vm_read64(struct vm *vm, gpa_t gpa)
{
	uint64_t v;

	memcpy(&v, fake_vm_ptr(vm, gpa, 8), 8);
	return v;
}

/* PML4[0] -> PDPT[0] -> PD: entry 0 a table of 4 KiB pages, the rest 2 MiB. */
static void build_tables(struct vm *vm)
{
	const uint64_t tab = X86_PTE_P | X86_PTE_W | X86_PTE_U | X86_PTE_A;
	uint64_t *pml4 = fake_vm_ptr(vm, FAKE_PML4_GPA, 4096);
	uint64_t *pdpt = fake_vm_ptr(vm, FAKE_PML4_GPA + 0x1000, 4096);
	uint64_t *pd = fake_vm_ptr(vm, FAKE_PML4_GPA + 0x2000, 4096);
	uint64_t *pt = fake_vm_ptr(vm, FAKE_PT_GPA, 4096);

	pml4[0] = (FAKE_PML4_GPA + 0x1000) | tab;
	pdpt[0] = (FAKE_PML4_GPA + 0x2000) | tab;
	pd[0] = FAKE_PT_GPA | tab;
	for (uint64_t i = 1; i < FAKE_RAM_SIZE >> 21; i++)
		pd[i] = (i << 21) | PWUAD | X86_PTE_PS;
	for (uint64_t i = 0; i < X86_PT_ENTRIES; i++) {
		uint64_t va = i << X86_PAGE_SHIFT;
		bool kernel = va >= FAKE_KSTACK_LO && va < FAKE_IST1;

		pt[i] = va | (kernel ? PWUAD & ~X86_PTE_U : PWUAD);
	}
}

static void create_shadow(struct fake_vm *f)
{
	struct vm *vm = &f->vm;
	struct shadow_config cfg = {
		.mem = fake_mem_accessor(&f->mem),
		.pool = { HV_MPA(HV_PG_POOL), monitor_page(&vm->mon, HV_PG_POOL), POOL_PAGES, NULL,
			  NULL, NULL },
		.hv_index = SHADOWVM_ABI_RESERVED_PML4_INDEX,
		.hv_entry = vm->mon.pml4e,
		.cpu = { .cr0_wp = true, .efer_nxe = true, .gbpages = true, .maxphyaddr = 40 },
		.vcr3 = FAKE_PML4_GPA,
	};

	vm->shadow = shadow_create(&cfg);
	ck_assert_ptr_nonnull(vm->shadow);
}

static void build_gdt_tss(struct vm *vm)
{
	uint64_t tss_lo = 0x67 | ((FAKE_TSS_GPA & 0xffffff) << 16) |
			  X86_DESC_TYPE(X86_SEG_TYPE_TSS64_BUSY) | X86_DESC_P;
	uint64_t rsp0 = FAKE_RSP0, ist1 = FAKE_IST1;
	uint8_t *tss = fake_vm_ptr(vm, FAKE_TSS_GPA, 0x68);

	memcpy(tss + 4, &rsp0, 8);
	memcpy(tss + 0x24, &ist1, 8);
	vm->virt.gdt_base = FAKE_GDT_GPA;
	vm->virt.gdt_limit = FAKE_GDT_ENTRIES * 8 - 1;
	vm->virt.tr = FAKE_SEL_TSS;
	vm->virt.tr_base = FAKE_TSS_GPA;
	fake_vm_set_desc(vm, FAKE_SEL_KCODE >> 3, FAKE_DESC_KCODE);
	fake_vm_set_desc(vm, FAKE_SEL_KDATA >> 3, FAKE_DESC_KDATA);
	fake_vm_set_desc(vm, FAKE_SEL_UDATA >> 3, FAKE_DESC_UDATA);
	fake_vm_set_desc(vm, FAKE_SEL_UCODE >> 3, FAKE_DESC_UCODE);
	fake_vm_set_desc(vm, (FAKE_SEL_TSS >> 3) + 1, 0);
	fake_vm_set_desc(vm, FAKE_SEL_TSS >> 3, tss_lo);
}

static void boot_state(struct vm *vm)
{
	vm->virt.cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_WP | X86_CR0_PG;
	vm->virt.cr3 = FAKE_PML4_GPA;
	vm->virt.cr4 = X86_CR4_PAE | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT;
	vm->virt.efer = X86_EFER_LME | X86_EFER_LMA | X86_EFER_NXE;
	vm->virt.idt_base = FAKE_IDT_GPA;
	vm->virt.idt_limit = 256 * 16 - 1;
	vm->cr4_allowed = X86_CR4_PSE | X86_CR4_PAE | X86_CR4_PGE | X86_CR4_OSFXSR |
			  X86_CR4_OSXMMEXCPT | X86_CR4_UMIP | X86_CR4_FSGSBASE | X86_CR4_SMEP |
			  X86_CR4_SMAP;
	vm->umip = true;
	vm->maxphyaddr = 40;
	vm->gbpages = true;
	for (unsigned v = 0; v < 256; v++)
		fake_vm_set_gate(vm, v, FAKE_HANDLER(v), FAKE_SEL_KCODE, X86_GATE_TYPE_INTR, 0, 0,
				 true);
	ck_assert(seg_load_cs(vm, FAKE_SEL_KCODE, 1));
	ck_assert(seg_load_ss(vm, FAKE_SEL_KDATA, 1));
	vm->regs.rip = FAKE_KCODE;
	vm->regs.rsp = FAKE_KRSP;
	vm->regs.rflags = X86_RFLAGS_FIXED | X86_RFLAGS_IF | (1ull << X86_RFLAGS_IOPL_SHIFT);
}

struct vm *fake_vm_open(void)
{
	struct fake_vm *f = calloc(1, sizeof(*f));
	struct vm *vm = &f->vm;

	ck_assert_ptr_nonnull(f);
	vm->vcpu.fd = -1;
	memset(vcpu_msrs, 0, sizeof(vcpu_msrs));
	vm->shadow_mode = true;
	ck_assert_int_eq(mem_alloc(&vm->mem, FAKE_RAM_SIZE), 0);
	ck_assert_int_eq(
		monitor_create(&vm->mon, &(struct monitor_config){ .pool_pages = POOL_PAGES,
								   .ram_size = FAKE_RAM_SIZE }),
		0);
	fake_mem_init(&f->mem, vm->mem.host, vm->mem.size);
	build_tables(vm);
	create_shadow(f);
	build_gdt_tss(vm);
	boot_state(vm);
	return vm;
}

void fake_vm_close(struct vm *vm)
{
	shadow_destroy(vm->shadow);
	monitor_destroy(&vm->mon);
	mem_free(&vm->mem);
	free((struct fake_vm *)vm);
}

void fake_vm_enter_user(struct vm *vm)
{
	ck_assert(seg_load_cs(vm, FAKE_SEL_UCODE, 3));
	ck_assert(seg_load_ss(vm, FAKE_SEL_UDATA, 3));
	vm->regs.rip = FAKE_UCODE;
	vm->regs.rsp = FAKE_URSP;
}

void fake_vm_code(struct vm *vm, const void *bytes, size_t len)
{
	memcpy(fake_vm_ptr(vm, vm->regs.rip, len), bytes, len);
}

void fake_vm_set_desc(struct vm *vm, unsigned index, uint64_t desc)
{
	uint64_t *gdt = fake_vm_ptr(vm, FAKE_GDT_GPA, FAKE_GDT_ENTRIES * 8);

	ck_assert_uint_lt(index, FAKE_GDT_ENTRIES);
	gdt[index] = desc;
	monitor_load_gdt(&vm->mon, gdt, FAKE_GDT_ENTRIES, false);
}

void fake_vm_set_gate(struct vm *vm, unsigned v, uint64_t target, uint16_t sel, unsigned type,
		      unsigned dpl, unsigned ist, bool present)
{
	uint64_t *g = fake_vm_ptr(vm, FAKE_IDT_GPA + v * 16, 16);

	g[0] = (target & 0xffff) | ((uint64_t)sel << 16) | ((uint64_t)(ist & 7) << 32) |
	       X86_DESC_TYPE(type) | X86_DESC_DPL(dpl) | (present ? X86_DESC_P : 0) |
	       ((target >> 16 & 0xffff) << 48);
	g[1] = target >> 32;
}

void fake_vm_set_pte(struct vm *vm, gva_t gva, uint64_t flags)
{
	uint64_t *pt = fake_vm_ptr(vm, FAKE_PT_GPA, 4096);

	ck_assert_uint_lt(gva, 2ull << 20);
	pt[X86_LEVEL_INDEX(gva, 1)] = (gva & X86_PAGE_MASK) | flags;
	shadow_invlpg(vm->shadow, gva);
}
