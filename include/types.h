/* Address kinds used across shadowvm.  Each is its own name so that a
 * signature says which space an address lives in (Linux kvm_types.h style).
 * Host code never dereferences any of these: vmm/load/mem.c and the shadow
 * accessor turn (gpa, len) into a host pointer or an error. */
#ifndef SHADOWVM_TYPES_H
#define SHADOWVM_TYPES_H

#include <stdint.h>

typedef uint64_t gva_t; /* guest-virtual */
typedef uint64_t gpa_t; /* guest-physical: what guest PTEs hold */
typedef uint64_t mpa_t; /* machine-physical: KVM's guest-physical space */
typedef uint64_t hva_t; /* host-virtual, as an integer (for KVM ioctls) */

#endif
