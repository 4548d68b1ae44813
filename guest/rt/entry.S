/* Guest entry (ABI boot protocol): long mode, CPL0, IF=0, RSP = boot stack,
 * RDI = boot info.  Calls guest_start(bi), which never returns. */
	.section .text.entry, "ax"
	.globl _start
_start:
	xor %ebp, %ebp
	and $-16, %rsp
	call guest_start
1:	hlt
	jmp 1b

	.section .note.GNU-stack, "", @progbits
