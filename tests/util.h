/* Helpers shared by the test suites. */
#ifndef SHADOWVM_TESTS_UTIL_H
#define SHADOWVM_TESTS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cairo.h>
#include <check.h>

/* Every temporary file of the suites lives in a directory of its test's own,
 * from mkdtemp: tcase_add_temp_dir(tc) makes one before each test of tc and
 * removes it, and everything in it, after; what a failed test leaves (Check
 * ends it without its teardown) goes with the test case's directory when tc
 * ends.  test_file(name) is the path of `name` in it, in one of a few static
 * buffers, so that several can be live at once; it aborts the test when tc
 * has no temporary directory. */
void tcase_add_temp_dir(TCase *tc);
const char *test_file(const char *name);

struct run_result {
	int status;      /* exit status, or 128 + signal */
	char *out, *err; /* captured stdout / stderr, NUL-terminated */
	double secs;     /* wall time */
	int failed_step; /* run_console: the step whose text never came, or -1 */
};

/* Run argv (argv[0] a path) with stdout and stderr captured.  Aborts the
 * test on failure to spawn. */
void run_cmd(char *const argv[], struct run_result *res);
void run_result_free(struct run_result *res);

/* One step of a scripted console session: wait for `expect` in the
 * output so far, then type `send`. */
struct console_step {
	const char *expect, *send;
};

/* Run argv with stdin and stdout on pipes, playing `steps` in order (each
 * wait at most `secs`; a step that never sees its text stops the child with
 * SIGTERM and is res->failed_step), then read the output to its end. */
void run_console(char *const argv[], const struct console_step *steps, unsigned nsteps, double secs,
		 struct run_result *res);

/* Write `len` bytes to a fresh file in the test's directory; returns its
 * malloc'd path. */
char *write_temp(const void *data, size_t len);

struct json_object;

/* NULL if `rec` is a trace record matching the schema of its event kind
 * (README.md "Trace": common fields, required fields and their types), else
 * what is wrong, in a static buffer. */
const char *trace_schema_error(struct json_object *rec);

/* The integer at a dotted path of `o` ("fills.1" is "1" inside "fills"), as
 * vmm/trace/counters.h names the --stats keys, into *out; false where there is
 * none. */
bool json_path_int(struct json_object *o, const char *path, int64_t *out);

/* A PNG read back with cairo (the test fails if it cannot be read), and
 * one of its pixels as 0xRRGGBB. */
cairo_surface_t *png_load(const char *path);
uint32_t png_pixel(cairo_surface_t *png, int x, int y);

#endif
