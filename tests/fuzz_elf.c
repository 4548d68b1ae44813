/* libFuzzer harness for the ELF loader: bytes -> memfd -> the real libelf
 * loader, placing into a small guest RAM, then for a Multiboot image the
 * info block writer.  Any crash, sanitizer report or
 * broken postcondition is a finding.  Built by `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "elf_load.h"
#include "multiboot_load.h"
#include "shadowvm_abi.h"
#include "status.h"

#define FUZZ_RAM (4ull << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An accepted Multiboot image: its entry inside what was loaded, and the
 * info block, when it fits, page-aligned above the image and inside RAM. */
static void check_multiboot(struct guest_mem *mem, struct elf_image *img)
{
	const struct boot_args args = { .image = "fuzz", .cmdline = "a=1" };
	char err[512];
	int rc;

	if (img->entry >= img->end)
		abort();
	rc = multiboot_setup_memory(mem, img, &args, err, sizeof(err));
	if (rc == VMM_OK && (img->mb_info % 4096 || img->mb_info < img->end ||
			     img->mb_end > FUZZ_RAM || img->mb_end <= img->mb_info))
		abort();
	if (rc != VMM_OK && rc != VMM_E_IMAGE)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guest_mem mem;
	struct elf_image img;
	char err[512];
	int fd, rc;

	if (!mem.host && mem_alloc(&mem, FUZZ_RAM) != 0)
		abort();
	fd = memfd_create("fuzz-elf", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	rc = elf_load_fd(fd, "fuzz", FUZZ_RAM, &mem, &img, err, sizeof(err));
	close(fd);
	if (rc == VMM_OK) {
		/* what the loader promises about an accepted image (a Multiboot
		 * one may start below the ABI's load minimum) */
		if (img.end > FUZZ_RAM || img.nloads == 0 || img.nloads > ELF_LOAD_PHNUM_MAX ||
		    (!img.multiboot && img.end < SHADOWVM_ABI_LOAD_MIN))
			abort();
		if (img.multiboot)
			check_multiboot(&mem, &img);
	} else if (rc != VMM_E_IMAGE && rc != VMM_E_NOINPUT) {
		abort();
	}
	return 0;
}
