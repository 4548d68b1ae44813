/* Emulation of the instructions that fault only because the guest kernel runs
 * at CPL1 (DESIGN.md §2), decoded with Zydis. */
#ifndef SHADOWVM_EMULATE_H
#define SHADOWVM_EMULATE_H

#include <stdbool.h>

#include "gva.h"

struct vm;

/* The guest took #GP (or #UD, for `vector`) at vm->regs.rip with error code
 * `err`.  Emulate the instruction if deprivileging caused the fault, else
 * reflect the fault.  Returns VM_CONTINUE or a final status; an instruction
 * in the privileged set that shadowvm does not emulate ends the run with
 * "unsupported instruction <bytes> at RIP". */
int emulate_fault(struct vm *vm, unsigned vector, uint32_t err);

#endif
