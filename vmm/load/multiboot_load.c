#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mptable.h"
#include "multiboot.h"
#include "multiboot_load.h"
#include "status.h"
#include "x86.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define EBDA_GPA 0x9fc00ull /* conventional memory's top KiB, as a PC BIOS keeps it */
#define VGA_GPA 0xa0000ull  /* legacy VGA window and option ROMs: a hole */
#define BIOS_GPA 0xf0000ull /* the system BIOS area */
#define IOAPIC_GPA 0xfec00000ull
#define LAPIC_GPA 0xfee00000ull

_Static_assert(MULTIBOOT_RAM_MAX == IOAPIC_GPA, "RAM ends below the IOAPIC window");

__attribute__((format(printf, 4, 5))) static int fail(int status, char *err, size_t errlen,
						      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return status;
}

static gpa_t page_up(gpa_t a)
{
	return (a + X86_PAGE_SIZE - 1) & X86_PAGE_MASK;
}

/* Copy one module file to `at`; *size gets its length. */
static int load_module(struct guest_mem *mem, const struct boot_module *m, gpa_t at, uint64_t *size,
		       char *err, size_t errlen)
{
	int fd = open(m->path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *dst;
	uint64_t done = 0;
	int rc = VMM_OK;

	if (fd < 0)
		return fail(VMM_E_NOINPUT, err, errlen, "%s: cannot open module: %s", m->path,
			    strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = fail(VMM_E_NOINPUT, err, errlen, "%s: module is not a regular file", m->path);
		goto out;
	}
	*size = (uint64_t)st.st_size;
	if (*size > mem->size - at) {
		rc = fail(VMM_E_IMAGE, err, errlen,
			  "%s: module of 0x%llx bytes at 0x%llx exceeds guest RAM 0x%llx", m->path,
			  (unsigned long long)*size, (unsigned long long)at,
			  (unsigned long long)mem->size);
		goto out;
	}
	dst = mem_gpa(mem, at, *size);
	while (dst && done < *size) {
		ssize_t n = read(fd, dst + done, *size - done);
		if (n <= 0) {
			rc = fail(VMM_E_NOINPUT, err, errlen, "%s: reading module: %s", m->path,
				  n < 0 ? strerror(errno) : "file shrank");
			goto out;
		}
		done += (uint64_t)n;
	}
out:
	close(fd);
	return rc;
}

/* The info area being filled: a host view of [gpa, gpa + size). */
struct area {
	uint8_t *host;
	gpa_t gpa;
	size_t used;
};

static uint32_t put(struct area *a, const void *data, size_t len)
{
	uint32_t at = (uint32_t)(a->gpa + a->used);

	memcpy(a->host + a->used, data, len);
	a->used += len;
	return at;
}

/* "IMAGE" or "IMAGE ARGS" */
static uint32_t put_cmdline(struct area *a, const struct boot_args *args)
{
	uint32_t at = put(a, args->image, strlen(args->image));

	if (args->cmdline && args->cmdline[0]) {
		put(a, " ", 1);
		put(a, args->cmdline, strlen(args->cmdline));
	}
	put(a, "", 1);
	return at;
}

static size_t area_size(const struct boot_args *args)
{
	size_t n = sizeof(struct multiboot_info) +
		   MULTIBOOT_MMAP_ENTRIES * sizeof(struct multiboot_mmap_entry) +
		   args->nmods * sizeof(struct multiboot_module) + sizeof(MULTIBOOT_LOADER_NAME) +
		   strlen(args->image) + 1 + 1 + (args->cmdline ? strlen(args->cmdline) : 0);

	for (unsigned i = 0; i < args->nmods; i++)
		n += strlen(args->mods[i].string) + 1;
	return n;
}

/* The PC memory map QEMU's -kernel reports (§3.3 mmap, type 1 RAM, 2
 * reserved), for RAM of `ram` bytes: the hole at VGA_GPA..BIOS_GPA is in no
 * entry. */
static uint32_t put_mmap(struct area *a, uint64_t ram)
{
	const struct {
		uint64_t base, len;
		uint32_t type;
	} map[MULTIBOOT_MMAP_ENTRIES] = {
		{ 0, EBDA_GPA, MULTIBOOT_MEMORY_AVAILABLE },
		{ EBDA_GPA, VGA_GPA - EBDA_GPA, MULTIBOOT_MEMORY_RESERVED },
		{ BIOS_GPA, MIB - BIOS_GPA, MULTIBOOT_MEMORY_RESERVED },
		{ MIB, ram - MIB, MULTIBOOT_MEMORY_AVAILABLE },
		{ IOAPIC_GPA, X86_PAGE_SIZE, MULTIBOOT_MEMORY_RESERVED },
		{ LAPIC_GPA, X86_PAGE_SIZE, MULTIBOOT_MEMORY_RESERVED },
	};
	uint32_t at = (uint32_t)(a->gpa + a->used);

	for (unsigned i = 0; i < MULTIBOOT_MMAP_ENTRIES; i++) {
		struct multiboot_mmap_entry e = {
			.size = sizeof(e) - sizeof(e.size),
			.base_addr = map[i].base,
			.length = map[i].len,
			.type = map[i].type,
		};
		put(a, &e, sizeof(e));
	}
	return at;
}

/* The info block and everything it points to, at page `at`. */
static void write_info(struct guest_mem *mem, gpa_t at, size_t size, const struct boot_args *args,
		       const struct multiboot_module *mods)
{
	struct area a = { .host = mem_gpa(mem, at, size), .gpa = at };
	struct multiboot_info info = {
		.flags = MULTIBOOT_INFO_MEMORY | MULTIBOOT_INFO_CMDLINE | MULTIBOOT_INFO_MODS |
			 MULTIBOOT_INFO_MEM_MAP | MULTIBOOT_INFO_LOADER_NAME,
		.mem_lower = (uint32_t)(EBDA_GPA / KIB),
		.mem_upper = (uint32_t)((mem->size - MIB) / KIB),
		.mods_count = args->nmods,
		.mmap_length = MULTIBOOT_MMAP_ENTRIES * sizeof(struct multiboot_mmap_entry),
	};
	struct multiboot_module list[BOOT_MODULES_MAX];

	memset(a.host, 0, size);
	a.used = sizeof(info);
	info.mmap_addr = put_mmap(&a, mem->size);
	info.mods_addr = (uint32_t)(a.gpa + a.used);
	a.used += args->nmods * sizeof(list[0]);
	info.boot_loader_name = put(&a, MULTIBOOT_LOADER_NAME, sizeof(MULTIBOOT_LOADER_NAME));
	info.cmdline = put_cmdline(&a, args);
	for (unsigned i = 0; i < args->nmods; i++) {
		list[i] = mods[i];
		list[i].string = put(&a, args->mods[i].string, strlen(args->mods[i].string) + 1);
	}
	memcpy(a.host + (info.mods_addr - at), list, args->nmods * sizeof(list[0]));
	memcpy(a.host, &info, sizeof(info));
}

/* The BDA and the MP table (mptable.h), unless the image itself was loaded
 * over them: the kernel's bytes win, with a warning. */
static void write_mptable(struct guest_mem *mem, const struct elf_image *img,
			  const struct boot_args *args)
{
	if (img->start < VGA_GPA && img->end > MPTABLE_BDA_GPA) {
		pr_warn("%s: the image is loaded at [0x%llx, 0x%llx), over the BIOS data area or the EBDA: no MP table",
			args->image, (unsigned long long)img->start, (unsigned long long)img->end);
		return;
	}
	mptable_write_bda(mem_gpa(mem, MPTABLE_BDA_GPA, MPTABLE_BDA_SIZE));
	mptable_write(mem_gpa(mem, MPTABLE_EBDA_GPA, MPTABLE_EBDA_SIZE));
}

int multiboot_setup_memory(struct guest_mem *mem, struct elf_image *img,
			   const struct boot_args *args, char *err, size_t errlen)
{
	struct multiboot_module mods[BOOT_MODULES_MAX] = { { 0 } };
	gpa_t at = page_up(img->end);
	size_t size = area_size(args);
	int rc;

	if (args->nmods > BOOT_MODULES_MAX)
		return fail(VMM_E_USAGE, err, errlen, "--module: %u modules exceed limit %u",
			    args->nmods, BOOT_MODULES_MAX);
	if (mem->size > MULTIBOOT_RAM_MAX)
		return fail(
			VMM_E_USAGE, err, errlen,
			"%s: guest RAM 0x%llx of a Multiboot image exceeds limit 0x%llx (the IOAPIC window)",
			args->image, (unsigned long long)mem->size, MULTIBOOT_RAM_MAX);
	for (unsigned i = 0; i < args->nmods; i++) {
		uint64_t len = 0;

		if ((rc = load_module(mem, &args->mods[i], at, &len, err, errlen)) != VMM_OK)
			return rc;
		mods[i].mod_start = (uint32_t)at;
		mods[i].mod_end = (uint32_t)(at + len);
		at = page_up(at + len);
	}
	if (at > mem->size || size > mem->size - at)
		return fail(VMM_E_IMAGE, err, errlen,
			    "%s: the Multiboot info area [0x%llx, 0x%llx) exceeds guest RAM 0x%llx",
			    args->image, (unsigned long long)at, (unsigned long long)(at + size),
			    (unsigned long long)mem->size);
	write_info(mem, at, size, args, mods);
	if (args->mptable)
		write_mptable(mem, img, args);
	img->mb_info = (uint32_t)at;
	img->mb_end = at + size;
	return VMM_OK;
}
