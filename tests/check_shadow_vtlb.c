/* The virtual-TLB engine (shadow/vtlb.c), and the engine contract both
 * engines keep: a bounded pool that serves every fill, a guest #PF and
 * invlpg that drop the stale leaf, the fill event.  The cache suite runs the
 * contract on the cache too (shadow_engine_tcases). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shadow_fixture.h"
#include "suites.h"

/* ---- the engine contract ---- */

START_TEST(test_pool_exhaustion_sparse_working_set)
{
	/* 48 pages, each in its own 1 GiB region (own PD and PT), through an
	 * 8-page pool: every touch is still served with the right page */
	enum { N = 48 };
	struct shadow_fault_result r;
	struct shadow_stats st;
	int round, i;

	for (i = 0; i < N; i++)
		gmap((gva_t)i << 30 | ((gva_t)i << 12), 1, (0x200000 + (gpa_t)i * 0x1000) | PWU,
		     PWU);
	for (round = 0; round < 3; round++)
		for (i = 0; i < N; i++) {
			int j = (i * 7 + round) % N;
			gva_t gva = (gva_t)j << 30 | ((gva_t)j << 12) | 0x10;

			ck_assert_int_eq(fx_fault(gva, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
			ck_assert_uint_eq(r.gpa, 0x200010 + (gpa_t)j * 0x1000);
			ck_assert_uint_eq(shadow_leaf(gva) & X86_PTE_ADDR_MASK,
					  0x200000 + (gpa_t)j * 0x1000);
		}
	shadow_get_stats(fx.s, &st);
	ck_assert_uint_gt(st.evictions, 0);
	ck_assert_uint_eq(st.pages_peak, 8);
	ck_assert_uint_eq(st.fills[1], 3 * N);
	ck_assert_uint_eq(fx.nevents[SHADOW_EV_EVICT], st.evictions);
	ck_assert(shadow_take_tlb_flush(fx.s));
}
END_TEST

START_TEST(test_pool_minimum_serves_every_fill)
{
	/* the smallest pool evicts on nearly every fill and still serves */
	struct shadow_fault_result r;
	int i;

	for (i = 0; i < 8; i++) {
		gva_t gva = (gva_t)(i + 1) << 39;

		gmap(gva, 1, 0x300000 | PWU, PWU);
		ck_assert_int_eq(fx_fault(gva, 0, &r), SHADOW_FILLED);
		ck_assert_uint_eq(fx_check_invariants(), 1);
	}
}
END_TEST

START_TEST(test_guest_fault_drops_stale_leaf)
{
	/* the guest unmaps a page without invlpg; the stale read-only shadow
	 * leaf may serve reads until the next #PF at that address, which
	 * invalidates it as the hardware's TLB entry would be */
	struct shadow_fault_result r;
	gpa_t pte = gmap(0x5000, 1, 0x300000 | PWU, PWU);

	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(0x5000) & (X86_PTE_P | X86_PTE_W), X86_PTE_P);
	gset(pte, 0);
	(void)shadow_take_tlb_flush(fx.s);
	ck_assert_int_eq(fx_fault(0x5000, SHADOW_ACC_WRITE, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_W);
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	ck_assert(shadow_take_tlb_flush(fx.s));
}
END_TEST

START_TEST(test_invlpg_drops_only_that_page)
{
	struct shadow_fault_result r;

	gmap(0x5000, 1, 0x300000 | PWU, PWU);
	gmap(0x6000, 1, 0x301000 | PWU, PWU);
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fx_fault(0x6000, 0, &r), SHADOW_FILLED);
	ck_assert(!shadow_take_tlb_flush(fx.s));
	shadow_invlpg(fx.s, 0x5fff);
	ck_assert(shadow_take_tlb_flush(fx.s));
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	ck_assert(shadow_leaf(0x6000) & X86_PTE_P);
	ck_assert_uint_eq(fx.nevents[SHADOW_EV_INVLPG], 1);
	ck_assert_uint_eq(fx.last[SHADOW_EV_INVLPG].gva, 0x5fff);
}
END_TEST

START_TEST(test_event_fill_carries_walk)
{
	struct shadow_fault_result r;
	const struct shadow_event *ev = &fx.last[SHADOW_EV_FILL];
	gpa_t pte = gmap(0x7000, 1, 0x300000 | PWU | X86_PTE_A | X86_PTE_D, PWU);

	ck_assert_int_eq(fx_fault(0x7000, SHADOW_ACC_WRITE | SHADOW_ACC_USER, &r), SHADOW_FILLED);
	ck_assert_uint_eq(fx.nevents[SHADOW_EV_FILL], 1);
	ck_assert_uint_eq(ev->gva, 0x7000);
	ck_assert_uint_eq(ev->vcr3, TABLES_GPA);
	ck_assert_uint_eq(ev->access, SHADOW_ACC_WRITE | SHADOW_ACC_USER);
	ck_assert_int_eq(ev->level, 1);
	ck_assert_int_eq(ev->depth, 4);
	ck_assert_uint_eq(ev->gpte_gpa[1], pte);
	ck_assert_uint_eq(ev->gpte[1], gget(pte));
	ck_assert_uint_eq(ev->gpte_gpa[4], TABLES_GPA);
	ck_assert_uint_eq(ev->gpte[4], gget(TABLES_GPA));
	ck_assert_uint_eq(ev->ad_set[4], X86_PTE_A);
	ck_assert_uint_eq(ev->ad_set[1], 0);
	ck_assert_uint_eq(ev->gpa, 0x300000);
	ck_assert_uint_eq(ev->spte, shadow_leaf(0x7000));
	ck_assert_uint_eq(ev->spte & X86_PTE_ADDR_MASK, 0x300000);
	ck_assert(pool_page(ev->spte_mpa & X86_PAGE_MASK)[(ev->spte_mpa & 0xfff) / 8] == ev->spte);
	ck_assert_int_eq(fx_fault(0x9000, SHADOW_ACC_USER, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(fx.last[SHADOW_EV_GUEST_FAULT].pferr, X86_PF_U);
	ck_assert_int_eq(fx.last[SHADOW_EV_GUEST_FAULT].vector, X86_EXC_PF);
	ck_assert_int_eq(fx.last[SHADOW_EV_GUEST_FAULT].level, 1);
}
END_TEST

/* ---- the virtual TLB's own behaviour: everything goes at a CR3 write ---- */

START_TEST(test_pool_invlpg_frees_huge_subtree)
{
	struct shadow_fault_result r;
	struct shadow_stats before, after;
	gva_t base = 0x40000000;

	gmap(base, 3, 0 | PWU | X86_PTE_PS, PWU); /* 1 GiB page at GPA 0 */
	ck_assert_int_eq(fx_fault(base + 0x1000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fx_fault(base + 0x200000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(r.level, 3);
	shadow_get_stats(fx.s, &before);
	shadow_invlpg(fx.s, base + 0x5000);
	shadow_get_stats(fx.s, &after);
	ck_assert(!(shadow_leaf(base + 0x1000) & X86_PTE_P));
	ck_assert(!(shadow_leaf(base + 0x200000) & X86_PTE_P));
	ck_assert_uint_eq(after.pages_in_use, before.pages_in_use - 3); /* PD + 2 PTs */
	ck_assert_uint_eq(after.fills[3], 2);
}
END_TEST

START_TEST(test_invlpg_huge_drops_every_split_leaf)
{
	struct shadow_fault_result r;

	gmap(0x200000, 2, 0x400000 | PWU | X86_PTE_PS, PWU);
	ck_assert_int_eq(fx_fault(0x200000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fx_fault(0x3ff000, 0, &r), SHADOW_FILLED);
	/* the guest remaps the 2 MiB page and invalidates one address in it */
	gset(entry_gpa(gget(entry_gpa(gget(TABLES_GPA) & X86_PTE_ADDR_MASK, 0x200000, 3)) &
			       X86_PTE_ADDR_MASK,
		       0x200000, 2),
	     0x600000 | PWU | X86_PTE_PS);
	shadow_invlpg(fx.s, 0x250000);
	ck_assert(!(shadow_leaf(0x200000) & X86_PTE_P));
	ck_assert(!(shadow_leaf(0x3ff000) & X86_PTE_P));
	ck_assert_int_eq(fx_fault(0x3ff000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, 0x7ff000);
}
END_TEST

START_TEST(test_set_cr3_drops_all_but_hv)
{
	struct shadow_fault_result r;
	struct shadow_stats st;
	mpa_t root = shadow_root(fx.s);

	gmap(0x5000, 1, 0x300000 | PWU, PWU);
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(fx_check_invariants(), 1);
	ck_assert(shadow_set_cr3(fx.s, TABLES_GPA));
	ck_assert_uint_eq(fx_check_invariants(), 0);
	ck_assert_uint_eq(shadow_root(fx.s), root);
	ck_assert(shadow_take_tlb_flush(fx.s));
	shadow_get_stats(fx.s, &st);
	ck_assert_uint_eq(st.pages_in_use, 1);
	ck_assert_uint_eq(st.cr3_loads, 1);
	ck_assert_uint_eq(st.flushes, 1);
	ck_assert_uint_eq(fx.last[SHADOW_EV_CR3].vcr3, TABLES_GPA);
	ck_assert_int_eq(fx.last[SHADOW_EV_FLUSH].reason, SHADOW_FLUSH_CR3);
}
END_TEST

START_TEST(test_set_cpu_flushes_on_change_not_on_ac)
{
	struct shadow_fault_result r;
	struct shadow_cpu c = fx.cpu;

	gmap(0x5000, 1, 0x300000 | PWU, PWU);
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	c.rflags_ac = true;
	ck_assert(shadow_set_cpu(fx.s, &c));
	ck_assert_uint_eq(fx_check_invariants(), 1);
	c.cr4_smap = true;
	ck_assert(shadow_set_cpu(fx.s, &c));
	ck_assert_uint_eq(fx_check_invariants(), 0);
	ck_assert_int_eq(fx.last[SHADOW_EV_FLUSH].reason, SHADOW_FLUSH_CPU_STATE);
	c.maxphyaddr = 53;
	ck_assert(!shadow_set_cpu(fx.s, &c));
	ck_assert(shadow_cpu_state(fx.s)->cr4_smap);
}
END_TEST

START_TEST(test_create_rejects_bad_config)
{
	struct shadow_config cfg = fx_config(POOL_PAGES);

	cfg.pool.pages = SHADOW_POOL_MIN_PAGES - 1;
	ck_assert_ptr_null(shadow_create(&cfg));
	cfg = fx_config(POOL_PAGES);
	cfg.pool.base = RAM_SIZE - X86_PAGE_SIZE; /* overlaps guest RAM */
	ck_assert_ptr_null(shadow_create(&cfg));
	cfg = fx_config(POOL_PAGES);
	cfg.hv_index = 512;
	ck_assert_ptr_null(shadow_create(&cfg));
	cfg = fx_config(POOL_PAGES);
	cfg.mem.cmpxchg64 = NULL;
	ck_assert_ptr_null(shadow_create(&cfg));
	cfg = fx_config(SHADOW_POOL_MIN_PAGES);
	cfg.pool.host = (uint8_t *)fx.pool + 8;
	ck_assert_ptr_null(shadow_create(&cfg));
	cfg = fx_config(POOL_PAGES);
	cfg.vcr3 = X86_BIT(40); /* at MAXPHYADDR */
	ck_assert_ptr_null(shadow_create(&cfg));
}
END_TEST

START_TEST(test_vtlb_huge_and_prefetch)
{
	struct shadow_fault_result r;
	int level;

	gmap(0x40000000, 2, 0x600000 | PWU | X86_PTE_PS | ADW, PWU);
	ck_assert_int_eq(fx_fault(0x40000000, 0, &r), SHADOW_FILLED);
	(void)shadow_map(0x40000000, &level);
	ck_assert_int_eq(level, 2);
	for (unsigned i = 0; i < 16; i++)
		gmap(0x10000 + i * 0x1000, 1, (0x300000 + i * 0x1000) | PWU | ADW, PWU);
	ck_assert_int_eq(fx_fault(0x10000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(fx_stats().prefetched, 15);
	shadow_invlpg(fx.s, 0x40001000);
	ck_assert(!(shadow_map(0x40000000, &level) & X86_PTE_P));
	fx_check_invariants();
}
END_TEST

static void setup_vtlb_prefetch_huge(void)
{
	fx_setup_opts(SHADOW_OPT_PREFETCH | SHADOW_OPT_HUGE);
}

void shadow_engine_tcases(Suite *s, const struct fx_engine *en)
{
	TCase *tc;

	tc = fx_tcase(s, "pool", en, en->small);
	tcase_add_test(tc, test_pool_exhaustion_sparse_working_set);

	tc = fx_tcase(s, "pool_min", en, en->min);
	tcase_add_test(tc, test_pool_minimum_serves_every_fill);

	tc = fx_tcase(s, "coherence", en, NULL);
	tcase_add_test(tc, test_guest_fault_drops_stale_leaf);
	tcase_add_test(tc, test_invlpg_drops_only_that_page);
	tcase_add_test(tc, test_event_fill_carries_walk);
}

Suite *shadow_vtlb_suite(void)
{
	Suite *s = suite_create("shadow_vtlb");
	TCase *tc;

	shadow_engine_tcases(s, &fx_vtlb);
	/* the virtual TLB's own behaviour: everything goes at a CR3 write */
	tc = fx_tcase(s, "vtlb", &fx_vtlb, NULL);
	tcase_add_test(tc, test_pool_invlpg_frees_huge_subtree);
	tcase_add_test(tc, test_invlpg_huge_drops_every_split_leaf);
	tcase_add_test(tc, test_set_cr3_drops_all_but_hv);
	tcase_add_test(tc, test_set_cpu_flushes_on_change_not_on_ac);
	tcase_add_test(tc, test_create_rejects_bad_config);

	tc = fx_tcase(s, "vtlb_opts", &fx_vtlb, setup_vtlb_prefetch_huge);
	tcase_add_test(tc, test_vtlb_huge_and_prefetch);
	return s;
}
