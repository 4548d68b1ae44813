#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "status.h"
#include "trace_summary.h"
#include "x86.h"

struct touch {
	uint64_t page;
	bool fill;
};

struct reader {
	struct touch *touches;
	size_t n, cap;
};

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : NULL;
}

static int touch(struct reader *rd, struct json_object *o, bool fill)
{
	const char *gva = get_str(o, "gva");

	if (!gva)
		return -1;
	if (rd->n == rd->cap) {
		size_t cap = rd->cap ? rd->cap * 2 : 1024;
		struct touch *t = realloc(rd->touches, cap * sizeof(*t));
		if (!t)
			return -1;
		rd->touches = t, rd->cap = cap;
	}
	rd->touches[rd->n++] = (struct touch){ strtoull(gva, NULL, 16) & X86_PAGE_MASK, fill };
	return 0;
}

/* Account one parsed record; -1 if it is not a trace record. */
static int account(struct trace_summary *s, struct reader *rd, struct json_object *o)
{
	const char *ev = get_str(o, "event");
	struct json_object *lv;
	unsigned e;

	if (!ev)
		return -1;
	for (e = 0; e < TRACE_EV_COUNT && strcmp(ev, trace_event_name(e)); e++)
		;
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
		return touch(rd, o, e == TRACE_EV_FILL);
	return 0;
}

static struct json_object *parse_line(const char *line, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;

	if (!tok)
		return NULL;
	o = json_tokener_parse_ex(tok, line, (int)len);
	if (o &&
	    (json_tokener_get_error(tok) != json_tokener_success ||
	     json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
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

int trace_summary_read(FILE *in, struct trace_summary *s, char *err, size_t errlen)
{
	struct reader rd = { 0 };
	char *line = NULL;
	size_t cap = 0;
	uint64_t lineno = 0, bad = 0;
	ssize_t n;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	while (!rc && (n = getline(&line, &cap, in)) >= 0) {
		struct json_object *o;
		lineno++;
		if (bad) /* a bad line with more after it is not a truncated tail */
			break;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = 0;
		if (n == 0)
			continue;
		if (!(o = parse_line(line, (size_t)n))) {
			bad = lineno;
			continue;
		}
		s->lines++;
		rc = account(s, &rd, o);
		json_object_put(o);
		if (rc)
			snprintf(err, errlen,
				 "line %llu: not a trace record (no \"event\" or \"gva\")",
				 (unsigned long long)lineno);
	}
	if (!rc && bad && bad != lineno) {
		snprintf(err, errlen, "line %llu: not JSON", (unsigned long long)bad);
		rc = -1;
	}
	if (!rc && bad)
		s->truncated = bad;
	if (!rc && build_pages(s, &rd)) {
		snprintf(err, errlen, "out of memory");
		rc = -1;
	}
	free(line);
	free(rd.touches);
	return rc;
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
	char err[256] = "";
	FILE *in = strcmp(path, "-") ? fopen(path, "r") : stdin;
	int rc;

	if (!in) {
		pr_err("trace summary: %s: cannot open: %s", path, strerror(errno));
		return VMM_E_NOINPUT;
	}
	rc = trace_summary_read(in, &s, err, sizeof(err));
	if (in != stdin)
		fclose(in);
	if (rc) {
		pr_err("trace summary: %s: %s", path, err);
		trace_summary_free(&s);
		return VMM_E_IMAGE;
	}
	if (s.truncated)
		pr_warn("trace summary: %s: line %llu: truncated last line skipped", path,
			(unsigned long long)s.truncated);
	trace_summary_print(&s, path, 10, stdout);
	trace_summary_free(&s);
	return VMM_OK;
}
