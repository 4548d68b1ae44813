#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "boot.h"
#include "multiboot.h"
#include "multiboot_load.h"
#include "shadowvm_abi.h"
#include "status.h"
#include "x86.h"

#define PAGE_2M (2ull << 20)
#define PAGE_1G (1ull << 30)

/* The ABI's boot values, spelt out in the SDM's bits (shadowvm_abi.h keeps
 * to C99 headers and cannot name them). */
_Static_assert(SHADOWVM_ABI_BOOT_CR0 == (X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE |
					 X86_CR0_WP | X86_CR0_PG),
	       "boot CR0");
_Static_assert(SHADOWVM_ABI_BOOT_CR4 == (X86_CR4_PAE | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT),
	       "boot CR4");
_Static_assert(SHADOWVM_ABI_BOOT_EFER == (X86_EFER_LME | X86_EFER_LMA | X86_EFER_NXE), "boot EFER");
_Static_assert(SHADOWVM_ABI_SEL_DATA >> 3 < SHADOWVM_ABI_BOOT_GDT_ENTRIES,
	       "boot selectors in the boot GDT");
_Static_assert(MULTIBOOT_ENTRY_CR0 == (X86_CR0_PE | X86_CR0_ET), "Multiboot CR0: PE, no PG");
_Static_assert(MULTIBOOT_ENTRY_EFLAGS == X86_RFLAGS_FIXED, "Multiboot EFLAGS: IF = VM = 0");

static uint64_t boot_desc(unsigned type, uint64_t flags)
{
	return 0xffffull | (0xfull << 48) | X86_DESC_TYPE(type) | X86_DESC_S | X86_DESC_P |
	       X86_DESC_G | X86_DESC_DPL(0) | flags;
}

static void write_gdt(uint64_t *gdt)
{
	gdt[0] = 0;
	gdt[SHADOWVM_ABI_SEL_CODE64 >> 3] = boot_desc(X86_SEG_TYPE_CODE_XR | 1, X86_DESC_L);
	gdt[SHADOWVM_ABI_SEL_DATA >> 3] = boot_desc(X86_SEG_TYPE_DATA_RW | 1, X86_DESC_DB);
}

static void write_page_tables(struct guest_mem *mem)
{
	uint64_t *pml4 = mem_gpa(mem, SHADOWVM_ABI_PML4_GPA, X86_PAGE_SIZE);
	uint64_t *pdpt = mem_gpa(mem, SHADOWVM_ABI_PDPT_GPA, X86_PAGE_SIZE);
	uint64_t ngb = (mem->size + PAGE_1G - 1) / PAGE_1G;
	const uint64_t table = X86_PTE_P | X86_PTE_W | X86_PTE_A;

	pml4[0] = SHADOWVM_ABI_PDPT_GPA | table;
	for (uint64_t g = 0; g < ngb; g++) {
		gpa_t pd_gpa = SHADOWVM_ABI_PD_GPA + g * X86_PAGE_SIZE;
		uint64_t *pd = mem_gpa(mem, pd_gpa, X86_PAGE_SIZE);

		pdpt[g] = pd_gpa | table;
		for (unsigned i = 0; i < X86_PT_ENTRIES; i++) {
			gpa_t pa = g * PAGE_1G + i * PAGE_2M;
			if (pa >= mem->size)
				break;
			pd[i] = pa | table | X86_PTE_D | X86_PTE_PS;
		}
	}
}

static int abi_setup_memory(struct guest_mem *mem, const struct elf_image *img, const char *cmdline,
			    char *err, size_t errlen)
{
	struct shadowvm_boot_info *bi = mem_gpa(mem, SHADOWVM_ABI_BOOTINFO_GPA, sizeof(*bi));
	char *cl = mem_gpa(mem, SHADOWVM_ABI_CMDLINE_GPA, SHADOWVM_ABI_CMDLINE_MAX);
	size_t len = strlen(cmdline);

	if (!bi || !cl || mem->size < SHADOWVM_ABI_LOAD_MIN || mem->size > SHADOWVM_ABI_RAM_MAX) {
		snprintf(err, errlen, "guest RAM 0x%llx is outside 0x%x..0x%llx",
			 (unsigned long long)mem->size, SHADOWVM_ABI_LOAD_MIN,
			 SHADOWVM_ABI_RAM_MAX);
		return VMM_E_INTERNAL;
	}
	if (len >= SHADOWVM_ABI_CMDLINE_MAX) {
		snprintf(err, errlen, "command line of %zu bytes exceeds limit %u", len + 1,
			 SHADOWVM_ABI_CMDLINE_MAX);
		return VMM_E_USAGE;
	}
	memcpy(cl, cmdline, len + 1);
	*bi = (struct shadowvm_boot_info){
		.magic = SHADOWVM_BOOTINFO_MAGIC,
		.abi_version = SHADOWVM_ABI_VERSION,
		.ram_size = mem->size,
		.cmdline = SHADOWVM_ABI_CMDLINE_GPA,
		.cmdline_len = (uint32_t)len,
		.free_start = (img->end + X86_PAGE_SIZE - 1) & X86_PAGE_MASK,
		.reserved_va = SHADOWVM_ABI_RESERVED_VA_BASE,
	};
	write_gdt(mem_gpa(mem, SHADOWVM_ABI_GDT_GPA,
			  SHADOWVM_ABI_BOOT_GDT_ENTRIES * sizeof(uint64_t)));
	write_page_tables(mem);
	return VMM_OK;
}

/* --module makes no sense to the ABI: refuse it rather than drop it. */
static int abi_memory(struct guest_mem *mem, struct elf_image *img, const struct boot_args *args,
		      char *err, size_t errlen)
{
	if (args->nmods) {
		snprintf(
			err, errlen,
			"%s: --module needs a Multiboot image (no Multiboot header in its first %u bytes)",
			args->image, MULTIBOOT_SEARCH);
		return VMM_E_USAGE;
	}
	return abi_setup_memory(mem, img, args->cmdline, err, errlen);
}

static struct kvm_segment flat_seg(uint16_t sel, uint8_t type, uint8_t l, uint8_t db)
{
	return (struct kvm_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = sel,
		.type = type,
		.present = 1,
		.dpl = 0,
		.db = db,
		.s = 1,
		.l = l,
		.g = 1,
	};
}

/* No TSS or LDT yet: the guest loads its own.  A busy TSS type keeps VM
 * entry's checks on TR satisfied (SDM 3C §28.3.1.2, guest segment
 * registers): type 11 is the busy 64-bit TSS in IA-32e mode and the busy
 * 32-bit one outside it. */
static void boot_tr_ldt(struct kvm_sregs *sregs)
{
	sregs->tr = (struct kvm_segment){ .limit = 0x67,
					  .type = X86_SEG_TYPE_TSS64_BUSY,
					  .present = 1 };
	sregs->ldt = (struct kvm_segment){ .limit = 0xffff, .type = 2, .present = 1 };
}

static void abi_sregs(struct kvm_sregs *sregs)
{
	sregs->cs = flat_seg(SHADOWVM_ABI_SEL_CODE64, X86_SEG_TYPE_CODE_XR | 1, 1, 0);
	sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss =
		flat_seg(SHADOWVM_ABI_SEL_DATA, X86_SEG_TYPE_DATA_RW | 1, 0, 1);
	boot_tr_ldt(sregs);
	sregs->gdt.base = SHADOWVM_ABI_GDT_GPA;
	sregs->gdt.limit = SHADOWVM_ABI_BOOT_GDT_ENTRIES * 8 - 1;
	sregs->idt.base = 0;
	sregs->idt.limit = 0;
	sregs->cr0 = SHADOWVM_ABI_BOOT_CR0;
	sregs->cr3 = SHADOWVM_ABI_PML4_GPA;
	sregs->cr4 = SHADOWVM_ABI_BOOT_CR4;
	sregs->efer = SHADOWVM_ABI_BOOT_EFER;
}

void boot_multiboot_regs(struct kvm_regs *regs, const struct elf_image *img)
{
	*regs = (struct kvm_regs){
		.rax = MULTIBOOT_BOOTLOADER_MAGIC,
		.rbx = img->mb_info,
		.rip = img->entry,
		.rflags = MULTIBOOT_ENTRY_EFLAGS,
	};
}

void boot_multiboot_sregs(struct kvm_sregs *sregs)
{
	sregs->cs = flat_seg(MULTIBOOT_SEL_CODE32, X86_SEG_TYPE_CODE_XR | 1, 0, 1);
	sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss =
		flat_seg(MULTIBOOT_SEL_DATA32, X86_SEG_TYPE_DATA_RW | 1, 0, 1);
	boot_tr_ldt(sregs);
	/* §3.2: GDTR may be invalid, the OS must load its own; IDTR is as a
	 * BIOS leaves it, the real-mode vector table. */
	sregs->gdt.base = 0;
	sregs->gdt.limit = 0;
	sregs->idt.base = 0;
	sregs->idt.limit = MULTIBOOT_ENTRY_IDT_LIMIT;
	sregs->cr0 = MULTIBOOT_ENTRY_CR0;
	sregs->cr2 = 0;
	sregs->cr3 = 0;
	sregs->cr4 = 0;
	sregs->efer = 0;
}

static void abi_entry(struct kvm_sregs *sregs, struct kvm_regs *regs, const struct elf_image *img)
{
	abi_sregs(sregs);
	*regs = (struct kvm_regs){
		.rip = img->entry,
		.rsp = SHADOWVM_ABI_STACK_TOP,
		.rdi = SHADOWVM_ABI_BOOTINFO_GPA,
		.rflags = X86_RFLAGS_FIXED,
	};
}

static void multiboot_entry(struct kvm_sregs *sregs, struct kvm_regs *regs,
			    const struct elf_image *img)
{
	boot_multiboot_sregs(sregs);
	boot_multiboot_regs(regs, img);
}

/* The two boot protocols (STYLE.md 15): one table, chosen once from what
 * the loader found in the image. */
struct boot_ops {
	int (*memory)(struct guest_mem *mem, struct elf_image *img, const struct boot_args *args,
		      char *err, size_t errlen);
	void (*entry)(struct kvm_sregs *sregs, struct kvm_regs *regs, const struct elf_image *img);
};

static const struct boot_ops abi_ops = { abi_memory, abi_entry };
static const struct boot_ops multiboot_ops = { multiboot_setup_memory, multiboot_entry };

static const struct boot_ops *ops_of(const struct elf_image *img)
{
	return img->multiboot ? &multiboot_ops : &abi_ops;
}

int boot_setup_memory(struct guest_mem *mem, struct elf_image *img, const struct boot_args *args,
		      char *err, size_t errlen)
{
	return ops_of(img)->memory(mem, img, args, err, errlen);
}

int boot_setup_vcpu(int vcpu_fd, const struct elf_image *img, char *err, size_t errlen)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		goto fail;
	ops_of(img)->entry(&sregs, &regs, img);
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
		goto fail;
	return VMM_OK;
fail:
	snprintf(err, errlen, "setting the boot registers: %s", strerror(errno));
	return VMM_E_INTERNAL;
}
