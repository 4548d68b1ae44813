/* Stopping a running guest from outside: the --timeout watchdog, SIGINT,
 * SIGTERM, SIGHUP and SIGQUIT, and the console's Ctrl-A X.  The handlers only record why and set kvm_run.immediate_exit, so
 * KVM_RUN returns with EINTR and the run loop ends cleanly (flushing output
 * and the trace) with a status that says why. */
#ifndef SHADOWVM_WATCHDOG_H
#define SHADOWVM_WATCHDOG_H

#include <linux/kvm.h>

/* Install the handlers for `run`, and arm the timer if seconds > 0.
 * Returns 0, or -1 with errno set. */
int watchdog_arm(struct kvm_run *run, double seconds);

/* 0 while nothing fired; VMM_E_TIMEOUT, or VMM_E_SIGNAL + signo. */
int watchdog_fired(void);

void watchdog_disarm(void);

/* End the run from inside the VMM (a trace write failed): as if a watchdog
 * fired with `status`, unless something fired first. */
void watchdog_stop(int status);

/* The same from another thread (the console's): watchdog_stop, then a
 * signal to the vCPU thread so that a KVM_RUN in progress (the guest
 * running, or halted in KVM) returns now. */
void watchdog_kick(int status);

#endif
