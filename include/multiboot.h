/* Multiboot v1 (the Multiboot Specification 0.6.96): the header a kernel
 * carries, the state it is entered in, and the information block the boot
 * loader hands it.  Self-contained (<stdint.h> only) so that freestanding
 * guests parse the info block with the same definitions the VMM writes it
 * with.  Section numbers below are the specification's.
 *
 * shadowvm as a Multiboot boot loader (README "Booting a Multiboot kernel"):
 *   - the header must lie 4-byte aligned and whole inside the image's first
 *     MULTIBOOT_SEARCH bytes (§3.1.1); the image is an ELF32 (EM_386) or
 *     ELF64 (EM_X86_64) ET_EXEC whose PT_LOAD segments go to p_paddr; the
 *     a.out kludge (MULTIBOOT_HDR_AOUT_KLUDGE) is not supported;
 *   - entry (§3.2): 32-bit protected mode, paging off, EAX =
 *     MULTIBOOT_BOOTLOADER_MAGIC, EBX = the info block's physical address,
 *     CS = MULTIBOOT_SEL_CODE32 and the data segments MULTIBOOT_SEL_DATA32,
 *     all flat 4 GiB; GDTR is undefined (base 0, limit 0): the OS loads its
 *     own before it reloads a segment register;
 *   - the info block, its memory map, strings and module list lie page-aligned
 *     above the last module (or the image's end), never below it. */
#ifndef SHADOWVM_MULTIBOOT_H
#define SHADOWVM_MULTIBOOT_H

#include <stdint.h>

/* §3.1.1: where a boot loader looks for the header. */
#define MULTIBOOT_SEARCH 8192u
#define MULTIBOOT_HEADER_ALIGN 4u
#define MULTIBOOT_HEADER_MAGIC 0x1BADB002u

/* §3.1.2: header flags.  Bits 0..15 are requirements: a boot loader that
 * does not understand one must refuse the image.  Bits 16..31 are optional. */
#define MULTIBOOT_HDR_PAGE_ALIGN (1u << 0)  /* modules page-aligned */
#define MULTIBOOT_HDR_MEMORY_INFO (1u << 1) /* mem_* and mmap_* wanted */
#define MULTIBOOT_HDR_VIDEO_MODE (1u << 2)  /* video mode fields (ignored here) */
#define MULTIBOOT_HDR_REQUIRED_MASK 0x0000ffffu
#define MULTIBOOT_HDR_AOUT_KLUDGE (1u << 16) /* load address fields valid */

/* §3.1.1: the header's first three fields (the address and video fields
 * that may follow are not read by shadowvm). */
struct multiboot_header {
	uint32_t magic;    /* MULTIBOOT_HEADER_MAGIC */
	uint32_t flags;    /* MULTIBOOT_HDR_* */
	uint32_t checksum; /* magic + flags + checksum == 0 (mod 2^32) */
};

/* §3.2: EAX at entry. */
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u

/* The flat segments shadowvm enters a Multiboot kernel with (§3.2 asks for
 * flat 4 GiB code and data but leaves the selector values to the loader;
 * these are QEMU's multiboot option ROM's, and GRUB's: code at GDT index 1,
 * data at 2).  Kernels depend on it: xv6 loads a GDT with its code at
 * index 1 and never reloads CS, so the first iret of an interrupt taken in
 * its scheduler pops the loader's CS through the kernel's table.  Shared by
 * both paging modes' entry code. */
#define MULTIBOOT_SEL_CODE32 0x08u
#define MULTIBOOT_SEL_DATA32 0x10u

/* The other entry values of §3.2, as shadowvm sets them. */
#define MULTIBOOT_ENTRY_CR0 0x00000011u    /* PE | ET; PG = 0 */
#define MULTIBOOT_ENTRY_EFLAGS 0x00000002u /* IF = 0, VM = 0, bit 1 fixed */
#define MULTIBOOT_ENTRY_IDT_LIMIT 0x3ffu   /* real-mode IVT size; base 0 */

/* §3.3: multiboot_info.flags, which fields are valid. */
#define MULTIBOOT_INFO_MEMORY (1u << 0)  /* mem_lower, mem_upper */
#define MULTIBOOT_INFO_BOOTDEV (1u << 1) /* boot_device */
#define MULTIBOOT_INFO_CMDLINE (1u << 2) /* cmdline */
#define MULTIBOOT_INFO_MODS (1u << 3)    /* mods_count, mods_addr */
#define MULTIBOOT_INFO_AOUT_SYMS (1u << 4)
#define MULTIBOOT_INFO_ELF_SHDR (1u << 5)
#define MULTIBOOT_INFO_MEM_MAP (1u << 6) /* mmap_length, mmap_addr */
#define MULTIBOOT_INFO_DRIVES (1u << 7)
#define MULTIBOOT_INFO_CONFIG (1u << 8)
#define MULTIBOOT_INFO_LOADER_NAME (1u << 9) /* boot_loader_name */
#define MULTIBOOT_INFO_APM (1u << 10)
#define MULTIBOOT_INFO_VBE (1u << 11)

/* §3.3: the information block, EBX at entry.  All addresses physical. */
struct multiboot_info {
	uint32_t flags;
	uint32_t mem_lower; /* KiB of conventional memory from 0 */
	uint32_t mem_upper; /* KiB of memory from 1 MiB */
	uint32_t boot_device;
	uint32_t cmdline; /* NUL-terminated kernel command line */
	uint32_t mods_count;
	uint32_t mods_addr; /* mods_count struct multiboot_module */
	uint32_t syms[4];
	uint32_t mmap_length; /* bytes of struct multiboot_mmap_entry */
	uint32_t mmap_addr;
	uint32_t drives_length;
	uint32_t drives_addr;
	uint32_t config_table;
	uint32_t boot_loader_name; /* NUL-terminated */
	uint32_t apm_table;
	uint32_t vbe_control_info;
	uint32_t vbe_mode_info;
	uint16_t vbe_mode;
	uint16_t vbe_interface_seg;
	uint16_t vbe_interface_off;
	uint16_t vbe_interface_len;
};

/* §3.3: one memory-map entry.  `size` counts the bytes after itself (20
 * here); the next entry starts at &entry + size + 4.  The struct is packed
 * because base_addr sits at offset 4. */
struct __attribute__((packed)) multiboot_mmap_entry {
	uint32_t size;
	uint64_t base_addr;
	uint64_t length;
	uint32_t type;
};

#define MULTIBOOT_MEMORY_AVAILABLE 1u
#define MULTIBOOT_MEMORY_RESERVED 2u

/* §3.3: one boot module, [mod_start, mod_end) in physical memory. */
struct multiboot_module {
	uint32_t mod_start;
	uint32_t mod_end; /* first byte past the module */
	uint32_t string;  /* NUL-terminated module string */
	uint32_t reserved;
};

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(struct multiboot_header) == 12, "multiboot header layout");
_Static_assert(sizeof(struct multiboot_info) == 88, "multiboot info layout (§3.3)");
_Static_assert(sizeof(struct multiboot_mmap_entry) == 24, "mmap entry layout (§3.3)");
_Static_assert(sizeof(struct multiboot_module) == 16, "module entry layout (§3.3)");
#endif

#endif
