/* The shadow MMU on synthetic guest page tables, no VM: the walker against
 * a reference written from the SDM rules (§4.5-§4.8), reserved bits, hostile
 * table graphs, pool exhaustion, and the shadow's own invariants after every
 * fill (hypervisor entry intact, no leaf into the pool or past RAM). */
#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "spte.h"
#include "shadow.h"
#include "shadowvm_abi.h"
#include "suites.h"
#include "x86.h"

#define RAM_SIZE (8ull << 20)
#define POOL_BASE (1ull << 32)
#define POOL_PAGES 64u
#define HV_INDEX SVM_ABI_RESERVED_PML4_INDEX
#define HV_ENTRY (0x0000000200000000ull | X86_PTE_P | X86_PTE_W | X86_PTE_A)
#define PWU (X86_PTE_P | X86_PTE_W | X86_PTE_U)

/* ck_assert marks a checkpoint (a write to the parent) even when it holds;
 * the hot loops of the table tests check with this instead. */
#define CHECK(cond, ...)                                                                  \
	do {                                                                              \
		if (!(cond))                                                              \
			ck_abort_msg(__VA_ARGS__);                                        \
	} while (0)

/* Guest tables are taken from here upward; data pages live below. */
#define TABLES_GPA 0x10000ull

/* ---- fake guest memory and the checked fixture ---- */

struct fake {
	uint8_t *ram;
	uint64_t *pool;
	uint32_t pool_pages;
	struct shadow *s;
	struct shadow_cpu cpu;
	gpa_t next_table;
	int race;          /* cmpxchg calls left before one is raced; <0 never */
	bool race_always;
	uint64_t race_bits; /* what the racing "other CPU" sets */
	unsigned nevents[SHADOW_EV_COUNT];
	struct shadow_event last[SHADOW_EV_COUNT];
};

static struct fake F;
static unsigned g_opts; /* SHADOW_OPT_* for the fixture: the shadow_cache suite sets it */

static int fake_read(void *opaque, gpa_t gpa, uint64_t *val)
{
	struct fake *f = opaque;

	if (gpa > RAM_SIZE - 8 || (gpa & 7))
		return SHADOW_MEM_OUTSIDE;
	memcpy(val, f->ram + gpa, 8);
	return SHADOW_MEM_OK;
}

static int fake_write(void *opaque, gpa_t gpa, uint64_t val)
{
	struct fake *f = opaque;

	if (gpa > RAM_SIZE - 8 || (gpa & 7))
		return SHADOW_MEM_OUTSIDE;
	memcpy(f->ram + gpa, &val, 8);
	return SHADOW_MEM_OK;
}

static int fake_cmpxchg(void *opaque, gpa_t gpa, uint64_t *expected, uint64_t desired)
{
	struct fake *f = opaque;
	uint64_t cur;

	if (gpa > RAM_SIZE - 8 || (gpa & 7))
		return SHADOW_MEM_OUTSIDE;
	memcpy(&cur, f->ram + gpa, 8);
	if (f->race_always || (f->race >= 0 && f->race-- == 0)) {
		cur ^= f->race_bits; /* another vCPU wrote the entry meanwhile */
		memcpy(f->ram + gpa, &cur, 8);
	}
	if (cur != *expected) {
		*expected = cur;
		return SHADOW_MEM_CHANGED;
	}
	memcpy(f->ram + gpa, &desired, 8);
	return SHADOW_MEM_OK;
}

static void record_event(void *opaque, const struct shadow_event *ev)
{
	struct fake *f = opaque;

	CHECK(ev->kind < SHADOW_EV_COUNT, "event kind %d", ev->kind);
	f->nevents[ev->kind]++;
	f->last[ev->kind] = *ev;
}

static struct shadow_config make_config(uint32_t pool_pages)
{
	return (struct shadow_config){
		.mem = { .read64 = fake_read, .write64 = fake_write, .cmpxchg64 = fake_cmpxchg,
			 .opaque = &F, .ram_size = RAM_SIZE },
		.pool = { .base = POOL_BASE, .host = F.pool, .pages = pool_pages },
		.hv_index = HV_INDEX,
		.hv_entry = HV_ENTRY,
		.cpu = F.cpu,
		.vcr3 = TABLES_GPA,
		.hook = record_event,
		.hook_opaque = &F,
		.opts = g_opts,
	};
}

static void fake_open(uint32_t pool_pages)
{
	struct shadow_config cfg;

	memset(&F, 0, sizeof(F));
	F.ram = calloc(1, RAM_SIZE);
	F.pool = aligned_alloc(X86_PAGE_SIZE, (size_t)POOL_PAGES * X86_PAGE_SIZE);
	ck_assert_ptr_nonnull(F.ram);
	ck_assert_ptr_nonnull(F.pool);
	F.pool_pages = pool_pages;
	F.race = -1;
	F.cpu = (struct shadow_cpu){ .cr0_wp = true, .efer_nxe = true, .gbpages = true,
				     .maxphyaddr = 40 };
	F.next_table = TABLES_GPA + X86_PAGE_SIZE; /* TABLES_GPA is the PML4 */
	cfg = make_config(pool_pages);
	F.s = shadow_create(&cfg);
	ck_assert_ptr_nonnull(F.s);
}

static void setup(void)
{
	fake_open(POOL_PAGES);
}

static void setup_small_pool(void)
{
	fake_open(8);
}

static void setup_cache(void)
{
	g_opts = SHADOW_OPT_CACHE;
	fake_open(POOL_PAGES);
}

static void setup_cache_small_pool(void)
{
	g_opts = SHADOW_OPT_CACHE;
	fake_open(8);
}

static void setup_cache_min_pool(void)
{
	g_opts = SHADOW_OPT_CACHE;
	fake_open(SHADOW_POOL_MIN_PAGES);
}

static void teardown(void)
{
	g_opts = 0;
	shadow_destroy(F.s);
	free(F.pool);
	free(F.ram);
}

/* ---- guest table helpers ---- */

static uint64_t gget(gpa_t gpa)
{
	uint64_t v;

	CHECK(gpa <= RAM_SIZE - 8, "gpa 0x%llx outside RAM", (unsigned long long)gpa);
	memcpy(&v, F.ram + gpa, 8);
	return v;
}

static void gset(gpa_t gpa, uint64_t v)
{
	CHECK(gpa <= RAM_SIZE - 8, "gpa 0x%llx outside RAM", (unsigned long long)gpa);
	memcpy(F.ram + gpa, &v, 8);
}

static gpa_t new_table(void)
{
	gpa_t t = F.next_table;

	F.next_table += X86_PAGE_SIZE;
	ck_assert_uint_le(F.next_table, 0x100000);
	memset(F.ram + t, 0, X86_PAGE_SIZE);
	return t;
}

static gpa_t entry_gpa(gpa_t table, gva_t gva, int level)
{
	return table + 8 * X86_LEVEL_INDEX(gva, level);
}

/* Map gva with a leaf at `leaf_level` whose value is `leaf`; missing tables
 * are created with `upper` rights.  Returns the leaf entry's GPA. */
static gpa_t gmap(gva_t gva, int leaf_level, uint64_t leaf, uint64_t upper)
{
	gpa_t table = TABLES_GPA;
	int level;

	for (level = 4; level > leaf_level; level--) {
		gpa_t e = entry_gpa(table, gva, level);

		if (!(gget(e) & X86_PTE_P))
			gset(e, new_table() | upper);
		table = gget(e) & X86_PTE_ADDR_MASK;
	}
	gset(entry_gpa(table, gva, leaf_level), leaf);
	return entry_gpa(table, gva, leaf_level);
}

/* ---- the hardware over the shadow, and the invariants ---- */

static uint64_t *pool_page(mpa_t mpa)
{
	CHECK(mpa >= POOL_BASE && mpa < POOL_BASE + (uint64_t)F.pool_pages * 4096 &&
			      !(mpa & 0xfff),
		      "shadow table pointer 0x%llx outside the pool", (unsigned long long)mpa);
	return F.pool + ((mpa - POOL_BASE) >> 12) * 512;
}

/* The shadow leaf for gva, or 0; and where it is. */
static uint64_t shadow_leaf(gva_t gva)
{
	mpa_t table = shadow_root(F.s);
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
		CHECK((e & X86_PTE_ADDR_MASK) < RAM_SIZE,
			      "shadow leaf 0x%llx maps past RAM", (unsigned long long)e);
		CHECK(!(e & X86_PTE_G), "global shadow leaf");
		leaves++;
	}
	return leaves;
}

/* Test 5: after every fill the hypervisor entry is intact, every non-leaf
 * points into the pool, and every leaf maps guest RAM (never the pool). */
static unsigned check_invariants(void)
{
	struct shadow_stats st;

	CHECK(pool_page(shadow_root(F.s))[HV_INDEX] == HV_ENTRY, "hypervisor entry changed");
	shadow_get_stats(F.s, &st);
	CHECK(st.pages_in_use <= F.pool_pages && st.pages_peak <= F.pool_pages, "pool grew");
	{
		char why[160];
		CHECK(shadow_check(F.s, why, sizeof(why)), "shadow_check disagrees: %s", why);
	}
	return check_table(shadow_root(F.s), 4);
}

static enum shadow_status fault(gva_t gva, unsigned acc, struct shadow_fault_result *r)
{
	enum shadow_status st = shadow_fault(F.s, gva, acc, r);

	CHECK(st == r->status, "status %d != res %d", st, r->status);
	check_invariants();
	return st;
}

/* ---- the reference: SDM 3A §4.6 written out case by case ---- */

enum kind { RD, WR, EX };

struct ctl {
	bool wp, nxe, smep, smap, ac;
};

static bool ref_allowed(bool u, bool w, bool nx, enum kind k, bool user, const struct ctl *c)
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

static unsigned acc_of(enum kind k, bool user)
{
	return (k == WR ? SHADOW_ACC_WRITE : 0) | (k == EX ? SHADOW_ACC_FETCH : 0) |
	       (user ? SHADOW_ACC_USER : 0);
}

/* What the real CPU lets through the shadow leaf: real WP=1, NXE=1, and
 * SMEP/SMAP/AC as the guest's (the contract in shadow.h). */
static bool hw_allows(uint64_t spte, enum kind k, bool user, const struct ctl *guest)
{
	struct ctl real = { .wp = true, .nxe = true, .smep = guest->smep,
			    .smap = guest->smap, .ac = guest->ac };

	if (!(spte & X86_PTE_P))
		return false;
	return ref_allowed(spte & X86_PTE_U, spte & X86_PTE_W, spte & X86_PTE_NX, k, user, &real);
}

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

	memset(F.ram + TABLES_GPA, 0, 4 * X86_PAGE_SIZE);
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
	snprintf(buf, len,
		 "pde=0x%llx pte=0x%llx %s %s wp=%d nxe=%d smep=%d smap=%d ac=%d",
		 (unsigned long long)x->pde, (unsigned long long)x->pte,
		 x->k == RD ? "read" : x->k == WR ? "write" : "fetch",
		 x->user ? "user" : "supervisor", x->c.wp, x->c.nxe, x->c.smep, x->c.smap,
		 x->c.ac);
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
static void ex_check_leaf_bounded(const struct ex_case *x, const struct ex_expect *e,
				  const char *d)
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
static void ex_check_followups(const struct ex_case *x, const struct ex_expect *e,
			       const char *d)
{
	struct shadow_fault_result r;
	enum kind k;
	int user;

	for (k = RD; k <= EX; k++)
		for (user = 0; user < 2; user++) {
			if (!ref_allowed(e->u, e->w, e->nx, k, user, &x->c) ||
			    hw_allows(shadow_leaf(EX_GVA), k, user, &x->c))
				continue;
			CHECK(fault(EX_GVA, acc_of(k, user), &r) == SHADOW_FILLED,
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
	shadow_flush(F.s);
	st = fault(EX_GVA, acc_of(x->k, x->user), &r);
	if (e.fault) {
		CHECK(st == SHADOW_GUEST_PF, "status %d, want #PF: %s", st, d);
		CHECK(r.pferr == e.pferr, "pferr 0x%x, want 0x%x: %s", r.pferr, e.pferr, d);
		CHECK(!(shadow_leaf(EX_GVA) & X86_PTE_P), "leaf after fault: %s", d);
	} else {
		CHECK(st == SHADOW_FILLED, "status %d (pferr 0x%x), want fill: %s", st,
			      r.pferr, d);
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

	x.c = (struct ctl){ .wp = ctl & 1, .nxe = (ctl >> 1) & 1, .smep = (ctl >> 2) & 1,
			    .smap = (ctl >> 3) > 0, .ac = (ctl >> 3) == 2 };
	F.cpu = (struct shadow_cpu){ .cr0_wp = x.c.wp, .cr4_smep = x.c.smep,
				     .cr4_smap = x.c.smap, .rflags_ac = x.c.ac,
				     .efer_nxe = x.c.nxe, .gbpages = true, .maxphyaddr = 40 };
	ck_assert(shadow_set_cpu(F.s, &F.cpu));
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

static const char *const where_name[W_COUNT] = { "PML4E", "PDPTE", "PDE", "PTE",
						 "PDE(2M)", "PDPTE(1G)" };

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

	memset(F.ram + TABLES_GPA, 0, 8 * X86_PAGE_SIZE);
	F.next_table = TABLES_GPA + X86_PAGE_SIZE;
	at = gmap(RB_GVA, leaf_level, leaf | PWU | (leaf_level > 1 ? X86_PTE_PS : 0), PWU);
	*level = (w == W_PML4E) ? 4 : (w == W_PDPTE || w == W_PDPTE_1G) ? 3
					: (w == W_PDE || w == W_PDE_2M) ? 2 : 1;
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

	F.cpu.efer_nxe = nxe;
	ck_assert(shadow_set_cpu(F.s, &F.cpu));
	for (bit = 0; bit < 64; bit++) {
		gpa_t at = rb_build(w, &level);
		uint64_t before = gget(at);

		/* PS in a PDPTE/PDE changes what the entry is; P and PS of
		 * leaves are set already */
		if (bit == 7 && (w == W_PDPTE || w == W_PDE))
			continue;
		gset(at, before | X86_BIT(bit));
		shadow_flush(F.s);
		fault(RB_GVA, SHADOW_ACC_WRITE | SHADOW_ACC_USER, &r);
		if (ref_reserved(w, bit, nxe)) {
			ck_assert_msg(r.status == SHADOW_GUEST_PF &&
					      r.pferr == (X86_PF_P | X86_PF_W | X86_PF_U | X86_PF_RSVD),
				      "%s bit %d nxe=%d: status %d pferr 0x%x", where_name[w], bit,
				      nxe, r.status, r.pferr);
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

	F.cpu.gbpages = false;
	ck_assert(shadow_set_cpu(F.s, &F.cpu));
	ck_assert_int_eq(fault(RB_GVA, 0, &r), SHADOW_GUEST_PF);
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

	gset(pdpte, 0); /* not present below ... */
	gset(pml4e, gget(pml4e) | X86_PTE_PS); /* ... a reserved bit above */
	ck_assert_int_eq(fault(RB_GVA, SHADOW_ACC_FETCH, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_P | X86_PF_RSVD | X86_PF_I);
	ck_assert_int_eq(r.level, 4);
}
END_TEST

START_TEST(test_walk_maxphyaddr_52_reserves_no_address_bit)
{
	struct shadow_fault_result r;
	int level;
	gpa_t pte = rb_build(W_PTE, &level);

	F.cpu.maxphyaddr = 52;
	ck_assert(shadow_set_cpu(F.s, &F.cpu));
	gset(pte, gget(pte) | X86_BIT(51));
	ck_assert_int_eq(fault(RB_GVA, 0, &r), SHADOW_ERROR);
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
	ck_assert_int_eq(fault(RB_GVA + 0x123, 0, &r), SHADOW_FILLED);
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
	ck_assert_int_eq(fault(RB_GVA, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, 0x400000 + (RB_GVA & 0x1fffff));
	ck_assert_uint_eq(shadow_leaf(RB_GVA) & X86_PTE_ADDR_MASK, 0x400000 + (RB_GVA & 0x1ff000));
	ck_assert(shadow_leaf(RB_GVA) & X86_PTE_PAT);
}
END_TEST

START_TEST(test_set_cr3_reserved_bits_gp)
{
	struct shadow_stats st;

	ck_assert(!shadow_set_cr3(F.s, X86_BIT(40) | TABLES_GPA));
	ck_assert(!shadow_set_cr3(F.s, X86_BIT(63) | TABLES_GPA));
	ck_assert_uint_eq(shadow_vcr3(F.s), TABLES_GPA);
	shadow_get_stats(F.s, &st);
	ck_assert_uint_eq(st.cr3_loads, 0);
	ck_assert(shadow_set_cr3(F.s, TABLES_GPA | 0xfff)); /* bits 11:0 ignored */
	ck_assert_uint_eq(shadow_vcr3(F.s), TABLES_GPA);
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
	ck_assert_int_eq(fault(gva, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, TABLES_GPA + 0x28);
	ck_assert_uint_eq(gget(self), TABLES_GPA | PWU | X86_PTE_A | X86_PTE_D);
	ck_assert_uint_eq(shadow_leaf(gva) & X86_PTE_ADDR_MASK, TABLES_GPA);
	ck_assert_uint_eq(F.last[SHADOW_EV_AD_SET].ad_set[4], X86_PTE_A);
	ck_assert_uint_eq(F.last[SHADOW_EV_AD_SET].ad_set[1], X86_PTE_D);
	/* and a second walk through it changes nothing more */
	ck_assert_int_eq(fault(gva, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
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
	ck_assert_int_eq(fault(via_pd, SHADOW_ACC_USER, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, 0x600000 + 0x1234);
	ck_assert_int_eq(r.level, 2);
	/* via_pt: T[1] as PDPTE -> T, T[1] as PDE -> T, T[3] as PTE: absent */
	ck_assert_int_eq(fault(via_pt, SHADOW_ACC_USER, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_U);
	ck_assert_int_eq(r.level, 1);
	/* T[3] as a PTE maps page 0x700000 */
	gset(t + 8 * 3, 0x700000 | PWU);
	ck_assert_int_eq(fault(via_pt, SHADOW_ACC_USER, &r), SHADOW_FILLED);
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
	ck_assert_int_eq(fault(a, SHADOW_ACC_WRITE | SHADOW_ACC_USER, &r), SHADOW_FILLED);
	ck_assert_int_eq(fault(b, 0, &r), SHADOW_FILLED);
	sa = shadow_leaf(a);
	sb = shadow_leaf(b);
	ck_assert_uint_eq(sa & (X86_PTE_W | X86_PTE_U | X86_PTE_NX), X86_PTE_W | X86_PTE_U);
	ck_assert_uint_eq(sb & (X86_PTE_W | X86_PTE_U | X86_PTE_NX), X86_PTE_NX);
	ck_assert_uint_eq(sa & X86_PTE_ADDR_MASK, sb & X86_PTE_ADDR_MASK);
	ck_assert_int_eq(fault(b, SHADOW_ACC_USER, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_P | X86_PF_U);
	ck_assert_int_eq(fault(b, SHADOW_ACC_WRITE, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_P | X86_PF_W);
	ck_assert_int_eq(fault(b, SHADOW_ACC_FETCH, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_P | X86_PF_I);
	ck_assert_int_eq(fault(a, SHADOW_ACC_FETCH | SHADOW_ACC_USER, &r), SHADOW_FILLED);
}
END_TEST

START_TEST(test_hostile_pointers_past_ram)
{
	struct shadow_fault_result r;
	gpa_t pml4e = TABLES_GPA;

	gset(pml4e, RAM_SIZE | PWU); /* the PDPT would be just past RAM */
	ck_assert_int_eq(fault(0x1000, 0, &r), SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_TABLE_OUTSIDE_RAM);
	ck_assert_uint_eq(r.gpa, RAM_SIZE);
	ck_assert_uint_eq(gget(pml4e), RAM_SIZE | PWU); /* no A on an error */
	/* a leaf into the pool's MPA: outside RAM, never mapped */
	gmap(1ull << 39, 1, POOL_BASE | PWU, PWU);
	ck_assert_int_eq(fault(1ull << 39, 0, &r), SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_PAGE_OUTSIDE_RAM);
	ck_assert_uint_eq(r.gpa, POOL_BASE);
	ck_assert(!(shadow_leaf(1ull << 39) & X86_PTE_P));
	/* a 1 GiB page over the end of RAM: inside is fine, past is not */
	gmap(2ull << 39, 3, 0 | PWU | X86_PTE_PS, PWU);
	ck_assert_int_eq(fault((2ull << 39) + RAM_SIZE - 0x1000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, RAM_SIZE - 0x1000);
	ck_assert_int_eq(fault((2ull << 39) + RAM_SIZE, 0, &r), SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_PAGE_OUTSIDE_RAM);
	ck_assert_uint_eq(r.gpa, RAM_SIZE);
}
END_TEST

START_TEST(test_hostile_cr3_zero_and_outside_ram)
{
	struct shadow_fault_result r;

	ck_assert(shadow_set_cr3(F.s, 0));
	ck_assert_int_eq(fault(0x1000, SHADOW_ACC_WRITE, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_W);
	ck_assert_int_eq(r.level, 4);
	ck_assert(shadow_set_cr3(F.s, RAM_SIZE + 0x3000));
	ck_assert_int_eq(fault(0x1000, 0, &r), SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_TABLE_OUTSIDE_RAM);
	ck_assert(shadow_set_cr3(F.s, X86_BIT(39)));
	ck_assert_int_eq(fault(0x1000, 0, &r), SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_TABLE_OUTSIDE_RAM);
}
END_TEST

START_TEST(test_hostile_noncanonical_is_gp)
{
	struct shadow_fault_result r;

	ck_assert_int_eq(fault(0x0000800000000000ull, 0, &r), SHADOW_GUEST_GP);
	ck_assert_int_eq(F.last[SHADOW_EV_GUEST_FAULT].vector, X86_EXC_GP);
	ck_assert_int_eq(fault(0xffff7fffffffffffull, SHADOW_ACC_USER, &r), SHADOW_GUEST_GP);
	shadow_invlpg(F.s, 0x0000800000000000ull); /* a no-op, not a crash */
}
END_TEST

START_TEST(test_hostile_reserved_slot_is_error)
{
	struct shadow_fault_result r;

	/* even if the guest maps something there, it never reaches the shadow */
	gset(TABLES_GPA + 8 * HV_INDEX, new_table() | PWU);
	ck_assert_int_eq(fault(SVM_ABI_RESERVED_VA_BASE + 0x5000, SHADOW_ACC_WRITE, &r),
			 SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_RESERVED_SLOT);
	shadow_invlpg(F.s, SVM_ABI_RESERVED_VA_BASE);
	ck_assert_int_eq(check_invariants(), 0);
}
END_TEST

START_TEST(test_hostile_bad_access_is_error)
{
	struct shadow_fault_result r;

	ck_assert_int_eq(fault(0x1000, SHADOW_ACC_WRITE | SHADOW_ACC_FETCH, &r), SHADOW_ERROR);
	ck_assert_int_eq(r.err, SHADOW_ERR_BAD_ARG);
	ck_assert_int_eq(fault(0x1000, X86_PF_RSVD, &r), SHADOW_ERROR);
}
END_TEST

/* ---- 4. pool exhaustion ---- */

START_TEST(test_pool_exhaustion_sparse_working_set)
{
	/* 48 pages, each in its own 1 GiB region (own PD and PT), through an
	 * 8-page pool: every touch is still served with the right page */
	enum { N = 48 };
	struct shadow_fault_result r;
	struct shadow_stats st;
	int round, i;

	for (i = 0; i < N; i++)
		gmap((gva_t)i << 30 | ((gva_t)i << 12), 1, (0x200000 + (gpa_t)i * 0x1000) | PWU, PWU);
	for (round = 0; round < 3; round++)
		for (i = 0; i < N; i++) {
			int j = (i * 7 + round) % N;
			gva_t gva = (gva_t)j << 30 | ((gva_t)j << 12) | 0x10;

			ck_assert_int_eq(fault(gva, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
			ck_assert_uint_eq(r.gpa, 0x200010 + (gpa_t)j * 0x1000);
			ck_assert_uint_eq(shadow_leaf(gva) & X86_PTE_ADDR_MASK,
					  0x200000 + (gpa_t)j * 0x1000);
		}
	shadow_get_stats(F.s, &st);
	ck_assert_uint_gt(st.evictions, 0);
	ck_assert_uint_eq(st.pages_peak, 8);
	ck_assert_uint_eq(st.fills[1], 3 * N);
	ck_assert_uint_eq(F.nevents[SHADOW_EV_EVICT], st.evictions);
	ck_assert(shadow_take_tlb_flush(F.s));
}
END_TEST

START_TEST(test_pool_invlpg_frees_huge_subtree)
{
	struct shadow_fault_result r;
	struct shadow_stats before, after;
	gva_t base = 0x40000000;

	gmap(base, 3, 0 | PWU | X86_PTE_PS, PWU); /* 1 GiB page at GPA 0 */
	ck_assert_int_eq(fault(base + 0x1000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fault(base + 0x200000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(r.level, 3);
	shadow_get_stats(F.s, &before);
	shadow_invlpg(F.s, base + 0x5000);
	shadow_get_stats(F.s, &after);
	ck_assert(!(shadow_leaf(base + 0x1000) & X86_PTE_P));
	ck_assert(!(shadow_leaf(base + 0x200000) & X86_PTE_P));
	ck_assert_uint_eq(after.pages_in_use, before.pages_in_use - 3); /* PD + 2 PTs */
	ck_assert_uint_eq(after.fills[3], 2);
}
END_TEST

/* ---- coherence, A/D, WP=0, events ---- */

START_TEST(test_fill_clean_leaf_readonly_until_write)
{
	struct shadow_fault_result r;
	struct shadow_stats st;
	gpa_t pte = gmap(0x5000, 1, 0x300000 | PWU, PWU);

	ck_assert_int_eq(fault(0x5000, SHADOW_ACC_USER, &r), SHADOW_FILLED);
	ck_assert_uint_eq(gget(pte), 0x300000 | PWU | X86_PTE_A);
	ck_assert_uint_eq(shadow_leaf(0x5000) & (X86_PTE_W | X86_PTE_U), X86_PTE_U);
	ck_assert_int_eq(fault(0x5000, SHADOW_ACC_USER | SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert_uint_eq(gget(pte), 0x300000 | PWU | X86_PTE_A | X86_PTE_D);
	ck_assert_uint_eq(shadow_leaf(0x5000) & (X86_PTE_W | X86_PTE_U), X86_PTE_W | X86_PTE_U);
	shadow_get_stats(F.s, &st);
	ck_assert_uint_eq(st.a_sets, 4);
	ck_assert_uint_eq(st.d_sets, 1);
	ck_assert_uint_eq(st.hidden_faults, 2);
	ck_assert_uint_eq(F.last[SHADOW_EV_AD_SET].ad_set[1], X86_PTE_D);
}
END_TEST

START_TEST(test_fill_wp0_supervisor_write_then_user_refaults)
{
	struct shadow_fault_result r;
	gpa_t pte = gmap(0x5000, 1, 0x300000 | X86_PTE_P | X86_PTE_U, PWU);

	F.cpu.cr0_wp = false;
	F.cpu.cr4_smep = true;
	ck_assert(shadow_set_cpu(F.s, &F.cpu));
	ck_assert_int_eq(fault(0x5000, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(0x5000) & (X86_PTE_W | X86_PTE_U | X86_PTE_NX | SHADOW_SPTE_WP0),
			  X86_PTE_W | X86_PTE_NX | SHADOW_SPTE_WP0);
	ck_assert(gget(pte) & X86_PTE_D);
	ck_assert_int_eq(fault(0x5000, SHADOW_ACC_USER, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(0x5000) & (X86_PTE_W | X86_PTE_U | X86_PTE_NX), X86_PTE_U);
	ck_assert_int_eq(fault(0x5000, SHADOW_ACC_USER | SHADOW_ACC_WRITE, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_P | X86_PF_W | X86_PF_U);
}
END_TEST

START_TEST(test_ad_race_walks_again)
{
	struct shadow_fault_result r;
	struct shadow_stats st;
	gpa_t pte = gmap(0x5000, 1, 0x300000 | PWU, PWU);

	F.race = 3; /* the 4th cmpxchg (the PTE's) finds NX set meanwhile */
	F.race_bits = X86_PTE_NX;
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(gget(pte), 0x300000 | PWU | X86_PTE_A | X86_PTE_NX);
	ck_assert(shadow_leaf(0x5000) & X86_PTE_NX); /* the second walk's view */
	shadow_get_stats(F.s, &st);
	ck_assert_uint_eq(st.ad_retries, 1);
	ck_assert_uint_eq(st.a_sets, 4);
	/* a fetch now faults on the new NX bit */
	ck_assert_int_eq(fault(0x5000, SHADOW_ACC_FETCH, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_P | X86_PF_I);
}
END_TEST

START_TEST(test_ad_race_forever_returns_retry)
{
	struct shadow_fault_result r;
	gpa_t pte = gmap(0x5000, 1, 0x300000 | PWU, PWU);

	F.race_always = true;
	F.race_bits = X86_PTE_PWT; /* flipped before every cmpxchg: each loses */
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_RETRY);
	ck_assert_uint_eq(gget(pte) & X86_PTE_A, 0);
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
}
END_TEST

START_TEST(test_guest_fault_drops_stale_leaf)
{
	/* the guest unmaps a page without invlpg; the stale read-only shadow
	 * leaf may serve reads until the next #PF at that address, which
	 * invalidates it as the hardware's TLB entry would be */
	struct shadow_fault_result r;
	gpa_t pte = gmap(0x5000, 1, 0x300000 | PWU, PWU);

	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(0x5000) & (X86_PTE_P | X86_PTE_W), X86_PTE_P);
	gset(pte, 0);
	(void)shadow_take_tlb_flush(F.s);
	ck_assert_int_eq(fault(0x5000, SHADOW_ACC_WRITE, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(r.pferr, X86_PF_W);
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	ck_assert(shadow_take_tlb_flush(F.s));
}
END_TEST

START_TEST(test_invlpg_drops_only_that_page)
{
	struct shadow_fault_result r;

	gmap(0x5000, 1, 0x300000 | PWU, PWU);
	gmap(0x6000, 1, 0x301000 | PWU, PWU);
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fault(0x6000, 0, &r), SHADOW_FILLED);
	ck_assert(!shadow_take_tlb_flush(F.s));
	shadow_invlpg(F.s, 0x5fff);
	ck_assert(shadow_take_tlb_flush(F.s));
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	ck_assert(shadow_leaf(0x6000) & X86_PTE_P);
	ck_assert_uint_eq(F.nevents[SHADOW_EV_INVLPG], 1);
	ck_assert_uint_eq(F.last[SHADOW_EV_INVLPG].gva, 0x5fff);
}
END_TEST

START_TEST(test_invlpg_huge_drops_every_split_leaf)
{
	struct shadow_fault_result r;

	gmap(0x200000, 2, 0x400000 | PWU | X86_PTE_PS, PWU);
	ck_assert_int_eq(fault(0x200000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fault(0x3ff000, 0, &r), SHADOW_FILLED);
	/* the guest remaps the 2 MiB page and invalidates one address in it */
	gset(entry_gpa(gget(entry_gpa(gget(TABLES_GPA) & X86_PTE_ADDR_MASK, 0x200000, 3)) &
			       X86_PTE_ADDR_MASK,
		       0x200000, 2),
	     0x600000 | PWU | X86_PTE_PS);
	shadow_invlpg(F.s, 0x250000);
	ck_assert(!(shadow_leaf(0x200000) & X86_PTE_P));
	ck_assert(!(shadow_leaf(0x3ff000) & X86_PTE_P));
	ck_assert_int_eq(fault(0x3ff000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, 0x7ff000);
}
END_TEST

START_TEST(test_set_cr3_drops_all_but_hv)
{
	struct shadow_fault_result r;
	struct shadow_stats st;
	mpa_t root = shadow_root(F.s);

	gmap(0x5000, 1, 0x300000 | PWU, PWU);
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(check_invariants(), 1);
	ck_assert(shadow_set_cr3(F.s, TABLES_GPA));
	ck_assert_uint_eq(check_invariants(), 0);
	ck_assert_uint_eq(shadow_root(F.s), root);
	ck_assert(shadow_take_tlb_flush(F.s));
	shadow_get_stats(F.s, &st);
	ck_assert_uint_eq(st.pages_in_use, 1);
	ck_assert_uint_eq(st.cr3_loads, 1);
	ck_assert_uint_eq(st.flushes, 1);
	ck_assert_uint_eq(F.last[SHADOW_EV_CR3].vcr3, TABLES_GPA);
	ck_assert_int_eq(F.last[SHADOW_EV_FLUSH].reason, SHADOW_FLUSH_CR3);
}
END_TEST

START_TEST(test_set_cpu_flushes_on_change_not_on_ac)
{
	struct shadow_fault_result r;
	struct shadow_cpu c = F.cpu;

	gmap(0x5000, 1, 0x300000 | PWU, PWU);
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	c.rflags_ac = true;
	ck_assert(shadow_set_cpu(F.s, &c));
	ck_assert_uint_eq(check_invariants(), 1);
	c.cr4_smap = true;
	ck_assert(shadow_set_cpu(F.s, &c));
	ck_assert_uint_eq(check_invariants(), 0);
	ck_assert_int_eq(F.last[SHADOW_EV_FLUSH].reason, SHADOW_FLUSH_CPU_STATE);
	c.maxphyaddr = 53;
	ck_assert(!shadow_set_cpu(F.s, &c));
	ck_assert(shadow_cpu_state(F.s)->cr4_smap);
}
END_TEST

START_TEST(test_event_fill_carries_walk)
{
	struct shadow_fault_result r;
	const struct shadow_event *ev = &F.last[SHADOW_EV_FILL];
	gpa_t pte = gmap(0x7000, 1, 0x300000 | PWU | X86_PTE_A | X86_PTE_D, PWU);

	ck_assert_int_eq(fault(0x7000, SHADOW_ACC_WRITE | SHADOW_ACC_USER, &r), SHADOW_FILLED);
	ck_assert_uint_eq(F.nevents[SHADOW_EV_FILL], 1);
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
	ck_assert_int_eq(fault(0x9000, SHADOW_ACC_USER, &r), SHADOW_GUEST_PF);
	ck_assert_uint_eq(F.last[SHADOW_EV_GUEST_FAULT].pferr, X86_PF_U);
	ck_assert_int_eq(F.last[SHADOW_EV_GUEST_FAULT].vector, X86_EXC_PF);
	ck_assert_int_eq(F.last[SHADOW_EV_GUEST_FAULT].level, 1);
}
END_TEST

START_TEST(test_create_rejects_bad_config)
{
	struct shadow_config cfg = make_config(POOL_PAGES);

	cfg.pool.pages = SHADOW_POOL_MIN_PAGES - 1;
	ck_assert_ptr_null(shadow_create(&cfg));
	cfg = make_config(POOL_PAGES);
	cfg.pool.base = RAM_SIZE - X86_PAGE_SIZE; /* overlaps guest RAM */
	ck_assert_ptr_null(shadow_create(&cfg));
	cfg = make_config(POOL_PAGES);
	cfg.hv_index = 512;
	ck_assert_ptr_null(shadow_create(&cfg));
	cfg = make_config(POOL_PAGES);
	cfg.mem.cmpxchg64 = NULL;
	ck_assert_ptr_null(shadow_create(&cfg));
	cfg = make_config(SHADOW_POOL_MIN_PAGES);
	cfg.pool.host = (uint8_t *)F.pool + 8;
	ck_assert_ptr_null(shadow_create(&cfg));
	cfg = make_config(POOL_PAGES);
	cfg.vcr3 = X86_BIT(40); /* at MAXPHYADDR */
	ck_assert_ptr_null(shadow_create(&cfg));
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
		ck_assert_int_eq(fault(gva, 0, &r), SHADOW_FILLED);
		ck_assert_uint_eq(check_invariants(), 1);
	}
}
END_TEST

static void setup_min_pool(void)
{
	fake_open(SHADOW_POOL_MIN_PAGES);
}

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
	ck_assert_int_eq(fault(gva, 0, &r), SHADOW_FILLED);
	ck_assert(shadow_check(F.s, why, sizeof(why)));
	root = pool_page(shadow_root(F.s));
	saved = root[HV_INDEX];
	root[HV_INDEX] ^= X86_PTE_W;
	ck_assert(!shadow_check(F.s, why, sizeof(why)));
	ck_assert_msg(strstr(why, "hypervisor entry changed"), "%s", why);
	root[HV_INDEX] = saved;
	t = shadow_root(F.s);
	for (int level = 4; level > 1; level--)
		t = pool_page(t)[X86_LEVEL_INDEX(gva, level)] & X86_PTE_ADDR_MASK;
	leafp = &pool_page(t)[X86_LEVEL_INDEX(gva, 1)];
	saved = *leafp;
	*leafp = (saved & ~X86_PTE_ADDR_MASK) | shadow_root(F.s); /* a shadow page */
	ck_assert(!shadow_check(F.s, why, sizeof(why)));
	ck_assert_msg(strstr(why, "outside guest RAM"), "%s", why);
	*leafp = (saved & ~X86_PTE_ADDR_MASK) | (RAM_SIZE - 0x1000);
	ck_assert(shadow_check(F.s, why, sizeof(why)));
	*leafp = saved | X86_PTE_G;
	ck_assert(!shadow_check(F.s, why, sizeof(why)));
	ck_assert_msg(strstr(why, "global leaf"), "%s", why);
	*leafp = saved;
	ck_assert(shadow_check(F.s, why, sizeof(why)));
}
END_TEST


/* ---- the shadow cache, prefetch and huge shadows (issue 8) ---- */

#define ADW (X86_PTE_A | X86_PTE_D)

/* gmap into the address space whose PML4 is at `pml4`. */
static gpa_t gmap_in(gpa_t pml4, gva_t gva, int leaf_level, uint64_t leaf, uint64_t upper)
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

/* Where gva's PTE lives in the fixture's address space (after gmap). */
static gpa_t gmap_pte_gpa(gva_t gva)
{
	gpa_t table = TABLES_GPA;

	for (int level = 4; level > 1; level--)
		table = gget(entry_gpa(table, gva, level)) & X86_PTE_ADDR_MASK;
	return entry_gpa(table, gva, 1);
}

/* The shadow entry mapping gva, 4 KiB or 2 MiB, and its level. */
static uint64_t shadow_map(gva_t gva, int *level)
{
	mpa_t table = shadow_root(F.s);

	for (*level = 4; *level >= 1; (*level)--) {
		uint64_t e = pool_page(table)[X86_LEVEL_INDEX(gva, *level)];

		if (!(e & X86_PTE_P) || *level == 1 || (*level == 2 && (e & X86_PTE_PS)))
			return e;
		table = e & X86_PTE_ADDR_MASK;
	}
	return 0;
}

static struct shadow_stats stats(void)
{
	struct shadow_stats st;

	shadow_get_stats(F.s, &st);
	return st;
}

static void setup_opts(unsigned opts)
{
	g_opts = opts;
	fake_open(POOL_PAGES);
}

static void setup_cache_prefetch(void)
{
	setup_opts(SHADOW_OPT_CACHE | SHADOW_OPT_PREFETCH);
}

static void setup_all(void)
{
	setup_opts(SHADOW_OPT_ALL);
}

static void setup_vtlb_prefetch_huge(void)
{
	setup_opts(SHADOW_OPT_PREFETCH | SHADOW_OPT_HUGE);
}

START_TEST(test_cache_root_survives_cr3_switch)
{
	struct shadow_fault_result r;
	gpa_t other = new_table();

	gmap(0x5000, 1, 0x300000 | PWU | ADW, PWU);
	gmap_in(other, 0x5000, 1, 0x301000 | PWU | ADW, PWU);
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert(shadow_set_cr3(F.s, other));
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(0x5000) & X86_PTE_ADDR_MASK, 0x301000);
	ck_assert(shadow_set_cr3(F.s, TABLES_GPA));
	/* back: the first address space's shadow is still there */
	ck_assert_uint_eq(shadow_leaf(0x5000) & X86_PTE_ADDR_MASK, 0x300000);
	ck_assert_uint_eq(stats().roots_reused, 1);
	ck_assert_uint_eq(stats().fills[1], 2);
	check_invariants();
}
END_TEST

START_TEST(test_cache_guest_table_is_write_protected)
{
	struct shadow_fault_result r;
	gpa_t pte = gmap(0x5000, 1, 0x300000 | PWU | ADW, PWU);
	gva_t alias = 0x40007000; /* a writable, dirty mapping of the PT, from another PT */

	gmap(alias, 1, (pte & X86_PAGE_MASK) | PWU | ADW, PWU);
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fault(alias, 0, &r), SHADOW_FILLED);
	ck_assert(!(shadow_leaf(alias) & X86_PTE_W)); /* the guest allows it; the shadow not */
	/* the guest writes its table: the shadows derived from it go, the
	 * write is let through (retried, not emulated) */
	ck_assert_int_eq(fault(alias, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert(shadow_leaf(alias) & X86_PTE_W);
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	ck_assert(shadow_take_tlb_flush(F.s));
	ck_assert_uint_eq(stats().unprotects, 1);
	ck_assert_uint_ge(stats().zaps, 1);
	ck_assert_uint_eq(F.nevents[SHADOW_EV_UNPROTECT], 1);
	ck_assert_uint_eq(F.last[SHADOW_EV_UNPROTECT].gpa, pte & X86_PAGE_MASK);
	ck_assert_uint_eq(F.last[SHADOW_EV_UNPROTECT].zapped, stats().zaps);
	ck_assert(!F.last[SHADOW_EV_UNPROTECT].volatile_table);
	/* used as a table again: protected again */
	gset(pte, 0x302000 | PWU | ADW);
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(0x5000) & X86_PTE_ADDR_MASK, 0x302000);
	ck_assert(!(shadow_leaf(alias) & X86_PTE_W));
	check_invariants();
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
	mpa_t t = shadow_root(F.s);
	char why[192];

	gmap(alias, 1, (pte & X86_PAGE_MASK) | PWU | ADW, PWU);
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fault(alias, 0, &r), SHADOW_FILLED);
	for (int level = 4; level > 1; level--)
		t = pool_page(t)[X86_LEVEL_INDEX(alias, level)] & X86_PTE_ADDR_MASK;
	leaf = &pool_page(t)[X86_LEVEL_INDEX(alias, 1)];
	saved = *leaf;
	*leaf |= X86_PTE_W;
	ck_assert(!shadow_check(F.s, why, sizeof(why)));
	ck_assert_msg(strstr(why, "write-protected guest table"), "%s", why);
	*leaf = (saved & ~X86_PTE_ADDR_MASK) | POOL_BASE;
	ck_assert(!shadow_check(F.s, why, sizeof(why)));
	*leaf = saved;
	ck_assert(shadow_check(F.s, why, sizeof(why)));
	pool_page(shadow_root(F.s))[HV_INDEX] ^= X86_PTE_U;
	ck_assert(!shadow_check(F.s, why, sizeof(why)));
	ck_assert_msg(strstr(why, "hypervisor entry changed"), "%s", why);
	pool_page(shadow_root(F.s))[HV_INDEX] ^= X86_PTE_U;
	ck_assert(shadow_check(F.s, why, sizeof(why)));
	/* a guest table changed behind the write protection's back (as a
	 * missed trap would leave it): the shadow no longer follows it */
	gset(pte, 0x305000 | PWU | ADW);
	ck_assert(!shadow_check(F.s, why, sizeof(why)));
	ck_assert_msg(strstr(why, "exceeds or misplaces"), "%s", why);
	gset(pte, 0x300000 | X86_PTE_P | X86_PTE_U | ADW); /* now read-only */
	ck_assert(!shadow_check(F.s, why, sizeof(why)));
	gset(pte, 0x300000 | PWU | ADW);
	ck_assert(shadow_check(F.s, why, sizeof(why)));
	gset(gget(TABLES_GPA) & X86_PTE_ADDR_MASK, 0); /* the PML4E's PDPT entry gone */
	ck_assert(!shadow_check(F.s, why, sizeof(why)));
	ck_assert_msg(strstr(why, "not present"), "%s", why);
}
END_TEST

/* A change of CR0.WP switches to the root built under that setting, and
 * back: shadows of one setting are kept, never mixed with the other's. */
START_TEST(test_cache_cpu_bits_key_the_roots)
{
	struct shadow_fault_result r;
	struct shadow_cpu c = F.cpu;

	gmap(0x5000, 1, 0x300000 | X86_PTE_P | X86_PTE_U | ADW, PWU); /* read-only */
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	c.cr0_wp = false;
	ck_assert(shadow_set_cpu(F.s, &c));
	ck_assert(shadow_take_tlb_flush(F.s));
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	/* WP=0: a supervisor write to the read-only page goes through */
	ck_assert_int_eq(fault(0x5000, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert(shadow_leaf(0x5000) & X86_PTE_W);
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_U));
	c.cr0_wp = true;
	ck_assert(shadow_set_cpu(F.s, &c));
	/* back under WP=1: the old read-only user leaf, not the WP=0 one */
	ck_assert_uint_eq(shadow_leaf(0x5000) & (X86_PTE_P | X86_PTE_W | X86_PTE_U),
			  X86_PTE_P | X86_PTE_U);
	ck_assert_uint_eq(stats().roots_reused, 1);
	ck_assert_uint_eq(stats().flushes, 0);
	c.maxphyaddr = 39; /* the walk itself changes: everything goes */
	ck_assert(shadow_set_cpu(F.s, &c));
	ck_assert_uint_eq(stats().flushes, 1);
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	check_invariants();
}
END_TEST

/* The cache's fast path (taken without a hook: only the PTE is read) against
 * the virtual TLB's full walk: two engines over two copies of one guest
 * memory, a leaf table of 512 random PTEs (reserved bits included) under
 * random upper rights, every access kind under every control setting.
 * Status, error code, translation and the A/D bits left in guest memory must
 * agree, and the cache's shadow must stay coherent. */
START_TEST(test_cache_fast_path_agrees_with_full_walk)
{
	static struct fake g;
	struct shadow_config ca = make_config(POOL_PAGES), vt;
	struct shadow *a, *b;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	const gva_t base = 0x40000000;
	const uint64_t bits[] = { X86_PTE_W, X86_PTE_U, X86_PTE_A, X86_PTE_D, X86_PTE_NX,
				  X86_PTE_PAT, X86_PTE_PCD, X86_BIT(45) /* reserved: MAXPHYADDR 40 */ };
	unsigned fast = 0, compared = 0;
	char why[192];

	for (unsigned j = 0; j < 512; j++) {
		uint64_t pte = (0x300000 + j * 0x1000ull) | ((j % 7) ? X86_PTE_P : 0);

		for (unsigned k = 0; k < sizeof(bits) / sizeof(bits[0]); k++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			if ((seed >> 33) % (k == 7 ? 16 : 2) == 0)
				pte |= bits[k];
		}
		gmap(base + j * 0x1000ull, 1, pte, PWU | X86_PTE_A);
	}
	/* one upper level read-only, one upper level NX */
	gset(TABLES_GPA + 8 * X86_LEVEL_INDEX(base, 4),
	     gget(TABLES_GPA + 8 * X86_LEVEL_INDEX(base, 4)) & ~X86_PTE_W);
	g.ram = malloc(RAM_SIZE);
	g.pool = aligned_alloc(X86_PAGE_SIZE, (size_t)POOL_PAGES * X86_PAGE_SIZE);
	ck_assert(g.ram && g.pool);
	memcpy(g.ram, F.ram, RAM_SIZE);
	g.race = -1;
	ca.hook = NULL;
	ca.opts = SHADOW_OPT_CACHE | SHADOW_OPT_PREFETCH;
	vt = ca;
	vt.opts = 0;
	vt.mem.opaque = &g;
	vt.pool.host = g.pool;
	ca.pool.base = POOL_BASE + ((uint64_t)POOL_PAGES << 12); /* the fixture's pool is in use */
	ca.pool.host = aligned_alloc(X86_PAGE_SIZE, (size_t)POOL_PAGES * X86_PAGE_SIZE);
	a = shadow_create(&ca);
	b = shadow_create(&vt);
	ck_assert(a && b);
	for (unsigned ctl = 0; ctl < 32; ctl++) {
		struct shadow_cpu c = F.cpu;

		c.cr0_wp = ctl & 1, c.cr4_smep = ctl & 2, c.cr4_smap = ctl & 4;
		c.rflags_ac = ctl & 8, c.efer_nxe = ctl & 16;
		ck_assert(shadow_set_cpu(a, &c) && shadow_set_cpu(b, &c));
		for (unsigned j = 0; j < 512; j++) {
			for (unsigned acc = 0; acc < 6; acc++) {
				unsigned access = (acc & 1 ? SHADOW_ACC_USER : 0) |
						  (acc >> 1 == 1 ? SHADOW_ACC_WRITE : 0) |
						  (acc >> 1 == 2 ? SHADOW_ACC_FETCH : 0);
				gva_t gva = base + j * 0x1000ull + 0x123;
				struct shadow_fault_result ra, rb;
				uint64_t pa, pb;

				shadow_fault(a, gva, access, &ra);
				shadow_fault(b, gva, access, &rb);
				CHECK(ra.status == rb.status && ra.pferr == rb.pferr &&
					      (ra.status != SHADOW_FILLED || ra.gpa == rb.gpa),
				      "ctl %u page %u access %u: cache %d/0x%x/0x%llx, vtlb %d/0x%x/0x%llx",
				      ctl, j, access, ra.status, ra.pferr, (unsigned long long)ra.gpa,
				      rb.status, rb.pferr, (unsigned long long)rb.gpa);
				memcpy(&pa, F.ram + gmap_pte_gpa(base + j * 0x1000ull), 8);
				memcpy(&pb, g.ram + gmap_pte_gpa(base + j * 0x1000ull), 8);
				CHECK(pa == pb, "ctl %u page %u access %u: PTE 0x%llx vs 0x%llx", ctl, j,
				      access, (unsigned long long)pa, (unsigned long long)pb);
				compared++;
			}
			if (j % 64 == 0)
				CHECK(shadow_check(a, why, sizeof(why)), "%s", why);
		}
	}
	ck_assert_uint_eq(compared, 32 * 512 * 6);
	{
		struct shadow_stats sa;

		shadow_get_stats(a, &sa);
		/* most fills took the fast path: the test exercised it */
		ck_assert_uint_gt(sa.fast_fills, sa.fills[1] / 2);
		fast = (unsigned)sa.fast_fills;
	}
	(void)fast;
	shadow_destroy(a);
	shadow_destroy(b);
	free((void *)ca.pool.host);
	free(g.ram);
	free(g.pool);
}
END_TEST

START_TEST(test_cache_flooded_table_left_unprotected)
{
	struct shadow_fault_result r;
	gpa_t pte = gmap(0x5000, 1, 0x300000 | PWU | ADW, PWU);
	gva_t alias = 0x40007000;

	gmap(alias, 1, (pte & X86_PAGE_MASK) | PWU | ADW, PWU);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
		ck_assert_int_eq(fault(alias, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	}
	ck_assert_uint_eq(stats().unprotects, 3);
	ck_assert_uint_eq(stats().floods, 1);
	/* volatile now: used as a table it stays writable, and its shadows
	 * behave as a virtual TLB (dropped at CR3 writes and invlpg) */
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert(shadow_leaf(alias) & X86_PTE_W);
	gset(pte, 0x302000 | PWU | ADW);
	shadow_invlpg(F.s, 0x5000);
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(0x5000) & X86_PTE_ADDR_MASK, 0x302000);
	ck_assert(shadow_set_cr3(F.s, TABLES_GPA));
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	check_invariants();
}
END_TEST

START_TEST(test_cache_self_mapped_write_terminates)
{
	/* PML4[1] points at the PML4 itself: through it the PDPT, PD and PT
	 * levels are the PML4 again, so writing the PML4 that way walks the
	 * table being written */
	struct shadow_fault_result r;
	gva_t self = (1ull << 39) | (1ull << 30) | (1ull << 21) | (1ull << 12);

	gset(TABLES_GPA + 8, TABLES_GPA | PWU | X86_PTE_A);
	ck_assert_int_eq(fault(self, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, TABLES_GPA);
	ck_assert(shadow_leaf(self) & X86_PTE_W);
	ck_assert_uint_eq(stats().floods, 1);
	check_invariants();
}
END_TEST

/* A write whose install had to empty the pool: the eviction forgets that the
 * self-mapped PML4 was left volatile, protects it again, and the leaf for the
 * write comes out read-only.  The write must still get a writable leaf (the
 * VMM copies into the page right after, for its own emulated stores).  Found
 * by the walk fuzzer (tests/corpus/walk/cache_write_after_evict.bin). */
START_TEST(test_cache_write_survives_eviction_of_its_flood_state)
{
	struct shadow_fault_result r;
	gva_t self = (1ull << 39) | (1ull << 30) | (1ull << 21) | (1ull << 12);

	gset(TABLES_GPA + 8, TABLES_GPA | PWU | X86_PTE_A);
	gmap(0x5000, 1, 0x300000 | PWU | ADW, PWU);
	ck_assert_int_eq(fault(self, SHADOW_ACC_WRITE, &r), SHADOW_FILLED); /* volatile now */
	ck_assert(shadow_set_cr3(F.s, TABLES_GPA));
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED); /* the pool is full */
	ck_assert_int_eq(fault(self, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert_uint_ge(stats().evictions, 1);
	ck_assert_uint_eq(r.gpa, TABLES_GPA);
	ck_assert(shadow_leaf(self) & X86_PTE_W);
	check_invariants();
}
END_TEST

START_TEST(test_cache_own_pml4_write_keeps_running)
{
	/* the current PML4 written through an ordinary mapping: the root
	 * stops being cached until the next CR3 write, then comes back */
	struct shadow_fault_result r;
	gva_t alias = 0x7000;

	gmap(0x5000, 1, 0x300000 | PWU | ADW, PWU);
	gmap(alias, 1, TABLES_GPA | PWU | ADW, PWU);
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fault(alias, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert(shadow_leaf(alias) & X86_PTE_W);
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert(shadow_leaf(alias) & X86_PTE_W); /* the root is volatile now */
	ck_assert(shadow_set_cr3(F.s, TABLES_GPA));
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fault(alias, 0, &r), SHADOW_FILLED);
	ck_assert(!(shadow_leaf(alias) & X86_PTE_W)); /* protected again */
	ck_assert_uint_eq(stats().floods, 0);
	check_invariants();
}
END_TEST

START_TEST(test_prefetch_maps_accessed_neighbours)
{
	struct shadow_fault_result r;

	for (unsigned i = 0; i < 16; i++) {
		uint64_t ad = i == 3 ? 0 : i & 1 ? X86_PTE_A : ADW;

		gmap(0x10000 + i * 0x1000, 1, (0x300000 + i * 0x1000) | PWU | ad, PWU);
	}
	gmap(0x20000, 1, 0x400000 | PWU | ADW, PWU); /* outside the window */
	ck_assert_int_eq(fault(0x10000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(stats().prefetched, 14);
	ck_assert_uint_eq(F.nevents[SHADOW_EV_PREFETCH], 14);
	ck_assert_uint_eq(F.last[SHADOW_EV_PREFETCH].gva, 0x10000 + 15 * 0x1000);
	ck_assert_uint_eq(F.last[SHADOW_EV_PREFETCH].gpa, 0x300000 + 15 * 0x1000);
	for (unsigned i = 1; i < 16; i++) {
		uint64_t l = shadow_leaf(0x10000 + i * 0x1000);

		if (i == 3) {
			ck_assert(!(l & X86_PTE_P)); /* A clear: the hardware would set it */
			continue;
		}
		ck_assert_uint_eq(l & X86_PTE_ADDR_MASK, 0x300000 + i * 0x1000);
		/* writable only where the guest leaf is dirty */
		ck_assert_uint_eq(!!(l & X86_PTE_W), !(i & 1));
	}
	ck_assert(!(shadow_leaf(0x20000) & X86_PTE_P));
	check_invariants();
}
END_TEST

START_TEST(test_huge_guest_2m_gets_2m_shadow)
{
	struct shadow_fault_result r;
	int level;
	uint64_t e;

	gmap(0x40000000, 2, 0x600000 | PWU | X86_PTE_PS | X86_PTE_A, PWU);
	ck_assert_int_eq(fault(0x40012345, 0, &r), SHADOW_FILLED);
	e = shadow_map(0x40012345, &level);
	ck_assert_int_eq(level, 2);
	ck_assert_uint_eq(e & (X86_PTE_PS | X86_PTE_W | X86_PTE_ADDR_MASK), X86_PTE_PS | 0x600000);
	ck_assert_uint_eq(stats().huge_leaves, 1);
	/* a write dirties the guest PDE and makes the 2 MiB leaf writable */
	ck_assert_int_eq(fault(0x401fffff, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	e = shadow_map(0x401ff000, &level);
	ck_assert_int_eq(level, 2);
	ck_assert(e & X86_PTE_W);
	check_invariants();
}
END_TEST

START_TEST(test_huge_frame_holding_a_table_is_split)
{
	/* a guest 2 MiB page that contains a guest page table cannot get a
	 * writable 2 MiB shadow leaf: the table inside must stay protected */
	struct shadow_fault_result r;
	int level;
	uint64_t e;

	gmap(0x5000, 1, 0x300000 | PWU | ADW, PWU); /* its tables lie in [0x10000, 0x100000) */
	gmap(0x40000000, 2, 0x0 | PWU | X86_PTE_PS | ADW, PWU); /* maps them */
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fault(0x40000000 + TABLES_GPA, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert_uint_eq(stats().unprotects, 1);
	ck_assert_int_eq(fault(0x40100000, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	e = shadow_map(0x40100000, &level);
	ck_assert_int_eq(level, 1);      /* split: the frame holds tracked tables */
	ck_assert(e & X86_PTE_W);
	ck_assert_int_eq(fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fault(0x40000000 + (gget(TABLES_GPA) & X86_PTE_ADDR_MASK), 0, &r),
			 SHADOW_FILLED);
	ck_assert(!(shadow_map(0x40000000 + (gget(TABLES_GPA) & X86_PTE_ADDR_MASK), &level) &
		    X86_PTE_W));
	check_invariants();
}
END_TEST

START_TEST(test_vtlb_huge_and_prefetch)
{
	struct shadow_fault_result r;
	int level;

	gmap(0x40000000, 2, 0x600000 | PWU | X86_PTE_PS | ADW, PWU);
	ck_assert_int_eq(fault(0x40000000, 0, &r), SHADOW_FILLED);
	(void)shadow_map(0x40000000, &level);
	ck_assert_int_eq(level, 2);
	for (unsigned i = 0; i < 16; i++)
		gmap(0x10000 + i * 0x1000, 1, (0x300000 + i * 0x1000) | PWU | ADW, PWU);
	ck_assert_int_eq(fault(0x10000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(stats().prefetched, 15);
	shadow_invlpg(F.s, 0x40001000);
	ck_assert(!(shadow_map(0x40000000, &level) & X86_PTE_P));
	check_invariants();
}
END_TEST

/* The fixtures of one engine: the virtual TLB (shadow) or the cache. */
struct engine {
	void (*setup)(void), (*small)(void), (*min)(void);
};

/* The walker, reserved-bit, hostile-graph, pool and coherence tests: every
 * engine must give the virtual TLB's answers. */
static void add_common_tcases(Suite *s, const struct engine *en)
{
	TCase *tc;

	tc = tcase_create("exhaustive");
	tcase_add_unchecked_fixture(tc, combos_open, combos_close);
	tcase_add_checked_fixture(tc, en->setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_walk_exhaustive_table, 0, EX_ITERATIONS);
	suite_add_tcase(s, tc);

	tc = tcase_create("reserved");
	tcase_add_checked_fixture(tc, en->setup, teardown);
	tcase_add_loop_test(tc, test_walk_reserved_bit_faults, 0, 2 * W_COUNT);
	tcase_add_test(tc, test_walk_1g_without_support_is_reserved);
	tcase_add_test(tc, test_walk_reserved_upper_level_stops_walk);
	tcase_add_test(tc, test_walk_maxphyaddr_52_reserves_no_address_bit);
	tcase_add_test(tc, test_walk_pte_bit7_is_pat_not_ps);
	tcase_add_test(tc, test_walk_huge_pat_moves_to_bit7);
	tcase_add_test(tc, test_set_cr3_reserved_bits_gp);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, en->setup, teardown);
	tcase_add_test(tc, test_hostile_self_referencing_pml4);
	tcase_add_test(tc, test_hostile_table_shared_at_two_levels);
	tcase_add_test(tc, test_hostile_table_reached_with_different_rights);
	tcase_add_test(tc, test_hostile_pointers_past_ram);
	tcase_add_test(tc, test_hostile_cr3_zero_and_outside_ram);
	tcase_add_test(tc, test_hostile_noncanonical_is_gp);
	tcase_add_test(tc, test_hostile_reserved_slot_is_error);
	tcase_add_test(tc, test_hostile_bad_access_is_error);
	suite_add_tcase(s, tc);

	tc = tcase_create("pool");
	tcase_add_checked_fixture(tc, en->small, teardown);
	tcase_add_test(tc, test_pool_exhaustion_sparse_working_set);
	suite_add_tcase(s, tc);

	tc = tcase_create("pool_min");
	tcase_add_checked_fixture(tc, en->min, teardown);
	tcase_add_test(tc, test_pool_minimum_serves_every_fill);
	suite_add_tcase(s, tc);

	tc = tcase_create("coherence");
	tcase_add_checked_fixture(tc, en->setup, teardown);
	tcase_add_test(tc, test_fill_clean_leaf_readonly_until_write);
	tcase_add_test(tc, test_fill_wp0_supervisor_write_then_user_refaults);
	tcase_add_test(tc, test_ad_race_walks_again);
	tcase_add_test(tc, test_ad_race_forever_returns_retry);
	tcase_add_test(tc, test_guest_fault_drops_stale_leaf);
	tcase_add_test(tc, test_invlpg_drops_only_that_page);
	tcase_add_test(tc, test_event_fill_carries_walk);
	suite_add_tcase(s, tc);
}

Suite *shadow_suite(void)
{
	static const struct engine vtlb = { setup, setup_small_pool, setup_min_pool };
	Suite *s = suite_create("shadow");
	TCase *tc;

	add_common_tcases(s, &vtlb);
	/* the virtual TLB's own behaviour: everything goes at a CR3 write */
	tc = tcase_create("vtlb");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_pool_invlpg_frees_huge_subtree);
	tcase_add_test(tc, test_invariant_checker_catches_corruption);
	tcase_add_test(tc, test_invlpg_huge_drops_every_split_leaf);
	tcase_add_test(tc, test_set_cr3_drops_all_but_hv);
	tcase_add_test(tc, test_set_cpu_flushes_on_change_not_on_ac);
	tcase_add_test(tc, test_create_rejects_bad_config);
	suite_add_tcase(s, tc);

	tc = tcase_create("vtlb_opts");
	tcase_add_checked_fixture(tc, setup_vtlb_prefetch_huge, teardown);
	tcase_add_test(tc, test_vtlb_huge_and_prefetch);
	suite_add_tcase(s, tc);
	return s;
}

/* The shadow cache (SHADOW_OPT_CACHE: keyed shadow tables shared between
 * paths, guest tables write-protected), then prefetch and huge shadows. */
Suite *shadow_cache_suite(void)
{
	static const struct engine cache = { setup_cache, setup_cache_small_pool,
					     setup_cache_min_pool };
	Suite *s = suite_create("shadow_cache");
	TCase *tc;

	add_common_tcases(s, &cache);
	tc = tcase_create("cache");
	tcase_add_checked_fixture(tc, setup_cache, teardown);
	tcase_add_test(tc, test_cache_root_survives_cr3_switch);
	tcase_add_test(tc, test_cache_guest_table_is_write_protected);
	tcase_add_test(tc, test_cache_checker_catches_corruption);
	tcase_add_test(tc, test_cache_cpu_bits_key_the_roots);
	tcase_add_test(tc, test_cache_fast_path_agrees_with_full_walk);
	tcase_add_test(tc, test_cache_flooded_table_left_unprotected);
	tcase_add_test(tc, test_cache_self_mapped_write_terminates);
	tcase_add_test(tc, test_cache_own_pml4_write_keeps_running);
	suite_add_tcase(s, tc);

	tc = tcase_create("cache_min_pool");
	tcase_add_checked_fixture(tc, setup_cache_min_pool, teardown);
	tcase_add_test(tc, test_cache_write_survives_eviction_of_its_flood_state);
	suite_add_tcase(s, tc);

	tc = tcase_create("prefetch");
	tcase_add_checked_fixture(tc, setup_cache_prefetch, teardown);
	tcase_add_test(tc, test_prefetch_maps_accessed_neighbours);
	suite_add_tcase(s, tc);

	tc = tcase_create("huge");
	tcase_add_checked_fixture(tc, setup_all, teardown);
	tcase_add_test(tc, test_huge_guest_2m_gets_2m_shadow);
	tcase_add_test(tc, test_huge_frame_holding_a_table_is_split);
	suite_add_tcase(s, tc);
	return s;
}
