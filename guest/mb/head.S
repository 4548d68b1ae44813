/* Multiboot v1 entry and 32-bit trap plumbing shared by the Multiboot guests
 * (guest/mb/).  Entered as the Multiboot spec §3.2 says: 32-bit protected
 * mode, paging off, EAX = 0x2BADB002, EBX = the info block. */
#include "mbrt.h"

	.section .multiboot, "a"
	.align 4
	.long MB_HEADER_MAGIC
	.long MB_HEADER_FLAGS
	.long -(MB_HEADER_MAGIC + MB_HEADER_FLAGS)

	.text
	.code32
	.globl _start
_start:
	cli
	movl $boot_stack_top, %esp
	movl %eax, %esi
	movl %ebx, %edi
	call mb_cpu_init            /* the guest's GDT, IDT and TSS */
	pushl %edi
	pushl %esi
	ljmp $SEL_KCODE, $1f
1:	LOAD_KDATA_SEGMENTS
	call mb_main
2:	hlt
	jmp 2b

/* ---- 32-bit trap stubs: push a zero error code where the CPU has none,
 * the vector, the GPRs, and call trap32(frame) ---- */
.macro stub v, err
	.align 16
	.if \err == 0
	pushl $0
	.endif
	pushl $\v
	jmp trap_common
.endm

	.globl trap_stubs
	.align 16
trap_stubs:
	.irp v, 0,1,2,3,4,5,6,7
	stub \v, 0
	.endr
	stub 8, 1
	stub 9, 0
	.irp v, 10,11,12,13,14
	stub \v, 1
	.endr
	.irp v, 15,16
	stub \v, 0
	.endr
	stub 17, 1
	.irp v, 18,19,20,21,22,23,24,25,26,27,28,29,30,31
	stub \v, 0
	.endr
	stub 0x80, 0

trap_common:
	pushal
	movl %esp, %eax
	pushl %eax
	call trap32
	addl $4, %esp
	popal
	addl $8, %esp
	iret

/* ---- probes: one access each, with a fix-up the #PF handler jumps to ---- */
	.globl probe_read, probe_write, probe_exec, pr_insn, pw_insn, pr_fix, pw_fix, px_fix
probe_read:
	movl 4(%esp), %eax
pr_insn:
	movl (%eax), %eax
	xorl %eax, %eax
	ret
pr_fix:
	movl $1, %eax
	ret
probe_write:
	movl 4(%esp), %eax
pw_insn:
	movb $0xc3, (%eax)        /* a plain write: no read first */
	xorl %eax, %eax
	ret
pw_fix:
	movl $1, %eax
	ret
probe_exec:
	movl 4(%esp), %eax
	call *%eax
	xorl %eax, %eax
	ret
px_fix:
	addl $4, %esp
	movl $1, %eax
	ret

/* ---- user mode: user_run(kind, addr) irets to CPL3 at user_probe with
 * EAX = kind, ECX = addr; int $0x80 or a fault there comes back through
 * user_return(result), which resumes user_run's caller ---- */
	.globl user_run, user_return, ur_insn, uw_insn
user_run:
	pushl %ebp
	pushl %ebx
	pushl %esi
	pushl %edi
	movl %esp, user_saved_esp
	movl 20(%esp), %eax
	movl 24(%esp), %ecx
	pushl $SEL_UDATA
	pushl $user_stack_top
	pushl $2
	pushl $SEL_UCODE
	pushl $user_probe
	movw $SEL_UDATA, %dx
	movw %dx, %ds
	movw %dx, %es
	iret
user_return:
	movl 4(%esp), %eax
	movw $SEL_KDATA, %dx
	movw %dx, %ds
	movw %dx, %es
	movl user_saved_esp, %esp
	popl %edi
	popl %esi
	popl %ebx
	popl %ebp
	ret

user_probe:
	cmpl $PROBE_READ, %eax
	je 1f
	cmpl $PROBE_WRITE, %eax
	je 2f
	call *%ecx
	jmp 3f
1:
ur_insn:
	movl (%ecx), %edx
	jmp 3f
2:
uw_insn:
	movb $0xc3, (%ecx)
3:	movl $0, %eax
	int $0x80
4:	jmp 4b

	.bss
	.align 4096
	.globl boot_stack_top, trap_stack_top
	.space 16384
boot_stack_top:
	.space 8192
trap_stack_top:
	.space 4096
user_stack_top:
user_saved_esp:
	.long 0
