/* The ABI boot state (include/shadowvm_abi.h): boot info, GDT, identity page
 * tables in guest RAM, and the vCPU's long-mode registers. */
#ifndef SHADOWVM_BOOT_H
#define SHADOWVM_BOOT_H

#include <stddef.h>

#include "elf_load.h"
#include "mem.h"

/* Write the boot info, command line, boot GDT and the identity-mapping page
 * tables for all of RAM.  The loader has already kept segments out of this
 * area.  Returns VMM_OK or VMM_E_INTERNAL (RAM too small for the layout). */
int boot_setup_memory(struct guest_mem *mem, const struct elf_image *img, const char *cmdline,
		      char *err, size_t errlen);

/* Load the vCPU with the ABI's entry state: long mode, CPL0, IF=0,
 * RIP = entry, RSP = boot stack, RDI = boot info. */
int boot_setup_vcpu(int vcpu_fd, const struct elf_image *img, char *err, size_t errlen);

#endif
