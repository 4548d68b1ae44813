/* triplefault: load an empty IDT, then raise #UD.  With no IDT the #UD
 * becomes #GP, then #DF, then a triple fault (SDM 3A §6.15, "Interrupt 8"). */
#include "guest.h"

int main(const struct shadowvm_boot_info *bi)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} idtr = { 0, 0 };

	(void)bi;
	printf("loading an empty IDT, then ud2\n");
	__asm__ volatile("lidt %0" : : "m"(idtr));
	__asm__ volatile("ud2");
	printf("still alive after ud2?\n");
	return 1;
}
