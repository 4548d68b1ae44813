/* The bounded pool of shadow pages: a bump allocator over a fixed array of
 * 4 KiB pages plus a free stack, so that dropping every shadow is O(1).  The
 * pool never grows; running out is reported and the caller evicts.
 *
 * Position-independent: a page is named by its MPA and reached as
 * host + (mpa - base); the free stack lives in the shadow's state block
 * (engine.h) at free_off, and each call is handed that block's base. */
#ifndef SHADOWVM_POOL_H
#define SHADOWVM_POOL_H

#include "lib.h"
#include "x86.h"

/* The pool's books, kept in the state block (struct shadow_core). */
struct shadow_pool_books {
	uint32_t next; /* pages [next, pages) are untouched since reset */
	uint32_t nfree;
	uint32_t peak;
};

struct shadow_pool {
	mpa_t base;
	uint64_t *host; /* host view of page 0, 512 entries a page */
	uint32_t pages;
	struct shadow_pool_books *bk; /* in the state block */
	uint64_t free_off; /* in the state block: stack of freed page numbers below next */
	void (*store)(void *opaque, mpa_t entry, uint64_t value); /* shadow_pool_cfg */
	void (*zero)(void *opaque, mpa_t page);
	void *opaque;
};

/* Bytes of the free stack of a pool of `pages`, to be reserved in the
 * state block at free_off. */
static inline uint64_t shadow_pool_stack_bytes(uint32_t pages)
{
	return (uint64_t)pages * sizeof(uint32_t);
}

/* A view of the pool of `pages` at machine address `base`, seen at `host`,
 * whose books are `bk` and free stack at `free_off` in the state block. */
void shadow_pool_init(struct shadow_pool *p, mpa_t base, void *host, uint32_t pages,
		      struct shadow_pool_books *bk, uint64_t free_off);

/* A zeroed page, or false when every page is in use; giving one back.
 * `state` is the state block's base. */
bool shadow_pool_alloc(struct shadow_pool *p, void *state, mpa_t *mpa);
void shadow_pool_free(struct shadow_pool *p, void *state, mpa_t mpa);

/* Mark every page free except the first `keep` ones handed out. */
void shadow_pool_reset(struct shadow_pool *p, uint32_t keep);

bool shadow_pool_contains(const struct shadow_pool *p, mpa_t mpa);

/* Host view of the table page at `mpa`, which must be in the pool (the
 * hot path of every fill: inline, checked only by the assert). */
static inline uint64_t *shadow_pool_table(const struct shadow_pool *p, mpa_t mpa)
{
	assert(mpa - p->base < ((mpa_t)p->pages << X86_PAGE_SHIFT) && !(mpa & ~X86_PAGE_MASK));
	return p->host + ((mpa - p->base) >> X86_PAGE_SHIFT) * X86_PT_ENTRIES;
}

uint32_t shadow_pool_in_use(const struct shadow_pool *p);

/* Every store to a shadow entry goes through here: the MMU's own view,
 * then the owner's store hook with the entry's MPA. */
static inline void shadow_pool_set(const struct shadow_pool *p, uint64_t *e, uint64_t v)
{
	*e = v;
	if (p->store)
		p->store(p->opaque,
			 p->base + (mpa_t)((const uint8_t *)e - (const uint8_t *)p->host), v);
}

/* Zero the pool page at `mpa` (a fresh table). */
void shadow_pool_zero(const struct shadow_pool *p, mpa_t mpa);

/* Page number of the pool page at `mpa`, and back. */
static inline uint32_t shadow_pool_index(const struct shadow_pool *p, mpa_t mpa)
{
	return (uint32_t)((mpa - p->base) >> X86_PAGE_SHIFT);
}

static inline mpa_t shadow_pool_mpa(const struct shadow_pool *p, uint32_t page)
{
	return p->base + ((mpa_t)page << X86_PAGE_SHIFT);
}

#endif
