/* The guest page-table walker (shadow/walk.c), seen through shadow_fault on
 * both engines: the walker against a reference written from the SDM rules
 * (§4.5-§4.8) over every combination of leaf and PDE bits, reserved bits one
 * at a time at every level, hostile table graphs, and A/D updates raced by
 * another vCPU.  Every engine must give the virtual TLB's answers. */
#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "shadow_fixture.h"
#include "suites.h"
#include "walk.h"

/* ---- 1. the exhaustive table ---- */

/* Combination counter shared by the forked loop iterations. */
static atomic_long *combos_ran;

static void combos_open(void)
{
	combos_ran = mmap(NULL, sizeof(*combos_ran), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (combos_ran == MAP_FAILED)
		abort();
	atomic_store(combos_ran, 0);
}

static void combos_close(void)
{
	printf("shadow: exhaustive walk table: %ld combinations ran\n", atomic_load(combos_ran));
	fflush(stdout);
	munmap(combos_ran, sizeof(*combos_ran));
}

/* Leaf bits P W U A D NX, PDE bits W U NX PS, by index. */
static const uint64_t leaf_bit[6] = { X86_PTE_P, X86_PTE_W, X86_PTE_U,
				      X86_PTE_A, X86_PTE_D, X86_PTE_NX };
static const uint64_t pde_bit[4] = { X86_PTE_W, X86_PTE_U, X86_PTE_NX, X86_PTE_PS };

static uint64_t bits_of(const uint64_t *table, int n, unsigned idx)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		if (idx & (1u << i))
			v |= table[i];
	return v;
}

#define EX_GVA 0x00007f8040203abcull
#define EX_PAGE_4K 0x345000ull
#define EX_PAGE_2M 0x400000ull

struct ex_case {
	uint64_t pml4e, pdpte, pde, pte; /* pte unused when pde has PS */
	gpa_t at[5];                     /* entry GPAs by level */
	enum kind k;
	bool user;
	struct ctl c;
};

struct ex_expect {
	bool fault;
	uint32_t pferr;
	bool u, w, nx; /* combined, when no fault */
	gpa_t gpa;
};

/* Straight from the SDM: walk top-down; not present stops with P=0, XD
 * without NXE is a reserved bit (P=1, RSVD=1); rights are checked on the
 * complete translation; I/D only with NXE or SMEP (§4.7). */
static struct ex_expect ex_reference(const struct ex_case *x)
{
	uint64_t e[4] = { x->pml4e, x->pdpte, x->pde, x->pte };
	int n = (x->pde & X86_PTE_PS) ? 3 : 4, i;
	struct ex_expect r = { .u = true, .w = true };
	uint32_t why = (x->k == WR ? X86_PF_W : 0) | (x->user ? X86_PF_U : 0) |
		       (x->k == EX && (x->c.nxe || x->c.smep) ? X86_PF_I : 0);

	for (i = 0; i < n; i++) {
		if (!(e[i] & X86_PTE_P))
			return (struct ex_expect){ .fault = true, .pferr = why };
		if ((e[i] & X86_PTE_NX) && !x->c.nxe)
			return (struct ex_expect){ .fault = true,
						   .pferr = why | X86_PF_P | X86_PF_RSVD };
		r.u = r.u && (e[i] & X86_PTE_U);
		r.w = r.w && (e[i] & X86_PTE_W);
		r.nx = r.nx || (e[i] & X86_PTE_NX);
	}
	if (!ref_allowed(r.u, r.w, r.nx, x->k, x->user, &x->c))
		return (struct ex_expect){ .fault = true, .pferr = why | X86_PF_P };
	r.gpa = n == 3 ? EX_PAGE_2M + (EX_GVA & 0x1fffff) : EX_PAGE_4K + (EX_GVA & 0xfff);
	return r;
}

static void ex_build(struct ex_case *x, unsigned leaf, unsigned pde)
{
	gpa_t pdpt = TABLES_GPA + 0x1000, pd = TABLES_GPA + 0x2000, pt = TABLES_GPA + 0x3000;
	uint64_t lb = bits_of(leaf_bit, 6, leaf), pb = bits_of(pde_bit, 4, pde);

	memset(fx.ram + TABLES_GPA, 0, 4 * X86_PAGE_SIZE);
	x->at[4] = entry_gpa(TABLES_GPA, EX_GVA, 4);
	x->at[3] = entry_gpa(pdpt, EX_GVA, 3);
	x->at[2] = entry_gpa(pd, EX_GVA, 2);
	x->at[1] = entry_gpa(pt, EX_GVA, 1);
	x->pml4e = pdpt | PWU;
	x->pdpte = pd | PWU;
	if (pb & X86_PTE_PS) /* the 2 MiB leaf takes P, A, D from the leaf bits */
		x->pde = EX_PAGE_2M | pb | (lb & (X86_PTE_P | X86_PTE_A | X86_PTE_D));
	else
		x->pde = pt | X86_PTE_P | pb;
	x->pte = (pb & X86_PTE_PS) ? 0 : EX_PAGE_4K | lb;
	gset(x->at[4], x->pml4e);
	gset(x->at[3], x->pdpte);
	gset(x->at[2], x->pde);
	gset(x->at[1], x->pte);
}

static void ex_describe(char *buf, size_t len, const struct ex_case *x)
{
	snprintf(buf, len, "pde=0x%llx pte=0x%llx %s %s wp=%d nxe=%d smep=%d smap=%d ac=%d",
		 (unsigned long long)x->pde, (unsigned long long)x->pte,
		 x->k == RD   ? "read"
		 : x->k == WR ? "write"
			      : "fetch",
		 x->user ? "user" : "supervisor", x->c.wp, x->c.nxe, x->c.smep, x->c.smap, x->c.ac);
}

/* A/D afterwards: untouched on a fault; else A everywhere used, D in the
 * leaf on a write (§4.8). */
static void ex_check_ad(const struct ex_case *x, const struct ex_expect *e, const char *d)
{
	bool huge = x->pde & X86_PTE_PS;
	uint64_t a = e->fault ? 0 : X86_PTE_A;
	uint64_t dirty = (!e->fault && x->k == WR) ? X86_PTE_D : 0;

	CHECK(gget(x->at[4]) == (x->pml4e | a), "PML4E A: %s", d);
	CHECK(gget(x->at[3]) == (x->pdpte | a), "PDPTE A: %s", d);
	CHECK(gget(x->at[2]) == (x->pde | a | (huge ? dirty : 0)), "PDE A/D: %s", d);
	CHECK(gget(x->at[1]) == (huge ? 0 : x->pte | a | dirty), "PTE A/D: %s", d);
}

/* The shadow leaf never grants what the guest (as it is now) would not,
 * and writable implies a dirty guest leaf. */
static void ex_check_leaf_bounded(const struct ex_case *x, const struct ex_expect *e, const char *d)
{
	uint64_t spte = shadow_leaf(EX_GVA);
	uint64_t gleaf = gget((x->pde & X86_PTE_PS) ? x->at[2] : x->at[1]);
	enum kind k;
	int user;

	for (k = RD; k <= EX; k++)
		for (user = 0; user < 2; user++) {
			if (!hw_allows(spte, k, user, &x->c))
				continue;
			CHECK(ref_allowed(e->u, e->w, e->nx, k, user, &x->c),
			      "shadow 0x%llx grants %d/%d beyond the guest: %s",
			      (unsigned long long)spte, k, user, d);
			CHECK(k != WR || (gleaf & X86_PTE_D),
			      "shadow writable over a clean guest leaf: %s", d);
		}
}

static void ex_check_fill(const struct ex_case *x, const struct ex_expect *e, const char *d)
{
	uint64_t spte = shadow_leaf(EX_GVA);

	CHECK(spte & X86_PTE_P, "no shadow leaf: %s", d);
	CHECK((spte & X86_PTE_ADDR_MASK) == (e->gpa & X86_PAGE_MASK), "address: %s", d);
	/* the retried access must now get through, or the guest loops */
	CHECK(hw_allows(spte, x->k, x->user, &x->c), "no progress: %s", d);
	ex_check_leaf_bounded(x, e, d);
	if (x->k == WR && !x->user && !e->w) { /* WP=0 emulation */
		CHECK(!(spte & X86_PTE_U) && (spte & X86_PTE_W), "WP=0 leaf: %s", d);
		CHECK(!(x->c.smep && e->u) || (spte & X86_PTE_NX), "WP=0 SMEP: %s", d);
	}
}

/* Every other access the guest allows eventually gets through (after at
 * most one more hidden fault), and the bound still holds. */
static void ex_check_followups(const struct ex_case *x, const struct ex_expect *e, const char *d)
{
	struct shadow_fault_result r;
	enum kind k;
	int user;

	for (k = RD; k <= EX; k++)
		for (user = 0; user < 2; user++) {
			if (!ref_allowed(e->u, e->w, e->nx, k, user, &x->c) ||
			    hw_allows(shadow_leaf(EX_GVA), k, user, &x->c))
				continue;
			CHECK(fx_fault(EX_GVA, acc_of(k, user), &r) == SHADOW_FILLED,
			      "follow-up %d/%d: %s", k, user, d);
			CHECK(hw_allows(shadow_leaf(EX_GVA), k, user, &x->c),
			      "follow-up %d/%d no progress: %s", k, user, d);
			ex_check_leaf_bounded(x, e, d);
		}
}

static void ex_run(struct ex_case *x)
{
	struct ex_expect e = ex_reference(x);
	struct shadow_fault_result r;
	enum shadow_status st;
	char d[256];

	ex_describe(d, sizeof(d), x);
	shadow_flush(fx.s);
	st = fx_fault(EX_GVA, acc_of(x->k, x->user), &r);
	if (e.fault) {
		CHECK(st == SHADOW_GUEST_PF, "status %d, want #PF: %s", st, d);
		CHECK(r.pferr == e.pferr, "pferr 0x%x, want 0x%x: %s", r.pferr, e.pferr, d);
		CHECK(!(shadow_leaf(EX_GVA) & X86_PTE_P), "leaf after fault: %s", d);
	} else {
		CHECK(st == SHADOW_FILLED, "status %d (pferr 0x%x), want fill: %s", st, r.pferr, d);
		CHECK(r.gpa == e.gpa, "gpa: %s", d);
	}
	ex_check_ad(x, &e, d);
	if (!e.fault) {
		ex_check_fill(x, &e, d);
		ex_check_followups(x, &e, d);
	}
}

/* Loop index: control state (WP x NXE x SMEP x {SMAP off, SMAP AC=0,
 * SMAP AC=1}) x access x mode; each runs every leaf x PDE combination. */
#define EX_ITERATIONS (2 * 2 * 2 * 3 * 3 * 2)

START_TEST(test_walk_exhaustive_table)
{
	struct ex_case x = { .k = (enum kind)((_i / 2) % 3), .user = _i % 2 };
	int ctl = _i / 6;
	unsigned leaf, pde;

	x.c = (struct ctl){ .wp = ctl & 1,
			    .nxe = (ctl >> 1) & 1,
			    .smep = (ctl >> 2) & 1,
			    .smap = (ctl >> 3) > 0,
			    .ac = (ctl >> 3) == 2 };
	fx.cpu = (struct shadow_cpu){ .cr0_wp = x.c.wp,
				      .cr4_smep = x.c.smep,
				      .cr4_smap = x.c.smap,
				      .rflags_ac = x.c.ac,
				      .efer_nxe = x.c.nxe,
				      .gbpages = true,
				      .maxphyaddr = 40 };
	ck_assert(shadow_set_cpu(fx.s, &fx.cpu));
	for (leaf = 0; leaf < 64; leaf++)
		for (pde = 0; pde < 16; pde++) {
			ex_build(&x, leaf, pde);
			ex_run(&x);
			atomic_fetch_add(combos_ran, 1);
		}
}
END_TEST

/* ---- 2. reserved bits, one at a time, at every level ---- */

enum where { W_PML4E, W_PDPTE, W_PDE, W_PTE, W_PDE_2M, W_PDPTE_1G, W_COUNT };

static const char *const where_name[W_COUNT] = { "PML4E", "PDPTE",   "PDE",
						 "PTE",   "PDE(2M)", "PDPTE(1G)" };

/* SDM 3A tables 4-14 to 4-20 with MAXPHYADDR = 40. */
static bool ref_reserved(enum where w, int bit, bool nxe)
{
	if (bit >= 40 && bit <= 51)
		return true;
	if (bit == 63)
		return !nxe;
	if (w == W_PML4E)
		return bit == 7;
	if (w == W_PDE_2M)
		return bit >= 13 && bit <= 20;
	if (w == W_PDPTE_1G)
		return bit >= 13 && bit <= 29;
	return false;
}

#define RB_GVA 0x0000004080604000ull

/* Build a user-writable path to RB_GVA ending at the leaf kind of `w`;
 * returns the GPA of the entry of kind `w` and its level. */
static gpa_t rb_build(enum where w, int *level)
{
	int leaf_level = w == W_PDPTE_1G ? 3 : w == W_PDE_2M ? 2 : 1;
	uint64_t leaf = leaf_level == 1 ? 0x300000 : leaf_level == 2 ? 0x400000 : 0;
	gpa_t at;

	memset(fx.ram + TABLES_GPA, 0, 8 * X86_PAGE_SIZE);
	fx.next_table = TABLES_GPA + X86_PAGE_SIZE;
	at = gmap(RB_GVA, leaf_level, leaf | PWU | (leaf_level > 1 ? X86_PTE_PS : 0), PWU);
	*level = (w == W_PML4E)                      ? 4
		 : (w == W_PDPTE || w == W_PDPTE_1G) ? 3
		 : (w == W_PDE || w == W_PDE_2M)     ? 2
						     : 1;
	while (leaf_level < *level) { /* climb from the leaf to the entry wanted */
		gpa_t table = TABLES_GPA;
		int l;

		for (l = 4; l > leaf_level + 1; l--)
			table = gget(entry_gpa(table, RB_GVA, l)) & X86_PTE_ADDR_MASK;
		at = entry_gpa(table, RB_GVA, leaf_level + 1);
		leaf_level++;
	}
	return at;
}

START_TEST(test_walk_reserved_bit_faults)
{
	enum where w = (enum where)(_i / 2);
	bool nxe = _i % 2;
	struct shadow_fault_result r;
	int bit, level;

	fx.cpu.efer_nxe = nxe;
	ck_assert(shadow_set_cpu(fx.s, &fx.cpu));
	for (bit = 0; bit < 64; bit++) {
		gpa_t at = rb_build(w, &level);
		uint64_t before = gget(at);

		/* PS in a PDPTE/PDE changes what the entry is; P and PS of
		 * leaves are set already */
		if (bit == 7 && (w == W_PDPTE || w == W_PDE))
			continue;
		gset(at, before | X86_BIT(bit));
		shadow_flush(fx.s);
		fx_fault(RB_GVA, SHADOW_ACC_WRITE | SHADOW_ACC_USER, &r);
		if (ref_reserved(w, bit, nxe)) {
			ck_assert_msg(
				r.status == SHADOW_GUEST_PF &&
					r.pferr == (X86_PF_P | X86_PF_W | X86_PF_U | X86_PF_RSVD),
				"%s bit %d nxe=%d: status %d pferr 0x%x", where_name[w], bit, nxe,
				r.status, r.pferr);
			ck_assert_int_eq(r.level, level);
			ck_assert_uint_eq(gget(at), before | X86_BIT(bit)); /* no A set */
			ck_assert(!(shadow_leaf(RB_GVA) & X86_PTE_P));
		} else {
			ck_assert_msg(!(r.status == SHADOW_GUEST_PF && (r.pferr & X86_PF_RSVD)),
				      "%s bit %d nxe=%d: spurious RSVD", where_name[w], bit, nxe);
			ck_assert_msg(r.status == SHADOW_FILLED || r.status == SHADOW_GUEST_PF ||
					      (r.status == SHADOW_ERROR &&
					       (r.err == SHADOW_ERR_TABLE_OUTSIDE_RAM ||
						r.err == SHADOW_ERR_PAGE_OUTSIDE_RAM)),
				      "%s bit %d: status %d err %d", where_name[w], bit, r.status,
				      r.err);
		}
	}
}
END_TEST

START_TEST(test_walk_1g_without_support_is_reserved)
{
	struct shadow_fault_result r;
	int level;
	gpa_t at = rb_build(W_PDPTE_1G, &level);

	fx.cpu.gbpages = false;
	ck_assert(shadow_set_cpu(fx.s, &fx.cpu));
	ck_assert_int_eq(fx_fault(RB_GVA, 0, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_P | X86_PF_RSVD);
	ck_assert_int_eq(r.level, 3);
	ck_assert_uint_eq(gget(at) & X86_PTE_A, 0);
}
END_TEST

START_TEST(test_walk_reserved_upper_level_stops_walk)
{
	struct shadow_fault_result r;
	int level;
	gpa_t pml4e = rb_build(W_PML4E, &level);
	gpa_t pdpte = entry_gpa(gget(pml4e) & X86_PTE_ADDR_MASK, RB_GVA, 3);

	gset(pdpte, 0);                        /* not present below ... */
	gset(pml4e, gget(pml4e) | X86_PTE_PS); /* ... a reserved bit above */
	ck_assert_int_eq(fx_fault(RB_GVA, SHADOW_ACC_FETCH, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_P | X86_PF_RSVD | X86_PF_I);
	ck_assert_int_eq(r.level, 4);
}
END_TEST

START_TEST(test_walk_maxphyaddr_52_reserves_no_address_bit)
{
	struct shadow_fault_result r;
	int level;
	gpa_t pte = rb_build(W_PTE, &level);

	fx.cpu.maxphyaddr = 52;
	ck_assert(shadow_set_cpu(fx.s, &fx.cpu));
	gset(pte, gget(pte) | X86_BIT(51));
	ck_assert_int_eq(fx_fault(RB_GVA, 0, &r), SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_PAGE_OUTSIDE_RAM);
	ck_assert_uint_eq(r.gpa, X86_BIT(51) | 0x300000);
}
END_TEST

START_TEST(test_walk_pte_bit7_is_pat_not_ps)
{
	struct shadow_fault_result r;
	int level;
	gpa_t pte = rb_build(W_PTE, &level);

	gset(pte, gget(pte) | X86_PTE_PAT | X86_PTE_PCD);
	ck_assert_int_eq(fx_fault(RB_GVA + 0x123, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, 0x300123);
	ck_assert_int_eq(r.level, 1);
	ck_assert_uint_eq(shadow_leaf(RB_GVA) & (X86_PTE_PAT | X86_PTE_PCD | X86_PTE_PWT),
			  X86_PTE_PAT | X86_PTE_PCD);
}
END_TEST

START_TEST(test_walk_huge_pat_moves_to_bit7)
{
	struct shadow_fault_result r;
	int level;
	gpa_t pde = rb_build(W_PDE_2M, &level);

	gset(pde, gget(pde) | X86_PTE_PAT_LARGE);
	ck_assert_int_eq(fx_fault(RB_GVA, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, 0x400000 + (RB_GVA & 0x1fffff));
	ck_assert_uint_eq(shadow_leaf(RB_GVA) & X86_PTE_ADDR_MASK, 0x400000 + (RB_GVA & 0x1ff000));
	ck_assert(shadow_leaf(RB_GVA) & X86_PTE_PAT);
}
END_TEST

START_TEST(test_set_cr3_reserved_bits_gp)
{
	struct shadow_stats st;

	ck_assert(!shadow_set_cr3(fx.s, X86_BIT(40) | TABLES_GPA));
	ck_assert(!shadow_set_cr3(fx.s, X86_BIT(63) | TABLES_GPA));
	ck_assert_uint_eq(shadow_vcr3(fx.s), TABLES_GPA);
	shadow_get_stats(fx.s, &st);
	ck_assert_uint_eq(st.cr3_loads, 0);
	ck_assert(shadow_set_cr3(fx.s, TABLES_GPA | 0xfff)); /* bits 11:0 ignored */
	ck_assert_uint_eq(shadow_vcr3(fx.s), TABLES_GPA);
}
END_TEST

/* ---- 3. hostile graphs ---- */

START_TEST(test_hostile_self_referencing_pml4)
{
	/* PML4[5] points at the PML4 itself: gva 5/5/5/5 maps the PML4 page,
	 * and that one entry is used at all four levels */
	gva_t gva = (5ull << 39) | (5ull << 30) | (5ull << 21) | (5ull << 12) | 0x28;
	gpa_t self = TABLES_GPA + 5 * 8;
	struct shadow_fault_result r;

	gset(self, TABLES_GPA | PWU);
	ck_assert_int_eq(fx_fault(gva, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, TABLES_GPA + 0x28);
	ck_assert_uint_eq(gget(self), TABLES_GPA | PWU | X86_PTE_A | X86_PTE_D);
	ck_assert_uint_eq(shadow_leaf(gva) & X86_PTE_ADDR_MASK, TABLES_GPA);
	ck_assert_uint_eq(fx.last[SHADOW_EV_AD_SET].ad_set[4], X86_PTE_A);
	ck_assert_uint_eq(fx.last[SHADOW_EV_AD_SET].ad_set[1], X86_PTE_D);
	/* and a second walk through it changes nothing more */
	ck_assert_int_eq(fx_fault(gva, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert_uint_eq(gget(self), TABLES_GPA | PWU | X86_PTE_A | X86_PTE_D);
}
END_TEST

START_TEST(test_hostile_table_shared_at_two_levels)
{
	/* one page T is both the PDPT and the PD: T[1] points to T (as a PD
	 * entry it would point to a PT), T[2] is a 2 MiB leaf */
	gpa_t t = new_table();
	gva_t via_pd = (1ull << 30) | (2ull << 21) | 0x1234;
	gva_t via_pt = (1ull << 30) | (1ull << 21) | (3ull << 12);
	struct shadow_fault_result r;

	gset(TABLES_GPA, t | PWU);
	gset(t + 8 * 1, t | PWU);
	gset(t + 8 * 2, 0x600000 | PWU | X86_PTE_PS);
	/* via_pd: PML4[0] -> T, T[1] as PDPTE -> T, T[2] as PDE: 2M leaf */
	ck_assert_int_eq(fx_fault(via_pd, SHADOW_ACC_USER, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, 0x600000 + 0x1234);
	ck_assert_int_eq(r.level, 2);
	/* via_pt: T[1] as PDPTE -> T, T[1] as PDE -> T, T[3] as PTE: absent */
	ck_assert_int_eq(fx_fault(via_pt, SHADOW_ACC_USER, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_U);
	ck_assert_int_eq(r.level, 1);
	/* T[3] as a PTE maps page 0x700000 */
	gset(t + 8 * 3, 0x700000 | PWU);
	ck_assert_int_eq(fx_fault(via_pt, SHADOW_ACC_USER, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, 0x700000);
}
END_TEST

START_TEST(test_hostile_table_reached_with_different_rights)
{
	/* one PD reached from PDPT[0] (user, writable) and PDPT[1] (supervisor,
	 * read-only, NX); each path gets its own rights */
	gpa_t pdpt = new_table(), pd = new_table();
	gva_t a = 0x000000000001000ull, b = (1ull << 30) | 0x1000;
	struct shadow_fault_result r;
	uint64_t sa, sb;

	gset(TABLES_GPA, pdpt | PWU);
	gset(pdpt, pd | PWU);
	gset(pdpt + 8, pd | X86_PTE_P | X86_PTE_NX);
	gset(pd, 0x200000 | PWU | X86_PTE_PS | X86_PTE_D);
	ck_assert_int_eq(fx_fault(a, SHADOW_ACC_WRITE | SHADOW_ACC_USER, &r), SHADOW_FILLED);
	ck_assert_int_eq(fx_fault(b, 0, &r), SHADOW_FILLED);
	sa = shadow_leaf(a);
	sb = shadow_leaf(b);
	ck_assert_uint_eq(sa & (X86_PTE_W | X86_PTE_U | X86_PTE_NX), X86_PTE_W | X86_PTE_U);
	ck_assert_uint_eq(sb & (X86_PTE_W | X86_PTE_U | X86_PTE_NX), X86_PTE_NX);
	ck_assert_uint_eq(sa & X86_PTE_ADDR_MASK, sb & X86_PTE_ADDR_MASK);
	ck_assert_int_eq(fx_fault(b, SHADOW_ACC_USER, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_P | X86_PF_U);
	ck_assert_int_eq(fx_fault(b, SHADOW_ACC_WRITE, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_P | X86_PF_W);
	ck_assert_int_eq(fx_fault(b, SHADOW_ACC_FETCH, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_P | X86_PF_I);
	ck_assert_int_eq(fx_fault(a, SHADOW_ACC_FETCH | SHADOW_ACC_USER, &r), SHADOW_FILLED);
}
END_TEST

START_TEST(test_hostile_pointers_past_ram)
{
	struct shadow_fault_result r;
	gpa_t pml4e = TABLES_GPA;

	gset(pml4e, RAM_SIZE | PWU); /* the PDPT would be just past RAM */
	ck_assert_int_eq(fx_fault(0x1000, 0, &r), SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_TABLE_OUTSIDE_RAM);
	ck_assert_uint_eq(r.gpa, RAM_SIZE);
	ck_assert_uint_eq(gget(pml4e), RAM_SIZE | PWU); /* no A on an error */
	/* a leaf into the pool's MPA: outside RAM, never mapped */
	gmap(1ull << 39, 1, POOL_BASE | PWU, PWU);
	ck_assert_int_eq(fx_fault(1ull << 39, 0, &r), SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_PAGE_OUTSIDE_RAM);
	ck_assert_uint_eq(r.gpa, POOL_BASE);
	ck_assert(!(shadow_leaf(1ull << 39) & X86_PTE_P));
	/* a 1 GiB page over the end of RAM: inside is fine, past is not */
	gmap(2ull << 39, 3, 0 | PWU | X86_PTE_PS, PWU);
	ck_assert_int_eq(fx_fault((2ull << 39) + RAM_SIZE - 0x1000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, RAM_SIZE - 0x1000);
	ck_assert_int_eq(fx_fault((2ull << 39) + RAM_SIZE, 0, &r), SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_PAGE_OUTSIDE_RAM);
	ck_assert_uint_eq(r.gpa, RAM_SIZE);
}
END_TEST

START_TEST(test_hostile_cr3_zero_and_outside_ram)
{
	struct shadow_fault_result r;

	ck_assert(shadow_set_cr3(fx.s, 0));
	ck_assert_int_eq(fx_fault(0x1000, SHADOW_ACC_WRITE, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_W);
	ck_assert_int_eq(r.level, 4);
	ck_assert(shadow_set_cr3(fx.s, RAM_SIZE + 0x3000));
	ck_assert_int_eq(fx_fault(0x1000, 0, &r), SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_TABLE_OUTSIDE_RAM);
	ck_assert(shadow_set_cr3(fx.s, X86_BIT(39)));
	ck_assert_int_eq(fx_fault(0x1000, 0, &r), SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_TABLE_OUTSIDE_RAM);
}
END_TEST

START_TEST(test_hostile_noncanonical_is_gp)
{
	struct shadow_fault_result r;

	ck_assert_int_eq(fx_fault(0x0000800000000000ull, 0, &r), SHADOW_GUEST_GP);
	ck_assert_int_eq(fx.last[SHADOW_EV_GUEST_FAULT].vector, X86_EXC_GP);
	ck_assert_int_eq(fx_fault(0xffff7fffffffffffull, SHADOW_ACC_USER, &r), SHADOW_GUEST_GP);
	shadow_invlpg(fx.s, 0x0000800000000000ull); /* a no-op, not a crash */
}
END_TEST

START_TEST(test_hostile_reserved_slot_is_error)
{
	struct shadow_fault_result r;

	/* even if the guest maps something there, it never reaches the shadow */
	gset(TABLES_GPA + 8 * HV_INDEX, new_table() | PWU);
	ck_assert_int_eq(fx_fault(SHADOWVM_ABI_RESERVED_VA_BASE + 0x5000, SHADOW_ACC_WRITE, &r),
			 SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_RESERVED_SLOT);
	shadow_invlpg(fx.s, SHADOWVM_ABI_RESERVED_VA_BASE);
	ck_assert_int_eq(fx_check_invariants(), 0);
}
END_TEST

START_TEST(test_hostile_bad_access_is_error)
{
	struct shadow_fault_result r;

	ck_assert_int_eq(fx_fault(0x1000, SHADOW_ACC_WRITE | SHADOW_ACC_FETCH, &r), SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_BAD_ARG);
	ck_assert_int_eq(fx_fault(0x1000, X86_PF_RSVD, &r), SHADOW_ERROR);
}
END_TEST

/* ---- 4. A/D races: another vCPU writes an entry during the walk ---- */

START_TEST(test_ad_race_walks_again)
{
	struct shadow_fault_result r;
	struct shadow_stats st;
	gpa_t pte = gmap(0x5000, 1, 0x300000 | PWU, PWU);

	fx.mem.race = 3; /* the 4th cmpxchg (the PTE's) finds NX set meanwhile */
	fx.mem.race_bits = X86_PTE_NX;
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(gget(pte), 0x300000 | PWU | X86_PTE_A | X86_PTE_NX);
	ck_assert(shadow_leaf(0x5000) & X86_PTE_NX); /* the second walk's view */
	shadow_get_stats(fx.s, &st);
	ck_assert_uint_eq(st.ad_retries, 1);
	ck_assert_uint_eq(st.a_sets, 4);
	/* a fetch now faults on the new NX bit */
	ck_assert_int_eq(fx_fault(0x5000, SHADOW_ACC_FETCH, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_P | X86_PF_I);
}
END_TEST

START_TEST(test_ad_race_forever_returns_retry)
{
	struct shadow_fault_result r;
	gpa_t pte = gmap(0x5000, 1, 0x300000 | PWU, PWU);

	fx.mem.race_always = true;
	fx.mem.race_bits = X86_PTE_PWT; /* flipped before every cmpxchg: each loses */
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_RETRY);
	ck_assert_uint_eq(gget(pte) & X86_PTE_A, 0);
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
}
END_TEST

/* ---- 5. the paging-mode descriptor ---- */

static bool same_walk(enum shadow_walk_status sa, const struct shadow_walk *a,
		      enum shadow_walk_status sb, const struct shadow_walk *b)
{
	if (sa != sb || a->depth != b->depth || a->level != b->level || a->pferr != b->pferr ||
	    a->bad_gpa != b->bad_gpa || (sa == SHADOW_WALK_OK && a->gpa != b->gpa) ||
	    memcmp(&a->rights, &b->rights, sizeof(a->rights)))
		return false;
	for (int level = SHADOW_LEVELS; level > SHADOW_LEVELS - a->depth; level--)
		if (a->pte[level] != b->pte[level] || a->pte_gpa[level] != b->pte_gpa[level])
			return false;
	return true;
}

/* The walker folds the 4-level descriptor into constants; any other
 * descriptor takes the generic path, the one a new paging mode will use.  A
 * copy of the same descriptor must walk exactly as the folded one: over
 * pseudo-random tables (huge pages, reserved bits, NX, clean and dirty
 * leaves), every access kind, under every control setting. */
START_TEST(test_walk_mode_descriptor_generic_path_agrees)
{
	static const unsigned accs[] = { 0,
					 SHADOW_ACC_WRITE,
					 SHADOW_ACC_FETCH,
					 SHADOW_ACC_USER,
					 SHADOW_ACC_USER | SHADOW_ACC_WRITE,
					 SHADOW_ACC_USER | SHADOW_ACC_FETCH };
	const uint64_t bits[] = { X86_PTE_W,  X86_PTE_U,   X86_PTE_A,   X86_PTE_D,
				  X86_PTE_NX, X86_PTE_PAT, X86_BIT(13), X86_BIT(45) };
	gpa_t leaves[256];
	struct shadow_mode copy = shadow_mode_long4;
	struct shadow_mem mem = fake_mem_accessor(&fx.mem);
	uint64_t seed = 0x2545f4914f6cdd1dull;
	unsigned walks = 0;

	for (unsigned j = 0; j < 256; j++) {
		gva_t gva = (gva_t)(j & 1) << 39 | (gva_t)(j & 3) << 30 | (gva_t)(j & 15) << 21 |
			    (gva_t)j << 12;
		int level = 1 + (int)(j % 2);
		uint64_t leaf = (level == 1 ? 0x200000 + j * 0x1000ull : 0x400000) | X86_PTE_P;

		for (unsigned k = 0; k < 6; k++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			if ((seed >> 33) % 2 == 0)
				leaf |= bits[k];
		}
		if (level > 1 && (seed >> 40) % 8)
			leaf |= X86_PTE_PS;
		leaves[j] = gmap(gva, level, leaf, (seed >> 50) % 4 ? PWU : PWU | X86_PTE_NX);
	}
	/* 1 GiB pages and reserved bits last: later maps must not follow them */
	for (unsigned j = 6; j < 16; j += 9) {
		gva_t gva = (gva_t)(j & 1) << 39 | (gva_t)(j & 3) << 30;
		gpa_t pdpt = gget(entry_gpa(TABLES_GPA, gva, 4)) & X86_PTE_ADDR_MASK;

		gset(entry_gpa(pdpt, gva, 3), 0x40000000 | PWU | X86_PTE_PS | (j & 1 ? ADW : 0));
	}
	for (unsigned j = 0; j < 256; j++)
		if ((j * 7) % 8 < 2)
			gset(leaves[j], gget(leaves[j]) | bits[6 + j % 2]);
	for (unsigned c = 0; c < 32; c++) {
		struct shadow_cpu cpu = { .cr0_wp = c & 1,
					  .cr4_smep = c & 2,
					  .cr4_smap = c & 4,
					  .rflags_ac = c & 8,
					  .efer_nxe = c & 16,
					  .gbpages = c & 1,
					  .maxphyaddr = 40 };
		struct shadow_walk_env folded = { &shadow_mode_long4, &mem, &cpu, TABLES_GPA,
						  NULL };
		struct shadow_walk_env generic = { &copy, &mem, &cpu, TABLES_GPA, NULL };

		for (unsigned j = 0; j < 260; j++) {
			gva_t gva = j >= 256 ? 0x0000800000000000ull + j : /* non-canonical */
					    (gva_t)(j & 1) << 39 | (gva_t)(j & 3) << 30 |
						    (gva_t)(j & 15) << 21 | (gva_t)j << 12 | 0x123;

			for (unsigned a = 0; a < sizeof(accs) / sizeof(accs[0]); a++) {
				struct shadow_walk wa, wb;
				enum shadow_walk_status sa =
					shadow_walk(&folded, gva, accs[a], &wa);
				enum shadow_walk_status sb =
					shadow_walk(&generic, gva, accs[a], &wb);

				CHECK(same_walk(sa, &wa, sb, &wb),
				      "gva 0x%llx access 0x%x cpu %u: folded %d level %d pferr 0x%x, "
				      "generic %d level %d pferr 0x%x",
				      (unsigned long long)gva, accs[a], c, sa, wa.level, wa.pferr,
				      sb, wb.level, wb.pferr);
				walks++;
			}
		}
	}
	ck_assert_uint_eq(walks, 32 * 260 * 6);
}
END_TEST

static void add_walk_tcases(Suite *s, const struct fx_engine *en)
{
	TCase *tc;

	tc = fx_tcase(s, "exhaustive", en, NULL);
	tcase_add_unchecked_fixture(tc, combos_open, combos_close);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_walk_exhaustive_table, 0, EX_ITERATIONS);

	tc = fx_tcase(s, "reserved", en, NULL);
	tcase_add_loop_test(tc, test_walk_reserved_bit_faults, 0, 2 * W_COUNT);
	tcase_add_test(tc, test_walk_1g_without_support_is_reserved);
	tcase_add_test(tc, test_walk_reserved_upper_level_stops_walk);
	tcase_add_test(tc, test_walk_maxphyaddr_52_reserves_no_address_bit);
	tcase_add_test(tc, test_walk_pte_bit7_is_pat_not_ps);
	tcase_add_test(tc, test_walk_huge_pat_moves_to_bit7);
	tcase_add_test(tc, test_set_cr3_reserved_bits_gp);

	tc = fx_tcase(s, "hostile", en, NULL);
	tcase_add_test(tc, test_hostile_self_referencing_pml4);
	tcase_add_test(tc, test_hostile_table_shared_at_two_levels);
	tcase_add_test(tc, test_hostile_table_reached_with_different_rights);
	tcase_add_test(tc, test_hostile_pointers_past_ram);
	tcase_add_test(tc, test_hostile_cr3_zero_and_outside_ram);
	tcase_add_test(tc, test_hostile_noncanonical_is_gp);
	tcase_add_test(tc, test_hostile_reserved_slot_is_error);
	tcase_add_test(tc, test_hostile_bad_access_is_error);

	tc = fx_tcase(s, "ad_race", en, NULL);
	tcase_add_test(tc, test_ad_race_walks_again);
	tcase_add_test(tc, test_ad_race_forever_returns_retry);
}

Suite *shadow_walk_suite(void)
{
	Suite *s = suite_create("shadow_walk");
	TCase *tc;

	add_walk_tcases(s, &fx_vtlb);
	add_walk_tcases(s, &fx_cache);
	tc = fx_tcase(s, "mode", &fx_vtlb, NULL);
	tcase_add_test(tc, test_walk_mode_descriptor_generic_path_agrees);
	shadow_walk_mode_tcases(s);
	return s;
}
