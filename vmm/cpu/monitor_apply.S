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
/* The guest's GPRs as struct hv_mon_frame has them (RAX highest). */
	.macro	PUSH_GPRS
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
	.endm
	.macro	POP_GPRS_BUT_RAX
	popq	%r15
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
	.endm

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
	cmpq	$14, (%rsp)
	jne	.Lfull
	testb	$8, 8(%rsp)		/* PFERR.RSVD: a marked leaf */
	jnz	.Llapic
.Lfull:
	PUSH_GPRS
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
3:	POP_GPRS_BUT_RAX
	testq	%rax, %rax
	popq	%rax
	jz	9f
	addq	$16, %rsp		/* the vector and the error code */
	iretq
9:	outb	%al, $HV_ASM_PORT_TRAP	/* the vector is where a stub puts it */
	ud2

/* The local-APIC fast path (monitor.h struct hv_lapic).  A reserved-bit #PF
 * comes only from a leaf the shadow MMU marked (shadow.h SHADOW_MMIO_MARK):
 * the APIC's page, mapped supervisor, writable and dirty, so that a guest
 * kernel access needs no rights check and no A/D.  Served here, on the
 * guest's root, when it is the guest kernel's (CPL1) 32-bit MOV from or to
 * memory, 8B /r, 89 /r or C7 /0, no prefix but REX (not REX.W), on a
 * register at a 16-byte boundary (SDM 3A §11.4.1: the APIC's registers are
 * 32 bits wide and 128-bit aligned), from flat code without TF set; CR2 is
 * its address.  The bytes read of the instruction are the ones the CPU
 * fetched to decode it, so they are mapped.  Anything else goes on to the
 * full path untouched, which leaves it to the VMM: the VMM makes the leaf
 * plain (shadow_mmio_unmark) and KVM serves the access. */
.Llapic:
	PUSH_GPRS
	/* the frame: GPRs 0..112, vector 120, error code 128, RIP 136,
	 * CS 144, RFLAGS 152 (struct hv_mon_frame) */
	movq	%cr2, %rdi
	movabsq	$HV_ASM_LAPIC_VA, %rbx
	cmpl	$0, HV_ASM_LAPIC_ENABLED(%rbx)
	je	.Lno
	movl	128(%rsp), %eax		/* P, W and RSVD only: no user, no fetch */
	testl	$0xfffffff4, %eax
	jnz	.Lno
	testl	$0x100, 152(%rsp)	/* TF: a #DB is due after the instruction */
	jnz	.Lno
	testl	$0xf, %edi		/* a register's first byte */
	jnz	.Lno
	andl	$0xfff, %edi		/* the register's offset */
	movq	144(%rsp), %rcx
	movl	%ecx, %eax
	andl	$3, %eax
	cmpl	$1, %eax		/* the guest kernel */
	jne	.Lno
	testl	$4, %ecx		/* a GDT selector */
	jnz	.Lno
	andl	$0xfff8, %ecx
	movabsq	$HV_ASM_GDT_VA, %rdx
	movq	(%rdx,%rcx), %rax	/* the code descriptor: base 0 */
	movabsq	$0xff0000ffffff0000, %rdx
	testq	%rdx, %rax
	jnz	.Lno
	/* 64-bit code: L set, D clear; 32-bit: L clear, D set (SDM 3A §5.2.1) */
	xorl	%r8d, %r8d
	btq	$53, %rax
	jnc	2f
	btq	$54, %rax
	jc	.Lno
	movl	$1, %r8d
	jmp	3f
2:	btq	$54, %rax
	jnc	.Lno
3:	movq	136(%rsp), %rsi		/* the instruction: base 0 */
	movq	%rsi, %r12
	cmpl	$0, HV_ASM_LAPIC_STAC(%rbx)
	je	4f
	stac
4:	movzbl	(%rsi), %eax
	xorl	%r9d, %r9d		/* REX */
	testl	%r8d, %r8d
	jz	5f
	movl	%eax, %ecx
	andl	$0xf0, %ecx
	cmpl	$0x40, %ecx
	jne	5f
	movl	%eax, %r9d
	incq	%rsi
	movzbl	(%rsi), %eax
	testl	$8, %r9d		/* REX.W: a 64-bit access */
	jnz	.Lno_clac
5:	xorl	%r10d, %r10d		/* 0 load, 1 store a register, 2 an immediate */
	cmpl	$0x8b, %eax
	je	6f
	incl	%r10d
	cmpl	$0x89, %eax
	je	6f
	incl	%r10d
	cmpl	$0xc7, %eax
	jne	.Lno_clac
6:	movzbl	1(%rsi), %r11d		/* ModRM */
	addq	$2, %rsi
	movl	%r11d, %eax
	shrl	$6, %eax		/* mod */
	cmpl	$3, %eax
	je	.Lno_clac
	movl	%r11d, %ecx
	andl	$7, %ecx		/* r/m */
	cmpl	$4, %ecx
	jne	7f
	movzbl	(%rsi), %edx		/* SIB */
	incq	%rsi
	testl	%eax, %eax
	jnz	8f
	andl	$7, %edx
	cmpl	$5, %edx		/* no base: disp32 */
	jne	8f
	addq	$4, %rsi
	jmp	8f
7:	testl	%eax, %eax
	jnz	8f
	cmpl	$5, %ecx		/* disp32 (RIP-relative in 64-bit code) */
	jne	8f
	addq	$4, %rsi
8:	cmpl	$1, %eax
	jne	10f
	incq	%rsi			/* disp8 */
	jmp	11f
10:	cmpl	$2, %eax
	jne	11f
	addq	$4, %rsi		/* disp32 */
11:	movl	%r11d, %ecx
	shrl	$3, %ecx
	andl	$7, %ecx		/* reg */
	cmpl	$2, %r10d
	jne	12f
	testl	%ecx, %ecx		/* C7 /0 alone */
	jnz	.Lno_clac
	movl	(%rsi), %r13d		/* imm32 */
	addq	$4, %rsi
	jmp	14f
12:	testl	$4, %r9d		/* REX.R */
	jz	13f
	addl	$8, %ecx
13:	cmpl	$4, %ecx		/* RSP: not in this frame */
	je	.Lno_clac
	leaq	.Lgpr(%rip), %rdx
	movzbl	(%rdx,%rcx), %r14d	/* its place in the frame */
	movl	(%rsp,%r14), %r13d	/* a store's value */
14:	cmpl	$0, HV_ASM_LAPIC_STAC(%rbx)
	je	15f
	clac
15:	movl	128(%rsp), %eax		/* PFERR.W must say what the opcode does */
	shrl	$1, %eax
	andl	$1, %eax
	testl	%r10d, %r10d
	setnz	%cl
	movzbl	%cl, %ecx
	cmpl	%ecx, %eax
	jne	.Lno
	movabsq	$HV_ASM_LAPIC_ALIAS_VA, %rcx
	testl	%r10d, %r10d
	jnz	17f
	cmpl	$0x20, %edi		/* the ID register */
	jne	16f
	movl	HV_ASM_LAPIC_ID(%rbx), %eax
	incq	HV_ASM_LAPIC_ID_READS(%rbx)
	movq	%rax, (%rsp,%r14)	/* a 32-bit load zero-extends */
	jmp	.Ldone
16:	movl	(%rcx,%rdi), %eax
	incq	HV_ASM_LAPIC_FORWARDED(%rbx)
	movq	%rax, (%rsp,%r14)
	jmp	.Ldone
17:	movl	%r13d, (%rcx,%rdi)
	incq	HV_ASM_LAPIC_FORWARDED(%rbx)
	/* what may change the ID: a write to it, an INIT through the ICR */
	cmpl	$0x20, %edi
	je	18f
	cmpl	$0x300, %edi
	jne	.Ldone
18:	movl	0x20(%rcx), %eax
	movl	%eax, HV_ASM_LAPIC_ID(%rbx)
.Ldone:
	subq	%r12, %rsi		/* the instruction's length */
	addq	%rsi, 136(%rsp)
	testl	%r8d, %r8d
	jnz	19f
	movl	136(%rsp), %eax		/* EIP wraps at 4 GiB */
	movq	%rax, 136(%rsp)
19:	andl	$0xfffeffff, 152(%rsp)	/* RF */
	POP_GPRS_BUT_RAX
	popq	%rax
	addq	$16, %rsp		/* the vector and the error code */
	iretq
.Lno_clac:
	cmpl	$0, HV_ASM_LAPIC_STAC(%rbx)
	je	.Lno
	clac
.Lno:
	incq	HV_ASM_LAPIC_DECLINED(%rbx)
	POP_GPRS_BUT_RAX
	popq	%rax
	jmp	.Lfull
	/* GPRs 0..7 in the frame (RSP: none); 8..15 lie at (15 - n) * 8 */
.Lgpr:	.byte	112, 96, 88, 104, 0, 80, 72, 64, 56, 48, 40, 32, 24, 16, 8, 0
monitor_pf_end:
	.p2align 3
monitor_pf_size:
	.quad	monitor_pf_end - monitor_pf_code
monitor_gp_offset:
	.quad	monitor_gp_entry - monitor_pf_code

	.section .note.GNU-stack, "", @progbits
