#include "guest.h"

#define UART_THR 0
#define UART_LSR 5
#define UART_LSR_THRE 0x20

void console_putc(char c)
{
	/* A polling 16550 driver: wait for the transmitter holding register. */
	while (!(inb(SHADOWVM_ABI_PORT_COM1 + UART_LSR) & UART_LSR_THRE))
		;
	outb(SHADOWVM_ABI_PORT_COM1 + UART_THR, (uint8_t)c);
}

void console_write(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		console_putc(s[i]);
}

void guest_exit(unsigned status)
{
	outl(SHADOWVM_ABI_PORT_EXIT, status);
	for (;;)
		__asm__ volatile("hlt");
}

void guest_start(const struct shadowvm_boot_info *bi);

void guest_start(const struct shadowvm_boot_info *bi)
{
	if (bi->magic != SHADOWVM_BOOTINFO_MAGIC || bi->abi_version != SHADOWVM_ABI_VERSION) {
		printf("guest: boot info magic 0x%x version %u, expected 0x%x version %u\n",
		       bi->magic, bi->abi_version, SHADOWVM_BOOTINFO_MAGIC, SHADOWVM_ABI_VERSION);
		guest_exit(SHADOWVM_ABI_EXIT_MAX);
	}
	guest_exit((unsigned)main(bi));
}
