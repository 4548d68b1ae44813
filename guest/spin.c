/* spin: print, then loop forever — for --timeout. */
#include "guest.h"

int main(const struct svm_boot_info *bi)
{
	(void)bi;
	printf("spinning\n");
	for (;;)
		__asm__ volatile("pause");
}
