/* The shadow-mode trap path (DESIGN.md §2-3): the handler of every monitor
 * entry, top-down from the trap port to the resumed guest. */
#ifndef SHADOWVM_TRAP_H
#define SHADOWVM_TRAP_H

#include <stddef.h>
#include <stdint.h>

struct vm;

/* A stub wrote monitor port `port`: handle the trap or the syscall and
 * resume the guest.  Returns VM_CONTINUE or a final status. */
int trap_handle(void *vm, uint16_t port);

#endif
