/* Fake guest memory behind struct shadow_mem: the one accessor of the
 * shadow unit suites, the walk fuzzer and the shadow bench.  RAM is a host
 * buffer of `size` bytes at GPA 0; every callback refuses a GPA whose 8
 * bytes are not all inside it, or that is not 8-byte aligned, as the VMM's
 * accessor does.  For the A/D tests, a compare-exchange can be raced by an
 * "other vCPU" that flips `race_bits` in the entry just before it. */
#ifndef SHADOWVM_TESTS_FAKE_MEM_H
#define SHADOWVM_TESTS_FAKE_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "shadow.h"

struct fake_mem {
	uint8_t *ram;
	uint64_t size;
	uint64_t last_qword; /* (size - 8) / 8: the last quadword's index */
	int race;            /* cmpxchg calls left before one is raced; <0 never */
	bool race_always;    /* race every cmpxchg */
	uint64_t race_bits;  /* what the racing other vCPU flips */
};

/* `m` over `ram` (size bytes, at least 8), never raced. */
void fake_mem_init(struct fake_mem *m, uint8_t *ram, uint64_t size);

/* The accessor for shadow_config.mem (opaque = m, ram_size = m->size). */
struct shadow_mem fake_mem_accessor(struct fake_mem *m);

int fake_mem_read(void *opaque, gpa_t gpa, uint64_t *val);
int fake_mem_write(void *opaque, gpa_t gpa, uint64_t val);
int fake_mem_cmpxchg(void *opaque, gpa_t gpa, uint64_t *expected, uint64_t desired);

/* Test-side access to guest memory (no checks beyond an assert). */
uint64_t fake_mem_get(const struct fake_mem *m, gpa_t gpa);
void fake_mem_set(struct fake_mem *m, gpa_t gpa, uint64_t v);

#endif
