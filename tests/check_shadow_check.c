/* The shadow's invariant checks (shadow/invariant.c, what --check-invariants
 * runs) must notice each broken invariant on either engine, not only agree
 * with a healthy shadow; and what the freestanding library brings along in
 * their place of libc (shadow/lib.c): the message formatter and the
 * caller's allocator. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib.h"
#include "shadow_fixture.h"
#include "suites.h"

/* shadow_check (what --check-invariants runs) must notice each broken
 * invariant, not only agree with a healthy shadow. */
START_TEST(test_invariant_checker_catches_corruption)
{
	struct shadow_fault_result r;
	char why[160];
	uint64_t *root, *leafp = NULL, saved;
	gva_t gva = 0x0000123456789000ull;
	mpa_t t;

	gmap(gva, 1, 0x5000 | PWU | X86_PTE_A | X86_PTE_D, PWU);
	ck_assert_int_eq(fx_fault(gva, 0, &r), SHADOW_FILLED);
	ck_assert(shadow_check(fx.s, why, sizeof(why)));
	root = pool_page(shadow_root(fx.s));
	saved = root[HV_INDEX];
	root[HV_INDEX] ^= X86_PTE_W;
	ck_assert(!shadow_check(fx.s, why, sizeof(why)));
	ck_assert_msg(strstr(why, "hypervisor entry changed"), "%s", why);
	root[HV_INDEX] = saved;
	t = shadow_root(fx.s);
	for (int level = 4; level > 1; level--)
		t = pool_page(t)[X86_LEVEL_INDEX(gva, level)] & X86_PTE_ADDR_MASK;
	leafp = &pool_page(t)[X86_LEVEL_INDEX(gva, 1)];
	saved = *leafp;
	*leafp = (saved & ~X86_PTE_ADDR_MASK) | shadow_root(fx.s); /* a shadow page */
	ck_assert(!shadow_check(fx.s, why, sizeof(why)));
	ck_assert_msg(strstr(why, "outside guest RAM"), "%s", why);
	*leafp = (saved & ~X86_PTE_ADDR_MASK) | (RAM_SIZE - 0x1000);
	ck_assert(shadow_check(fx.s, why, sizeof(why)));
	*leafp = saved | X86_PTE_G;
	ck_assert(!shadow_check(fx.s, why, sizeof(why)));
	ck_assert_msg(strstr(why, "global leaf"), "%s", why);
	*leafp = saved;
	ck_assert(shadow_check(fx.s, why, sizeof(why)));
}
END_TEST

/* shadow_check in cache mode notices a writable leaf on a protected table,
 * a leaf into the pool and a broken hypervisor entry. */
START_TEST(test_cache_checker_catches_corruption)
{
	struct shadow_fault_result r;
	gpa_t pte = gmap(0x5000, 1, 0x300000 | PWU | ADW, PWU);
	gva_t alias = 0x40007000;
	uint64_t *leaf, saved;
	mpa_t t = shadow_root(fx.s);
	char why[192];

	gmap(alias, 1, (pte & X86_PAGE_MASK) | PWU | ADW, PWU);
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fx_fault(alias, 0, &r), SHADOW_FILLED);
	for (int level = 4; level > 1; level--)
		t = pool_page(t)[X86_LEVEL_INDEX(alias, level)] & X86_PTE_ADDR_MASK;
	leaf = &pool_page(t)[X86_LEVEL_INDEX(alias, 1)];
	saved = *leaf;
	*leaf |= X86_PTE_W;
	ck_assert(!shadow_check(fx.s, why, sizeof(why)));
	ck_assert_msg(strstr(why, "write-protected guest table"), "%s", why);
	*leaf = (saved & ~X86_PTE_ADDR_MASK) | POOL_BASE;
	ck_assert(!shadow_check(fx.s, why, sizeof(why)));
	*leaf = saved;
	ck_assert(shadow_check(fx.s, why, sizeof(why)));
	pool_page(shadow_root(fx.s))[HV_INDEX] ^= X86_PTE_U;
	ck_assert(!shadow_check(fx.s, why, sizeof(why)));
	ck_assert_msg(strstr(why, "hypervisor entry changed"), "%s", why);
	pool_page(shadow_root(fx.s))[HV_INDEX] ^= X86_PTE_U;
	ck_assert(shadow_check(fx.s, why, sizeof(why)));
	/* a guest table changed behind the write protection's back (as a
	 * missed trap would leave it): the shadow no longer follows it */
	gset(pte, 0x305000 | PWU | ADW);
	ck_assert(!shadow_check(fx.s, why, sizeof(why)));
	ck_assert_msg(strstr(why, "exceeds or misplaces"), "%s", why);
	gset(pte, 0x300000 | X86_PTE_P | X86_PTE_U | ADW); /* now read-only */
	ck_assert(!shadow_check(fx.s, why, sizeof(why)));
	gset(pte, 0x300000 | PWU | ADW);
	ck_assert(shadow_check(fx.s, why, sizeof(why)));
	gset(gget(TABLES_GPA) & X86_PTE_ADDR_MASK, 0); /* the PML4E's PDPT entry gone */
	ck_assert(!shadow_check(fx.s, why, sizeof(why)));
	ck_assert_msg(strstr(why, "not present"), "%s", why);
}
END_TEST

/* shadow_format against snprintf on every conversion the checks use. */
START_TEST(test_check_format_matches_snprintf)
{
	char got[64], want[64];

#define SAME(...)                                             \
	do {                                                  \
		shadow_format(got, sizeof(got), __VA_ARGS__); \
		snprintf(want, sizeof(want), __VA_ARGS__);    \
		ck_assert_str_eq(got, want);                  \
	} while (0)
	SAME("shadow: %s: level=%d index=%u", "global leaf", 2, 511u);
	SAME("spte=0x%016llx root 0x%llx", 0x8000000000345067ull, 0x100000000ull);
	SAME("%d %d %u %x %lu %ld", -7, 0, 4294967295u, 0xabcu, 12ul, -3l);
	SAME("[%5d] [%05u] [%c] 100%%", -42, 7u, 'q');
	SAME("%s", "");
#undef SAME
	shadow_format(got, 8, "%s", "truncated here");
	ck_assert_str_eq(got, "truncat");
}
END_TEST

static unsigned live_allocs;

static void *counting_zalloc(void *opaque, size_t bytes)
{
	(void)opaque;
	live_allocs++;
	return calloc(1, bytes);
}

static void counting_free(void *opaque, void *p)
{
	(void)opaque;
	live_allocs--;
	free(p);
}

/* A context's state comes from the caller's allocator and all goes back. */
START_TEST(test_check_caller_allocator)
{
	struct shadow_config cfg = fx_config(POOL_PAGES);
	struct shadow_fault_result r;
	struct shadow *s;

	cfg.alloc = (struct shadow_alloc){ counting_zalloc, counting_free, NULL };
	cfg.opts = _i ? SHADOW_OPT_ALL : 0;
	cfg.pool.base += (uint64_t)POOL_PAGES << 12; /* the fixture's pool is in use */
	cfg.pool.host = aligned_alloc(X86_PAGE_SIZE, (size_t)POOL_PAGES * X86_PAGE_SIZE);
	ck_assert_ptr_nonnull(cfg.pool.host);
	gmap(0x5000, 1, 0x300000 | PWU | ADW, PWU);
	s = shadow_create(&cfg);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(live_allocs, 2); /* the context and its state block */
	ck_assert_int_eq(shadow_fault(s, 0x5000, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	shadow_destroy(s);
	ck_assert_uint_eq(live_allocs, 0);
	free(cfg.pool.host);
}
END_TEST

/* DESIGN.md §3: the VMM has the vCPU make every shadow store, so every one
 * must reach the pool's store hook.  A mirror built from the hooks alone
 * stays equal to the shadow MMU's own pool through fills, prefetch, huge
 * leaves, CR3 switches, unprotects, invlpg, flushes and evictions. */
static uint8_t *mirror;

static void mirror_store(void *opaque, mpa_t entry, uint64_t value)
{
	const struct shadow_pool_cfg *p = opaque;

	ck_assert(entry >= p->base && entry < p->base + ((mpa_t)p->pages << 12) && !(entry & 7));
	memcpy(mirror + (entry - p->base), &value, 8);
}

static void mirror_zero(void *opaque, mpa_t page)
{
	const struct shadow_pool_cfg *p = opaque;

	ck_assert(page >= p->base && page < p->base + ((mpa_t)p->pages << 12) && !(page & 0xfff));
	memset(mirror + (page - p->base), 0, X86_PAGE_SIZE);
}

START_TEST(test_store_hook_sees_every_store)
{
	enum { PAGES = 24 };
	struct shadow_config cfg = fx_config(PAGES);
	struct shadow_fault_result r;
	gpa_t pml4b = new_table(), pte;
	struct shadow *s;

	cfg.opts = (unsigned)_i;
	cfg.pool.base += (uint64_t)POOL_PAGES << 12; /* the fixture's pool is in use */
	cfg.pool.host = aligned_alloc(X86_PAGE_SIZE, (size_t)PAGES * X86_PAGE_SIZE);
	mirror = calloc(PAGES, X86_PAGE_SIZE);
	ck_assert(cfg.pool.host && mirror);
	cfg.pool.store = mirror_store;
	cfg.pool.zero = mirror_zero;
	cfg.pool.opaque = &cfg.pool;
	for (unsigned i = 0; i < 64; i++) /* 64 pages, each under its own PT */
		gmap(0x1000000ull * (i + 1) + 0x7000, 1, (0x400000 + i * 0x1000) | PWU | X86_PTE_A,
		     PWU);
	gmap(0x40000000, 2, 0x600000 | PWU | ADW | X86_PTE_PS, PWU);
	gmap_in(pml4b, 0x5000, 1, 0x300000 | PWU | ADW, PWU);
	s = shadow_create(&cfg);
	ck_assert_ptr_nonnull(s);
	for (unsigned round = 0; round < 3; round++) {
		for (unsigned i = 0; i < 64; i++) {
			shadow_fault(s, 0x1000000ull * (i + 1) + 0x7000,
				     i & 1 ? SHADOW_ACC_WRITE : 0, &r);
			ck_assert(!memcmp(mirror, cfg.pool.host, (size_t)PAGES * X86_PAGE_SIZE));
		}
		shadow_fault(s, 0x40000123, SHADOW_ACC_WRITE | SHADOW_ACC_USER, &r);
		/* the guest writes a table it uses, through a mapping of its own */
		shadow_fault(s, 0x1000000ull * (round + 2) + 0x7000, 0, &r);
		pte = gmap_pte_gpa(0x1000000ull * (round + 2) + 0x7000);
		gmap(0x7f000000 + round * 0x1000, 1, (pte & X86_PTE_ADDR_MASK) | PWU | ADW, PWU);
		shadow_fault(s, 0x7f000000 + round * 0x1000 + (pte & 0xfff), SHADOW_ACC_WRITE, &r);
		ck_assert(!memcmp(mirror, cfg.pool.host, (size_t)PAGES * X86_PAGE_SIZE));
		shadow_invlpg(s, 0x2007000);
		ck_assert(shadow_set_cr3(s, pml4b));
		shadow_fault(s, 0x5000, SHADOW_ACC_WRITE, &r);
		ck_assert(shadow_set_cr3(s, TABLES_GPA));
		if (round == 1)
			shadow_flush(s);
		ck_assert(!memcmp(mirror, cfg.pool.host, (size_t)PAGES * X86_PAGE_SIZE));
	}
	shadow_destroy(s);
	free(cfg.pool.host);
	free(mirror);
}
END_TEST

/* Device windows (struct shadow_mmio): a guest leaf into one is shadowed
 * to the same address, 4 KiB, and passes the checker; a page beside it is
 * still outside RAM; a window over RAM or the pool is refused. */
static const unsigned mmio_opts[] = { 0, SHADOW_OPT_ALL };

START_TEST(test_mmio_window_is_shadowed_to_itself)
{
	const gpa_t apic = 0xfee00000ull;
	struct shadow_config cfg;
	struct shadow_fault_result r;
	const gva_t va = 0x40000000ull, beside = 0x40001000ull;

	shadow_destroy(fx.s);
	cfg = fx_config(POOL_PAGES);
	cfg.opts = mmio_opts[_i];
	cfg.mmio[0] = (struct shadow_mmio){ apic, X86_PAGE_SIZE, 0 };
	cfg.nmmio = 1;
	ck_assert_ptr_nonnull(fx.s = shadow_create(&cfg));
	gmap(va, 1, apic | PWU | ADW, PWU);
	gmap(beside, 1, (apic + X86_PAGE_SIZE) | PWU | ADW, PWU);
	ck_assert_int_eq(fx_fault(va + 0x20, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(va) & X86_PTE_ADDR_MASK, apic);
	ck_assert(shadow_leaf(va) & X86_PTE_W);
	ck_assert_uint_ge(fx_check_invariants(), 1); /* the leaves it checked */
	ck_assert_int_eq(fx_fault(beside, 0, &r), SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_PAGE_OUTSIDE_RAM);
	shadow_destroy(fx.s);
	fx.s = NULL;
	cfg.mmio[0] = (struct shadow_mmio){ RAM_SIZE - X86_PAGE_SIZE, 2 * X86_PAGE_SIZE, 0 };
	ck_assert_ptr_null(shadow_create(&cfg));
	cfg.mmio[0] = (struct shadow_mmio){ POOL_BASE, X86_PAGE_SIZE, 0 };
	ck_assert_ptr_null(shadow_create(&cfg));
	cfg.mmio[0] = (struct shadow_mmio){ apic + 1, X86_PAGE_SIZE, 0 };
	ck_assert_ptr_null(shadow_create(&cfg));
	cfg.nmmio = 0;
	ck_assert_ptr_nonnull(fx.s = shadow_create(&cfg)); /* for the teardown */
}
END_TEST

/* SHADOW_MMIO_MARK (shadow.h): the reserved bit 51 on exactly the window's
 * leaves the guest kernel may read and write with nothing to check (a
 * dirty, writable, supervisor guest leaf), never on a user, read-only or
 * clean one, nor where MAXPHYADDR is 52; shadow_mmio_unmark makes a marked
 * leaf plain and nothing else. */
START_TEST(test_mmio_mark_only_on_kernel_read_write_dirty_leaves)
{
	const gpa_t apic = 0xfee00000ull, other = 0xfec00000ull;
	const uint64_t pw = X86_PTE_P | X86_PTE_W, kernel_rw = pw | ADW;
	const gva_t va = 0x40000000ull, user = 0x40001000ull, ro = 0x40002000ull,
		    clean = 0x40003000ull, io = 0x40004000ull, ram = 0x40005000ull;
	struct shadow_config cfg;
	struct shadow_fault_result r;

	shadow_destroy(fx.s);
	cfg = fx_config(POOL_PAGES);
	cfg.opts = mmio_opts[_i];
	cfg.mmio[0] = (struct shadow_mmio){ apic, X86_PAGE_SIZE, SHADOW_MMIO_MARK };
	cfg.mmio[1] = (struct shadow_mmio){ other, X86_PAGE_SIZE, 0 };
	cfg.nmmio = 2;
	ck_assert_ptr_nonnull(fx.s = shadow_create(&cfg));
	gmap(va, 1, apic | kernel_rw, PWU);
	gmap(user, 1, apic | PWU | ADW, PWU);
	gmap(ro, 1, apic | X86_PTE_P | ADW, PWU);
	gmap(clean, 1, apic | pw | X86_PTE_A, PWU);
	gmap(io, 1, other | kernel_rw, PWU);
	gmap(ram, 1, 0x300000ull | kernel_rw, PWU);
	for (gva_t g = va; g <= ram; g += X86_PAGE_SIZE)
		ck_assert_int_eq(fx_fault(g + 0x20, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(va), apic | SHADOW_SPTE_MMIO_MARK | kernel_rw);
	ck_assert_uint_eq(shadow_spte_frame(shadow_leaf(va)), apic);
	ck_assert(!(shadow_leaf(user) & SHADOW_SPTE_MMIO_MARK));
	ck_assert(!(shadow_leaf(ro) & SHADOW_SPTE_MMIO_MARK));
	ck_assert(!(shadow_leaf(clean) & SHADOW_SPTE_MMIO_MARK));
	ck_assert(!(shadow_leaf(io) & SHADOW_SPTE_MMIO_MARK));
	ck_assert(!(shadow_leaf(ram) & SHADOW_SPTE_MMIO_MARK));
	ck_assert_uint_eq(fx_stats().mmio_marks, 1);
	/* the clean leaf's first write dirties it: marked from then on */
	ck_assert_int_eq(fx_fault(clean + 0x300, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert(shadow_leaf(clean) & SHADOW_SPTE_MMIO_MARK);
	ck_assert(gget(gmap_pte_gpa(clean)) & X86_PTE_D);
	/* unmark: the marked leaf goes plain, with a flush; nothing else moves */
	shadow_take_tlb_flush(fx.s);
	ck_assert(shadow_mmio_unmark(fx.s, va + 0x20));
	ck_assert_uint_eq(shadow_leaf(va), apic | kernel_rw);
	ck_assert(shadow_take_tlb_flush(fx.s));
	ck_assert(!shadow_mmio_unmark(fx.s, va));
	ck_assert(!shadow_mmio_unmark(fx.s, user));
	ck_assert(!shadow_mmio_unmark(fx.s, ram));
	ck_assert(!shadow_mmio_unmark(fx.s, 0x7f0000000000ull)); /* nothing mapped */
	ck_assert(!shadow_mmio_unmark(fx.s, SHADOWVM_ABI_RESERVED_VA_BASE));
	ck_assert_uint_eq(fx_stats().mmio_unmarks, 1);
	fx_check_invariants();
	/* the next fill of it marks it again */
	shadow_invlpg(fx.s, va);
	ck_assert_int_eq(fx_fault(va, 0, &r), SHADOW_FILLED);
	ck_assert(shadow_leaf(va) & SHADOW_SPTE_MMIO_MARK);
	/* no reserved bit 51 with MAXPHYADDR 52: never marked */
	shadow_destroy(fx.s);
	cfg.cpu.maxphyaddr = 52;
	ck_assert_ptr_nonnull(fx.s = shadow_create(&cfg));
	ck_assert_int_eq(fx_fault(va, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(va), apic | kernel_rw);
}
END_TEST

Suite *shadow_check_suite(void)
{
	Suite *s = suite_create("shadow_check");
	TCase *tc;

	tc = fx_tcase(s, "invariants", &fx_vtlb, NULL);
	tcase_add_test(tc, test_invariant_checker_catches_corruption);
	tc = fx_tcase(s, "invariants", &fx_cache, NULL);
	tcase_add_test(tc, test_cache_checker_catches_corruption);
	tc = fx_tcase(s, "lib", &fx_vtlb, NULL);
	tcase_add_test(tc, test_check_format_matches_snprintf);
	tcase_add_loop_test(tc, test_check_caller_allocator, 0, 2);
	tc = fx_tcase(s, "store_hook", &fx_vtlb, NULL);
	tcase_add_loop_test(tc, test_store_hook_sees_every_store, 0, SHADOW_OPT_ALL + 1);
	tc = fx_tcase(s, "mmio", &fx_vtlb, NULL);
	tcase_add_loop_test(tc, test_mmio_mark_only_on_kernel_read_write_dirty_leaves, 0,
			    (int)(sizeof(mmio_opts) / sizeof(mmio_opts[0])));
	tcase_add_loop_test(tc, test_mmio_window_is_shadowed_to_itself, 0,
			    (int)(sizeof(mmio_opts) / sizeof(mmio_opts[0])));
	return s;
}
