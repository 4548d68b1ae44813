/* shadowvm guest ABI, version 1: the whole contract between the VMM and a
 * guest image.  Self-contained (C99 <stdint.h> only) and included by both
 * vmm/ and guest/.  Guest addresses are plain uint64_t so that host code can
 * never dereference one by accident.
 *
 * Boot protocol (for images without a Multiboot header; one with a header
 * boots by Multiboot v1 instead, include/multiboot.h)
 *   - The image is an ELF64 x86-64 ET_EXEC.  Each PT_LOAD segment is copied to
 *     guest-physical p_paddr (p_filesz bytes, the rest up to p_memsz zeroed).
 *     Segments lie in [SHADOWVM_ABI_LOAD_MIN, RAM size) and do not overlap.
 *   - The vCPU starts in 64-bit long mode at e_entry, virtual CPL0,
 *     RFLAGS = 0x2 (interrupts off), with:
 *       CR0  = PE | MP | ET | NE | WP | PG
 *       CR4  = PAE | OSFXSR | OSXMMEXCPT
 *       EFER = LME | LMA | NXE
 *       CR3  = SHADOWVM_ABI_PML4_GPA: tables built by the VMM that identity-map all
 *              of guest RAM (GVA == GPA) with 2 MiB pages, supervisor,
 *              writable, executable, A and D already set.
 *       GDT  = SHADOWVM_ABI_GDT_GPA with the selectors below; IDT limit 0.
 *       RSP  = SHADOWVM_ABI_STACK_TOP, RDI = SHADOWVM_ABI_BOOTINFO_GPA.
 *   - Everything below SHADOWVM_ABI_LOAD_MIN belongs to the VMM at boot (boot info,
 *     GDT, page tables, stack).  The guest may reuse it once it no longer
 *     needs those structures.  Free RAM starts at boot_info.free_start.
 *
 * Devices (port I/O)
 *   - SHADOWVM_ABI_PORT_COM1: a 16550-style UART; writes to THR go to the console,
 *     LSR always reports the transmitter empty.
 *   - SHADOWVM_ABI_PORT_EXIT: an `out` of value N (any width) ends the run with
 *     exit status N.  N must be at most SHADOWVM_ABI_EXIT_MAX; larger values are
 *     reported as a contract violation.
 *
 * Address space
 *   - PML4 slot SHADOWVM_ABI_RESERVED_PML4_INDEX (GVA SHADOWVM_ABI_RESERVED_VA_BASE ..
 *     +512 GiB) belongs to the hypervisor.  A guest mapping there is an error.
 *     Under --paging=shadow it holds, at BASE + page * 4 KiB (vmm/cpu/monitor.h):
 *     page 3 the IDT, 4..19 the GDT, 20 the TSS, 21..22 the trap stubs and
 *     the monitor's store applier, 23 the trap stack (the only page the
 *     guest's roots map writable), 24 an unmapped guard.  The monitor's own
 *     root maps those and, writable, 28..31 the store queue and 32.. the
 *     shadow pool; the roots the guest runs on never map them.  Machine
 *     addresses of all of it start at 0x800000000, outside guest RAM.
 *
 * Differences from bare metal under --paging=shadow (the guest kernel runs
 * deprivileged): kernel CS/SS carry RPL 1, so "was this frame from user
 * mode?" is (cs & 3) == 3; RFLAGS.IOPL reads 1.
 */
#ifndef SHADOWVM_ABI_H
#define SHADOWVM_ABI_H

#include <stdint.h>

#define SHADOWVM_ABI_VERSION 1u

/* Guest-physical layout of VMM-placed structures. */
#define SHADOWVM_ABI_BOOTINFO_GPA 0x1000u
#define SHADOWVM_ABI_CMDLINE_GPA 0x1800u /* inside the boot-info page */
#define SHADOWVM_ABI_CMDLINE_MAX 2048u   /* bytes, including the NUL */
#define SHADOWVM_ABI_GDT_GPA 0x2000u
#define SHADOWVM_ABI_PML4_GPA 0x3000u
#define SHADOWVM_ABI_PDPT_GPA 0x4000u
#define SHADOWVM_ABI_PD_GPA 0x5000u      /* SHADOWVM_ABI_RAM_MAX / 1 GiB tables */
#define SHADOWVM_ABI_STACK_TOP 0x100000u /* boot stack grows down from here */
#define SHADOWVM_ABI_STACK_SIZE 0x10000u
#define SHADOWVM_ABI_LOAD_MIN 0x100000u /* lowest GPA a PT_LOAD may use */

#define SHADOWVM_ABI_RAM_MIN (2ull << 20)
#define SHADOWVM_ABI_RAM_MAX (4ull << 30)
#define SHADOWVM_ABI_RAM_DEFAULT (64ull << 20)

/* The control state at entry, the same under both paging modes: CR0 = PE |
 * MP | ET | NE | WP | PG, CR4 = PAE | OSFXSR | OSXMMEXCPT, EFER = LME | LMA |
 * NXE; the GDT holds SHADOWVM_ABI_BOOT_GDT_ENTRIES descriptors at
 * SHADOWVM_ABI_GDT_GPA (null, 64-bit code, data), the IDT limit is 0. */
#define SHADOWVM_ABI_BOOT_CR0 0x80010033u
#define SHADOWVM_ABI_BOOT_CR4 0x620u
#define SHADOWVM_ABI_BOOT_EFER 0xd00u
#define SHADOWVM_ABI_BOOT_GDT_ENTRIES 3u

/* Boot GDT selectors (index << 3). */
#define SHADOWVM_ABI_SEL_CODE64 0x08u
#define SHADOWVM_ABI_SEL_DATA 0x10u

/* Ports. */
#define SHADOWVM_ABI_PORT_COM1 0x3f8u
#define SHADOWVM_ABI_PORT_EXIT 0xf4u
#define SHADOWVM_ABI_EXIT_MAX 63u

/* The hypervisor's reserved top-level slot. */
#define SHADOWVM_ABI_RESERVED_PML4_INDEX 510u
#define SHADOWVM_ABI_RESERVED_VA_BASE 0xffffff0000000000ull
#define SHADOWVM_ABI_RESERVED_VA_SIZE (1ull << 39)

#define SHADOWVM_BOOTINFO_MAGIC 0x42564d53u /* "SMVB" little-endian */

/* At SHADOWVM_ABI_BOOTINFO_GPA; RDI points here at entry. */
struct shadowvm_boot_info {
	uint32_t magic;       /* SHADOWVM_BOOTINFO_MAGIC */
	uint32_t abi_version; /* SHADOWVM_ABI_VERSION */
	uint64_t ram_size;    /* bytes of guest RAM, from GPA 0 */
	uint64_t cmdline;     /* GPA of the NUL-terminated command line */
	uint32_t cmdline_len; /* strlen of the command line */
	uint32_t reserved0;
	uint64_t free_start;  /* first page-aligned GPA past the image */
	uint64_t reserved_va; /* SHADOWVM_ABI_RESERVED_VA_BASE */
};

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(struct shadowvm_boot_info) == 48, "boot info layout");
_Static_assert(SHADOWVM_ABI_CMDLINE_GPA + SHADOWVM_ABI_CMDLINE_MAX <= SHADOWVM_ABI_GDT_GPA,
	       "command line fits in the boot-info page");
_Static_assert(SHADOWVM_ABI_PD_GPA + (SHADOWVM_ABI_RAM_MAX >> 30) * 0x1000 <=
		       SHADOWVM_ABI_STACK_TOP - SHADOWVM_ABI_STACK_SIZE,
	       "page directories end below the boot stack");
_Static_assert(SHADOWVM_ABI_RESERVED_VA_BASE ==
		       (0xffff000000000000ull | ((uint64_t)SHADOWVM_ABI_RESERVED_PML4_INDEX << 39)),
	       "reserved VA base matches its PML4 slot");
#endif

#endif
