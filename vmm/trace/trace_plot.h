/* `shadowvm trace plot FILE -o OUT`: a picture of the shadow, drawn with
 * cairo (PNG or SVG by OUT's extension) from a --trace file read with the
 * same reader as `trace summary` (trace_read.h).  Three panels on one time
 * axis: the guest address space (a mark per fill, prefetch, guest_fault and
 * unprotect at its time and GVA, the VA axis cut into the bands the guest
 * uses; cr3, flush and evict records as vertical rules), the shadow pool in
 * use, and fills and exits per bin.  Marks are binned into the panel's
 * pixel grid, so a trace of 10^6 records costs no more to draw than one of
 * 10^3.  The mapping from (time, GVA) to pixels is exported for the tests. */
#ifndef SHADOWVM_TRACE_PLOT_H
#define SHADOWVM_TRACE_PLOT_H

#include <stdint.h>
#include <stdio.h>

#define TRACE_PLOT_WIDTH 1400u /* the default image size, pixels */
#define TRACE_PLOT_HEIGHT 900u
#define TRACE_PLOT_WIDTH_MIN 640u
#define TRACE_PLOT_HEIGHT_MIN 480u
#define TRACE_PLOT_SIZE_MAX 8192u /* either side */
#define TRACE_PLOT_DOT 1          /* a mark is a square of 2 * DOT + 1 pixels a side */
#define TRACE_PLOT_BACKGROUND 0xffffffu

enum trace_plot_axis { TRACE_PLOT_X_NS, TRACE_PLOT_X_SEQ };
enum trace_plot_format { TRACE_PLOT_PNG, TRACE_PLOT_SVG };

/* What a mark in the address panel stands for; fills and prefetches are
 * shaded by their guest leaf level (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB). */
enum trace_plot_mark {
	TRACE_PLOT_FILL,
	TRACE_PLOT_PREFETCH,
	TRACE_PLOT_GUEST_FAULT,
	TRACE_PLOT_UNPROTECT,
	TRACE_PLOT_MARKS,
};

struct trace_plot_options {
	enum trace_plot_axis x; /* --x=ns (the default) or --x=seq */
	const char *title;      /* --title, or NULL: the trace's file name */
	unsigned width, height; /* pixels; 0 = the default */
};

struct trace_plot;

/* OUT's format by its extension (.png, .svg, any case); -1 for another. */
int trace_plot_format_of(const char *out);

/* Read a trace and lay the picture out.  `name` is the file's name for the
 * default title.  0 with *p set (free it with trace_plot_free), or -1 with
 * one line ("line N: why") in err. */
int trace_plot_read(FILE *in, const char *name, const struct trace_plot_options *o,
		    struct trace_plot **p, char *err, size_t errlen);
void trace_plot_free(struct trace_plot *p);

/* The line number of the truncated last line skipped by the read, or 0. */
uint64_t trace_plot_truncated(const struct trace_plot *p);

/* The pixel column of time t (the record's ns, or its seq under --x=seq). */
int trace_plot_x(const struct trace_plot *p, uint64_t t);

/* The pixel row of gva in the address panel, or -1 outside its bands. */
int trace_plot_y(const struct trace_plot *p, uint64_t gva);

/* A mark's colour as 0xRRGGBB; level 1..3 for fills and prefetches. */
uint32_t trace_plot_colour(enum trace_plot_mark m, unsigned level);

/* Draw into `out` in `fmt`.  VMM_OK; VMM_E_TRACE when out cannot be
 * written (nothing is left of it) or VMM_E_INTERNAL, with why in err. */
int trace_plot_write(const struct trace_plot *p, const char *out, enum trace_plot_format fmt,
		     char *err, size_t errlen);

/* The command: VMM_OK, VMM_E_USAGE (OUT neither .png nor .svg),
 * VMM_E_NOINPUT (unreadable trace), VMM_E_IMAGE (a bad line), VMM_E_TRACE
 * (OUT cannot be written) or VMM_E_INTERNAL, each with one line on stderr;
 * a truncated last line is a warning. */
int trace_plot_main(const char *path, const char *out, const struct trace_plot_options *o);

#endif
