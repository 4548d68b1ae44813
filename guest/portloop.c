/* portloop: N writes to port 0x80 (each one exit to the VMM), for measuring
 * the cost of an exit.  N comes from "n=N" on the command line (default
 * 10000). */
#include "guest.h"

int main(const struct shadowvm_boot_info *bi)
{
	char buf[32];
	uint64_t n = 10000;

	if (cmdline_get(bi, "n", buf, sizeof(buf)))
		n = strtou64(buf, NULL);
	for (uint64_t i = 0; i < n; i++)
		outb(0x80, (uint8_t)i);
	printf("portloop: %lu port writes\n", (unsigned long)n);
	return 0;
}
