/* hello: the smallest guest — print, then exit 0. */
#include "guest.h"

int main(const struct shadowvm_boot_info *bi)
{
	printf("hello from a shadowvm guest\n");
	printf("ram=%lu MiB abi=%u cmdline=\"%s\"\n", (unsigned long)(bi->ram_size >> 20),
	       bi->abi_version, (const char *)(uintptr_t)bi->cmdline);
	return 0;
}
