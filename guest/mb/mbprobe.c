/* mbprobe: a Multiboot test kernel of the kind QEMU boots with -kernel,
 * written here: it reads its environment from the info block and a module
 * ("NR_CPUS=1"-style lines), probes the PC around it the way test kernels
 * do (CPUID, COM1's LSR, the 8259s, fw_cfg, the local APIC, MSRs), switches
 * itself to IA-32e mode, and ends through isa-debug-exit.  It prints what
 * it found; the transcript must be the same under --paging=hw and
 * --paging=shadow.  Exit code 0 (status 1) when everything it checks holds,
 * 1 (status 3) otherwise. */
#include "mbrt.h"
#include "multiboot.h"
#include "x86.h"

#define FW_CFG_SEL 0x510
#define FW_CFG_DATA 0x511
#define APIC_BASE 0xfee00000u
#define MSR_EFER 0xc0000080u
#define MSR_APIC_BASE 0x1bu

static unsigned bad;

static void check(int ok, const char *what)
{
	if (!ok) {
		bad++;
		mb_printf("mbprobe: FAIL %s\n", what);
	}
}

static void fw_cfg_select(uint16_t key)
{
	__asm__ volatile("outw %0, %1" : : "a"(key), "Nd"((uint16_t)FW_CFG_SEL));
}

static uint32_t fw_cfg_read(uint16_t key, unsigned bytes)
{
	uint32_t v = 0;

	fw_cfg_select(key);
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint32_t)inb(FW_CFG_DATA) << (8 * i);
	return v;
}

static int streq_n(const char *a, const char *b, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

static void env_module(const struct multiboot_info *mbi)
{
	const struct multiboot_module *m = (const void *)mbi->mods_addr;
	unsigned cpus = 0;

	if (!(mbi->flags & MULTIBOOT_INFO_MODS)) {
		mb_printf("mbprobe: no modules\n");
		return;
	}
	for (uint32_t i = 0; i < mbi->mods_count; i++) {
		const char *p = (const char *)m[i].mod_start, *end = (const char *)m[i].mod_end;

		mb_printf("mbprobe: module %u \"%s\": %u bytes, page-aligned %s\n", i,
			  m[i].string ? (const char *)m[i].string : "",
			  m[i].mod_end - m[i].mod_start, m[i].mod_start & 0xfff ? "no" : "yes");
		for (; p + 8 <= end; p++)
			if ((p == (const char *)m[i].mod_start || p[-1] == '\n') &&
			    streq_n(p, "NR_CPUS=", 8) && p + 8 < end)
				cpus = (unsigned)(p[8] - '0');
	}
	mb_printf("mbprobe: environment NR_CPUS=%u\n", cpus);
}

static void info_block(uint32_t magic, const struct multiboot_info *mbi)
{
	check(magic == MULTIBOOT_BOOTLOADER_MAGIC, "EAX holds the Multiboot magic");
	check((uint32_t)mbi >= (uint32_t)__image_end, "the info block lies above the image");
	mb_printf("mbprobe: info flags %x mem_lower %u KiB mem_upper %u KiB\n", mbi->flags,
		  mbi->mem_lower, mbi->mem_upper);
	if (mbi->flags & MULTIBOOT_INFO_CMDLINE)
		mb_printf("mbprobe: cmdline \"%s\"\n", (const char *)mbi->cmdline);
	if (mbi->flags & MULTIBOOT_INFO_MEM_MAP) {
		for (uint32_t off = 0; off < mbi->mmap_length;) {
			const struct multiboot_mmap_entry *e = (const void *)(mbi->mmap_addr + off);

			mb_printf("mbprobe: mmap %08x%08x +%08x%08x type %u\n",
				  (uint32_t)(e->base_addr >> 32), (uint32_t)e->base_addr,
				  (uint32_t)(e->length >> 32), (uint32_t)e->length, e->type);
			off += e->size + 4;
		}
	}
	env_module(mbi);
}

static void cpu(void)
{
	uint32_t r[4], e[4], x[4], s[4];

	cpuid(1, r);
	cpuid(7, s);
	cpuid(0x80000001u, e);
	cpuid(0x80000008u, x);
	mb_printf("mbprobe: cpuid pse %u pae %u pse36 %u apic %u x2apic %u pcid %u lm %u nx %u\n",
		  r[3] >> 3 & 1, r[3] >> 6 & 1, r[3] >> 17 & 1, r[3] >> 9 & 1, r[2] >> 21 & 1,
		  r[2] >> 17 & 1, e[3] >> 29 & 1, e[3] >> 20 & 1);
	mb_printf("mbprobe: cpuid smep %u smap %u umip %u pku %u la57 %u maxphyaddr %u\n",
		  s[1] >> 7 & 1, s[1] >> 20 & 1, s[2] >> 2 & 1, s[2] >> 3 & 1, s[2] >> 16 & 1,
		  x[0] & 0xff);
	check(!(s[2] >> 3 & 1) && !(s[2] >> 16 & 1), "PKU and LA57 are not offered");
}

static void uart_pic_fwcfg(void)
{
	uint32_t sig;

	mb_printf("mbprobe: com1 lsr %x\n", inb(0x3f8 + 5));
	/* the 8259s: ICW1..ICW4, vectors 0x20/0x28, then every line masked */
	outb(0x20, 0x11), outb(0xa0, 0x11);
	outb(0x21, 0x20), outb(0xa1, 0x28);
	outb(0x21, 0x04), outb(0xa1, 0x02);
	outb(0x21, 0x01), outb(0xa1, 0x01);
	outb(0x21, 0xff), outb(0xa1, 0xff);
	mb_printf("mbprobe: pic masks %x %x\n", inb(0x21), inb(0xa1));
	check(inb(0x21) == 0xff && inb(0xa1) == 0xff, "the PIC masks read back");
	sig = fw_cfg_read(0x0000, 4);
	mb_printf("mbprobe: fw_cfg signature %c%c%c%c, cpus %u, max cpus %u, ram %u MiB\n",
		  sig & 0xff, sig >> 8 & 0xff, sig >> 16 & 0xff, sig >> 24, fw_cfg_read(0x0005, 2),
		  fw_cfg_read(0x000f, 2), fw_cfg_read(0x0003, 4) >> 20);
	check(sig == 0x554d4551u, "fw_cfg signature QEMU");
	check(fw_cfg_read(0x0005, 2) == 1, "fw_cfg says one CPU");
}

static uint32_t apic_read(uint32_t reg)
{
	return *(volatile uint32_t *)(APIC_BASE + reg);
}

static void apic_write(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)(APIC_BASE + reg) = v;
}

static void apic(void)
{
	uint64_t base = rdmsr(MSR_APIC_BASE);
	uint32_t id, ver;

	mb_printf("mbprobe: apic base msr %x (bsp %u, enabled %u)\n", (uint32_t)base,
		  (uint32_t)base >> 8 & 1, (uint32_t)base >> 11 & 1);
	id = apic_read(0x20) >> 24;
	ver = apic_read(0x30);
	apic_write(0xf0, apic_read(0xf0) | 0x100 | 0xff); /* SVR: enabled, spurious 0xff */
	mb_printf("mbprobe: apic id %u version %x lvt entries %u svr %x\n", id, ver & 0xff,
		  (ver >> 16 & 0xff) + 1, apic_read(0xf0));
	/* INIT, then SIPI, to APIC 1: nobody there on one vCPU */
	apic_write(0x310, 1u << 24);
	apic_write(0x300, 0x00004500);
	apic_write(0x300, 0x00004608);
	mb_printf("mbprobe: icr after INIT/SIPI to apic 1: delivery %s\n",
		  apic_read(0x300) & (1u << 12) ? "pending" : "idle");
	check(id == 0, "the boot CPU's APIC ID is 0");
}

/* IA-32e mode, entered as a test kernel does: identity 2 MiB pages below
 * 64 MiB (the APIC window mapped too), CR4.PAE, CR3, EFER.LME, CR0.PG. */
static uint64_t pml4[512] __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd[4][512] __attribute__((aligned(4096)));

static void long_mode(void)
{
	const uint64_t rw = X86_PTE_P | X86_PTE_W;
	uint64_t efer;

	for (unsigned g = 0; g < 4; g++) {
		for (unsigned i = 0; i < 512; i++)
			pd[g][i] = ((uint64_t)g << 30) + ((uint64_t)i << 21) + (rw | X86_PTE_PS);
		pdpt[g] = (uint32_t)pd[g] | rw;
	}
	/* the APIC page uncached (PCD), as test kernels map it */
	pd[3][(APIC_BASE >> 21) & 511] |= X86_PTE_PCD;
	pml4[0] = (uint32_t)pdpt | rw;
	write_cr4(read_cr4() | X86_CR4_PAE);
	write_cr3((uint32_t)pml4);
	wrmsr(MSR_EFER, rdmsr(MSR_EFER) | X86_EFER_LME);
	write_cr0(read_cr0() | X86_CR0_PG);
	efer = rdmsr(MSR_EFER);
	mb_printf("mbprobe: IA-32e mode: efer %x\n", (uint32_t)efer);
	check(efer & X86_EFER_LMA, "EFER.LMA after CR0.PG");
}

void trap32(struct tf32 *f);
void trap32(struct tf32 *f)
{
	mb_printf("mbprobe: unexpected vector %u err %x at eip %x\n", f->vector, f->err, f->eip);
	mb_exit(2);
}

void mb_main(uint32_t magic, const struct multiboot_info *mbi);
void mb_main(uint32_t magic, const struct multiboot_info *mbi)
{
	info_block(magic, mbi);
	cpu();
	uart_pic_fwcfg();
	apic();
	long_mode();
	/* the same APIC through the 4-level tables, from compatibility mode */
	mb_printf("mbprobe: apic id %u through paging\n", apic_read(0x20) >> 24);
	mb_printf("mbprobe: %s\n", bad ? "FAILED" : "done");
	mb_exit(bad ? 1 : 0);
}
