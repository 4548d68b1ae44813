/* Exit statuses of the shadowvm command.  Guest exit values 0..63 pass
 * through unchanged (SHADOWVM_ABI_EXIT_MAX); the VMM's own outcomes use the
 * sysexits.h range and above so that they never collide with a guest's.  A
 * Multiboot guest's isa-debug-exit status ((N << 1) | 1) & 0xff, QEMU's rule
 * (devices.h), is odd and may be any of 1..255: there the rule is QEMU's,
 * and only the even VMM statuses are told apart. */
#ifndef SHADOWVM_STATUS_H
#define SHADOWVM_STATUS_H

enum vmm_status {
	VMM_OK = 0,
	VMM_E_USAGE = 64,     /* bad command line */
	VMM_E_IMAGE = 65,     /* image rejected by the loader */
	VMM_E_NOINPUT = 66,   /* image cannot be opened or read */
	VMM_E_NOKVM = 69,     /* /dev/kvm missing, not permitted, or too old */
	VMM_E_INTERNAL = 70,  /* VMM failure: an ioctl or allocation failed */
	VMM_E_CRASH = 71,     /* guest crash: triple fault, unexpected exit */
	VMM_E_HALTED = 72,    /* hlt with interrupts off: halted forever */
	VMM_E_TRACE = 73,     /* the trace could not be written */
	VMM_E_EXITRANGE = 74, /* exit-port value above SHADOWVM_ABI_EXIT_MAX */
	VMM_E_CONTRACT = 75,  /* guest broke the ABI (e.g. touched the reserved slot) */
	VMM_E_QUIT = 78,      /* the console's Ctrl-A X */
	VMM_E_TIMEOUT = 124,  /* --timeout expired */
	VMM_E_SIGNAL = 128,   /* + signal number: stopped by SIGINT/SIGTERM */
};

/* A short name for a status, for logs and --help ("timeout", "crash"). */
const char *vmm_status_name(int status);

#endif
