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
