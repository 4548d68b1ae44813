/* The monitor's store applier (DESIGN.md §3), copied into the second stub
 * page and run at CPL0 on the monitor's own root: it makes every store the
 * shadow MMU queued (vmm/cpu/monitor.c: struct hv_queue), so that the host
 * underneath, whatever MMU it has, sees them as the vCPU's own writes to its
 * page tables; then it loads the guest's shadow root into CR3 (real CR4.PGE
 * is never set, so that flushes every translation: SDM 3A §4.10.4.1) and
 * returns to the guest with iretq through the frame the VMM left below the
 * trap stack's top.  With exit_after set it stops instead with a write to
 * HV_PORT_APPLIED, for the VMM to go on (a queue drained mid-trap).
 *
 * Entry: CS/SS the monitor's, RSP at that frame, RFLAGS 0x2 (IF and DF
 * clear), CR3 the monitor root, every other register the guest's. */
#include "monitor_asm.h"

	.section .rodata.monitor_apply, "a"
	.globl monitor_apply_code
	.globl monitor_apply_size
	.p2align 4
monitor_apply_code:
	pushq	%rax
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	movabsq	$HV_ASM_QUEUE_VA, %rsi
	movq	0(%rsi), %rdx		/* ops */
	leaq	HV_ASM_QUEUE_OPS_OFF(%rsi), %rsi
1:	testq	%rdx, %rdx
	jz	3f
	movq	0(%rsi), %rdi		/* where: a shadow entry, or bit 0: a page to zero */
	movq	8(%rsi), %rax		/* value */
	btrq	$0, %rdi
	jc	2f
	movq	%rax, (%rdi)
	jmp	4f
2:	xorl	%eax, %eax
	movl	$512, %ecx
	rep stosq
4:	addq	$16, %rsi
	decq	%rdx
	jmp	1b
3:	movabsq	$HV_ASM_QUEUE_VA, %rsi
	movq	$0, 0(%rsi)		/* applied */
	cmpq	$0, 16(%rsi)		/* exit_after */
	jne	5f
	movq	8(%rsi), %rax		/* the guest's shadow root */
	movq	%rax, %cr3
	popq	%rdi
	popq	%rsi
	popq	%rdx
	popq	%rcx
	popq	%rax
	iretq
5:	outb	%al, $HV_ASM_PORT_APPLIED
	ud2
monitor_apply_end:
	.p2align 3
monitor_apply_size:
	.quad	monitor_apply_end - monitor_apply_code

	.section .note.GNU-stack, "", @progbits
