/* trace plot's inside, shared by the reader and layout (trace_plot.c) and
 * the drawing (trace_plot_draw.c): the records as the picture keeps them,
 * the bands of the VA axis, the panels in pixels. */
#ifndef SHADOWVM_TRACE_PLOT_DRAW_H
#define SHADOWVM_TRACE_PLOT_DRAW_H

#include <cairo.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace.h"
#include "trace_plot.h"

#define NO_PAGES UINT32_MAX
#define FRAME_SHIFT 21 /* bands are made of used 2 MiB frames */
#define MERGE_FRAMES 8 /* used frames this close share a band */
#define MAX_BANDS 6    /* the address panel's bands at the most */
#define BAND_GAP 10    /* pixels between two bands: the addresses elided */
/* The panels' top: below the header's rows (trace_plot_draw.c). */
#define PANELS_Y 116

/* One record as the picture needs it (the JSON is gone after the read). */
struct rec {
	uint64_t t;     /* ns, or seq under --x=seq */
	uint64_t val;   /* a mark's GVA, a rule's CR3 */
	uint32_t pages; /* NO_PAGES where the record has none */
	uint8_t ev;     /* TRACE_EV_* */
	uint8_t level;  /* 1..3 */
	bool has_val;
};

struct band {
	uint64_t lo;     /* first byte */
	uint64_t frames; /* 2 MiB frames from lo */
	int y, h;        /* pixel rows: high addresses on top */
};

struct box {
	int x, y, w, h;
};

struct trace_plot {
	struct trace_plot_options o;
	char title[256];
	struct rec *recs;
	size_t n, cap;
	size_t pending; /* first unprotect still waiting for its write's fill, or SIZE_MAX */
	uint64_t events[TRACE_EV_COUNT], unknown, fills[4];
	uint64_t root, cr3, exits, ns_last, t0, t1, truncated;
	int64_t status;
	char reason[32];
	bool shadow_init, exited, huge_leaves;
	uint32_t pages_peak;
	struct band bands[MAX_BANDS];
	int nbands;
	struct box addr, pool, rate;
};

static inline bool is_mark(const struct rec *r)
{
	return r->has_val && (r->ev == TRACE_EV_FILL || r->ev == TRACE_EV_PREFETCH ||
			      r->ev == TRACE_EV_GUEST_FAULT || r->ev == TRACE_EV_UNPROTECT);
}

/* Draw the whole picture on cr.  0, or -1 when cairo or an allocation
 * failed. */
int trace_plot_draw(cairo_t *cr, const struct trace_plot *p);

#endif
