/* The Multiboot guests' runtime (guest/mb/): constants shared by head.S
 * and C, and the C runtime's interface.  32-bit code: no 64-bit division. */
#ifndef SHADOWVM_MBRT_H
#define SHADOWVM_MBRT_H

#define MB_HEADER_MAGIC 0x1BADB002
#define MB_HEADER_FLAGS 0x00000003 /* page-aligned modules, memory info */

/* the guest's GDT (mbrt.c) */
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UCODE 0x1b
#define SEL_UDATA 0x23
#define SEL_TSS 0x28
#define SEL_KCODE64 0x30
#define SEL_TSS64 0x38 /* 16 bytes */

#define MB_BOOT_MAGIC 0x2BADB002 /* EAX at entry (Multiboot §3.2) */

#define PROBE_READ 0
#define PROBE_WRITE 1
#define PROBE_FETCH 2

#ifdef __ASSEMBLER__
/* Load every data segment register with the kernel data selector, after CS
 * was reloaded from a new GDT (head.S, mbos_entry.S); clobbers AX. */
.macro LOAD_KDATA_SEGMENTS
	movw $SEL_KDATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %fs
	movw %ax, %gs
	movw %ax, %ss
.endm
#else
#include <stdarg.h>
#include <stdint.h>

#include "pio.h"

/* the first fields of the Multiboot information block (§3.3) */
struct mb_info_head {
	uint32_t flags, mem_lower, mem_upper;
};

struct tf32 {
	uint32_t edi, esi, ebp, esp_k, ebx, edx, ecx, eax;
	uint32_t vector, err, eip, cs, eflags, esp, ss; /* esp, ss: from CPL3 */
};

/* head.S */
int probe_read(uint32_t va);
int probe_write(uint32_t va);
int probe_exec(uint32_t va);
int user_run(int kind, uint32_t va);
__attribute__((noreturn)) void user_return(int result);
extern char pr_insn[], pw_insn[], pr_fix[], pw_fix[], px_fix[], ur_insn[], uw_insn[];
extern char trap_stubs[], trap_stack_top[], __image_end[];

/* mbrt.c */
void mb_putc(char c);
void mb_printf(const char *fmt, ...);
__attribute__((noreturn)) void mb_exit(uint32_t code);
void mb_cpu_init(void);
void mb_ltr64(void); /* in IA-32e mode */
void mb_memset(void *p, int c, uint32_t n);

#define CR_ACCESSORS(n)                                                    \
	static inline uint32_t read_cr##n(void)                            \
	{                                                                  \
		uint32_t v;                                                \
		__asm__ volatile("mov %%cr" #n ", %0" : "=r"(v));          \
		return v;                                                  \
	}                                                                  \
	static inline void write_cr##n(uint32_t v)                         \
	{                                                                  \
		__asm__ volatile("mov %0, %%cr" #n : : "r"(v) : "memory"); \
	}
CR_ACCESSORS(0)
CR_ACCESSORS(2)
CR_ACCESSORS(3)
CR_ACCESSORS(4)

static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return (uint64_t)hi << 32 | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static inline void invlpg(uint32_t va)
{
	__asm__ volatile("invlpg (%0)" : : "r"(va) : "memory");
}

static inline void cpuid(uint32_t leaf, uint32_t r[4])
{
	__asm__ volatile("cpuid"
			 : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(0));
}
#endif

#endif
