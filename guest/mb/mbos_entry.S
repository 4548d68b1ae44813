/* mbos's assembly: the 256 trap stubs into mbos_trap() and the return to
 * the interrupted code (xv6's vectors.S and trapasm.S), the context switch
 * (swtch.S), the GDT load with its segment reloads, and the user programs.
 * The Multiboot header and _start are head.S's (the shared runtime). */
#include "mbrt.h"
#include "mbos.h"

	.text
	.code32

/* ---- stubs: push a zero where the CPU pushes no error code (SDM 3A
 * §6.13, table 6-1: 8, 10-14, 17, 21, 29, 30 have one), the vector, and go
 * to mbos_alltraps; each stub starts 16 bytes after the one before ---- */
	.globl mbos_vectors
	.balign 16
mbos_vectors:
	.set vec, 0
	.rept 256
	.balign 16
	.if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	pushl $0
	.endif
	pushl $vec
	jmp mbos_alltraps
	.set vec, vec + 1
	.endr

/* the frame is struct mbos_tf; the data segments are the kernel's while C runs */
mbos_alltraps:
	pushl %ds
	pushl %es
	pushl %fs
	pushl %gs
	pushal
	movw $SEL_KDATA, %ax
	movw %ax, %ds
	movw %ax, %es
	pushl %esp
	call mbos_trap
	addl $4, %esp
	.globl mbos_trapret
mbos_trapret:
	popal
	popl %gs
	popl %fs
	popl %es
	popl %ds
	addl $8, %esp               /* vector, error code */
	iret

/* mbos_swtch(save_esp, load_esp): save the callee-saved registers on this
 * stack, store its ESP in *save_esp, resume the one at load_esp */
	.globl mbos_swtch
mbos_swtch:
	movl 4(%esp), %eax
	movl 8(%esp), %edx
	pushl %ebp
	pushl %ebx
	pushl %esi
	pushl %edi
	movl %esp, (%eax)
	movl %edx, %esp
	popl %edi
	popl %esi
	popl %ebx
	popl %ebp
	ret

/* mbos_load_gdt(gdtr): lgdt, then reload every segment register from the
 * new table; CS by a far return */
	.globl mbos_load_gdt
mbos_load_gdt:
	movl 4(%esp), %eax
	lgdt (%eax)
	pushl $SEL_KCODE
	pushl $1f
	lret
1:	LOAD_KDATA_SEGMENTS
	ret

/* ---- the user programs: mapped read-only at USER_CODE_VA in every
 * process, so position independent (relative jumps only) and touching
 * nothing but their data and stack pages.  `int $64` is the system call. */
	.section .text.mbos_user, "ax"
	.balign 4096
	.globl mbos_user_start, mbos_user_end
	.globl mbos_user_timer, mbos_user_proc, mbos_user_int65, mbos_user_in
	.globl mbos_user_out, mbos_user_cli
mbos_user_start:

/* spin at CPL3 until 3 timer ticks have passed and at least one of them
 * interrupted this process in user mode; exit 0 */
mbos_user_timer:
	movl $SYS_TICKS, %eax
	int $MBOS_T_SYSCALL
	movl %eax, %esi
1:	movl $USER_SPIN, %ecx
2:	decl %ecx
	jnz 2b
	movl $SYS_TICKS, %eax
	int $MBOS_T_SYSCALL
	subl %esi, %eax
	cmpl $3, %eax
	jb 1b
	movl $SYS_UTICKS, %eax
	int $MBOS_T_SYSCALL
	testl %eax, %eax
	jz 1b
	xorl %ebx, %ebx
	jmp user_exit

/* process EAX = id: fill its data page with (id * PROC_KEY) ^ i and push
 * the id; until preempted PROC_SWITCHES times check both are still its own;
 * then report a checksum of the page (h = 31 h + word) and whether
 * anything ever changed */
mbos_user_proc:
	movl %eax, %ebp
	pushl %eax
	imull $PROC_KEY, %ebp, %edx
	movl $USER_DATA_VA, %edi
	xorl %ecx, %ecx
1:	movl %edx, %eax
	xorl %ecx, %eax
	movl %eax, (%edi,%ecx,4)
	incl %ecx
	cmpl $USER_DATA_WORDS, %ecx
	jb 1b
	xorl %esi, %esi
2:	xorl %ecx, %ecx
3:	movl %edx, %eax
	xorl %ecx, %eax
	cmpl %eax, (%edi,%ecx,4)
	je 4f
	movl $1, %esi
4:	incl %ecx
	cmpl $USER_DATA_WORDS, %ecx
	jb 3b
	cmpl %ebp, (%esp)
	je 5f
	movl $1, %esi
	/* spin between system calls: a tick must mostly find this process at
	 * CPL3 to count as a switch, and under shadow paging each int $64 is
	 * an exit long enough that a tick pending at its end lands in the
	 * kernel; with a call per pass the switches came at random, after
	 * 300 to 1200 ticks (100 ms each) on KVM's shadow MMU */
5:	movl $USER_SPIN, %ecx
7:	decl %ecx
	jnz 7b
	movl $SYS_SWITCHES, %eax
	int $MBOS_T_SYSCALL
	cmpl $PROC_SWITCHES, %eax
	jb 2b
	xorl %ebx, %ebx
	xorl %ecx, %ecx
6:	imull $31, %ebx, %ebx
	addl (%edi,%ecx,4), %ebx
	incl %ecx
	cmpl $USER_DATA_WORDS, %ecx
	jb 6b
	movl %esi, %ecx
	movl $SYS_RESULT, %eax
	int $MBOS_T_SYSCALL
	xorl %ebx, %ebx
	jmp user_exit

/* each of these must fault before it reaches its exit (code 1) */
mbos_user_int65:
	int $MBOS_T_TEST
	jmp user_exit1
mbos_user_in:
	movw $0x3f8, %dx
	inb %dx, %al
	jmp user_exit1
mbos_user_out:
	movw $0x3f8, %dx
	movb $'!', %al
	outb %al, %dx
	jmp user_exit1
mbos_user_cli:
	cli
	jmp user_exit1

user_exit1:
	movl $1, %ebx
user_exit:
	movl $SYS_EXIT, %eax
	int $MBOS_T_SYSCALL
1:	jmp 1b

	.balign 4096
mbos_user_end:
