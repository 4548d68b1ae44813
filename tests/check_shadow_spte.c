/* Shadow leaves (shadow/spte.c): shadow_spte_leaf against the rules written
 * out (SDM 3A §4.6, §4.8, §4.9.2 and the CR0.WP = 0 emulation), every
 * combination of rights, dirty bit, memory type, access and control bits;
 * the 2 MiB form; and the same rules seen through fills on both engines. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shadow_fixture.h"
#include "suites.h"

/* The control settings the leaf depends on, one per loop iteration:
 * CR0.WP, CR4.SMEP, and the guest leaf's level (1: 4 KiB, 2: huge). */
#define SPTE_SETTINGS 8

static uint64_t spte_reference(bool wp, bool smep, uint64_t g, int level, struct shadow_rights r,
			       unsigned acc, mpa_t mpa)
{
	uint64_t pat = level == 1 ? X86_PTE_PAT : X86_PTE_PAT_LARGE;
	bool sup_write = (acc & SHADOW_ACC_WRITE) && !(acc & SHADOW_ACC_USER);
	bool wp0 = !(r.write && (g & X86_PTE_D)) && sup_write && !r.write && !wp;
	uint64_t e = mpa | X86_PTE_P | X86_PTE_A | (g & (X86_PTE_PWT | X86_PTE_PCD));

	if (g & pat)
		e |= X86_PTE_PAT;
	if (r.user && !wp0)
		e |= X86_PTE_U;
	if (r.nx || (wp0 && smep && r.user))
		e |= X86_PTE_NX;
	if ((r.write && (g & X86_PTE_D)) || wp0)
		e |= X86_PTE_W | X86_PTE_D;
	if (wp0)
		e |= SHADOW_SPTE_WP0;
	return e;
}

START_TEST(test_spte_leaf_table)
{
	struct shadow_cpu cpu = {
		.cr0_wp = _i & 1, .cr4_smep = _i & 2, .efer_nxe = true, .maxphyaddr = 40
	};
	int level = _i & 4 ? 2 : 1;
	static const unsigned accs[] = { 0,
					 SHADOW_ACC_WRITE,
					 SHADOW_ACC_FETCH,
					 SHADOW_ACC_USER,
					 SHADOW_ACC_USER | SHADOW_ACC_WRITE,
					 SHADOW_ACC_USER | SHADOW_ACC_FETCH };
	const mpa_t mpa = 0x345000;

	for (unsigned rb = 0; rb < 8; rb++) {
		struct shadow_rights r = { .write = rb & 1, .user = rb & 2, .nx = rb & 4 };

		for (unsigned gb = 0; gb < 16; gb++) {
			uint64_t g = mpa | X86_PTE_P | X86_PTE_A | (gb & 1 ? X86_PTE_D : 0) |
				     (gb & 2 ? X86_PTE_PWT : 0) | (gb & 4 ? X86_PTE_PCD : 0) |
				     (gb & 8 ? (level == 1 ? X86_PTE_PAT : X86_PTE_PAT_LARGE) : 0);

			for (unsigned a = 0; a < sizeof(accs) / sizeof(accs[0]); a++) {
				uint64_t got = shadow_spte_leaf(&cpu, g, level, r, accs[a], mpa);
				uint64_t want = spte_reference(cpu.cr0_wp, cpu.cr4_smep, g, level,
							       r, accs[a], mpa);

				CHECK(got == want,
				      "wp=%d smep=%d level=%d rights=%u gpte=0x%llx access=0x%x: "
				      "spte 0x%llx, expected 0x%llx",
				      cpu.cr0_wp, cpu.cr4_smep, level, rb, (unsigned long long)g,
				      accs[a], (unsigned long long)got, (unsigned long long)want);
				CHECK(!(got & X86_PTE_G), "global shadow leaf 0x%llx",
				      (unsigned long long)got);
			}
		}
	}
}
END_TEST

START_TEST(test_spte_2m_moves_pat_and_aligns)
{
	uint64_t leaf = 0x345000 | X86_PTE_P | X86_PTE_W | X86_PTE_PCD;

	ck_assert_uint_eq(shadow_spte_2m(leaf),
			  0x200000 | X86_PTE_P | X86_PTE_W | X86_PTE_PCD | X86_PTE_PS);
	ck_assert_uint_eq(shadow_spte_2m(leaf | X86_PTE_PAT), 0x200000 | X86_PTE_P | X86_PTE_W |
								      X86_PTE_PCD | X86_PTE_PS |
								      X86_PTE_PAT_LARGE);
}
END_TEST

/* ---- through fills ---- */

START_TEST(test_fill_clean_leaf_readonly_until_write)
{
	struct shadow_fault_result r;
	struct shadow_stats st;
	gpa_t pte = gmap(0x5000, 1, 0x300000 | PWU, PWU);

	ck_assert_int_eq(fx_fault(0x5000, SHADOW_ACC_USER, &r), SHADOW_FILLED);
	ck_assert_uint_eq(gget(pte), 0x300000 | PWU | X86_PTE_A);
	ck_assert_uint_eq(shadow_leaf(0x5000) & (X86_PTE_W | X86_PTE_U), X86_PTE_U);
	ck_assert_int_eq(fx_fault(0x5000, SHADOW_ACC_USER | SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert_uint_eq(gget(pte), 0x300000 | PWU | X86_PTE_A | X86_PTE_D);
	ck_assert_uint_eq(shadow_leaf(0x5000) & (X86_PTE_W | X86_PTE_U), X86_PTE_W | X86_PTE_U);
	shadow_get_stats(fx.s, &st);
	ck_assert_uint_eq(st.a_sets, 4);
	ck_assert_uint_eq(st.d_sets, 1);
	ck_assert_uint_eq(st.hidden_faults, 2);
	ck_assert_uint_eq(fx.last[SHADOW_EV_AD_SET].ad_set[1], X86_PTE_D);
}
END_TEST

START_TEST(test_fill_wp0_supervisor_write_then_user_refaults)
{
	struct shadow_fault_result r;
	gpa_t pte = gmap(0x5000, 1, 0x300000 | X86_PTE_P | X86_PTE_U, PWU);

	fx.cpu.cr0_wp = false;
	fx.cpu.cr4_smep = true;
	ck_assert(shadow_set_cpu(fx.s, &fx.cpu));
	ck_assert_int_eq(fx_fault(0x5000, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(0x5000) &
				  (X86_PTE_W | X86_PTE_U | X86_PTE_NX | SHADOW_SPTE_WP0),
			  X86_PTE_W | X86_PTE_NX | SHADOW_SPTE_WP0);
	ck_assert(gget(pte) & X86_PTE_D);
	ck_assert_int_eq(fx_fault(0x5000, SHADOW_ACC_USER, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(0x5000) & (X86_PTE_W | X86_PTE_U | X86_PTE_NX), X86_PTE_U);
	ck_assert_int_eq(fx_fault(0x5000, SHADOW_ACC_USER | SHADOW_ACC_WRITE, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_P | X86_PF_W | X86_PF_U);
}
END_TEST

static void add_fill_tcases(Suite *s, const struct fx_engine *en)
{
	TCase *tc = fx_tcase(s, "fill", en, NULL);

	tcase_add_test(tc, test_fill_clean_leaf_readonly_until_write);
	tcase_add_test(tc, test_fill_wp0_supervisor_write_then_user_refaults);
}

Suite *shadow_spte_suite(void)
{
	Suite *s = suite_create("shadow_spte");
	TCase *tc = tcase_create("leaf");

	tcase_add_loop_test(tc, test_spte_leaf_table, 0, SPTE_SETTINGS);
	tcase_add_test(tc, test_spte_2m_moves_pat_and_aligns);
	suite_add_tcase(s, tc);
	add_fill_tcases(s, &fx_vtlb);
	add_fill_tcases(s, &fx_cache);
	return s;
}
