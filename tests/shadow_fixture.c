/* The shadow suites' checked fixture (shadow_fixture.h). */
#include "shadow_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fx fx;
unsigned fx_opts;

static void record_event(void *opaque, const struct shadow_event *ev)
{
	struct fx *f = opaque;

	CHECK(ev->kind < SHADOW_EV_COUNT, "event kind %d", ev->kind);
	f->nevents[ev->kind]++;
	f->last[ev->kind] = *ev;
}

struct shadow_config fx_config(uint32_t pool_pages)
{
	return (struct shadow_config){
		.mem = fake_mem_accessor(&fx.mem),
		.pool = { .base = POOL_BASE, .host = fx.pool, .pages = pool_pages },
		.hv_index = HV_INDEX,
		.hv_entry = HV_ENTRY,
		.cpu = fx.cpu,
		.vcr3 = TABLES_GPA,
		.hook = record_event,
		.hook_opaque = &fx,
		.opts = fx_opts,
	};
}

void fx_open(uint32_t pool_pages)
{
	struct shadow_config cfg;

	memset(&fx, 0, sizeof(fx));
	fx.ram = calloc(1, RAM_SIZE);
	fx.pool = aligned_alloc(X86_PAGE_SIZE, (size_t)POOL_PAGES * X86_PAGE_SIZE);
	ck_assert_ptr_nonnull(fx.ram);
	ck_assert_ptr_nonnull(fx.pool);
	fake_mem_init(&fx.mem, fx.ram, RAM_SIZE);
	fx.pool_pages = pool_pages;
	fx.cpu = (struct shadow_cpu){
		.cr0_wp = true, .efer_nxe = true, .gbpages = true, .maxphyaddr = 40
	};
	fx.next_table = TABLES_GPA + X86_PAGE_SIZE; /* TABLES_GPA is the PML4 */
	cfg = fx_config(pool_pages);
	fx.s = shadow_create(&cfg);
	ck_assert_ptr_nonnull(fx.s);
}

void fx_setup_opts(unsigned opts)
{
	fx_opts = opts;
	fx_open(POOL_PAGES);
}

void fx_setup(void)
{
	fx_open(POOL_PAGES);
}

void fx_setup_small_pool(void)
{
	fx_open(8);
}

void fx_setup_min_pool(void)
{
	fx_open(SHADOW_POOL_MIN_PAGES);
}

void fx_setup_cache(void)
{
	fx_opts = SHADOW_OPT_CACHE;
	fx_open(POOL_PAGES);
}

void fx_setup_cache_small_pool(void)
{
	fx_opts = SHADOW_OPT_CACHE;
	fx_open(8);
}

void fx_setup_cache_min_pool(void)
{
	fx_opts = SHADOW_OPT_CACHE;
	fx_open(SHADOW_POOL_MIN_PAGES);
}

void fx_teardown(void)
{
	fx_opts = 0;
	shadow_destroy(fx.s);
	free(fx.pool);
	free(fx.ram);
}

const struct fx_engine fx_vtlb = { "", fx_setup, fx_setup_small_pool, fx_setup_min_pool };
const struct fx_engine fx_cache = { "_cache", fx_setup_cache, fx_setup_cache_small_pool,
				    fx_setup_cache_min_pool };

TCase *fx_tcase(Suite *s, const char *name, const struct fx_engine *en, void (*setup)(void))
{
	char full[64];
	TCase *tc;

	snprintf(full, sizeof(full), "%s%s", name, en->suffix);
	tc = tcase_create(strdup(full)); /* Check keeps the pointer */
	tcase_add_checked_fixture(tc, setup ? setup : en->setup, fx_teardown);
	suite_add_tcase(s, tc);
	return tc;
}

/* ---- guest tables ---- */

uint64_t gget(gpa_t gpa)
{
	uint64_t v;

	CHECK(gpa <= RAM_SIZE - 8, "gpa 0x%llx outside RAM", (unsigned long long)gpa);
	memcpy(&v, fx.ram + gpa, 8);
	return v;
}

void gset(gpa_t gpa, uint64_t v)
{
	CHECK(gpa <= RAM_SIZE - 8, "gpa 0x%llx outside RAM", (unsigned long long)gpa);
	memcpy(fx.ram + gpa, &v, 8);
}

gpa_t new_table(void)
{
	gpa_t t = fx.next_table;

	fx.next_table += X86_PAGE_SIZE;
	ck_assert_uint_le(fx.next_table, 0x100000);
	memset(fx.ram + t, 0, X86_PAGE_SIZE);
	return t;
}

gpa_t entry_gpa(gpa_t table, gva_t gva, int level)
{
	return table + 8 * X86_LEVEL_INDEX(gva, level);
}

gpa_t gmap(gva_t gva, int leaf_level, uint64_t leaf, uint64_t upper)
{
	return gmap_in(TABLES_GPA, gva, leaf_level, leaf, upper);
}

gpa_t gmap_in(gpa_t pml4, gva_t gva, int leaf_level, uint64_t leaf, uint64_t upper)
{
	gpa_t table = pml4;

	for (int level = 4; level > leaf_level; level--) {
		gpa_t e = entry_gpa(table, gva, level);

		if (!(gget(e) & X86_PTE_P))
			gset(e, new_table() | upper);
		table = gget(e) & X86_PTE_ADDR_MASK;
	}
	gset(entry_gpa(table, gva, leaf_level), leaf);
	return entry_gpa(table, gva, leaf_level);
}

gpa_t gmap_pte_gpa(gva_t gva)
{
	gpa_t table = TABLES_GPA;

	for (int level = 4; level > 1; level--)
		table = gget(entry_gpa(table, gva, level)) & X86_PTE_ADDR_MASK;
	return entry_gpa(table, gva, 1);
}

/* ---- the hardware over the shadow, and the invariants ---- */

uint64_t shadow_map(gva_t gva, int *level)
{
	mpa_t table = shadow_root(fx.s);

	for (*level = 4; *level >= 1; (*level)--) {
		uint64_t e = pool_page(table)[X86_LEVEL_INDEX(gva, *level)];

		if (!(e & X86_PTE_P) || *level == 1 || (*level == 2 && (e & X86_PTE_PS)))
			return e;
		table = e & X86_PTE_ADDR_MASK;
	}
	return 0;
}

struct shadow_stats fx_stats(void)
{
	struct shadow_stats st;

	shadow_get_stats(fx.s, &st);
	return st;
}

uint64_t *pool_page(mpa_t mpa)
{
	CHECK(mpa >= POOL_BASE && mpa < POOL_BASE + (uint64_t)fx.pool_pages * 4096 &&
		      !(mpa & 0xfff),
	      "shadow table pointer 0x%llx outside the pool", (unsigned long long)mpa);
	return fx.pool + ((mpa - POOL_BASE) >> 12) * 512;
}

uint64_t shadow_leaf(gva_t gva)
{
	mpa_t table = shadow_root(fx.s);
	int level;

	for (level = 4; level > 1; level--) {
		uint64_t e = pool_page(table)[X86_LEVEL_INDEX(gva, level)];

		if (!(e & X86_PTE_P))
			return 0;
		CHECK(!(e & X86_PTE_PS), "PS in a shadow table entry");
		table = e & X86_PTE_ADDR_MASK;
	}
	return pool_page(table)[X86_LEVEL_INDEX(gva, 1)];
}

static unsigned check_table(mpa_t table, int level)
{
	uint64_t *t = pool_page(table);
	unsigned leaves = 0;
	int i;

	for (i = 0; i < 512; i++) {
		uint64_t e = t[i];

		if (level == 4 && i == HV_INDEX)
			continue;
		if (!(e & X86_PTE_P))
			continue;
		if (level == 2 && (e & X86_PTE_PS)) { /* a 2 MiB leaf (SHADOW_OPT_HUGE) */
			CHECK(!(e & X86_PTE_ADDR_MASK & ~X86_PTE_ADDR_2M_MASK & ~X86_PTE_PAT_LARGE),
			      "misaligned 2 MiB shadow leaf 0x%llx", (unsigned long long)e);
			CHECK((e & X86_PTE_ADDR_2M_MASK) + (2u << 20) <= RAM_SIZE,
			      "shadow leaf 0x%llx maps past RAM", (unsigned long long)e);
			CHECK(!(e & X86_PTE_G), "global shadow leaf");
			leaves++;
			continue;
		}
		if (level > 1) {
			CHECK((e & ~(X86_PTE_ADDR_MASK | SHADOW_SPTE_HUGE)) == SHADOW_SPTE_TABLE,
			      "shadow table entry 0x%llx", (unsigned long long)e);
			leaves += check_table(e & X86_PTE_ADDR_MASK, level - 1);
			continue;
		}
		CHECK((shadow_spte_frame(e)) < RAM_SIZE ||
			      shadow_gpa_in_mmio(fx.s, shadow_spte_frame(e)),
		      "shadow leaf 0x%llx maps past RAM", (unsigned long long)e);
		CHECK(!(e & X86_PTE_G), "global shadow leaf");
		leaves++;
	}
	return leaves;
}

unsigned fx_check_invariants(void)
{
	struct shadow_stats st;

	CHECK(pool_page(shadow_root(fx.s))[HV_INDEX] == HV_ENTRY, "hypervisor entry changed");
	shadow_get_stats(fx.s, &st);
	CHECK(st.pages_in_use <= fx.pool_pages && st.pages_peak <= fx.pool_pages, "pool grew");
	{
		char why[160];
		CHECK(shadow_check(fx.s, why, sizeof(why)), "shadow_check disagrees: %s", why);
	}
	return check_table(shadow_root(fx.s), 4);
}

enum shadow_status fx_fault(gva_t gva, unsigned acc, struct shadow_fault_result *r)
{
	enum shadow_status st = shadow_fault(fx.s, gva, acc, r);

	CHECK(st == r->status, "status %d != res %d", st, r->status);
	fx_check_invariants();
	return st;
}

/* ---- the reference ---- */

bool ref_allowed(bool u, bool w, bool nx, enum kind k, bool user, const struct ctl *c)
{
	bool exec_ok = !(c->nxe && nx);

	if (user) {
		/* user-mode access: needs a user page; writes need R/W=1 at
		 * every level regardless of WP; fetches need XD=0 with NXE */
		if (!u)
			return false;
		return k == RD || (k == WR && w) || (k == EX && exec_ok);
	}
	switch (k) {
	case EX: /* supervisor fetch: never from a user page under SMEP */
		return (!u || !c->smep) && exec_ok;
	case RD: /* supervisor read of a user page: blocked by SMAP unless AC */
		return !u || !c->smap || c->ac;
	case WR:
		if (u && c->smap && !c->ac)
			return false;
		return w || !c->wp;
	}
	return false;
}

unsigned acc_of(enum kind k, bool user)
{
	return (k == WR ? SHADOW_ACC_WRITE : 0) | (k == EX ? SHADOW_ACC_FETCH : 0) |
	       (user ? SHADOW_ACC_USER : 0);
}

bool hw_allows(uint64_t spte, enum kind k, bool user, const struct ctl *guest)
{
	struct ctl real = {
		.wp = true, .nxe = true, .smep = guest->smep, .smap = guest->smap, .ac = guest->ac
	};

	if (!(spte & X86_PTE_P))
		return false;
	return ref_allowed(spte & X86_PTE_U, spte & X86_PTE_W, spte & X86_PTE_NX, k, user, &real);
}
