/* vmm/cpu/emulate.c on a fake struct vm (tests/fake_vm.h), no KVM: real
 * instruction bytes at RIP as the monitor hands them over after #GP or #UD,
 * each emulated instruction's effect on the virtual CPU and the exception it
 * raises instead, as the SDM (vol. 2, the instruction's page) and the AMD
 * APM describe them; privileged instructions from CPL3 and non-privileged
 * faults pass through as the guest's own #GP. */
#include <check.h>
#include <stdbool.h>
#include <string.h>

#include "control.h"
#include "emulate.h"
#include "fake_vm.h"
#include "monitor.h"
#include "shadow.h"
#include "status.h"
#include "suites.h"
#include "vm.h"
#include "x86.h"

static struct vm *vm;
static uint64_t rip0; /* RIP of the instruction under test */

static void setup(void)
{
	vm = fake_vm_open();
}

static void teardown(void)
{
	fake_vm_close(vm);
}

struct insn_bytes {
	uint8_t b[15];
	size_t n;
};
#define I(...) ((struct insn_bytes){ { __VA_ARGS__ }, sizeof((uint8_t[]){ __VA_ARGS__ }) })

#define CR0_BOOT (X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_WP | X86_CR0_PG)
#define CR4_BOOT (X86_CR4_PAE | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT)
#define EFER_BOOT (X86_EFER_LME | X86_EFER_LMA | X86_EFER_NXE)

/* One trap as trap.c runs it: the emulation, then the control-register sync
 * that every resume makes (control.c), so the real CR0/CR3/CR4/EFER and the
 * shadow's CPU state can be checked after it. */
static int emulate(unsigned vector, uint32_t err, struct insn_bytes in)
{
	int st;

	rip0 = vm->regs.rip;
	fake_vm_code(vm, in.b, in.n);
	st = emulate_fault(vm, vector, err);
	if (st == VM_CONTINUE)
		control_sync(vm);
	return st;
}

static int gp(struct insn_bytes in)
{
	return emulate(X86_EXC_GP, 0, in);
}

/* What the trap path does before resuming the guest: the real control
 * registers and the shadow MMU's CPU state from the virtual ones.  The
 * assertions on those go through here, wherever the trap path does it. */
static void sync(void)
{
	control_sync(vm);
}

/* Emulated: RIP past the instruction, RF clear (SDM 3A §17.3.1.1). */
static void assert_done(int st, size_t len)
{
	ck_assert_int_eq(st, VM_CONTINUE);
	ck_assert_uint_eq(vm->regs.rip, rip0 + len);
	ck_assert_uint_eq(vm->regs.rflags & X86_RFLAGS_RF, 0);
	ck_assert_uint_eq(vm->tstats.emulated, 1);
	ck_assert_uint_eq(vm->tstats.reflected, 0);
}

/* Not emulated: `vector` delivered through the guest IDT, a fault whose
 * frame points at the instruction. */
static void assert_raised(int st, unsigned vector, uint32_t err)
{
	const uint64_t *f;

	ck_assert_int_eq(st, VM_CONTINUE);
	ck_assert_uint_eq(vm->regs.rip, FAKE_HANDLER(vector));
	ck_assert_uint_eq(vm->tstats.emulated, 0);
	ck_assert_uint_eq(vm->tstats.reflected, 1);
	f = fake_vm_ptr(vm, vm->regs.rsp, 16);
	if (vector == X86_EXC_UD) {
		ck_assert_uint_eq(f[0], rip0);
		return;
	}
	ck_assert_uint_eq(f[0], err);
	ck_assert_uint_eq(f[1], rip0);
}

/* ---- control registers ---- */

/* SDM 2B MOV CR: #GP(0) for reserved bits, invalid combinations and
 * features the CPU lacks; in IA-32e mode also for clearing CR0.PG or
 * CR4.PAE and for changing CR4.LA57. */
static const struct {
	unsigned cr;
	uint64_t v;
	bool ok;
} cr_cases[] = {
	{ 0, CR0_BOOT | X86_CR0_TS, true },
	{ 0, CR0_BOOT & ~X86_CR0_WP, true },
	{ 0, CR0_BOOT | X86_CR0_CD | X86_CR0_NW, true },
	{ 0, CR0_BOOT | X86_CR0_AM, true },
	{ 0, CR0_BOOT | X86_BIT(32), false }, /* reserved 63:32 */
	{ 0, CR0_BOOT | X86_BIT(63), false },
	{ 0, CR0_BOOT & ~X86_CR0_PG, false }, /* would leave IA-32e mode */
	{ 0, CR0_BOOT & ~X86_CR0_PE, false }, /* PG without PE */
	{ 0, CR0_BOOT | X86_CR0_NW, false },  /* NW without CD */
	{ 4, CR4_BOOT | X86_CR4_PGE, true },
	{ 4, CR4_BOOT | X86_CR4_PSE, true },
	{ 4, CR4_BOOT | X86_CR4_SMEP | X86_CR4_SMAP, true },
	{ 4, CR4_BOOT | X86_CR4_UMIP | X86_CR4_FSGSBASE, true },
	{ 4, CR4_BOOT & ~X86_CR4_PAE, false }, /* would leave IA-32e mode */
	{ 4, CR4_BOOT | X86_CR4_LA57, false },
	{ 4, CR4_BOOT | X86_CR4_PCIDE, false },   /* the CPU has no PCID */
	{ 4, CR4_BOOT | X86_CR4_PKE, false },     /* nor PKU */
	{ 4, CR4_BOOT | X86_CR4_OSXSAVE, false }, /* nor XSAVE */
	{ 4, CR4_BOOT | X86_BIT(13), false },     /* VMXE: no VMX for the guest */
	{ 4, CR4_BOOT | X86_BIT(32), false },     /* reserved */
	{ 4, CR4_BOOT | X86_BIT(63), false },
};

START_TEST(test_emulate_mov_to_cr0_cr4_checks_reserved_and_invalid_bits)
{
	bool cr4 = cr_cases[_i].cr == 4;
	uint64_t v = cr_cases[_i].v, *virt = cr4 ? &vm->virt.cr4 : &vm->virt.cr0;
	int st;

	vm->regs.rax = v;
	st = gp(cr4 ? I(0x0f, 0x22, 0xe0) : I(0x0f, 0x22, 0xc0)); /* mov %rax,%cr4 / %cr0 */
	if (!cr_cases[_i].ok) {
		assert_raised(st, X86_EXC_GP, 0);
		ck_assert_uint_eq(*virt, cr4 ? CR4_BOOT : CR0_BOOT);
		return;
	}
	assert_done(st, 3);
	ck_assert_uint_eq(*virt, v);
	sync();
	/* The real CR0 keeps paging, protection and WP, the real CR4 PAE and
	 * UMIP, whatever the guest wants (DESIGN.md §2); TS and AM are the
	 * guest's, and the shadow walks with the guest's WP, SMEP, SMAP. */
	ck_assert_uint_eq(vm->sregs.cr0 & (X86_CR0_PE | X86_CR0_PG | X86_CR0_WP),
			  X86_CR0_PE | X86_CR0_PG | X86_CR0_WP);
	ck_assert_uint_eq(vm->sregs.cr0 & (X86_CR0_TS | X86_CR0_AM),
			  vm->virt.cr0 & (X86_CR0_TS | X86_CR0_AM));
	ck_assert_uint_eq(vm->sregs.cr4 & (X86_CR4_PAE | X86_CR4_UMIP), X86_CR4_PAE | X86_CR4_UMIP);
	ck_assert_int_eq(shadow_cpu_state(vm->shadow)->cr0_wp, !!(vm->virt.cr0 & X86_CR0_WP));
	ck_assert_int_eq(shadow_cpu_state(vm->shadow)->cr4_smep, !!(vm->virt.cr4 & X86_CR4_SMEP));
	ck_assert_int_eq(shadow_cpu_state(vm->shadow)->cr4_smap, !!(vm->virt.cr4 & X86_CR4_SMAP));
}
END_TEST

START_TEST(test_emulate_mov_to_cr0_keeps_et_set)
{
	/* ET is hardwired to 1 since the P6 (SDM 3A §2.5). */
	vm->regs.rax = CR0_BOOT & ~X86_CR0_ET;
	assert_done(gp(I(0x0f, 0x22, 0xc0)), 3);
	ck_assert_uint_eq(vm->virt.cr0, CR0_BOOT);
}
END_TEST

START_TEST(test_emulate_mov_to_cr3_switches_the_shadow)
{
	vm->regs.rbx = FAKE_PML4_GPA | X86_PTE_PWT; /* bits 11:0 are not the address */
	assert_done(gp(I(0x0f, 0x22, 0xdb)), 3);    /* mov %rbx,%cr3 */
	ck_assert_uint_eq(vm->virt.cr3, FAKE_PML4_GPA | X86_PTE_PWT);
	ck_assert_uint_eq(shadow_vcr3(vm->shadow), FAKE_PML4_GPA);
	sync();
	/* The real CR3 is always a shadow root (DESIGN.md §1). */
	ck_assert_uint_eq(vm->sregs.cr3, shadow_root(vm->shadow));
}
END_TEST

START_TEST(test_emulate_mov_to_cr3_above_maxphyaddr_is_gp)
{
	static const uint64_t bad[] = { X86_BIT(40), X86_BIT(51), X86_BIT(63) };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		vm->regs.rbx = FAKE_PML4_GPA | bad[i];
		vm->regs.rip = FAKE_KCODE + i * 16;
		vm->tstats.reflected = 0;
		assert_raised(gp(I(0x0f, 0x22, 0xdb)), X86_EXC_GP, 0);
		ck_assert_uint_eq(vm->virt.cr3, FAKE_PML4_GPA);
	}
}
END_TEST

START_TEST(test_emulate_mov_from_cr_reads_the_virtual_value)
{
	vm->virt.cr2 = 0xfeed000;
	assert_done(gp(I(0x0f, 0x20, 0xe1)), 3); /* mov %cr4,%rcx */
	/* The guest sees its own CR4, not the real one with UMIP. */
	ck_assert_uint_eq(vm->regs.rcx, CR4_BOOT);
	vm->tstats.emulated = 0;
	assert_done(gp(I(0x0f, 0x20, 0xc0)), 3); /* mov %cr0,%rax */
	ck_assert_uint_eq(vm->regs.rax, CR0_BOOT);
	vm->tstats.emulated = 0;
	assert_done(gp(I(0x0f, 0x20, 0xdb)), 3); /* mov %cr3,%rbx */
	ck_assert_uint_eq(vm->regs.rbx, FAKE_PML4_GPA);
	vm->tstats.emulated = 0;
	assert_done(gp(I(0x0f, 0x20, 0xd2)), 3); /* mov %cr2,%rdx */
	ck_assert_uint_eq(vm->regs.rdx, 0xfeed000);
	vm->tstats.emulated = 0;
	vm->regs.rdx = 0xbeef000;
	assert_done(gp(I(0x0f, 0x22, 0xd2)), 3); /* mov %rdx,%cr2 */
	ck_assert_uint_eq(vm->virt.cr2, 0xbeef000);
	sync();
	ck_assert_uint_eq(vm->sregs.cr2, 0xbeef000);
}
END_TEST

START_TEST(test_emulate_cr8_reads_zero)
{
	/* No local APIC task priority: CR8 reads 0, writes are dropped. */
	vm->regs.rax = 0xf;
	assert_done(gp(I(0x44, 0x0f, 0x22, 0xc0)), 4); /* mov %rax,%cr8 */
	vm->tstats.emulated = 0;
	assert_done(gp(I(0x44, 0x0f, 0x20, 0xc0)), 4); /* mov %cr8,%rax */
	ck_assert_uint_eq(vm->regs.rax, 0);
}
END_TEST

START_TEST(test_emulate_clts_clears_ts)
{
	vm->virt.cr0 |= X86_CR0_TS;
	vm->regs.rflags |= X86_RFLAGS_RF;
	assert_done(gp(I(0x0f, 0x06)), 2);
	ck_assert_uint_eq(vm->virt.cr0, CR0_BOOT);
	sync();
	ck_assert_uint_eq(vm->sregs.cr0 & X86_CR0_TS, 0);
}
END_TEST

START_TEST(test_emulate_invlpg_drops_the_translation)
{
	struct shadow_fault_result res;
	struct shadow_stats st;

	ck_assert_int_eq(shadow_fault(vm->shadow, FAKE_UCODE, 0, &res), SHADOW_FILLED);
	vm->regs.rax = FAKE_UCODE + 0x123;
	assert_done(gp(I(0x0f, 0x01, 0x38)), 3); /* invlpg (%rax) */
	shadow_get_stats(vm->shadow, &st);
	ck_assert_uint_eq(st.invlpgs, 1);
	/* A non-canonical operand is no fault: invlpg does nothing. */
	vm->tstats.emulated = 0;
	vm->regs.rax = 0x0000800000000000ull;
	assert_done(gp(I(0x0f, 0x01, 0x38)), 3);
}
END_TEST

/* ---- descriptor tables ---- */

static void put_pseudo_desc(gva_t at, uint16_t limit, uint64_t base)
{
	uint8_t *p = fake_vm_ptr(vm, at, 10);

	memcpy(p, &limit, 2);
	memcpy(p + 2, &base, 8);
}

START_TEST(test_emulate_lgdt_loads_and_translates_the_guest_gdt)
{
	uint64_t *gdt = fake_vm_ptr(vm, 0xa000, 3 * 8);

	gdt[1] = FAKE_DESC_KDATA; /* swapped: 0x08 data, 0x10 code */
	gdt[2] = FAKE_DESC_KCODE;
	put_pseudo_desc(0x9000, 3 * 8 - 1, 0xa000);
	vm->regs.rax = 0x9000;
	assert_done(gp(I(0x0f, 0x01, 0x10)), 3); /* lgdt (%rax) */
	ck_assert_uint_eq(vm->virt.gdt_base, 0xa000);
	ck_assert_uint_eq(vm->virt.gdt_limit, 3 * 8 - 1);
	ck_assert_uint_eq(monitor_descriptor(&vm->mon, 0x08),
			  FAKE_DESC_KDATA | X86_DESC_DPL(1) | X86_BIT(X86_DESC_TYPE_SHIFT));
	ck_assert_uint_eq(monitor_descriptor(&vm->mon, 0x10),
			  FAKE_DESC_KCODE | X86_DESC_DPL(1) | X86_BIT(X86_DESC_TYPE_SHIFT));
	ck_assert_uint_eq(monitor_descriptor(&vm->mon, FAKE_SEL_UCODE), 0);
}
END_TEST

/* From compatibility-mode (32-bit) code, a legacy-mode guest: the same
 * bytes decode with 32-bit registers; lgdt reads a 6-byte operand, its L
 * bits are dropped in the real GDT (they mean nothing outside IA-32e
 * mode), and mov to CR3 takes EAX only (SDM 2A LGDT, MOV CR). */
START_TEST(test_emulate_legacy_32bit_code)
{
	uint64_t *gdt = fake_vm_ptr(vm, 0xa000, 3 * 8);
	uint8_t *p = fake_vm_ptr(vm, 0x9000, 10);

	vm->sregs.cs.l = 0, vm->sregs.cs.db = 1;
	vm->virt.efer &= ~(X86_EFER_LMA | X86_EFER_LME);
	gdt[1] = FAKE_DESC_KCODE; /* L = 1 */
	gdt[2] = FAKE_DESC_KDATA;
	put_pseudo_desc(0x9000, 3 * 8 - 1, 0xa000);
	memset(p + 6, 0xff, 4);                  /* a 64-bit base would read these */
	vm->regs.rax = 0xdead00009000ull;        /* EAX is the address */
	assert_done(gp(I(0x0f, 0x01, 0x10)), 3); /* lgdt (%eax) */
	ck_assert_uint_eq(vm->virt.gdt_base, 0xa000);
	ck_assert_uint_eq(monitor_descriptor(&vm->mon, 0x08), (FAKE_DESC_KCODE & ~X86_DESC_L) |
								      X86_DESC_DPL(1) |
								      X86_BIT(X86_DESC_TYPE_SHIFT));
	/* mov %eax,%cr3 with garbage above EAX, paging off (the fake's
	 * tables are 4-level: only the value is checked) */
	vm->regs.rip = FAKE_KCODE;
	vm->regs.rax = 0xffffffff00003000ull;
	ck_assert(control_write_cr0(vm, vm->virt.cr0 & ~X86_CR0_PG));
	ck_assert_int_eq(gp(I(0x0f, 0x22, 0xd8)), VM_CONTINUE);
	ck_assert_uint_eq(vm->regs.rip, FAKE_KCODE + 3);
	ck_assert_uint_eq(vm->virt.cr3, 0x3000);
}
END_TEST

START_TEST(test_emulate_lgdt_lidt_non_canonical_base_is_gp)
{
	/* AMD APM 3 LGDT/LIDT: #GP(0) for a non-canonical base. */
	put_pseudo_desc(0x9000, 0xfff, 0x0000800000000000ull);
	vm->regs.rax = 0x9000;
	assert_raised(gp(I(0x0f, 0x01, 0x10)), X86_EXC_GP, 0);
	ck_assert_uint_eq(vm->virt.gdt_base, FAKE_GDT_GPA);
	vm->tstats.reflected = 0;
	vm->regs.rip = rip0, vm->regs.rsp = FAKE_KRSP;
	assert_raised(gp(I(0x0f, 0x01, 0x18)), X86_EXC_GP, 0);
	ck_assert_uint_eq(vm->virt.idt_base, FAKE_IDT_GPA);
}
END_TEST

START_TEST(test_emulate_lgdt_into_the_monitor_slots_ends_the_run)
{
	put_pseudo_desc(0x9000, HV_GUEST_GDT_LIMIT_MAX + 1, 0xa000);
	vm->regs.rax = 0x9000;
	ck_assert_int_eq(gp(I(0x0f, 0x01, 0x10)), VMM_E_CONTRACT);
}
END_TEST

START_TEST(test_emulate_lgdt_operand_not_mapped_is_pf)
{
	fake_vm_set_pte(vm, 0x9000, 0);
	vm->regs.rax = 0x9000;
	/* A supervisor read of a not-present page: error code 0. */
	assert_raised(gp(I(0x0f, 0x01, 0x10)), X86_EXC_PF, 0);
	ck_assert_uint_eq(vm->virt.cr2, 0x9000);
}
END_TEST

START_TEST(test_emulate_lidt_loads_the_virtual_idt)
{
	put_pseudo_desc(0x9000, 0x7ff, 0xffffffff80001000ull);
	vm->sregs.idt.base = HV_VA(HV_PG_IDT);
	vm->regs.rax = 0x9000;
	assert_done(gp(I(0x0f, 0x01, 0x18)), 3); /* lidt (%rax) */
	ck_assert_uint_eq(vm->virt.idt_base, 0xffffffff80001000ull);
	ck_assert_uint_eq(vm->virt.idt_limit, 0x7ff);
	/* The real IDT stays the monitor's. */
	ck_assert_uint_eq(vm->sregs.idt.base, HV_VA(HV_PG_IDT));
}
END_TEST

START_TEST(test_emulate_sgdt_sidt_store_the_virtual_tables)
{
	uint8_t *p = fake_vm_ptr(vm, 0x9000, 10);
	uint16_t limit;
	uint64_t base;

	vm->regs.rax = 0x9000;
	assert_done(gp(I(0x0f, 0x01, 0x00)), 3); /* sgdt (%rax) */
	memcpy(&limit, p, 2), memcpy(&base, p + 2, 8);
	ck_assert_uint_eq(limit, FAKE_GDT_ENTRIES * 8 - 1);
	ck_assert_uint_eq(base, FAKE_GDT_GPA);
	vm->tstats.emulated = 0;
	assert_done(gp(I(0x0f, 0x01, 0x08)), 3); /* sidt (%rax) */
	memcpy(&limit, p, 2), memcpy(&base, p + 2, 8);
	ck_assert_uint_eq(limit, 256 * 16 - 1);
	ck_assert_uint_eq(base, FAKE_IDT_GPA);
}
END_TEST

START_TEST(test_emulate_str_sldt_smsw_store_virtual_values)
{
	vm->regs.rax = 0xffffffffffff0000ull;
	assert_done(gp(I(0x66, 0x0f, 0x00, 0xc8)), 4); /* str %ax */
	/* A 16-bit register destination keeps the rest of RAX. */
	ck_assert_uint_eq(vm->regs.rax, 0xffffffffffff0000ull | FAKE_SEL_TSS);
	vm->tstats.emulated = 0;
	assert_done(gp(I(0x66, 0x0f, 0x00, 0xc0)), 4); /* sldt %ax */
	ck_assert_uint_eq(vm->regs.rax, 0xffffffffffff0000ull);
	vm->tstats.emulated = 0;
	assert_done(gp(I(0x66, 0x0f, 0x01, 0xe0)), 4); /* smsw %ax */
	ck_assert_uint_eq(vm->regs.rax, 0xffffffffffff0000ull | (CR0_BOOT & 0xffff));
}
END_TEST

START_TEST(test_emulate_sgdt_at_cpl3_follows_the_guest_umip)
{
	/* The real CR4.UMIP makes sgdt fault at CPL3; without the guest's own
	 * UMIP it must still work there, with UMIP it is #GP(0) (SDM 2B SGDT). */
	fake_vm_enter_user(vm);
	vm->regs.rax = 0x60000;
	assert_done(gp(I(0x0f, 0x01, 0x00)), 3);
	ck_assert_uint_eq(fake_vm_read64(vm, 0x60002), FAKE_GDT_GPA);
	vm->tstats.emulated = 0;
	vm->virt.cr4 |= X86_CR4_UMIP;
	vm->regs.rip = FAKE_UCODE + 16;
	assert_raised(gp(I(0x0f, 0x01, 0x00)), X86_EXC_GP, 0);
}
END_TEST

/* LTR (SDM 2A): selector checks, then an available 64-bit TSS, present. */
#define TSS_AVAIL(base)                                                                            \
	(0x67 | (((base)&0xffffff) << 16) | X86_DESC_TYPE(X86_SEG_TYPE_TSS64_AVAIL) | X86_DESC_P | \
	 ((((base) >> 24) & 0xff) << 56))

static const struct {
	uint16_t sel;
	uint64_t desc;
	unsigned vector;
	uint32_t err;
} ltr_faults[] = {
	{ 0x0000, TSS_AVAIL(0x9000ull), X86_EXC_GP, 0 },    /* null */
	{ 0x0003, TSS_AVAIL(0x9000ull), X86_EXC_GP, 0 },    /* null, RPL 3 */
	{ 0x003c, TSS_AVAIL(0x9000ull), X86_EXC_GP, 0x3c }, /* TI: the LDT */
	{ 0x0080, TSS_AVAIL(0x9000ull), X86_EXC_GP, 0x80 }, /* past the limit */
	{ 0x0078, TSS_AVAIL(0x9000ull), X86_EXC_GP, 0x78 }, /* upper half past it */
	{ 0x0038, TSS_AVAIL(0x9000ull) | X86_DESC_TYPE(2), X86_EXC_GP, 0x38 }, /* busy */
	{ 0x0038, 0x0000820000009067ull, X86_EXC_GP, 0x38 },                   /* an LDT */
	{ 0x0038, FAKE_DESC_KDATA, X86_EXC_GP, 0x38 }, /* not a system segment */
	{ 0x0038, TSS_AVAIL(0x9000ull) & ~X86_DESC_P, X86_EXC_NP, 0x38 },
};

START_TEST(test_emulate_ltr_faults)
{
	uint64_t *gdt = fake_vm_ptr(vm, FAKE_GDT_GPA, FAKE_GDT_ENTRIES * 8);

	gdt[7] = gdt[15] = ltr_faults[_i].desc;
	vm->regs.rax = ltr_faults[_i].sel;
	assert_raised(gp(I(0x0f, 0x00, 0xd8)), ltr_faults[_i].vector, ltr_faults[_i].err);
	ck_assert_uint_eq(vm->virt.tr, FAKE_SEL_TSS);
	ck_assert_uint_eq(gdt[7], ltr_faults[_i].desc);
}
END_TEST

START_TEST(test_emulate_ltr_loads_and_marks_busy)
{
	uint64_t *gdt = fake_vm_ptr(vm, FAKE_GDT_GPA, FAKE_GDT_ENTRIES * 8);

	gdt[7] = TSS_AVAIL(0x12345000ull);
	gdt[8] = 0x1; /* base 63:32 */
	vm->regs.rax = 0x38;
	assert_done(gp(I(0x0f, 0x00, 0xd8)), 3); /* ltr %ax */
	ck_assert_uint_eq(vm->virt.tr, 0x38);
	ck_assert_uint_eq(vm->virt.tr_base, 0x112345000ull);
	ck_assert_uint_eq(gdt[7],
			  TSS_AVAIL(0x12345000ull) | X86_DESC_TYPE(X86_SEG_TYPE_TSS64_BUSY));
}
END_TEST

START_TEST(test_emulate_lldt_null_only)
{
	vm->regs.rax = 0;
	assert_done(gp(I(0x0f, 0x00, 0xd0)), 3); /* lldt %ax */
	ck_assert_uint_eq(vm->virt.ldtr, 0);
	vm->regs.rax = 0x38;
	ck_assert_int_eq(gp(I(0x0f, 0x00, 0xd0)), VMM_E_CRASH); /* LDTs: not emulated */
}
END_TEST

/* ---- MSRs ---- */

static int wrmsr(uint32_t index, uint64_t v)
{
	vm->regs.rcx = index;
	vm->regs.rax = (uint32_t)v | 0xdead000000000000ull; /* RAX 63:32 ignored */
	vm->regs.rdx = v >> 32;
	return gp(I(0x0f, 0x30));
}

static uint64_t rdmsr(uint32_t index)
{
	vm->regs.rcx = index;
	vm->regs.rax = vm->regs.rdx = ~0ull;
	vm->regs.rip = FAKE_KCODE + 0x100;
	vm->tstats.emulated = 0;
	assert_done(gp(I(0x0f, 0x32)), 2);
	/* RDMSR clears RAX and RDX 63:32 (SDM 2B). */
	ck_assert_uint_eq(vm->regs.rax >> 32, 0);
	ck_assert_uint_eq(vm->regs.rdx >> 32, 0);
	return vm->regs.rdx << 32 | vm->regs.rax;
}

static const struct {
	uint32_t index;
	uint64_t v;
	bool ok;
} msr_cases[] = {
	{ X86_MSR_EFER, EFER_BOOT | X86_EFER_SCE, true },
	{ X86_MSR_EFER, EFER_BOOT & ~X86_EFER_NXE, true },
	{ X86_MSR_EFER, EFER_BOOT & ~X86_EFER_LME, false }, /* LME with paging on */
	{ X86_MSR_EFER, EFER_BOOT | X86_BIT(1), false },    /* reserved */
	{ X86_MSR_EFER, EFER_BOOT | X86_EFER_SVME, false }, /* no SVM for the guest */
	{ X86_MSR_EFER, EFER_BOOT | X86_BIT(63), false },
	{ X86_MSR_STAR, 0x0023001000000000ull, true },
	{ X86_MSR_LSTAR, 0xffffffff81000000ull, true },
	{ X86_MSR_LSTAR, 0x0000800000000000ull, false }, /* non-canonical */
	{ X86_MSR_CSTAR, 0xffffffff81000040ull, true },
	{ X86_MSR_SFMASK, 0x47700, true },
	{ X86_MSR_FS_BASE, 0x00007fff00001000ull, true },
	{ X86_MSR_FS_BASE, 0x0000800000000000ull, false },
	{ X86_MSR_GS_BASE, 0xffff888000000000ull, true },
	{ X86_MSR_GS_BASE, 0x8000000000000000ull, false },
	{ X86_MSR_KERNEL_GS_BASE, 0xffff888000001000ull, true },
	{ X86_MSR_KERNEL_GS_BASE, 0x0001000000000000ull, false },
	{ X86_MSR_TSC_AUX, 0x5, true },
	{ X86_MSR_TSC_AUX, X86_BIT(32), false }, /* reserved 63:32 */
};

START_TEST(test_emulate_wrmsr_rdmsr)
{
	uint32_t idx = msr_cases[_i].index;
	uint64_t v = msr_cases[_i].v, before = rdmsr(idx);
	int st;

	vm->regs.rip = FAKE_KCODE + 32;
	vm->tstats.emulated = 0;
	st = wrmsr(idx, v);
	if (!msr_cases[_i].ok) {
		assert_raised(st, X86_EXC_GP, 0);
		vm->regs.rsp = FAKE_KRSP, vm->tstats.reflected = 0;
		ck_assert_uint_eq(rdmsr(idx), before);
		return;
	}
	assert_done(st, 2);
	ck_assert_uint_eq(rdmsr(idx), v);
}
END_TEST

START_TEST(test_emulate_unknown_msr_is_gp)
{
	/* SDM 2B RDMSR/WRMSR: a reserved or unimplemented MSR is #GP(0). */
	vm->regs.rcx = 0x1234;
	assert_raised(gp(I(0x0f, 0x32)), X86_EXC_GP, 0);
	vm->regs.rip = FAKE_KCODE, vm->regs.rsp = FAKE_KRSP, vm->tstats.reflected = 0;
	assert_raised(wrmsr(0x1234, 0), X86_EXC_GP, 0);
}
END_TEST

START_TEST(test_emulate_efer_reaches_the_real_efer_and_the_shadow)
{
	assert_done(wrmsr(X86_MSR_EFER, X86_EFER_LME | X86_EFER_SCE), 2);
	ck_assert_uint_eq(vm->virt.efer, X86_EFER_LME | X86_EFER_LMA | X86_EFER_SCE);
	sync();
	/* The real EFER keeps NXE for the shadow's own NX (shadow.h). */
	ck_assert_uint_eq(vm->sregs.efer, EFER_BOOT | X86_EFER_SCE);
	ck_assert(!shadow_cpu_state(vm->shadow)->efer_nxe);
}
END_TEST

START_TEST(test_emulate_swapgs_exchanges_gs_base)
{
	vm->sregs.gs.base = 0x1111000;
	*fake_vm_vcpu_msr(X86_MSR_KERNEL_GS_BASE) = 0xffff888000002000ull;
	assert_done(gp(I(0x0f, 0x01, 0xf8)), 3);
	ck_assert_uint_eq(vm->sregs.gs.base, 0xffff888000002000ull);
	ck_assert_uint_eq(*fake_vm_vcpu_msr(X86_MSR_KERNEL_GS_BASE), 0x1111000);
}
END_TEST

START_TEST(test_emulate_hlt_ends_the_run)
{
	ck_assert_int_eq(gp(I(0xf4)), VMM_E_HALTED);
}
END_TEST

START_TEST(test_emulate_wbinvd_is_a_no_op)
{
	assert_done(gp(I(0x0f, 0x09)), 2);
}
END_TEST

/* ---- stac/clac: #UD above CPL0 on hardware (DESIGN.md §2) ---- */

START_TEST(test_emulate_stac_clac_at_cpl0_with_smap)
{
	vm->virt.cr4 |= X86_CR4_SMAP;
	assert_done(emulate(X86_EXC_UD, 0, I(0x0f, 0x01, 0xcb)), 3); /* stac */
	ck_assert(vm->regs.rflags & X86_RFLAGS_AC);
	sync();
	ck_assert(shadow_cpu_state(vm->shadow)->rflags_ac);
	vm->tstats.emulated = 0;
	assert_done(emulate(X86_EXC_UD, 0, I(0x0f, 0x01, 0xca)), 3); /* clac */
	ck_assert(!(vm->regs.rflags & X86_RFLAGS_AC));
	sync();
	ck_assert(!shadow_cpu_state(vm->shadow)->rflags_ac);
}
END_TEST

/* SDM 2B STAC/CLAC: #UD if CPL > 0 or CR4.SMAP = 0; other #UDs are the
 * guest's. */
static const struct {
	bool user, smap;
	struct insn_bytes in;
} ud_cases[] = {
	{ false, false, I(0x0f, 0x01, 0xcb) }, { false, false, I(0x0f, 0x01, 0xca) },
	{ true, true, I(0x0f, 0x01, 0xcb) },   { true, true, I(0x0f, 0x01, 0xca) },
	{ false, true, I(0x0f, 0x0b) },       /* ud2 */
	{ false, true, I(0x48, 0x0f, 0x07) }, /* sysretq with EFER.SCE = 0 */
};

START_TEST(test_emulate_ud_is_reflected)
{
	if (ud_cases[_i].user)
		fake_vm_enter_user(vm);
	if (ud_cases[_i].smap)
		vm->virt.cr4 |= X86_CR4_SMAP;
	assert_raised(emulate(X86_EXC_UD, 0, ud_cases[_i].in), X86_EXC_UD, 0);
	ck_assert(!(vm->regs.rflags & X86_RFLAGS_AC));
}
END_TEST

/* ---- returns to the guest kernel and to user mode ---- */

START_TEST(test_emulate_sysret_to_user)
{
	vm->virt.efer |= X86_EFER_SCE;
	vm->virt.star = (uint64_t)0x10 << 48 | (uint64_t)0x08 << 32;
	vm->regs.rcx = FAKE_UCODE + 0x40;
	vm->regs.r11 = X86_RFLAGS_IF | X86_RFLAGS_CF | X86_RFLAGS_AC | X86_RFLAGS_RF |
		       X86_RFLAGS_VM | X86_RFLAGS_IOPL_MASK | X86_BIT(3) | X86_BIT(15);
	ck_assert_int_eq(gp(I(0x48, 0x0f, 0x07)), VM_CONTINUE);
	ck_assert_uint_eq(vm->regs.rip, FAKE_UCODE + 0x40);
	/* SDM 2B SYSRET: CS = STAR[63:48] + 16 | 3, SS = STAR[63:48] + 8 | 3,
	 * RFLAGS = (R11 & 3C7FD7H) | 2; IOPL reads 1 here (DESIGN.md §2). */
	ck_assert_uint_eq(vm->sregs.cs.selector, 0x23);
	ck_assert_uint_eq(vm->sregs.ss.selector, 0x1b);
	ck_assert_uint_eq(vm->sregs.cs.dpl, 3);
	ck_assert_uint_eq(vm->sregs.ss.dpl, 3);
	ck_assert_uint_eq(vm->regs.rflags, X86_RFLAGS_IF | X86_RFLAGS_CF | X86_RFLAGS_AC |
						   X86_RFLAGS_FIXED |
						   (1ull << X86_RFLAGS_IOPL_SHIFT));
	ck_assert_uint_eq(vm->tstats.emulated, 1);
}
END_TEST

START_TEST(test_emulate_sysret_to_non_canonical_rcx_is_gp)
{
	vm->virt.efer |= X86_EFER_SCE;
	vm->regs.rcx = 0x0000800000000000ull;
	assert_raised(gp(I(0x48, 0x0f, 0x07)), X86_EXC_GP, 0);
	ck_assert_uint_eq(vm->sregs.cs.selector, FAKE_SEL_KCODE | 1);
}
END_TEST

static void push_frame(const uint64_t *f, unsigned n)
{
	vm->regs.rsp = 0x1e000;
	memcpy(fake_vm_ptr(vm, vm->regs.rsp, n * 8), f, n * 8);
}

START_TEST(test_emulate_iretq_to_rpl0)
{
	const uint64_t f[5] = { FAKE_KCODE + 0x200, FAKE_SEL_KCODE,
				X86_RFLAGS_FIXED | X86_RFLAGS_CF, 0x1c008, FAKE_SEL_KDATA };

	push_frame(f, 5);
	ck_assert_int_eq(gp(I(0x48, 0xcf)), VM_CONTINUE);
	ck_assert_uint_eq(vm->regs.rip, FAKE_KCODE + 0x200);
	ck_assert_uint_eq(vm->regs.rsp, 0x1c008);
	/* The guest kernel's selectors as the hardware runs them: RPL 1. */
	ck_assert_uint_eq(vm->sregs.cs.selector, FAKE_SEL_KCODE | 1);
	ck_assert_uint_eq(vm->sregs.ss.selector, FAKE_SEL_KDATA | 1);
	/* IF follows the frame at CPL0; IOPL reads 1. */
	ck_assert_uint_eq(vm->regs.rflags,
			  X86_RFLAGS_FIXED | X86_RFLAGS_CF | (1ull << X86_RFLAGS_IOPL_SHIFT));
	ck_assert_uint_eq(vm->tstats.emulated, 1);
}
END_TEST

START_TEST(test_emulate_iretq_with_null_ss_to_rpl0)
{
	/* SDM 2A IRET: a null SS is allowed for a return to 64-bit mode below CPL3. */
	const uint64_t f[5] = { FAKE_KCODE + 0x200, FAKE_SEL_KCODE, X86_RFLAGS_FIXED, 0x1c000, 0 };

	push_frame(f, 5);
	ck_assert_int_eq(gp(I(0x48, 0xcf)), VM_CONTINUE);
	ck_assert_uint_eq(vm->sregs.ss.unusable, 1);
	ck_assert_uint_eq(vm->sregs.ss.selector & 3, 1);
}
END_TEST

START_TEST(test_emulate_iretq_to_user)
{
	const uint64_t f[5] = { FAKE_UCODE, FAKE_SEL_UCODE | 3,
				X86_RFLAGS_FIXED | X86_RFLAGS_IF | X86_RFLAGS_VM |
					X86_RFLAGS_IOPL_MASK | X86_BIT(3) | X86_BIT(63),
				FAKE_URSP, FAKE_SEL_UDATA | 3 };

	push_frame(f, 5);
	ck_assert_int_eq(gp(I(0x48, 0xcf)), VM_CONTINUE);
	ck_assert_uint_eq(vm->regs.rip, FAKE_UCODE);
	ck_assert_uint_eq(vm->regs.rsp, FAKE_URSP);
	ck_assert_uint_eq(vm->sregs.cs.selector, FAKE_SEL_UCODE | 3);
	ck_assert_uint_eq(vm->sregs.ss.selector, FAKE_SEL_UDATA | 3);
	/* VM cannot be set in IA-32e mode; reserved bits read 0. */
	ck_assert_uint_eq(vm->regs.rflags,
			  X86_RFLAGS_FIXED | X86_RFLAGS_IF | (1ull << X86_RFLAGS_IOPL_SHIFT));
}
END_TEST

/* SDM 2A IRET, IA-32e mode: the checks on the frame.  0x48 and 0x50 are
 * not present (data, code). */
static const struct {
	uint64_t f[5];
	bool nt;
	unsigned vector;
	uint32_t err;
} iret_faults[] = {
	/* Non-canonical RIP: #GP(0). */
	{ { 0x0000800000000000ull, FAKE_SEL_KCODE, 2, 0x1c000, FAKE_SEL_KDATA },
	  false,
	  X86_EXC_GP,
	  0 },
	/* CS not a code segment: #GP(CS). */
	{ { FAKE_KCODE, FAKE_SEL_KDATA, 2, 0x1c000, FAKE_SEL_KDATA },
	  false,
	  X86_EXC_GP,
	  FAKE_SEL_KDATA },
	/* CS DPL 3 with RPL 0: #GP(CS). */
	{ { FAKE_KCODE, FAKE_SEL_UCODE, 2, 0x1c000, FAKE_SEL_KDATA },
	  false,
	  X86_EXC_GP,
	  FAKE_SEL_UCODE },
	/* SS not writable data: #GP(SS). */
	{ { FAKE_KCODE, FAKE_SEL_KCODE, 2, 0x1c000, FAKE_SEL_KCODE },
	  false,
	  X86_EXC_GP,
	  FAKE_SEL_KCODE },
	/* SS RPL != CS RPL: #GP(SS). */
	{ { FAKE_UCODE, FAKE_SEL_UCODE | 3, 2, FAKE_URSP, FAKE_SEL_KDATA },
	  false,
	  X86_EXC_GP,
	  FAKE_SEL_KDATA },
	/* A null SS returning to CPL3: #GP(SS). */
	{ { FAKE_UCODE, FAKE_SEL_UCODE | 3, 2, FAKE_URSP, 3 }, false, X86_EXC_GP, 0 },
	/* NT = 1: a task return, which IA-32e mode does not have: #GP(0). */
	{ { FAKE_KCODE, FAKE_SEL_KCODE, 2, 0x1c000, FAKE_SEL_KDATA }, true, X86_EXC_GP, 0 },
	/* CS not present: #NP(CS); SS not present: #SS(SS). */
	{ { FAKE_KCODE, 0x50, 2, 0x1c000, FAKE_SEL_KDATA }, false, X86_EXC_NP, 0x50 },
	{ { FAKE_KCODE, FAKE_SEL_KCODE, 2, 0x1c000, 0x48 }, false, X86_EXC_SS, 0x48 },
};

START_TEST(test_emulate_iretq_faults)
{
	struct kvm_segment cs = vm->sregs.cs;

	fake_vm_set_desc(vm, 9, FAKE_DESC_KDATA & ~X86_DESC_P);
	fake_vm_set_desc(vm, 10, FAKE_DESC_KCODE & ~X86_DESC_P);
	push_frame(iret_faults[_i].f, 5);
	if (iret_faults[_i].nt)
		vm->regs.rflags |= X86_RFLAGS_NT;
	assert_raised(gp(I(0x48, 0xcf)), iret_faults[_i].vector, iret_faults[_i].err);
	/* A fault changes nothing: the frame holds the iretq's CS, RSP, SS. */
	ck_assert_uint_eq(fake_vm_read64(vm, vm->regs.rsp + 16), cs.selector);
	ck_assert_uint_eq(fake_vm_read64(vm, vm->regs.rsp + 32), 0x1e000);
	ck_assert_uint_eq(fake_vm_read64(vm, vm->regs.rsp + 40), FAKE_SEL_KDATA | 1);
}
END_TEST

START_TEST(test_emulate_lretq_to_rpl0)
{
	const uint64_t f[2] = { FAKE_KCODE + 0x300, FAKE_SEL_KCODE };

	push_frame(f, 2);
	ck_assert_int_eq(gp(I(0x48, 0xcb)), VM_CONTINUE);
	ck_assert_uint_eq(vm->regs.rip, FAKE_KCODE + 0x300);
	ck_assert_uint_eq(vm->sregs.cs.selector, FAKE_SEL_KCODE | 1);
	ck_assert_uint_eq(vm->regs.rsp, 0x1e000 + 16);
	ck_assert_uint_eq(vm->sregs.ss.selector, FAKE_SEL_KDATA | 1); /* same level: SS kept */
}
END_TEST

START_TEST(test_emulate_lretq_imm_releases_parameters)
{
	const uint64_t f[2] = { FAKE_KCODE + 0x300, FAKE_SEL_KCODE };

	push_frame(f, 2);
	ck_assert_int_eq(gp(I(0x48, 0xca, 0x10, 0x00)), VM_CONTINUE); /* lretq $0x10 */
	ck_assert_uint_eq(vm->regs.rsp, 0x1e000 + 16 + 0x10);
}
END_TEST

START_TEST(test_emulate_lret_32bit_operands)
{
	const uint32_t f[2] = { (uint32_t)FAKE_KCODE + 0x300, FAKE_SEL_KCODE };

	vm->regs.rsp = 0x1e000;
	memcpy(fake_vm_ptr(vm, vm->regs.rsp, 8), f, 8);
	ck_assert_int_eq(gp(I(0xcb)), VM_CONTINUE); /* lret: 4-byte EIP and CS */
	ck_assert_uint_eq(vm->regs.rip, FAKE_KCODE + 0x300);
	ck_assert_uint_eq(vm->regs.rsp, 0x1e000 + 8);
}
END_TEST

START_TEST(test_emulate_lretq_to_user_pops_the_stack)
{
	/* SDM 2A RET, return to an outer level: CS:RIP, then the immediate,
	 * then SS:RSP, and the immediate again on the outer stack. */
	const uint64_t f[6] = {
		FAKE_UCODE, FAKE_SEL_UCODE | 3, 0, 0, FAKE_URSP, FAKE_SEL_UDATA | 3
	};

	push_frame(f, 6);
	ck_assert_int_eq(gp(I(0x48, 0xca, 0x10, 0x00)), VM_CONTINUE);
	ck_assert_uint_eq(vm->regs.rip, FAKE_UCODE);
	ck_assert_uint_eq(vm->sregs.cs.selector, FAKE_SEL_UCODE | 3);
	ck_assert_uint_eq(vm->sregs.ss.selector, FAKE_SEL_UDATA | 3);
	ck_assert_uint_eq(vm->regs.rsp, FAKE_URSP + 0x10);
}
END_TEST

START_TEST(test_emulate_lretq_to_data_segment_is_gp)
{
	const uint64_t f[2] = { FAKE_KCODE + 0x300, FAKE_SEL_KDATA };

	push_frame(f, 2);
	assert_raised(gp(I(0x48, 0xcb)), X86_EXC_GP, FAKE_SEL_KDATA);
}
END_TEST

START_TEST(test_emulate_lretq_to_not_present_code_is_np)
{
	/* SDM 2B RET: #NP(selector) if the return code segment is not present. */
	const uint64_t f[2] = { FAKE_KCODE + 0x300, 0x50 };

	fake_vm_set_desc(vm, 10, FAKE_DESC_KCODE & ~X86_DESC_P);
	push_frame(f, 2);
	assert_raised(gp(I(0x48, 0xcb)), X86_EXC_NP, 0x50);
}
END_TEST

/* MOV SS (SDM 2A MOV): RPL == CPL, a writable data segment with DPL ==
 * CPL, else #GP(selector); present, else #SS(selector); in 64-bit mode a
 * null selector is fine below CPL3.  0x48 is data, not present. */
static const struct {
	uint16_t sel;
	bool ok;
	unsigned vector;
} mov_ss_cases[] = {
	{ FAKE_SEL_KDATA, true, 0 },
	{ 0, true, 0 },
	{ FAKE_SEL_KDATA | 2, false, X86_EXC_GP },
	{ FAKE_SEL_KDATA | 3, false, X86_EXC_GP },
	{ FAKE_SEL_UDATA | 3, false, X86_EXC_GP },
	{ FAKE_SEL_UDATA, false, X86_EXC_GP },
	{ FAKE_SEL_KCODE, false, X86_EXC_GP },
	{ 0x78, false, X86_EXC_GP },
	{ 0x48, false, X86_EXC_SS },
};

START_TEST(test_emulate_mov_ss)
{
	uint16_t sel = mov_ss_cases[_i].sel;
	int st;

	fake_vm_set_desc(vm, 9, FAKE_DESC_KDATA & ~X86_DESC_P);
	vm->regs.rax = sel;
	st = gp(I(0x8e, 0xd0)); /* mov %eax,%ss */
	if (!mov_ss_cases[_i].ok) {
		assert_raised(st, mov_ss_cases[_i].vector, sel & ~3u);
		ck_assert_uint_eq(vm->sregs.ss.selector, FAKE_SEL_KDATA | 1);
		return;
	}
	assert_done(st, 2);
	ck_assert_uint_eq(vm->sregs.ss.selector, (sel & ~3u) | 1);
	ck_assert_uint_eq(vm->sregs.ss.unusable, sel == 0);
}
END_TEST

START_TEST(test_emulate_mov_ss_from_memory)
{
	uint16_t sel = FAKE_SEL_KDATA;

	memcpy(fake_vm_ptr(vm, 0x9000, 2), &sel, 2);
	vm->sregs.ss = (struct kvm_segment){ .selector = 1, .unusable = 1 };
	vm->regs.rbx = 0x9000;
	assert_done(gp(I(0x8e, 0x13)), 2); /* mov (%rbx),%ss */
	ck_assert_uint_eq(vm->sregs.ss.selector, FAKE_SEL_KDATA | 1);
}
END_TEST

/* ---- what is not emulated ---- */

START_TEST(test_emulate_int_n_from_user_is_delivered)
{
	fake_vm_set_gate(vm, 0x80, FAKE_HANDLER(0x80), FAKE_SEL_KCODE, X86_GATE_TYPE_TRAP, 3, 0,
			 true);
	fake_vm_enter_user(vm);
	/* int $0x80 through the monitor's DPL0 gate: #GP(0x80 * 8 + 2). */
	ck_assert_int_eq(emulate(X86_EXC_GP, 0x80 * 8 + 2, I(0xcd, 0x80)), VM_CONTINUE);
	ck_assert_uint_eq(vm->regs.rip, FAKE_HANDLER(0x80));
	ck_assert_uint_eq(fake_vm_read64(vm, vm->regs.rsp), FAKE_UCODE + 2);
}
END_TEST

START_TEST(test_emulate_int3_from_user_is_delivered)
{
	fake_vm_set_gate(vm, X86_EXC_BP, FAKE_HANDLER(3), FAKE_SEL_KCODE, X86_GATE_TYPE_TRAP, 3, 0,
			 true);
	fake_vm_enter_user(vm);
	ck_assert_int_eq(emulate(X86_EXC_GP, X86_EXC_BP * 8 + 2, I(0xcc)), VM_CONTINUE);
	ck_assert_uint_eq(vm->regs.rip, FAKE_HANDLER(X86_EXC_BP));
	ck_assert_uint_eq(fake_vm_read64(vm, vm->regs.rsp), FAKE_UCODE + 1);
}
END_TEST

/* Privileged instructions at CPL3 raise #GP(0) (each one's SDM page; cli
 * because CPL > IOPL): the guest's own fault, never emulated. */
static const struct insn_bytes user_privileged[] = {
	I(0x0f, 0x22, 0xc0),
	I(0x0f, 0x20, 0xc0),
	I(0x0f, 0x22, 0xdb),
	I(0x0f, 0x01, 0x38),
	I(0x0f, 0x01, 0x10),
	I(0x0f, 0x01, 0x18),
	I(0x0f, 0x00, 0xd8),
	I(0x0f, 0x30),
	I(0x0f, 0x32),
	I(0xf4),
	I(0x0f, 0x01, 0xf8),
	I(0x48, 0x0f, 0x07),
	I(0x0f, 0x06),
	I(0x0f, 0x09),
	I(0xfa),
};

START_TEST(test_emulate_privileged_at_cpl3_is_gp)
{
	struct vcpu_virt before;

	fake_vm_enter_user(vm);
	vm->virt.efer |= X86_EFER_SCE; /* else sysret is #UD */
	vm->regs.rcx = X86_MSR_EFER;
	before = vm->virt;
	assert_raised(gp(user_privileged[_i]), X86_EXC_GP, 0);
	ck_assert_mem_eq(&vm->virt, &before, sizeof(before));
}
END_TEST

START_TEST(test_emulate_user_iretq_fault_is_the_guests)
{
	/* From CPL3 the hardware's own #GP(selector) is the right answer: an
	 * iretq to RPL 0 (SDM 2A IRET: return CS RPL < CPL) passes through. */
	const uint64_t f[5] = { FAKE_KCODE, FAKE_SEL_KCODE, 2, 0x1c000, FAKE_SEL_KDATA };

	fake_vm_enter_user(vm);
	memcpy(fake_vm_ptr(vm, vm->regs.rsp, sizeof(f)), f, sizeof(f));
	assert_raised(emulate(X86_EXC_GP, FAKE_SEL_KCODE, I(0x48, 0xcf)), X86_EXC_GP,
		      FAKE_SEL_KCODE);
	ck_assert_uint_eq(fake_vm_read64(vm, vm->regs.rsp + 16), FAKE_SEL_UCODE | 3);
}
END_TEST

START_TEST(test_emulate_plain_gp_is_reflected_with_its_error_code)
{
	/* mov 0x10(%rbx,%rcx,8),%rax on a non-canonical address: the guest's. */
	vm->regs.rbx = 0x0000800000000000ull;
	assert_raised(emulate(X86_EXC_GP, 0, I(0x48, 0x8b, 0x44, 0xcb, 0x10)), X86_EXC_GP, 0);
	/* #GP(selector) from a native far jump keeps its error code. */
	vm->regs.rip = FAKE_KCODE, vm->regs.rsp = FAKE_KRSP, vm->tstats.reflected = 0;
	assert_raised(emulate(X86_EXC_GP, 0x78, I(0xff, 0x2b)), X86_EXC_GP, 0x78);
}
END_TEST

static const struct insn_bytes unsupported[] = {
	I(0x0f, 0x01, 0xd1), /* xsetbv */
	I(0x0f, 0x23, 0xf8), /* mov %rax,%db7 */
	I(0x0f, 0x21, 0xf8), /* mov %db7,%rax */
	I(0x66, 0xcf),       /* iretw (16-bit) */
	I(0x0f, 0x07),       /* sysretl: to compatibility mode */
};

START_TEST(test_emulate_unsupported_ends_the_run)
{
	vm->virt.efer |= X86_EFER_SCE;
	ck_assert_int_eq(gp(unsupported[_i]), VMM_E_CRASH);
}
END_TEST

/* ---- fetching the instruction ---- */

START_TEST(test_emulate_fetch_fault_is_pf)
{
	fake_vm_set_pte(vm, FAKE_KCODE, 0);
	rip0 = vm->regs.rip;
	/* SDM 3A §4.7: not present, supervisor, instruction fetch. */
	assert_raised(emulate_fault(vm, X86_EXC_GP, 0), X86_EXC_PF, X86_PF_I);
	ck_assert_uint_eq(vm->virt.cr2, FAKE_KCODE);
}
END_TEST

START_TEST(test_emulate_instruction_across_a_missing_page_is_pf)
{
	/* mov %rax,%cr0 with its ModRM byte on the next, unmapped page. */
	fake_vm_set_pte(vm, FAKE_KCODE, 0);
	vm->regs.rip = FAKE_KCODE - 2;
	assert_raised(gp(I(0x0f, 0x22)), X86_EXC_PF, X86_PF_I);
	ck_assert_uint_eq(vm->virt.cr2, FAKE_KCODE);
}
END_TEST

START_TEST(test_emulate_user_fetch_fault_has_u)
{
	fake_vm_enter_user(vm);
	fake_vm_set_pte(vm, FAKE_UCODE, X86_PTE_P | X86_PTE_A); /* supervisor page */
	rip0 = vm->regs.rip;
	assert_raised(emulate_fault(vm, X86_EXC_GP, 0), X86_EXC_PF, X86_PF_P | X86_PF_U | X86_PF_I);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

Suite *emulate_suite(void)
{
	Suite *s = suite_create("emulate");
	TCase *tc = tcase_create("control");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_emulate_mov_to_cr0_cr4_checks_reserved_and_invalid_bits, 0,
			    N(cr_cases));
	tcase_add_test(tc, test_emulate_mov_to_cr0_keeps_et_set);
	tcase_add_test(tc, test_emulate_mov_to_cr3_switches_the_shadow);
	tcase_add_test(tc, test_emulate_mov_to_cr3_above_maxphyaddr_is_gp);
	tcase_add_test(tc, test_emulate_mov_from_cr_reads_the_virtual_value);
	tcase_add_test(tc, test_emulate_cr8_reads_zero);
	tcase_add_test(tc, test_emulate_clts_clears_ts);
	tcase_add_test(tc, test_emulate_invlpg_drops_the_translation);
	tcase_add_test(tc, test_emulate_stac_clac_at_cpl0_with_smap);
	tcase_add_loop_test(tc, test_emulate_ud_is_reflected, 0, N(ud_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("tables");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_emulate_lgdt_loads_and_translates_the_guest_gdt);
	tcase_add_test(tc, test_emulate_lgdt_lidt_non_canonical_base_is_gp);
	tcase_add_test(tc, test_emulate_legacy_32bit_code);
	tcase_add_test(tc, test_emulate_lgdt_into_the_monitor_slots_ends_the_run);
	tcase_add_test(tc, test_emulate_lgdt_operand_not_mapped_is_pf);
	tcase_add_test(tc, test_emulate_lidt_loads_the_virtual_idt);
	tcase_add_test(tc, test_emulate_sgdt_sidt_store_the_virtual_tables);
	tcase_add_test(tc, test_emulate_str_sldt_smsw_store_virtual_values);
	tcase_add_test(tc, test_emulate_sgdt_at_cpl3_follows_the_guest_umip);
	tcase_add_loop_test(tc, test_emulate_ltr_faults, 0, N(ltr_faults));
	tcase_add_test(tc, test_emulate_ltr_loads_and_marks_busy);
	tcase_add_test(tc, test_emulate_lldt_null_only);
	suite_add_tcase(s, tc);

	tc = tcase_create("msr");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_emulate_wrmsr_rdmsr, 0, N(msr_cases));
	tcase_add_test(tc, test_emulate_unknown_msr_is_gp);
	tcase_add_test(tc, test_emulate_efer_reaches_the_real_efer_and_the_shadow);
	tcase_add_test(tc, test_emulate_swapgs_exchanges_gs_base);
	tcase_add_test(tc, test_emulate_hlt_ends_the_run);
	tcase_add_test(tc, test_emulate_wbinvd_is_a_no_op);
	suite_add_tcase(s, tc);

	tc = tcase_create("returns");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_emulate_sysret_to_user);
	tcase_add_test(tc, test_emulate_sysret_to_non_canonical_rcx_is_gp);
	tcase_add_test(tc, test_emulate_iretq_to_rpl0);
	tcase_add_test(tc, test_emulate_iretq_with_null_ss_to_rpl0);
	tcase_add_test(tc, test_emulate_iretq_to_user);
	tcase_add_loop_test(tc, test_emulate_iretq_faults, 0, N(iret_faults));
	tcase_add_test(tc, test_emulate_lretq_to_rpl0);
	tcase_add_test(tc, test_emulate_lretq_imm_releases_parameters);
	tcase_add_test(tc, test_emulate_lret_32bit_operands);
	tcase_add_test(tc, test_emulate_lretq_to_user_pops_the_stack);
	tcase_add_test(tc, test_emulate_lretq_to_data_segment_is_gp);
	tcase_add_test(tc, test_emulate_lretq_to_not_present_code_is_np);
	tcase_add_loop_test(tc, test_emulate_mov_ss, 0, N(mov_ss_cases));
	tcase_add_test(tc, test_emulate_mov_ss_from_memory);
	suite_add_tcase(s, tc);

	tc = tcase_create("passthrough");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_emulate_int_n_from_user_is_delivered);
	tcase_add_test(tc, test_emulate_int3_from_user_is_delivered);
	tcase_add_loop_test(tc, test_emulate_privileged_at_cpl3_is_gp, 0, N(user_privileged));
	tcase_add_test(tc, test_emulate_user_iretq_fault_is_the_guests);
	tcase_add_test(tc, test_emulate_plain_gp_is_reflected_with_its_error_code);
	tcase_add_loop_test(tc, test_emulate_unsupported_ends_the_run, 0, N(unsupported));
	tcase_add_test(tc, test_emulate_fetch_fault_is_pf);
	tcase_add_test(tc, test_emulate_instruction_across_a_missing_page_is_pf);
	tcase_add_test(tc, test_emulate_user_fetch_fault_has_u);
	suite_add_tcase(s, tc);
	return s;
}
