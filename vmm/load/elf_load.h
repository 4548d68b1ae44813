/* Guest image loader, with libelf: the ABI boot protocol (ELF64,
 * include/shadowvm_abi.h) or, when the image carries a Multiboot header,
 * Multiboot v1 (ELF32 or ELF64, include/multiboot.h). */
#ifndef SHADOWVM_ELF_LOAD_H
#define SHADOWVM_ELF_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

#define ELF_LOAD_FILE_MAX (256ull << 20) /* largest image file accepted */
#define ELF_LOAD_PHNUM_MAX 64u           /* most program headers accepted */

struct elf_image {
	gva_t entry;        /* e_entry (identity-mapped at boot; physical for Multiboot) */
	gpa_t start;        /* lowest GPA of any segment */
	gpa_t end;          /* first GPA past the highest segment */
	unsigned nloads;    /* PT_LOAD segments placed */
	bool multiboot;     /* a Multiboot v1 header was found: that protocol boots it */
	uint32_t mb_flags;  /* the Multiboot header's flags */
	uint32_t mb_header; /* its file offset */
	uint32_t mb_info;   /* GPA of the info block (multiboot_setup_memory) */
	gpa_t mb_end;       /* first GPA past the modules and the info area */
};

#define BOOT_MODULES_MAX 16u /* --module files a run takes */

/* A --module: a file loaded for a Multiboot kernel and its module string. */
struct boot_module {
	const char *path;
	const char *string;
};

/* What the boot protocols need beyond the image.  `image` names it in
 * messages. */
struct boot_args {
	const char *image;
	const char *cmdline;
	const struct boot_module *mods;
	unsigned nmods;
	bool mptable; /* Multiboot: the BDA and an MP table in the EBDA (mptable.h) */
};

/* Validate the image in `fd` for a guest with `ram_size` bytes of RAM and, if
 * mem is non-NULL, copy its segments into guest RAM (BSS zeroed).  `name` is
 * used in messages.  Returns VMM_OK, VMM_E_IMAGE (malformed or does not fit)
 * or VMM_E_NOINPUT (cannot read), with one line in err naming the file, the
 * field, the value and the limit. */
int elf_load_fd(int fd, const char *name, uint64_t ram_size, struct guest_mem *mem,
		struct elf_image *img, char *err, size_t errlen);

/* As elf_load_fd, opening `path` first. */
int elf_load(const char *path, uint64_t ram_size, struct guest_mem *mem, struct elf_image *img,
	     char *err, size_t errlen);

#endif
