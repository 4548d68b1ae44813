#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "status.h"
#include "trace_read.h"
#include "trace_summary.h"
#include "x86.h"

struct touch {
	uint64_t page;
	bool fill;
};

struct reader {
	struct trace_summary *s;
	struct touch *touches;
	size_t n, cap;
};

static int touch(struct reader *rd, struct json_object *o, bool fill, char *why, size_t whylen)
{
	uint64_t gva;

	if (!trace_rec_u64(o, "gva", &gva)) {
		snprintf(why, whylen, "not a trace record (no \"event\" or \"gva\")");
		return -1;
	}
	if (rd->n == rd->cap) {
		size_t cap = rd->cap ? rd->cap * 2 : 1024;
		struct touch *t = realloc(rd->touches, cap * sizeof(*t));
		if (!t) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
		rd->touches = t, rd->cap = cap;
	}
	rd->touches[rd->n++] = (struct touch){ gva & X86_PAGE_MASK, fill };
	return 0;
}

/* trace_record_fn: account one parsed record; -1 if it is not a trace record. */
static int account(void *ctx, struct json_object *o, char *why, size_t whylen)
{
	struct reader *rd = ctx;
	struct trace_summary *s = rd->s;
	int e = trace_rec_event(o);
	struct json_object *lv;

	if (e < 0) {
		snprintf(why, whylen, "not a trace record (no \"event\" or \"gva\")");
		return -1;
	}
	if (e == TRACE_EV_COUNT) {
		s->unknown++;
		return 0;
	}
	s->events[e]++;
	if (e == TRACE_EV_FILL && json_object_object_get_ex(o, "level", &lv)) {
		int level = json_object_get_int(lv);
		s->fills_by_level[level >= 1 && level <= 3 ? level : 0]++;
	}
	if (e == TRACE_EV_FILL || e == TRACE_EV_GUEST_FAULT)
		return touch(rd, o, e == TRACE_EV_FILL, why, whylen);
	return 0;
}

static int by_page(const void *a, const void *b)
{
	const struct touch *x = a, *y = b;
	return x->page < y->page ? -1 : x->page > y->page;
}

/* Merge the touches into one trace_page per page. */
static int build_pages(struct trace_summary *s, struct reader *rd)
{
	qsort(rd->touches, rd->n, sizeof(rd->touches[0]), by_page);
	s->pages = calloc(rd->n ? rd->n : 1, sizeof(s->pages[0]));
	if (!s->pages)
		return -1;
	for (size_t i = 0; i < rd->n; i++) {
		struct touch *t = &rd->touches[i];
		if (!s->npages || s->pages[s->npages - 1].page != t->page)
			s->pages[s->npages++].page = t->page;
		if (t->fill)
			s->pages[s->npages - 1].fills++;
		else
			s->pages[s->npages - 1].faults++;
	}
	return 0;
}

/* The reader's result into s: the counts and the merged pages. */
static int finish(struct reader *rd, const struct trace_read_result *res)
{
	int rc;

	rd->s->lines = res->records;
	rd->s->truncated = res->truncated;
	rc = build_pages(rd->s, rd);
	free(rd->touches);
	rd->touches = NULL;
	return rc;
}

int trace_summary_read(FILE *in, struct trace_summary *s, char *err, size_t errlen)
{
	struct reader rd = { .s = s };
	struct trace_read_result res;
	int rc;

	memset(s, 0, sizeof(*s));
	rc = trace_read(in, account, &rd, &res, err, errlen);
	if (rc) {
		free(rd.touches);
		return rc;
	}
	if (finish(&rd, &res)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

void trace_summary_free(struct trace_summary *s)
{
	free(s->pages);
	s->pages = NULL;
	s->npages = 0;
}

static int by_faults(const void *a, const void *b)
{
	const struct trace_page *x = a, *y = b;
	uint64_t nx = x->fills + x->faults, ny = y->fills + y->faults;

	if (nx != ny)
		return nx > ny ? -1 : 1;
	return x->page < y->page ? -1 : x->page > y->page;
}

/* "fills per page": how many pages were filled once, twice, ... 8+ times. */
static void fills_histogram(const struct trace_summary *s, FILE *out)
{
	uint64_t h[9] = { 0 };

	for (size_t i = 0; i < s->npages; i++)
		if (s->pages[i].fills)
			h[s->pages[i].fills < 8 ? s->pages[i].fills : 8]++;
	fprintf(out, "fills per page:");
	for (unsigned k = 1; k <= 8; k++)
		if (h[k])
			fprintf(out, " %u%s=%llu", k, k == 8 ? "+" : "", (unsigned long long)h[k]);
	fprintf(out, " (fills=pages)\n");
}

void trace_summary_print(const struct trace_summary *s, const char *name, unsigned top, FILE *out)
{
	struct trace_page *sorted = malloc((s->npages ? s->npages : 1) * sizeof(*sorted));

	fprintf(out, "trace: %s: %llu records\n", name, (unsigned long long)s->lines);
	if (s->truncated)
		fprintf(out, "trace: line %llu: truncated last line skipped\n",
			(unsigned long long)s->truncated);
	fprintf(out, "events:\n");
	for (unsigned e = 0; e < TRACE_EV_COUNT; e++)
		fprintf(out, "  %-12s %llu\n", trace_event_name(e),
			(unsigned long long)s->events[e]);
	if (s->unknown)
		fprintf(out, "  %-12s %llu\n", "(unknown)", (unsigned long long)s->unknown);
	fprintf(out, "fills by level: 4K=%llu 2M=%llu 1G=%llu\n",
		(unsigned long long)s->fills_by_level[1], (unsigned long long)s->fills_by_level[2],
		(unsigned long long)s->fills_by_level[3]);
	fprintf(out, "pages touched: %zu\n", s->npages);
	fills_histogram(s, out);
	if (!sorted)
		return;
	memcpy(sorted, s->pages, s->npages * sizeof(*sorted));
	qsort(sorted, s->npages, sizeof(*sorted), by_faults);
	fprintf(out, "most-faulting pages (hidden faults that filled + guest faults):\n");
	for (size_t i = 0; i < s->npages && i < top; i++)
		fprintf(out, "  0x%016llx fills=%llu guest_faults=%llu\n",
			(unsigned long long)sorted[i].page, (unsigned long long)sorted[i].fills,
			(unsigned long long)sorted[i].faults);
	free(sorted);
}

int trace_summary_main(const char *path)
{
	struct trace_summary s;
	struct reader rd = { .s = &s };
	struct trace_read_result res;
	int rc;

	memset(&s, 0, sizeof(s));
	rc = trace_read_path("trace summary", path, account, &rd, &res);
	if (rc) {
		free(rd.touches);
		return rc;
	}
	if (finish(&rd, &res)) {
		pr_err("trace summary: %s: out of memory", path);
		return VMM_E_INTERNAL;
	}
	trace_summary_print(&s, path, 10, stdout);
	trace_summary_free(&s);
	return VMM_OK;
}
