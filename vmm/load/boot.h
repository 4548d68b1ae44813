/* The boot state of the image's protocol: for the ABI (include/shadowvm_abi.h)
 * boot info, GDT, identity page tables in guest RAM and the vCPU's long-mode
 * registers; for Multiboot (include/multiboot.h) the modules and info block
 * (multiboot_load.h) and the 32-bit protected-mode entry registers. */
#ifndef SHADOWVM_BOOT_H
#define SHADOWVM_BOOT_H

#include <linux/kvm.h>
#include <stddef.h>

#include "elf_load.h"
#include "mem.h"

/* For an ABI image, write the boot info, command line, boot GDT and the
 * identity-mapping page tables for all of RAM (the loader has already kept
 * segments out of this area); for a Multiboot image, multiboot_setup_memory.
 * Returns VMM_OK, VMM_E_USAGE (a command line too long, --module with an ABI
 * image), VMM_E_INTERNAL (RAM too small for the layout) or
 * multiboot_setup_memory's status, with one line in err. */
int boot_setup_memory(struct guest_mem *mem, struct elf_image *img, const struct boot_args *args,
		      char *err, size_t errlen);

/* Load the vCPU with the entry state of the image's protocol (--paging=hw):
 * for the ABI long mode, CPL0, IF=0, RIP = entry, RSP = boot stack, RDI =
 * boot info; for Multiboot boot_multiboot_sregs and boot_multiboot_regs. */
int boot_setup_vcpu(int vcpu_fd, const struct elf_image *img, char *err, size_t errlen);

/* Multiboot's entry GPRs (spec §3.2): EAX = MULTIBOOT_BOOTLOADER_MAGIC, EBX =
 * img->mb_info, EIP = img->entry, EFLAGS = MULTIBOOT_ENTRY_EFLAGS, all else
 * 0.  Shared with the shadow-mode entry. */
void boot_multiboot_regs(struct kvm_regs *regs, const struct elf_image *img);

/* Multiboot's entry control state (spec §3.2) into sregs, leaving the fields
 * it does not name (APIC base, interrupt bitmap) as they are: 32-bit
 * protected mode with paging off (CR0 = MULTIBOOT_ENTRY_CR0, CR3 = CR4 =
 * EFER = 0), flat 4 GiB CS = MULTIBOOT_SEL_CODE32 and DS/ES/FS/GS/SS =
 * MULTIBOOT_SEL_DATA32 at DPL 0, GDTR base 0 limit 0, IDTR base 0 limit
 * MULTIBOOT_ENTRY_IDT_LIMIT, a busy 32-bit TSS in TR. */
void boot_multiboot_sregs(struct kvm_sregs *sregs);

#endif
