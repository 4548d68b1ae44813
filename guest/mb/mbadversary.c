/* mbadversary case=NAME: one hostile act of a 32-bit kernel per run, the
 * foreign-kernel cousins of guest/adversary.c.  It prints what it does,
 * and a #GP or #PF it provokes is printed (vector, error code) before the
 * run ends with isa-debug-exit code 0 (status 1); an act the VMM must stop
 * ends the run there instead.  Cases:
 *   pdpte_reserved    PAE with a reserved bit in a PDPTE: the CR0.PG write
 *                     that loads it is #GP (SDM 3A §4.4.1)
 *   pae_cr3_above_ram PAE with CR3 past RAM: the PDPTE load reads nothing
 *   lme_without_pae   CR0.PG with EFER.LME but CR4.PAE clear: #GP (§9.8.5)
 *   pg_without_pe     CR0.PG without CR0.PE: #GP (SDM 2A MOV CR0)
 *   pse_high_bits     a 4 MiB page with bits 13-20 set: under PSE-36 they
 *                     are address bits 39:32, past RAM
 *   mmio_nowhere      a page mapped at 0xfed00000, where no device is */
#include "mbrt.h"
#include "multiboot.h"
#include "x86.h"

#define MSR_EFER 0xc0000080u

static uint32_t pd[1024] __attribute__((aligned(4096)));
static uint64_t pdpt[4] __attribute__((aligned(32)));
static uint64_t pae_pd[512] __attribute__((aligned(4096)));

void trap32(struct tf32 *f);
void trap32(struct tf32 *f)
{
	if (f->vector == 14)
		mb_printf("mbadversary: #PF error code %x at cr2 %x\n", f->err, read_cr2());
	else
		mb_printf("mbadversary: vector %u error code %x\n", f->vector, f->err);
	mb_exit(0);
}

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *b == 0 && (*a == 0 || *a == ' ');
}

/* "case=NAME" in the command line ("IMAGE ARGS"). */
static const char *case_of(const struct multiboot_info *mbi)
{
	const char *p = (const char *)mbi->cmdline;

	for (; *p; p++)
		if (p[0] == 'c' && p[1] == 'a' && p[2] == 's' && p[3] == 'e' && p[4] == '=')
			return p + 5;
	return "";
}

static void identity_4m(void)
{
	for (uint32_t i = 0; i < 16; i++)
		pd[i] = (i << 22) | X86_PTE_P | X86_PTE_W | X86_PTE_PS;
	write_cr4(read_cr4() | X86_CR4_PSE);
	write_cr3((uint32_t)pd);
	write_cr0(read_cr0() | X86_CR0_PG);
}

static void pae(uint64_t pdpte0, uint32_t cr3)
{
	for (uint32_t i = 0; i < 32; i++)
		pae_pd[i] = ((uint64_t)i << 21) | X86_PTE_P | X86_PTE_W | X86_PTE_PS;
	pdpt[0] = (uint32_t)pae_pd | X86_PTE_P | pdpte0;
	write_cr4(read_cr4() | X86_CR4_PAE);
	write_cr3(cr3 ? cr3 : (uint32_t)pdpt);
	write_cr0(read_cr0() | X86_CR0_PG);
}

void mb_main(uint32_t magic, const struct multiboot_info *mbi);
void mb_main(uint32_t magic, const struct multiboot_info *mbi)
{
	const char *c = case_of(mbi);

	(void)magic;
	if (streq(c, "pdpte_reserved")) {
		mb_printf("mbadversary: PAE with R/W set in PDPTE 0, then CR0.PG\n");
		pae(X86_PTE_W, 0);
	} else if (streq(c, "pae_cr3_above_ram")) {
		mb_printf("mbadversary: PAE with CR3 at 0x%x, past RAM\n", 0x3ffff000u);
		pae(0, 0x3ffff000u);
	} else if (streq(c, "lme_without_pae")) {
		mb_printf("mbadversary: EFER.LME, CR4.PAE clear, then CR0.PG\n");
		write_cr3((uint32_t)pd);
		wrmsr(MSR_EFER, rdmsr(MSR_EFER) | X86_EFER_LME);
		write_cr0(read_cr0() | X86_CR0_PG);
	} else if (streq(c, "pg_without_pe")) {
		mb_printf("mbadversary: CR0.PG with CR0.PE clear\n");
		write_cr0((read_cr0() & ~X86_CR0_PE) | X86_CR0_PG);
	} else if (streq(c, "pse_high_bits")) {
		identity_4m();
		mb_printf("mbadversary: a 4 MiB page with PDE bits 13-20 set, read\n");
		pd[256] = 0x00000000u | (0xffu << 13) | X86_PTE_P | X86_PTE_PS;
		invlpg(0x40000000u);
		(void)*(volatile uint32_t *)0x40000000u;
	} else if (streq(c, "mmio_nowhere")) {
		identity_4m();
		mb_printf("mbadversary: reading 0xfed00000, where no device is\n");
		pd[0xfed00000u >> 22] = 0xfec00000u | X86_PTE_P | X86_PTE_PS;
		invlpg(0xfed00000u);
		(void)*(volatile uint32_t *)0xfed00000u;
	} else {
		mb_printf("mbadversary: unknown case \"%s\"\n", c);
		mb_exit(1);
	}
	mb_printf("mbadversary: nothing happened\n");
	mb_exit(0);
}
