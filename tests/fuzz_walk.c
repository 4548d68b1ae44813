/* libFuzzer harness for the shadow MMU: bytes -> synthetic guest memory, a
 * CR3, control bits and a sequence of operations (faults of every access
 * kind, invlpg, CR3 loads, flushes, control changes).  After every operation
 * the shadow's safety invariants must hold (shadow_check).  Built by
 * `make fuzz`.
 *
 * Input layout: [0..7] CR3 (bits 63:61: SHADOW_OPT_* for the engine), [8]
 * control bits, [9] MAXPHYADDR - 36, [10..255] operations of 9 bytes
 * (opcode, GVA), [256..] guest RAM.  A "guest store" operation writes guest
 * memory through the shadow's translation, as the guest would: the shadow
 * cache must then drop what it derived from a page table written.  After
 * an operation whose opcode has bit 7 set, the state block and the pool
 * move (copied, the old ones poisoned and freed, shadow_rebase). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_mem.h"
#include "shadow.h"
#include "shadowvm_abi.h"

#define RAM_SIZE (64u * 1024)
#define POOL_PAGES 8u
#define HDR 256u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t ram[RAM_SIZE] __attribute__((aligned(4096)));
static uint8_t pools[2][POOL_PAGES * 4096] __attribute__((aligned(4096)));
static unsigned cur_pool;

static struct fake_mem mem;

static struct shadow_cpu cpu_of(uint8_t bits, uint8_t mpa)
{
	return (struct shadow_cpu){
		.cr0_wp = bits & 1,
		.cr4_smep = bits & 2,
		.cr4_smap = bits & 4,
		.rflags_ac = bits & 8,
		.efer_nxe = bits & 16,
		.gbpages = bits & 32,
		.maxphyaddr = 36 + mpa % 17, /* the pool sits at 2^32 */
		.cr4_pse = bits & 64,
		.pse36 = bits & 128,
	};
}

static void step(struct shadow *s, uint8_t op, uint64_t gva, uint8_t ctl)
{
	struct shadow_fault_result r;
	struct shadow_cpu c;
	char why[160];

	switch (op % 8) {
	case 3:
		/* a guest store: translate for write, then write guest RAM */
		if (shadow_fault(s, gva, SHADOW_ACC_WRITE | (op & 4 ? SHADOW_ACC_USER : 0), &r) ==
		    SHADOW_FILLED) {
			uint64_t v = (gva << 13) | (gva >> 51);

			if (r.gpa >= RAM_SIZE)
				abort();
			memcpy(ram + (r.gpa & (RAM_SIZE - 8)), &v, 8);
		}
		break;
	case 0:
	case 1:
	case 2:
		/* read, write, fetch; bit 2 of op: user */
		shadow_fault(s, gva,
			     ((op >> 3) % 3 == 1 ? SHADOW_ACC_WRITE : 0) |
				     ((op >> 3) % 3 == 2 ? SHADOW_ACC_FETCH : 0) |
				     (op & 4 ? SHADOW_ACC_USER : 0),
			     &r);
		if (r.status == SHADOW_FILLED && r.gpa >= RAM_SIZE)
			abort();
		break;
	case 4: shadow_invlpg(s, gva); break;
	case 5: shadow_set_cr3(s, gva); break;
	case 6: shadow_flush(s); break;
	default:
		if (op & 8) {
			/* a paging-mode change: off, 32-bit, PAE, 4-level; CR3 above */
			shadow_set_paging(s, (enum shadow_paging)(gva % 4), (gva >> 8) % RAM_SIZE);
			break;
		}
		c = cpu_of((uint8_t)gva, ctl);
		shadow_set_cpu(s, &c);
		break;
	}
	if (!shadow_check(s, why, sizeof(why))) {
		fprintf(stderr, "fuzz_walk: after op %u gva 0x%llx: %s\n", op % 8,
			(unsigned long long)gva, why);
		abort();
	}
	shadow_take_tlb_flush(s);
}

/* Nothing in the state or the pool may name a host address. */
static void move(struct shadow *s)
{
	size_t bytes;
	void *old = shadow_state(s, &bytes), *state = malloc(bytes);

	if (!state)
		abort();
	memcpy(state, old, bytes);
	memset(old, 0xa5, bytes);
	free(old);
	memcpy(pools[!cur_pool], pools[cur_pool], sizeof(pools[0]));
	memset(pools[cur_pool], 0x5a, sizeof(pools[0]));
	cur_pool = !cur_pool;
	if (!shadow_rebase(s, state, pools[cur_pool]))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct shadow_config cfg = {
		.pool = { .base = 1ull << 32, .host = pools[0], .pages = POOL_PAGES },
		.hv_index = SHADOWVM_ABI_RESERVED_PML4_INDEX,
		.hv_entry = 0x200000000ull | 3,
	};
	struct shadow *s;
	uint64_t cr3 = 0;

	if (size < 10)
		return 0;
	memset(ram, 0, sizeof(ram));
	fake_mem_init(&mem, ram, RAM_SIZE);
	cfg.mem = fake_mem_accessor(&mem);
	if (size > HDR)
		memcpy(ram, data + HDR, size - HDR < RAM_SIZE ? size - HDR : RAM_SIZE);
	memcpy(&cr3, data, 8);
	cfg.vcr3 = cr3 % RAM_SIZE;
	cfg.opts = (unsigned)(cr3 >> 61) & SHADOW_OPT_ALL;
	cfg.cpu = cpu_of(data[8], data[9]);
	cur_pool = 0;
	if (!(s = shadow_create(&cfg)))
		abort();
	for (size_t off = 10; off + 9 <= size && off + 9 <= HDR; off += 9) {
		uint64_t gva;
		memcpy(&gva, data + off + 1, 8);
		step(s, data[off], gva, data[9]);
		if (data[off] & 0x80)
			move(s);
	}
	shadow_destroy(s);
	return 0;
}
