/* libFuzzer harness for the ELF loader: bytes -> memfd -> the real libelf
 * loader, placing into a small guest RAM.  Any crash, sanitizer report or
 * broken postcondition is a finding.  Built by `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "elf_load.h"
#include "shadowvm_abi.h"
#include "status.h"

#define FUZZ_RAM (4ull << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
		/* what the loader promises about an accepted image */
		if (img.end > FUZZ_RAM || img.end < SHADOWVM_ABI_LOAD_MIN || img.nloads == 0 ||
		    img.nloads > ELF_LOAD_PHNUM_MAX)
			abort();
	} else if (rc != VMM_E_IMAGE && rc != VMM_E_NOINPUT) {
		abort();
	}
	return 0;
}
