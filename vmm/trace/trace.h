/* The trace (DESIGN.md §6): one record per event, as JSON Lines or as one
 * human line, each written with a single write(2) so that whatever ends the
 * run leaves only complete lines behind.  Field names follow KVM's kvmmmu
 * tracepoints (gfn, spte, sptep, level, pferr); the schema is in README.md.
 * No KVM in here: the unit suite drives it with crafted events. */
#ifndef SHADOWVM_TRACE_H
#define SHADOWVM_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shadow.h"

enum trace_event {
	TRACE_EV_SHADOW_INIT,
	TRACE_EV_FILL,
	TRACE_EV_AD_SET,
	TRACE_EV_GUEST_FAULT,
	TRACE_EV_CR3,
	TRACE_EV_INVLPG,
	TRACE_EV_EVICT,
	TRACE_EV_FLUSH,
	TRACE_EV_EMULATE,
	TRACE_EV_EXIT,
	TRACE_EV_PREFETCH,
	TRACE_EV_UNPROTECT,
	TRACE_EV_REFLECT,
	TRACE_EV_COUNT,
};

#define TRACE_ALL_EVENTS ((1u << TRACE_EV_COUNT) - 1)

enum trace_format { TRACE_FMT_JSON, TRACE_FMT_TEXT };

struct trace_config {
	const char *path; /* "-" = stderr */
	uint32_t events;  /* mask of 1u << TRACE_EV_* */
	enum trace_format format;
	void (*stop)(int status); /* called once on a write error; may be NULL */
};

struct trace;

/* "fill", "ad_set", ... */
const char *trace_event_name(enum trace_event ev);

/* Parse a --trace-events list of comma-separated fnmatch globs into a mask.
 * 0, or -1 with one line in err when a glob matches no event. */
int trace_events_parse(const char *list, uint32_t *mask, char *err, size_t errlen);

/* Open (truncate) the trace file.  NULL with one line in err on failure. */
struct trace *trace_open(const struct trace_config *cfg, char *err, size_t errlen);

/* Close the trace; false if any record could not be written (reported once,
 * when it happened).  NULL is a no-op returning true. */
bool trace_close(struct trace *t);

/* True once a record could not be written: the run ends with VMM_E_TRACE. */
bool trace_failed(const struct trace *t);

/* Every function below accepts t == NULL (tracing off) and does nothing. */

/* shadow_config.hook: fill, ad_set, guest_fault, cr3, invlpg, flush, evict,
 * prefetch, unprotect. */
void trace_shadow_event(void *t, const struct shadow_event *ev);

/* The same for an event made at trace time `ns` (the fill monitor's,
 * drained from its ring): recorded at the earlier of ns and now, and never
 * before the last record. */
void trace_shadow_event_at(struct trace *t, const struct shadow_event *ev, uint64_t ns);

/* Nanoseconds since the trace was opened; 0 for NULL. */
uint64_t trace_ns(const struct trace *t);

/* A new shadow root and its present entries (table = its 512 entries). */
void trace_shadow_init(struct trace *t, mpa_t root, gpa_t vcr3, const uint64_t *table,
		       unsigned hv_index);

/* One privileged instruction decoded at rip after #GP/#UD `vector`;
 * result says what became of it ("done", "reflect", "unsupported", ...). */
void trace_emulate(struct trace *t, uint64_t rip, unsigned vector, const char *mnemonic,
		   const uint8_t *bytes, size_t len, const char *result);

/* The same for an instruction the fill monitor emulated at trace time ns
 * (as trace_shadow_event_at). */
void trace_emulate_at(struct trace *t, uint64_t rip, unsigned vector, const char *mnemonic,
		      const uint8_t *bytes, size_t len, const char *result, uint64_t ns);

/* An event delivered through the guest's IDT (an exception, or `int n`
 * when `soft`), with its error code when it has one, at rip. */
void trace_reflect(struct trace *t, unsigned vector, bool has_err, uint32_t err, uint64_t cr2,
		   bool soft, uint64_t rip);

/* The end of the run: its exit status, the number of KVM exits, the last
 * KVM exit reason. */
void trace_exit(struct trace *t, int status, uint64_t exits, const char *kvm_exit);

#endif
