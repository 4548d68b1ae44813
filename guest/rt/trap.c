#include "trap.h"

#include "cpu.h"
#include "guest.h"

#define KSTACK_SIZE 16384
#define GDT_SLOTS 7

/* 64-bit TSS (SDM 3A §8.7, figure 8-11). */
struct dtr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

extern const char trap_stubs[];

static uint64_t gdt[GDT_SLOTS] __attribute__((aligned(16)));
static struct x86_gate64 idt[TRAP_VECTORS] __attribute__((aligned(16)));
static struct x86_tss64 tss __attribute__((aligned(16)));
static uint8_t kstack[KSTACK_SIZE] __attribute__((aligned(16)));
static trap_handler_t handlers[TRAP_VECTORS];

/* Code/data descriptor with the accessed bit preset, so the CPU never
 * writes the GDT when a selector is loaded. */
static uint64_t seg_desc(unsigned type, unsigned dpl, uint64_t flags)
{
	return x86_desc_flat(type | 1, dpl, flags);
}

static void gdt_build(void)
{
	gdt[0] = 0;
	gdt[GDT_KCODE >> 3] = seg_desc(X86_SEG_TYPE_CODE_XR, 0, X86_DESC_L);
	gdt[GDT_KDATA >> 3] = seg_desc(X86_SEG_TYPE_DATA_RW, 0, X86_DESC_DB);
	gdt[GDT_UDATA >> 3] = seg_desc(X86_SEG_TYPE_DATA_RW, 3, X86_DESC_DB);
	gdt[GDT_UCODE >> 3] = seg_desc(X86_SEG_TYPE_CODE_XR, 3, X86_DESC_L);
	x86_desc_tss64(&gdt[GDT_TSS >> 3], (uint64_t)(uintptr_t)&tss, sizeof(tss) - 1,
		       X86_SEG_TYPE_TSS64_AVAIL);
}

static void set_gate(unsigned vector, unsigned dpl)
{
	idt[vector] = x86_gate((uint64_t)(uintptr_t)(trap_stubs + 16 * vector), GDT_KCODE, 0,
			       X86_GATE_TYPE_INTR, dpl);
}

/* The standard reload after lgdt: a far return to the new CS, then the data
 * and stack selectors (SDM 3A §3.4.3). */
static void load_segments(void)
{
	__asm__ volatile("pushq %[cs]\n\t"
			 "leaq 1f(%%rip), %%rax\n\t"
			 "pushq %%rax\n\t"
			 "lretq\n"
			 "1:\n\t"
			 "movl %[ds], %%eax\n\t"
			 "movw %%ax, %%ds\n\t"
			 "movw %%ax, %%es\n\t"
			 "movw %%ax, %%ss\n\t"
			 "movw %%ax, %%fs\n\t"
			 "movw %%ax, %%gs\n\t"
			 :
			 : [cs] "i"(GDT_KCODE), [ds] "i"(GDT_KDATA)
			 : "rax", "memory");
}

void trap_init(void)
{
	struct dtr gdtr = { sizeof(gdt) - 1, (uint64_t)(uintptr_t)gdt };
	struct dtr idtr = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };

	gdt_build();
	tss.rsp[0] = trap_kernel_stack_top();
	tss.iomap_base = sizeof(tss); /* no I/O bitmap */
	for (unsigned v = 0; v < TRAP_VECTORS; v++)
		set_gate(v, 0);
	__asm__ volatile("lgdt %0" : : "m"(gdtr) : "memory");
	load_segments();
	__asm__ volatile("ltr %w0" : : "r"(GDT_TSS) : "memory");
	__asm__ volatile("lidt %0" : : "m"(idtr) : "memory");
}

void trap_set_handler(unsigned vector, trap_handler_t fn)
{
	handlers[vector % TRAP_VECTORS] = fn;
}

void trap_set_dpl(unsigned vector, unsigned dpl)
{
	set_gate(vector % TRAP_VECTORS, dpl & 3);
}

uint64_t trap_kernel_stack_top(void)
{
	return (uint64_t)(uintptr_t)(kstack + sizeof(kstack));
}

void trap_dispatch(struct trap_frame *f)
{
	trap_handler_t fn = handlers[f->vector % TRAP_VECTORS];

	if (fn) {
		fn(f);
		return;
	}
	printf("trap: unhandled vector=%lu error=0x%lx rip=0x%lx user=%d", (unsigned long)f->vector,
	       (unsigned long)f->error, (unsigned long)f->rip, trap_from_user(f));
	if (f->vector == X86_EXC_PF)
		printf(" cr2=0x%lx", (unsigned long)read_cr2());
	printf("\n");
	guest_exit(GUEST_EXIT_RUNTIME);
}
