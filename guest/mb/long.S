/* mbmodes' visit to 64-bit mode: from compatibility mode, a far jump into
 * the 64-bit code segment, a read of the test page through the 4-level
 * tables, a line on COM1, and a far jump back to 32-bit code. */
#include "mbrt.h"

	.text
	.code32
	.globl long_mode_visit
long_mode_visit:
	pushl %ebx
	pushl %esi
	ljmp $SEL_KCODE64, $1f
	.code64
1:	movabsq $0x40000040, %rax
	movzbl (%rax), %ebx          /* the fetch target's 0xc3 */
	leaq msg(%rip), %rsi
2:	movb (%rsi), %al
	testb %al, %al
	jz 3f
	movw $0x3f8, %dx
	outb %al, %dx
	incq %rsi
	jmp 2b
3:	cmpl $0xc3, %ebx
	jne 4f
	ljmpl *back(%rip)
4:	movl $1, %eax
	movw $0xf4, %dx
	outl %eax, %dx
	hlt
	.code32
5:	popl %esi
	popl %ebx
	ret

	.section .rodata
msg:	.asciz "mbmodes: 64-bit mode: cs.l=1, read 0xc3 through the 4-level tables\n"
	.align 4
back:	.long 5b
	.word SEL_KCODE

/* ---- IA-32e mode's traps, for the matrices run from compatibility-mode
 * code: #PF records the fault and resumes at the probe's fix-up, or, from
 * CPL3, returns to user_run's caller as int $0x80 does (with 1 and 0).
 * The way back to the 32-bit kernel is an IRETQ to an RPL-0 selector.
 * "From user mode" is (CS & 3) == 3: under --paging=shadow the kernel's
 * CS carries RPL 1 (include/shadowvm_abi.h). */
	.text
	.code64
	.globl idt64_pf, idt64_int80, idt64_bad
idt64_pf:
	pushq %rax
	pushq %rcx
	movq %cr2, %rax
	movl %eax, pf_cr2(%rip)
	movl 16(%rsp), %eax
	movl %eax, pf_err(%rip)
	incl pf_count(%rip)
	movl 32(%rsp), %eax
	andl $3, %eax
	cmpl $3, %eax
	je 3f
	movq 24(%rsp), %rax
	movl $pr_fix, %ecx
	cmpl $pr_insn, %eax             /* 32-bit addresses: an ELF32 image */
	je 1f
	movl $pw_fix, %ecx
	cmpl $pw_insn, %eax
	je 1f
	movl $px_fix, %ecx
	cmpl exec_target(%rip), %eax
	jne idt64_bad
1:	movq %rcx, 24(%rsp)
	popq %rcx
	popq %rax
	addq $8, %rsp
	iretq
3:	movl $1, user_result(%rip)
	jmp to_kernel

idt64_int80:
	pushq $0
	pushq %rax
	pushq %rcx
	movl 32(%rsp), %eax
	andl $3, %eax
	cmpl $3, %eax
	jne idt64_bad
	movl $0, user_result(%rip)
to_kernel:
	movl $back32, %ecx
	movq %rcx, 24(%rsp)             /* RIP */
	leaq 40(%rsp), %rax
	movq $SEL_KCODE, 32(%rsp)       /* CS, RPL 0 */
	movq $2, 40(%rsp)               /* RFLAGS */
	movq %rax, 48(%rsp)             /* RSP: this stack */
	movq $SEL_KDATA, 56(%rsp)       /* SS, RPL 0 */
	popq %rcx
	popq %rax
	addq $8, %rsp
	iretq

idt64_bad:
	leaq badmsg(%rip), %rsi
	movw $0x3f8, %dx
1:	movb (%rsi), %al
	testb %al, %al
	jz 2f
	outb %al, %dx
	incq %rsi
	jmp 1b
2:	movl $2, %eax
	movw $0xf4, %dx
	outl %eax, %dx
	hlt

	.code32
back32:
	pushl user_result
	call user_return

	.section .rodata
badmsg:	.asciz "mbmodes: unexpected exception in IA-32e mode\n"
	.bss
	.align 4
user_result:
	.long 0
