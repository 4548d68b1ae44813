/* The guest kernel's own descriptor tables and trap path: a GDT laid out for
 * SYSCALL/SYSRET, a 64-bit TSS whose RSP0 takes traps from user mode, and an
 * IDT of 256 interrupt gates whose stubs save every GPR and call one C
 * dispatcher with a struct trap_frame. */
#ifndef SHADOWVM_GUEST_TRAP_H
#define SHADOWVM_GUEST_TRAP_H

/* GDT selectors.  STAR-compatible: SYSCALL loads CS = KCODE, SS = KCODE + 8;
 * SYSRET (64-bit) loads SS = UDATA, CS = UCODE (both from STAR[63:48] =
 * KDATA, SDM 2B SYSRET). */
#define GDT_KCODE 0x08
#define GDT_KDATA 0x10
#define GDT_UDATA 0x18
#define GDT_UCODE 0x20
#define GDT_TSS 0x28 /* 16 bytes: two slots */
#define GDT_USER_RPL 3

#define TRAP_VECTORS 256

#ifndef __ASSEMBLER__
#include <stdint.h>

/* What trap_entry.S pushes, lowest address first. */
struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error; /* error is 0 for vectors without one */
	uint64_t rip, cs, rflags, rsp, ss;
};

typedef void (*trap_handler_t)(struct trap_frame *f);

/* Load the runtime's GDT (reloading every segment register), TSS and IDT.
 * All gates start as DPL 0 interrupt gates with no handler: an unhandled
 * trap prints one line and ends the run with GUEST_EXIT_RUNTIME. */
void trap_init(void);
/* Handle `vector` with `fn` (NULL: back to unhandled). */
void trap_set_handler(unsigned vector, trap_handler_t fn);
/* Let `int $vector` be used from privilege `dpl` (3: from user mode). */
void trap_set_dpl(unsigned vector, unsigned dpl);
/* Was the frame pushed by a trap from user mode?  Only the RPL says so: the
 * guest kernel's own CS may carry RPL 1 under shadow paging (ABI header). */
static inline int trap_from_user(const struct trap_frame *f)
{
	return (f->cs & 3) == GDT_USER_RPL;
}
/* Top of the stack the CPU switches to on a trap or syscall from user mode. */
uint64_t trap_kernel_stack_top(void);

/* Called by trap_entry.S. */
void trap_dispatch(struct trap_frame *f);
#endif

#endif
