/* Shadow page pool: bump allocation plus a free stack. */
#include "pool.h"

void shadow_pool_init(struct shadow_pool *p, mpa_t base, void *host, uint32_t pages,
		      struct shadow_pool_books *bk, uint64_t free_off)
{
	*p = (struct shadow_pool){
		.base = base, .host = host, .pages = pages, .bk = bk, .free_off = free_off
	};
}

static uint32_t *stack(const struct shadow_pool *p, void *state)
{
	return (uint32_t *)((char *)state + p->free_off);
}

static uint32_t page_of(const struct shadow_pool *p, mpa_t mpa)
{
	assert(shadow_pool_contains(p, mpa) && !(mpa & ~X86_PAGE_MASK));
	return (uint32_t)((mpa - p->base) >> X86_PAGE_SHIFT);
}

bool shadow_pool_alloc(struct shadow_pool *p, void *state, mpa_t *mpa)
{
	uint32_t page;

	if (p->bk->nfree)
		page = stack(p, state)[--p->bk->nfree];
	else if (p->bk->next < p->pages)
		page = p->bk->next++;
	else
		return false;
	*mpa = p->base + ((mpa_t)page << X86_PAGE_SHIFT);
	shadow_pool_zero(p, *mpa);
	if (shadow_pool_in_use(p) > p->bk->peak)
		p->bk->peak = shadow_pool_in_use(p);
	return true;
}

void shadow_pool_free(struct shadow_pool *p, void *state, mpa_t mpa)
{
	uint32_t page = page_of(p, mpa);

	assert(page < p->bk->next && p->bk->nfree < p->bk->next);
	stack(p, state)[p->bk->nfree++] = page;
}

void shadow_pool_reset(struct shadow_pool *p, uint32_t keep)
{
	/* only valid while the kept pages are the first ones bumped */
	assert(keep <= p->bk->next);
	p->bk->next = keep;
	p->bk->nfree = 0;
}

bool shadow_pool_contains(const struct shadow_pool *p, mpa_t mpa)
{
	return mpa >= p->base && mpa - p->base < ((mpa_t)p->pages << X86_PAGE_SHIFT);
}

uint32_t shadow_pool_in_use(const struct shadow_pool *p)
{
	return p->bk->next - p->bk->nfree;
}

void shadow_pool_zero(const struct shadow_pool *p, mpa_t mpa)
{
	memset(shadow_pool_table(p, mpa), 0, X86_PAGE_SIZE);
	if (p->zero)
		p->zero(p->opaque, mpa);
}
