/* The shadow MMU (DESIGN.md §3): shadow page tables for a guest running with
 * paging off, 32-bit, PAE or 4-level paging (enum shadow_paging), kept as a
 * virtual TLB (vtlb.h), or, in 4-level paging with SHADOW_OPT_CACHE, as a
 * cache of write-protected guest tables (cache.h).  The shadow tables are
 * 4-level tables in every mode: the real vCPU always runs in long mode
 * (the guest's 32-bit code in compatibility mode), and a guest mode only
 * changes how the guest's tables are walked.  Pure logic with no KVM in it: guest
 * memory is reached only through struct shadow_mem, shadow tables live in a
 * caller-provided pool, and every operation returns a status (it never prints
 * and never exits).
 *
 * Contract with the VMM that loads shadow_root() into the real CR3:
 *   - real CR0.WP = 1 and real EFER.NXE = 1 (shadow leaves use XD to emulate
 *     guest NX and guest CR0.WP = 0 under SMEP);
 *   - real CR4.SMEP / CR4.SMAP equal the guest's and the real RFLAGS.AC is the
 *     guest's own: user pages are shadowed as user pages and the hardware
 *     applies SMEP/SMAP to them (a shadow entry cannot say "user but not
 *     supervisor");
 *   - real CR4.PGE may be anything: shadow leaves never set G;
 *   - after any operation that removed shadow entries, shadow_take_tlb_flush()
 *     returns true and the VMM must flush the real TLB before resuming (reload
 *     the real CR3).  Fills only add entries or raise permissions, which needs
 *     no flush (a #PF invalidates the faulting translation, SDM 3A §4.10.4.1).
 *
 *   - with guest paging off (SHADOW_PAGING_OFF) the shadow leaves are user
 *     pages (U = 1: no U/S distinction without paging), so the real CR4.SMEP
 *     and CR4.SMAP must be 0 then, as they have no effect on the guest.
 *
 * Not modelled: protection keys (CR4.PKE; bits 62:59 are ignored and the PK
 * error bit never set), PCIDs, 5-level paging in the engine (the walker has
 * it, a 4-level shadow cannot map 57-bit addresses), and implicit supervisor
 * accesses (every supervisor access is an explicit one for SMAP; the VMM
 * reads descriptor tables itself).  Known imprecision (no hardware entry is
 * "supervisor-writable, user-readable"): under CR0.WP = 0 with SMAP, a
 * supervisor write (AC = 1) to a read-only user page leaves a supervisor-only
 * leaf, so a later supervisor read of that page with AC = 0 is not refused
 * until the leaf is dropped (invlpg, CR3 write, flush).
 * One context per vCPU; a context is not thread-safe.
 */
#ifndef SHADOWVM_SHADOW_H
#define SHADOWVM_SHADOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"
#include "x86.h"

/* Guest-memory accessor.  Every callback fails (returns SHADOW_MEM_OUTSIDE)
 * for a GPA whose 8 bytes are not all inside guest RAM; the library never
 * touches guest memory any other way.  GPAs passed are 8-byte aligned. */
enum shadow_mem_status {
	SHADOW_MEM_OK = 0,
	SHADOW_MEM_CHANGED = 1,  /* cmpxchg64 only: *val differed, nothing written */
	SHADOW_MEM_OUTSIDE = -1, /* GPA outside guest RAM */
};

struct shadow_mem {
	int (*read64)(void *opaque, gpa_t gpa, uint64_t *val);
	/* Not used by the virtual-TLB engine; kept for emulated guest PTE
	 * writes once guest tables are write-protected. */
	int (*write64)(void *opaque, gpa_t gpa, uint64_t val);
	/* Atomically: if *(gpa) == expected, store desired and return OK;
	 * otherwise store the current value in *expected, return CHANGED. */
	int (*cmpxchg64)(void *opaque, gpa_t gpa, uint64_t *expected, uint64_t desired);
	void *opaque;
	uint64_t ram_size; /* guest RAM is GPA [0, ram_size), page-aligned */
};

/* For an accessor over mapped memory (the VMM's of guest RAM, the fill
 * monitor's): the sequentially consistent load, store and compare-exchange
 * of the entry at p, the entry's mapping or NULL (SHADOW_MEM_OUTSIDE). */
static inline int shadow_mem_load(const uint64_t *p, uint64_t *val)
{
	if (!p)
		return SHADOW_MEM_OUTSIDE;
	*val = __atomic_load_n(p, __ATOMIC_SEQ_CST);
	return SHADOW_MEM_OK;
}

static inline int shadow_mem_store(uint64_t *p, uint64_t val)
{
	if (!p)
		return SHADOW_MEM_OUTSIDE;
	__atomic_store_n(p, val, __ATOMIC_SEQ_CST);
	return SHADOW_MEM_OK;
}

static inline int shadow_mem_cmpxchg(uint64_t *p, uint64_t *expected, uint64_t desired)
{
	if (!p)
		return SHADOW_MEM_OUTSIDE;
	return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_SEQ_CST,
					   __ATOMIC_SEQ_CST)
		       ? SHADOW_MEM_OK
		       : SHADOW_MEM_CHANGED;
}

/* The pool of shadow pages: `pages` 4 KiB pages at machine address `base`,
 * seen by the host at `host` (page-aligned).  Must not overlap guest RAM's
 * MPA range.  Never grows. */
struct shadow_pool_cfg {
	mpa_t base;
	void *host;
	uint32_t pages; /* at least SHADOW_POOL_MIN_PAGES */
	/* May be NULL.  `host` is then the shadow MMU's own view of the tables,
	 * and every store it makes to an entry, and every page it zeroes, is
	 * reported too, in order, for the owner to make them in the real
	 * tables the CPU walks (by the vCPU, inside the VM: DESIGN.md §3). */
	void (*store)(void *opaque, mpa_t entry, uint64_t value);
	void (*zero)(void *opaque, mpa_t page);
	void *opaque;
};

/* Memory for the context's own state, asked for by shadow_create only
 * (never on the fault path) and given back by shadow_destroy.  zalloc
 * returns `bytes` zeroed bytes or NULL.  Leave zalloc NULL for calloc/free
 * in a hosted build; a freestanding build (the monitor) must provide one. */
struct shadow_alloc {
	void *(*zalloc)(void *opaque, size_t bytes);
	void (*free)(void *opaque, void *p); /* may be NULL: nothing given back */
	void *opaque;
};

/* A root plus one table per lower level: the least that can map one page. */
#define SHADOW_POOL_MIN_PAGES 4u

/* Guest control state the walker obeys (SDM 3A §4.1.3, §4.6). */
struct shadow_cpu {
	bool cr0_wp;
	bool cr4_smep;
	bool cr4_smap;
	bool rflags_ac; /* only matters with cr4_smap */
	bool efer_nxe;
	bool gbpages;        /* CPUID.80000001H:EDX.Page1GB */
	unsigned maxphyaddr; /* CPUID.80000008H:EAX[7:0], 32..52 */
	bool cr4_pse;        /* 32-bit paging only: 4 MiB pages (SDM 3A §4.3) */
	bool pse36;          /* CPUID.01H:EDX.PSE-36[17]: 4 MiB pages above 4 GiB */
};

/* Kind of access, bit-compatible with the #PF error code (W, U, I/D), so a
 * hidden fault's error code can be passed through shadow_access_from_pferr.
 * Neither WRITE nor FETCH means a data read. */
#define SHADOW_ACC_WRITE ((unsigned)X86_PF_W)
#define SHADOW_ACC_USER ((unsigned)X86_PF_U)
#define SHADOW_ACC_FETCH ((unsigned)X86_PF_I)

static inline unsigned shadow_access_from_pferr(uint64_t pferr)
{
	return (unsigned)(pferr & (X86_PF_W | X86_PF_U | X86_PF_I));
}

/* ---- events, for the trace (DESIGN.md §6) ---- */
enum shadow_event_kind {
	SHADOW_EV_FILL,        /* a shadow leaf was installed */
	SHADOW_EV_AD_SET,      /* A and/or D bits were set in guest entries */
	SHADOW_EV_FLUSH,       /* every shadow but the hypervisor entry dropped */
	SHADOW_EV_EVICT,       /* pool full: shadows dropped to make room */
	SHADOW_EV_GUEST_FAULT, /* a genuine guest #PF or #GP */
	SHADOW_EV_INVLPG,
	SHADOW_EV_CR3,
	SHADOW_EV_PREFETCH,  /* PREFETCH: a neighbour's shadow leaf installed */
	SHADOW_EV_UNPROTECT, /* CACHE: a guest write to a protected table */
	SHADOW_EV_COUNT,
};

enum shadow_flush_reason {
	SHADOW_FLUSH_EXPLICIT,  /* shadow_flush() */
	SHADOW_FLUSH_CR3,       /* shadow_set_cr3() */
	SHADOW_FLUSH_CPU_STATE, /* shadow_set_cpu (a walk rule), shadow_set_paging */
	SHADOW_FLUSH_EVICT,     /* pool exhausted */
};

#define SHADOW_LEVELS X86_PT_LEVELS

/* Per-level arrays are indexed by the guest mode's level: 1 = PTE, 2 = PDE
 * (a 2 MiB page in PAE and 4-level paging, a 4 MiB page in 32-bit paging),
 * 3 = PDPTE, 4 = PML4E.  Entries are valid for levels level + depth - 1
 * down to level: SHADOW_LEVELS down to SHADOW_LEVELS - depth + 1 in 4-level
 * paging, from 2 in 32-bit and PAE paging (PAE's PDPTEs are registers,
 * never reported), none with paging off.  A 32-bit paging entry is its
 * 4-byte value, at its own GPA. */
struct shadow_event {
	enum shadow_event_kind kind;
	gva_t gva;           /* FILL, AD_SET, GUEST_FAULT, INVLPG, EVICT, PREFETCH */
	gpa_t vcr3;          /* the guest CR3 in force (CR3: the new one) */
	unsigned access;     /* SHADOW_ACC_* */
	uint32_t error_code; /* FILL, AD_SET, GUEST_FAULT: shadow_fault's pferr */
	unsigned vector;     /* GUEST_FAULT: X86_EXC_PF or X86_EXC_GP */
	uint32_t pferr;      /* GUEST_FAULT #PF: the exact error code */
	int level;           /* guest leaf level (1..3), or where the walk stopped */
	int depth;           /* number of guest entries read */
	gpa_t gpte_gpa[SHADOW_LEVELS + 1];
	uint64_t gpte[SHADOW_LEVELS + 1];   /* values after any A/D update */
	uint64_t ad_set[SHADOW_LEVELS + 1]; /* A/D bits this fault set, per level */
	gpa_t gpa;      /* FILL, PREFETCH: the translated GPA; UNPROTECT: the table */
	uint64_t spte;  /* FILL, PREFETCH: the shadow leaf written */
	mpa_t spte_mpa; /* FILL, PREFETCH: where it was written */
	enum shadow_flush_reason reason; /* FLUSH, EVICT */
	unsigned zapped;                 /* UNPROTECT: shadow tables of that guest table dropped */
	bool volatile_table;             /* UNPROTECT: the table is left unprotected from now */
	uint32_t pages_in_use;
};

typedef void (*shadow_event_fn)(void *opaque, const struct shadow_event *ev);

/* Optimizations (issue 8), each switchable so that benchmarks can show its
 * effect and every differential test runs with it on and off.  With none the
 * engine is a pure virtual TLB: one root, emptied at every guest CR3 write. */
#define SHADOW_OPT_CACHE \
	0x1u                     /* shadow tables kept per guest table across CR3
                                    writes; guest tables write-protected */
#define SHADOW_OPT_PREFETCH 0x2u /* a fill also maps neighbours whose A is set */
#define SHADOW_OPT_HUGE 0x4u     /* guest 2M/1G pages get 2 MiB shadow leaves */
#define SHADOW_OPT_ALL (SHADOW_OPT_CACHE | SHADOW_OPT_PREFETCH | SHADOW_OPT_HUGE)

/* A window of guest-physical addresses outside RAM that a device claims
 * (a local APIC, an IOAPIC): a guest leaf naming a page in it is shadowed
 * to the same machine address, which lies in no memslot, so the host's
 * KVM serves the access (or exits with KVM_EXIT_MMIO).  Anywhere else
 * outside RAM stays SHADOW_ERR_PAGE_OUTSIDE_RAM.  Its leaves are 4 KiB,
 * never prefetched, never write-protected. */
struct shadow_mmio {
	gpa_t base;     /* page-aligned */
	uint64_t size;  /* bytes, page-aligned, non-zero */
	uint32_t flags; /* SHADOW_MMIO_* */
};

/* The window's leaves that let the guest kernel read and write with no
 * question to ask (present, writable, supervisor-only, dirty, not made
 * writable by CR0.WP = 0 alone) carry SHADOW_SPTE_MMIO_MARK, a reserved
 * bit: every access through them faults with PFERR.RSVD instead of
 * reaching the device, for an emulator inside the VM to serve (the fill
 * monitor's local-APIC fast path, DESIGN.md §3).  Any other leaf of the
 * window, and every leaf where MAXPHYADDR leaves no bit 51 reserved, is
 * plain.  A marked leaf a fault finds unserved goes plain again through
 * shadow_mmio_unmark. */
#define SHADOW_MMIO_MARK 0x1u

/* Whether a shadow MMU on a CPU with this MAXPHYADDR marks device leaves at
 * all: only where bit 51 is reserved (SDM 3A §4.5).  The one test that both
 * the marking and the VMM's emulator behind it go by. */
static inline bool shadow_mmio_mark_possible(unsigned maxphyaddr)
{
	return maxphyaddr <= 51;
}

#define SHADOW_MMIO_MAX 4u

struct shadow_config {
	struct shadow_mem mem;
	struct shadow_mmio mmio[SHADOW_MMIO_MAX]; /* the first nmmio */
	unsigned nmmio;
	struct shadow_pool_cfg pool;
	unsigned hv_index; /* the hypervisor's PML4 slot (SHADOWVM_ABI_RESERVED_PML4_INDEX) */
	uint64_t hv_entry; /* its PML4E value, copied into every root */
	struct shadow_cpu cpu;
	gpa_t vcr3;           /* initial guest CR3 */
	shadow_event_fn hook; /* may be NULL */
	void *hook_opaque;
	unsigned opts; /* SHADOW_OPT_* */
	struct shadow_alloc alloc;
	/* May be NULL: the state block is then asked of alloc.  Else it is
	 * here: shadow_state_bytes(cfg) zeroed bytes, 8-byte aligned, that
	 * stay the caller's (the monitor's slot, where both views see it). */
	void *state;
};

/* ---- results ---- */
enum shadow_status {
	SHADOW_FILLED,   /* shadow leaf installed: resume the guest */
	SHADOW_GUEST_PF, /* reflect #PF with res->pferr, CR2 = gva */
	SHADOW_GUEST_GP, /* reflect #GP(0): non-canonical GVA */
	SHADOW_RETRY,    /* guest tables kept changing under the walk, or a
	                       write's page could not be unprotected: no usable
	                       leaf, resume (it faults again) */
	SHADOW_ERROR,    /* guest broke the contract or bad argument: res->err */
	SHADOW_OK,       /* shadow_set_paging, shadow_load_cr3: done */
};

enum shadow_error {
	SHADOW_ERR_NONE,
	SHADOW_ERR_TABLE_OUTSIDE_RAM, /* CR3 or a table entry names a GPA past RAM */
	SHADOW_ERR_PAGE_OUTSIDE_RAM,  /* a leaf maps a GPA past RAM */
	SHADOW_ERR_RESERVED_SLOT,     /* access to the hypervisor's PML4 slot */
	SHADOW_ERR_BAD_ARG,
	SHADOW_ERR_NOMEM,
};

struct shadow_fault_result {
	enum shadow_status status;
	enum shadow_error err;
	uint32_t pferr; /* SHADOW_GUEST_PF */
	gpa_t gpa;      /* FILLED: translation; TABLE/PAGE_OUTSIDE_RAM: the GPA */
	int level;      /* guest leaf level, or where the walk stopped */
};

struct shadow_stats {
	uint64_t hidden_faults;            /* shadow_fault() calls */
	uint64_t fills[SHADOW_LEVELS + 1]; /* by guest leaf level: 1 = 4K, 2 = 2M/4M, 3 = 1G */
	uint64_t a_sets;                   /* guest entries whose A bit was set */
	uint64_t d_sets;
	uint64_t guest_faults;
	uint64_t ad_retries; /* walks repeated because an entry changed */
	uint64_t flushes;
	uint64_t invlpgs;
	uint64_t cr3_loads;
	uint64_t evictions;
	uint64_t roots_reused; /* CACHE: guest CR3 writes that found their root */
	uint64_t unprotects;   /* CACHE: guest writes to a write-protected table */
	uint64_t zaps;         /* CACHE: shadow tables dropped by those writes */
	uint64_t floods;       /* CACHE: tables left unprotected (flooded, self-mapped) */
	uint64_t prefetched;   /* PREFETCH: leaves installed for neighbours */
	uint64_t huge_leaves;  /* HUGE: 2 MiB shadow leaves installed */
	uint64_t fast_fills;   /* CACHE: fills that read only the guest PTE */
	uint64_t mmio_marks;   /* device leaves installed with the MMIO mark */
	uint64_t mmio_unmarks; /* marked leaves made plain (shadow_mmio_unmark) */
	uint32_t pages_in_use;
	uint32_t pages_peak;
};

struct shadow;

/* Create a context whose root holds only the hypervisor entry.  Returns NULL
 * on a bad config (pool too small or overlapping RAM, bad hv_index or
 * maxphyaddr, missing callback) or when out of host memory.  The only
 * calls to cfg->alloc: one for the context, one for its state block (no
 * other operation allocates). */
struct shadow *shadow_create(const struct shadow_config *cfg);
/* Bytes of the state block shadow_create(cfg) makes; 0 for a bad config. */
uint64_t shadow_state_bytes(const struct shadow_config *cfg);

/* Give the context and its state block back through cfg->alloc. */
void shadow_destroy(struct shadow *s);

/* The state block (every mutable structure of the engine and the pool's
 * books) and its size in *bytes.  Its contents, like the pool's, hold no
 * host address: offsets, page indices and MPAs only. */
void *shadow_state(const struct shadow *s, size_t *bytes);

/* The state block and the pool are now seen at `state` (8-byte aligned)
 * and `pool_host` (page-aligned): byte copies of the old ones, or the same
 * memory mapped elsewhere (the monitor); the pool keeps its MPA.  Nothing
 * else changes; shadow_destroy then gives `state` back through cfg->alloc
 * as it would have the old block.  False, changing nothing, for a NULL or
 * misaligned address. */
bool shadow_rebase(struct shadow *s, void *state, void *pool_host);

/* What one view of a context brings of its own: the guest-memory
 * accessor (ram_size is the context's), the pool as this view sees it
 * (base and pages are the context's) and its store hooks, the event hook. */
struct shadow_view {
	struct shadow_mem mem;
	struct shadow_pool_cfg pool;
	shadow_event_fn hook; /* may be NULL */
	void *hook_opaque;
};

/* A second view, made in `mem` (SHADOW_VIEW_BYTES, 8-byte aligned), of a
 * context that shadow_create made elsewhere and whose state block (`bytes`
 * long, or more) is seen here at `state`: the monitor's, inside the VM, of
 * the VMM's context.  Both views work on the same block and pool, one at a
 * time.  No allocation: shadow_destroy is never called on it.  NULL for a
 * block that is not one (bad magic or sizes) or a misaligned address. */
#define SHADOW_VIEW_BYTES 320u
struct shadow *shadow_attach(void *mem, void *state, uint64_t bytes, const struct shadow_view *v);

/* The guest's own translation of gva for `access` (SHADOW_ACC_*) in the
 * guest's paging mode, with no side effect: no A/D bit set, no shadow
 * installed, no event.  True with the GPA when the walk allows the access
 * and the page is in RAM (paging off: gva itself, below 4 GiB). */
bool shadow_translate(const struct shadow *s, gva_t gva, unsigned access, gpa_t *gpa);

/* Free pool pages: a fill with at least SHADOW_LEVELS - 1 of them never
 * evicts (it makes at most one table per level below the root). */
uint32_t shadow_pool_free_pages(const struct shadow *s);

/* Resolve a hidden page fault at `gva` whose #PF error code is `pferr` (the
 * hardware's, P, W, U and I only; for an access the VMM makes itself,
 * SHADOW_ACC_* bits with P clear): walk the guest tables from vCR3, set A/D,
 * install a shadow leaf.  The error code travels with the fault's events.
 * Fills `res` and returns res->status; never fails the guest for lack of
 * pool pages. */
enum shadow_status shadow_fault(struct shadow *s, gva_t gva, uint32_t pferr,
				struct shadow_fault_result *res);

/* Guest `mov cr3`: remember vcr3 (bits 11:0 ignored; in PAE bits 4:0, and
 * the PDPTEs are loaded, see shadow_load_cr3) and drop every shadow
 * but the hypervisor entry (with SHADOW_OPT_CACHE: switch to vcr3's cached
 * root, or a new one, dropping only volatile shadows).  Returns false, changing nothing, if vcr3 sets a
 * bit at or above MAXPHYADDR (above bit 31 outside 4-level paging): the
 * guest gets #GP(0) (SDM 3A §4.5; CR4.PCIDE is not supported, so bit 63 is
 * reserved too); in PAE also for a reserved PDPTE bit (#GP as well) and a
 * PDPT outside RAM (shadow_load_cr3 tells the two apart). */
bool shadow_set_cr3(struct shadow *s, uint64_t vcr3);

/* Guest paging modes (SDM 3A §4.1.1, table 4-1). */
enum shadow_paging {
	SHADOW_PAGING_OFF,   /* CR0.PG = 0: GVA = GPA, below 4 GiB */
	SHADOW_PAGING_32,    /* 32-bit paging: CR4.PSE in shadow_cpu.cr4_pse */
	SHADOW_PAGING_PAE,   /* PAE paging */
	SHADOW_PAGING_LONG4, /* 4-level paging: the mode a context starts in */
	SHADOW_PAGING_LONG5, /* 5-level paging: walker only, refused here */
};

/* Options by guest mode: in LONG4 every SHADOW_OPT_*.  In OFF, 32 and PAE
 * the engine is the plain virtual TLB whatever the options: no root cache
 * and no prefetch, which assume guest tables of 512 8-byte entries (KVM
 * shadows 32-bit tables with "quadrants" of its 512-entry shadow pages:
 * future work); SHADOW_OPT_HUGE works in 32-bit (a 4 MiB guest page maps
 * as 2 MiB shadow leaves, one per half) and PAE (2 MiB pages).
 *
 * Switch the guest's paging mode and its CR3 together, as a mov to CR0 or
 * CR4 (or an EFER write) that changes the mode: every shadow but the
 * hypervisor entry is dropped (a flush, reason CPU_STATE).  In PAE the
 * PDPTEs are loaded from the PDPT first (§4.4.1).  SHADOW_OK; changing
 * nothing: SHADOW_GUEST_GP when a PDPTE sets a reserved bit or cr3 a bit at
 * or above MAXPHYADDR (32 in OFF, 32 and PAE: CR3 is 32 bits there; the
 * VMM passes the low 32), SHADOW_ERROR for a PDPT outside guest RAM and for
 * LONG5 or an unknown mode.  The VMM calls it for every guest write that
 * changes the mode (CR0.PG, CR4.PAE, EFER.LME with CR0.PG), and in PAE
 * also for one that makes the hardware reload the PDPTEs without a mode
 * change (§4.4.1: a mov to CR0 or CR4 changing CD, NW, PGE, PSE or SMEP),
 * with the mode and CR3 unchanged. */
enum shadow_status shadow_set_paging(struct shadow *s, enum shadow_paging mode, gpa_t cr3);

/* shadow_set_cr3 with the outcome spelled out: SHADOW_OK, SHADOW_GUEST_GP
 * (a reserved CR3 bit, or in PAE a reserved PDPTE bit), SHADOW_ERROR (in
 * PAE, a PDPT outside guest RAM), changing nothing but on SHADOW_OK.  In
 * PAE a CR3 load reloads the PDPTEs (§4.4.1); shadow_set_cr3 answers false
 * for both failures. */
enum shadow_status shadow_load_cr3(struct shadow *s, uint64_t vcr3);

/* The guest's paging mode, and in PAE its four PDPTE registers. */
enum shadow_paging shadow_paging_mode(const struct shadow *s);
const uint64_t *shadow_pae_pdptes(const struct shadow *s);

/* Guest `invlpg gva`: drop the shadow translation of the page holding gva,
 * all 4 KiB shadow leaves of it when the guest mapped it with a 2M/1G page
 * (a 4 MiB page in 32-bit paging: both of its 2 MiB halves)
 * (with SHADOW_OPT_CACHE also every volatile shadow, SDM 3A §4.10.4.1). */
void shadow_invlpg(struct shadow *s, gva_t gva);

/* Drop every shadow entry but the hypervisor entry. */
void shadow_flush(struct shadow *s);

/* Update the guest control state.  A change of WP, SMEP, SMAP, NXE,
 * MAXPHYADDR, 1G support, CR4.PSE or PSE-36 flushes (shadows built under one setting are
 * never used under another); RFLAGS.AC alone does not.  With
 * SHADOW_OPT_CACHE, whose shadows are keyed by WP, SMEP, SMAP and NXE, a
 * change of those switches to the root for the new setting instead.  Returns false,
 * changing nothing, for maxphyaddr outside 32..52. */
bool shadow_set_cpu(struct shadow *s, const struct shadow_cpu *cpu);

/* Machine address of the current shadow root, for the real CR3. */
mpa_t shadow_root(const struct shadow *s);

/* True once after shadow entries were removed: flush the real TLB. */
bool shadow_take_tlb_flush(struct shadow *s);

gpa_t shadow_vcr3(const struct shadow *s);
const struct shadow_cpu *shadow_cpu_state(const struct shadow *s);
void shadow_get_stats(const struct shadow *s, struct shadow_stats *out);

/* The safety invariants (DESIGN.md §3): hypervisor entry intact, table
 * pointers inside the pool, leaves inside guest RAM and never on a shadow
 * page, pool within its bound.  True, or false with one line in why. */
bool shadow_check(const struct shadow *s, char *why, size_t len);

/* The one GPA -> MPA translation (DESIGN.md §1): identity for guest RAM
 * and for the device windows (struct shadow_mmio).  Returns false for any
 * other GPA outside RAM, which never gets an MPA. */
bool shadow_gpa_to_mpa(const struct shadow *s, gpa_t gpa, mpa_t *mpa);

/* Whether gpa lies in one of the context's device windows. */
bool shadow_gpa_in_mmio(const struct shadow *s, gpa_t gpa);

/* A reserved-bit fault at gva: if the current root's leaf for gva is a
 * marked device leaf (SHADOW_MMIO_MARK), make it the plain leaf (the
 * device then serves the access, its rights enforced by the hardware) and
 * ask for a TLB flush; true then.  False, changing nothing, for anything
 * else (no such leaf: the fault is not the shadow's own). */
bool shadow_mmio_unmark(struct shadow *s, gva_t gva);

#endif
