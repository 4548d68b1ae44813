/* The guest ABI's layout: what both sides compile against must agree with
 * the documented offsets, and the VMM's structures must fit below the load
 * minimum.  Constants are checked where they are compiled; only the
 * canonical-address rule, a function, runs. */
#include <check.h>
#include <stddef.h>

#include "multiboot.h"
#include "shadowvm_abi.h"
#include "suites.h"
#include "x86.h"

_Static_assert(offsetof(struct shadowvm_boot_info, magic) == 0, "magic at 0");
_Static_assert(offsetof(struct shadowvm_boot_info, abi_version) == 4, "abi_version at 4");
_Static_assert(offsetof(struct shadowvm_boot_info, ram_size) == 8, "ram_size at 8");
_Static_assert(offsetof(struct shadowvm_boot_info, cmdline) == 16, "cmdline at 16");
_Static_assert(offsetof(struct shadowvm_boot_info, cmdline_len) == 24, "cmdline_len at 24");
_Static_assert(offsetof(struct shadowvm_boot_info, free_start) == 32, "free_start at 32");
_Static_assert(offsetof(struct shadowvm_boot_info, reserved_va) == 40, "reserved_va at 40");
_Static_assert(SHADOWVM_ABI_STACK_TOP <= SHADOWVM_ABI_LOAD_MIN,
	       "boot stack below the load minimum");

/* Multiboot spec §3.3: the info block's offsets, as a kernel reads them. */
_Static_assert(offsetof(struct multiboot_info, mem_lower) == 4, "mem_lower at 4");
_Static_assert(offsetof(struct multiboot_info, cmdline) == 16, "cmdline at 16");
_Static_assert(offsetof(struct multiboot_info, mods_count) == 20, "mods_count at 20");
_Static_assert(offsetof(struct multiboot_info, mods_addr) == 24, "mods_addr at 24");
_Static_assert(offsetof(struct multiboot_info, mmap_length) == 44, "mmap_length at 44");
_Static_assert(offsetof(struct multiboot_info, mmap_addr) == 48, "mmap_addr at 48");
_Static_assert(offsetof(struct multiboot_info, boot_loader_name) == 64, "loader name at 64");
_Static_assert(offsetof(struct multiboot_info, vbe_mode) == 80, "vbe_mode at 80");
_Static_assert(offsetof(struct multiboot_mmap_entry, base_addr) == 4, "mmap base_addr at 4");
_Static_assert(offsetof(struct multiboot_mmap_entry, type) == 20, "mmap type at 20");
_Static_assert(MULTIBOOT_SEL_CODE32 % 8 == 0 && MULTIBOOT_SEL_DATA32 % 8 == 0 &&
		       MULTIBOOT_SEL_CODE32 != MULTIBOOT_SEL_DATA32,
	       "Multiboot selectors: GDT slots, RPL 0, distinct");

/* The boot pages: page-aligned, never page 0 (null pointers fault early), and
 * in ascending order, so no two share a page. */
#define ABI_PAGE(gpa) ((gpa) % X86_PAGE_SIZE == 0 && (gpa) != 0)
_Static_assert(ABI_PAGE(SHADOWVM_ABI_BOOTINFO_GPA) && ABI_PAGE(SHADOWVM_ABI_GDT_GPA) &&
		       ABI_PAGE(SHADOWVM_ABI_PML4_GPA) && ABI_PAGE(SHADOWVM_ABI_PDPT_GPA) &&
		       ABI_PAGE(SHADOWVM_ABI_PD_GPA),
	       "boot pages page-aligned, not page 0");
_Static_assert(SHADOWVM_ABI_BOOTINFO_GPA < SHADOWVM_ABI_GDT_GPA &&
		       SHADOWVM_ABI_GDT_GPA < SHADOWVM_ABI_PML4_GPA &&
		       SHADOWVM_ABI_PML4_GPA < SHADOWVM_ABI_PDPT_GPA &&
		       SHADOWVM_ABI_PDPT_GPA < SHADOWVM_ABI_PD_GPA,
	       "boot pages ascending, so disjoint");
_Static_assert(SHADOWVM_ABI_CMDLINE_GPA >=
			       SHADOWVM_ABI_BOOTINFO_GPA + sizeof(struct shadowvm_boot_info) &&
		       SHADOWVM_ABI_CMDLINE_GPA + SHADOWVM_ABI_CMDLINE_MAX <=
			       SHADOWVM_ABI_BOOTINFO_GPA + X86_PAGE_SIZE,
	       "command line inside the boot-info page, after the structure");

/* The reserved slot is the one PML4 entry of its VA range, and no loaded
 * image can reach it. */
_Static_assert(X86_LEVEL_INDEX(SHADOWVM_ABI_RESERVED_VA_BASE, 4) ==
		       SHADOWVM_ABI_RESERVED_PML4_INDEX,
	       "reserved VA base in the reserved PML4 slot");
_Static_assert(SHADOWVM_ABI_RESERVED_VA_SIZE == X86_LEVEL_SIZE(4),
	       "reserved VA range is one PML4 slot");
_Static_assert(X86_LEVEL_INDEX(SHADOWVM_ABI_LOAD_MIN, 4) != SHADOWVM_ABI_RESERVED_PML4_INDEX,
	       "load minimum outside the reserved slot");

START_TEST(test_abi_reserved_slot_is_canonical)
{
	ck_assert(x86_is_canonical48(SHADOWVM_ABI_RESERVED_VA_BASE));
	ck_assert(x86_is_canonical48(SHADOWVM_ABI_RESERVED_VA_BASE + SHADOWVM_ABI_RESERVED_VA_SIZE -
				     1));
}
END_TEST

Suite *abi_suite(void)
{
	Suite *s = suite_create("abi");
	TCase *tc = tcase_create("layout");

	tcase_add_test(tc, test_abi_reserved_slot_is_canonical);
	suite_add_tcase(s, tc);
	return s;
}
