/* user_run / user_return: a setjmp-style switch between the kernel's own
 * stack and user mode.  syscall_entry: the LSTAR target. */
#include "trap.h"

	.text
	.globl user_run
user_run:
	pushq %rbp
	pushq %rbx
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, saved_kernel_rsp(%rip)
	/* iretq frame for CPL3 (SDM 3A §6.14.3): SS, RSP, RFLAGS, CS, RIP. */
	pushq $(GDT_UDATA | GDT_USER_RPL)
	pushq %rsi
	pushq $0x2
	pushq $(GDT_UCODE | GDT_USER_RPL)
	pushq %rdi
	movq %rdx, %rdi
	xorl %eax, %eax
	xorl %ebx, %ebx
	xorl %ecx, %ecx
	xorl %edx, %edx
	xorl %esi, %esi
	xorl %ebp, %ebp
	xorl %r8d, %r8d
	xorl %r9d, %r9d
	xorl %r10d, %r10d
	xorl %r11d, %r11d
	xorl %r12d, %r12d
	xorl %r13d, %r13d
	xorl %r14d, %r14d
	xorl %r15d, %r15d
	iretq

	.globl user_return
user_return:
	movq %rdi, %rax
	movq saved_kernel_rsp(%rip), %rsp
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbx
	popq %rbp
	ret

	/* SYSCALL leaves RSP as the user's: switch stacks before any push.
	 * Interrupts are off (SFMASK), and there is one CPU. */
	.globl syscall_entry
syscall_entry:
	movq %rsp, user_rsp(%rip)
	movq syscall_kernel_rsp(%rip), %rsp
	pushq user_rsp(%rip)
	pushq %r11
	pushq %rcx
	pushq %r9
	pushq %r8
	pushq %r10
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rax
	movq %rsp, %rdi
	cld
	call syscall_dispatch
	addq $8, %rsp /* the saved rax: the result replaces it */
	popq %rdi
	popq %rsi
	popq %rdx
	popq %r10
	popq %r8
	popq %r9
	popq %rcx
	popq %r11
	popq %rsp
	sysretq

	.bss
	.balign 8
saved_kernel_rsp:
	.quad 0
user_rsp:
	.quad 0

	.section .note.GNU-stack, "", @progbits
