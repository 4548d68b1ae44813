/* The Multiboot guests' C runtime: COM1 output, a 32-bit printf, the
 * isa-debug-exit port, and the guest's own GDT, IDT and TSS. */
#include "mbrt.h"
#include "x86.h"

#define COM1 0x3f8
#define PORT_EXIT 0xf4

void mb_memset(void *p, int c, uint32_t n)
{
	uint8_t *b = p;

	while (n--)
		*b++ = (uint8_t)c;
}

void mb_putc(char c)
{
	while (!(inb(COM1 + 5) & 0x20))
		;
	outb(COM1, (uint8_t)c);
}

static void put_num(uint32_t v, unsigned base, int width, char pad)
{
	char tmp[12];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (width-- > n)
		mb_putc(pad);
	while (n)
		mb_putc(tmp[--n]);
}

/* %s %c %u %d %x with an optional 0 flag and width; 32-bit arguments. */
void mb_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	for (; *fmt; fmt++) {
		int width = 0;
		char pad = ' ';

		if (*fmt != '%') {
			mb_putc(*fmt);
			continue;
		}
		if (*++fmt == '0')
			pad = '0', fmt++;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		switch (*fmt) {
		case 's':
			for (const char *s = va_arg(ap, const char *); *s; s++)
				mb_putc(*s);
			break;
		case 'c': mb_putc((char)va_arg(ap, int)); break;
		case 'u': put_num(va_arg(ap, uint32_t), 10, width, pad); break;
		case 'd': {
			int32_t v = va_arg(ap, int32_t);
			if (v < 0)
				mb_putc('-'), v = -v;
			put_num((uint32_t)v, 10, width, pad);
			break;
		}
		case 'x': put_num(va_arg(ap, uint32_t), 16, width, pad); break;
		default: mb_putc(*fmt); break;
		}
	}
	va_end(ap);
}

/* QEMU's isa-debug-exit: the run ends with status (code << 1) | 1. */
void mb_exit(uint32_t code)
{
	outl(PORT_EXIT, code);
	for (;;)
		__asm__ volatile("hlt");
}

/* ---- descriptor tables ---- */

static uint64_t gdt[10] __attribute__((aligned(16)));
static uint64_t idt[256] __attribute__((aligned(16)));
static uint32_t tss[26] __attribute__((aligned(16)));   /* 32-bit TSS, SDM 3A §8.2.1 */
static uint32_t tss64[26] __attribute__((aligned(16))); /* 64-bit TSS, §8.7 */

struct __attribute__((packed)) dtr {
	uint16_t limit;
	uint32_t base;
};

struct dtr gdt_desc = { sizeof(gdt) - 1, (uint32_t)gdt };

static uint64_t seg(uint32_t type, uint32_t dpl, int l)
{
	return 0xffffull | (0xfull << 48) | ((uint64_t)type << 40) | (1ull << 44) |
	       ((uint64_t)dpl << 45) | (1ull << 47) | (1ull << 55) | (l ? 1ull << 53 : 1ull << 54);
}

static uint64_t gate32(uint32_t off, uint32_t dpl)
{
	return (off & 0xffff) | ((uint64_t)SEL_KCODE << 16) | (0xeull << 40) |
	       ((uint64_t)dpl << 45) | (1ull << 47) | ((uint64_t)(off >> 16) << 48);
}

void mb_ltr64(void)
{
	__asm__ volatile("ltr %w0" : : "r"(SEL_TSS64));
}

void mb_cpu_init(void)
{
	struct dtr idtr = { sizeof(idt) - 1, (uint32_t)idt };
	uint32_t tb = (uint32_t)tss;

	gdt[SEL_KCODE >> 3] = seg(0xa, 0, 0);
	gdt[SEL_KDATA >> 3] = seg(0x2, 0, 0);
	gdt[SEL_UCODE >> 3] = seg(0xa, 3, 0);
	gdt[SEL_UDATA >> 3] = seg(0x2, 3, 0);
	gdt[SEL_KCODE64 >> 3] = seg(0xa, 0, 1);
	/* available 32-bit TSS, byte granular (SDM 3A §8.2.2) */
	gdt[SEL_TSS >> 3] = (sizeof(tss) - 1) | ((uint64_t)(tb & 0xffffff) << 16) | (0x9ull << 40) |
			    (1ull << 47) | ((uint64_t)(tb >> 24) << 56);
	/* 64-bit TSS (16 bytes, SDM 3A figure 8-4): RSP0 for IA-32e mode */
	gdt[SEL_TSS64 >> 3] = (sizeof(tss64) - 1) | ((uint64_t)((uint32_t)tss64 & 0xffffff) << 16) |
			      (0x9ull << 40) | (1ull << 47) |
			      ((uint64_t)((uint32_t)tss64 >> 24) << 56);
	gdt[(SEL_TSS64 >> 3) + 1] = 0;
	mb_memset(tss64, 0, sizeof(tss64));
	tss64[1] = (uint32_t)trap_stack_top; /* RSP0, low half */
	tss64[25] = sizeof(tss64) << 16;
	__asm__ volatile("lgdt %0" : : "m"(gdt_desc));
	mb_memset(tss, 0, sizeof(tss));
	tss[1] = (uint32_t)trap_stack_top; /* ESP0 */
	tss[2] = SEL_KDATA;                /* SS0 */
	tss[25] = sizeof(tss) << 16;       /* I/O map base past the limit: no bitmap */
	__asm__ volatile("ltr %w0" : : "r"(SEL_TSS));
	for (unsigned v = 0; v < 32; v++)
		idt[v] = gate32((uint32_t)trap_stubs + 16 * v, 0);
	idt[0x80] = gate32((uint32_t)trap_stubs + 16 * 32, 3);
	__asm__ volatile("lidt %0" : : "m"(idtr));
}
