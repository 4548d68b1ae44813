#include <cairo.h>
#include <cairo-svg.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "status.h"
#include "trace_plot.h"
#include "trace_plot_draw.h"
#include "trace_read.h"
#include "x86.h"

/* ---- reading ---- */

__attribute__((format(printf, 3, 4))) static int bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -1;
}

static unsigned rec_level(struct json_object *o)
{
	uint64_t level = 1;

	trace_rec_u64(o, "level", &level);
	return level < 1 ? 1 : level > 3 ? 3 : (unsigned)level;
}

/* An unprotect record carries the guest table's gfn, not the GVA written:
 * that write's fill, the next fill record, names it. */
static void resolve_unprotects(struct trace_plot *p, uint64_t gva)
{
	for (size_t i = p->pending; i < p->n; i++)
		if (p->recs[i].ev == TRACE_EV_UNPROTECT)
			p->recs[i].val = gva, p->recs[i].has_val = true;
	p->pending = SIZE_MAX;
}

static int mark_fields(struct trace_plot *p, struct json_object *o, struct rec *r, char *why,
		       size_t whylen)
{
	uint64_t spte;

	if (!trace_rec_u64(o, "gva", &r->val))
		return bad(why, whylen, "%s record without \"gva\"", trace_event_name(r->ev));
	r->has_val = true;
	r->level = (uint8_t)rec_level(o);
	if (r->ev != TRACE_EV_FILL)
		return 0;
	p->fills[r->level]++;
	if (r->level > 1 && trace_rec_u64(o, "spte", &spte) && (spte & X86_PTE_PS))
		p->huge_leaves = true;
	if (p->pending != SIZE_MAX)
		resolve_unprotects(p, r->val);
	return 0;
}

static void exit_fields(struct trace_plot *p, struct json_object *o)
{
	const char *reason = trace_rec_str(o, "reason");
	uint64_t v;

	p->exited = true;
	if (trace_rec_u64(o, "status", &v))
		p->status = (int64_t)v;
	trace_rec_u64(o, "exits", &p->exits);
	snprintf(p->reason, sizeof(p->reason), "%s", reason ? reason : "?");
}

/* The fields of the record's kind that the picture uses. */
static int kind_fields(struct trace_plot *p, struct json_object *o, struct rec *r, char *why,
		       size_t whylen)
{
	switch (r->ev) {
	case TRACE_EV_FILL:
	case TRACE_EV_PREFETCH:
	case TRACE_EV_GUEST_FAULT: return mark_fields(p, o, r, why, whylen);
	case TRACE_EV_UNPROTECT:
		if (p->pending == SIZE_MAX)
			p->pending = p->n;
		return 0;
	case TRACE_EV_CR3:
		if (!trace_rec_u64(o, "cr3", &r->val))
			return bad(why, whylen, "cr3 record without \"cr3\"");
		r->has_val = true;
		return 0;
	case TRACE_EV_FLUSH:
	case TRACE_EV_EVICT: r->has_val = trace_rec_u64(o, "cr3", &r->val); return 0;
	case TRACE_EV_SHADOW_INIT:
		p->shadow_init = true;
		trace_rec_u64(o, "root", &p->root);
		trace_rec_u64(o, "cr3", &p->cr3);
		return 0;
	case TRACE_EV_EXIT: exit_fields(p, o); return 0;
	default: return 0;
	}
}

static int push(struct trace_plot *p, const struct rec *r, char *why, size_t whylen)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 4096;
		struct rec *recs = realloc(p->recs, cap * sizeof(*recs));
		if (!recs)
			return bad(why, whylen, "out of memory");
		p->recs = recs, p->cap = cap;
	}
	p->recs[p->n++] = *r;
	return 0;
}

/* trace_record_fn */
static int plot_record(void *ctx, struct json_object *o, char *why, size_t whylen)
{
	struct trace_plot *p = ctx;
	int e = trace_rec_event(o);
	struct rec r = { .pages = NO_PAGES, .level = 1 };
	uint64_t ns, seq, pages;

	if (e < 0)
		return bad(why, whylen, "not a trace record (no \"event\")");
	if (!trace_rec_u64(o, "ns", &ns) || !trace_rec_u64(o, "seq", &seq))
		return bad(why, whylen, "record without \"ns\" or \"seq\"");
	if (e == TRACE_EV_COUNT) {
		p->unknown++;
		return 0;
	}
	p->events[e]++;
	r.ev = (uint8_t)e;
	r.t = p->o.x == TRACE_PLOT_X_SEQ ? seq : ns;
	p->ns_last = ns > p->ns_last ? ns : p->ns_last;
	if (trace_rec_u64(o, "pages", &pages) && pages < NO_PAGES) {
		r.pages = (uint32_t)pages;
		p->pages_peak = r.pages > p->pages_peak ? r.pages : p->pages_peak;
	}
	if (kind_fields(p, o, &r, why, whylen))
		return -1;
	return push(p, &r, why, whylen);
}

/* ---- the layout: the time range, the bands, the panels ---- */

static int by_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The used 2 MiB frames, sorted and unique; their count, or -1. */
static long used_frames(const struct trace_plot *p, uint64_t **out)
{
	uint64_t *f = malloc((p->n ? p->n : 1) * sizeof(*f));
	size_t n = 0, u = 0;

	if (!f)
		return -1;
	for (size_t i = 0; i < p->n; i++)
		if (is_mark(&p->recs[i]))
			f[n++] = p->recs[i].val >> FRAME_SHIFT;
	qsort(f, n, sizeof(*f), by_u64);
	for (size_t i = 0; i < n; i++)
		if (!u || f[u - 1] != f[i])
			f[u++] = f[i];
	*out = f;
	return (long)u;
}

/* Where the frames split into bands: after frame i when the gap to frame
 * i + 1 is one of the MAX_BANDS - 1 widest and wider than MERGE_FRAMES. */
static uint64_t split_gap(const uint64_t *f, long n)
{
	uint64_t widest[MAX_BANDS - 1] = { 0 };

	for (long i = 0; i + 1 < n; i++) {
		uint64_t g = f[i + 1] - f[i];
		for (int k = 0; k < MAX_BANDS - 1 && g > MERGE_FRAMES; k++)
			if (g > widest[k]) {
				uint64_t t = widest[k];
				widest[k] = g, g = t;
			}
	}
	for (int k = MAX_BANDS - 2; k >= 0; k--)
		if (widest[k])
			return widest[k];
	return UINT64_MAX;
}

static int find_bands(struct trace_plot *p)
{
	uint64_t *f, cut;
	long n = used_frames(p, &f);
	int nb = 0;

	if (n < 0)
		return -1;
	cut = split_gap(f, n);
	for (long i = 0; i < n; i++) {
		bool split = i && f[i] - f[i - 1] >= cut && nb < MAX_BANDS;
		if (!i || split)
			p->bands[nb++] = (struct band){ .lo = f[i] << FRAME_SHIFT };
		p->bands[nb - 1].frames = f[i] - (p->bands[nb - 1].lo >> FRAME_SHIFT) + 1;
	}
	if (!nb)
		p->bands[nb++] = (struct band){ .lo = 0, .frames = 1 };
	p->nbands = nb;
	free(f);
	return 0;
}

/* Panels and bands in pixels: the address panel takes 3/5 of the height
 * below the title, the pool and rate panels 1/5 each; the top band holds
 * the highest addresses. */
static void layout(struct trace_plot *p)
{
	const int left = 150, right = 24, top = PANELS_Y, bottom = 50, gap = 34;
	int w = (int)p->o.width - left - right;
	int avail = (int)p->o.height - top - bottom - 2 * gap;
	int ah = avail * 3 / 5, ph = avail / 5, bh;

	p->addr = (struct box){ left, top, w, ah };
	p->pool = (struct box){ left, top + ah + gap, w, ph };
	p->rate = (struct box){ left, p->pool.y + ph + gap, w, avail - ah - ph };
	bh = (ah - (p->nbands - 1) * BAND_GAP) / p->nbands;
	for (int b = p->nbands - 1, y = top; b >= 0; b--, y += bh + BAND_GAP)
		p->bands[b].y = y, p->bands[b].h = bh;
}

static void time_range(struct trace_plot *p)
{
	p->t0 = p->n ? p->recs[0].t : 0;
	p->t1 = p->t0;
	for (size_t i = 0; i < p->n; i++) {
		p->t0 = p->recs[i].t < p->t0 ? p->recs[i].t : p->t0;
		p->t1 = p->recs[i].t > p->t1 ? p->recs[i].t : p->t1;
	}
}

/* A size within min..TRACE_PLOT_SIZE_MAX (the command line refuses any
 * other with its limits; this keeps the layout sane for other callers). */
static unsigned clamp(unsigned v, unsigned min)
{
	return v < min ? min : v > TRACE_PLOT_SIZE_MAX ? TRACE_PLOT_SIZE_MAX : v;
}

static struct trace_plot *plot_new(const char *name, const struct trace_plot_options *o)
{
	struct trace_plot *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->o = *o;
	p->o.width = clamp(o->width ? o->width : TRACE_PLOT_WIDTH, TRACE_PLOT_WIDTH_MIN);
	p->o.height = clamp(o->height ? o->height : TRACE_PLOT_HEIGHT, TRACE_PLOT_HEIGHT_MIN);
	p->pending = SIZE_MAX;
	snprintf(p->title, sizeof(p->title), "%s", o->title ? o->title : name);
	p->o.title = p->title;
	return p;
}

static int plot_finish(struct trace_plot *p, const struct trace_read_result *res)
{
	p->truncated = res->truncated;
	time_range(p);
	if (find_bands(p))
		return -1;
	layout(p);
	return 0;
}

int trace_plot_read(FILE *in, const char *name, const struct trace_plot_options *o,
		    struct trace_plot **out, char *err, size_t errlen)
{
	struct trace_plot *p = plot_new(name, o);
	struct trace_read_result res;

	*out = NULL;
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (trace_read(in, plot_record, p, &res, err, errlen)) {
		trace_plot_free(p);
		return -1;
	}
	if (plot_finish(p, &res)) {
		snprintf(err, errlen, "out of memory");
		trace_plot_free(p);
		return -1;
	}
	*out = p;
	return 0;
}

void trace_plot_free(struct trace_plot *p)
{
	if (!p)
		return;
	free(p->recs);
	free(p);
}

uint64_t trace_plot_truncated(const struct trace_plot *p)
{
	return p->truncated;
}

int trace_plot_format_of(const char *out)
{
	const char *dot = strrchr(out, '.');

	if (dot && !strcasecmp(dot, ".png"))
		return TRACE_PLOT_PNG;
	if (dot && !strcasecmp(dot, ".svg"))
		return TRACE_PLOT_SVG;
	return -1;
}

/* ---- the mapping ---- */

int trace_plot_x(const struct trace_plot *p, uint64_t t)
{
	const struct box *a = &p->addr;

	t = t < p->t0 ? p->t0 : t > p->t1 ? p->t1 : t;
	if (p->t1 == p->t0)
		return a->x;
	return a->x +
	       (int)((unsigned __int128)(t - p->t0) * (unsigned)(a->w - 1) / (p->t1 - p->t0));
}

int trace_plot_y(const struct trace_plot *p, uint64_t gva)
{
	for (int i = 0; i < p->nbands; i++) {
		const struct band *b = &p->bands[i];
		uint64_t off = gva - b->lo;
		unsigned __int128 span = (unsigned __int128)b->frames << FRAME_SHIFT;

		if (gva >= b->lo && off < span)
			return b->y + b->h - 1 -
			       (int)((unsigned __int128)off * (unsigned)b->h / span);
	}
	return -1;
}

uint32_t trace_plot_colour(enum trace_plot_mark m, unsigned level)
{
	static const uint32_t shades[2][3] = {
		{ 0x1f5fd1, 0x7b2fd6, 0x00a0a0 }, /* fill: blue, violet, teal */
		{ 0x2ca02c, 0x9acd32, 0x0f5f0f }, /* prefetch: green, yellow-green, dark green */
	};
	unsigned l = level < 1 ? 0 : level > 3 ? 2 : level - 1;

	switch (m) {
	case TRACE_PLOT_FILL: return shades[0][l];
	case TRACE_PLOT_PREFETCH: return shades[1][l];
	case TRACE_PLOT_GUEST_FAULT: return 0xd62728;
	case TRACE_PLOT_UNPROTECT: return 0xff7f0e;
	case TRACE_PLOT_MARKS: break;
	}
	return 0;
}

/* ---- the file ---- */

static cairo_status_t put_bytes(void *f, const unsigned char *data, unsigned int len)
{
	return fwrite(data, 1, len, f) == len ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

static cairo_surface_t *surface_for(const struct trace_plot *p, enum trace_plot_format fmt, FILE *f)
{
	if (fmt == TRACE_PLOT_SVG)
		return cairo_svg_surface_create_for_stream(put_bytes, f, p->o.width, p->o.height);
	return cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)p->o.width, (int)p->o.height);
}

/* Drop what a failed write left, if it is a file of its own (never a
 * device such as /dev/full). */
static void discard(const char *out)
{
	struct stat st;

	if (!lstat(out, &st) && S_ISREG(st.st_mode))
		unlink(out);
}

int trace_plot_write(const struct trace_plot *p, const char *out, enum trace_plot_format fmt,
		     char *err, size_t errlen)
{
	FILE *f = fopen(out, "wb");
	cairo_surface_t *s;
	cairo_t *cr;
	int rc = VMM_OK, e = 0;

	if (!f) {
		snprintf(err, errlen, "cannot write: %s", strerror(errno));
		return VMM_E_TRACE;
	}
	s = surface_for(p, fmt, f);
	cr = cairo_create(s);
	if (trace_plot_draw(cr, p))
		rc = VMM_E_INTERNAL;
	cairo_destroy(cr);
	errno = 0;
	if (!rc && fmt == TRACE_PLOT_PNG && cairo_surface_write_to_png_stream(s, put_bytes, f))
		rc = VMM_E_TRACE, e = errno;
	cairo_surface_finish(s);
	if (!rc && cairo_surface_status(s))
		rc = cairo_surface_status(s) == CAIRO_STATUS_WRITE_ERROR ? VMM_E_TRACE
									 : VMM_E_INTERNAL,
		e = errno;
	if (rc == VMM_E_INTERNAL)
		snprintf(err, errlen, "cannot draw: %s",
			 cairo_status_to_string(cairo_surface_status(s)));
	cairo_surface_destroy(s);
	if (fclose(f) && !rc)
		rc = VMM_E_TRACE, e = errno;
	if (rc == VMM_E_TRACE)
		snprintf(err, errlen, "cannot write: %s", e ? strerror(e) : "write error");
	if (rc)
		discard(out);
	return rc;
}

int trace_plot_main(const char *path, const char *out, const struct trace_plot_options *o)
{
	struct trace_plot *p = plot_new(path, o);
	struct trace_read_result res;
	int fmt = trace_plot_format_of(out), rc;
	char err[256] = "";

	if (fmt < 0) {
		pr_err("trace plot: -o %s: not a .png or .svg file name", out);
		trace_plot_free(p);
		return VMM_E_USAGE;
	}
	if (!p) {
		pr_err("trace plot: out of memory");
		return VMM_E_INTERNAL;
	}
	rc = trace_read_path("trace plot", path, plot_record, p, &res);
	if (!rc && plot_finish(p, &res)) {
		pr_err("trace plot: %s: out of memory", path);
		rc = VMM_E_INTERNAL;
	}
	if (!rc && (rc = trace_plot_write(p, out, (enum trace_plot_format)fmt, err, sizeof(err))))
		pr_err("trace plot: %s: %s", out, err);
	if (!rc)
		printf("trace plot: %s: %zu records -> %s (%ux%u %s)\n", path, p->n, out,
		       p->o.width, p->o.height, fmt == TRACE_PLOT_PNG ? "PNG" : "SVG");
	trace_plot_free(p);
	return rc;
}
