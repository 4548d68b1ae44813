/* The VMM's side of the fill monitor (vmm/monitor/, DESIGN.md §3): what it
 * is told at set-up, the events it left in the ring, and the faults it
 * handed over.  Everything here runs while the vCPU is stopped. */
#ifndef SHADOWVM_FILLMON_H
#define SHADOWVM_FILLMON_H

#include <stdbool.h>
#include <stdint.h>

#include "shadow.h"

struct vm;

/* Tell the monitor about tracing, and take the TSC's anchor for the times
 * of its events. */
void fillmon_init(struct vm *vm);

/* Take what the monitor did since the last call (vcpu_trap.exited: after
 * every exit): the guest CR3 and the count of what it emulated, and its
 * records, traced in order with the times their TSC stamps give.
 * A ring whose head passed its tail by more than its size lost records:
 * that stops the run (vm->ring_failed). */
void fillmon_drain(void *vm);

/* The hidden fault at gva/err, if the monitor already ran it through the
 * shadow MMU and left it to the VMM: TAKEN with its outcome; NONE when
 * the monitor left it untouched (the VMM runs it); BAD (printed) when
 * what it handed over was another fault. */
enum fillmon_take { FILLMON_NONE, FILLMON_TAKEN, FILLMON_BAD };
enum fillmon_take fillmon_take(struct vm *vm, gva_t gva, uint64_t err, enum shadow_status *st,
			       struct shadow_fault_result *res);

#endif
