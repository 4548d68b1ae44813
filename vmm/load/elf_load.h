/* Guest image loader (ABI boot protocol, include/shadowvm_abi.h), with libelf. */
#ifndef SHADOWVM_ELF_LOAD_H
#define SHADOWVM_ELF_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

#define ELF_LOAD_FILE_MAX (256ull << 20) /* largest image file accepted */
#define ELF_LOAD_PHNUM_MAX 64u           /* most program headers accepted */

struct elf_image {
	gva_t entry;     /* e_entry (identity-mapped at boot) */
	gpa_t end;       /* first GPA past the highest segment */
	unsigned nloads; /* PT_LOAD segments placed */
	bool multiboot;  /* a Multiboot v1 image: 32-bit entry, paging off */
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
