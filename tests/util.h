/* Helpers shared by the test suites. */
#ifndef SHADOWVM_TESTS_UTIL_H
#define SHADOWVM_TESTS_UTIL_H

#include <stddef.h>

struct run_result {
	int status;     /* exit status, or 128 + signal */
	char *out, *err; /* captured stdout / stderr, NUL-terminated */
	double secs;    /* wall time */
};

/* Run argv (argv[0] a path) with stdout and stderr captured.  Aborts the
 * test on failure to spawn. */
void run_cmd(char *const argv[], struct run_result *res);
void run_result_free(struct run_result *res);

/* Write `len` bytes to a fresh temporary file; returns its malloc'd path. */
char *write_temp(const void *data, size_t len);

struct json_object;

/* NULL if `rec` is a trace record matching the schema of its event kind
 * (README.md "Trace": common fields, required fields and their types), else
 * what is wrong, in a static buffer. */
const char *trace_schema_error(struct json_object *rec);

#endif
