/* Reading a --trace file back (JSON Lines, parsed with json-c): the one
 * reader behind `trace summary` and `trace plot`.  It owns the line rules:
 * blank lines are skipped, a last line that does not parse is a truncated
 * tail (skipped and reported), any other line that is not a JSON object
 * fails the read. */
#ifndef SHADOWVM_TRACE_READ_H
#define SHADOWVM_TRACE_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "trace.h"

struct json_object;

/* Called once per record, in file order; 0, or -1 with why (no line
 * number: the reader adds it) when the record cannot be used. */
typedef int (*trace_record_fn)(void *ctx, struct json_object *rec, char *why, size_t whylen);

struct trace_read_result {
	uint64_t records;   /* records handed to the callback */
	uint64_t truncated; /* line number of a skipped truncated last line, or 0 */
};

/* Read every record of `in`.  0, or -1 with one line ("line N: why") in err. */
int trace_read(FILE *in, trace_record_fn fn, void *ctx, struct trace_read_result *res, char *err,
	       size_t errlen);

/* The command's side: open `path` ("-" = stdin), read it, report a failure
 * or a truncated tail with one line prefixed "`cmd`: path: ".  VMM_OK,
 * VMM_E_NOINPUT (cannot open) or VMM_E_IMAGE (bad line). */
int trace_read_path(const char *cmd, const char *path, trace_record_fn fn, void *ctx,
		    struct trace_read_result *res);

/* Field access on a record: the string at key, or NULL when there is none
 * or it is not a string. */
const char *trace_rec_str(struct json_object *rec, const char *key);

/* The "0x..." string or the number at key into *out; false where none. */
bool trace_rec_u64(struct json_object *rec, const char *key, uint64_t *out);

/* The record's "event": TRACE_EV_* for a known kind, TRACE_EV_COUNT for an
 * unknown one; -1 when the record has no "event" string. */
int trace_rec_event(struct json_object *rec);

#endif
