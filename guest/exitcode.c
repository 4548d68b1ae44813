/* exitcode: exit with the number given as the command line ("exitcode 7"
 * or "7"), 0 when there is none. */
#include "guest.h"

int main(const struct shadowvm_boot_info *bi)
{
	const char *p = (const char *)(uintptr_t)bi->cmdline;
	uint64_t v;

	while (*p && (*p < '0' || *p > '9'))
		p++;
	v = strtou64(p, NULL);
	printf("exiting with %lu\n", (unsigned long)v);
	return (int)v;
}
