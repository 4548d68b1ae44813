/* The guest page-table walker, as the hardware walks it (Intel SDM Vol. 3A
 * §4.5 translation, §4.6 access rights, §4.7 page-fault error code, §4.8
 * accessed and dirty flags), parameterised by a paging-mode descriptor in
 * the manner of Linux paging_tmpl.h.  The bottom of shadow/: it includes
 * nothing of the library but the public header. */
#ifndef SHADOWVM_WALK_H
#define SHADOWVM_WALK_H

#include "lib.h"
#include "shadow.h"

/* Access rights of a translation (SDM 3A §4.6): R/W and U/S AND-ed, XD
 * OR-ed over the entries used.  The one representation of rights in
 * shadow/: walks, shadow leaves and the cache's keys all use it. */
struct shadow_rights {
	bool write, user, nx;
};

#define SHADOW_RIGHTS_ALL ((struct shadow_rights){ .write = true, .user = true, .nx = false })

/* Rights of one guest entry (XD counts only with EFER.NXE). */
static inline struct shadow_rights shadow_entry_rights(const struct shadow_cpu *cpu, uint64_t pte)
{
	return (struct shadow_rights){ .write = pte & X86_PTE_W,
				       .user = pte & X86_PTE_U,
				       .nx = cpu->efer_nxe && (pte & X86_PTE_NX) };
}

static inline struct shadow_rights shadow_rights_and(struct shadow_rights a, struct shadow_rights b)
{
	return (struct shadow_rights){ a.write && b.write, a.user && b.user, a.nx || b.nx };
}

/* ---- paging modes ---- */

/* Levels a mode descriptor can describe, and a walk records: 5-level
 * paging needs 5.  The real shadow stays 4-level (SHADOW_LEVELS): the
 * engine never runs a 5-level walk (shadow_set_paging refuses LONG5). */
#define SHADOW_MODE_MAX_LEVELS 5
#define SHADOW_WALK_LEVELS SHADOW_MODE_MAX_LEVELS

/* What bit 7 (PS) of an entry at one level means. */
enum shadow_mode_ps {
	SHADOW_PS_RESERVED, /* must be 0 (PML4E, PML5E) */
	SHADOW_PS_LEAF,     /* the entry maps a page whatever bit 7 says (PTE: PAT) */
	SHADOW_PS_PAGE,     /* PS = 1 maps a page (PDE) */
	SHADOW_PS_PAGE_1G,  /* PS = 1 maps a page if CPUID says so, else reserved (PDPTE) */
	/* 32-bit PDE (SDM 3A §4.3, tables 4-4, 4-5): PS = 1 maps a 4 MiB page
	 * with CR4.PSE, and is ignored without it (the PDE names a table);
	 * the page's address bits (M-1):32 sit in bits (M-20):13 with PSE-36,
	 * M = min(MAXPHYADDR, 40), and bits 21:(M-19) are reserved; without
	 * PSE-36 bits 21:13 are (M = 32). */
	SHADOW_PS_PAGE_PSE,
};

struct shadow_mode_level {
	unsigned shift; /* address bits translated below this level */
	enum shadow_mode_ps ps;
	uint64_t rsvd;      /* reserved in every present entry here, beyond MAXPHYADDR/XD */
	uint64_t rsvd_page; /* reserved as well when the entry maps a page */
	uint64_t frame;     /* when it maps a page: the page frame's address bits */
};

/* One guest paging mode (SDM 3A §4.1.1, table 4-1): a descriptor, not
 * another walker. */
struct shadow_mode {
	const char *name;
	int levels;          /* the root table's level */
	unsigned entry_size; /* bytes per entry: 8, or 4 */
	unsigned index_bits; /* per level */
	unsigned va_bits;    /* linear addresses must be canonical in this many bits */
	/* Linear addresses are 32 bits, zero-extended (32-bit and PAE paging,
	 * §4.3, §4.4): a GVA at or above 4 GiB cannot occur; the walker
	 * refuses one as it does a non-canonical one (SHADOW_WALK_GP). */
	bool linear32;
	/* The root level's entries are not read from memory: they are the
	 * PDPTE registers (PAE, §4.4.1), loaded at CR3 load and checked then
	 * (shadow_pae_load_pdptes); the walk neither checks them again nor
	 * combines rights over them (they have no R/W, U/S, XD) nor sets A. */
	bool root_regs;
	uint64_t cr3_mask;   /* CR3 bits that address the root table */
	uint64_t table_mask; /* entry bits that address the next table */
	bool xd;             /* entries have XD (bit 63), reserved without EFER.NXE */
	/* Bits MAXPHYADDR up to this one are reserved in every present entry:
	 * 51 in IA-32e paging (62:52 are ignored, table 4-15), 62 in PAE
	 * paging (table 4-9), 0 for none (32-bit paging). */
	unsigned rsvd_hi;
	struct shadow_mode_level level[SHADOW_MODE_MAX_LEVELS + 1]; /* [1 .. levels] */
};

/* IA-32e 4-level paging (SDM 3A §4.5, tables 4-14 to 4-20). */
extern const struct shadow_mode shadow_mode_long4;
/* 32-bit paging (§4.3, tables 4-4 to 4-6). */
extern const struct shadow_mode shadow_mode_legacy32;
/* PAE paging (§4.4, tables 4-8 to 4-11). */
extern const struct shadow_mode shadow_mode_pae;
/* 5-level paging, CR4.LA57 (§4.5: PML5E as a PML4E, 57-bit linear addresses). */
extern const struct shadow_mode shadow_mode_long5;

static inline bool shadow_mode_canonical(const struct shadow_mode *m, gva_t gva)
{
	unsigned drop = 64 - m->va_bits;

	if (m->linear32)
		return !(gva >> 32);
	return (gva_t)((int64_t)(gva << drop) >> drop) == gva;
}

static inline unsigned shadow_mode_index(const struct shadow_mode *m, gva_t gva, int level)
{
	return (unsigned)(gva >> m->level[level].shift) & ((1u << m->index_bits) - 1);
}

/* The guest paging entry of `size` bytes (8, or 4 in 32-bit paging) at
 * `gpa`: the accessor reads aligned quadwords only, so a 4-byte entry is
 * the half of its quadword that holds it.  *pte is 0 where the read fails.
 * The walk and the shadow cache's write tracking both read entries here. */
static inline __attribute__((always_inline)) int shadow_read_entry(const struct shadow_mem *mem,
								   gpa_t gpa, unsigned size,
								   uint64_t *pte)
{
	uint64_t q;
	int rc;

	if (size == 8) {
		rc = mem->read64(mem->opaque, gpa, pte);
	} else {
		rc = mem->read64(mem->opaque, gpa & ~(gpa_t)7, &q);
		*pte = (uint32_t)(q >> (8 * (gpa & 4)));
	}
	if (rc != SHADOW_MEM_OK)
		*pte = 0;
	return rc;
}

/* ---- the walk ---- */

struct shadow_walk_env {
	const struct shadow_mode *mode;
	const struct shadow_mem *mem;
	const struct shadow_cpu *cpu;
	gpa_t cr3;
	const uint64_t *pdpte; /* root_regs modes (PAE): the 4 PDPTE registers */
};

enum shadow_walk_status {
	SHADOW_WALK_OK,        /* translated: gpa, combined rights */
	SHADOW_WALK_PF,        /* genuine guest #PF: pferr */
	SHADOW_WALK_GP,        /* non-canonical GVA (SDM 3A §3.3.7.1) */
	SHADOW_WALK_BAD_TABLE, /* an entry lies outside guest RAM: bad_gpa */
};

/* Mirrors the hardware walker (Linux paging_tmpl.h guest_walker): the
 * entries read from memory and where they live, indexed by level (1 = PTE;
 * 4 = PML4E in 4-level paging, 2 = PDE in 32-bit paging), valid for levels
 * level + depth - 1 down to level.  A 4-byte entry is held zero-extended,
 * at its own GPA (not its quadword's).  PAE's PDPTEs are registers, never
 * in these arrays: a PAE walk reads at most the PDE and the PTE. */
struct shadow_walk {
	uint64_t pte[SHADOW_WALK_LEVELS + 1];
	gpa_t pte_gpa[SHADOW_WALK_LEVELS + 1];
	int depth;
	unsigned entry_size;         /* the mode's: 8, or 4 */
	int level;                   /* OK: leaf level (1..3); otherwise where it stopped */
	gpa_t gpa;                   /* OK: the translated address */
	struct shadow_rights rights; /* combined over the levels */
	uint32_t pferr;              /* PF */
	gpa_t bad_gpa;               /* BAD_TABLE */
};

/* Walk the guest tables for `gva` and check `access` (SHADOW_ACC_*).  Reads
 * guest memory only; sets no A/D bit. */
enum shadow_walk_status shadow_walk(const struct shadow_walk_env *env, gva_t gva, unsigned access,
				    struct shadow_walk *w);

/* Whether rights `r` combined over a translation allow `access` under `cpu`
 * (SDM 3A §4.6; implicit supervisor accesses are not modelled: every
 * supervisor access counts as explicit).  Inline: the walker's and the
 * cache's fast path's last test. */
static inline bool shadow_walk_allows(const struct shadow_cpu *cpu, struct shadow_rights r,
				      unsigned access)
{
	bool user = r.user, write = r.write, no_exec = r.nx && cpu->efer_nxe;

	if (access & SHADOW_ACC_USER) {
		if (!user)
			return false;
		if (access & SHADOW_ACC_WRITE)
			return write;
		return !(access & SHADOW_ACC_FETCH) || !no_exec;
	}
	if (access & SHADOW_ACC_FETCH)
		return !(user && cpu->cr4_smep) && !no_exec;
	/* SMAP: explicit supervisor data access to a user page needs AC=1 */
	if (user && cpu->cr4_smap && !cpu->rflags_ac)
		return false;
	if (access & SHADOW_ACC_WRITE)
		return write || !cpu->cr0_wp;
	return true;
}

/* The bits reserved in a present guest entry at `level` of mode `m` whose
 * bit 7 is that of `pte` (§4.5; at level 1 they do not depend on `pte`). */
uint64_t shadow_walk_reserved_mask(const struct shadow_mode *m, const struct shadow_cpu *cpu,
				   int level, uint64_t pte);

/* Whether a present guest entry at `level` of mode `m` sets a reserved bit. */
bool shadow_walk_reserved(const struct shadow_mode *m, const struct shadow_cpu *cpu, int level,
			  uint64_t pte);

enum shadow_ad_status {
	SHADOW_AD_OK,
	SHADOW_AD_CHANGED, /* a guest entry changed since the walk: walk again */
	SHADOW_AD_OUTSIDE, /* an entry's GPA left RAM (accessor refused) */
};

/* Set the bits of `want` (A, D) that the guest entry *pte, read at `gpa`,
 * lacks, by one compare-exchange (§4.8).  On OK *pte is the new value and
 * *set the bits set now; nothing is written otherwise. */
static inline enum shadow_ad_status shadow_walk_set_entry_ad(const struct shadow_mem *mem,
							     gpa_t gpa, uint64_t *pte,
							     uint64_t want, uint64_t *set)
{
	uint64_t old = *pte, bits = want & ~old, expected = old;
	int rc;

	*set = 0;
	if (!bits)
		return SHADOW_AD_OK;
	rc = mem->cmpxchg64(mem->opaque, gpa, &expected, old | bits);
	if (rc == SHADOW_MEM_CHANGED)
		return SHADOW_AD_CHANGED;
	if (rc != SHADOW_MEM_OK)
		return SHADOW_AD_OUTSIDE;
	*pte = old | bits;
	*set = bits;
	return SHADOW_AD_OK;
}

/* The same for the 4-byte entry *pte at `gpa` (32-bit paging): a
 * compare-exchange of the aligned quadword holding it that changes only
 * its half; a change of the other half alone is retried, a change of this
 * one is SHADOW_AD_CHANGED. */
enum shadow_ad_status shadow_walk_set_entry_ad32(const struct shadow_mem *mem, gpa_t gpa,
						 uint64_t *pte, uint64_t want, uint64_t *set);

/* After a successful walk: set A in every entry used and D in the leaf on a
 * write, each by compare-exchange and only where not already set (§4.8).
 * w->pte[] is updated and the bits set now are stored in set[level]. */
enum shadow_ad_status shadow_walk_set_ad(const struct shadow_mem *mem, struct shadow_walk *w,
					 unsigned access, uint64_t set[SHADOW_WALK_LEVELS + 1]);

/* PAE (§4.4.1): load the four PDPTEs of the PDPT that CR3 bits 31:5 name,
 * as mov to CR3 and a change into PAE paging do.  SHADOW_PDPTE_OK with
 * pdpte[] filled; SHADOW_PDPTE_GP (the load raises #GP) when a present one
 * sets a reserved bit (bits 2:1, 8:5, 63:MAXPHYADDR, table 4-8);
 * SHADOW_PDPTE_OUTSIDE when the PDPT is not in guest RAM.  pdpte[] is left
 * alone on failure. */
enum shadow_pdpte_status {
	SHADOW_PDPTE_OK,
	SHADOW_PDPTE_GP,
	SHADOW_PDPTE_OUTSIDE,
};
enum shadow_pdpte_status shadow_pae_load_pdptes(const struct shadow_mem *mem,
						const struct shadow_cpu *cpu, gpa_t cr3,
						uint64_t pdpte[4]);

/* The reserved bits of a present PDPTE (table 4-8). */
uint64_t shadow_pae_pdpte_reserved(const struct shadow_cpu *cpu);

#endif
