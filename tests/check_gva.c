/* vmm/cpu/gva.c on a fake struct vm (tests/fake_vm.h), no KVM: the VMM's own
 * accesses to guest-virtual memory obey the guest's tables as the hardware
 * would (SDM 3A §4.6 rights, §4.7 error codes, §4.8 A/D), and a guest that
 * points them outside its RAM or into the reserved slot ends the run. */
#include <check.h>
#include <stdbool.h>
#include <string.h>

#include "fake_vm.h"
#include "gva.h"
#include "shadow.h"
#include "shadowvm_abi.h"
#include "status.h"
#include "suites.h"
#include "vm.h"
#include "x86.h"

static struct vm *vm;
static struct x86_event ev;
static int status;

static void setup(void)
{
	vm = fake_vm_open();
	memset(&ev, 0, sizeof(ev));
	status = -1;
}

static void teardown(void)
{
	fake_vm_close(vm);
}

#define PAGE 0x60000ull /* a user page, writable */

START_TEST(test_gva_read_write_across_a_page_boundary)
{
	const char msg[] = "0123456789abcdef";
	char buf[sizeof(msg)] = "";

	ck_assert_int_eq(gva_write(vm, PAGE + 0x1000 - 5, msg, sizeof(msg), 0, &ev, &status),
			 GVA_OK);
	ck_assert_mem_eq(fake_vm_ptr(vm, PAGE + 0x1000 - 5, sizeof(msg)), msg, sizeof(msg));
	ck_assert_int_eq(
		gva_read(vm, PAGE + 0x1000 - 5, buf, sizeof(buf), SHADOW_ACC_USER, &ev, &status),
		GVA_OK);
	ck_assert_mem_eq(buf, msg, sizeof(msg));
}
END_TEST

/* SDM 3A §4.6, §4.7: the access, the page's rights and the #PF error code. */
static const struct {
	uint64_t pte;
	bool write;
	bool user;
	bool ok;
	uint32_t pferr;
} rights[] = {
	{ X86_PTE_P | X86_PTE_W | X86_PTE_U, true, true, true, 0 },
	{ X86_PTE_P | X86_PTE_U, false, true, true, 0 },
	{ X86_PTE_P | X86_PTE_U, true, true, false, X86_PF_P | X86_PF_W | X86_PF_U },
	/* CR0.WP = 1: a supervisor write to a read-only page faults too. */
	{ X86_PTE_P | X86_PTE_U, true, false, false, X86_PF_P | X86_PF_W },
	{ X86_PTE_P | X86_PTE_W, false, true, false, X86_PF_P | X86_PF_U },
	{ X86_PTE_P | X86_PTE_W, true, false, true, 0 },
	{ 0, false, false, false, 0 },
	{ 0, true, true, false, X86_PF_W | X86_PF_U },
	/* A reserved bit (51, above MAXPHYADDR 40): RSVD with P. */
	{ X86_PTE_P | X86_PTE_W | X86_PTE_U | X86_BIT(51), false, false, false,
	  X86_PF_P | X86_PF_RSVD },
};

START_TEST(test_gva_obeys_the_guest_rights)
{
	unsigned acc = rights[_i].user ? SHADOW_ACC_USER : 0;
	uint64_t v = 0x1122334455667788ull;
	enum gva_status st;

	fake_vm_set_pte(vm, PAGE, rights[_i].pte);
	st = rights[_i].write ? gva_write(vm, PAGE + 8, &v, 8, acc, &ev, &status)
			      : gva_read(vm, PAGE + 8, &v, 8, acc, &ev, &status);
	if (rights[_i].ok) {
		ck_assert_int_eq(st, GVA_OK);
		return;
	}
	ck_assert_int_eq(st, GVA_FAULT);
	ck_assert_uint_eq(ev.vector, X86_EXC_PF);
	ck_assert(ev.has_err);
	ck_assert_uint_eq(ev.err, rights[_i].pferr);
	ck_assert_uint_eq(ev.cr2, PAGE + 8);
	ck_assert_uint_eq(fake_vm_read64(vm, PAGE + 8), 0); /* nothing written */
}
END_TEST

START_TEST(test_gva_sets_accessed_and_dirty)
{
	uint64_t v = 1, pte;

	/* SDM 3A §4.8: A on any access, D on a write, in the guest's PTE. */
	fake_vm_set_pte(vm, PAGE, X86_PTE_P | X86_PTE_W | X86_PTE_U);
	ck_assert_int_eq(gva_read(vm, PAGE, &v, 8, 0, &ev, &status), GVA_OK);
	pte = fake_vm_read64(vm, FAKE_PT_GPA + X86_LEVEL_INDEX(PAGE, 1) * 8);
	ck_assert_uint_eq(pte & (X86_PTE_A | X86_PTE_D), X86_PTE_A);
	ck_assert_int_eq(gva_write(vm, PAGE, &v, 8, 0, &ev, &status), GVA_OK);
	pte = fake_vm_read64(vm, FAKE_PT_GPA + X86_LEVEL_INDEX(PAGE, 1) * 8);
	ck_assert_uint_eq(pte & (X86_PTE_A | X86_PTE_D), X86_PTE_A | X86_PTE_D);
}
END_TEST

START_TEST(test_gva_non_canonical_is_gp)
{
	uint64_t v;

	/* SDM 3A §3.3.7.1: a non-canonical reference is #GP(0). */
	ck_assert_int_eq(gva_read(vm, 0x0000800000000000ull, &v, 8, 0, &ev, &status), GVA_FAULT);
	ck_assert_uint_eq(ev.vector, X86_EXC_GP);
	ck_assert(ev.has_err);
	ck_assert_uint_eq(ev.err, 0);
}
END_TEST

START_TEST(test_gva_page_outside_ram_ends_the_run)
{
	uint64_t v;

	fake_vm_set_pte(vm, PAGE, 0);
	*(uint64_t *)fake_vm_ptr(vm, FAKE_PT_GPA + X86_LEVEL_INDEX(PAGE, 1) * 8, 8) =
		FAKE_RAM_SIZE | X86_PTE_P | X86_PTE_W | X86_PTE_U;
	ck_assert_int_eq(gva_read(vm, PAGE, &v, 8, 0, &ev, &status), GVA_FATAL);
	ck_assert_int_eq(status, VMM_E_CONTRACT);
}
END_TEST

START_TEST(test_gva_reserved_slot_ends_the_run)
{
	uint64_t v;

	ck_assert_int_eq(gva_read(vm, SHADOWVM_ABI_RESERVED_VA_BASE, &v, 8, 0, &ev, &status),
			 GVA_FATAL);
	ck_assert_int_eq(status, VMM_E_CONTRACT);
}
END_TEST

Suite *gva_suite(void)
{
	Suite *s = suite_create("gva");
	TCase *tc = tcase_create("gva");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_gva_read_write_across_a_page_boundary);
	tcase_add_loop_test(tc, test_gva_obeys_the_guest_rights, 0,
			    (int)(sizeof(rights) / sizeof(rights[0])));
	tcase_add_test(tc, test_gva_sets_accessed_and_dirty);
	tcase_add_test(tc, test_gva_non_canonical_is_gp);
	tcase_add_test(tc, test_gva_page_outside_ram_ends_the_run);
	tcase_add_test(tc, test_gva_reserved_slot_ends_the_run);
	suite_add_tcase(s, tc);
	return s;
}
