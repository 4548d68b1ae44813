/* The shadow cache (shadow/cache.c, SHADOW_OPT_CACHE: keyed shadow tables
 * shared between paths, guest tables write-protected), its fast path against
 * the virtual TLB's full walk, then prefetch and huge shadows; and the
 * engine contract (check_shadow_vtlb.c) on the cache. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "shadow_fixture.h"
#include "suites.h"

START_TEST(test_cache_root_survives_cr3_switch)
{
	struct shadow_fault_result r;
	gpa_t other = new_table();

	gmap(0x5000, 1, 0x300000 | PWU | ADW, PWU);
	gmap_in(other, 0x5000, 1, 0x301000 | PWU | ADW, PWU);
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert(shadow_set_cr3(fx.s, other));
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(0x5000) & X86_PTE_ADDR_MASK, 0x301000);
	ck_assert(shadow_set_cr3(fx.s, TABLES_GPA));
	/* back: the first address space's shadow is still there */
	ck_assert_uint_eq(shadow_leaf(0x5000) & X86_PTE_ADDR_MASK, 0x300000);
	ck_assert_uint_eq(fx_stats().roots_reused, 1);
	ck_assert_uint_eq(fx_stats().fills[1], 2);
	fx_check_invariants();
}
END_TEST

START_TEST(test_cache_guest_table_is_write_protected)
{
	struct shadow_fault_result r;
	gpa_t pte = gmap(0x5000, 1, 0x300000 | PWU | ADW, PWU);
	gva_t alias = 0x40007000; /* a writable, dirty mapping of the PT, from another PT */

	gmap(alias, 1, (pte & X86_PAGE_MASK) | PWU | ADW, PWU);
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fx_fault(alias, 0, &r), SHADOW_FILLED);
	ck_assert(!(shadow_leaf(alias) & X86_PTE_W)); /* the guest allows it; the shadow not */
	/* the guest writes its table: the shadows derived from it go, the
	 * write is let through (retried, not emulated) */
	ck_assert_int_eq(fx_fault(alias, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert(shadow_leaf(alias) & X86_PTE_W);
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	ck_assert(shadow_take_tlb_flush(fx.s));
	ck_assert_uint_eq(fx_stats().unprotects, 1);
	ck_assert_uint_ge(fx_stats().zaps, 1);
	ck_assert_uint_eq(fx.nevents[SHADOW_EV_UNPROTECT], 1);
	ck_assert_uint_eq(fx.last[SHADOW_EV_UNPROTECT].gpa, pte & X86_PAGE_MASK);
	ck_assert_uint_eq(fx.last[SHADOW_EV_UNPROTECT].zapped, fx_stats().zaps);
	ck_assert(!fx.last[SHADOW_EV_UNPROTECT].volatile_table);
	/* used as a table again: protected again */
	gset(pte, 0x302000 | PWU | ADW);
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(0x5000) & X86_PTE_ADDR_MASK, 0x302000);
	ck_assert(!(shadow_leaf(alias) & X86_PTE_W));
	fx_check_invariants();
}
END_TEST

/* A change of CR0.WP switches to the root built under that setting, and
 * back: shadows of one setting are kept, never mixed with the other's. */
START_TEST(test_cache_cpu_bits_key_the_roots)
{
	struct shadow_fault_result r;
	struct shadow_cpu c = fx.cpu;

	gmap(0x5000, 1, 0x300000 | X86_PTE_P | X86_PTE_U | ADW, PWU); /* read-only */
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	c.cr0_wp = false;
	ck_assert(shadow_set_cpu(fx.s, &c));
	ck_assert(shadow_take_tlb_flush(fx.s));
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	/* WP=0: a supervisor write to the read-only page goes through */
	ck_assert_int_eq(fx_fault(0x5000, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert(shadow_leaf(0x5000) & X86_PTE_W);
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_U));
	c.cr0_wp = true;
	ck_assert(shadow_set_cpu(fx.s, &c));
	/* back under WP=1: the old read-only user leaf, not the WP=0 one */
	ck_assert_uint_eq(shadow_leaf(0x5000) & (X86_PTE_P | X86_PTE_W | X86_PTE_U),
			  X86_PTE_P | X86_PTE_U);
	ck_assert_uint_eq(fx_stats().roots_reused, 1);
	ck_assert_uint_eq(fx_stats().flushes, 0);
	c.maxphyaddr = 39; /* the walk itself changes: everything goes */
	ck_assert(shadow_set_cpu(fx.s, &c));
	ck_assert_uint_eq(fx_stats().flushes, 1);
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	fx_check_invariants();
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
	static struct fx g;
	struct shadow_config ca = fx_config(POOL_PAGES), vt;
	struct shadow *a, *b;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	const gva_t base = 0x40000000;
	const uint64_t
		bits[] = { X86_PTE_W,   X86_PTE_U,   X86_PTE_A,  X86_PTE_D, X86_PTE_NX,
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
	memcpy(g.ram, fx.ram, RAM_SIZE);
	fake_mem_init(&g.mem, g.ram, RAM_SIZE);
	ca.hook = NULL;
	ca.opts = SHADOW_OPT_CACHE | SHADOW_OPT_PREFETCH;
	vt = ca;
	vt.opts = 0;
	vt.mem.opaque = &g.mem;
	vt.pool.host = g.pool;
	ca.pool.base = POOL_BASE + ((uint64_t)POOL_PAGES << 12); /* the fixture's pool is in use */
	ca.pool.host = aligned_alloc(X86_PAGE_SIZE, (size_t)POOL_PAGES * X86_PAGE_SIZE);
	a = shadow_create(&ca);
	b = shadow_create(&vt);
	ck_assert(a && b);
	for (unsigned ctl = 0; ctl < 32; ctl++) {
		struct shadow_cpu c = fx.cpu;

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
				      ctl, j, access, ra.status, ra.pferr,
				      (unsigned long long)ra.gpa, rb.status, rb.pferr,
				      (unsigned long long)rb.gpa);
				memcpy(&pa, fx.ram + gmap_pte_gpa(base + j * 0x1000ull), 8);
				memcpy(&pb, g.ram + gmap_pte_gpa(base + j * 0x1000ull), 8);
				CHECK(pa == pb, "ctl %u page %u access %u: PTE 0x%llx vs 0x%llx",
				      ctl, j, access, (unsigned long long)pa,
				      (unsigned long long)pb);
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

/* ---- the state block moves (shadow_rebase) ---- */

/* One of two twins: its own copy of guest memory, pool and context. */
struct twin {
	uint8_t *ram;
	struct fake_mem mem;
	void *pool;
	struct shadow *s;
};

static bool alloc_refused_mode;
static unsigned late_allocs;

/* Counts and refuses any allocation once the twins are created. */
static void *late_zalloc(void *opaque, size_t bytes)
{
	(void)opaque;
	if (alloc_refused_mode) {
		late_allocs++;
		return NULL;
	}
	return calloc(1, bytes);
}

static void late_free(void *opaque, void *p)
{
	(void)opaque;
	free(p);
}

#define TWIN_POOL_PAGES 8u /* small: evictions and full resets happen */

static void twin_open(struct twin *t, unsigned opts)
{
	struct shadow_config cfg = fx_config(TWIN_POOL_PAGES);

	t->ram = malloc(RAM_SIZE);
	t->pool = aligned_alloc(X86_PAGE_SIZE, (size_t)TWIN_POOL_PAGES * X86_PAGE_SIZE);
	ck_assert(t->ram && t->pool);
	memcpy(t->ram, fx.ram, RAM_SIZE);
	fake_mem_init(&t->mem, t->ram, RAM_SIZE);
	cfg.mem = fake_mem_accessor(&t->mem);
	cfg.pool.host = t->pool; /* both twins' pools at POOL_BASE: equal bytes */
	cfg.hook = NULL;         /* the cache's fast path too */
	cfg.opts = opts;
	cfg.alloc = (struct shadow_alloc){ late_zalloc, late_free, NULL };
	t->s = shadow_create(&cfg);
	ck_assert_ptr_nonnull(t->s);
}

/* Copy the state block and the pool to fresh memory, poison and free the
 * old ones, and point the context at the copies. */
static void twin_move(struct twin *t)
{
	size_t bytes;
	void *old = shadow_state(t->s, &bytes), *state = malloc(bytes);
	void *pool = aligned_alloc(X86_PAGE_SIZE, (size_t)TWIN_POOL_PAGES * X86_PAGE_SIZE);

	ck_assert(state && pool);
	memcpy(state, old, bytes);
	memcpy(pool, t->pool, (size_t)TWIN_POOL_PAGES * X86_PAGE_SIZE);
	memset(old, 0xa5, bytes);
	memset(t->pool, 0x5a, (size_t)TWIN_POOL_PAGES * X86_PAGE_SIZE);
	free(old);
	free(t->pool);
	t->pool = pool;
	ck_assert(shadow_rebase(t->s, state, pool));
}

static void twin_close(struct twin *t)
{
	shadow_destroy(t->s);
	free(t->pool);
	free(t->ram);
}

/* The whole observable state of both twins is the same, byte for byte:
 * stats, root, pending flush, pool, state block, guest memory. */
static void twins_agree(struct twin *a, struct twin *b, unsigned op)
{
	struct shadow_stats sa, sb;
	size_t na, nb;
	void *ba = shadow_state(a->s, &na), *bb = shadow_state(b->s, &nb);
	char why[192];

	shadow_get_stats(a->s, &sa);
	shadow_get_stats(b->s, &sb);
	CHECK(!memcmp(&sa, &sb, sizeof(sa)), "op %u: stats differ", op);
	CHECK(shadow_root(a->s) == shadow_root(b->s), "op %u: roots differ", op);
	CHECK(shadow_take_tlb_flush(a->s) == shadow_take_tlb_flush(b->s), "op %u: flush", op);
	CHECK(!memcmp(a->pool, b->pool, (size_t)TWIN_POOL_PAGES * X86_PAGE_SIZE), "op %u: pools",
	      op);
	CHECK(na == nb && !memcmp(ba, bb, na), "op %u: state blocks differ", op);
	CHECK(!memcmp(a->ram, b->ram, RAM_SIZE), "op %u: guest memory differs", op);
	CHECK(shadow_check(a->s, why, sizeof(why)), "op %u: %s", op, why);
}

#define TWIN_SPACES 3
#define TWIN_PAGES 24
#define TWIN_ALIAS 0x80000000ull /* writable views of the leaf tables */

static uint64_t lcg(uint64_t x)
{
	return x * 6364136223846793005ull + 1442695040888963407ull;
}

/* The twins' 4 KiB pages: two leaf tables per address space. */
static gva_t twin_page(unsigned i)
{
	return (i < TWIN_PAGES / 2 ? 0x400000ull : 0x7f0000000000ull) + i * 0x1000ull;
}

static gpa_t leaf_table(gpa_t pml4, gva_t gva)
{
	gpa_t table = pml4;

	for (int level = 4; level > 1; level--)
		table = gget(entry_gpa(table, gva, level)) & X86_PTE_ADDR_MASK;
	return table;
}

/* Three address spaces, each with 4 KiB pages of random rights in two leaf
 * tables, a guest 2 MiB page, and writable aliases at TWIN_ALIAS of every
 * space's leaf tables (writes there unprotect, in the current root or not). */
static void twin_guest(gpa_t pml4[TWIN_SPACES], uint64_t seed)
{
	for (unsigned n = 0; n < TWIN_SPACES; n++) {
		pml4[n] = n ? new_table() : TABLES_GPA;
		for (unsigned i = 0; i < TWIN_PAGES; i++) {
			uint64_t bits =
				((seed = lcg(seed)) >> 40) & (X86_PTE_W | X86_PTE_A | X86_PTE_D);

			gmap_in(pml4[n], twin_page(i), 1,
				(0x300000 + (n * TWIN_PAGES + i) * 0x1000ull) | X86_PTE_P |
					X86_PTE_U | bits,
				PWU | X86_PTE_A);
		}
		gmap_in(pml4[n], 0x40000000, 2, 0x600000 | PWU | X86_PTE_PS, PWU);
	}
	for (unsigned n = 0; n < TWIN_SPACES; n++)
		for (unsigned k = 0; k < 2 * TWIN_SPACES; k++)
			gmap_in(pml4[n], TWIN_ALIAS + k * 0x1000ull, 1,
				leaf_table(pml4[k / 2], twin_page(k % 2 ? TWIN_PAGES - 1 : 0)) |
					PWU | ADW,
				PWU);
}

/* The same fault on both twins, with the same result. */
static enum shadow_status twin_fault(struct twin *a, struct twin *b, gva_t gva, unsigned acc,
				     unsigned op, struct shadow_fault_result *ra)
{
	struct shadow_fault_result rb;

	shadow_fault(a->s, gva, acc, ra);
	shadow_fault(b->s, gva, acc, &rb);
	CHECK(ra->status == rb.status && ra->err == rb.err && ra->pferr == rb.pferr &&
		      ra->gpa == rb.gpa && ra->level == rb.level,
	      "op %u gva 0x%llx acc %u: moved %d/0x%x/0x%llx, unmoved %d/0x%x/0x%llx", op,
	      (unsigned long long)gva, acc, ra->status, ra->pferr, (unsigned long long)ra->gpa,
	      rb.status, rb.pferr, (unsigned long long)rb.gpa);
	return ra->status;
}

/* A guest write through an alias: where the fault let it through, the
 * same store of flipped PTE bits in both guest memories. */
static void twin_store(struct twin *a, struct twin *b, uint64_t r, unsigned op)
{
	gva_t gva = TWIN_ALIAS + ((r >> 40) % (2 * TWIN_SPACES)) * 0x1000ull + ((r >> 20) & 0xff8);
	uint64_t flip = (r >> 8) & (X86_PTE_P | X86_PTE_W | X86_PTE_U | X86_PTE_A | X86_PTE_D);
	struct shadow_fault_result res;
	uint64_t v;

	if (twin_fault(a, b, gva, SHADOW_ACC_WRITE | (r & 1 ? SHADOW_ACC_USER : 0), op, &res) !=
	    SHADOW_FILLED)
		return;
	v = fake_mem_get(&a->mem, res.gpa) ^ flip;
	fake_mem_set(&a->mem, res.gpa, v);
	fake_mem_set(&b->mem, res.gpa, v);
}

/* One random guest operation on both twins. */
static void twin_step(struct twin *a, struct twin *b, const gpa_t pml4[TWIN_SPACES], uint64_t r,
		      unsigned op)
{
	static const unsigned accs[] = { 0,
					 SHADOW_ACC_USER,
					 SHADOW_ACC_WRITE,
					 SHADOW_ACC_WRITE | SHADOW_ACC_USER,
					 SHADOW_ACC_FETCH,
					 SHADOW_ACC_FETCH | SHADOW_ACC_USER };
	unsigned acc = accs[(r >> 50) % 6];
	gva_t gva = twin_page((unsigned)((r >> 40) % TWIN_PAGES)) + ((r >> 20) & 0xff8);
	struct shadow_fault_result res;
	struct shadow_cpu c;

	switch ((r >> 33) % 16) {
	case 9:
	case 10:
	case 11: twin_store(a, b, r, op); break;
	case 12: twin_fault(a, b, 0x40000000 + ((r >> 20) & 0x1ff000), acc, op, &res); break;
	case 13:
		CHECK(shadow_set_cr3(a->s, pml4[(r >> 40) % TWIN_SPACES]) &&
			      shadow_set_cr3(b->s, pml4[(r >> 40) % TWIN_SPACES]),
		      "op %u: cr3", op);
		break;
	case 14:
		shadow_invlpg(a->s, gva);
		shadow_invlpg(b->s, gva);
		break;
	case 15:
		c = *shadow_cpu_state(a->s);
		c.cr0_wp = (r >> 45) & 1, c.cr4_smep = (r >> 46) & 1;
		CHECK(shadow_set_cpu(a->s, &c) && shadow_set_cpu(b->s, &c), "op %u: cpu", op);
		break;
	default: twin_fault(a, b, gva, acc, op, &res); break;
	}
}

static const unsigned twin_opts[] = { SHADOW_OPT_CACHE, SHADOW_OPT_ALL, 0 };

/* The state block and the pool copied elsewhere (the old ones poisoned and
 * freed) and rebased, again and again: the moved shadow gives exactly the
 * results of a twin never moved, byte for byte, allocating nothing after
 * shadow_create. */
START_TEST(test_cache_state_moves_with_rebase)
{
	struct twin a, b;
	gpa_t pml4[TWIN_SPACES];
	uint64_t r = 0x2545f4914f6cdd1dull;
	struct shadow_stats st;
	unsigned op;

	twin_guest(pml4, r);
	twin_open(&a, twin_opts[_i]);
	twin_open(&b, twin_opts[_i]);
	late_allocs = 0;
	alloc_refused_mode = true;
	for (op = 0; op < 4000; op++) {
		twin_step(&a, &b, pml4, r = lcg(r), op);
		if (op % 97 == 0)
			twin_move(&a);
		if (op % 20 == 0)
			twins_agree(&a, &b, op);
	}
	twins_agree(&a, &b, op);
	alloc_refused_mode = false;
	ck_assert_uint_eq(late_allocs, 0);
	shadow_get_stats(a.s, &st);
	/* the run went where the state is busiest */
	ck_assert_uint_gt(st.fills[1], 100);
	ck_assert_uint_gt(st.evictions, 0);
	if (twin_opts[_i] & SHADOW_OPT_CACHE) {
		ck_assert_uint_gt(st.unprotects, 10);
		ck_assert_uint_gt(st.roots_reused, 10);
		ck_assert_uint_gt(st.fast_fills, 10);
	}
	twin_close(&a);
	twin_close(&b);
}
END_TEST

/* ---- a second view of the same block (shadow_attach: the monitor) ---- */

/* The real tables, written only through the views' store hooks. */
static uint8_t *real_pool;

static void real_store(void *opaque, mpa_t entry, uint64_t value)
{
	(void)opaque;
	memcpy(real_pool + (entry - POOL_BASE), &value, 8);
}

static void real_zero(void *opaque, mpa_t page)
{
	(void)opaque;
	memset(real_pool + (page - POOL_BASE), 0, X86_PAGE_SIZE);
}

/* Twin a worked on, turn about, through two views attached to its block
 * (the VMM's and the monitor's: own callbacks, the same bytes): results
 * identical to twin b's, byte for byte, and the real tables that only the
 * views' store hooks write equal the shadow MMU's view.  A block that is
 * not one is refused. */
START_TEST(test_cache_state_shared_with_an_attached_view)
{
	static uint64_t view_mem[2][SHADOW_VIEW_BYTES / 8];
	const size_t pool_bytes = (size_t)TWIN_POOL_PAGES * X86_PAGE_SIZE;
	struct twin a, b;
	gpa_t pml4[TWIN_SPACES];
	uint64_t r = 0x9e3779b97f4a7c15ull, *magic;
	struct shadow *created, *views[2];
	struct shadow_view v;
	size_t bytes;
	void *state;
	unsigned op;

	real_pool = aligned_alloc(X86_PAGE_SIZE, pool_bytes);
	ck_assert_ptr_nonnull(real_pool);
	twin_guest(pml4, r);
	twin_open(&a, twin_opts[_i]);
	twin_open(&b, twin_opts[_i]);
	memcpy(real_pool, a.pool, pool_bytes);
	state = shadow_state(a.s, &bytes);
	v = (struct shadow_view){
		.mem = fake_mem_accessor(&a.mem),
		.pool = { .host = a.pool, .store = real_store, .zero = real_zero }
	};
	created = a.s;
	for (int i = 0; i < 2; i++)
		ck_assert_ptr_nonnull(views[i] = shadow_attach(view_mem[i], state, bytes, &v));
	for (op = 0; op < 3000; op++) {
		a.s = views[(op / 50) % 2];
		twin_step(&a, &b, pml4, r = lcg(r), op);
		if (op % 20 == 0) {
			twins_agree(&a, &b, op);
			CHECK(!memcmp(real_pool, a.pool, pool_bytes), "op %u: real tables differ",
			      op);
		}
	}
	twins_agree(&a, &b, op);
	ck_assert_uint_eq(shadow_root(views[0]), shadow_root(created));
	/* refused: too short, misaligned, not a block (its first word is the
	 * core's magic) */
	ck_assert_ptr_null(shadow_attach(view_mem[0], state, sizeof(uint64_t), &v));
	ck_assert_ptr_null(shadow_attach((char *)view_mem[0] + 4, state, bytes, &v));
	magic = state;
	*magic ^= 1;
	ck_assert_ptr_null(shadow_attach(view_mem[0], state, bytes, &v));
	*magic ^= 1;
	a.s = created;
	twin_close(&a);
	twin_close(&b);
	free(real_pool);
}
END_TEST

START_TEST(test_cache_flooded_table_left_unprotected)
{
	struct shadow_fault_result r;
	gpa_t pte = gmap(0x5000, 1, 0x300000 | PWU | ADW, PWU);
	gva_t alias = 0x40007000;

	gmap(alias, 1, (pte & X86_PAGE_MASK) | PWU | ADW, PWU);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
		ck_assert_int_eq(fx_fault(alias, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	}
	ck_assert_uint_eq(fx_stats().unprotects, 3);
	ck_assert_uint_eq(fx_stats().floods, 1);
	/* volatile now: used as a table it stays writable, and its shadows
	 * behave as a virtual TLB (dropped at CR3 writes and invlpg) */
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert(shadow_leaf(alias) & X86_PTE_W);
	gset(pte, 0x302000 | PWU | ADW);
	shadow_invlpg(fx.s, 0x5000);
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(shadow_leaf(0x5000) & X86_PTE_ADDR_MASK, 0x302000);
	ck_assert(shadow_set_cr3(fx.s, TABLES_GPA));
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	fx_check_invariants();
}
END_TEST

/* A flooded table gets another try: after CACHE_FLOOD_RETRY root switches,
 * shadowed again, it is write-protected again and its shadows outlive CR3
 * writes; unprotects that far apart never flood it. */
START_TEST(test_cache_flooded_table_is_tracked_again_later)
{
	struct shadow_fault_result r;
	gpa_t pte = gmap(0x5000, 1, 0x300000 | PWU | ADW, PWU);
	gpa_t other = new_table();
	gva_t alias = 0x40007000;

	gmap(alias, 1, (pte & X86_PAGE_MASK) | PWU | ADW, PWU);
	for (int i = 0; i < CACHE_FLOOD; i++) {
		ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
		ck_assert_int_eq(fx_fault(alias, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	}
	ck_assert_uint_eq(fx_stats().floods, 1);
	/* still volatile right after: dropped at a CR3 write */
	ck_assert(shadow_set_cr3(fx.s, TABLES_GPA));
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert(shadow_set_cr3(fx.s, TABLES_GPA));
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	for (int i = 0; i < CACHE_FLOOD_RETRY; i++)
		ck_assert(shadow_set_cr3(fx.s, i & 1 ? TABLES_GPA : other));
	ck_assert(shadow_set_cr3(fx.s, TABLES_GPA));
	/* shadowed again: tracked, kept over CR3 writes, the alias read-only */
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert(shadow_set_cr3(fx.s, other));
	ck_assert(shadow_set_cr3(fx.s, TABLES_GPA));
	ck_assert_uint_eq(shadow_leaf(0x5000) & X86_PTE_ADDR_MASK, 0x300000);
	ck_assert_int_eq(fx_fault(alias, 0, &r), SHADOW_FILLED);
	ck_assert(!(shadow_leaf(alias) & X86_PTE_W));
	fx_check_invariants();
	/* one write every CACHE_FLOOD_RETRY switches: unprotected each time,
	 * never flooded again */
	for (int i = 0; i < 2 * CACHE_FLOOD; i++) {
		ck_assert_int_eq(fx_fault(alias, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
		for (int j = 0; j < CACHE_FLOOD_RETRY; j++)
			ck_assert(shadow_set_cr3(fx.s, j & 1 ? TABLES_GPA : other));
		ck_assert(shadow_set_cr3(fx.s, TABLES_GPA));
		ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	}
	ck_assert_uint_eq(fx_stats().floods, 1);
	fx_check_invariants();
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
	ck_assert_int_eq(fx_fault(self, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert_uint_eq(r.gpa, TABLES_GPA);
	ck_assert(shadow_leaf(self) & X86_PTE_W);
	ck_assert_uint_eq(fx_stats().floods, 1);
	fx_check_invariants();
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
	ck_assert_int_eq(fx_fault(self, SHADOW_ACC_WRITE, &r), SHADOW_FILLED); /* volatile now */
	ck_assert(shadow_set_cr3(fx.s, TABLES_GPA));
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED); /* the pool is full */
	ck_assert_int_eq(fx_fault(self, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert_uint_ge(fx_stats().evictions, 1);
	ck_assert_uint_eq(r.gpa, TABLES_GPA);
	ck_assert(shadow_leaf(self) & X86_PTE_W);
	fx_check_invariants();
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
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fx_fault(alias, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert(shadow_leaf(alias) & X86_PTE_W);
	ck_assert(!(shadow_leaf(0x5000) & X86_PTE_P));
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert(shadow_leaf(alias) & X86_PTE_W); /* the root is volatile now */
	ck_assert(shadow_set_cr3(fx.s, TABLES_GPA));
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fx_fault(alias, 0, &r), SHADOW_FILLED);
	ck_assert(!(shadow_leaf(alias) & X86_PTE_W)); /* protected again */
	ck_assert_uint_eq(fx_stats().floods, 0);
	fx_check_invariants();
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
	ck_assert_int_eq(fx_fault(0x10000, 0, &r), SHADOW_FILLED);
	ck_assert_uint_eq(fx_stats().prefetched, 14);
	ck_assert_uint_eq(fx.nevents[SHADOW_EV_PREFETCH], 14);
	ck_assert_uint_eq(fx.last[SHADOW_EV_PREFETCH].gva, 0x10000 + 15 * 0x1000);
	ck_assert_uint_eq(fx.last[SHADOW_EV_PREFETCH].gpa, 0x300000 + 15 * 0x1000);
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
	fx_check_invariants();
}
END_TEST

START_TEST(test_huge_guest_2m_gets_2m_shadow)
{
	struct shadow_fault_result r;
	int level;
	uint64_t e;

	gmap(0x40000000, 2, 0x600000 | PWU | X86_PTE_PS | X86_PTE_A, PWU);
	ck_assert_int_eq(fx_fault(0x40012345, 0, &r), SHADOW_FILLED);
	e = shadow_map(0x40012345, &level);
	ck_assert_int_eq(level, 2);
	ck_assert_uint_eq(e & (X86_PTE_PS | X86_PTE_W | X86_PTE_ADDR_MASK), X86_PTE_PS | 0x600000);
	ck_assert_uint_eq(fx_stats().huge_leaves, 1);
	/* a write dirties the guest PDE and makes the 2 MiB leaf writable */
	ck_assert_int_eq(fx_fault(0x401fffff, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	e = shadow_map(0x401ff000, &level);
	ck_assert_int_eq(level, 2);
	ck_assert(e & X86_PTE_W);
	fx_check_invariants();
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
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fx_fault(0x40000000 + TABLES_GPA, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	ck_assert_uint_eq(fx_stats().unprotects, 1);
	ck_assert_int_eq(fx_fault(0x40100000, SHADOW_ACC_WRITE, &r), SHADOW_FILLED);
	e = shadow_map(0x40100000, &level);
	ck_assert_int_eq(level, 1); /* split: the frame holds tracked tables */
	ck_assert(e & X86_PTE_W);
	ck_assert_int_eq(fx_fault(0x5000, 0, &r), SHADOW_FILLED);
	ck_assert_int_eq(fx_fault(0x40000000 + (gget(TABLES_GPA) & X86_PTE_ADDR_MASK), 0, &r),
			 SHADOW_FILLED);
	ck_assert(!(shadow_map(0x40000000 + (gget(TABLES_GPA) & X86_PTE_ADDR_MASK), &level) &
		    X86_PTE_W));
	fx_check_invariants();
}
END_TEST

static void setup_cache_prefetch(void)
{
	fx_setup_opts(SHADOW_OPT_CACHE | SHADOW_OPT_PREFETCH);
}

static void setup_all(void)
{
	fx_setup_opts(SHADOW_OPT_ALL);
}

Suite *shadow_cache_suite(void)
{
	Suite *s = suite_create("shadow_cache");
	TCase *tc;

	shadow_engine_tcases(s, &fx_cache);
	tc = fx_tcase(s, "cache", &fx_cache, NULL);
	tcase_add_test(tc, test_cache_root_survives_cr3_switch);
	tcase_add_test(tc, test_cache_guest_table_is_write_protected);
	tcase_add_test(tc, test_cache_cpu_bits_key_the_roots);
	tcase_add_test(tc, test_cache_fast_path_agrees_with_full_walk);
	tcase_add_test(tc, test_cache_flooded_table_left_unprotected);
	tcase_add_test(tc, test_cache_flooded_table_is_tracked_again_later);
	tcase_add_test(tc, test_cache_self_mapped_write_terminates);
	tcase_add_test(tc, test_cache_own_pml4_write_keeps_running);
	tcase_add_loop_test(tc, test_cache_state_shared_with_an_attached_view, 0,
			    sizeof(twin_opts) / sizeof(twin_opts[0]));
	tcase_add_loop_test(tc, test_cache_state_moves_with_rebase, 0,
			    sizeof(twin_opts) / sizeof(twin_opts[0]));

	tc = fx_tcase(s, "cache_min_pool", &fx_cache, fx_setup_cache_min_pool);
	tcase_add_test(tc, test_cache_write_survives_eviction_of_its_flood_state);

	tc = fx_tcase(s, "prefetch", &fx_cache, setup_cache_prefetch);
	tcase_add_test(tc, test_prefetch_maps_accessed_neighbours);

	tc = fx_tcase(s, "huge", &fx_cache, setup_all);
	tcase_add_test(tc, test_huge_guest_2m_gets_2m_shadow);
	tcase_add_test(tc, test_huge_frame_holding_a_table_is_split);
	return s;
}
