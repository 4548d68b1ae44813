/* The shadow-mode trap path (DESIGN.md §2-3): the handler of every monitor
 * entry, top-down from the trap port to the resumed guest. */
#ifndef SHADOWVM_TRAP_H
#define SHADOWVM_TRAP_H

#include <stdbool.h>
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

/* String port input under --paging=shadow.  KVM completes an INS itself:
 * it asks user space for the port's data, then stores it through the page
 * tables the vCPU runs on, ours.  Where the shadow does not map the
 * destination yet (a hidden fault), the store faults after the device has
 * already given its data: the fault is filled and the INS runs again, and
 * the device would give the next data, losing a sector's words (SDM 2A
 * INS: the port read comes first).  trap_in_done sees every IN exit whose
 * read changed device state (devices_read_consumes): for an INS whose
 * destination the shadow does not map writable it keeps the data;
 * trap_in_replay serves the retry (the next IN exit, the same port, size
 * and count) from it instead of the device. */
bool trap_in_replay(void *opaque, uint16_t port, unsigned size, uint32_t count, uint8_t *data);
void trap_in_done(void *opaque, uint16_t port, unsigned size, uint32_t count, const uint8_t *data);

#endif
