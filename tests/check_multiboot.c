/* The Multiboot v1 protocol: crafted ELF32 and ELF64 kernels with a
 * Multiboot header, loaded at p_paddr; the info block, memory map and
 * modules multiboot_setup_memory leaves in guest RAM; the entry registers;
 * and every rejection with its one-line message. */
#include <check.h>
#include <elf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boot.h"
#include "elf_load.h"
#include "mptable.h"
#include "multiboot.h"
#include "multiboot_load.h"
#include "shadowvm_abi.h"
#include "status.h"
#include "suites.h"
#include "util.h"

#define RAM (64ull << 20)
#define FILE_LEN 0x3000u
#define TEXT_OFF 0x1000u /* the header sits at the start of .text */
#define TEXT_LEN 0x100u
#define DATA_OFF 0x1100u
#define DATA_LEN 0x10u
#define BSS_MEMSZ 0x2000u
#define TEXT_PA 0x100000u
#define DATA_PA 0x102000u
#define HIGH_VA 0xc0000000u /* a higher-half link: p_vaddr != p_paddr */
#define ENTRY_PA (TEXT_PA + 0x0c)

struct mb_image {
	int cls; /* ELFCLASS32 or ELFCLASS64 */
	uint16_t machine;
	uint64_t entry;
	uint64_t paddr[2], vaddr[2], memsz[2];
	uint32_t hdr_off, magic, flags, checksum;
};

static void base_mb(struct mb_image *im, int cls)
{
	*im = (struct mb_image){
		.cls = cls,
		.machine = cls == ELFCLASS32 ? EM_386 : EM_X86_64,
		.entry = ENTRY_PA,
		.paddr = { TEXT_PA, DATA_PA },
		.vaddr = { HIGH_VA + TEXT_PA, HIGH_VA + DATA_PA },
		.memsz = { TEXT_LEN, BSS_MEMSZ },
		.hdr_off = TEXT_OFF,
		.magic = MULTIBOOT_HEADER_MAGIC,
		.flags = MULTIBOOT_HDR_PAGE_ALIGN | MULTIBOOT_HDR_MEMORY_INFO,
	};
	im->checksum = -(im->magic + im->flags);
}

/* The ELF headers of im, written by libelf (either class through one
 * GElf path), into the first bytes of buf. */
static void put_headers(uint8_t *buf, const struct mb_image *im)
{
	char *tmp = write_temp("", 0);
	int fd = open(tmp, O_RDWR);
	Elf *e;
	GElf_Ehdr eh;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_ne(elf_version(EV_CURRENT), EV_NONE);
	e = elf_begin(fd, ELF_C_WRITE, NULL);
	ck_assert_ptr_nonnull(e);
	ck_assert_ptr_nonnull(gelf_newehdr(e, im->cls));
	ck_assert_ptr_nonnull(gelf_getehdr(e, &eh));
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_type = ET_EXEC;
	eh.e_machine = im->machine;
	eh.e_version = EV_CURRENT;
	eh.e_entry = im->entry;
	eh.e_ehsize = (uint16_t)gelf_fsize(e, ELF_T_EHDR, 1, EV_CURRENT);
	eh.e_phoff = eh.e_ehsize;
	eh.e_phentsize = (uint16_t)gelf_fsize(e, ELF_T_PHDR, 1, EV_CURRENT);
	ck_assert(gelf_update_ehdr(e, &eh));
	ck_assert_ptr_nonnull(gelf_newphdr(e, 2));
	for (int i = 0; i < 2; i++) {
		GElf_Phdr ph = { .p_type = PT_LOAD,
				 .p_flags = i ? PF_R | PF_W : PF_R | PF_X,
				 .p_offset = i ? DATA_OFF : TEXT_OFF,
				 .p_vaddr = im->vaddr[i],
				 .p_paddr = im->paddr[i],
				 .p_filesz = i ? DATA_LEN : TEXT_LEN,
				 .p_memsz = im->memsz[i],
				 .p_align = 0x1000 };
		ck_assert(gelf_update_phdr(e, i, &ph));
	}
	elf_flagelf(e, ELF_C_SET, ELF_F_LAYOUT);
	ck_assert_int_ge(elf_update(e, ELF_C_WRITE), 0);
	elf_end(e);
	ck_assert_int_gt(pread(fd, buf, TEXT_OFF, 0), 0);
	close(fd);
	unlink(tmp);
	free(tmp);
}

/* Headers, then text bytes 0x40.. and data bytes 0x80.., then the
 * Multiboot header at hdr_off (over the text's first bytes by default). */
static char *write_mb(const struct mb_image *im)
{
	static uint8_t buf[FILE_LEN];
	uint32_t h[3] = { im->magic, im->flags, im->checksum };

	memset(buf, 0, sizeof(buf));
	put_headers(buf, im);
	for (unsigned i = 0; i < TEXT_LEN; i++)
		buf[TEXT_OFF + i] = (uint8_t)(0x40 + i);
	for (unsigned i = 0; i < DATA_LEN; i++)
		buf[DATA_OFF + i] = (uint8_t)(0x80 + i);
	memcpy(buf + im->hdr_off, h, sizeof(h));
	return write_temp(buf, sizeof(buf));
}

static const int classes[] = { ELFCLASS32, ELFCLASS64 };

START_TEST(test_multiboot_loads_at_paddr_and_zeroes_bss)
{
	struct guest_mem mem;
	struct mb_image im;
	struct elf_image img;
	char err[512] = "", *path;
	uint8_t *text, *data;

	base_mb(&im, classes[_i]);
	path = write_mb(&im);
	ck_assert_int_eq(mem_alloc(&mem, RAM), 0);
	memset(mem.host, 0xaa, RAM);
	ck_assert_msg(elf_load(path, RAM, &mem, &img, err, sizeof(err)) == VMM_OK, "%s", err);
	ck_assert(img.multiboot);
	ck_assert_uint_eq(img.mb_header, TEXT_OFF);
	ck_assert_uint_eq(img.mb_flags, im.flags);
	ck_assert_uint_eq(img.entry, ENTRY_PA);
	ck_assert_uint_eq(img.end, DATA_PA + BSS_MEMSZ);
	ck_assert_uint_eq(img.nloads, 2);
	text = mem_gpa(&mem, TEXT_PA, TEXT_LEN);
	data = mem_gpa(&mem, DATA_PA, BSS_MEMSZ);
	{
		const uint32_t hdr[3] = { im.magic, im.flags, im.checksum };
		ck_assert_mem_eq(text, hdr, sizeof(hdr));
	}
	for (unsigned i = 12; i < TEXT_LEN; i++)
		ck_assert_uint_eq(text[i], (uint8_t)(0x40 + i));
	for (unsigned i = 0; i < DATA_LEN; i++)
		ck_assert_uint_eq(data[i], 0x80 + i);
	for (unsigned i = DATA_LEN; i < BSS_MEMSZ; i++)
		ck_assert_uint_eq(data[i], 0);
	ck_assert_uint_eq(text[TEXT_LEN], 0xaa);
	mem_free(&mem);
	free(path);
}
END_TEST

/* An ELF64 whose only Multiboot header lies past 8 KiB is an ABI image. */
START_TEST(test_multiboot_header_past_8k_is_abi_image)
{
	struct mb_image im;
	struct elf_image img;
	char err[512] = "", *path;

	base_mb(&im, ELFCLASS64);
	im.hdr_off = MULTIBOOT_SEARCH;
	im.vaddr[0] = im.paddr[0];
	im.vaddr[1] = im.paddr[1];
	path = write_mb(&im);
	ck_assert_msg(elf_load(path, RAM, NULL, &img, err, sizeof(err)) == VMM_OK, "%s", err);
	ck_assert(!img.multiboot);
	free(path);
}
END_TEST

static const char *file_in(const char *name, const void *data, size_t len)
{
	const char *p = test_file(name);
	FILE *f = fopen(p, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	fclose(f);
	return p;
}

struct loaded {
	struct guest_mem mem;
	struct elf_image img;
	char *path;
	struct boot_module mods[2];
	uint8_t big[5000];
};

static int load_with_modules(struct loaded *l, uint64_t ram, unsigned nmods, char *err,
			     size_t errlen)
{
	struct mb_image im;
	struct boot_args args;

	base_mb(&im, ELFCLASS32);
	l->path = write_mb(&im);
	for (unsigned i = 0; i < sizeof(l->big); i++)
		l->big[i] = (uint8_t)(i * 7);
	l->mods[0] = (struct boot_module){ file_in("env.txt", "hello module", 12), "env" };
	l->mods[1].path = file_in("big.bin", l->big, sizeof(l->big));
	l->mods[1].string = l->mods[1].path;
	args = (struct boot_args){ l->path, "a=1 b", l->mods, nmods, false };
	ck_assert_int_eq(mem_alloc(&l->mem, ram), 0);
	memset(l->mem.host, 0xaa, ram);
	ck_assert_int_eq(elf_load(l->path, ram, &l->mem, &l->img, err, errlen), VMM_OK);
	return boot_setup_memory(&l->mem, &l->img, &args, err, errlen);
}

static const char *gstr(const struct guest_mem *mem, uint32_t gpa)
{
	const char *s = mem_gpa(mem, gpa, 1);

	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_nonnull(memchr(s, 0, mem->size - gpa));
	return s;
}

START_TEST(test_multiboot_info_block_fields)
{
	static struct loaded l;
	char err[512] = "", want[600];
	const struct multiboot_info *mi;

	ck_assert_msg(load_with_modules(&l, RAM, 2, err, sizeof(err)) == VMM_OK, "%s", err);
	/* above both modules: 0x104000 (12 bytes), 0x105000 (5000 bytes) */
	ck_assert_uint_eq(l.img.mb_info, 0x107000);
	ck_assert_uint_le(l.img.mb_end, l.img.mb_info + 0x1000);
	mi = mem_gpa(&l.mem, l.img.mb_info, sizeof(*mi));
	ck_assert_uint_eq(mi->flags, MULTIBOOT_INFO_MEMORY | MULTIBOOT_INFO_CMDLINE |
					     MULTIBOOT_INFO_MODS | MULTIBOOT_INFO_MEM_MAP |
					     MULTIBOOT_INFO_LOADER_NAME);
	ck_assert_uint_eq(mi->mem_lower, 639);
	ck_assert_uint_eq(mi->mem_upper, (RAM - (1u << 20)) / 1024);
	snprintf(want, sizeof(want), "%s a=1 b", l.path);
	ck_assert_str_eq(gstr(&l.mem, mi->cmdline), want);
	ck_assert_str_eq(gstr(&l.mem, mi->boot_loader_name), "shadowvm");
	ck_assert_uint_eq(mi->boot_device, 0);
	ck_assert_uint_eq(mi->vbe_mode, 0);
	/* every pointer inside the info area, above the image */
	ck_assert_uint_ge(mi->mmap_addr, l.img.mb_info);
	ck_assert_uint_lt(mi->cmdline, l.img.mb_end);
	mem_free(&l.mem);
	free(l.path);
}
END_TEST

static uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

/* The MP table found as xv6's mp.c finds it (the BDA's EBDA segment, then
 * "_MP_" on a 16-byte boundary there, both checksums, version 1 or 4) and
 * walked with the entry sizes of MP spec 1.4 §4.3: one enabled BSP at local
 * APIC ID 0, one usable IOAPIC at 0xfec00000 with the ID the IOAPIC is
 * given, IRQ 4 and 14 on its pins 4 and 14, no type outside 0..4. */
START_TEST(test_multiboot_mptable_found_and_walked)
{
	static struct loaded l;
	struct mb_image im;
	struct boot_args args;
	char err[512] = "";
	const uint8_t *bda, *fp = NULL, *conf, *p, *end;
	unsigned procs = 0, ioapics = 0, types = 0;
	bool irq4 = false, irq14 = false;

	base_mb(&im, ELFCLASS32);
	l.path = write_mb(&im);
	args = (struct boot_args){ .image = l.path, .cmdline = "", .mptable = true };
	ck_assert_int_eq(mem_alloc(&l.mem, RAM), 0);
	ck_assert_int_eq(elf_load(l.path, RAM, &l.mem, &l.img, err, sizeof(err)), VMM_OK);
	ck_assert_msg(boot_setup_memory(&l.mem, &l.img, &args, err, sizeof(err)) == VMM_OK, "%s",
		      err);
	bda = mem_gpa(&l.mem, 0x400, 0x100);
	ck_assert_uint_eq(rd16(bda), 0x3f8);      /* COM1 */
	ck_assert_uint_eq(rd16(bda + 0x13), 639); /* base memory KiB = mem_lower */
	p = mem_gpa(&l.mem, (uint32_t)rd16(bda + 0x0e) << 4, 1024);
	for (unsigned off = 0; off < 1024 && !fp; off += 16)
		if (!memcmp(p + off, "_MP_", 4) && sum8(p + off, 16) == 0)
			fp = p + off;
	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_eq(fp[8], 1);
	ck_assert_uint_eq(fp[12] & 0x80, 0); /* IMCRP clear */
	conf = mem_gpa(&l.mem, rd32(fp + 4), 44);
	ck_assert_ptr_nonnull(conf);
	ck_assert_mem_eq(conf, "PCMP", 4);
	ck_assert(conf[6] == 1 || conf[6] == 4);
	ck_assert_uint_eq(sum8(conf, rd16(conf + 4)), 0);
	ck_assert_uint_eq(rd32(conf + 36), 0xfee00000);
	end = conf + rd16(conf + 4);
	for (p = conf + 44; p < end; types++) {
		switch (p[0]) {
		case 0:
			procs++;
			ck_assert_uint_eq(p[1], 0);    /* KVM's vCPU 0 */
			ck_assert_uint_eq(p[3], 0x03); /* enabled, BSP */
			p += 20;
			break;
		case 2:
			ioapics++;
			ck_assert_uint_eq(p[1], MPTABLE_IOAPIC_ID);
			ck_assert_uint_eq(p[3] & 1, 1);
			ck_assert_uint_eq(rd32(p + 4), 0xfec00000);
			p += 8;
			break;
		case 3:
			irq4 |= p[5] == 4 && p[7] == 4 && p[6] == MPTABLE_IOAPIC_ID;
			irq14 |= p[5] == 14 && p[7] == 14 && p[6] == MPTABLE_IOAPIC_ID;
			p += 8;
			break;
		case 1:
		case 4: p += 8; break;
		default: ck_abort_msg("MP entry type %u at offset %td", p[0], p - conf);
		}
	}
	ck_assert_ptr_eq(p, end);
	ck_assert_uint_eq(types, rd16(conf + 34));
	ck_assert_uint_eq(procs, 1);
	ck_assert_uint_eq(ioapics, 1);
	ck_assert(irq4 && irq14);
	mem_free(&l.mem);
	free(l.path);
}
END_TEST

START_TEST(test_multiboot_no_mptable_leaves_bios_area)
{
	static struct loaded l;
	struct mb_image im;
	struct boot_args args;
	char err[512] = "";

	base_mb(&im, ELFCLASS32);
	l.path = write_mb(&im);
	args = (struct boot_args){ .image = l.path, .cmdline = "" };
	ck_assert_int_eq(mem_alloc(&l.mem, RAM), 0);
	memset(l.mem.host, 0xaa, RAM);
	ck_assert_int_eq(elf_load(l.path, RAM, &l.mem, &l.img, err, sizeof(err)), VMM_OK);
	ck_assert_int_eq(boot_setup_memory(&l.mem, &l.img, &args, err, sizeof(err)), VMM_OK);
	ck_assert_uint_eq(*(const uint8_t *)mem_gpa(&l.mem, 0x40e, 1), 0xaa);
	ck_assert_uint_eq(*(const uint8_t *)mem_gpa(&l.mem, 0x9fc00, 1), 0xaa);
	mem_free(&l.mem);
	free(l.path);
}
END_TEST

START_TEST(test_multiboot_memory_map)
{
	static struct loaded l;
	static const uint64_t want[6][3] = {
		{ 0, 0x9fc00, 1 },         { 0x9fc00, 0x400, 2 },
		{ 0xf0000, 0x10000, 2 },   { 0x100000, RAM - 0x100000, 1 },
		{ 0xfec00000, 0x1000, 2 }, { 0xfee00000, 0x1000, 2 },
	};
	char err[512] = "";
	const struct multiboot_info *mi;
	const uint8_t *p;

	ck_assert_msg(load_with_modules(&l, RAM, 0, err, sizeof(err)) == VMM_OK, "%s", err);
	mi = mem_gpa(&l.mem, l.img.mb_info, sizeof(*mi));
	ck_assert_uint_eq(mi->mmap_length, 6 * 24);
	p = mem_gpa(&l.mem, mi->mmap_addr, mi->mmap_length);
	ck_assert_ptr_nonnull(p);
	for (unsigned i = 0; i < 6; i++, p += 24) {
		struct multiboot_mmap_entry e;

		memcpy(&e, p, sizeof(e));
		ck_assert_uint_eq(e.size, 20);
		ck_assert_uint_eq(e.base_addr, want[i][0]);
		ck_assert_uint_eq(e.length, want[i][1]);
		ck_assert_uint_eq(e.type, want[i][2]);
	}
	ck_assert_uint_eq(mi->mods_count, 0);
	/* no modules: the info block is the first page past the image */
	ck_assert_uint_eq(l.img.mb_info, DATA_PA + BSS_MEMSZ);
	mem_free(&l.mem);
	free(l.path);
}
END_TEST

START_TEST(test_multiboot_modules_placed_and_listed)
{
	static struct loaded l;
	char err[512] = "";
	const struct multiboot_info *mi;
	const struct multiboot_module *m;

	ck_assert_msg(load_with_modules(&l, RAM, 2, err, sizeof(err)) == VMM_OK, "%s", err);
	mi = mem_gpa(&l.mem, l.img.mb_info, sizeof(*mi));
	ck_assert_uint_eq(mi->mods_count, 2);
	m = mem_gpa(&l.mem, mi->mods_addr, 2 * sizeof(*m));
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(m[0].mod_start, DATA_PA + BSS_MEMSZ); /* page-aligned past the BSS */
	ck_assert_uint_eq(m[0].mod_end, m[0].mod_start + 12);
	ck_assert_uint_eq(m[1].mod_start, m[0].mod_start + 0x1000);
	ck_assert_uint_eq(m[1].mod_end, m[1].mod_start + sizeof(l.big));
	for (unsigned i = 0; i < 2; i++)
		ck_assert_uint_eq(m[i].mod_start % 0x1000, 0);
	ck_assert_mem_eq(mem_gpa(&l.mem, m[0].mod_start, 12), "hello module", 12);
	ck_assert_mem_eq(mem_gpa(&l.mem, m[1].mod_start, sizeof(l.big)), l.big, sizeof(l.big));
	ck_assert_str_eq(gstr(&l.mem, m[0].string), "env");
	ck_assert_str_eq(gstr(&l.mem, m[1].string), l.mods[1].path);
	ck_assert_uint_ge(mi->mods_addr, l.img.mb_info);
	ck_assert_uint_ge(l.img.mb_info, m[1].mod_end);
	mem_free(&l.mem);
	free(l.path);
}
END_TEST

START_TEST(test_multiboot_entry_registers)
{
	struct elf_image img = { .entry = ENTRY_PA, .multiboot = true, .mb_info = 0x107000 };
	struct kvm_regs r;
	struct kvm_sregs s;
	const struct kvm_segment *data[] = { &s.ds, &s.es, &s.fs, &s.gs, &s.ss };

	memset(&r, 0x5a, sizeof(r));
	memset(&s, 0x5a, sizeof(s));
	boot_multiboot_regs(&r, &img);
	ck_assert_uint_eq(r.rax, 0x2BADB002);
	ck_assert_uint_eq(r.rbx, 0x107000);
	ck_assert_uint_eq(r.rip, ENTRY_PA);
	ck_assert_uint_eq(r.rflags, 0x2);
	ck_assert_uint_eq(r.rsp | r.rcx | r.rdx | r.rsi | r.rdi, 0);
	boot_multiboot_sregs(&s);
	ck_assert_uint_eq(s.cr0, 0x11); /* PE | ET, no PG */
	ck_assert_uint_eq(s.cr3 | s.cr4 | s.efer, 0);
	ck_assert_uint_eq(s.cs.selector, 0x08); /* QEMU's and GRUB's: GDT index 1 */
	ck_assert_uint_eq(s.cs.type, 0xb);
	ck_assert_uint_eq(s.cs.db, 1);
	ck_assert_uint_eq(s.cs.l, 0);
	ck_assert_uint_eq(s.cs.dpl, 0);
	for (unsigned i = 0; i < 5; i++) {
		ck_assert_uint_eq(data[i]->selector, 0x10);
		ck_assert_uint_eq(data[i]->type, 0x3);
		ck_assert_uint_eq(data[i]->base, 0);
		ck_assert_uint_eq(data[i]->limit, 0xffffffff);
		ck_assert_uint_eq(data[i]->g, 1);
		ck_assert_uint_eq(data[i]->db, 1);
	}
	ck_assert_uint_eq(s.gdt.base | s.gdt.limit, 0);
	ck_assert_uint_eq(s.idt.base, 0);
	ck_assert_uint_eq(s.idt.limit, 0x3ff);
}
END_TEST

struct reject_case {
	const char *name;
	int cls;
	void (*mutate)(struct mb_image *im);
	const char *msg; /* after "<path>: " */
};

static void m_checksum(struct mb_image *im)
{
	im->checksum++;
}
static void m_past_8k(struct mb_image *im)
{
	im->hdr_off = MULTIBOOT_SEARCH;
}
static void m_straddles_8k(struct mb_image *im)
{
	im->hdr_off = MULTIBOOT_SEARCH - 8;
}
static void m_flag3(struct mb_image *im)
{
	im->flags |= 1u << 3;
	im->checksum = -(im->magic + im->flags);
}
static void m_aout(struct mb_image *im)
{
	im->flags |= MULTIBOOT_HDR_AOUT_KLUDGE;
	im->checksum = -(im->magic + im->flags);
}
static void m_outside_ram(struct mb_image *im)
{
	im->paddr[1] = RAM - 0x1000;
}
static void m_overlap(struct mb_image *im)
{
	im->paddr[1] = TEXT_PA + 0x80;
}
static void m_entry_virtual(struct mb_image *im)
{
	im->entry = HIGH_VA + ENTRY_PA;
}
static void m_machine(struct mb_image *im)
{
	im->machine = im->cls == ELFCLASS32 ? EM_X86_64 : EM_386;
}
static void m_entry_high(struct mb_image *im)
{
	im->entry = 0x100000000ull + ENTRY_PA;
}

static const struct reject_case rejects[] = {
	{ "checksum", ELFCLASS32, m_checksum,
	  "Multiboot header at offset 0x1000: checksum 0xe4524ffc is wrong (magic + flags + checksum = 0x00000001, must be 0)" },
	{ "past_8k", ELFCLASS32, m_past_8k,
	  "e_ident[EI_CLASS] 1 is not ELFCLASS64 (2); a 32-bit image needs a Multiboot header in its first 8192 bytes" },
	{ "straddles_8k", ELFCLASS32, m_straddles_8k,
	  "e_ident[EI_CLASS] 1 is not ELFCLASS64 (2); a 32-bit image needs a Multiboot header" },
	{ "flag3", ELFCLASS32, m_flag3,
	  "Multiboot header flags 0x0000000b: required bits 0x0008 are not supported (bits 0-2 are)" },
	{ "aout", ELFCLASS64, m_aout,
	  "Multiboot header flags 0x00010003: bit 16 (a.out kludge load addresses) is not supported; link the kernel as ELF" },
	{ "outside_ram", ELFCLASS32, m_outside_ram,
	  "phdr[1] end p_paddr+p_memsz 0x4001000 exceeds guest RAM 0x4000000" },
	{ "overlap", ELFCLASS64, m_overlap,
	  "phdr[1] [0x100080, 0x102080) overlaps phdr[0] [0x100000, 0x100100)" },
	{ "entry_virtual", ELFCLASS32, m_entry_virtual,
	  "e_entry 0xc010000c is not inside a PT_LOAD segment's physical range (Multiboot enters at a physical address)" },
	{ "machine32", ELFCLASS32, m_machine,
	  "e_machine 62 of an ELFCLASS32 image is not EM_386 (3)" },
	{ "machine64", ELFCLASS64, m_machine, "e_machine 3 is not EM_X86_64 (62)" },
	{ "entry_high", ELFCLASS64, m_entry_high,
	  "e_entry 0x10010000c exceeds 0xffffffff (Multiboot enters in 32-bit mode)" },
};

START_TEST(test_multiboot_rejects)
{
	const struct reject_case *c = &rejects[_i];
	struct mb_image im;
	struct elf_image img;
	char err[512] = "", want[512], *path;

	base_mb(&im, c->cls);
	c->mutate(&im);
	path = write_mb(&im);
	snprintf(want, sizeof(want), "%s: %s", path, c->msg);
	ck_assert_int_eq(elf_load(path, RAM, NULL, &img, err, sizeof(err)), VMM_E_IMAGE);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s\n  got:  %s\n  want: %s", c->name,
		      err, want);
	ck_assert_ptr_null(strchr(err, '\n'));
	free(path);
}
END_TEST

/* A file of `len` bytes (sparse) in the test's directory. */
static const char *sized_file(const char *name, off_t len)
{
	const char *p = test_file(name);

	ck_assert_int_eq(close(creat(p, 0600)), 0);
	ck_assert_int_eq(truncate(p, len), 0);
	return p;
}

START_TEST(test_multiboot_rejects_module_too_big)
{
	const char *huge = sized_file("huge.bin", 3u << 20);
	struct boot_module mods[] = { { huge, "huge" } };
	struct boot_args args = { "k.elf", "", mods, 1, false };
	struct elf_image img = { .end = 0x104000, .multiboot = true };
	struct guest_mem mem;
	char err[512] = "", want[512];

	ck_assert_int_eq(mem_alloc(&mem, 4u << 20), 0);
	snprintf(want, sizeof(want),
		 "%s: module of 0x300000 bytes at 0x104000 exceeds guest RAM 0x400000", huge);
	ck_assert_int_eq(boot_setup_memory(&mem, &img, &args, err, sizeof(err)), VMM_E_IMAGE);
	ck_assert_str_eq(err, want);
	/* the same file fits 8 MiB */
	mem_free(&mem);
	ck_assert_int_eq(mem_alloc(&mem, 8u << 20), 0);
	ck_assert_msg(boot_setup_memory(&mem, &img, &args, err, sizeof(err)) == VMM_OK, "%s", err);
	ck_assert_uint_eq(img.mb_info, 0x104000 + (3u << 20));
	mem_free(&mem);
}
END_TEST

START_TEST(test_multiboot_rejects_info_area_past_ram)
{
	/* a module that ends exactly at the top of RAM leaves no room */
	const char *fill = sized_file("fill.bin", (4u << 20) - 0x104000);
	struct boot_module mods[] = { { fill, "fill" } };
	struct boot_args args = { "k.elf", "", mods, 1, false };
	struct elf_image img = { .end = 0x104000, .multiboot = true };
	struct guest_mem mem;
	char err[512] = "";

	ck_assert_int_eq(mem_alloc(&mem, 4u << 20), 0);
	ck_assert_int_eq(boot_setup_memory(&mem, &img, &args, err, sizeof(err)), VMM_E_IMAGE);
	ck_assert_msg(strncmp(err, "k.elf: the Multiboot info area [0x400000, 0x", 44) == 0, "%s",
		      err);
	ck_assert_ptr_nonnull(strstr(err, ") exceeds guest RAM 0x400000"));
	mem_free(&mem);
}
END_TEST

START_TEST(test_multiboot_rejects_too_many_and_missing_modules)
{
	struct boot_module mods[BOOT_MODULES_MAX + 1];
	struct boot_args args = { "k.elf", "", mods, BOOT_MODULES_MAX + 1, false };
	struct elf_image img = { .end = 0x104000, .multiboot = true };
	struct guest_mem mem;
	char err[512] = "";

	for (unsigned i = 0; i <= BOOT_MODULES_MAX; i++)
		mods[i] = (struct boot_module){ "/nonexistent/m", "m" };
	ck_assert_int_eq(mem_alloc(&mem, 4u << 20), 0);
	ck_assert_int_eq(boot_setup_memory(&mem, &img, &args, err, sizeof(err)), VMM_E_USAGE);
	ck_assert_str_eq(err, "--module: 17 modules exceed limit 16");
	args.nmods = 1;
	ck_assert_int_eq(boot_setup_memory(&mem, &img, &args, err, sizeof(err)), VMM_E_NOINPUT);
	ck_assert_str_eq(err, "/nonexistent/m: cannot open module: No such file or directory");
	mem_free(&mem);
}
END_TEST

START_TEST(test_multiboot_rejects_ram_above_ioapic)
{
	/* checked before any byte of RAM is touched */
	struct guest_mem mem = { .host = NULL, .size = 4ull << 30 };
	struct elf_image img = { .end = 0x104000, .multiboot = true };
	struct boot_args args = { "k.elf", "", NULL, 0, false };
	char err[512] = "";

	ck_assert_int_eq(boot_setup_memory(&mem, &img, &args, err, sizeof(err)), VMM_E_USAGE);
	ck_assert_str_eq(err, "k.elf: guest RAM 0x100000000 of a Multiboot image exceeds limit "
			      "0xfec00000 (the IOAPIC window)");
}
END_TEST

START_TEST(test_multiboot_module_needs_multiboot_image)
{
	struct boot_module mods[] = { { "env.txt", "env" } };
	struct boot_args args = { "abi.elf", "", mods, 1, false };
	struct elf_image img = { .end = 0x104000, .multiboot = false };
	struct guest_mem mem;
	char err[512] = "";

	ck_assert_int_eq(mem_alloc(&mem, 4u << 20), 0);
	ck_assert_int_eq(boot_setup_memory(&mem, &img, &args, err, sizeof(err)), VMM_E_USAGE);
	ck_assert_str_eq(err, "abi.elf: --module needs a Multiboot image (no Multiboot header in "
			      "its first 8192 bytes)");
	/* and nothing of the ABI's boot area was written */
	ck_assert_uint_eq(*(uint32_t *)mem_gpa(&mem, 0x1000, 4), 0);
	mem_free(&mem);
}
END_TEST

/* The same call for an ABI image still writes the ABI's boot area, and
 * nothing of Multiboot's above the image. */
START_TEST(test_multiboot_abi_image_keeps_abi_boot)
{
	struct boot_args args = { "abi.elf", "x=1", NULL, 0, false };
	struct elf_image img = { .entry = 0x100000, .end = 0x104000 };
	const struct shadowvm_boot_info *bi;
	struct guest_mem mem;
	char err[512] = "";

	ck_assert_int_eq(mem_alloc(&mem, 4u << 20), 0);
	ck_assert_msg(boot_setup_memory(&mem, &img, &args, err, sizeof(err)) == VMM_OK, "%s", err);
	bi = mem_gpa(&mem, SHADOWVM_ABI_BOOTINFO_GPA, sizeof(*bi));
	ck_assert_uint_eq(bi->magic, SHADOWVM_BOOTINFO_MAGIC);
	ck_assert_uint_eq(bi->free_start, 0x104000);
	ck_assert_str_eq(gstr(&mem, (uint32_t)bi->cmdline), "x=1");
	ck_assert_uint_ne(*(uint64_t *)mem_gpa(&mem, SHADOWVM_ABI_PML4_GPA, 8), 0);
	ck_assert_uint_eq(img.mb_info, 0);
	ck_assert_uint_eq(*(uint32_t *)mem_gpa(&mem, 0x104000, 4), 0);
	mem_free(&mem);
}
END_TEST

Suite *multiboot_suite(void)
{
	Suite *s = suite_create("multiboot");
	TCase *tc = tcase_create("load");

	tcase_add_temp_dir(tc);
	tcase_add_loop_test(tc, test_multiboot_loads_at_paddr_and_zeroes_bss, 0, 2);
	tcase_add_test(tc, test_multiboot_header_past_8k_is_abi_image);
	tcase_add_test(tc, test_multiboot_info_block_fields);
	tcase_add_test(tc, test_multiboot_memory_map);
	tcase_add_test(tc, test_multiboot_mptable_found_and_walked);
	tcase_add_test(tc, test_multiboot_no_mptable_leaves_bios_area);
	tcase_add_test(tc, test_multiboot_modules_placed_and_listed);
	tcase_add_test(tc, test_multiboot_entry_registers);
	tcase_add_test(tc, test_multiboot_abi_image_keeps_abi_boot);
	suite_add_tcase(s, tc);
	tc = tcase_create("reject");
	tcase_add_temp_dir(tc);
	tcase_add_loop_test(tc, test_multiboot_rejects, 0,
			    (int)(sizeof(rejects) / sizeof(rejects[0])));
	tcase_add_test(tc, test_multiboot_rejects_module_too_big);
	tcase_add_test(tc, test_multiboot_rejects_info_area_past_ram);
	tcase_add_test(tc, test_multiboot_rejects_too_many_and_missing_modules);
	tcase_add_test(tc, test_multiboot_rejects_ram_above_ioapic);
	tcase_add_test(tc, test_multiboot_module_needs_multiboot_image);
	suite_add_tcase(s, tc);
	return s;
}
