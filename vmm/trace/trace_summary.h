/* `shadowvm trace summary FILE`: read a --trace file back with json-c and
 * say what happened: counts per event, fills per page, the most-faulting
 * pages. */
#ifndef SHADOWVM_TRACE_SUMMARY_H
#define SHADOWVM_TRACE_SUMMARY_H

#include <stdint.h>
#include <stdio.h>

#include "trace.h"

struct trace_page {
	uint64_t page; /* GVA of the 4 KiB page */
	uint64_t fills;
	uint64_t faults; /* guest_fault records */
};

struct trace_summary {
	uint64_t lines; /* records read */
	uint64_t events[TRACE_EV_COUNT];
	uint64_t unknown;           /* records of an event kind not listed */
	uint64_t fills_by_level[4]; /* 1 = 4K, 2 = 2M, 3 = 1G */
	uint64_t truncated;         /* line number of a skipped truncated last line, or 0 */
	struct trace_page *pages;   /* sorted by page */
	size_t npages;
};

/* Read a whole trace.  A last line that does not parse is counted in
 * s->truncated and skipped; any other bad line fails.  0, or -1 with one
 * line (file line number and why) in err.  Free s with trace_summary_free
 * either way. */
int trace_summary_read(FILE *in, struct trace_summary *s, char *err, size_t errlen);
void trace_summary_free(struct trace_summary *s);

/* The human report: counts, fills per page, the `top` most-faulting pages. */
void trace_summary_print(const struct trace_summary *s, const char *name, unsigned top, FILE *out);

/* The command: VMM_OK, VMM_E_NOINPUT (unreadable) or VMM_E_IMAGE (bad line). */
int trace_summary_main(const char *path);

#endif
