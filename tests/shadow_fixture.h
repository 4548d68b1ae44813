/* The checked fixture of the shadow MMU's unit suites (check_shadow_*.c):
 * a fresh shadow context over fresh fake guest memory (fake_mem.h) for
 * every test, helpers to build guest tables, the hardware's view of the
 * shadow, the invariants checked after every fault, and the reference
 * access-rights rules (SDM 3A §4.6) the walker is compared with. */
#ifndef SHADOWVM_TESTS_SHADOW_FIXTURE_H
#define SHADOWVM_TESTS_SHADOW_FIXTURE_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>

#include "fake_mem.h"
#include "shadow.h"
#include "shadowvm_abi.h"
#include "spte.h"
#include "x86.h"

#define RAM_SIZE (8ull << 20)
#define POOL_BASE (1ull << 32)
#define POOL_PAGES 64u
#define HV_INDEX SHADOWVM_ABI_RESERVED_PML4_INDEX
#define HV_ENTRY (0x0000000200000000ull | X86_PTE_P | X86_PTE_W | X86_PTE_A)
#define PWU (X86_PTE_P | X86_PTE_W | X86_PTE_U)
#define ADW (X86_PTE_A | X86_PTE_D)

/* Guest tables are taken from here upward (TABLES_GPA is the PML4); data
 * pages live below. */
#define TABLES_GPA 0x10000ull

/* ck_assert marks a checkpoint (a write to the parent) even when it holds;
 * the hot loops of the table tests check with this instead. */
#define CHECK(cond, ...)                           \
	do {                                       \
		if (!(cond))                       \
			ck_abort_msg(__VA_ARGS__); \
	} while (0)

struct fx {
	uint8_t *ram;
	struct fake_mem mem;
	uint64_t *pool;
	uint32_t pool_pages;
	struct shadow *s;
	struct shadow_cpu cpu;
	gpa_t next_table;
	unsigned nevents[SHADOW_EV_COUNT];
	struct shadow_event last[SHADOW_EV_COUNT];
};

extern struct fx fx;
extern unsigned fx_opts; /* SHADOW_OPT_* for the next fx_open */

/* The fixture's config for a pool of pool_pages (events recorded in fx). */
struct shadow_config fx_config(uint32_t pool_pages);
void fx_open(uint32_t pool_pages);
void fx_setup_opts(unsigned opts);
void fx_setup(void);
void fx_setup_small_pool(void);
void fx_setup_min_pool(void);
void fx_setup_cache(void);
void fx_setup_cache_small_pool(void);
void fx_setup_cache_min_pool(void);
void fx_teardown(void);

/* The fixtures of one engine: the virtual TLB or the cache. */
struct fx_engine {
	const char *suffix; /* of tcase names: "" or "_cache" */
	void (*setup)(void), (*small)(void), (*min)(void);
};
extern const struct fx_engine fx_vtlb, fx_cache;

/* A tcase named name + en->suffix with en's fixture `setup` (en->setup
 * when NULL), added to s. */
TCase *fx_tcase(Suite *s, const char *name, const struct fx_engine *en, void (*setup)(void));

/* The engine contract's tcases (check_shadow_vtlb.c), for engine en. */
void shadow_engine_tcases(Suite *s, const struct fx_engine *en);

/* The walker's and the engine's tcases in every guest paging mode
 * (check_shadow_walk_modes.c). */
void shadow_walk_mode_tcases(Suite *s);

/* ---- guest tables ---- */
uint64_t gget(gpa_t gpa);
void gset(gpa_t gpa, uint64_t v);
gpa_t new_table(void);
gpa_t entry_gpa(gpa_t table, gva_t gva, int level);
/* Map gva with a leaf at `leaf_level` whose value is `leaf`; missing tables
 * are created with `upper` rights.  Returns the leaf entry's GPA.  gmap_in
 * maps into the address space whose PML4 is at `pml4`. */
gpa_t gmap(gva_t gva, int leaf_level, uint64_t leaf, uint64_t upper);
gpa_t gmap_in(gpa_t pml4, gva_t gva, int leaf_level, uint64_t leaf, uint64_t upper);
/* Where gva's PTE lives in the fixture's address space (after gmap). */
gpa_t gmap_pte_gpa(gva_t gva);

/* ---- the hardware over the shadow, and the invariants ---- */
uint64_t *pool_page(mpa_t mpa);
/* The 4 KiB shadow leaf for gva, or 0. */
uint64_t shadow_leaf(gva_t gva);
/* The shadow entry mapping gva, 4 KiB or 2 MiB, and its level. */
uint64_t shadow_map(gva_t gva, int *level);
/* After every fill: hypervisor entry intact, every non-leaf into the pool,
 * every leaf in guest RAM, shadow_check agreeing.  Returns the leaves. */
unsigned fx_check_invariants(void);
/* shadow_fault, then the invariants. */
enum shadow_status fx_fault(gva_t gva, unsigned acc, struct shadow_fault_result *r);
struct shadow_stats fx_stats(void);

/* ---- the reference: SDM 3A §4.6 written out case by case ---- */
enum kind { RD, WR, EX };

struct ctl {
	bool wp, nxe, smep, smap, ac;
};

bool ref_allowed(bool u, bool w, bool nx, enum kind k, bool user, const struct ctl *c);
unsigned acc_of(enum kind k, bool user);
/* What the real CPU lets through the shadow leaf: real WP=1, NXE=1, and
 * SMEP/SMAP/AC as the guest's (the contract in shadow.h). */
bool hw_allows(uint64_t spte, enum kind k, bool user, const struct ctl *guest);

#endif
