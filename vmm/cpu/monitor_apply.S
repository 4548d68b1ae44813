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
	movq	16(%rsi), %rdx		/* how it ends: enum hv_apply_end */
	cmpq	$1, %rdx		/* HV_APPLY_EXIT */
	je	5f
	movq	8(%rsi), %rax		/* the guest's shadow root: the queue */
	movq	%rax, %cr3		/* is not mapped in it */
	testq	%rdx, %rdx		/* HV_APPLY_EXIT_ON_ROOT: stop there */
	jnz	5f
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

/* The fill monitor's entries (vmm/monitor/fill.c), copied to HV_PF_VA
 * (#PF) and HV_PF_VA + 16 (#GP), named by IDT vectors 14 and 13 under
 * --fill=monitor.  Entry: IST1 (the trap stack), the CPU's frame with its
 * error code, CR3 the guest's shadow root.  Each pushes its vector, saves
 * the guest's GPRs on the trap stack, moves to the monitor root and its own
 * stack, and calls hv_mon_fault(frame).  A non-zero return is the shadow
 * root to go back on: MOV to CR3 (a full flush: real CR4.PGE is never set,
 * SDM 3A §4.10.4.1), restore, iretq through the frame (RIP advanced past an
 * instruction it emulated).  Zero leaves the event to the VMM: back on the
 * guest's root, GPRs restored, and out through the trap stubs' own frame
 * (vector, error code, the CPU's) and port, as if the stub had run.  A
 * fault in the monitor itself (CPL0 in the frame) goes straight out. */
	.globl monitor_pf_code
	.globl monitor_pf_size
	.globl monitor_gp_offset
	.p2align 4
monitor_pf_code:
	pushq	$14
	jmp	1f
	.p2align 4
monitor_gp_entry:
	pushq	$13
1:	testb	$3, 24(%rsp)		/* the interrupted CS */
	jz	9f
	pushq	%rax
	pushq	%rbx
	pushq	%rcx
	pushq	%rdx
	pushq	%rbp
	pushq	%rsi
	pushq	%rdi
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	cld
	movq	%cr3, %rbx		/* the guest's shadow root */
	movq	%rsp, %rbp		/* struct hv_mon_frame */
	movabsq	$HV_ASM_MROOT_MPA, %rax
	movq	%rax, %cr3
	movabsq	$HV_ASM_MON_IMAGE_VA, %rcx
	movq	HV_ASM_HEAD_STACK(%rcx), %rsp
	movq	%rbp, %rdi
	call	*HV_ASM_HEAD_ENTRY(%rcx)
	movq	%rbp, %rsp
	testq	%rax, %rax
	jz	2f
	movq	%rax, %cr3
	jmp	3f
2:	movq	%rbx, %cr3
3:	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%r11
	popq	%r10
	popq	%r9
	popq	%r8
	popq	%rdi
	popq	%rsi
	popq	%rbp
	popq	%rdx
	popq	%rcx
	popq	%rbx
	testq	%rax, %rax
	popq	%rax
	jz	9f
	addq	$16, %rsp		/* the vector and the error code */
	iretq
9:	outb	%al, $HV_ASM_PORT_TRAP	/* the vector is where a stub puts it */
	ud2
monitor_pf_end:
	.p2align 3
monitor_pf_size:
	.quad	monitor_pf_end - monitor_pf_code
monitor_gp_offset:
	.quad	monitor_gp_entry - monitor_pf_code

	.section .note.GNU-stack, "", @progbits
