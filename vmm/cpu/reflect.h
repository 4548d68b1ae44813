/* Delivering an event to the guest through its *virtual* IDT, building the
 * frame the hardware would have built (SDM 3A §6.12, §6.14). */
#ifndef SHADOWVM_REFLECT_H
#define SHADOWVM_REFLECT_H

#include "gva.h"

struct vm;

/* Deliver `ev` at the current guest state (vm->regs/sregs, RIP at the
 * faulting or INT instruction).  A fault while delivering turns
 * into the next event as the hardware would (serially, or #DF per SDM 3A
 * table 6-5); a fault while delivering #DF is a triple fault, which ends the
 * run.  Returns VM_CONTINUE or a final status. */
int reflect_event(struct vm *vm, struct x86_event ev);

#endif
