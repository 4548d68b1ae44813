/* The fill monitor's image (vmm/monitor/, built by the Makefile into
 * MONITOR_BIN): the bytes monitor_create copies into the hypervisor slot. */
	.section .rodata.monitor_image, "a"
	.globl monitor_image
	.globl monitor_image_size
	.p2align 12
monitor_image:
	.incbin MONITOR_BIN
monitor_image_end:
	.p2align 3
monitor_image_size:
	.quad	monitor_image_end - monitor_image

	.section .note.GNU-stack, "", @progbits
