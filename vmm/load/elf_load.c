#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf_load.h"
#include "multiboot.h"
#include "shadowvm_abi.h"
#include "status.h"

struct loader {
	const char *name;
	Elf *elf;
	const char *raw; /* the whole file, via elf_rawfile */
	size_t size;
	uint64_t ram_size;
	bool multiboot; /* a valid Multiboot header: ELF32 allowed, p_paddr free */
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int reject(struct loader *ld, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(ld->err, ld->errlen, "%s: ", ld->name);

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < ld->errlen)
		vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return VMM_E_IMAGE;
}

/* The Multiboot header (Multiboot spec §3.1.1): the first 32-bit aligned
 * MULTIBOOT_HEADER_MAGIC whose 12-byte header lies wholly inside the first
 * MULTIBOOT_SEARCH bytes.  None found leaves the image to the ABI protocol.
 * A found one must be valid: its checksum right, and no requirement in
 * flags bits 0..15 that this loader does not meet (§3.1.2: the loader must
 * refuse those). */
static int find_multiboot(struct loader *ld, struct elf_image *img)
{
	size_t lim = ld->size < MULTIBOOT_SEARCH ? ld->size : MULTIBOOT_SEARCH;
	const uint32_t known =
		MULTIBOOT_HDR_PAGE_ALIGN | MULTIBOOT_HDR_MEMORY_INFO | MULTIBOOT_HDR_VIDEO_MODE;
	struct multiboot_header h;
	size_t off;

	for (off = 0; off + sizeof(h) <= lim; off += MULTIBOOT_HEADER_ALIGN) {
		memcpy(&h, ld->raw + off, sizeof(h));
		if (h.magic == MULTIBOOT_HEADER_MAGIC)
			break;
	}
	if (off + sizeof(h) > lim)
		return VMM_OK;
	if ((uint32_t)(h.magic + h.flags + h.checksum) != 0)
		return reject(
			ld,
			"Multiboot header at offset 0x%zx: checksum 0x%08x is wrong (magic + flags + checksum = 0x%08x, must be 0)",
			off, h.checksum, (uint32_t)(h.magic + h.flags + h.checksum));
	if (h.flags & MULTIBOOT_HDR_REQUIRED_MASK & ~known)
		return reject(
			ld,
			"Multiboot header flags 0x%08x: required bits 0x%04x are not supported (bits 0-2 are)",
			h.flags, h.flags & MULTIBOOT_HDR_REQUIRED_MASK & ~known);
	if (h.flags & MULTIBOOT_HDR_AOUT_KLUDGE)
		return reject(
			ld,
			"Multiboot header flags 0x%08x: bit 16 (a.out kludge load addresses) is not supported; link the kernel as ELF",
			h.flags);
	ld->multiboot = true;
	img->multiboot = true;
	img->mb_flags = h.flags;
	img->mb_header = (uint32_t)off;
	return VMM_OK;
}

/* ELF32 is a Multiboot image's option only. */
static size_t ehdr_size(const struct loader *ld)
{
	if (ld->multiboot && ld->size > EI_CLASS && ld->raw[EI_CLASS] == ELFCLASS32)
		return sizeof(Elf32_Ehdr);
	return sizeof(Elf64_Ehdr);
}

static int check_ident(struct loader *ld)
{
	size_t n;
	const char *id;

	if (ld->size < SELFMAG || memcmp(ld->raw, ELFMAG, SELFMAG) != 0)
		return reject(ld, "not an ELF file (bad magic)");
	if (ld->size < ehdr_size(ld))
		return reject(ld,
			      "file size 0x%zx is smaller than the ELF header 0x%zx (truncated)",
			      ld->size, ehdr_size(ld));
	if (elf_kind(ld->elf) != ELF_K_ELF)
		return reject(ld, "libelf does not recognise the ELF header");
	id = elf_getident(ld->elf, &n);
	if (!id || n < EI_NIDENT)
		return reject(ld, "e_ident truncated: file size 0x%zx", ld->size);
	if (id[EI_CLASS] == ELFCLASS32 && !ld->multiboot)
		return reject(
			ld,
			"e_ident[EI_CLASS] %d is not ELFCLASS64 (%d); a 32-bit image needs a Multiboot header in its first %u bytes",
			id[EI_CLASS], ELFCLASS64, MULTIBOOT_SEARCH);
	if (id[EI_CLASS] != ELFCLASS64 && id[EI_CLASS] != ELFCLASS32)
		return reject(ld, "e_ident[EI_CLASS] %d is not ELFCLASS64 (%d)", id[EI_CLASS],
			      ELFCLASS64);
	if (id[EI_DATA] != ELFDATA2LSB)
		return reject(ld, "e_ident[EI_DATA] %d is not ELFDATA2LSB (%d)", id[EI_DATA],
			      ELFDATA2LSB);
	return VMM_OK;
}

static int check_ehdr(struct loader *ld, GElf_Ehdr *eh)
{
	uint64_t tab;

	int cls = gelf_getclass(ld->elf);
	size_t phentsize = gelf_fsize(ld->elf, ELF_T_PHDR, 1, EV_CURRENT);

	if (!gelf_getehdr(ld->elf, eh))
		return reject(ld, "ELF header unreadable: %s", elf_errmsg(-1));
	if (cls == ELFCLASS32 && eh->e_machine != EM_386)
		return reject(ld, "e_machine %u of an ELFCLASS32 image is not EM_386 (%u)",
			      eh->e_machine, EM_386);
	if (cls == ELFCLASS64 && eh->e_machine != EM_X86_64)
		return reject(ld, "e_machine %u is not EM_X86_64 (%u)", eh->e_machine, EM_X86_64);
	if (eh->e_type != ET_EXEC)
		return reject(ld, "e_type %u is not ET_EXEC (%u)", eh->e_type, ET_EXEC);
	if (eh->e_phnum == 0)
		return reject(ld, "e_phnum 0: no program headers");
	if (eh->e_phnum > ELF_LOAD_PHNUM_MAX)
		return reject(ld, "e_phnum %u exceeds limit %u", eh->e_phnum, ELF_LOAD_PHNUM_MAX);
	if (eh->e_phentsize != phentsize)
		return reject(ld, "e_phentsize %u is not %zu", eh->e_phentsize, phentsize);
	tab = (uint64_t)eh->e_phnum * eh->e_phentsize;
	if (eh->e_phoff > ld->size || tab > ld->size - eh->e_phoff)
		return reject(
			ld, "program header table e_phoff 0x%llx + 0x%llx exceeds file size 0x%zx",
			(unsigned long long)eh->e_phoff, (unsigned long long)tab, ld->size);
	return VMM_OK;
}

/* Checks of one PT_LOAD on its own: sizes, file range, placement in RAM. */
static int check_load(struct loader *ld, unsigned i, const GElf_Phdr *ph)
{
	if (ph->p_filesz > ph->p_memsz)
		return reject(ld, "phdr[%u] p_filesz 0x%llx exceeds p_memsz 0x%llx", i,
			      (unsigned long long)ph->p_filesz, (unsigned long long)ph->p_memsz);
	if (ph->p_offset > ld->size || ph->p_filesz > ld->size - ph->p_offset)
		return reject(
			ld,
			"phdr[%u] p_offset 0x%llx + p_filesz 0x%llx exceeds file size 0x%zx (truncated)",
			i, (unsigned long long)ph->p_offset, (unsigned long long)ph->p_filesz,
			ld->size);
	if (ph->p_paddr + ph->p_memsz < ph->p_paddr)
		return reject(ld, "phdr[%u] p_paddr 0x%llx + p_memsz 0x%llx overflows", i,
			      (unsigned long long)ph->p_paddr, (unsigned long long)ph->p_memsz);
	if (ph->p_vaddr + ph->p_memsz < ph->p_vaddr)
		return reject(ld, "phdr[%u] p_vaddr 0x%llx + p_memsz 0x%llx overflows", i,
			      (unsigned long long)ph->p_vaddr, (unsigned long long)ph->p_memsz);
	/* Multiboot images own all of RAM: the VMM puts nothing below them. */
	if (!ld->multiboot && ph->p_paddr < SHADOWVM_ABI_LOAD_MIN)
		return reject(
			ld,
			"phdr[%u] p_paddr 0x%llx is below 0x%x, where the VMM places its boot structures",
			i, (unsigned long long)ph->p_paddr, SHADOWVM_ABI_LOAD_MIN);
	if (ph->p_memsz > ld->ram_size)
		return reject(ld, "phdr[%u] p_memsz 0x%llx exceeds guest RAM 0x%llx", i,
			      (unsigned long long)ph->p_memsz, (unsigned long long)ld->ram_size);
	if (ph->p_paddr + ph->p_memsz > ld->ram_size)
		return reject(ld, "phdr[%u] end p_paddr+p_memsz 0x%llx exceeds guest RAM 0x%llx", i,
			      (unsigned long long)(ph->p_paddr + ph->p_memsz),
			      (unsigned long long)ld->ram_size);
	return VMM_OK;
}

static int get_phdr(struct loader *ld, unsigned i, GElf_Phdr *ph)
{
	if (!gelf_getphdr(ld->elf, (int)i, ph))
		return reject(ld, "phdr[%u] unreadable: %s", i, elf_errmsg(-1));
	return VMM_OK;
}

/* Segments must not overlap each other in guest-physical memory. */
static int check_overlap(struct loader *ld, unsigned i, const GElf_Phdr *ph)
{
	GElf_Phdr o;
	int rc;

	for (unsigned j = 0; j < i; j++) {
		if ((rc = get_phdr(ld, j, &o)) != VMM_OK)
			return rc;
		if (o.p_type != PT_LOAD || o.p_memsz == 0)
			continue;
		if (ph->p_paddr < o.p_paddr + o.p_memsz && o.p_paddr < ph->p_paddr + ph->p_memsz)
			return reject(
				ld, "phdr[%u] [0x%llx, 0x%llx) overlaps phdr[%u] [0x%llx, 0x%llx)",
				i, (unsigned long long)ph->p_paddr,
				(unsigned long long)(ph->p_paddr + ph->p_memsz), j,
				(unsigned long long)o.p_paddr,
				(unsigned long long)(o.p_paddr + o.p_memsz));
	}
	return VMM_OK;
}

/* Multiboot enters with paging off (spec §3.2), so e_entry is used as the
 * physical address it is, as QEMU's -kernel does: it must fit EIP and lie
 * inside the physical range of a loaded segment. */
static int check_mb_entry(struct loader *ld, const GElf_Ehdr *eh)
{
	GElf_Phdr ph;
	int rc;

	if (eh->e_entry > UINT32_MAX)
		return reject(ld,
			      "e_entry 0x%llx exceeds 0xffffffff (Multiboot enters in 32-bit mode)",
			      (unsigned long long)eh->e_entry);
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if ((rc = get_phdr(ld, i, &ph)) != VMM_OK)
			return rc;
		if (ph.p_type == PT_LOAD && eh->e_entry >= ph.p_paddr &&
		    eh->e_entry - ph.p_paddr < ph.p_memsz)
			return VMM_OK;
	}
	return reject(
		ld,
		"e_entry 0x%llx is not inside a PT_LOAD segment's physical range (Multiboot enters at a physical address)",
		(unsigned long long)eh->e_entry);
}

/* The entry runs on the VMM's identity map, so it must lie in an executable
 * segment whose virtual and physical placement agree. */
static int check_entry(struct loader *ld, const GElf_Ehdr *eh)
{
	GElf_Phdr ph;
	int rc;

	if (ld->multiboot)
		return check_mb_entry(ld, eh);
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if ((rc = get_phdr(ld, i, &ph)) != VMM_OK)
			return rc;
		if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X))
			continue;
		if (eh->e_entry < ph.p_vaddr || eh->e_entry - ph.p_vaddr >= ph.p_memsz)
			continue;
		if (ph.p_vaddr != ph.p_paddr)
			return reject(
				ld,
				"e_entry 0x%llx lies in phdr[%u] with p_vaddr 0x%llx != p_paddr 0x%llx (boot tables identity-map)",
				(unsigned long long)eh->e_entry, i, (unsigned long long)ph.p_vaddr,
				(unsigned long long)ph.p_paddr);
		return VMM_OK;
	}
	return reject(ld, "e_entry 0x%llx is not inside an executable PT_LOAD segment",
		      (unsigned long long)eh->e_entry);
}

static int place_segments(struct loader *ld, const GElf_Ehdr *eh, struct guest_mem *mem,
			  struct elf_image *img)
{
	GElf_Phdr ph;
	int rc;

	img->end = 0;
	img->start = UINT64_MAX;
	img->nloads = 0;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if ((rc = get_phdr(ld, i, &ph)) != VMM_OK)
			return rc;
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if ((rc = check_load(ld, i, &ph)) != VMM_OK ||
		    (rc = check_overlap(ld, i, &ph)) != VMM_OK)
			return rc;
		if (mem) {
			uint8_t *dst = mem_gpa(mem, ph.p_paddr, ph.p_memsz);
			if (!dst)
				return reject(ld, "phdr[%u] outside guest RAM", i);
			memcpy(dst, ld->raw + ph.p_offset, ph.p_filesz);
			memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
		}
		if (ph.p_paddr + ph.p_memsz > img->end)
			img->end = ph.p_paddr + ph.p_memsz;
		if (ph.p_paddr < img->start)
			img->start = ph.p_paddr;
		img->nloads++;
	}
	if (img->nloads == 0)
		return reject(ld, "no PT_LOAD segment with p_memsz > 0");
	return VMM_OK;
}

static int load_elf(struct loader *ld, struct guest_mem *mem, struct elf_image *img)
{
	GElf_Ehdr eh;
	int rc;

	ld->raw = elf_rawfile(ld->elf, &ld->size);
	if (!ld->raw)
		return reject(ld, "cannot read image: %s", elf_errmsg(-1));
	if ((rc = find_multiboot(ld, img)) != VMM_OK || (rc = check_ident(ld)) != VMM_OK ||
	    (rc = check_ehdr(ld, &eh)) != VMM_OK)
		return rc;
	/* Validate everything before writing anything into guest RAM. */
	if ((rc = place_segments(ld, &eh, NULL, img)) != VMM_OK ||
	    (rc = check_entry(ld, &eh)) != VMM_OK)
		return rc;
	if (mem && (rc = place_segments(ld, &eh, mem, img)) != VMM_OK)
		return rc;
	img->entry = eh.e_entry;
	return VMM_OK;
}

int elf_load_fd(int fd, const char *name, uint64_t ram_size, struct guest_mem *mem,
		struct elf_image *img, char *err, size_t errlen)
{
	struct loader ld = { .name = name, .ram_size = ram_size, .err = err, .errlen = errlen };
	struct stat st;
	int rc;

	*img = (struct elf_image){ 0 };

	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: cannot stat: %s", name, strerror(errno));
		return VMM_E_NOINPUT;
	}
	if (!S_ISREG(st.st_mode))
		return reject(&ld, "not a regular file");
	if ((uint64_t)st.st_size > ELF_LOAD_FILE_MAX)
		return reject(&ld, "file size 0x%llx exceeds limit 0x%llx",
			      (unsigned long long)st.st_size, ELF_LOAD_FILE_MAX);
	if (elf_version(EV_CURRENT) == EV_NONE) {
		snprintf(err, errlen, "%s: libelf is unusable: %s", name, elf_errmsg(-1));
		return VMM_E_INTERNAL;
	}
	ld.elf = elf_begin(fd, ELF_C_READ, NULL);
	if (!ld.elf) {
		snprintf(err, errlen, "%s: cannot read image: %s", name, elf_errmsg(-1));
		return VMM_E_NOINPUT;
	}
	rc = load_elf(&ld, mem, img);
	elf_end(ld.elf);
	return rc;
}

int elf_load(const char *path, uint64_t ram_size, struct guest_mem *mem, struct elf_image *img,
	     char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc;

	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return VMM_E_NOINPUT;
	}
	rc = elf_load_fd(fd, path, ram_size, mem, img, err, errlen);
	close(fd);
	return rc;
}
