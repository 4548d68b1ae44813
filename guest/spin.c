/* spin: print, then loop forever — for --timeout.  The loop leaves the guest
 * (a write to the no-op port 0x80) about once per million iterations: under
 * the nested TCG runner a vCPU that never exits was seen to miss the signal
 * that stops KVM_RUN now and then, and a run with no exit at all tests QEMU
 * rather than shadowvm.  The watchdog path is the same either way. */
#include "guest.h"

int main(const struct shadowvm_boot_info *bi)
{
	(void)bi;
	printf("spinning\n");
	for (;;) {
		for (unsigned i = 0; i < (1u << 20); i++)
			__asm__ volatile("pause");
		outb(0x80, 0);
	}
}
