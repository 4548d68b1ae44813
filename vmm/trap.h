/* The shadow-mode trap path (DESIGN.md §2-3): set-up of the deprivileged
 * vCPU, and the handler of every monitor entry. */
#ifndef SHADOWVM_TRAP_H
#define SHADOWVM_TRAP_H

#include <stddef.h>
#include <stdint.h>

struct vm;

/* Build the monitor, its memslot, the shadow MMU and the deprivileged boot
 * state (guest kernel at CPL1, real CR3 = a shadow root).  VMM_OK or a
 * VMM_E_* status with one line in err. */
int trap_init(struct vm *vm, uint32_t pool_pages, char *err, size_t errlen);
void trap_fini(struct vm *vm);

/* A stub wrote monitor port `port`: handle the trap or the syscall and
 * resume the guest.  Returns VM_CONTINUE or a final status. */
int trap_handle(void *vm, uint16_t port);

#endif
