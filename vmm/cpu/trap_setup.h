/* Shadow mode's set-up and tear-down (trap_setup.c). */
#ifndef SHADOWVM_TRAP_SETUP_H
#define SHADOWVM_TRAP_SETUP_H

#include <stddef.h>
#include <stdint.h>

struct vm;

/* Build the monitor, its memslot, the shadow MMU and the deprivileged boot
 * state (guest kernel at CPL1, real CR3 = a shadow root), and route the
 * monitor's ports to trap_handle.  VMM_OK or a VMM_E_* status with one line
 * in err. */
int trap_init(struct vm *vm, uint32_t pool_pages, char *err, size_t errlen);
void trap_fini(struct vm *vm);

#endif
