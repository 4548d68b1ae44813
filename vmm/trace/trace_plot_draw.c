#include <cairo.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace_plot_draw.h"

#define BIN_PIXELS 5   /* the rate panel's bin width */
#define MARK_CLASSES 8 /* fill and prefetch by level, guest_fault, unprotect */
#define RULE_CR3 1u
#define RULE_FLUSH 2u
#define RULE_EVICT 4u
/* The header's rows above PANELS_Y: the facts' lines (3 at 640 pixels
 * wide), the legend's (2), then the CR3 labels just above the panels. */
#define FACTS_Y 38
#define LEGEND_Y 82

static const uint32_t rule_colours[3] = { 0xc9d3e8, 0xf0d59a, 0xf2b0b0 }; /* cr3, flush, evict */
#define INK 0x222222u
#define FAINT 0x888888u
#define GAP_FILL 0xecececu
#define POOL_FILL 0xc9d9ee
#define EXITS_INK 0x555555u
#define EVICT_INK 0xd62728u

static void rgb(cairo_t *cr, uint32_t c)
{
	cairo_set_source_rgb(cr, (c >> 16 & 0xff) / 255.0, (c >> 8 & 0xff) / 255.0,
			     (c & 0xff) / 255.0);
}

enum align { LEFT, RIGHT, CENTRE };

/* Text with its baseline at y; returns its width. */
__attribute__((format(printf, 6, 7))) static double text(cairo_t *cr, double x, double y,
							 enum align al, double size,
							 const char *fmt, ...)
{
	cairo_text_extents_t ext;
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	cairo_set_font_size(cr, size);
	cairo_text_extents(cr, buf, &ext);
	x -= al == RIGHT ? ext.x_advance : al == CENTRE ? ext.x_advance / 2 : 0;
	cairo_move_to(cr, x, y);
	cairo_show_text(cr, buf);
	return ext.x_advance;
}

static double text_width(cairo_t *cr, double size, const char *s)
{
	cairo_text_extents_t ext;

	cairo_set_font_size(cr, size);
	cairo_text_extents(cr, s, &ext);
	return ext.x_advance;
}

static void line(cairo_t *cr, double x0, double y0, double x1, double y1)
{
	cairo_move_to(cr, x0, y0);
	cairo_line_to(cr, x1, y1);
	cairo_stroke(cr);
}

/* The mark class of a record: fill by level, prefetch by level, guest
 * fault, unprotect; classes later in draw_order are drawn on top. */
static int mark_class(const struct rec *r)
{
	switch (r->ev) {
	case TRACE_EV_FILL: return r->level - 1;
	case TRACE_EV_PREFETCH: return 3 + r->level - 1;
	case TRACE_EV_GUEST_FAULT: return 6;
	default: return 7;
	}
}

static const int draw_order[MARK_CLASSES] = { 3, 4, 5, 0, 1, 2, 7, 6 };

static uint32_t class_colour(int c)
{
	return c < 3    ? trace_plot_colour(TRACE_PLOT_FILL, (unsigned)c + 1)
	       : c < 6  ? trace_plot_colour(TRACE_PLOT_PREFETCH, (unsigned)c - 2)
	       : c == 6 ? trace_plot_colour(TRACE_PLOT_GUEST_FAULT, 1)
			: trace_plot_colour(TRACE_PLOT_UNPROTECT, 1);
}

static unsigned rule_of(const struct rec *r)
{
	return r->ev == TRACE_EV_CR3     ? RULE_CR3
	       : r->ev == TRACE_EV_FLUSH ? RULE_FLUSH
	       : r->ev == TRACE_EV_EVICT ? RULE_EVICT
					 : 0;
}

/* The address panel's pixels: which mark classes fall in each pixel, which
 * rules in each column (and the last CR3 loaded in it). */
struct grid {
	uint8_t *cells; /* w * h bit sets of mark classes */
	uint8_t *rules; /* w RULE_* sets */
	uint64_t *cr3;  /* w: the CR3 of the column's last cr3 record */
};

static int grid_fill(const struct trace_plot *p, struct grid *g)
{
	const struct box *a = &p->addr;

	g->cells = calloc((size_t)a->w * (size_t)a->h, 1);
	g->rules = calloc((size_t)a->w, 1);
	g->cr3 = calloc((size_t)a->w, sizeof(*g->cr3));
	if (!g->cells || !g->rules || !g->cr3)
		return -1;
	for (size_t i = 0; i < p->n; i++) {
		const struct rec *r = &p->recs[i];
		int x = trace_plot_x(p, r->t) - a->x, y;
		g->rules[x] |= (uint8_t)rule_of(r);
		if (r->ev == TRACE_EV_CR3)
			g->cr3[x] = r->val;
		if (is_mark(r) && (y = trace_plot_y(p, r->val)) >= 0)
			g->cells[(size_t)(y - a->y) * (size_t)a->w + (size_t)x] |=
				(uint8_t)(1u << mark_class(r));
	}
	return 0;
}

static void grid_free(struct grid *g)
{
	free(g->cells);
	free(g->rules);
	free(g->cr3);
}

static void paint_square(uint32_t *px, int stride, const struct box *a, int cx, int cy, uint32_t c)
{
	for (int y = cy - TRACE_PLOT_DOT; y <= cy + TRACE_PLOT_DOT; y++)
		for (int x = cx - TRACE_PLOT_DOT; x <= cx + TRACE_PLOT_DOT; x++)
			if (x >= 0 && y >= 0 && x < a->w && y < a->h)
				px[y * stride + x] = c;
}

/* Background, the elided gaps between bands, the rules, then the marks by
 * class in draw_order. */
static void grid_paint(const struct trace_plot *p, const struct grid *g, uint32_t *px, int stride)
{
	const struct box *a = &p->addr;

	for (int y = 0; y < a->h; y++)
		for (int x = 0; x < a->w; x++)
			px[y * stride + x] = GAP_FILL;
	for (int b = 0; b < p->nbands; b++)
		for (int y = p->bands[b].y - a->y; y < p->bands[b].y - a->y + p->bands[b].h; y++)
			for (int x = 0; x < a->w; x++)
				px[y * stride + x] = TRACE_PLOT_BACKGROUND;
	for (int x = 0; x < a->w; x++)
		for (int k = 2; k >= 0; k--)
			if (g->rules[x] & (1u << k)) {
				for (int y = 0; y < a->h; y++)
					px[y * stride + x] = rule_colours[k];
				break;
			}
	for (int k = 0; k < MARK_CLASSES; k++) {
		int c = draw_order[k];
		for (int y = 0; y < a->h; y++)
			for (int x = 0; x < a->w; x++)
				if (g->cells[(size_t)y * (size_t)a->w + (size_t)x] & (1u << c))
					paint_square(px, stride, a, x, y, class_colour(c));
	}
}

static void cr3_labels(cairo_t *cr, const struct trace_plot *p, const struct grid *g)
{
	const struct box *a = &p->addr;
	double next = 0;

	rgb(cr, FAINT);
	for (int x = 0; x < a->w; x++)
		if ((g->rules[x] & RULE_CR3) && a->x + x >= next)
			next = a->x + x + 8 +
			       text(cr, a->x + x, a->y - 4, LEFT, 9, "0x%llx",
				    (unsigned long long)g->cr3[x]);
}

/* The address panel: the grid painted into an image surface, put on the
 * page pixel for pixel. */
static int draw_addresses(cairo_t *cr, const struct trace_plot *p)
{
	const struct box *a = &p->addr;
	cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, a->w, a->h);
	struct grid g = { 0 };
	int rc = -1;

	if (cairo_surface_status(s) == CAIRO_STATUS_SUCCESS && !grid_fill(p, &g)) {
		cairo_surface_flush(s);
		grid_paint(p, &g, (uint32_t *)(void *)cairo_image_surface_get_data(s),
			   cairo_image_surface_get_stride(s) / 4);
		cairo_surface_mark_dirty(s);
		cairo_set_source_surface(cr, s, a->x, a->y);
		cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
		cairo_rectangle(cr, a->x, a->y, a->w, a->h);
		cairo_fill(cr);
		cr3_labels(cr, p, &g);
		rc = 0;
	}
	grid_free(&g);
	cairo_surface_destroy(s);
	return rc;
}

static const char *size_str(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	unsigned u = 0;

	bytes >>= 10;
	while (u + 1 < sizeof(units) / sizeof(units[0]) && bytes >= 1024 && !(bytes & 1023))
		bytes >>= 10, u++;
	snprintf(buf, len, "%llu %s", (unsigned long long)bytes, units[u]);
	return buf;
}

/* A title up the left of box b: `s`, or `brief` where s is taller than b. */
static void vertical_title(cairo_t *cr, double x, const struct box *b, const char *s,
			   const char *brief)
{
	cairo_save(cr);
	cairo_translate(cr, x, b->y + b->h / 2.0);
	cairo_rotate(cr, -1.5707963267948966);
	text(cr, 0, 0, CENTRE, 11, "%s", text_width(cr, 11, s) <= b->h ? s : brief);
	cairo_restore(cr);
}

/* Each band's first and last address and its size; a zigzag across the
 * axis where addresses are elided. */
static void address_axis(cairo_t *cr, const struct trace_plot *p)
{
	const struct box *a = &p->addr;
	char sz[32];

	rgb(cr, INK);
	cairo_set_line_width(cr, 1);
	for (int i = 0; i < p->nbands; i++) {
		const struct band *b = &p->bands[i];
		uint64_t last = b->lo + (b->frames << FRAME_SHIFT) - 1;
		text(cr, a->x - 6, b->y + 8, RIGHT, 10, "0x%llx", (unsigned long long)last);
		if (b->h >= 30)
			text(cr, a->x - 6, b->y + b->h - 1, RIGHT, 10, "0x%llx",
			     (unsigned long long)b->lo);
		if (b->h >= 50)
			text(cr, a->x - 6, b->y + b->h / 2 + 4, RIGHT, 9, "(%s)",
			     size_str(b->frames << FRAME_SHIFT, sz, sizeof(sz)));
		line(cr, a->x - 4, b->y + 0.5, a->x - 1, b->y + 0.5);
		line(cr, a->x - 4, b->y + b->h - 0.5, a->x - 1, b->y + b->h - 0.5);
		if (i + 1 < p->nbands) { /* the gap above this band */
			double y = b->y - BAND_GAP / 2.0;
			cairo_move_to(cr, a->x - 12, y + 2);
			cairo_line_to(cr, a->x - 8, y - 2);
			cairo_line_to(cr, a->x - 4, y + 2);
			cairo_line_to(cr, a->x, y - 2);
			cairo_stroke(cr);
		}
	}
	vertical_title(cr, 16, a, "guest virtual address (used ranges; gaps elided)", "GVA");
}

/* The smallest 1, 2 or 5 times a power of ten that cuts range into at most
 * `ticks` steps. */
static uint64_t nice_step(uint64_t range, unsigned ticks)
{
	static const uint64_t k[] = { 1, 2, 5 };
	uint64_t raw = range / ticks + (range % ticks != 0);

	for (uint64_t m = 1; m <= UINT64_MAX / 10; m *= 10)
		for (unsigned i = 0; i < 3; i++)
			if (k[i] * m >= raw)
				return k[i] * m;
	return raw;
}

/* The axis unit: a divisor of t and its name. */
static void time_unit(const struct trace_plot *p, double *div, const char **name)
{
	uint64_t range = p->t1 - p->t0;

	if (p->o.x == TRACE_PLOT_X_SEQ)
		*div = 1, *name = "seq";
	else if (range < 10000)
		*div = 1, *name = "ns";
	else if (range < 10000000)
		*div = 1e3, *name = "\xc2\xb5s";
	else if (range < 10000000000ull)
		*div = 1e6, *name = "ms";
	else
		*div = 1e9, *name = "s";
}

static void time_axis(cairo_t *cr, const struct trace_plot *p, const struct box *b, bool labels)
{
	uint64_t step = nice_step(p->t1 - p->t0, (unsigned)b->w / 120 + 1);
	uint64_t t = (p->t0 + step - 1) / step * step;
	const char *unit;
	double div;

	time_unit(p, &div, &unit);
	rgb(cr, INK);
	for (; t <= p->t1 && t >= p->t0; t += step) {
		double x = trace_plot_x(p, t) + 0.5;
		line(cr, x, b->y + b->h + 1, x, b->y + b->h + 5);
		if (labels)
			text(cr, x, b->y + b->h + 17, CENTRE, 10, "%g", (double)t / div);
	}
	if (labels)
		text(cr, b->x + b->w / 2.0, b->y + b->h + 36, CENTRE, 11, "%s (%s)",
		     p->o.x == TRACE_PLOT_X_SEQ ? "event order: the records' sequence number"
						: "time since the trace was opened",
		     unit);
}

/* The nice top of a value axis that holds max. */
static uint64_t value_top(uint64_t max)
{
	uint64_t step = nice_step(max ? max : 1, 4), top = (max + step - 1) / step * step;

	return top ? top : step;
}

static double value_y(const struct box *b, uint64_t v, uint64_t top)
{
	return b->y + b->h - 0.5 - (double)v * (b->h - 1) / (double)top;
}

static void value_axis(cairo_t *cr, const struct box *b, uint64_t top, const char *title)
{
	uint64_t step = nice_step(top, 4);

	rgb(cr, INK);
	for (uint64_t v = 0; v <= top; v += step) {
		double y = value_y(b, v, top);
		line(cr, b->x - 4, y, b->x - 1, y);
		text(cr, b->x - 6, y + 3, RIGHT, 9, "%llu", (unsigned long long)v);
	}
	vertical_title(cr, b->x - 62, b, title, title);
}

static void frame(cairo_t *cr, const struct box *b)
{
	rgb(cr, FAINT);
	cairo_set_line_width(cr, 1);
	cairo_rectangle(cr, b->x - 0.5, b->y - 0.5, b->w + 1, b->h + 1);
	cairo_stroke(cr);
}

/* The pool panel: the most pages in use in each column (carried over
 * columns without a record), evictions as red rules. */
/* The area under the most pages in use in each column, carried over the
 * columns without a record. */
static void pool_area(cairo_t *cr, const struct trace_plot *p, const int64_t *most, uint64_t top)
{
	const struct box *b = &p->pool;
	int64_t last = -1;
	int first = -1;

	for (int x = 0; x < b->w; x++) {
		last = most[x] >= 0 ? most[x] : last;
		if (last < 0)
			continue;
		if (first < 0)
			cairo_move_to(cr, b->x + x, b->y + b->h), first = x;
		cairo_line_to(cr, b->x + x, value_y(b, (uint64_t)last, top));
		cairo_line_to(cr, b->x + x + 1, value_y(b, (uint64_t)last, top));
	}
	if (first < 0)
		return;
	cairo_line_to(cr, b->x + b->w, b->y + b->h);
	cairo_close_path(cr);
	rgb(cr, POOL_FILL);
	cairo_fill_preserve(cr);
	rgb(cr, INK);
	cairo_set_line_width(cr, 1);
	cairo_stroke(cr);
}

/* The pool panel: pages in use, evictions as red rules over them. */
static int draw_pool(cairo_t *cr, const struct trace_plot *p)
{
	const struct box *b = &p->pool;
	int64_t *most = malloc((size_t)b->w * sizeof(*most));
	uint64_t top = value_top(p->pages_peak);

	if (!most)
		return -1;
	for (int x = 0; x < b->w; x++)
		most[x] = -1;
	for (size_t i = 0; i < p->n; i++) {
		const struct rec *r = &p->recs[i];
		int x = trace_plot_x(p, r->t) - b->x;
		if (r->pages != NO_PAGES && (int64_t)r->pages > most[x])
			most[x] = r->pages;
	}
	pool_area(cr, p, most, top);
	free(most);
	rgb(cr, EVICT_INK);
	for (size_t i = 0; i < p->n; i++)
		if (p->recs[i].ev == TRACE_EV_EVICT) {
			double x = trace_plot_x(p, p->recs[i].t) + 0.5;
			line(cr, x, b->y, x, b->y + b->h);
		}
	value_axis(cr, b, top, "pages");
	text(cr, b->x, b->y - 7, LEFT, 10,
	     "shadow pool in use (the records' \"pages\", peak %u); evictions in red",
	     p->pages_peak);
	return 0;
}

/* A record that begins a trap, i.e. a VM exit the trace shows: a hidden
 * fault (fill, guest_fault), an emulation, or a reflect of its own (not
 * the delivery of the fault or emulation just before it). */
static bool begins_trap(const struct rec *r, int prev)
{
	if (r->ev == TRACE_EV_FILL || r->ev == TRACE_EV_GUEST_FAULT || r->ev == TRACE_EV_EMULATE)
		return true;
	return r->ev == TRACE_EV_REFLECT && prev != TRACE_EV_GUEST_FAULT &&
	       prev != TRACE_EV_EMULATE;
}

static void steps(cairo_t *cr, const struct box *b, const uint64_t *v, int nb, uint64_t top,
		  uint32_t colour)
{
	cairo_move_to(cr, b->x, value_y(b, 0, top));
	for (int i = 0; i < nb; i++) {
		cairo_line_to(cr, b->x + (double)i * b->w / nb, value_y(b, v[i], top));
		cairo_line_to(cr, b->x + (double)(i + 1) * b->w / nb, value_y(b, v[i], top));
	}
	rgb(cr, colour);
	cairo_set_line_width(cr, 1.2);
	cairo_stroke(cr);
}

/* The rate panel: fills and exits per bin of BIN_PIXELS columns. */
static int draw_rate(cairo_t *cr, const struct trace_plot *p)
{
	const struct box *b = &p->rate;
	int nb = b->w / BIN_PIXELS > 0 ? b->w / BIN_PIXELS : 1, prev = -1;
	uint64_t *fills = calloc((size_t)nb, sizeof(*fills)), *exits = calloc((size_t)nb, 8);
	uint64_t span = p->t1 - p->t0 + 1, max = 0;
	const char *unit;
	double div;

	if (!fills || !exits) {
		free(fills);
		free(exits);
		return -1;
	}
	for (size_t i = 0; i < p->n; i++) {
		const struct rec *r = &p->recs[i];
		size_t bin = (size_t)((unsigned __int128)(r->t - p->t0) * (unsigned)nb / span);
		fills[bin] += r->ev == TRACE_EV_FILL;
		exits[bin] += begins_trap(r, prev);
		max = exits[bin] > max ? exits[bin] : max;
		prev = r->ev;
	}
	steps(cr, b, exits, nb, value_top(max), EXITS_INK);
	steps(cr, b, fills, nb, value_top(max), trace_plot_colour(TRACE_PLOT_FILL, 1));
	value_axis(cr, b, value_top(max), "per bin");
	time_unit(p, &div, &unit);
	rgb(cr, INK);
	text(cr, b->x, b->y - 7, LEFT, 10,
	     "fills and exits (traps: fill, guest_fault, emulate, a reflect of its own) per bin of "
	     "%.3g %s",
	     (double)span / nb / div, unit);
	free(fills);
	free(exits);
	return 0;
}

/* Pieces of text laid left to right, wrapping at `right`. */
struct flow {
	double x, y, left, right, line;
};

/* Where the next piece, w pixels wide, goes: on this line, or the next. */
static double flow_at(struct flow *f, double w)
{
	double at;

	if (f->x > f->left && f->x + w > f->right)
		f->x = f->left, f->y += f->line;
	at = f->x;
	f->x += w;
	return at;
}

static void swatch(cairo_t *cr, struct flow *f, uint32_t c, bool rule, const char *label)
{
	double x = flow_at(f, 14 + text_width(cr, 10, label) + 14);

	rgb(cr, c);
	if (rule)
		cairo_rectangle(cr, x + 3, f->y - 10, 4, 12);
	else
		cairo_rectangle(cr, x, f->y - 8, 10, 8);
	cairo_fill(cr);
	rgb(cr, INK);
	text(cr, x + 14, f->y, LEFT, 10, "%s", label);
}

static void legend(cairo_t *cr, const struct trace_plot *p)
{
	static const char *const levels[] = { "4K", "2M", "1G" };
	static const char *const rules[] = { "cr3 (value above)", "flush", "evict" };
	struct flow f = { 12, LEGEND_Y, 12, p->o.width - 12.0, 14 };
	char label[32];

	for (unsigned m = TRACE_PLOT_FILL; m <= TRACE_PLOT_PREFETCH; m++)
		for (unsigned l = 1; l <= 3; l++) {
			snprintf(label, sizeof(label), "%s %s",
				 m == TRACE_PLOT_FILL ? "fill" : "prefetch", levels[l - 1]);
			swatch(cr, &f, trace_plot_colour(m, l), false, label);
		}
	swatch(cr, &f, trace_plot_colour(TRACE_PLOT_GUEST_FAULT, 1), false, "guest fault");
	swatch(cr, &f, trace_plot_colour(TRACE_PLOT_UNPROTECT, 1), false,
	       "unprotect (at its write's GVA)");
	for (unsigned k = 0; k < 3; k++)
		swatch(cr, &f, rule_colours[k], true, rules[k]);
	swatch(cr, &f, POOL_FILL, false, "pool pages");
	swatch(cr, &f, EXITS_INK, true, "exits / bin");
}

#define FACTS 8

/* What the records say about the run, as pieces of the title's lines. */
static void facts(const struct trace_plot *p, char out[FACTS][192])
{
	const uint64_t *e = p->events;

	if (p->shadow_init)
		snprintf(out[0], 192, "paging=shadow (shadow_init: root 0x%llx, guest cr3 0x%llx)",
			 (unsigned long long)p->root, (unsigned long long)p->cr3);
	else
		snprintf(out[0], 192, "no shadow_init record (paging=hw, or filtered out)");
	snprintf(out[1], 192, "options the records show:%s%s%s%s",
		 e[TRACE_EV_UNPROTECT] ? " cache (unprotects)" : "",
		 e[TRACE_EV_PREFETCH] ? " prefetch" : "",
		 p->huge_leaves ? " huge (2 MiB shadow leaves)" : "",
		 e[TRACE_EV_UNPROTECT] || e[TRACE_EV_PREFETCH] || p->huge_leaves ? "" : " none");
	if (p->exited)
		snprintf(out[2], 192, "exit status %lld (%s), %llu KVM exits", (long long)p->status,
			 p->reason, (unsigned long long)p->exits);
	else
		snprintf(out[2], 192, "no exit record");
	snprintf(out[3], 192, "%.3f s traced%s", p->ns_last / 1e9,
		 p->truncated ? " (truncated last line skipped)" : "");
	snprintf(out[4], 192, "%zu records: fills %llu (4K %llu, 2M %llu, 1G %llu)", p->n,
		 (unsigned long long)e[TRACE_EV_FILL], (unsigned long long)p->fills[1],
		 (unsigned long long)p->fills[2], (unsigned long long)p->fills[3]);
	snprintf(out[5], 192, "prefetches %llu, guest faults %llu, unprotects %llu",
		 (unsigned long long)e[TRACE_EV_PREFETCH],
		 (unsigned long long)e[TRACE_EV_GUEST_FAULT],
		 (unsigned long long)e[TRACE_EV_UNPROTECT]);
	snprintf(out[6], 192, "cr3 writes %llu, flushes %llu, evictions %llu",
		 (unsigned long long)e[TRACE_EV_CR3], (unsigned long long)e[TRACE_EV_FLUSH],
		 (unsigned long long)e[TRACE_EV_EVICT]);
	snprintf(out[7], 192, "pool peak %u pages", p->pages_peak);
}

static void titles(cairo_t *cr, const struct trace_plot *p)
{
	struct flow f = { 12, FACTS_Y, 12, p->o.width - 12.0, 13 };
	char fact[FACTS][192];

	facts(p, fact);
	rgb(cr, INK);
	cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
	text(cr, 12, 20, LEFT, 15, "%s", p->title);
	cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
	for (int i = 0; i < FACTS; i++) {
		double at = flow_at(&f, text_width(cr, 10, fact[i]) + 16);
		text(cr, at, f.y, LEFT, 10, "%s%s", fact[i], i + 1 < FACTS ? ";" : "");
	}
}

int trace_plot_draw(cairo_t *cr, const struct trace_plot *p)
{
	rgb(cr, 0xffffff);
	cairo_paint(cr);
	titles(cr, p);
	legend(cr, p);
	if (draw_addresses(cr, p) || draw_pool(cr, p) || draw_rate(cr, p))
		return -1;
	address_axis(cr, p);
	frame(cr, &p->addr);
	frame(cr, &p->pool);
	frame(cr, &p->rate);
	time_axis(cr, p, &p->addr, false);
	time_axis(cr, p, &p->pool, false);
	time_axis(cr, p, &p->rate, true);
	return cairo_status(cr) == CAIRO_STATUS_SUCCESS ? 0 : -1;
}
