#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

extern char **environ;

static char *slurp(int fd)
{
	struct stat st;
	char *buf;
	ssize_t n;

	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = calloc(1, (size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	n = pread(fd, buf, (size_t)st.st_size, 0);
	ck_assert_int_eq(n, st.st_size);
	close(fd);
	return buf;
}

static char tcase_dir[PATH_MAX]; /* made in the runner's process */
static char test_dir[PATH_MAX];  /* this test's, inside it */

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path) ? -1 : 0;
}

static void remove_tree(char *dir)
{
	if (dir[0] && nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS))
		fprintf(stderr, "tests: cannot remove %s: %s\n", dir, strerror(errno));
	dir[0] = '\0';
}

/* Unchecked fixtures run in the runner itself, where a failed assertion
 * would end the run: a failure leaves tcase_dir empty for test_setup. */
static void tcase_dir_make(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(tcase_dir, sizeof(tcase_dir), "%s/shadowvm-tests.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(tcase_dir)) {
		fprintf(stderr, "tests: mkdtemp %s: %s\n", tcase_dir, strerror(errno));
		tcase_dir[0] = '\0';
	}
}

static void tcase_dir_remove(void)
{
	remove_tree(tcase_dir);
}

static void test_dir_make(void)
{
	ck_assert_msg(tcase_dir[0], "no directory for the test case's temporary files");
	ck_assert(snprintf(test_dir, sizeof(test_dir), "%s/test.XXXXXX", tcase_dir) <
		  (int)sizeof(test_dir));
	ck_assert_msg(mkdtemp(test_dir), "mkdtemp %s: %s", test_dir, strerror(errno));
}

static void test_dir_remove(void)
{
	remove_tree(test_dir);
}

void tcase_add_temp_dir(TCase *tc)
{
	tcase_add_unchecked_fixture(tc, tcase_dir_make, tcase_dir_remove);
	tcase_add_checked_fixture(tc, test_dir_make, test_dir_remove);
}

/* `name` in the test's directory, into buf[PATH_MAX]. */
static void in_test_dir(char *buf, const char *name)
{
	ck_assert_msg(test_dir[0], "%s: the test case has no tcase_add_temp_dir", name);
	ck_assert_msg(snprintf(buf, PATH_MAX, "%s/%s", test_dir, name) < PATH_MAX, "%s: too long",
		      name);
}

const char *test_file(const char *name)
{
	static char paths[4][PATH_MAX];
	static unsigned next;
	char *p = paths[next++ % 4];

	in_test_dir(p, name);
	return p;
}

/* An open file in the test's directory, named from the mkstemp template
 * `tmpl`, which it rewrites. */
static int temp_file(char *tmpl)
{
	int fd = mkstemp(tmpl);

	ck_assert_msg(fd >= 0, "mkstemp %s: %s", tmpl, strerror(errno));
	return fd;
}

/* Where a child's output goes: a file of the test's, already unlinked. */
static int capture_fd(void)
{
	char path[PATH_MAX];
	int fd;

	in_test_dir(path, "capture.XXXXXX");
	fd = temp_file(path);
	unlink(path);
	return fd;
}

void run_cmd(char *const argv[], struct run_result *res)
{
	posix_spawn_file_actions_t fa;
	struct timespec t0, t1;
	int ofd = capture_fd(), efd = capture_fd(), ws;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	/* nothing typed: a Multiboot guest's console reads stdin */
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, ofd, STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, efd, STDERR_FILENO);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_msg(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) == 0, "cannot run %s",
		      argv[0]);
	posix_spawn_file_actions_destroy(&fa);
	ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	res->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	res->secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	res->out = slurp(ofd);
	res->err = slurp(efd);
}

/* Read what the child printed into *buf (grown) until `want` is in it, the
 * pipe ends, or `secs` pass.  True if `want` was seen. */
static bool read_until(int fd, char **buf, size_t *len, size_t *cap, const char *want, double secs)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double left;
		ssize_t n;

		if (want && strstr(*buf, want))
			return true;
		clock_gettime(CLOCK_MONOTONIC, &t);
		left = secs -
		       ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) * 1e-9);
		if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			return false;
		if (*len + 4096 + 1 > *cap) {
			*cap = (*cap + 4096) * 2;
			*buf = realloc(*buf, *cap);
			ck_assert_ptr_nonnull(*buf);
		}
		n = read(fd, *buf + *len, 4096);
		if (n <= 0)
			return !want;
		*len += (size_t)n;
		(*buf)[*len] = '\0';
	}
}

void run_console(char *const argv[], const struct console_step *steps, unsigned nsteps, double secs,
		 struct run_result *res)
{
	posix_spawn_file_actions_t fa;
	int in[2], out[2], efd = capture_fd(), ws;
	size_t len = 0, cap = 4096;
	char *buf = calloc(1, cap);
	pid_t pid;

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(pipe(in), 0);
	ck_assert_int_eq(pipe(out), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, efd, STDERR_FILENO);
	posix_spawn_file_actions_addclose(&fa, in[1]);
	posix_spawn_file_actions_addclose(&fa, out[0]);
	ck_assert_msg(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) == 0, "cannot run %s",
		      argv[0]);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	res->failed_step = -1;
	for (unsigned i = 0; i < nsteps; i++) {
		size_t n = strlen(steps[i].send);
		if (!read_until(out[0], &buf, &len, &cap, steps[i].expect, secs)) {
			res->failed_step = (int)i;
			kill(pid, SIGTERM);
			break;
		}
		ck_assert_int_eq(write(in[1], steps[i].send, n), (ssize_t)n);
	}
	read_until(out[0], &buf, &len, &cap, NULL, secs);
	close(in[1]);
	close(out[0]);
	ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
	res->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	res->secs = 0;
	res->out = buf;
	res->err = slurp(efd);
}

void run_result_free(struct run_result *res)
{
	free(res->out);
	free(res->err);
	res->out = res->err = NULL;
}

char *write_temp(const void *data, size_t len)
{
	char *path = malloc(PATH_MAX);
	int fd;

	ck_assert_ptr_nonnull(path);
	in_test_dir(path, "file.XXXXXX");
	fd = temp_file(path);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

bool json_path_int(struct json_object *o, const char *path, int64_t *out)
{
	char key[64];

	while (o && *path) {
		size_t n = strcspn(path, ".");

		snprintf(key, sizeof(key), "%.*s", (int)n, path);
		if (!json_object_object_get_ex(o, key, &o))
			return false;
		path += n + (path[n] == '.');
	}
	if (!o || !json_object_is_type(o, json_type_int))
		return false;
	*out = json_object_get_int64(o);
	return true;
}

/* ---- the trace schema (README.md "Trace") ---- */

enum ftype { F_INT, F_STR, F_HEX, F_ARR, F_BOOL };

struct field {
	const char *name;
	enum ftype type;
};

struct event_schema {
	const char *event;
	struct field fields[16];
};

#define FAULT_FIELDS                                                                        \
	{ "gva", F_HEX }, { "cr3", F_HEX }, { "access", F_STR }, { "error_code", F_HEX },   \
		{ "pferr", F_STR }, { "level", F_INT }, { "walk", F_ARR }, { "ad", F_STR }, \
	{                                                                                   \
		"pages", F_INT                                                              \
	}

static const struct event_schema schema[] = {
	{ "shadow_init", { { "root", F_HEX }, { "cr3", F_HEX }, { "entries", F_ARR } } },
	{ "fill",
	  { FAULT_FIELDS,
	    { "gpa", F_HEX },
	    { "gfn", F_HEX },
	    { "spte", F_HEX },
	    { "sptep", F_HEX } } },
	{ "ad_set", { FAULT_FIELDS } },
	{ "guest_fault", { FAULT_FIELDS, { "vector", F_INT } } },
	{ "cr3", { { "cr3", F_HEX }, { "pages", F_INT } } },
	{ "invlpg", { { "gva", F_HEX }, { "cr3", F_HEX }, { "pages", F_INT } } },
	{ "flush", { { "reason", F_STR }, { "cr3", F_HEX }, { "pages", F_INT } } },
	{ "evict",
	  { { "reason", F_STR }, { "cr3", F_HEX }, { "gva", F_HEX }, { "pages", F_INT } } },
	{ "emulate",
	  { { "rip", F_HEX },
	    { "vector", F_INT },
	    { "mnemonic", F_STR },
	    { "bytes", F_STR },
	    { "result", F_STR } } },
	{ "exit",
	  { { "status", F_INT }, { "reason", F_STR }, { "exits", F_INT }, { "kvm_exit", F_STR } } },
	{ "prefetch",
	  { { "gva", F_HEX },
	    { "cr3", F_HEX },
	    { "level", F_INT },
	    { "gpa", F_HEX },
	    { "gfn", F_HEX },
	    { "spte", F_HEX },
	    { "sptep", F_HEX },
	    { "pages", F_INT } } },
	{ "unprotect",
	  { { "gfn", F_HEX },
	    { "cr3", F_HEX },
	    { "zapped", F_INT },
	    { "volatile", F_BOOL },
	    { "pages", F_INT } } },
	{ "reflect",
	  { { "vector", F_INT },
	    { "error_code", F_INT },
	    { "cr2", F_HEX },
	    { "soft", F_BOOL },
	    { "rip", F_HEX } } },
};

static const struct field common[] = {
	{ "seq", F_INT }, { "vcpu", F_INT }, { "ns", F_INT }, { "event", F_STR }, { NULL, F_INT },
};

static const struct field walk_fields[] = {
	{ "level", F_INT }, { "gpa", F_HEX }, { "pte", F_HEX }, { "ad", F_STR }, { NULL, F_INT },
};

static bool is_hex(const char *s)
{
	if (strncmp(s, "0x", 2) || !s[2])
		return false;
	return strspn(s + 2, "0123456789abcdef") == strlen(s + 2);
}

static const char *check_fields(struct json_object *o, const struct field *f, const char *where)
{
	static char why[256];
	static const json_type types[] = { [F_INT] = json_type_int,
					   [F_STR] = json_type_string,
					   [F_HEX] = json_type_string,
					   [F_ARR] = json_type_array,
					   [F_BOOL] = json_type_boolean };
	struct json_object *v;

	for (; f->name; f++) {
		if (!json_object_object_get_ex(o, f->name, &v) ||
		    !json_object_is_type(v, types[f->type]) ||
		    (f->type == F_HEX && !is_hex(json_object_get_string(v)))) {
			snprintf(why, sizeof(why), "%s: field \"%s\" missing or of the wrong type",
				 where, f->name);
			return why;
		}
	}
	return NULL;
}

const char *trace_schema_error(struct json_object *rec)
{
	struct json_object *ev, *walk;
	const char *e, *why;

	if (!json_object_is_type(rec, json_type_object))
		return "not an object";
	if ((why = check_fields(rec, common, "record")))
		return why;
	json_object_object_get_ex(rec, "event", &ev);
	e = json_object_get_string(ev);
	for (size_t i = 0; i < sizeof(schema) / sizeof(schema[0]); i++) {
		if (strcmp(schema[i].event, e))
			continue;
		if ((why = check_fields(rec, schema[i].fields, e)))
			return why;
		if (!json_object_object_get_ex(rec, "walk", &walk))
			return NULL;
		for (size_t k = 0; k < json_object_array_length(walk); k++)
			if ((why = check_fields(json_object_array_get_idx(walk, k), walk_fields,
						"walk[]")))
				return why;
		return NULL;
	}
	return "unknown event";
}

cairo_surface_t *png_load(const char *path)
{
	cairo_surface_t *png = cairo_image_surface_create_from_png(path);

	ck_assert_msg(cairo_surface_status(png) == CAIRO_STATUS_SUCCESS, "%s: %s", path,
		      cairo_status_to_string(cairo_surface_status(png)));
	return png;
}

uint32_t png_pixel(cairo_surface_t *png, int x, int y)
{
	const unsigned char *row;

	ck_assert_msg(x >= 0 && y >= 0 && x < cairo_image_surface_get_width(png) &&
			      y < cairo_image_surface_get_height(png),
		      "pixel (%d, %d) outside the image", x, y);
	cairo_surface_flush(png);
	row = cairo_image_surface_get_data(png) +
	      (size_t)y * (size_t)cairo_image_surface_get_stride(png);
	return ((const uint32_t *)(const void *)row)[x] & 0xffffffu;
}
