/* Guest RAM as the VMM sees it: one anonymous mapping backing the KVM memslot
 * at MPA 0 (so GPA == MPA for RAM).  mem_gpa() is the only way host code turns
 * a guest-physical address into a pointer. */
#ifndef SHADOWVM_MEM_H
#define SHADOWVM_MEM_H

#include <stdint.h>

#include "types.h"

struct guest_mem {
	uint8_t *host; /* host view of GPA 0 */
	uint64_t size; /* bytes */
};

/* Map `size` bytes of zeroed guest RAM.  Returns 0, or -1 with errno set. */
int mem_alloc(struct guest_mem *mem, uint64_t size);
void mem_free(struct guest_mem *mem);

/* Host pointer for [gpa, gpa + len), or NULL if any byte lies outside RAM
 * (overflow-checked). */
void *mem_gpa(const struct guest_mem *mem, gpa_t gpa, uint64_t len);

/* The one GPA -> MPA translation: identity for RAM today (DESIGN.md §1). */
static inline mpa_t mem_gpa_to_mpa(gpa_t gpa)
{
	return (mpa_t)gpa;
}

#endif
