/* Guest-virtual memory as the emulated CPU touches it under --paging=shadow:
 * every access is translated by a walk of the guest's own tables (through
 * the shadow MMU, which also sets A/D and caches the translation), so the
 * VMM's emulated reads and writes obey the guest's permissions exactly as the
 * hardware's would. */
#ifndef SHADOWVM_GVA_H
#define SHADOWVM_GVA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shadow.h"
#include "types.h"

struct vm;
struct shadow_fault_result;

/* An exception to deliver to the guest. */
struct x86_event {
	unsigned vector;
	bool has_err;
	uint32_t err;
	uint64_t cr2;      /* #PF */
	bool soft;         /* INT n / INT3 / INTO at RIP ... */
	unsigned insn_len; /* ... of this length: the frame's RIP is past it */
};

enum gva_status {
	GVA_OK,
	GVA_FAULT, /* *ev holds the guest-visible fault */
	GVA_FATAL, /* the guest broke the contract; reported, vm status set */
};

/* Copy between the guest-virtual range and buf for `access` (SHADOW_ACC_*
 * bits; add SHADOW_ACC_USER for an access made at CPL3). */
enum gva_status gva_read(struct vm *vm, gva_t gva, void *buf, size_t len, unsigned access,
			 struct x86_event *ev, int *status);
enum gva_status gva_write(struct vm *vm, gva_t gva, const void *buf, size_t len, unsigned access,
			  struct x86_event *ev, int *status);

/* The one mapping of a shadow_fault() outcome to what the access sees:
 * GVA_OK when filled (or to be retried), GVA_FAULT with the guest's
 * exception in *ev (#PF with its error code and CR2, #GP), GVA_FATAL with
 * the contract violation reported and *status set. */
enum gva_status gva_outcome(struct vm *vm, enum shadow_status st,
			    const struct shadow_fault_result *res, gva_t gva, struct x86_event *ev,
			    int *status);

/* Report a shadow_fault() error (reserved slot, GPA outside RAM) as the
 * guest's contract violation; returns VMM_E_CONTRACT. */
int gva_contract(struct vm *vm, const struct shadow_fault_result *res, gva_t gva);

#endif
