/* mbmodes: a Multiboot ELF32 guest that steps through the x86 paging modes
 * a foreign kernel uses: paging off, 32-bit paging with 4 KiB pages, with 4
 * MiB pages (CR4.PSE), PAE (with EFER.NXE), then IA-32e mode entered by
 * itself (EFER.LME, CR0.PG), 64-bit code, and back to compatibility mode.
 * In each paging mode it runs an access matrix: leaf and directory bits x
 * access (read, write, fetch) x CPL (0, 3) x CR0.WP (for supervisor
 * writes, the one access it decides) x EFER.NXE, each case
 * compared with a model of SDM 3A §4.6-4.8 (fault, error code, CR2, A/D).
 * The transcript is one line per matrix (cases, disagreements, a digest of
 * every outcome) plus a line per disagreement; it must be the same under
 * --paging=hw and --paging=shadow.  Pruned, because they cannot change the
 * outcome: CR0.WP = 0 but for supervisor writes, and the other bits of a
 * not-present leaf.  Exit: isa-debug-exit code 0 (status 1)
 * when every case agrees, 1 (status 3) otherwise. */
#include "mbrt.h"
#include "x86.h"

#define TEST_VA 0x40000000u /* PDE 256 (32-bit), PDPTE 1 (PAE, 4-level) */
#define FRAME 0x00800000u   /* the test page: 4 MiB aligned */
#define OFF 0x40u           /* where in it the probes touch */
#define IDMAP_MB 64u        /* identity-mapped RAM, at least the image */
#define MSR_EFER 0xc0000080u

/* 32-bit paging: a PD, the identity map's PTs, the test PT (SDM 3A §4.3) */
static uint32_t pd32[1024] __attribute__((aligned(4096)));
static uint32_t pt32_id[IDMAP_MB / 4][1024] __attribute__((aligned(4096)));
static uint32_t pt32_t[1024] __attribute__((aligned(4096)));
/* PAE and 4-level: PDPT (32-byte aligned), the identity PD with 2 MiB
 * pages, the test PD and PT, and the PML4 and its PDPT (§4.4, §4.5) */
static uint64_t pdpt[4] __attribute__((aligned(32)));
static uint64_t pd_id[512] __attribute__((aligned(4096)));
static uint64_t pd_t[512] __attribute__((aligned(4096)));
static uint64_t pt_t[512] __attribute__((aligned(4096)));
static uint64_t pml4[512] __attribute__((aligned(4096)));
static uint64_t pdpt_l[512] __attribute__((aligned(4096)));

/* the last #PF, from trap32 */
volatile uint32_t pf_err, pf_cr2, pf_count; /* also long.S's */
volatile uint32_t exec_target;

enum { B_P = 1, B_W = 2, B_U = 4, B_NX = 8, B_PS = 16 };

struct env {
	int cpl, wp, nxe, acc;
};

struct outcome {
	int fault;
	uint32_t err;
	int leaf_a, leaf_d, upper_a;
};

struct matrix {
	const char *name;
	int pae; /* 8-byte entries, NX exists */
	int big; /* the directory entry maps the page (4 MiB or 2 MiB) */
	unsigned cases, disagree;
	uint32_t digest;
};

static const char *const acc_names[] = { "read", "write", "fetch" };

void trap32(struct tf32 *f);
void trap32(struct tf32 *f)
{
	if (f->vector == 0x80 && (f->cs & 3) == 3)
		user_return(0);
	if (f->vector == 14) {
		pf_err = f->err;
		pf_cr2 = read_cr2();
		pf_count++;
		if ((f->cs & 3) == 3)
			user_return(1);
		if (f->eip == (uint32_t)pr_insn) {
			f->eip = (uint32_t)pr_fix;
			return;
		}
		if (f->eip == (uint32_t)pw_insn) {
			f->eip = (uint32_t)pw_fix;
			return;
		}
		if (exec_target && f->eip == exec_target) {
			f->eip = (uint32_t)px_fix;
			return;
		}
	}
	mb_printf("mbmodes: unexpected vector %u err 0x%x at eip 0x%x cs 0x%x cr2 0x%x\n",
		  f->vector, f->err, f->eip, f->cs, read_cr2());
	mb_exit(2);
}

static void mix(struct matrix *m, uint32_t v)
{
	for (int i = 0; i < 4; i++, v >>= 8) {
		m->digest ^= v & 0xff;
		m->digest *= 16777619u;
	}
}

/* SDM 3A §4.6 on the combined rights (no SMEP, no SMAP). */
static int denied(const struct env *v, int w, int u, int nx)
{
	if (v->cpl == 3)
		return !u || (v->acc == PROBE_WRITE && !w) || (v->acc == PROBE_FETCH && nx);
	if (v->acc == PROBE_FETCH)
		return nx;
	return v->acc == PROBE_WRITE && v->wp && !w;
}

/* The architecture's answer (§4.7: the walk stops at the first not-present
 * or reserved entry; XD is reserved without EFER.NXE; §4.8: A/D only on
 * success).  `dir` and `leaf` are B_* sets; dir is always present. */
static struct outcome model(const struct matrix *m, const struct env *v, unsigned dir,
			    unsigned leaf)
{
	struct outcome o = { 1, 0, 0, 0, 0 };
	unsigned eff = m->big ? dir : leaf;
	int w, u, nx;

	o.err = (v->acc == PROBE_WRITE ? X86_PF_W : 0) | (v->cpl == 3 ? X86_PF_U : 0) |
		(v->acc == PROBE_FETCH && m->pae && v->nxe ? X86_PF_I : 0);
	int dir_p = m->big ? !!(dir & B_P) : 1;

	if (m->pae && !v->nxe &&
	    ((dir_p && (dir & B_NX)) || (!m->big && (leaf & B_P) && (leaf & B_NX)))) {
		o.err |= X86_PF_P | X86_PF_RSVD;
		return o;
	}
	if (!(eff & B_P))
		return o;
	w = (dir & B_W) && (eff & B_W);
	u = (dir & B_U) && (eff & B_U);
	nx = m->pae && v->nxe && ((dir | eff) & B_NX);
	if (denied(v, w, u, nx)) {
		o.err |= X86_PF_P;
		return o;
	}
	o.fault = 0;
	o.err = 0;
	o.leaf_a = 1;
	o.leaf_d = v->acc == PROBE_WRITE;
	o.upper_a = !m->big;
	return o;
}

static uint64_t bits(const struct matrix *m, unsigned b)
{
	return (b & B_P ? X86_PTE_P : 0) | (b & B_W ? X86_PTE_W : 0) | (b & B_U ? X86_PTE_U : 0) |
	       (m->pae && (b & B_NX) ? X86_PTE_NX : 0) | (b & B_PS ? X86_PTE_PS : 0);
}

/* The test directory entry and leaf, A/D clear, then invlpg (§4.10.4.1). */
static void install(const struct matrix *m, unsigned dir, unsigned leaf)
{
	if (!m->pae) {
		pt32_t[0] = (uint32_t)(FRAME | bits(m, leaf));
		pd32[TEST_VA >> 22] = m->big ? (uint32_t)(FRAME | bits(m, dir | B_PS))
					     : (uint32_t)((uint32_t)pt32_t | bits(m, dir | B_P));
	} else {
		pt_t[0] = FRAME | bits(m, leaf);
		pd_t[0] =
			m->big ? FRAME | bits(m, dir | B_PS) : (uint32_t)pt_t | bits(m, dir | B_P);
	}
	invlpg(TEST_VA + OFF);
}

static struct outcome observe(const struct matrix *m, int fault, uint32_t err)
{
	uint64_t dir = m->pae ? pd_t[0] : pd32[TEST_VA >> 22];
	uint64_t leaf = m->big ? dir : m->pae ? pt_t[0] : pt32_t[0];

	return (struct outcome){ fault, fault ? err : 0, !!(leaf & X86_PTE_A), !!(leaf & X86_PTE_D),
				 !m->big && !fault && !!(dir & X86_PTE_A) };
}

static int access(const struct env *v)
{
	uint32_t va = TEST_VA + OFF;

	if (v->cpl == 3)
		return user_run(v->acc, va);
	if (v->acc == PROBE_READ)
		return probe_read(va);
	if (v->acc == PROBE_WRITE)
		return probe_write(va);
	exec_target = va;
	return probe_exec(va);
}

/* CR0.WP and EFER.NXE as the matrix last set them (-1: unknown), so that
 * a case costs no read of CR0 or EFER: each traps under shadow paging. */
static int cur_wp = -1, cur_nxe = -1;

static void set_env(const struct matrix *m, const struct env *v)
{
	if (v->wp != cur_wp) {
		uint32_t cr0 = read_cr0();

		write_cr0(v->wp ? cr0 | X86_CR0_WP : cr0 & ~X86_CR0_WP);
		cur_wp = v->wp;
	}
	if (m->pae && v->nxe != cur_nxe) {
		uint64_t efer = rdmsr(MSR_EFER);

		wrmsr(MSR_EFER, v->nxe ? efer | X86_EFER_NXE : efer & ~X86_EFER_NXE);
		cur_nxe = v->nxe;
	}
}

static void one_case(struct matrix *m, const struct env *v, unsigned dir, unsigned leaf)
{
	struct outcome want = model(m, v, dir, leaf), got;
	int fault;

	set_env(m, v);
	install(m, dir, leaf);
	pf_err = 0;
	pf_cr2 = 0;
	fault = access(v);
	/* QEMU's software MMU (the "hardware" of the nested runner's npt=1)
	 * reports a reserved-bit fault without P; the SDM (§4.7) and KVM set
	 * it.  Folded here so that the transcript compares the rest. */
	got = observe(m, fault, pf_err & X86_PF_RSVD ? pf_err | X86_PF_P : pf_err);
	m->cases++;
	mix(m, (uint32_t)got.fault | got.err << 1 | (uint32_t)got.leaf_a << 8 |
		       (uint32_t)got.leaf_d << 9 | (uint32_t)got.upper_a << 10);
	if (fault && pf_cr2 != TEST_VA + OFF)
		got.err |= 0x80000000u; /* a wrong CR2 counts as a disagreement */
	if (got.fault != want.fault || got.err != want.err || got.leaf_a != want.leaf_a ||
	    got.leaf_d != want.leaf_d || got.upper_a != want.upper_a) {
		if (m->disagree++ < 16)
			mb_printf(
				"mbmodes: %s: cpl%d %s wp%d nxe%d dir %x leaf %x: got fault %d err %x "
				"a%d d%d ua%d, want fault %d err %x a%d d%d ua%d\n",
				m->name, v->cpl, acc_names[v->acc], v->wp, v->nxe, dir, leaf,
				got.fault, got.err, got.leaf_a, got.leaf_d, got.upper_a, want.fault,
				want.err, want.leaf_a, want.leaf_d, want.upper_a);
	}
}

static unsigned run_matrix(struct matrix *m)
{
	unsigned dir_bits = m->pae ? B_W | B_U | B_NX : B_W | B_U;
	unsigned leaf_bits = m->big ? 0 : m->pae ? B_P | B_W | B_U | B_NX : B_P | B_W | B_U;
	struct env v;

	if (m->big)
		dir_bits |= B_P; /* the directory entry is the leaf */
	m->digest = 2166136261u;
	cur_wp = cur_nxe = -1;
	for (v.nxe = 0; v.nxe <= m->pae; v.nxe++)
		for (v.wp = 0; v.wp <= 1; v.wp++)
			for (v.cpl = 0; v.cpl <= 3; v.cpl += 3)
				for (v.acc = 0; v.acc < 3; v.acc++)
					for (unsigned d = 0; d <= dir_bits; d++) {
						/* CR0.WP decides supervisor writes
						 * only (SDM 3A §4.6): the other
						 * accesses run with WP = 1 alone */
						if (!v.wp && (v.cpl || v.acc != PROBE_WRITE))
							continue;
						if (d & ~dir_bits)
							continue;
						for (unsigned l = 0; l <= leaf_bits; l++)
							/* a not-present leaf's other bits
							 * mean nothing (§4.7): one case */
							if (!(l & ~leaf_bits) &&
							    (m->big || (l & B_P) || l == 0))
								one_case(m, &v, d, l);
					}
	set_env(m, &(struct env){ .wp = 1, .nxe = 0 });
	mb_printf("mbmodes: %s: %u cases, %u disagree, digest %08x\n", m->name, m->cases,
		  m->disagree, m->digest);
	return m->disagree;
}

static void build_tables(void)
{
	const uint32_t id = X86_PTE_P | X86_PTE_W | X86_PTE_U;

	for (uint32_t i = 0; i < IDMAP_MB / 4; i++) {
		for (uint32_t j = 0; j < 1024; j++)
			pt32_id[i][j] = (i << 22) | (j << 12) | id;
		pd32[i] = (uint32_t)pt32_id[i] | id;
	}
	for (uint32_t i = 0; i < IDMAP_MB / 2; i++)
		pd_id[i] = ((uint64_t)i << 21) | id | X86_PTE_PS;
	/* PDPTEs: P only; R/W, U/S and XD are reserved in PAE (§4.4.1) */
	pdpt[0] = (uint32_t)pd_id | X86_PTE_P;
	pdpt[1] = (uint32_t)pd_t | X86_PTE_P;
	pdpt_l[0] = (uint32_t)pd_id | id;
	pdpt_l[1] = (uint32_t)pd_t | id;
	pml4[0] = (uint32_t)pdpt_l | id;
	/* the probes' fetch target returns at once */
	*(volatile uint8_t *)(FRAME + OFF) = 0xc3;
}

/* Paging off: linear = physical, no page fault at any CPL (§4.1.1). */
static unsigned paging_off(void)
{
	volatile uint32_t *p = (volatile uint32_t *)(FRAME + 0x100);
	unsigned bad = 0;

	*p = 0x5a5aa5a5u;
	bad += *p != 0x5a5aa5a5u;
	bad += probe_read(FRAME + OFF) != 0;
	bad += probe_write(FRAME + OFF) != 0;
	bad += user_run(PROBE_READ, FRAME + OFF) != 0;
	bad += user_run(PROBE_WRITE, FRAME + OFF) != 0;
	bad += pf_count != 0;
	mb_printf("mbmodes: paging off: cr0 %x, identity %s, 4 probes, %u faults\n", read_cr0(),
		  bad ? "wrong" : "ok", pf_count);
	return bad;
}

extern void long_mode_visit(void); /* long.S */
extern char idt64_pf[], idt64_int80[], idt64_bad[];

static uint64_t idt64[2 * 256] __attribute__((aligned(16)));

/* A 64-bit interrupt gate (SDM 3A figure 6-8). */
static void gate64(unsigned v, char *handler, unsigned dpl)
{
	uint32_t off = (uint32_t)handler;

	idt64[2 * v] = (off & 0xffff) | ((uint64_t)SEL_KCODE64 << 16) | (0xeull << 40) |
		       ((uint64_t)dpl << 45) | (1ull << 47) | ((uint64_t)(off >> 16) << 48);
	idt64[2 * v + 1] = 0;
}

/* IA-32e mode's IDT and 64-bit TSS, loaded from compatibility mode. */
static void long_mode_tables(void)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint32_t base;
	} idtr = { sizeof(idt64) - 1, (uint32_t)idt64 };

	for (unsigned v = 0; v < 32; v++)
		gate64(v, idt64_bad, 0);
	gate64(14, idt64_pf, 0);
	gate64(0x80, idt64_int80, 3);
	__asm__ volatile("lidt %0" : : "m"(idtr));
	mb_ltr64();
}

void mb_main(uint32_t magic, const struct mb_info_head *mbi);
void mb_main(uint32_t magic, const struct mb_info_head *mbi)
{
	struct matrix m32 = { .name = "32-bit 4K" }, m4m = { .name = "32-bit 4M", .big = 1 },
		      mpae = { .name = "PAE 4K", .pae = 1 },
		      mpae2m = { .name = "PAE 2M", .pae = 1, .big = 1 },
		      m4k = { .name = "4-level 4K, compatibility mode", .pae = 1 },
		      m2m = { .name = "4-level 2M, compatibility mode", .pae = 1, .big = 1 };
	unsigned bad = 0;
	uint64_t efer;

	mb_printf("mbmodes: multiboot magic %x, info flags %x, mem_upper %u KiB\n", magic,
		  mbi->flags, mbi->mem_upper);
	if (magic != MB_BOOT_MAGIC || (uint32_t)__image_end > IDMAP_MB << 20)
		mb_exit(2);
	build_tables();
	bad += paging_off();

	/* 32-bit paging, 4 KiB pages: CR3, then CR0.PG (§4.1.2) */
	write_cr3((uint32_t)pd32);
	write_cr0(read_cr0() | X86_CR0_PG | X86_CR0_WP);
	bad += run_matrix(&m32);
	/* 4 MiB pages: CR4.PSE with paging on */
	write_cr4(read_cr4() | X86_CR4_PSE);
	bad += run_matrix(&m4m);

	/* PAE: leave paging, set CR4.PAE, load the PDPTEs with CR3, page again */
	write_cr0(read_cr0() & ~X86_CR0_PG);
	write_cr4((read_cr4() & ~X86_CR4_PSE) | X86_CR4_PAE);
	write_cr3((uint32_t)pdpt);
	write_cr0(read_cr0() | X86_CR0_PG);
	bad += run_matrix(&mpae);
	bad += run_matrix(&mpae2m);

	/* the test page mapped plainly again, for 64-bit mode to read */
	pt_t[0] = FRAME | X86_PTE_P | X86_PTE_W | X86_PTE_U;
	pd_t[0] = (uint32_t)pt_t | X86_PTE_P | X86_PTE_W | X86_PTE_U;
	/* IA-32e mode: paging off, CR3 = PML4, EFER.LME, CR0.PG (§4.1.2, §9.8.5) */
	write_cr0(read_cr0() & ~X86_CR0_PG);
	write_cr3((uint32_t)pml4);
	wrmsr(MSR_EFER, rdmsr(MSR_EFER) | X86_EFER_LME);
	write_cr0(read_cr0() | X86_CR0_PG);
	efer = rdmsr(MSR_EFER);
	mb_printf("mbmodes: long mode: efer %x (LMA %u), compatibility mode code running\n",
		  (uint32_t)efer, (uint32_t)(efer >> 10) & 1);
	bad += !(efer & X86_EFER_LMA);
	long_mode_tables();
	bad += run_matrix(&m4k);
	bad += run_matrix(&m2m);
	pt_t[0] = FRAME | X86_PTE_P | X86_PTE_W | X86_PTE_U;
	pd_t[0] = (uint32_t)pt_t | X86_PTE_P | X86_PTE_W | X86_PTE_U;
	long_mode_visit();
	mb_printf("mbmodes: back in compatibility mode, cr4 %x\n", read_cr4());
	mb_printf("mbmodes: %s\n", bad ? "FAILED" : "all modes agree with the model");
	mb_exit(bad ? 1 : 0);
}
