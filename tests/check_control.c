/* vmm/cpu/control.c on a fake struct vm (tests/fake_vm.h): the guest's MOV to
 * CR0/CR3/CR4 with the SDM's checks (vol. 2A, MOV to control registers), and
 * what the virtual registers make of the real vCPU and of the shadow MMU's
 * CPU state. */
#include <check.h>

#include "control.h"
#include "fake_vm.h"
#include "shadow.h"
#include "suites.h"
#include "vm.h"
#include "x86.h"

static struct vm *vm;

static void setup(void)
{
	vm = fake_vm_open();
}

static void teardown(void)
{
	fake_vm_close(vm);
}

#define CR0_OK (X86_CR0_PE | X86_CR0_PG | X86_CR0_ET | X86_CR0_NE | X86_CR0_WP)

struct cr0_case {
	uint64_t v;
	bool ok;
};

/* SDM 2A MOV CR: #GP(0) for bits 63:32, PG without PE, NW without CD; in
 * IA-32e mode clearing PG (or PE) is #GP too (SDM 3A §9.8.5.4). */
static const struct cr0_case cr0s[] = {
	{ CR0_OK, true },
	{ CR0_OK & ~X86_CR0_WP, true },
	{ CR0_OK | X86_CR0_CD | X86_CR0_NW, true },
	{ CR0_OK | X86_CR0_NW, false },
	{ CR0_OK | X86_BIT(32), false },
	{ CR0_OK & ~X86_CR0_PG, false },
	{ CR0_OK & ~X86_CR0_PE, false },
};

START_TEST(test_control_cr0_checks)
{
	const struct cr0_case *c = &cr0s[_i];
	uint64_t before = vm->virt.cr0;

	ck_assert_int_eq(control_write_cr0(vm, c->v & ~X86_CR0_ET), c->ok);
	/* ET is hardwired to 1 (SDM 3A §2.5) */
	ck_assert_uint_eq(vm->virt.cr0, c->ok ? c->v : before);
}
END_TEST

START_TEST(test_control_cr4_checks)
{
	uint64_t boot = vm->virt.cr4;
	struct shadow_stats st;
	uint64_t flushes;

	ck_assert(!control_write_cr4(vm, boot & ~X86_CR4_PAE));  /* IA-32e needs PAE */
	ck_assert(!control_write_cr4(vm, boot | X86_CR4_LA57));  /* not while paging */
	ck_assert(!control_write_cr4(vm, boot | X86_BIT(31)));   /* reserved */
	ck_assert(!control_write_cr4(vm, boot | X86_CR4_PCIDE)); /* not offered here */
	ck_assert_uint_eq(vm->virt.cr4, boot);
	shadow_get_stats(vm->shadow, &st);
	flushes = st.flushes;
	/* SDM 3A §4.10.4.1: a change of PGE invalidates every translation */
	ck_assert(control_write_cr4(vm, boot | X86_CR4_PGE));
	shadow_get_stats(vm->shadow, &st);
	ck_assert_uint_eq(st.flushes, flushes + 1);
	ck_assert_uint_eq(vm->virt.cr4, boot | X86_CR4_PGE);
}
END_TEST

START_TEST(test_control_cr3_beyond_maxphyaddr_is_refused)
{
	uint64_t before = vm->virt.cr3;

	ck_assert(!control_write_cr3(vm, 1ull << vm->maxphyaddr));
	ck_assert_uint_eq(vm->virt.cr3, before);
	ck_assert(control_write_cr3(vm, FAKE_PML4_GPA | X86_BIT(3) /* PWT */));
	ck_assert_uint_eq(vm->virt.cr3, FAKE_PML4_GPA | X86_BIT(3));
	ck_assert_uint_eq(shadow_vcr3(vm->shadow), FAKE_PML4_GPA);
}
END_TEST

/* The real CPU keeps PE, PG, WP, NE and ET whatever the guest writes (its WP
 * is emulated in the shadow, DESIGN.md §3), never PGE (so a MOV to CR3
 * flushes every shadow translation), always EFER.LME/LMA/NXE; the guest's
 * own MP/EM/TS/AM, SMEP/SMAP/FSGSBASE/OSXSAVE and SCE pass through. */
START_TEST(test_control_sync_builds_the_real_registers)
{
	const struct shadow_cpu *c;

	ck_assert(control_write_cr0(vm, (CR0_OK & ~X86_CR0_WP) | X86_CR0_TS | X86_CR0_AM));
	vm->cr4_allowed |= X86_CR4_SMEP | X86_CR4_PGE;
	ck_assert(control_write_cr4(vm, vm->virt.cr4 | X86_CR4_SMEP | X86_CR4_PGE));
	vm->virt.efer = X86_EFER_LME | X86_EFER_LMA | X86_EFER_SCE; /* NXE off */
	vm->virt.cr2 = 0xdead000;
	vm->umip = true;
	control_sync(vm);
	ck_assert_uint_eq(vm->sregs.cr0, CR0_OK | X86_CR0_TS | X86_CR0_AM);
	ck_assert_uint_eq(vm->sregs.cr4, X86_CR4_PAE | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT |
						 X86_CR4_UMIP | X86_CR4_SMEP);
	ck_assert_uint_eq(vm->sregs.efer,
			  X86_EFER_LME | X86_EFER_LMA | X86_EFER_NXE | X86_EFER_SCE);
	ck_assert_uint_eq(vm->sregs.cr3, shadow_root(vm->shadow));
	ck_assert_uint_eq(vm->sregs.cr2, 0xdead000);
	c = shadow_cpu_state(vm->shadow);
	ck_assert(!c->cr0_wp && c->cr4_smep && !c->cr4_smap && !c->efer_nxe);
}
END_TEST

START_TEST(test_control_refresh_ac_reaches_the_shadow)
{
	vm->regs.rflags |= X86_RFLAGS_AC;
	control_refresh_ac(vm);
	ck_assert(shadow_cpu_state(vm->shadow)->rflags_ac);
	vm->regs.rflags &= ~X86_RFLAGS_AC;
	control_refresh_ac(vm);
	ck_assert(!shadow_cpu_state(vm->shadow)->rflags_ac);
}
END_TEST

/* The guest paging modes by CR0, CR4 and EFER (SDM 3A §4.1, §9.8.5; SDM
 * 2A MOV CR0/CR4, WRMSR): a walk from IA-32e mode down to paging off,
 * 32-bit and PAE paging and back, every illegal step refused with nothing
 * changed, and the shadow MMU's mode following each legal one. */
#define ZERO_PDPT 0x3f0000ull /* a zeroed page: four not-present PDPTEs */

static void in_compat_mode(void)
{
	vm->sregs.cs.l = 0;
	vm->sregs.cs.db = 1;
}

static void expect_mode(enum shadow_paging p, bool lma)
{
	ck_assert_int_eq(shadow_paging_mode(vm->shadow), p);
	ck_assert_int_eq(!!(vm->virt.efer & X86_EFER_LMA), lma);
	ck_assert_int_eq(control_legacy(vm), !lma);
}

START_TEST(test_control_paging_mode_switches)
{
	uint64_t cr0 = vm->virt.cr0, pg = X86_CR0_PG;

	expect_mode(SHADOW_PAGING_LONG4, true);
	/* leaving IA-32e mode: not from 64-bit code (SDM 2A MOV CR0) */
	ck_assert(!control_write_cr0(vm, cr0 & ~pg));
	in_compat_mode();
	ck_assert(control_write_cr0(vm, cr0 & ~pg));
	expect_mode(SHADOW_PAGING_OFF, false);
	/* LME may change only with paging off; LMA is never written */
	ck_assert(control_write_efer(vm, vm->virt.efer & ~X86_EFER_LME));
	ck_assert(!control_write_efer(vm, vm->virt.efer | X86_EFER_LMA) ||
		  !(vm->virt.efer & X86_EFER_LMA));
	/* 32-bit paging: CR4.PAE clear, then CR0.PG */
	ck_assert(control_write_cr4(vm, vm->virt.cr4 & ~X86_CR4_PAE));
	ck_assert(control_write_cr3(vm, ZERO_PDPT));
	ck_assert(control_write_cr0(vm, cr0));
	expect_mode(SHADOW_PAGING_32, false);
	ck_assert(!control_write_efer(vm, vm->virt.efer | X86_EFER_LME));
	/* PAE with paging on: the PDPTEs load from CR3; the PML4 page's
	 * entries have R/W and U/S, reserved in a PDPTE: #GP, still 32-bit */
	ck_assert(control_write_cr3(vm, FAKE_PML4_GPA));
	ck_assert(!control_write_cr4(vm, vm->virt.cr4 | X86_CR4_PAE));
	expect_mode(SHADOW_PAGING_32, false);
	ck_assert(!(vm->virt.cr4 & X86_CR4_PAE));
	ck_assert(control_write_cr3(vm, ZERO_PDPT));
	ck_assert(control_write_cr4(vm, vm->virt.cr4 | X86_CR4_PAE));
	expect_mode(SHADOW_PAGING_PAE, false);
	/* ... and a CR3 load in PAE reloads them: #GP, CR3 kept */
	ck_assert(!control_write_cr3(vm, FAKE_PML4_GPA));
	ck_assert_uint_eq(vm->virt.cr3, ZERO_PDPT);
	/* back to IA-32e mode: paging off, LME, CR3, PG; PG with LME but
	 * without PAE is #GP (SDM 3A §9.8.5) */
	ck_assert(control_write_cr0(vm, cr0 & ~pg));
	ck_assert(control_write_efer(vm, vm->virt.efer | X86_EFER_LME));
	ck_assert(control_write_cr4(vm, vm->virt.cr4 & ~X86_CR4_PAE));
	ck_assert(!control_write_cr0(vm, cr0));
	expect_mode(SHADOW_PAGING_OFF, false);
	ck_assert(control_write_cr4(vm, vm->virt.cr4 | X86_CR4_PAE));
	ck_assert(control_write_cr3(vm, FAKE_PML4_GPA));
	ck_assert(control_write_cr0(vm, cr0));
	expect_mode(SHADOW_PAGING_LONG4, true);
	/* PAE may not be cleared in IA-32e mode; PG without PE is #GP */
	ck_assert(!control_write_cr4(vm, vm->virt.cr4 & ~X86_CR4_PAE));
	ck_assert(!control_write_cr0(vm, (cr0 & ~X86_CR0_PE) | pg));
	/* CR4 bits not offered: LA57, PKE, PCIDE */
	ck_assert(!control_write_cr4(vm, vm->virt.cr4 | X86_CR4_LA57));
	ck_assert(!control_write_cr4(vm, vm->virt.cr4 | X86_CR4_PKE));
	ck_assert(!control_write_cr4(vm, vm->virt.cr4 | X86_CR4_PCIDE));
	expect_mode(SHADOW_PAGING_LONG4, true);
}
END_TEST

Suite *control_suite(void)
{
	Suite *s = suite_create("control");
	TCase *tc = tcase_create("control");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_control_cr0_checks, 0, (int)(sizeof(cr0s) / sizeof(cr0s[0])));
	tcase_add_test(tc, test_control_cr4_checks);
	tcase_add_test(tc, test_control_cr3_beyond_maxphyaddr_is_refused);
	tcase_add_test(tc, test_control_sync_builds_the_real_registers);
	tcase_add_test(tc, test_control_refresh_ac_reaches_the_shadow);
	tcase_add_test(tc, test_control_paging_mode_switches);
	suite_add_tcase(s, tc);
	return s;
}
