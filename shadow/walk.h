/* The guest page-table walker: 4-level paging as the hardware walks it
 * (Intel SDM Vol. 3A §4.5 translation, §4.6 access rights, §4.7 page-fault
 * error code, §4.8 accessed and dirty flags). */
#ifndef SHADOWVM_WALK_H
#define SHADOWVM_WALK_H

#include <stdbool.h>
#include <stdint.h>

#include "shadow.h"

struct shadow_walk_env {
	const struct shadow_mem *mem;
	const struct shadow_cpu *cpu;
	gpa_t cr3;
};

enum shadow_walk_status {
	SHADOW_WALK_OK,        /* translated: gpa, combined rights */
	SHADOW_WALK_PF,        /* genuine guest #PF: pferr */
	SHADOW_WALK_GP,        /* non-canonical GVA (SDM 3A §3.3.7.1) */
	SHADOW_WALK_BAD_TABLE, /* an entry lies outside guest RAM: bad_gpa */
};

/* Mirrors the hardware walker (Linux paging_tmpl.h guest_walker): the
 * entries read and where they live, indexed by level (4 = PML4E .. 1 = PTE),
 * valid for levels 4 .. 4 - depth + 1. */
struct shadow_walk {
	uint64_t pte[SHADOW_LEVELS + 1];
	gpa_t pte_gpa[SHADOW_LEVELS + 1];
	int depth;
	int level;      /* OK: leaf level (1..3); otherwise where it stopped */
	gpa_t gpa;      /* OK: the translated address */
	bool user;      /* U/S AND-ed over the levels */
	bool write;     /* R/W AND-ed over the levels */
	bool nx;        /* XD OR-ed over the levels (only possible with NXE) */
	uint32_t pferr; /* PF */
	gpa_t bad_gpa;  /* BAD_TABLE */
};

/* Walk the guest tables for `gva` and check `access` (SHADOW_ACC_*).  Reads
 * guest memory only; sets no A/D bit. */
enum shadow_walk_status shadow_walk(const struct shadow_walk_env *env, gva_t gva,
				    unsigned access, struct shadow_walk *w);

/* Whether the rights (user, write, nx) combined over a translation allow
 * `access` under `cpu` (SDM 3A §4.6; implicit supervisor accesses are not
 * modelled: every supervisor access counts as explicit). */
bool shadow_walk_allows(const struct shadow_cpu *cpu, bool user, bool write, bool nx,
			unsigned access);

/* Whether a present guest entry at `level` sets a reserved bit (§4.5). */
bool shadow_walk_reserved(const struct shadow_cpu *cpu, int level, uint64_t pte);

enum shadow_ad_status {
	SHADOW_AD_OK,
	SHADOW_AD_CHANGED,  /* a guest entry changed since the walk: walk again */
	SHADOW_AD_OUTSIDE,  /* an entry's GPA left RAM (accessor refused) */
};

/* After a successful walk: set A in every entry used and D in the leaf on a
 * write, each by compare-exchange and only where not already set (§4.8).
 * w->pte[] is updated and the bits set now are stored in set[level]. */
enum shadow_ad_status shadow_walk_set_ad(const struct shadow_mem *mem, struct shadow_walk *w,
					 unsigned access, uint64_t set[SHADOW_LEVELS + 1]);

#endif
