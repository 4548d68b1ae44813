/* accessmatrix: every combination of leaf bits {P, W, U, A, D, NX, a reserved
 * bit} x PDE bits {W, U, NX, PS, a reserved bit} x access {read, write,
 * fetch} x CPL {0, 3} x CR0.WP x EFER.NXE x CR4.SMEP x CR4.SMAP (the last two
 * when CPUID offers them), in the spirit of kvm-unit-tests' access test.  Each
 * case sets the entries, flushes, performs the access and compares fault,
 * error code, CR2 and the A/D bits left in the entries with a model of the
 * architecture (SDM 3A §4.5-4.8).  The transcript is one digest line per
 * (CPL, access, WP, NXE, SMEP, SMAP) group plus a line for every case that
 * disagrees with the model; `verbose=1` prints every case.
 *
 * Pruned by default, because they cannot change the outcome (SDM 3A §4.6):
 * the other bits of a not-present leaf; CR0.WP for anything but supervisor
 * writes; SMAP for fetches and user accesses; SMEP for data accesses (it
 * stays for user fetches: with NXE=0 it decides the I/D bit, §4.7); and the
 * 4 KiB leaf when the PDE is a 2 MiB leaf (its bits then sit in the PDE).
 * `full=1` runs every combination anyway. */
#include "cpu.h"
#include "guest.h"
#include "paging.h"
#include "pmem.h"
#include "probe.h"
#include "trap.h"

#define MATRIX_VA 0x0000300000000000ull /* PML4 slot 96, its own tables */
#define CPUID7_EBX_SMEP X86_BIT(7)
#define CPUID7_EBX_SMAP X86_BIT(20)

/* The bits the matrix varies, in one byte each: leaf (P W U A D NX RSV) and
 * PDE (W U NX PS RSV). */
enum { L_P = 1, L_W = 2, L_U = 4, L_A = 8, L_D = 16, L_NX = 32, L_RSV = 64, L_ALL = 128 };
enum { D_W = 1, D_U = 2, D_NX = 4, D_RSV = 8, D_PS = 16, D_ALL = 32 };

struct env {
	int cpl, wp, nxe, smep, smap;
	enum probe_access acc;
};

/* What an access leaves behind; upper A bits only count after success. */
struct outcome {
	int fault;
	uint64_t err;
	int leaf_a, leaf_d, upper_a, pde_d;
};

static const char *const acc_names[] = { "read", "write", "fetch" };
static uint64_t rsv_bit; /* 0 when MAXPHYADDR leaves no reserved address bit */
static uint64_t frame, pt_frame;
static uint64_t *pml4e, *pdpte, *pde, *pte;
static int full, verbose;
static unsigned long cases, disagreements, faults_seen;
static uint64_t digest = 0xcbf29ce484222325ull;

static void mix(uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8) {
		digest ^= v & 0xff;
		digest *= 0x100000001b3ull;
	}
}

static uint64_t leaf_bits(unsigned l)
{
	return (l & L_P ? X86_PTE_P : 0) | (l & L_W ? X86_PTE_W : 0) | (l & L_U ? X86_PTE_U : 0) |
	       (l & L_A ? X86_PTE_A : 0) | (l & L_D ? X86_PTE_D : 0) | (l & L_NX ? X86_PTE_NX : 0) |
	       (l & L_RSV ? rsv_bit : 0);
}

static uint64_t pde_bits(unsigned d)
{
	return X86_PTE_P | (d & D_W ? X86_PTE_W : 0) | (d & D_U ? X86_PTE_U : 0) |
	       (d & D_NX ? X86_PTE_NX : 0) | (d & D_RSV ? rsv_bit : 0) |
	       (d & D_PS ? X86_PTE_PS : 0);
}

static int reserved(uint64_t e, const struct env *v)
{
	return (e & rsv_bit) || (!v->nxe && (e & X86_PTE_NX));
}

/* The protection checks of SDM 3A §4.6 on the combined rights. */
static int denied(const struct env *v, int w, int u, int nx)
{
	if (v->cpl == 3)
		return !u || (v->acc == PROBE_WRITE && !w) || (v->acc == PROBE_FETCH && nx);
	if (v->acc == PROBE_FETCH)
		return nx || (v->smep && u);
	return (v->smap && u) || (v->acc == PROBE_WRITE && v->wp && !w);
}

/* The architecture's answer: the walk stops at the first not-present or
 * reserved entry (§4.7), then the rights of all levels combine (§4.6); A/D
 * are set only by an access that succeeds (§4.8). */
static struct outcome model(const struct env *v, uint64_t d, uint64_t l)
{
	int ps = !!(d & X86_PTE_PS);
	uint64_t leaf = ps ? d : l;
	struct outcome o = { 1, 0, !!(leaf & X86_PTE_A), !!(leaf & X86_PTE_D), 0, 0 };
	int w, u, nx;

	o.err = (v->acc == PROBE_WRITE ? X86_PF_W : 0) | (v->cpl == 3 ? X86_PF_U : 0) |
		(v->acc == PROBE_FETCH && (v->nxe || v->smep) ? X86_PF_I : 0);
	if (reserved(d, v) || (!ps && (l & X86_PTE_P) && reserved(l, v))) {
		o.err |= X86_PF_P | X86_PF_RSVD;
		return o;
	}
	if (!ps && !(l & X86_PTE_P))
		return o;
	w = !!(d & X86_PTE_W) && !!(leaf & X86_PTE_W);
	u = !!(d & X86_PTE_U) && !!(leaf & X86_PTE_U);
	nx = v->nxe && ((d | leaf) & X86_PTE_NX);
	if (denied(v, w, u, nx)) {
		o.err |= X86_PF_P;
		return o;
	}
	o.fault = 0;
	o.err = 0;
	o.leaf_a = 1;
	o.leaf_d |= v->acc == PROBE_WRITE;
	o.upper_a = 1;
	return o;
}

static void set_env(const struct env *v)
{
	uint64_t cr4 = read_cr4() & ~(X86_CR4_SMEP | X86_CR4_SMAP);

	write_cr0(v->wp ? read_cr0() | X86_CR0_WP : read_cr0() & ~X86_CR0_WP);
	write_cr4(cr4 | (v->smep ? X86_CR4_SMEP : 0) | (v->smap ? X86_CR4_SMAP : 0));
	write_efer(v->nxe ? read_efer() | X86_EFER_NXE : read_efer() & ~X86_EFER_NXE);
}

static uint64_t case_va(void)
{
	return MATRIX_VA + (frame & (X86_LEVEL_SIZE(2) - 1)) + 0x40;
}

/* Install the case's entries with A clear in the upper levels, then flush:
 * invlpg drops the VA's TLB entry and the paging-structure caches
 * (SDM 3A §4.10.4.1). */
static void install(uint64_t d, uint64_t l)
{
	*pml4e &= ~X86_PTE_A;
	*pdpte &= ~X86_PTE_A;
	if (d & X86_PTE_PS) {
		*pde = (frame & X86_PTE_ADDR_2M_MASK) | d;
	} else {
		*pde = pt_frame | d;
		*pte = (frame & X86_PTE_ADDR_MASK) | l;
	}
	invlpg(case_va());
}

static struct outcome observe(const struct env *v, uint64_t d, const struct probe_result *r)
{
	int ps = !!(d & X86_PTE_PS);
	uint64_t leaf = ps ? *pde : *pte;
	struct outcome o = { r->faulted,
			     r->faulted ? probe_arch_error(r) : 0,
			     !!(leaf & X86_PTE_A),
			     !!(leaf & X86_PTE_D),
			     0,
			     0 };

	(void)v;
	if (!r->faulted)
		o.upper_a = !!(*pml4e & *pdpte & (ps ? X86_PTE_A : *pde) & X86_PTE_A);
	if (!ps)
		o.pde_d = !!(*pde & X86_PTE_D);
	return o;
}

static void one_case(const struct env *v, unsigned dbits, unsigned lbits)
{
	uint64_t d = pde_bits(dbits), l = leaf_bits(lbits), va = case_va();
	struct probe_result r;
	struct outcome want = model(v, d, l), got;
	int ok;

	install(d, l);
	probe_access(v->acc, v->cpl, va, &r);
	got = observe(v, d, &r);
	ok = got.fault == want.fault && got.err == want.err && got.leaf_a == want.leaf_a &&
	     got.leaf_d == want.leaf_d && got.upper_a == want.upper_a && !got.pde_d;
	if (r.faulted)
		ok = ok && r.vector == X86_EXC_PF && r.cr2 == va;
	else
		ok = ok && (v->acc != PROBE_READ || r.value == PROBE_BYTE);
	cases++;
	faults_seen += got.fault;
	mix((uint64_t)dbits << 8 | lbits);
	mix((uint64_t)got.fault | got.err << 1 | (uint64_t)got.leaf_a << 8 |
	    (uint64_t)got.leaf_d << 9 | (uint64_t)got.upper_a << 10 | (uint64_t)got.pde_d << 11 |
	    (uint64_t)(r.cr2 == va) << 12 | (uint64_t)r.vector << 16);
	if (!ok)
		disagreements++;
	if (ok && !verbose)
		return;
	printf("%s pde=%02x leaf=%02x: %s err=0x%lx cr2=%s A=%d D=%d upA=%d",
	       ok ? "case" : "FAIL: case", dbits, lbits, got.fault ? "fault" : "ok",
	       (unsigned long)got.err, r.faulted ? (r.cr2 == va ? "va" : "other") : "-", got.leaf_a,
	       got.leaf_d, got.upper_a);
	if (!ok)
		printf(" (model: %s err=0x%lx A=%d D=%d upA=%d vec=%lu)",
		       want.fault ? "fault" : "ok", (unsigned long)want.err, want.leaf_a,
		       want.leaf_d, want.upper_a, (unsigned long)r.vector);
	printf("\n");
}

/* The leaves a PDE is combined with: all 128, or the present ones plus one
 * not-present leaf. */
static int leaf_runs(unsigned l)
{
	return full || (l & L_P) || l == 0;
}

static void group(const struct env *v)
{
	unsigned long before = cases, dis = disagreements;
	unsigned rsv_mask = rsv_bit ? 0 : D_RSV;

	set_env(v);
	for (unsigned d = 0; d < D_ALL; d++) {
		if (d & rsv_mask)
			continue;
		for (unsigned l = 0; l < L_ALL; l++) {
			if ((rsv_bit == 0 && (l & L_RSV)) || !leaf_runs(l))
				continue;
			if ((d & D_PS) && (d & (D_W | D_U | D_NX | D_RSV)))
				break; /* a 2 MiB leaf: its bits are the leaf bits */
			one_case(v, (d & D_PS) ? D_PS : d, l);
		}
	}
	printf("cpl=%d %-5s wp=%d nxe=%d smep=%d smap=%d: cases=%lu disagree=%lu digest=%016lx\n",
	       v->cpl, acc_names[v->acc], v->wp, v->nxe, v->smep, v->smap, cases - before,
	       disagreements - dis, (unsigned long)digest);
}

/* Does the (cpl, access, wp, smep, smap) combination matter?  See the head
 * comment. */
static int env_runs(const struct env *v)
{
	int sup = v->cpl == 0;

	if (full)
		return 1;
	if (v->wp && !(sup && v->acc == PROBE_WRITE))
		return 0;
	if (v->smap && !(sup && v->acc != PROBE_FETCH))
		return 0;
	return !v->smep || v->acc == PROBE_FETCH;
}

static void setup(const struct shadowvm_boot_info *bi, int *has_smep, int *has_smap)
{
	uint32_t r[4];
	uint64_t root, va;
	char buf[8];

	pmem_init(bi);
	trap_init();
	probe_init();
	full = cmdline_get(bi, "full", buf, sizeof(buf)) && buf[0] == '1';
	verbose = cmdline_get(bi, "verbose", buf, sizeof(buf)) && buf[0] == '1';
	cpuid(0, 0, r);
	if (r[0] >= 7)
		cpuid(7, 0, r);
	else
		r[1] = 0;
	*has_smep = !!(r[1] & CPUID7_EBX_SMEP);
	*has_smap = !!(r[1] & CPUID7_EBX_SMAP);
	rsv_bit = cpu_maxphyaddr() < 52 ? X86_BIT(51) : 0;
	root = pt_new_identity(bi->ram_size);
	probe_map_user(root);
	frame = pmem_alloc();
	memset((void *)(uintptr_t)frame, PROBE_BYTE, X86_PAGE_SIZE);
	va = case_va();
	pt_map(root, va, frame, 0);
	pml4e = pt_entry(root, va, 4, 0);
	pdpte = pt_entry(root, va, 3, 0);
	pde = pt_entry(root, va, 2, 0);
	pte = pt_entry(root, va, 1, 0);
	pt_frame = *pde & X86_PTE_ADDR_MASK;
	write_cr3(root);
	printf("accessmatrix: smep=%d smap=%d reserved bit=%s pruning=%s\n", *has_smep, *has_smap,
	       rsv_bit ? "51" : "none", full ? "off" : "on");
}

int main(const struct shadowvm_boot_info *bi)
{
	int has_smep, has_smap;
	struct env v;

	setup(bi, &has_smep, &has_smap);
	for (v.cpl = 0; v.cpl <= 3; v.cpl += 3)
		for (int a = 0; a < 3; a++)
			for (v.wp = 0; v.wp < 2; v.wp++)
				for (v.nxe = 0; v.nxe < 2; v.nxe++)
					for (v.smep = 0; v.smep <= has_smep; v.smep++)
						for (v.smap = 0; v.smap <= has_smap; v.smap++) {
							v.acc = (enum probe_access)a;
							if (env_runs(&v))
								group(&v);
						}
	write_cr4(read_cr4() & ~(X86_CR4_SMEP | X86_CR4_SMAP));
	write_cr0(read_cr0() | X86_CR0_WP);
	write_efer(read_efer() | X86_EFER_NXE);
	printf("summary: cases=%lu faults=%lu disagree=%lu digest=%016lx failures=%u\n", cases,
	       faults_seen, disagreements, (unsigned long)digest, check_failures());
	check(disagreements == 0, "every case agrees with the model");
	return (int)check_failures();
}
