/* The ELF loader against a table of crafted images: every rejection class
 * has a case asserting its status and its one-line message. */
#include <check.h>
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf_load.h"
#include "shadowvm_abi.h"
#include "status.h"
#include "suites.h"
#include "util.h"

#define RAM (64ull << 20)
#define CODE_OFF 0xb0u
#define CODE_LEN 16u
#define DATA_LEN 8u
#define BSS_MEMSZ 0x2000u
#define TEXT_GPA 0x100000u
#define DATA_GPA 0x200000u

struct image {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[2];
	size_t len; /* bytes of the file written (truncation cuts this) */
};

static void base_image(struct image *im)
{
	memset(im, 0, sizeof(*im));
	memcpy(im->eh.e_ident, ELFMAG, SELFMAG);
	im->eh.e_ident[EI_CLASS] = ELFCLASS64;
	im->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	im->eh.e_ident[EI_VERSION] = EV_CURRENT;
	im->eh.e_type = ET_EXEC;
	im->eh.e_machine = EM_X86_64;
	im->eh.e_version = EV_CURRENT;
	im->eh.e_entry = TEXT_GPA + 4;
	im->eh.e_phoff = sizeof(Elf64_Ehdr);
	im->eh.e_ehsize = sizeof(Elf64_Ehdr);
	im->eh.e_phentsize = sizeof(Elf64_Phdr);
	im->eh.e_phnum = 2;
	im->ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD,
				  .p_flags = PF_R | PF_X,
				  .p_offset = CODE_OFF,
				  .p_vaddr = TEXT_GPA,
				  .p_paddr = TEXT_GPA,
				  .p_filesz = CODE_LEN,
				  .p_memsz = CODE_LEN,
				  .p_align = 0x1000 };
	im->ph[1] = (Elf64_Phdr){ .p_type = PT_LOAD,
				  .p_flags = PF_R | PF_W,
				  .p_offset = CODE_OFF + CODE_LEN,
				  .p_vaddr = DATA_GPA,
				  .p_paddr = DATA_GPA,
				  .p_filesz = DATA_LEN,
				  .p_memsz = BSS_MEMSZ,
				  .p_align = 0x1000 };
	im->len = CODE_OFF + CODE_LEN + DATA_LEN;
}

/* Serialize: headers, then code bytes 0x90.., then data bytes 0xd0.. */
static char *write_image(const struct image *im)
{
	uint8_t buf[CODE_OFF + CODE_LEN + DATA_LEN];
	char *path;

	memset(buf, 0, sizeof(buf));
	memcpy(buf, &im->eh, sizeof(im->eh));
	memcpy(buf + sizeof(im->eh), im->ph, sizeof(im->ph));
	for (unsigned i = 0; i < CODE_LEN + DATA_LEN; i++)
		buf[CODE_OFF + i] = (uint8_t)((i < CODE_LEN ? 0x90 : 0xd0) + i);
	path = write_temp(buf, im->len < sizeof(buf) ? im->len : sizeof(buf));
	return path;
}

struct reject_case {
	const char *name;
	void (*mutate)(struct image *im);
	int status;
	const char *msg; /* expected text after "<path>: " */
};

static void m_magic(struct image *im)
{
	im->eh.e_ident[EI_MAG1] = 'X';
}
static void m_class(struct image *im)
{
	im->eh.e_ident[EI_CLASS] = ELFCLASS32;
}
static void m_data(struct image *im)
{
	im->eh.e_ident[EI_DATA] = ELFDATA2MSB;
}
static void m_machine(struct image *im)
{
	im->eh.e_machine = EM_386;
}
static void m_type(struct image *im)
{
	im->eh.e_type = ET_DYN;
}
static void m_phnum0(struct image *im)
{
	im->eh.e_phnum = 0;
}
static void m_phnum_big(struct image *im)
{
	im->eh.e_phnum = ELF_LOAD_PHNUM_MAX + 1;
}
static void m_phentsize(struct image *im)
{
	im->eh.e_phentsize = 32;
}
static void m_phoff(struct image *im)
{
	im->eh.e_phoff = 0x1000;
}
static void m_short_header(struct image *im)
{
	im->len = 40;
}
static void m_truncated(struct image *im)
{
	im->len = CODE_OFF + CODE_LEN + DATA_LEN - 3;
}
static void m_filesz(struct image *im)
{
	im->ph[0].p_memsz = CODE_LEN - 1;
}
static void m_paddr_overflow(struct image *im)
{
	im->ph[1].p_paddr = ~0ull - 0x10;
}
static void m_vaddr_overflow(struct image *im)
{
	im->ph[1].p_vaddr = ~0ull - 0x10;
}
static void m_low(struct image *im)
{
	im->ph[1].p_paddr = im->ph[1].p_vaddr = 0x8000;
}
static void m_memsz_ram(struct image *im)
{
	im->ph[1].p_memsz = 0x40000000;
}
static void m_end_ram(struct image *im)
{
	im->ph[1].p_paddr = RAM - 0x1000;
}
static void m_overlap(struct image *im)
{
	im->ph[1].p_paddr = TEXT_GPA + 8;
}
static void m_entry_out(struct image *im)
{
	im->eh.e_entry = 0x300000;
}
static void m_entry_nx(struct image *im)
{
	im->eh.e_entry = DATA_GPA + 4;
}
static void m_entry_vaddr(struct image *im)
{
	im->ph[0].p_vaddr = 0xffffffff80000000ull;
	im->eh.e_entry = 0xffffffff80000004ull;
}
static void m_no_load(struct image *im)
{
	im->ph[0].p_type = im->ph[1].p_type = PT_NOTE;
}

static const struct reject_case rejects[] = {
	{ "magic", m_magic, VMM_E_IMAGE, "not an ELF file (bad magic)" },
	{ "class", m_class, VMM_E_IMAGE, "e_ident[EI_CLASS] 1 is not ELFCLASS64 (2)" },
	{ "data", m_data, VMM_E_IMAGE, "e_ident[EI_DATA] 2 is not ELFDATA2LSB (1)" },
	{ "machine", m_machine, VMM_E_IMAGE, "e_machine 3 is not EM_X86_64 (62)" },
	{ "type", m_type, VMM_E_IMAGE, "e_type 3 is not ET_EXEC (2)" },
	{ "phnum0", m_phnum0, VMM_E_IMAGE, "e_phnum 0: no program headers" },
	{ "phnum_big", m_phnum_big, VMM_E_IMAGE, "e_phnum 65 exceeds limit 64" },
	{ "phentsize", m_phentsize, VMM_E_IMAGE, "e_phentsize 32 is not 56" },
	{ "phoff", m_phoff, VMM_E_IMAGE,
	  "program header table e_phoff 0x1000 + 0x70 exceeds file size 0xc8" },
	{ "short_header", m_short_header, VMM_E_IMAGE,
	  "file size 0x28 is smaller than the ELF header 0x40 (truncated)" },
	{ "truncated", m_truncated, VMM_E_IMAGE,
	  "phdr[1] p_offset 0xc0 + p_filesz 0x8 exceeds file size 0xc5 (truncated)" },
	{ "filesz", m_filesz, VMM_E_IMAGE, "phdr[0] p_filesz 0x10 exceeds p_memsz 0xf" },
	{ "paddr_overflow", m_paddr_overflow, VMM_E_IMAGE,
	  "phdr[1] p_paddr 0xffffffffffffffef + p_memsz 0x2000 overflows" },
	{ "vaddr_overflow", m_vaddr_overflow, VMM_E_IMAGE,
	  "phdr[1] p_vaddr 0xffffffffffffffef + p_memsz 0x2000 overflows" },
	{ "below_load_min", m_low, VMM_E_IMAGE,
	  "phdr[1] p_paddr 0x8000 is below 0x100000, where the VMM places its boot structures" },
	{ "memsz_ram", m_memsz_ram, VMM_E_IMAGE,
	  "phdr[1] p_memsz 0x40000000 exceeds guest RAM 0x4000000" },
	{ "end_ram", m_end_ram, VMM_E_IMAGE,
	  "phdr[1] end p_paddr+p_memsz 0x4001000 exceeds guest RAM 0x4000000" },
	{ "overlap", m_overlap, VMM_E_IMAGE,
	  "phdr[1] [0x100008, 0x102008) overlaps phdr[0] [0x100000, 0x100010)" },
	{ "entry_outside", m_entry_out, VMM_E_IMAGE,
	  "e_entry 0x300000 is not inside an executable PT_LOAD segment" },
	{ "entry_not_exec", m_entry_nx, VMM_E_IMAGE,
	  "e_entry 0x200004 is not inside an executable PT_LOAD segment" },
	{ "entry_not_identity", m_entry_vaddr, VMM_E_IMAGE,
	  "e_entry 0xffffffff80000004 lies in phdr[0] with p_vaddr 0xffffffff80000000 != p_paddr 0x100000" },
	{ "no_load", m_no_load, VMM_E_IMAGE, "no PT_LOAD segment with p_memsz > 0" },
};

static void assert_rejected(const char *path, int want_status, const char *want_msg, int got,
			    const char *err)
{
	char expect[512];

	snprintf(expect, sizeof(expect), "%s: %s", path, want_msg);
	ck_assert_int_eq(got, want_status);
	ck_assert_msg(strncmp(err, expect, strlen(expect)) == 0, "message\n  got:  %s\n  want: %s",
		      err, expect);
	ck_assert_ptr_null(strchr(err, '\n'));
}

START_TEST(test_elf_load_rejects_malformed)
{
	const struct reject_case *c = &rejects[_i];
	struct image im;
	struct elf_image img;
	char err[512] = "", *path;
	int rc;

	base_image(&im);
	c->mutate(&im);
	path = write_image(&im);
	rc = elf_load(path, RAM, NULL, &img, err, sizeof(err));
	assert_rejected(path, c->status, c->msg, rc, err);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_elf_load_places_segments_and_zeroes_bss)
{
	struct guest_mem mem;
	struct image im;
	struct elf_image img;
	char err[512] = "", *path;
	uint8_t *text, *data;

	base_image(&im);
	path = write_image(&im);
	ck_assert_int_eq(mem_alloc(&mem, RAM), 0);
	memset(mem.host, 0xaa, RAM);
	ck_assert_int_eq(elf_load(path, RAM, &mem, &img, err, sizeof(err)), VMM_OK);
	ck_assert_uint_eq(img.entry, TEXT_GPA + 4);
	ck_assert_uint_eq(img.end, DATA_GPA + BSS_MEMSZ);
	ck_assert_uint_eq(img.nloads, 2);
	text = mem_gpa(&mem, TEXT_GPA, CODE_LEN);
	data = mem_gpa(&mem, DATA_GPA, BSS_MEMSZ);
	for (unsigned i = 0; i < CODE_LEN; i++)
		ck_assert_uint_eq(text[i], 0x90 + i);
	for (unsigned i = 0; i < DATA_LEN; i++)
		ck_assert_uint_eq(data[i], 0xd0 + CODE_LEN + i);
	for (unsigned i = DATA_LEN; i < BSS_MEMSZ; i++)
		ck_assert_uint_eq(data[i], 0);
	ck_assert_uint_eq(text[CODE_LEN], 0xaa); /* nothing past p_memsz */
	mem_free(&mem);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_elf_load_rejects_before_writing)
{
	struct guest_mem mem;
	struct image im;
	struct elf_image img;
	char err[512], *path;

	base_image(&im);
	m_entry_out(&im);
	path = write_image(&im);
	ck_assert_int_eq(mem_alloc(&mem, RAM), 0);
	ck_assert_int_eq(elf_load(path, RAM, &mem, &img, err, sizeof(err)), VMM_E_IMAGE);
	ck_assert_uint_eq(*(uint8_t *)mem_gpa(&mem, TEXT_GPA, 1), 0);
	mem_free(&mem);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_elf_load_rejects_oversized_file)
{
	struct image im;
	struct elf_image img;
	char err[512], *path, want[64];

	base_image(&im);
	path = write_image(&im);
	ck_assert_int_eq(truncate(path, (off_t)ELF_LOAD_FILE_MAX + 1), 0); /* sparse */
	snprintf(want, sizeof(want), "file size 0x%llx exceeds limit 0x%llx", ELF_LOAD_FILE_MAX + 1,
		 ELF_LOAD_FILE_MAX);
	assert_rejected(path, VMM_E_IMAGE, want, elf_load(path, RAM, NULL, &img, err, sizeof(err)),
			err);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_elf_load_rejects_missing_and_directory)
{
	struct elf_image img;
	char err[512];

	assert_rejected("/nonexistent/img.elf", VMM_E_NOINPUT,
			"cannot open: No such file or directory",
			elf_load("/nonexistent/img.elf", RAM, NULL, &img, err, sizeof(err)), err);
	assert_rejected("/tmp", VMM_E_IMAGE, "not a regular file",
			elf_load("/tmp", RAM, NULL, &img, err, sizeof(err)), err);
}
END_TEST

START_TEST(test_elf_load_smaller_ram_rejects_fitting_image)
{
	struct image im;
	struct elf_image img;
	char err[512], *path;

	base_image(&im);
	path = write_image(&im);
	ck_assert_int_eq(elf_load(path, RAM, NULL, &img, err, sizeof(err)), VMM_OK);
	assert_rejected(path, VMM_E_IMAGE,
			"phdr[1] end p_paddr+p_memsz 0x202000 exceeds guest RAM 0x200000",
			elf_load(path, 2u << 20, NULL, &img, err, sizeof(err)), err);
	unlink(path);
	free(path);
}
END_TEST

Suite *elf_load_suite(void)
{
	Suite *s = suite_create("elf_load");
	TCase *tc = tcase_create("reject");

	tcase_add_temp_dir(tc);
	tcase_add_loop_test(tc, test_elf_load_rejects_malformed, 0,
			    (int)(sizeof(rejects) / sizeof(rejects[0])));
	tcase_add_test(tc, test_elf_load_rejects_before_writing);
	tcase_add_test(tc, test_elf_load_rejects_oversized_file);
	tcase_add_test(tc, test_elf_load_rejects_missing_and_directory);
	tcase_add_test(tc, test_elf_load_smaller_ram_rejects_fitting_image);
	suite_add_tcase(s, tc);
	tc = tcase_create("load");
	tcase_add_temp_dir(tc);
	tcase_add_test(tc, test_elf_load_places_segments_and_zeroes_bss);
	suite_add_tcase(s, tc);
	return s;
}
