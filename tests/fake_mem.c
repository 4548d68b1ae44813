/* Fake guest memory for the shadow MMU's tests, fuzzer and bench. */
#include "fake_mem.h"

#include <assert.h>
#include <string.h>

void fake_mem_init(struct fake_mem *m, uint8_t *ram, uint64_t size)
{
	*m = (struct fake_mem){
		.ram = ram, .size = size, .last_qword = (size - 8) / 8, .race = -1
	};
}

struct shadow_mem fake_mem_accessor(struct fake_mem *m)
{
	return (struct shadow_mem){ .read64 = fake_mem_read,
				    .write64 = fake_mem_write,
				    .cmpxchg64 = fake_mem_cmpxchg,
				    .opaque = m,
				    .ram_size = m->size };
}

/* Aligned and inside RAM, in one compare (the bench counts these
 * instructions too): rotated right by 3, a misaligned GPA is huge. */
static inline bool inside(const struct fake_mem *m, gpa_t gpa)
{
	return (gpa >> 3 | gpa << 61) <= m->last_qword;
}

int fake_mem_read(void *opaque, gpa_t gpa, uint64_t *val)
{
	const struct fake_mem *m = opaque;

	if (!inside(m, gpa))
		return SHADOW_MEM_OUTSIDE;
	memcpy(val, m->ram + gpa, 8);
	return SHADOW_MEM_OK;
}

int fake_mem_write(void *opaque, gpa_t gpa, uint64_t val)
{
	struct fake_mem *m = opaque;

	if (!inside(m, gpa))
		return SHADOW_MEM_OUTSIDE;
	memcpy(m->ram + gpa, &val, 8);
	return SHADOW_MEM_OK;
}

int fake_mem_cmpxchg(void *opaque, gpa_t gpa, uint64_t *expected, uint64_t desired)
{
	struct fake_mem *m = opaque;
	uint64_t cur;

	if (!inside(m, gpa))
		return SHADOW_MEM_OUTSIDE;
	memcpy(&cur, m->ram + gpa, 8);
	if (m->race_always || (m->race >= 0 && m->race-- == 0)) {
		cur ^= m->race_bits; /* another vCPU wrote the entry meanwhile */
		memcpy(m->ram + gpa, &cur, 8);
	}
	if (cur != *expected) {
		*expected = cur;
		return SHADOW_MEM_CHANGED;
	}
	memcpy(m->ram + gpa, &desired, 8);
	return SHADOW_MEM_OK;
}

uint64_t fake_mem_get(const struct fake_mem *m, gpa_t gpa)
{
	uint64_t v;

	assert(gpa <= m->size - 8);
	memcpy(&v, m->ram + gpa, 8);
	return v;
}

void fake_mem_set(struct fake_mem *m, gpa_t gpa, uint64_t v)
{
	assert(gpa <= m->size - 8);
	memcpy(m->ram + gpa, &v, 8);
}
