/* The user/kernel boundary: entering CPL3 by iretq, coming back by a trap or
 * syscall handler calling user_return, and SYSCALL/SYSRET system calls.
 * Needs trap_init first (GDT user selectors, TSS.RSP0). */
#ifndef SHADOWVM_GUEST_USER_H
#define SHADOWVM_GUEST_USER_H

#include <stdint.h>

/* Registers of a SYSCALL, as syscall_entry saves them.  SYSRET restores
 * rcx into RIP and r11 into RFLAGS (SDM 2B SYSRET). */
struct syscall_frame {
	uint64_t rax, rdi, rsi, rdx, r10, r8, r9;
	uint64_t rcx, r11, rsp; /* user RIP, RFLAGS, RSP */
};

/* Returns the value placed in the user's RAX. */
typedef uint64_t (*syscall_handler_t)(struct syscall_frame *f);

/* Run user code at CPL3 from `rip` with stack `rsp`, RDI = `arg`, other
 * GPRs zero, interrupts off.  Returns the value a handler passes to
 * user_return. */
uint64_t user_run(uint64_t rip, uint64_t rsp, uint64_t arg);
/* From a trap or syscall handler of the current user_run: abandon the
 * handler's stack and make user_run return `v`. */
__attribute__((noreturn)) void user_return(uint64_t v);

/* Map the page-aligned kernel text [start, end) at `va` for user mode:
 * user, read-only, executable.  Code there must be position-independent
 * (it runs at an alias of where it was linked). */
void user_map_text(uint64_t root, uint64_t va, const void *start, const void *end);

/* Enable SYSCALL (EFER.SCE) with STAR, LSTAR = syscall_entry and SFMASK
 * (IF, TF, DF, AC cleared on entry); system calls go to `fn` on the kernel
 * stack of trap_kernel_stack_top. */
void syscall_init(syscall_handler_t fn);

/* Called by user_entry.S. */
uint64_t syscall_dispatch(struct syscall_frame *f);
extern uint64_t syscall_kernel_rsp;

#endif
