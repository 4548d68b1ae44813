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

/* Resume the guest from vm->regs/sregs: through the monitor when shadow
 * stores are queued, a flush is due or the root changed, else directly.
 * VM_CONTINUE or a final status. */
int trap_resume(struct vm *vm);

/* The store queue is full mid-trap: have the monitor apply it now (one
 * extra exit).  A failure is remembered and ends the run at the resume. */
void trap_drain(struct vm *vm);

#endif
