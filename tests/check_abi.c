/* The guest ABI's layout: what both sides compile against must agree with
 * the documented offsets, and the VMM's structures must fit below the load
 * minimum. */
#include <check.h>
#include <stddef.h>

#include "shadowvm_abi.h"
#include "suites.h"
#include "x86.h"

_Static_assert(offsetof(struct svm_boot_info, magic) == 0, "magic at 0");
_Static_assert(offsetof(struct svm_boot_info, abi_version) == 4, "abi_version at 4");
_Static_assert(offsetof(struct svm_boot_info, ram_size) == 8, "ram_size at 8");
_Static_assert(offsetof(struct svm_boot_info, cmdline) == 16, "cmdline at 16");
_Static_assert(offsetof(struct svm_boot_info, cmdline_len) == 24, "cmdline_len at 24");
_Static_assert(offsetof(struct svm_boot_info, free_start) == 32, "free_start at 32");
_Static_assert(offsetof(struct svm_boot_info, reserved_va) == 40, "reserved_va at 40");
_Static_assert(SVM_ABI_STACK_TOP <= SVM_ABI_LOAD_MIN, "boot stack below the load minimum");

START_TEST(test_abi_layout_is_page_aligned_and_disjoint)
{
	const unsigned long pages[] = { SVM_ABI_BOOTINFO_GPA, SVM_ABI_GDT_GPA, SVM_ABI_PML4_GPA,
					SVM_ABI_PDPT_GPA, SVM_ABI_PD_GPA };

	for (unsigned i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		ck_assert_uint_eq(pages[i] % X86_PAGE_SIZE, 0);
		ck_assert_uint_ne(pages[i], 0); /* page 0 stays free: null pointers fault early */
		for (unsigned j = 0; j < i; j++)
			ck_assert_uint_ne(pages[i], pages[j]);
	}
}
END_TEST

START_TEST(test_abi_reserved_slot_is_canonical_and_high)
{
	ck_assert(x86_is_canonical48(SVM_ABI_RESERVED_VA_BASE));
	ck_assert(x86_is_canonical48(SVM_ABI_RESERVED_VA_BASE + SVM_ABI_RESERVED_VA_SIZE - 1));
	ck_assert_uint_eq(X86_LEVEL_INDEX(SVM_ABI_RESERVED_VA_BASE, 4), SVM_ABI_RESERVED_PML4_INDEX);
	ck_assert_uint_ne(X86_LEVEL_INDEX(SVM_ABI_LOAD_MIN, 4), SVM_ABI_RESERVED_PML4_INDEX);
}
END_TEST

Suite *abi_suite(void)
{
	Suite *s = suite_create("abi");
	TCase *tc = tcase_create("layout");

	tcase_add_test(tc, test_abi_layout_is_page_aligned_and_disjoint);
	tcase_add_test(tc, test_abi_reserved_slot_is_canonical_and_high);
	suite_add_tcase(s, tc);
	return s;
}
