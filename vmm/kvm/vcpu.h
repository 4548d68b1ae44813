/* One KVM vCPU: creation with the host's supported CPUID, the run loop, and
 * the crash report. */
#ifndef SHADOWVM_VCPU_H
#define SHADOWVM_VCPU_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices.h"
#include "kvm.h"

#define VCPU_EXIT_REASONS 64 /* KVM_EXIT_* values counted individually */

/* Ports [lo, hi] whose writes are trap entries, not device accesses: the
 * run loop hands them to fn before any device sees them. */
struct vcpu_trap {
	uint16_t lo, hi;
	int (*fn)(void *opaque, uint16_t port);
	void *opaque;
	void (*exited)(void *opaque); /* after every KVM_RUN that exited; may be NULL */
	/* Port input (both may be NULL): replay serves an IN exit from
	 * data saved before (true: no device is asked); done sees the data
	 * the devices gave for a read that changed their state (trap.c,
	 * trap_in_replay and trap_in_done). */
	bool (*in_replay)(void *opaque, uint16_t port, unsigned size, uint32_t count,
			  uint8_t *data);
	void (*in_done)(void *opaque, uint16_t port, unsigned size, uint32_t count,
			const uint8_t *data);
};

struct vcpu {
	int fd;
	struct kvm_run *run;
	size_t run_size;
	uint64_t exits; /* all KVM_RUN returns with an exit */
	uint64_t exits_by_reason[VCPU_EXIT_REASONS];
	const struct kvm_cpuid2 *cpuid; /* what the vCPU was given */
	struct kvm_cpuid2 *own_cpuid;   /* ... the copy it points to */
	struct vcpu_trap trap;          /* fn NULL: no trap ports (hw mode) */
};

/* CPUID leaf/subleaf as the vCPU sees it; all zero if absent. */
void vcpu_cpuid(const struct vcpu *vcpu, uint32_t leaf, uint32_t index, uint32_t out[4]);

/* Read (set false) or write one MSR of the vCPU.  0, or -1 if KVM
 * refuses. */
int vcpu_msr(const struct vcpu *vcpu, uint32_t index, uint64_t *val, bool set);

/* Create vCPU 0 with the supported CPUID.  VMM_OK or VMM_E_INTERNAL. */
int vcpu_create(struct kvm *kvm, struct vcpu *vcpu, char *err, size_t errlen);
void vcpu_destroy(struct vcpu *vcpu);

/* Run until the guest exits, crashes, or the watchdog fires.  Returns the
 * final status (the guest's exit value or a VMM_E_* status); diagnoses are
 * printed here, once. */
int vcpu_run(struct vcpu *vcpu, struct devices *dev);

/* One run outside vcpu_run (the monitor draining its store queue): 0 once
 * the vCPU stopped at an `out` to `port`, else -1 with the diagnosis
 * printed (also when the watchdog fired: vcpu_run then reports it). */
int vcpu_run_to_port(struct vcpu *vcpu, uint16_t port);

/* The name of a KVM_EXIT_* reason ("IO", "SHUTDOWN", ...). */
const char *vcpu_exit_name(uint32_t reason);

#endif
