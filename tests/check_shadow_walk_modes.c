/* The walker in every guest paging mode (SDM 3A §4.3 32-bit, §4.4 PAE,
 * §4.5 5-level), and the engine in each mode.  Each exhaustive table runs
 * the walker and its A/D update over every combination of the entries'
 * bits, the access and the control bits, against a reference written here
 * from the SDM's tables, bit by bit: it uses none of the walker's masks. */
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "shadow_fixture.h"
#include "walk.h"

/* ---- the reference: what every mode shares ---- */

struct mref {
	bool fault;
	uint32_t pferr;
	int level; /* leaf level, or where the walk stopped */
	int depth; /* entries read from memory */
	bool u, w, nx;
	gpa_t gpa;
};

static struct mref ref_fault(uint32_t pferr, int level, int depth)
{
	return (struct mref){ .fault = true, .pferr = pferr, .level = level, .depth = depth };
}

/* The access's own error-code bits (§4.7): I/D only for a fetch with SMEP,
 * or with NXE where entries have XD (PAE, IA-32e; never 32-bit paging). */
static uint32_t ref_why(enum kind k, bool user, const struct ctl *c, bool has_xd)
{
	return (k == WR ? X86_PF_W : 0) | (user ? X86_PF_U : 0) |
	       (k == EX && (c->smep || (has_xd && c->nxe)) ? X86_PF_I : 0);
}

/* Rights combined, then checked on the whole translation (§4.6). */
static struct mref ref_finish(struct mref r, enum kind k, bool user, const struct ctl *c,
			      uint32_t why)
{
	if (!ref_allowed(r.u, r.w, r.nx, k, user, c))
		return ref_fault(why | X86_PF_P, r.level, r.depth);
	return r;
}

static const enum kind kinds[] = { RD, WR, EX };

/* 4-byte guest memory (32-bit paging entries). */
static uint32_t get32(gpa_t gpa)
{
	uint32_t v;

	memcpy(&v, fx.ram + gpa, 4);
	return v;
}

static void set32(gpa_t gpa, uint32_t v)
{
	memcpy(fx.ram + gpa, &v, 4);
}

/* Bits of `mask`, each on iff the matching bit of `n` is (n's bit i picks
 * the i-th set bit of mask). */
static uint64_t spread(uint64_t mask, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; mask; i++, mask &= mask - 1)
		if (n & (1u << i))
			v |= mask & -mask;
	return v;
}

/* The walk agrees with the reference: status, error code, level, depth,
 * rights and address. */
static void check_walk(enum shadow_walk_status st, const struct shadow_walk *w,
		       const struct mref *e, const char *d)
{
	CHECK(st == (e->fault ? SHADOW_WALK_PF : SHADOW_WALK_OK), "status %d: %s", st, d);
	CHECK(w->level == e->level, "level %d, want %d: %s", w->level, e->level, d);
	CHECK(w->depth == e->depth, "depth %d, want %d: %s", w->depth, e->depth, d);
	if (e->fault) {
		CHECK(w->pferr == e->pferr, "pferr 0x%x, want 0x%x: %s", w->pferr, e->pferr, d);
		return;
	}
	CHECK(w->gpa == e->gpa, "gpa 0x%llx, want 0x%llx: %s", (unsigned long long)w->gpa,
	      (unsigned long long)e->gpa, d);
	CHECK(w->rights.user == e->u && w->rights.write == e->w && w->rights.nx == e->nx,
	      "rights u%d w%d nx%d, want u%d w%d nx%d: %s", w->rights.user, w->rights.write,
	      w->rights.nx, e->u, e->w, e->nx, d);
}

/* ---- 1. 32-bit paging (§4.3, tables 4-4 to 4-6) ---- */

/* PDE 3 (bytes 12..15: the high half of its quadword), PTE 6 (the low
 * half): both halves of a quadword get their A/D update. */
#define L32_PD TABLES_GPA
#define L32_PT (TABLES_GPA + 0x1000)
#define L32_GVA ((3u << 22) | (6u << 12) | 0x123u)
#define L32_PDE_AT (L32_PD + 4 * 3)
#define L32_PTE_AT (L32_PT + 4 * 6)
#define L32_PAGE_4K 0x00300000u
#define L32_PAGE_4M 0x00400000u
#define L32_SENTINEL 0x5a5a5a5au
#define L32_MAXPHY 36

/* The PDE's and PTE's bits varied (SDM table 4-4/4-5/4-6 positions). */
#define L32_PDE_BITS                                                                    \
	(X86_BIT(0) | X86_BIT(1) | X86_BIT(2) | X86_BIT(7) | X86_BIT(6) | X86_BIT(13) | \
	 X86_BIT(17) | X86_BIT(21))
#define L32_PTE_BITS (X86_BIT(0) | X86_BIT(1) | X86_BIT(2) | X86_BIT(6))

/* Straight from §4.3: a PDE with PS = 1 maps a 4 MiB page only with
 * CR4.PSE (PS is ignored otherwise); in such a PDE, without PSE-36, bits
 * 21:13 are reserved; with it, M = min(MAXPHYADDR, 40): bits (M-20):13
 * are address bits (M-1):32 and bits 21:(M-19) reserved.  Nothing else is
 * reserved in 32-bit paging and there is no XD. */
static struct mref ref_legacy32(uint32_t pde, uint32_t pte, enum kind k, bool user,
				const struct ctl *c, bool pse, bool pse36, unsigned maxphy)
{
	uint32_t why = ref_why(k, user, c, false);
	struct mref r = { .nx = false };

	if (!(pde & 1))
		return ref_fault(why, 2, 1);
	if (pse && (pde & 0x80)) {
		unsigned m = maxphy < 40 ? maxphy : 40;

		for (unsigned b = 13; b <= 21; b++)
			if (((pde >> b) & 1) && (!pse36 || b >= m - 19))
				return ref_fault(why | X86_PF_P | X86_PF_RSVD, 2, 1);
		r.level = 2;
		r.depth = 1;
		r.u = pde & 4;
		r.w = pde & 2;
		r.gpa = (pde & 0xffc00000u) + ((gpa_t)((pde >> 13) & 0xff) << 32) +
			(L32_GVA & 0x3fffff);
		return ref_finish(r, k, user, c, why);
	}
	if (!(pte & 1))
		return ref_fault(why, 1, 2);
	r.level = 1;
	r.depth = 2;
	r.u = (pde & 4) && (pte & 4);
	r.w = (pde & 2) && (pte & 2);
	r.gpa = (pte & 0xfffff000u) + (L32_GVA & 0xfff);
	return ref_finish(r, k, user, c, why);
}

struct ctl32 {
	struct ctl c;
	bool pse, pse36;
};

static struct ctl32 ctl32_of(unsigned i)
{
	return (struct ctl32){ .c = { .wp = i & 1, .nxe = i & 2, .smep = i & 4 },
			       .pse = i & 8,
			       .pse36 = i & 16 };
}

#define L32_CTLS 32
#define L32_CASES_PER_CTL (256u * 16u * 3u * 2u)

/* Where PTE 6 of the table that `pde` names lives (PDE bits 31:12 name
 * it, table 4-5: bits 13, 17, 21 move it too). */
static gpa_t l32_pte_at(uint32_t pde)
{
	return (pde & 0xfffff000u) + 4 * 6;
}

/* The PDE and, in the table it names, the PTE, each with a sentinel in
 * the other half of its quadword. */
static void l32_build(uint32_t pde, uint32_t pte)
{
	set32(L32_PD + 4 * 2, L32_SENTINEL);
	set32(L32_PDE_AT, pde);
	set32(l32_pte_at(pde), pte);
	set32(l32_pte_at(pde) + 4, L32_SENTINEL);
}

/* A/D afterwards (§4.8): A in each entry used, D in the leaf on a write,
 * nothing on a fault; the other half of each quadword untouched. */
static void l32_check_ad(uint32_t pde, uint32_t pte, const struct mref *e, enum kind k,
			 const char *d)
{
	uint32_t a = e->fault ? 0 : 0x20, dirty = !e->fault && k == WR ? 0x40 : 0;
	bool big = !e->fault && e->level == 2;
	gpa_t at = l32_pte_at(pde);

	CHECK(get32(L32_PDE_AT) == (pde | a | (big ? dirty : 0)), "PDE 0x%x: %s", get32(L32_PDE_AT),
	      d);
	CHECK(get32(at) == (e->fault || big ? pte : pte | a | dirty), "PTE 0x%x: %s", get32(at), d);
	CHECK(get32(L32_PD + 8) == L32_SENTINEL && get32(at + 4) == L32_SENTINEL,
	      "neighbour entry changed: %s", d);
}

START_TEST(test_walk_legacy32_exhaustive)
{
	struct ctl32 x = ctl32_of((unsigned)_i);
	struct shadow_cpu cpu = { .cr0_wp = x.c.wp,
				  .cr4_smep = x.c.smep,
				  .efer_nxe = x.c.nxe,
				  .maxphyaddr = L32_MAXPHY,
				  .cr4_pse = x.pse,
				  .pse36 = x.pse36 };
	struct shadow_mem mem = fake_mem_accessor(&fx.mem);
	struct shadow_walk_env env = { &shadow_mode_legacy32, &mem, &cpu, L32_PD, NULL };
	unsigned n = 0;

	for (unsigned pd = 0; pd < 256; pd++)
		for (unsigned pt = 0; pt < 16; pt++)
			for (unsigned ki = 0; ki < 3; ki++)
				for (int user = 0; user < 2; user++) {
					uint32_t pde = (uint32_t)spread(L32_PDE_BITS, pd);
					uint32_t pte = (uint32_t)spread(L32_PTE_BITS, pt);
					enum kind k = kinds[ki];
					struct mref e;
					struct shadow_walk w;
					uint64_t set[SHADOW_WALK_LEVELS + 1];
					enum shadow_walk_status st;
					char d[160];

					pde |= (pde & 0x80) ? L32_PAGE_4M : L32_PT;
					pte |= L32_PAGE_4K;
					l32_build(pde, pte);
					e = ref_legacy32(pde, pte, k, user, &x.c, x.pse, x.pse36,
							 L32_MAXPHY);
					snprintf(d, sizeof(d),
						 "pde=0x%x pte=0x%x k=%d user=%d wp=%d nxe=%d "
						 "smep=%d pse=%d pse36=%d",
						 pde, pte, k, user, x.c.wp, x.c.nxe, x.c.smep,
						 x.pse, x.pse36);
					st = shadow_walk(&env, L32_GVA, acc_of(k, user), &w);
					check_walk(st, &w, &e, d);
					CHECK(w.pte_gpa[2] == L32_PDE_AT && w.pte[2] == pde,
					      "PDE read: %s", d);
					CHECK(w.depth < 2 || (w.pte_gpa[1] == l32_pte_at(pde) &&
							      w.pte[1] == pte),
					      "PTE read: %s", d);
					if (st == SHADOW_WALK_OK)
						CHECK(shadow_walk_set_ad(&mem, &w, acc_of(k, user),
									 set) == SHADOW_AD_OK,
						      "A/D: %s", d);
					l32_check_ad(pde, pte, &e, k, d);
					n++;
				}
	ck_assert_uint_eq(n, L32_CASES_PER_CTL);
}
END_TEST

/* A 4 MiB PDE's bits 21:13 under every MAXPHYADDR, with and without
 * PSE-36: address bits (M-1):32 in bits (M-20):13 or reserved (table 4-4). */
START_TEST(test_walk_legacy32_pse36_maxphyaddr)
{
	struct shadow_mem mem = fake_mem_accessor(&fx.mem);

	for (unsigned maxphy = 32; maxphy <= 52; maxphy++)
		for (int pse36 = 0; pse36 < 2; pse36++)
			for (unsigned b = 13; b <= 21; b++) {
				struct shadow_cpu cpu = { .cr0_wp = true,
							  .maxphyaddr = maxphy,
							  .cr4_pse = true,
							  .pse36 = pse36 };
				struct shadow_walk_env env = { &shadow_mode_legacy32, &mem, &cpu,
							       L32_PD, NULL };
				unsigned m = maxphy < 40 ? maxphy : 40;
				bool address = pse36 && b + 19 < m; /* b <= M-20 */
				uint32_t pde = L32_PAGE_4M | 0x83u | (1u << b);
				struct shadow_walk w;
				enum shadow_walk_status st;

				l32_build(pde, 0);
				st = shadow_walk(&env, L32_GVA, 0, &w);
				if (address) {
					ck_assert_int_eq(st, SHADOW_WALK_OK);
					ck_assert_uint_eq(w.gpa, L32_PAGE_4M + X86_BIT(b + 19) +
									 (L32_GVA & 0x3fffff));
				} else {
					ck_assert_int_eq(st, SHADOW_WALK_PF);
					ck_assert_uint_eq(w.pferr, X86_PF_P | X86_PF_RSVD);
				}
			}
}
END_TEST

START_TEST(test_walk_legacy32_gva_above_4g_is_gp)
{
	struct shadow_mem mem = fake_mem_accessor(&fx.mem);
	struct shadow_cpu cpu = { .cr0_wp = true, .maxphyaddr = 40 };
	struct shadow_walk_env env = { &shadow_mode_legacy32, &mem, &cpu, L32_PD, NULL };
	struct shadow_walk w;

	ck_assert_int_eq(shadow_walk(&env, X86_BIT(32) | L32_GVA, 0, &w), SHADOW_WALK_GP);
	ck_assert_int_eq(w.depth, 0);
	env.mode = &shadow_mode_pae;
	ck_assert_int_eq(shadow_walk(&env, 0xffffffff80000000ull, 0, &w), SHADOW_WALK_GP);
}
END_TEST

/* A 4-byte A/D update whose quadword's other half changes meanwhile
 * retries and keeps that change; one whose own half changes walks again. */
START_TEST(test_walk_legacy32_ad_race)
{
	struct shadow_mem mem = fake_mem_accessor(&fx.mem);
	struct shadow_cpu cpu = { .cr0_wp = true, .maxphyaddr = 40 };
	struct shadow_walk_env env = { &shadow_mode_legacy32, &mem, &cpu, L32_PD, NULL };
	uint64_t set[SHADOW_WALK_LEVELS + 1];
	struct shadow_walk w;

	l32_build(L32_PT | 7, L32_PAGE_4K | 7);
	ck_assert_int_eq(shadow_walk(&env, L32_GVA, SHADOW_ACC_WRITE, &w), SHADOW_WALK_OK);
	fx.mem.race = 0; /* the PDE's cmpxchg: the neighbour (low half) changes */
	fx.mem.race_bits = 0x100;
	ck_assert_int_eq(shadow_walk_set_ad(&mem, &w, SHADOW_ACC_WRITE, set), SHADOW_AD_OK);
	ck_assert_uint_eq(get32(L32_PD + 8), L32_SENTINEL ^ 0x100);
	ck_assert_uint_eq(get32(L32_PDE_AT), L32_PT | 0x27);
	ck_assert_uint_eq(get32(L32_PTE_AT), L32_PAGE_4K | 0x67);
	ck_assert_uint_eq(set[2], X86_PTE_A);
	ck_assert_uint_eq(set[1], X86_PTE_A | X86_PTE_D);

	l32_build(L32_PT | 7, L32_PAGE_4K | 7);
	ck_assert_int_eq(shadow_walk(&env, L32_GVA, 0, &w), SHADOW_WALK_OK);
	fx.mem.race = 0; /* the PDE itself changes (high half) */
	fx.mem.race_bits = 0x100ull << 32;
	ck_assert_int_eq(shadow_walk_set_ad(&mem, &w, 0, set), SHADOW_AD_CHANGED);
	ck_assert_uint_eq(get32(L32_PDE_AT), L32_PT | 0x107);
}
END_TEST

/* ---- 2. PAE paging (§4.4, tables 4-8 to 4-11) ---- */

#define PAE_PDPT (TABLES_GPA + 0x20) /* CR3 bits 31:5: 32-byte aligned */
#define PAE_PD (TABLES_GPA + 0x1000)
#define PAE_PT (TABLES_GPA + 0x2000)
#define PAE_GVA ((2ull << 30) | (5ull << 21) | (7ull << 12) | 0x456)
#define PAE_PDE_AT (PAE_PD + 8 * 5)
#define PAE_PTE_AT (PAE_PT + 8 * 7)
#define PAE_PAGE_4K 0x00300000ull
#define PAE_PAGE_2M 0x00600000ull
#define PAE_MAXPHY 36

/* P, R/W, U/S, D, PS, 13 (reserved in a 2 MiB PDE), 36 (= M, reserved),
 * 52 (reserved in PAE, ignored in IA-32e), XD. */
#define PAE_PDE_BITS                                                                    \
	(X86_BIT(0) | X86_BIT(1) | X86_BIT(2) | X86_BIT(6) | X86_BIT(7) | X86_BIT(13) | \
	 X86_BIT(36) | X86_BIT(52) | X86_BIT(63))
#define PAE_PTE_BITS                                                                     \
	(X86_BIT(0) | X86_BIT(1) | X86_BIT(2) | X86_BIT(6) | X86_BIT(36) | X86_BIT(52) | \
	 X86_BIT(63))

/* Straight from §4.4: the PDPTE register (checked at load) gives only the
 * PD; in the PDE and PTE bits 62:M are reserved, XD (63) without NXE, and
 * bits 20:13 of a 2 MiB PDE; PS = 1 maps a 2 MiB page whatever CR4.PSE. */
static bool pae_reserved(uint64_t e, bool nxe, bool page_2m)
{
	for (unsigned b = PAE_MAXPHY; b <= 62; b++)
		if ((e >> b) & 1)
			return true;
	if (page_2m)
		for (unsigned b = 13; b <= 20; b++)
			if ((e >> b) & 1)
				return true;
	return ((e >> 63) & 1) && !nxe;
}

static struct mref ref_pae(bool pdpte_p, uint64_t pde, uint64_t pte, enum kind k, bool user,
			   const struct ctl *c)
{
	uint32_t why = ref_why(k, user, c, true);
	bool big = pde & 0x80;
	struct mref r;

	if (!pdpte_p)
		return ref_fault(why, 3, 0);
	if (!(pde & 1))
		return ref_fault(why, 2, 1);
	if (pae_reserved(pde, c->nxe, big))
		return ref_fault(why | X86_PF_P | X86_PF_RSVD, 2, 1);
	if (big) {
		r = (struct mref){ .level = 2, .depth = 1, .u = pde & 4, .w = pde & 2 };
		r.nx = c->nxe && (pde >> 63);
		r.gpa = (pde & 0x000fffffffe00000ull) + (PAE_GVA & 0x1fffff);
		return ref_finish(r, k, user, c, why);
	}
	if (!(pte & 1))
		return ref_fault(why, 1, 2);
	if (pae_reserved(pte, c->nxe, false))
		return ref_fault(why | X86_PF_P | X86_PF_RSVD, 1, 2);
	r = (struct mref){ .level = 1, .depth = 2 };
	r.u = (pde & 4) && (pte & 4);
	r.w = (pde & 2) && (pte & 2);
	r.nx = c->nxe && ((pde >> 63) || (pte >> 63));
	r.gpa = (pte & 0x000ffffffffff000ull) + (PAE_GVA & 0xfff);
	return ref_finish(r, k, user, c, why);
}

#define PAE_CTLS 8 /* PDPTE.P x WP x NXE */
#define PAE_CASES_PER_CTL (512u * 128u * 3u * 2u)

/* Where PTE 7 of the table that `pde` names lives (bit 13 of a PDE that
 * names a table is an address bit; one naming a table past RAM faults on
 * a reserved bit first, so only its low 32 bits are kept). */
static gpa_t pae_pte_at(uint64_t pde)
{
	return (pde & 0xfffff000u) + 8 * 7;
}

static void pae_check_ad(uint64_t pde, uint64_t pte, const struct mref *e, enum kind k,
			 const char *d)
{
	uint64_t a = e->fault ? 0 : X86_PTE_A, dirty = !e->fault && k == WR ? X86_PTE_D : 0;
	bool big = !e->fault && e->level == 2;

	CHECK(gget(PAE_PDE_AT) == (pde | a | (big ? dirty : 0)), "PDE: %s", d);
	CHECK(gget(pae_pte_at(pde)) == (e->fault || big ? pte : pte | a | dirty), "PTE: %s", d);
}

START_TEST(test_walk_pae_exhaustive)
{
	struct ctl c = { .wp = _i & 1, .nxe = _i & 2 };
	bool pdpte_p = _i & 4;
	struct shadow_cpu cpu = { .cr0_wp = c.wp, .efer_nxe = c.nxe, .maxphyaddr = PAE_MAXPHY };
	struct shadow_mem mem = fake_mem_accessor(&fx.mem);
	uint64_t pdpte[4] = { 0, 0, pdpte_p ? PAE_PD | X86_PTE_P : PAE_PD, 0 };
	struct shadow_walk_env env = { &shadow_mode_pae, &mem, &cpu, PAE_PDPT, pdpte };
	unsigned n = 0;

	for (unsigned pd = 0; pd < 512; pd++)
		for (unsigned pt = 0; pt < 128; pt++)
			for (unsigned ki = 0; ki < 3; ki++)
				for (int user = 0; user < 2; user++) {
					uint64_t pde = spread(PAE_PDE_BITS, pd);
					uint64_t pte = spread(PAE_PTE_BITS, pt) | PAE_PAGE_4K;
					enum kind k = kinds[ki];
					uint64_t set[SHADOW_WALK_LEVELS + 1];
					struct shadow_walk w;
					enum shadow_walk_status st;
					struct mref e;
					char d[160];

					pde |= (pde & X86_PTE_PS) ? PAE_PAGE_2M : PAE_PT;
					gset(PAE_PDE_AT, pde);
					gset(pae_pte_at(pde), pte);
					e = ref_pae(pdpte_p, pde, pte, k, user, &c);
					snprintf(
						d, sizeof(d),
						"pdpte.p=%d pde=0x%llx pte=0x%llx k=%d user=%d wp=%d "
						"nxe=%d",
						pdpte_p, (unsigned long long)pde,
						(unsigned long long)pte, k, user, c.wp, c.nxe);
					st = shadow_walk(&env, PAE_GVA, acc_of(k, user), &w);
					check_walk(st, &w, &e, d);
					CHECK(w.depth < 1 || w.pte_gpa[2] == PAE_PDE_AT,
					      "PDE at: %s", d);
					if (st == SHADOW_WALK_OK)
						CHECK(shadow_walk_set_ad(&mem, &w, acc_of(k, user),
									 set) == SHADOW_AD_OK,
						      "A/D: %s", d);
					pae_check_ad(pde, pte, &e, k, d);
					n++;
				}
	/* the PDPTEs are registers: the PDPT in memory is never written */
	ck_assert_uint_eq(gget(PAE_PDPT + 16), 0);
	ck_assert_uint_eq(n, PAE_CASES_PER_CTL);
}
END_TEST

/* Each reserved bit of a present PDPTE (table 4-8: 2:1, 8:5, 63:M) fails
 * the load with #GP, one at a time, in each of the four; a PDPTE that is
 * not present may hold anything; the registers are left as they were. */
START_TEST(test_pae_load_pdptes_reserved_bits)
{
	struct shadow_mem mem = fake_mem_accessor(&fx.mem);
	struct shadow_cpu cpu = { .cr0_wp = true, .maxphyaddr = 40 };
	uint64_t regs[4] = { 1, 2, 3, 4 };
	unsigned rejected = 0;

	for (unsigned i = 0; i < 4; i++)
		for (unsigned b = 1; b < 64; b++) {
			bool reserved = (b >= 1 && b <= 2) || (b >= 5 && b <= 8) || b >= 40;

			for (unsigned j = 0; j < 4; j++)
				gset(PAE_PDPT + 8 * j, PAE_PD | X86_PTE_P);
			gset(PAE_PDPT + 8 * i, PAE_PD | X86_PTE_P | X86_BIT(b));
			if (b == 12)
				continue; /* an address bit: the PD moves, fine */
			ck_assert_int_eq(shadow_pae_load_pdptes(&mem, &cpu, PAE_PDPT, regs),
					 reserved ? SHADOW_PDPTE_GP : SHADOW_PDPTE_OK);
			if (reserved) {
				ck_assert_uint_eq(regs[0], 1);
				rejected++;
			} else {
				ck_assert_uint_eq(regs[i], PAE_PD | X86_PTE_P | X86_BIT(b));
				regs[0] = 1;
			}
			/* not present: the same bit is no reason to refuse */
			gset(PAE_PDPT + 8 * i, PAE_PD | X86_BIT(b));
			ck_assert_int_eq(shadow_pae_load_pdptes(&mem, &cpu, PAE_PDPT, regs),
					 SHADOW_PDPTE_OK);
			regs[0] = 1;
		}
	ck_assert_uint_eq(rejected, 4 * (2 + 4 + 24));
	/* CR3 bits 4:0 are ignored; a PDPT past RAM is outside */
	ck_assert_int_eq(shadow_pae_load_pdptes(&mem, &cpu, PAE_PDPT | 0x1f, regs),
			 SHADOW_PDPTE_OK);
	ck_assert_int_eq(shadow_pae_load_pdptes(&mem, &cpu, RAM_SIZE, regs), SHADOW_PDPTE_OUTSIDE);
}
END_TEST

/* ---- 3. 5-level paging (§4.5: PML5E as a PML4E; 57-bit canonical) ---- */

#define L5_GVA 0x00fa123456789123ull /* canonical in 57 bits, not in 48 */
#define L5_PAGE 0x00300000ull
#define L5_MAXPHY 40
/* P, R/W, U/S, PS (reserved in a PML5E and a PML4E), XD */
#define L5_TOP_BITS (X86_BIT(0) | X86_BIT(1) | X86_BIT(2) | X86_BIT(7) | X86_BIT(63))
#define L5_PTE_BITS (X86_BIT(0) | X86_BIT(1) | X86_BIT(2) | X86_BIT(6) | X86_BIT(63))
#define L5_CTLS 4
#define L5_CASES_PER_CTL (32u * 32u * 32u * 3u * 2u)

/* Straight from §4.5: top-down over PML5E, PML4E, PDPTE, PDE, PTE; P = 0
 * stops with P = 0; PS in a PML5E/PML4E, XD without NXE are reserved. */
static struct mref ref_long5(const uint64_t e[5], enum kind k, bool user, const struct ctl *c)
{
	uint32_t why = ref_why(k, user, c, true);
	struct mref r = { .u = true, .w = true, .level = 1, .depth = 5 };

	for (int i = 0; i < 5; i++) {
		int level = 5 - i;

		if (!(e[i] & 1))
			return ref_fault(why, level, i + 1);
		if ((((e[i] >> 7) & 1) && level >= 4) || ((e[i] >> 63) && !c->nxe))
			return ref_fault(why | X86_PF_P | X86_PF_RSVD, level, i + 1);
		r.u = r.u && (e[i] & 4);
		r.w = r.w && (e[i] & 2);
		r.nx = r.nx || (c->nxe && (e[i] >> 63));
	}
	r.gpa = L5_PAGE + (L5_GVA & 0xfff);
	return ref_finish(r, k, user, c, why);
}

/* A/D afterwards (§4.8): A in all five entries, D in the PTE on a write;
 * nothing on a fault. */
static void l5_check_ad(const gpa_t at[5], const uint64_t e[5], const struct mref *x, enum kind k,
			const char *d)
{
	for (int i = 0; i < 5; i++) {
		uint64_t want = e[i];

		if (!x->fault)
			want |= X86_PTE_A | (i == 4 && k == WR ? X86_PTE_D : 0);
		CHECK(gget(at[i]) == want, "level %d: 0x%llx: %s", 5 - i,
		      (unsigned long long)gget(at[i]), d);
	}
}

START_TEST(test_walk_long5_exhaustive)
{
	struct ctl c = { .wp = _i & 1, .nxe = _i & 2 };
	struct shadow_cpu cpu = { .cr0_wp = c.wp, .efer_nxe = c.nxe, .maxphyaddr = L5_MAXPHY };
	struct shadow_mem mem = fake_mem_accessor(&fx.mem);
	struct shadow_walk_env env = { &shadow_mode_long5, &mem, &cpu, TABLES_GPA, NULL };
	gpa_t table[5], at[5];
	unsigned n = 0;

	for (int i = 0; i < 5; i++) {
		table[i] = TABLES_GPA + (gpa_t)i * 0x1000;
		at[i] = table[i] + 8 * ((L5_GVA >> (48 - 9 * i)) & 511);
	}
	for (unsigned p5 = 0; p5 < 32; p5++)
		for (unsigned p4 = 0; p4 < 32; p4++)
			for (unsigned pt = 0; pt < 32; pt++)
				for (unsigned ki = 0; ki < 3; ki++)
					for (int user = 0; user < 2; user++) {
						uint64_t e[5] = {
							spread(L5_TOP_BITS, p5) | table[1],
							spread(L5_TOP_BITS, p4) | table[2],
							table[3] | 7,
							table[4] | 7,
							spread(L5_PTE_BITS, pt) | L5_PAGE,
						};
						enum kind k = kinds[ki];
						uint64_t set[SHADOW_WALK_LEVELS + 1];
						struct shadow_walk w;
						enum shadow_walk_status st;
						struct mref x;
						char d[128];

						for (int i = 0; i < 5; i++)
							gset(at[i], e[i]);
						x = ref_long5(e, k, user, &c);
						snprintf(
							d, sizeof(d),
							"pml5e=0x%llx pml4e=0x%llx pte=0x%llx k=%d "
							"user=%d wp=%d nxe=%d",
							(unsigned long long)e[0],
							(unsigned long long)e[1],
							(unsigned long long)e[4], k, user, c.wp,
							c.nxe);
						st = shadow_walk(&env, L5_GVA, acc_of(k, user), &w);
						check_walk(st, &w, &x, d);
						if (st == SHADOW_WALK_OK)
							CHECK(shadow_walk_set_ad(
								      &mem, &w, acc_of(k, user),
								      set) == SHADOW_AD_OK,
							      "A/D: %s", d);
						l5_check_ad(at, e, &x, k, d);
						n++;
					}
	ck_assert_uint_eq(n, L5_CASES_PER_CTL);
}
END_TEST

START_TEST(test_walk_long5_canonical_57)
{
	struct shadow_mem mem = fake_mem_accessor(&fx.mem);
	struct shadow_cpu cpu = { .cr0_wp = true, .maxphyaddr = 40 };
	struct shadow_walk_env env = { &shadow_mode_long5, &mem, &cpu, TABLES_GPA, NULL };
	uint64_t set[SHADOW_WALK_LEVELS + 1];
	struct shadow_walk w;

	ck_assert_int_eq(shadow_walk(&env, 0x0100000000000000ull, 0, &w), SHADOW_WALK_GP);
	ck_assert_int_eq(shadow_walk(&env, 0xfeffffffffffffffull, 0, &w), SHADOW_WALK_GP);
	/* a 57-bit address, every level present: A set in all five */
	for (int i = 0; i < 5; i++)
		gset(TABLES_GPA + (gpa_t)i * 0x1000 + 8 * ((L5_GVA >> (48 - 9 * i)) & 511),
		     (i < 4 ? TABLES_GPA + (gpa_t)(i + 1) * 0x1000 : L5_PAGE) | 7);
	ck_assert_int_eq(shadow_walk(&env, L5_GVA, SHADOW_ACC_WRITE, &w), SHADOW_WALK_OK);
	ck_assert_int_eq(w.depth, 5);
	ck_assert_int_eq(shadow_walk_set_ad(&mem, &w, SHADOW_ACC_WRITE, set), SHADOW_AD_OK);
	ck_assert_uint_eq(set[5], X86_PTE_A);
	ck_assert_uint_eq(set[1], X86_PTE_A | X86_PTE_D);
}
END_TEST

/* Each level of 5-level paging: bits M..51 reserved (P = 1, RSVD = 1 at
 * that level), bits 52..62 ignored (table 4-14 and its IA-32e fellows). */
START_TEST(test_walk_long5_reserved_address_bits)
{
	static const unsigned bits[] = { 40, 45, 51, 52, 58, 62 };
	struct shadow_mem mem = fake_mem_accessor(&fx.mem);
	struct shadow_cpu cpu = { .cr0_wp = true, .efer_nxe = true, .maxphyaddr = L5_MAXPHY };
	struct shadow_walk_env env = { &shadow_mode_long5, &mem, &cpu, TABLES_GPA, NULL };

	for (int level = 5; level >= 1; level--)
		for (unsigned b = 0; b < sizeof(bits) / sizeof(bits[0]); b++) {
			struct shadow_walk w;
			enum shadow_walk_status st;

			for (int i = 0; i < 5; i++) {
				gpa_t at = TABLES_GPA + (gpa_t)i * 0x1000 +
					   8 * ((L5_GVA >> (48 - 9 * i)) & 511);
				uint64_t e =
					(i < 4 ? TABLES_GPA + (gpa_t)(i + 1) * 0x1000 : L5_PAGE) |
					PWU;

				gset(at, 5 - i == level ? e | X86_BIT(bits[b]) : e);
			}
			st = shadow_walk(&env, L5_GVA, 0, &w);
			if (bits[b] <= 51) {
				ck_assert_int_eq(st, SHADOW_WALK_PF);
				ck_assert_uint_eq(w.pferr, X86_PF_P | X86_PF_RSVD);
				ck_assert_int_eq(w.level, level);
			} else {
				ck_assert_int_eq(st, SHADOW_WALK_OK);
				ck_assert_uint_eq(w.gpa, L5_PAGE + (L5_GVA & 0xfff));
			}
		}
}
END_TEST

/* 32-bit paging has no reserved bit in a PTE or in a PDE naming a table
 * (tables 4-5, 4-6): every bit set still translates. */
START_TEST(test_walk_legacy32_no_reserved_bits_in_4k)
{
	struct shadow_mem mem = fake_mem_accessor(&fx.mem);
	struct shadow_cpu cpu = { .cr0_wp = true, .maxphyaddr = 36, .cr4_pse = true };
	struct shadow_walk_env env = { &shadow_mode_legacy32, &mem, &cpu, L32_PD, NULL };
	struct shadow_walk w;

	l32_build(L32_PT | 0xf7fu, 0xffffffffu); /* PDE: all but PS (bit 7) */
	ck_assert_int_eq(shadow_walk(&env, L32_GVA, SHADOW_ACC_WRITE | SHADOW_ACC_USER, &w),
			 SHADOW_WALK_OK);
	ck_assert_uint_eq(w.gpa, 0xfffff000u | (L32_GVA & 0xfff));
	cpu.cr4_pse = false; /* PS ignored: bit 7 too */
	l32_build(L32_PT | 0xfffu, 0xffffffffu);
	ck_assert_int_eq(shadow_walk(&env, L32_GVA, SHADOW_ACC_WRITE | SHADOW_ACC_USER, &w),
			 SHADOW_WALK_OK);
	ck_assert_int_eq(w.level, 1);
}
END_TEST

/* ---- 4. the engine in each mode ---- */

static void fx_set_cpu(bool pse, bool pse36)
{
	fx.cpu.cr4_pse = pse;
	fx.cpu.pse36 = pse36;
	ck_assert(shadow_set_cpu(fx.s, &fx.cpu));
}

/* One hidden fault through the engine against the reference: a genuine
 * #PF with the exact error code, or a shadow leaf (4 KiB or 2 MiB) for
 * the reference's GPA that lets the access through and grants nothing the
 * guest does not: writable only over a dirty guest leaf (`leaf_dirty`,
 * read after the fault), supervisor-only for a WP = 0 supervisor write to
 * a read-only page (spte.h). */
static void engine_case(gva_t gva, const struct mref *e, enum kind k, bool user,
			const struct ctl *c, bool (*leaf_dirty)(const struct mref *), const char *d)
{
	struct shadow_fault_result r;
	enum shadow_status st;
	uint64_t spte;
	int level;

	shadow_flush(fx.s);
	st = fx_fault(gva, acc_of(k, user), &r);
	if (e->fault) {
		CHECK(st == SHADOW_GUEST_PF && r.pferr == e->pferr,
		      "status %d pferr 0x%x, want #PF 0x%x: %s", st, r.pferr, e->pferr, d);
		return;
	}
	CHECK(st == SHADOW_FILLED && r.gpa == e->gpa && r.level == e->level,
	      "status %d gpa 0x%llx level %d: %s", st, (unsigned long long)r.gpa, r.level, d);
	spte = shadow_map(gva, &level);
	CHECK((spte & (level == 2 ? X86_PTE_ADDR_2M_MASK : X86_PTE_ADDR_MASK)) ==
		      (e->gpa & (level == 2 ? ~0x1fffffull : X86_PAGE_MASK)),
	      "shadow 0x%llx maps the wrong page: %s", (unsigned long long)spte, d);
	CHECK(hw_allows(spte, k, user, c), "no progress, shadow 0x%llx: %s",
	      (unsigned long long)spte, d);
	for (unsigned k2 = 0; k2 < 3; k2++)
		for (int u2 = 0; u2 < 2; u2++) {
			if (!hw_allows(spte, kinds[k2], u2, c))
				continue;
			CHECK(ref_allowed(e->u, e->w, e->nx, kinds[k2], u2, c) ||
				      (kinds[k2] == WR && (spte & SHADOW_SPTE_WP0)),
			      "shadow 0x%llx grants %d/%d beyond the guest: %s",
			      (unsigned long long)spte, kinds[k2], u2, d);
			CHECK(kinds[k2] != WR || leaf_dirty(e) || (spte & SHADOW_SPTE_WP0),
			      "shadow writable over a clean guest leaf: %s", d);
		}
	if (spte & SHADOW_SPTE_WP0)
		CHECK(!c->wp && !(spte & X86_PTE_U), "WP=0 leaf 0x%llx: %s",
		      (unsigned long long)spte, d);
}

static uint32_t l32_engine_pde;

static bool l32_leaf_dirty(const struct mref *e)
{
	gpa_t at = e->level == 2 ? L32_PDE_AT : l32_pte_at(l32_engine_pde);

	return get32(at) & X86_PTE_D;
}

#define L32_ENGINE_CTLS 4 /* WP x CR4.PSE */

/* The 32-bit table through the engine (PSE-36 off: bits 13, 17, 21 of a
 * 4 MiB PDE all reserved). */
START_TEST(test_engine_legacy32_table)
{
	struct ctl c = { .wp = _i & 1, .nxe = true };
	bool pse = _i & 2;
	unsigned n = 0;

	fx.cpu.cr0_wp = c.wp;
	fx_set_cpu(pse, false);
	ck_assert_int_eq(shadow_set_paging(fx.s, SHADOW_PAGING_32, L32_PD), SHADOW_OK);
	for (unsigned pd = 0; pd < 256; pd++)
		for (unsigned pt = 0; pt < 16; pt++)
			for (unsigned ki = 0; ki < 3; ki++)
				for (int user = 0; user < 2; user++) {
					uint32_t pde = (uint32_t)spread(L32_PDE_BITS, pd);
					uint32_t pte =
						(uint32_t)spread(L32_PTE_BITS, pt) | L32_PAGE_4K;
					struct mref e;
					char d[128];

					pde |= (pde & 0x80) ? L32_PAGE_4M : L32_PT;
					l32_build(pde, pte);
					l32_engine_pde = pde;
					e = ref_legacy32(pde, pte, kinds[ki], user, &c, pse, false,
							 fx.cpu.maxphyaddr);
					snprintf(d, sizeof(d),
						 "pde=0x%x pte=0x%x k=%d user=%d wp=%d pse=%d", pde,
						 pte, kinds[ki], user, c.wp, pse);
					engine_case(L32_GVA, &e, kinds[ki], user, &c,
						    l32_leaf_dirty, d);
					n++;
				}
	ck_assert_uint_eq(n, 256 * 16 * 6);
}
END_TEST

static uint64_t pae_engine_pde;

static bool pae_leaf_dirty(const struct mref *e)
{
	return gget(e->level == 2 ? PAE_PDE_AT : pae_pte_at(pae_engine_pde)) & X86_PTE_D;
}

#define PAE_ENGINE_PDE_BITS \
	(X86_BIT(0) | X86_BIT(1) | X86_BIT(2) | X86_BIT(6) | X86_BIT(7) | X86_BIT(13) | X86_BIT(63))
#define PAE_ENGINE_PTE_BITS (X86_BIT(0) | X86_BIT(1) | X86_BIT(2) | X86_BIT(6) | X86_BIT(63))
#define PAE_ENGINE_CTLS 4 /* WP x NXE */

/* The PAE table through the engine (MAXPHYADDR 40: no address-reserved
 * bit varied here; the walker's table covers them). */
START_TEST(test_engine_pae_table)
{
	struct ctl c = { .wp = _i & 1, .nxe = _i & 2 };
	unsigned n = 0;

	fx.cpu.cr0_wp = c.wp;
	fx.cpu.efer_nxe = c.nxe;
	fx_set_cpu(false, false);
	for (unsigned j = 0; j < 4; j++)
		gset(PAE_PDPT + 8 * j, j == 2 ? PAE_PD | X86_PTE_P : 0);
	ck_assert_int_eq(shadow_set_paging(fx.s, SHADOW_PAGING_PAE, PAE_PDPT), SHADOW_OK);
	for (unsigned pd = 0; pd < 128; pd++)
		for (unsigned pt = 0; pt < 32; pt++)
			for (unsigned ki = 0; ki < 3; ki++)
				for (int user = 0; user < 2; user++) {
					uint64_t pde = spread(PAE_ENGINE_PDE_BITS, pd);
					uint64_t pte =
						spread(PAE_ENGINE_PTE_BITS, pt) | PAE_PAGE_4K;
					struct mref e;
					char d[128];

					pde |= (pde & X86_PTE_PS) ? PAE_PAGE_2M : PAE_PT;
					gset(PAE_PDE_AT, pde);
					gset(pae_pte_at(pde), pte);
					pae_engine_pde = pde;
					e = ref_pae(true, pde, pte, kinds[ki], user, &c);
					snprintf(d, sizeof(d),
						 "pde=0x%llx pte=0x%llx k=%d user=%d wp=%d nxe=%d",
						 (unsigned long long)pde, (unsigned long long)pte,
						 kinds[ki], user, c.wp, c.nxe);
					engine_case(PAE_GVA, &e, kinds[ki], user, &c,
						    pae_leaf_dirty, d);
					n++;
				}
	ck_assert_uint_eq(n, 128 * 32 * 6);
}
END_TEST

/* Paging off: identity leaves, user-writable, executable, for every GVA
 * below 4 GiB inside RAM; RAM's end and 4 GiB are the limits. */
START_TEST(test_engine_paging_off_identity)
{
	static const gva_t gvas[] = { 0,        0x1000,        0x12345,     RAM_SIZE - 1,
				      RAM_SIZE, 0xffffffffull, X86_BIT(32), X86_BIT(47) };
	struct shadow_fault_result r;
	unsigned n = 0;

	ck_assert_int_eq(shadow_set_paging(fx.s, SHADOW_PAGING_OFF, 0), SHADOW_OK);
	ck_assert_int_eq(shadow_paging_mode(fx.s), SHADOW_PAGING_OFF);
	for (unsigned g = 0; g < sizeof(gvas) / sizeof(gvas[0]); g++)
		for (unsigned ki = 0; ki < 3; ki++)
			for (int user = 0; user < 2; user++) {
				gva_t gva = gvas[g];
				enum shadow_status st = fx_fault(gva, acc_of(kinds[ki], user), &r);
				gpa_t gpa;

				n++;
				if (gva >> 32) {
					ck_assert_int_eq(st, SHADOW_GUEST_GP);
					continue;
				}
				if (gva >= RAM_SIZE) {
					ck_assert_int_eq(st, SHADOW_ERROR);
					ck_assert_int_eq(r.err, SHADOW_ERR_PAGE_OUTSIDE_RAM);
					ck_assert(!shadow_translate(fx.s, gva, 0, &gpa));
					continue;
				}
				ck_assert_int_eq(st, SHADOW_FILLED);
				ck_assert_uint_eq(r.gpa, gva);
				ck_assert_uint_eq(shadow_leaf(gva) & ~(X86_PTE_A | X86_PTE_D),
						  (gva & X86_PAGE_MASK) | PWU);
				ck_assert(
					shadow_translate(fx.s, gva, acc_of(kinds[ki], user), &gpa));
				ck_assert_uint_eq(gpa, gva);
				ck_assert_int_eq(fx.last[SHADOW_EV_FILL].depth, 0);
			}
	ck_assert_uint_eq(fx.nevents[SHADOW_EV_AD_SET], 0);
	ck_assert_uint_eq(n, 8 * 3 * 2);
}
END_TEST

/* 32-bit paging through the engine: a 4 KiB and a 4 MiB page filled with
 * the right GPA and rights, A/D in the 4-byte entries, the fill event
 * reporting the 4-byte PDE and PTE at levels 2 and 1. */
START_TEST(test_engine_legacy32_fills)
{
	struct shadow_fault_result r;
	const struct shadow_event *ev = &fx.last[SHADOW_EV_FILL];
	gva_t big = (5u << 22) | 0x2a5123; /* the upper half of a 4 MiB page */
	uint64_t spte;
	int level;
	gpa_t gpa;

	fx_set_cpu(true, false);
	l32_build(L32_PT | PWU, L32_PAGE_4K | X86_PTE_P | X86_PTE_W);
	set32(L32_PD + 4 * 5, 0x00400000u | 0x80 | X86_PTE_P | X86_PTE_U);
	ck_assert_int_eq(shadow_set_paging(fx.s, SHADOW_PAGING_32, L32_PD | 0xfff), SHADOW_OK);
	ck_assert_uint_eq(shadow_vcr3(fx.s), L32_PD);
	/* a user write to a supervisor page faults with P|W|U */
	ck_assert_int_eq(fx_fault(L32_GVA, SHADOW_ACC_WRITE | SHADOW_ACC_USER, &r),
			 SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_P | X86_PF_W | X86_PF_U);
	ck_assert_int_eq(fx_fault(L32_GVA, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, L32_PAGE_4K | 0x123);
	spte = shadow_leaf(L32_GVA);
	ck_assert_uint_eq(spte & X86_PTE_ADDR_MASK, L32_PAGE_4K);
	ck_assert(!(spte & X86_PTE_U) && (spte & X86_PTE_W) && !(spte & X86_PTE_NX));
	ck_assert_uint_eq(get32(L32_PDE_AT), L32_PT | PWU | X86_PTE_A);
	ck_assert_uint_eq(get32(L32_PTE_AT), L32_PAGE_4K | 3 | ADW);
	ck_assert_uint_eq(get32(L32_PD + 8), L32_SENTINEL);
	ck_assert_int_eq(ev->level, 1);
	ck_assert_int_eq(ev->depth, 2);
	ck_assert_uint_eq(ev->gpte_gpa[2], L32_PDE_AT);
	ck_assert_uint_eq(ev->gpte[2], L32_PT | PWU | X86_PTE_A);
	ck_assert_uint_eq(ev->gpte_gpa[1], L32_PTE_AT);
	ck_assert_uint_eq(ev->gpte[1], L32_PAGE_4K | 3 | ADW);
	ck_assert_uint_eq(ev->ad_set[1], ADW);
	/* the 4 MiB page: read-only, user, the GPA inside the page */
	ck_assert_int_eq(fx_fault(big, SHADOW_ACC_USER, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, 0x00400000u + 0x2a5123);
	ck_assert_int_eq(r.level, 2);
	ck_assert_int_eq(ev->level, 2);
	ck_assert_int_eq(ev->depth, 1);
	spte = shadow_map(big, &level); /* a 2 MiB leaf with SHADOW_OPT_HUGE */
	ck_assert_uint_eq(spte & (level == 2 ? X86_PTE_ADDR_2M_MASK : X86_PTE_ADDR_MASK),
			  (0x00400000u + 0x2a5123) & (level == 2 ? ~0x1fffffull : X86_PAGE_MASK));
	ck_assert((spte & X86_PTE_U) && !(spte & X86_PTE_W));
	ck_assert(shadow_translate(fx.s, big, SHADOW_ACC_USER, &gpa));
	ck_assert_uint_eq(gpa, 0x00400000u + 0x2a5123);
	ck_assert(!shadow_translate(fx.s, big, SHADOW_ACC_USER | SHADOW_ACC_WRITE, &gpa));
	/* invlpg in one half drops the other half's leaves too */
	ck_assert_int_eq(fx_fault(big ^ X86_BIT(21), 0, &r), SHADOW_FILLED);
	shadow_invlpg(fx.s, big);
	ck_assert(!(shadow_map(big ^ X86_BIT(21), &level) & X86_PTE_P));
	ck_assert(shadow_leaf(L32_GVA) & X86_PTE_P);
	/* without CR4.PSE the PS bit is ignored: the PDE names a table */
	fx_set_cpu(false, false);
	set32(L32_PD + 4 * 5, L32_PT | 0x80 | PWU);
	ck_assert_int_eq(fx_fault((5u << 22) | (6u << 12), 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, L32_PAGE_4K);
	ck_assert_int_eq(r.level, 1);
}
END_TEST

/* The cache in 32-bit paging (cache.h, CACHE_ROLE_G32): one guest page
 * table has two shadow pages (its halves), a directory four (its
 * quarters); shadows outlive a CR3 write and come back with the directory;
 * a guest write to a page table or to the directory drops exactly the
 * shadows derived from it, and the invariant check follows every step. */
START_TEST(test_engine_legacy32_cache_keeps_shadows)
{
	struct shadow_fault_result r;
	gpa_t pd2 = new_table(), pt_hi = new_table();
	gva_t lo = L32_GVA, hi = (3u << 22) | (600u << 12) | 0x45u; /* both halves of one PT */
	gva_t q2 = (600u << 22) | (6u << 12); /* the directory's third quarter */
	gva_t alias_pt = (7u << 22) + L32_PT; /* the 4 MiB page at 0 maps the tables */
	uint64_t fills;

	fx_set_cpu(true, false);
	l32_build(L32_PT | PWU | X86_PTE_A, L32_PAGE_4K | PWU | ADW);
	set32(L32_PT + 4 * 600, 0x00301000u | PWU | ADW);
	set32(L32_PD + 4 * 600, (uint32_t)pt_hi | PWU | X86_PTE_A);
	set32(pt_hi + 4 * 6, 0x00302000u | PWU | ADW);
	/* a 4 MiB page that maps the tables themselves, writable: the aliases */
	set32(L32_PD + 4 * 7, 0x80u | PWU | ADW);
	set32(pd2 + 4 * 3, L32_PT | PWU | X86_PTE_A);
	ck_assert_int_eq(shadow_set_paging(fx.s, SHADOW_PAGING_32, L32_PD), SHADOW_OK);
	ck_assert_int_eq(fx_fault(lo, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fx_fault(hi, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fx_fault(q2, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, 0x00302000u);
	ck_assert_uint_eq(shadow_leaf(hi) & X86_PTE_ADDR_MASK, 0x00301000u);
	/* another directory sharing the page table: none of the first's
	 * leaves, but its shadow of the shared table */
	ck_assert(shadow_set_cr3(fx.s, pd2));
	ck_assert(!(shadow_leaf(q2) & X86_PTE_P));
	fills = fx_stats().fills[1];
	ck_assert_int_eq(fx_fault(lo, 0, &r), SHADOW_FILLED);
	ck_assert(shadow_set_cr3(fx.s, L32_PD));
	ck_assert_uint_eq(fx_stats().roots_reused, 1);
	ck_assert_uint_eq(shadow_leaf(lo) & X86_PTE_ADDR_MASK, L32_PAGE_4K);
	ck_assert_uint_eq(shadow_leaf(hi) & X86_PTE_ADDR_MASK, 0x00301000u);
	ck_assert_uint_eq(shadow_leaf(q2) & X86_PTE_ADDR_MASK, 0x00302000u);
	ck_assert_uint_eq(fx_stats().fills[1], fills + 1);
	fx_check_invariants();
	/* the tables are write-protected: reading them through the alias is
	 * fine, writing the page table drops both its halves' leaves only */
	ck_assert_int_eq(fx_fault(alias_pt, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, L32_PT);
	ck_assert(!(shadow_map(alias_pt, &(int){ 0 }) & X86_PTE_W));
	ck_assert_int_eq(fx_fault(alias_pt, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert(shadow_map(alias_pt, &(int){ 0 }) & X86_PTE_W);
	ck_assert(!(shadow_leaf(lo) & X86_PTE_P) && !(shadow_leaf(hi) & X86_PTE_P));
	ck_assert_uint_eq(shadow_leaf(q2) & X86_PTE_ADDR_MASK, 0x00302000u);
	ck_assert_uint_eq(fx_stats().unprotects, 1);
	fx_check_invariants();
}
END_TEST

/* With SHADOW_OPT_HUGE a 4 MiB page maps as 2 MiB shadow leaves, one per
 * half, each naming its half of the page. */
START_TEST(test_engine_legacy32_huge_halves)
{
	struct shadow_fault_result r;
	gva_t lo = 5u << 22, hi = lo + X86_BIT(21);
	uint64_t spte;
	int level;

	fx_set_cpu(true, true);
	/* PSE-36: bit 13 is address bit 32; RAM is below, so one GiB down */
	set32(L32_PD + 4 * 5, 0x00400000u | 0x80 | PWU | ADW);
	ck_assert_int_eq(shadow_set_paging(fx.s, SHADOW_PAGING_32, L32_PD), SHADOW_OK);
	ck_assert_int_eq(fx_fault(hi + 0x5000, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	spte = shadow_map(hi + 0x5000, &level);
	ck_assert_int_eq(level, 2);
	ck_assert_uint_eq(spte & X86_PTE_ADDR_2M_MASK, 0x00600000u);
	ck_assert_int_eq(fx_fault(lo + 0x7000, 0, &r), SHADOW_FILLED);
	spte = shadow_map(lo + 0x7000, &level);
	ck_assert_int_eq(level, 2);
	ck_assert_uint_eq(spte & X86_PTE_ADDR_2M_MASK, 0x00400000u);
	shadow_invlpg(fx.s, lo + 0x7000);
	ck_assert(!(shadow_map(hi, &level) & X86_PTE_P));
	/* a PSE-36 page above 4 GiB is outside this RAM */
	set32(L32_PD + 4 * 6, 0x00400000u | X86_BIT(13) | 0x80 | PWU | ADW);
	ck_assert_int_eq(fx_fault(6u << 22, 0, &r), SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_PAGE_OUTSIDE_RAM);
	ck_assert_uint_eq(r.gpa, X86_BIT(32) + 0x00400000u);
}
END_TEST

static void pae_tables(void)
{
	for (unsigned j = 0; j < 4; j++)
		gset(PAE_PDPT + 8 * j, 0);
	gset(PAE_PDPT + 16, PAE_PD | X86_PTE_P);
	gset(PAE_PDE_AT, PAE_PT | PWU);
	gset(PAE_PTE_AT, PAE_PAGE_4K | PWU | X86_PTE_NX);
}

/* PAE through the engine: the fill, XD, the PDPTEs never written; a bad
 * PDPTE at set_paging or at a CR3 load is #GP with nothing changed; a
 * not-present PDPTE register faults with P = 0 at level 3. */
START_TEST(test_engine_pae_fills_and_pdpte_loads)
{
	struct shadow_fault_result r;
	uint64_t spte;
	gpa_t gpa;

	pae_tables();
	gset(PAE_PDPT, X86_BIT(5) | X86_PTE_P); /* reserved bit 5 */
	ck_assert_int_eq(shadow_set_paging(fx.s, SHADOW_PAGING_PAE, PAE_PDPT), SHADOW_GUEST_GP);
	ck_assert_int_eq(shadow_paging_mode(fx.s), SHADOW_PAGING_LONG4);
	ck_assert_uint_eq(shadow_vcr3(fx.s), TABLES_GPA);
	gset(PAE_PDPT, 0);
	ck_assert_int_eq(shadow_set_paging(fx.s, SHADOW_PAGING_PAE, RAM_SIZE), SHADOW_ERROR);
	ck_assert_int_eq(shadow_set_paging(fx.s, SHADOW_PAGING_PAE, X86_BIT(32) | PAE_PDPT),
			 SHADOW_GUEST_GP);
	ck_assert_int_eq(shadow_set_paging(fx.s, SHADOW_PAGING_PAE, PAE_PDPT | 0x1f), SHADOW_OK);
	ck_assert_uint_eq(shadow_vcr3(fx.s), PAE_PDPT);
	ck_assert_uint_eq(shadow_pae_pdptes(fx.s)[2], PAE_PD | X86_PTE_P);
	ck_assert_int_eq(fx_fault(PAE_GVA, SHADOW_ACC_USER | SHADOW_ACC_FETCH, &r),
			 SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_P | X86_PF_U | X86_PF_I);
	ck_assert_int_eq(fx_fault(PAE_GVA, SHADOW_ACC_USER | SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	spte = shadow_leaf(PAE_GVA);
	ck_assert_uint_eq(spte & X86_PTE_ADDR_MASK, PAE_PAGE_4K);
	ck_assert((spte & X86_PTE_U) && (spte & X86_PTE_W) && (spte & X86_PTE_NX));
	ck_assert_uint_eq(gget(PAE_PDPT + 16), PAE_PD | X86_PTE_P);
	ck_assert_uint_eq(gget(PAE_PDE_AT), PAE_PT | PWU | X86_PTE_A);
	ck_assert(shadow_translate(fx.s, PAE_GVA, SHADOW_ACC_USER, &gpa));
	ck_assert_uint_eq(gpa, PAE_PAGE_4K | 0x456);
	ck_assert(!shadow_translate(fx.s, PAE_GVA, SHADOW_ACC_FETCH, &gpa));
	ck_assert_int_eq(fx.last[SHADOW_EV_FILL].depth, 2);
	/* not-present PDPTE register: #PF, P = 0, at level 3 */
	ck_assert_int_eq(fx_fault(0x5000, SHADOW_ACC_WRITE, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_W);
	ck_assert_int_eq(r.level, 3);
	/* the register, not memory: a PDPT change takes effect at the next load */
	gset(PAE_PDPT + 16, 0);
	shadow_invlpg(fx.s, PAE_GVA);
	ck_assert_int_eq(fx_fault(PAE_GVA, 0, &r), SHADOW_FILLED);
	/* a CR3 load with a reserved PDPTE bit: #GP, nothing changed */
	gset(PAE_PDPT + 8, PAE_PD | X86_PTE_P | X86_BIT(63));
	ck_assert(!shadow_set_cr3(fx.s, PAE_PDPT));
	ck_assert_int_eq(shadow_load_cr3(fx.s, PAE_PDPT), SHADOW_GUEST_GP);
	ck_assert_uint_eq(shadow_pae_pdptes(fx.s)[2], PAE_PD | X86_PTE_P);
	ck_assert(shadow_leaf(PAE_GVA) & X86_PTE_P);
	ck_assert_int_eq(shadow_load_cr3(fx.s, RAM_SIZE), SHADOW_ERROR);
	/* a good load drops the shadow and takes the new registers */
	gset(PAE_PDPT + 8, 0);
	ck_assert(shadow_set_cr3(fx.s, PAE_PDPT));
	ck_assert(!(shadow_leaf(PAE_GVA) & X86_PTE_P));
	ck_assert_uint_eq(shadow_pae_pdptes(fx.s)[2], 0);
	ck_assert_int_eq(fx_fault(PAE_GVA, 0, &r), SHADOW_GUEST_PF);
	ck_assert_int_eq(r.level, 3);
}
END_TEST

/* A mode change drops every shadow but the hypervisor slot, and 4-level
 * paging works again after it; LONG5 and unknown modes are refused. */
START_TEST(test_engine_mode_switch_drops_shadow)
{
	struct shadow_fault_result r;
	struct shadow_stats before, after;

	gmap(0x7000, 1, 0x300000 | PWU | ADW, PWU);
	ck_assert_int_eq(fx_fault(0x7000, 0, &r), SHADOW_FILLED);
	before = fx_stats();
	ck_assert_int_eq(shadow_set_paging(fx.s, SHADOW_PAGING_OFF, 0), SHADOW_OK);
	after = fx_stats();
	ck_assert_uint_eq(after.flushes, before.flushes + 1);
	ck_assert(!(shadow_leaf(0x7000) & X86_PTE_P));
	ck_assert(shadow_take_tlb_flush(fx.s));
	ck_assert_int_eq(fx_fault(0x7000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(0x7000) & X86_PTE_ADDR_MASK, 0x7000);
	ck_assert_int_eq(shadow_set_paging(fx.s, SHADOW_PAGING_LONG5, TABLES_GPA), SHADOW_ERROR);
	ck_assert_int_eq(shadow_set_paging(fx.s, (enum shadow_paging)9, TABLES_GPA), SHADOW_ERROR);
	ck_assert_int_eq(shadow_paging_mode(fx.s), SHADOW_PAGING_OFF);
	ck_assert_int_eq(shadow_set_paging(fx.s, SHADOW_PAGING_LONG4, TABLES_GPA), SHADOW_OK);
	ck_assert(!(shadow_leaf(0x7000) & X86_PTE_P));
	ck_assert_int_eq(fx_fault(0x7000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(0x7000) & X86_PTE_ADDR_MASK, 0x300000);
	ck_assert_uint_eq(fx_check_invariants(), 1);
}
END_TEST

/* The invariants hold after a run of faults in every mode, with every
 * option asked for (those a mode cannot use stay off). */
START_TEST(test_engine_modes_keep_invariants)
{
	static const enum shadow_paging modes[] = { SHADOW_PAGING_OFF, SHADOW_PAGING_32,
						    SHADOW_PAGING_PAE, SHADOW_PAGING_LONG4 };
	static const gpa_t cr3s[] = { 0, L32_PD, PAE_PDPT, TABLES_GPA };
	struct shadow_fault_result r;

	fx_set_cpu(true, true);
	l32_build(L32_PT | PWU, L32_PAGE_4K | PWU);
	pae_tables();
	for (unsigned round = 0; round < 2; round++)
		for (unsigned m = 0; m < 4; m++) {
			ck_assert_int_eq(shadow_set_paging(fx.s, modes[m], cr3s[m]), SHADOW_OK);
			for (gva_t g = 0; g < 64; g++) {
				gva_t gva = modes[m] == SHADOW_PAGING_32    ? L32_GVA + g * 0x1000
					    : modes[m] == SHADOW_PAGING_PAE ? PAE_GVA + g * 0x1000
									    : g * 0x1000;

				fx_fault(gva, g & 1 ? SHADOW_ACC_WRITE : 0, &r);
			}
			ck_assert_int_eq(shadow_paging_mode(fx.s), modes[m]);
		}
}
END_TEST

/* The mode lives in the state block: a second view (the monitor's) sees a
 * mode change made through the first, and the first one made through the
 * second, engine included (the cache is back in 4-level paging). */
START_TEST(test_engine_mode_shared_with_an_attached_view)
{
	static uint64_t view_mem[SHADOW_VIEW_BYTES / 8];
	struct shadow_view v = { .mem = fake_mem_accessor(&fx.mem), .pool = { .host = fx.pool } };
	struct shadow_fault_result r;
	struct shadow *twin;
	size_t bytes;
	void *state = shadow_state(fx.s, &bytes);

	twin = shadow_attach(view_mem, state, bytes, &v);
	ck_assert_ptr_nonnull(twin);
	fx_set_cpu(true, false);
	l32_build(L32_PT | PWU, L32_PAGE_4K | PWU);
	ck_assert_int_eq(shadow_set_paging(fx.s, SHADOW_PAGING_32, L32_PD), SHADOW_OK);
	ck_assert_int_eq(shadow_paging_mode(twin), SHADOW_PAGING_32);
	ck_assert_int_eq(shadow_fault(twin, L32_GVA, SHADOW_ACC_USER, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, L32_PAGE_4K | 0x123);
	ck_assert_uint_eq(shadow_leaf(L32_GVA) & X86_PTE_ADDR_MASK, L32_PAGE_4K);
	fx_check_invariants();
	gmap(0x7000, 1, 0x300000 | PWU | ADW, PWU);
	ck_assert_int_eq(shadow_set_paging(twin, SHADOW_PAGING_LONG4, TABLES_GPA), SHADOW_OK);
	ck_assert_int_eq(fx_fault(0x7000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, 0x300000);
	ck_assert_uint_eq(fx_check_invariants(), 1);
	/* a block whose mode is not one an engine runs is refused */
	((struct shadow_core *)state)->paging = SHADOW_PAGING_LONG5;
	ck_assert_ptr_null(shadow_attach(view_mem, state, bytes, &v));
	((struct shadow_core *)state)->paging = SHADOW_PAGING_LONG4;
}
END_TEST

/* shadow_check notices a shadow entry above 4 GiB in a 32-bit mode, at
 * the root and in the PDPT below entry 0; 4-level paging allows both. */
START_TEST(test_engine_check_below_4g)
{
	struct shadow_fault_result r;
	char why[160];
	uint64_t *root, *pdpt;

	ck_assert_int_eq(shadow_set_paging(fx.s, SHADOW_PAGING_OFF, 0), SHADOW_OK);
	ck_assert_int_eq(fx_fault(0x3000, 0, &r), SHADOW_FILLED);
	root = pool_page(shadow_root(fx.s));
	pdpt = pool_page(root[0] & X86_PTE_ADDR_MASK);
	pdpt[4] = pdpt[0];
	ck_assert(!shadow_check(fx.s, why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "above 4 GiB"));
	pdpt[4] = 0;
	root[1] = root[0];
	ck_assert(!shadow_check(fx.s, why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "above 4 GiB"));
	root[1] = 0;
	ck_assert(shadow_check(fx.s, why, sizeof(why)));
}
END_TEST

/* Each exhaustive table asserts its own case count (32-bit: L32_CTLS x
 * L32_CASES_PER_CTL, PAE: PAE_CTLS x PAE_CASES_PER_CTL, 5-level: L5_CTLS x
 * L5_CASES_PER_CTL). */

static void fx_setup_plain(void)
{
	fx_setup_opts(0);
}

static void fx_setup_huge(void)
{
	fx_setup_opts(SHADOW_OPT_HUGE);
}

static void fx_setup_all(void)
{
	fx_setup_opts(SHADOW_OPT_ALL);
}

void shadow_walk_mode_tcases(Suite *s)
{
	TCase *tc;

	tc = tcase_create("mode_32");
	tcase_add_checked_fixture(tc, fx_setup_plain, fx_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_walk_legacy32_exhaustive, 0, L32_CTLS);
	tcase_add_test(tc, test_walk_legacy32_pse36_maxphyaddr);
	tcase_add_test(tc, test_walk_legacy32_gva_above_4g_is_gp);
	tcase_add_test(tc, test_walk_legacy32_ad_race);
	tcase_add_test(tc, test_walk_legacy32_no_reserved_bits_in_4k);
	tcase_add_test(tc, test_engine_legacy32_fills);
	suite_add_tcase(s, tc);

	for (int huge = 0; huge < 2; huge++) {
		tc = tcase_create(huge ? "mode_engine_tables_huge" : "mode_engine_tables");
		tcase_add_checked_fixture(tc, huge ? fx_setup_huge : fx_setup_plain, fx_teardown);
		tcase_set_timeout(tc, 60);
		tcase_add_loop_test(tc, test_engine_legacy32_table, 0, L32_ENGINE_CTLS);
		tcase_add_loop_test(tc, test_engine_pae_table, 0, PAE_ENGINE_CTLS);
		suite_add_tcase(s, tc);
	}

	tc = tcase_create("mode_32_cache");
	tcase_add_checked_fixture(tc, fx_setup_cache, fx_teardown);
	tcase_add_test(tc, test_engine_legacy32_cache_keeps_shadows);
	tcase_add_test(tc, test_engine_legacy32_fills);
	tcase_add_loop_test(tc, test_engine_legacy32_table, 0, L32_ENGINE_CTLS);
	suite_add_tcase(s, tc);

	tc = tcase_create("mode_32_huge");
	tcase_add_checked_fixture(tc, fx_setup_huge, fx_teardown);
	tcase_add_test(tc, test_engine_legacy32_huge_halves);
	suite_add_tcase(s, tc);

	tc = tcase_create("mode_pae");
	tcase_add_checked_fixture(tc, fx_setup_plain, fx_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_walk_pae_exhaustive, 0, PAE_CTLS);
	tcase_add_test(tc, test_pae_load_pdptes_reserved_bits);
	tcase_add_test(tc, test_engine_pae_fills_and_pdpte_loads);
	suite_add_tcase(s, tc);

	tc = tcase_create("mode_long5");
	tcase_add_checked_fixture(tc, fx_setup_plain, fx_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_walk_long5_exhaustive, 0, L5_CTLS);
	tcase_add_test(tc, test_walk_long5_canonical_57);
	tcase_add_test(tc, test_walk_long5_reserved_address_bits);
	suite_add_tcase(s, tc);

	tc = tcase_create("mode_off");
	tcase_add_checked_fixture(tc, fx_setup_plain, fx_teardown);
	tcase_add_test(tc, test_engine_paging_off_identity);
	tcase_add_test(tc, test_engine_mode_switch_drops_shadow);
	tcase_add_test(tc, test_engine_check_below_4g);
	suite_add_tcase(s, tc);

	tc = tcase_create("mode_switch_all_opts");
	tcase_add_checked_fixture(tc, fx_setup_all, fx_teardown);
	tcase_add_test(tc, test_engine_mode_switch_drops_shadow);
	tcase_add_test(tc, test_engine_modes_keep_invariants);
	tcase_add_test(tc, test_engine_mode_shared_with_an_attached_view);
	tcase_add_test(tc, test_engine_pae_fills_and_pdpte_loads);
	tcase_add_test(tc, test_engine_legacy32_fills);
	suite_add_tcase(s, tc);
}
