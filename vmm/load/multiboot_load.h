/* The Multiboot v1 boot protocol's memory side (include/multiboot.h): the
 * modules and the info block a Multiboot kernel finds at entry.  The entry
 * registers are boot.h's. */
#ifndef SHADOWVM_MULTIBOOT_LOAD_H
#define SHADOWVM_MULTIBOOT_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "elf_load.h"
#include "mem.h"

/* A Multiboot guest's RAM ends below the IOAPIC window, which its memory
 * map reports reserved (0xfec00000 = 4076 MiB, a multiple of 2 MiB). */
#define MULTIBOOT_RAM_MAX 0xfec00000ull
#define MULTIBOOT_LOADER_NAME "shadowvm"
#define MULTIBOOT_MMAP_ENTRIES 6u

/* Load args->mods page-aligned above img->end, one after the other, then the
 * info block, its memory map, module list and strings page-aligned above
 * the last; set img->mb_info to the block's GPA and img->mb_end past it.
 * The kernel's command line is "IMAGE ARGS" (the image's path, then
 * args->cmdline if not empty), as QEMU's -kernel passes it.  Returns VMM_OK,
 * VMM_E_USAGE (too many modules, RAM above MULTIBOOT_RAM_MAX),
 * VMM_E_NOINPUT (a module cannot be read) or VMM_E_IMAGE (a module or the
 * info area does not fit RAM), with one line in err naming the file. */
int multiboot_setup_memory(struct guest_mem *mem, struct elf_image *img,
			   const struct boot_args *args, char *err, size_t errlen);

#endif
