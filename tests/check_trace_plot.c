/* trace plot on hand-made traces: marks land on the pixels the exported
 * mapping names, in their kind's colour, on background elsewhere; the VA
 * bands keep both halves; bad traces get trace summary's statuses. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "status.h"
#include "suites.h"
#include "trace_plot.h"
#include "util.h"

#define DIAG 1000 /* fills on the diagonal: time i, GVA i * 4 KiB */

/* A record line: seq, ns, event, the rest of its fields. */
static void rec(FILE *f, unsigned seq, unsigned long long ns, const char *ev, const char *rest)
{
	fprintf(f, "{\"seq\":%u,\"vcpu\":0,\"ns\":%llu,\"event\":\"%s\"%s}\n", seq, ns, ev, rest);
}

static void fill(FILE *f, unsigned seq, unsigned long long ns, unsigned long long gva,
		 unsigned level)
{
	char rest[160];

	snprintf(rest, sizeof(rest), ",\"gva\":\"0x%llx\",\"level\":%u,\"pages\":%u", gva, level,
		 4 + seq / 8);
	rec(f, seq, ns, "fill", rest);
}

/* The diagonal: shadow_init at seq 0, fill i at seq i + 1 and ns 1000 * i. */
static const char *diagonal_trace(void)
{
	const char *path = test_file("diag.jsonl");
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	rec(f, 0, 0, "shadow_init", ",\"root\":\"0x800020000\",\"cr3\":\"0x9000\",\"entries\":[]");
	for (unsigned i = 0; i < DIAG; i++)
		fill(f, i + 1, 1000ull * i, 4096ull * i, 1);
	rec(f, DIAG + 1, 1000ull * DIAG, "exit", ",\"status\":0,\"reason\":\"ok\",\"exits\":9");
	fclose(f);
	return path;
}

static struct trace_plot *plot_file(const char *path, const struct trace_plot_options *o)
{
	struct trace_plot *p;
	char err[256] = "";
	FILE *f = fopen(path, "r");

	ck_assert_ptr_nonnull(f);
	ck_assert_msg(trace_plot_read(f, path, o, &p, err, sizeof(err)) == 0, "%s", err);
	fclose(f);
	return p;
}

static cairo_surface_t *draw_png(const struct trace_plot *p, const char *name)
{
	char err[256] = "";

	ck_assert_msg(trace_plot_write(p, test_file(name), TRACE_PLOT_PNG, err, sizeof(err)) ==
			      VMM_OK,
		      "%s", err);
	return png_load(test_file(name));
}

/* Loop over the x axes: ns, then seq. */
START_TEST(test_plot_diagonal_lands_on_its_pixels)
{
	struct trace_plot_options o = { .x = _i ? TRACE_PLOT_X_SEQ : TRACE_PLOT_X_NS };
	struct trace_plot *p = plot_file(diagonal_trace(), &o);
	cairo_surface_t *png = draw_png(p, "diag.png");
	uint32_t fill4k = trace_plot_colour(TRACE_PLOT_FILL, 1);

	ck_assert_int_eq(cairo_image_surface_get_width(png), TRACE_PLOT_WIDTH);
	ck_assert_int_eq(cairo_image_surface_get_height(png), TRACE_PLOT_HEIGHT);
	ck_assert_int_lt(trace_plot_y(p, 4096ull * (DIAG - 1)), trace_plot_y(p, 0));
	ck_assert_int_eq(trace_plot_y(p, 1ull << 40), -1); /* far off every band */
	for (unsigned i = 0; i < DIAG; i += 37) {
		uint64_t t = _i ? i + 1 : 1000ull * i;
		int x = trace_plot_x(p, t), y = trace_plot_y(p, 4096ull * i);
		unsigned off = (i + DIAG / 2) % DIAG; /* half the range away */

		ck_assert_msg(png_pixel(png, x, y) == fill4k, "fill %u at (%d, %d): 0x%06x", i, x,
			      y, png_pixel(png, x, y));
		ck_assert_msg(png_pixel(png, x, trace_plot_y(p, 4096ull * off)) ==
				      TRACE_PLOT_BACKGROUND,
			      "(%d, gva of fill %u) is not background", x, off);
	}
	cairo_surface_destroy(png);
	trace_plot_free(p);
}
END_TEST

/* The kernel and user halves each get a band, kernel on top; a guest
 * fault, a 2 MiB prefetch and an unprotect (at the GVA of the fill that
 * follows it) have their colours; a CR3 write is a rule behind them. */
START_TEST(test_plot_kinds_bands_and_rules)
{
	const char *path = test_file("kinds.jsonl");
	const unsigned long long kva = 0xffffffff80000000ull, uva = 0x400000ull;
	struct trace_plot_options o = { .x = TRACE_PLOT_X_SEQ, .width = 800, .height = 600 };
	FILE *f = fopen(path, "w");
	struct trace_plot *p;
	cairo_surface_t *png;

	ck_assert_ptr_nonnull(f);
	fill(f, 0, 0, kva, 1);
	rec(f, 1, 1, "guest_fault", ",\"gva\":\"0x7000\",\"level\":1,\"pages\":5");
	rec(f, 2, 2, "prefetch", ",\"gva\":\"0xffffffff80200000\",\"level\":2,\"pages\":5");
	rec(f, 3, 3, "cr3", ",\"cr3\":\"0xa000\",\"pages\":5");
	rec(f, 4, 4, "unprotect", ",\"gfn\":\"0x9\",\"zapped\":1,\"volatile\":false,\"pages\":4");
	fill(f, 5, 5, uva + 0x10000, 1);
	fill(f, 6, 6, uva, 1);
	fclose(f);
	p = plot_file(path, &o);
	png = draw_png(p, "kinds.png");
	ck_assert_int_lt(trace_plot_y(p, kva), trace_plot_y(p, uva));
	ck_assert_int_eq(trace_plot_y(p, 0x0000100000000000ull), -1); /* elided */
	ck_assert_uint_eq(png_pixel(png, trace_plot_x(p, 0), trace_plot_y(p, kva)),
			  trace_plot_colour(TRACE_PLOT_FILL, 1));
	ck_assert_uint_eq(png_pixel(png, trace_plot_x(p, 1), trace_plot_y(p, 0x7000)),
			  trace_plot_colour(TRACE_PLOT_GUEST_FAULT, 1));
	ck_assert_uint_eq(png_pixel(png, trace_plot_x(p, 2), trace_plot_y(p, kva + 0x200000)),
			  trace_plot_colour(TRACE_PLOT_PREFETCH, 2));
	ck_assert_uint_eq(png_pixel(png, trace_plot_x(p, 4), trace_plot_y(p, uva + 0x10000)),
			  trace_plot_colour(TRACE_PLOT_UNPROTECT, 1));
	ck_assert_uint_ne(png_pixel(png, trace_plot_x(p, 3), trace_plot_y(p, uva + 0x100000)),
			  TRACE_PLOT_BACKGROUND); /* the cr3 rule */
	ck_assert_uint_eq(png_pixel(png, trace_plot_x(p, 6), trace_plot_y(p, uva + 0x100000)),
			  TRACE_PLOT_BACKGROUND);
	cairo_surface_destroy(png);
	trace_plot_free(p);
}
END_TEST

static const char head[] =
	"{\"seq\":0,\"vcpu\":0,\"ns\":0,\"event\":\"fill\",\"gva\":\"0x1000\"}\n";

struct bad_case {
	const char *text;
	int status;      /* of trace_plot_main */
	const char *err; /* of trace_plot_read, when it fails */
};

static const struct bad_case bads[] = {
	{ "{\"seq\":0,\n{}\n", VMM_E_IMAGE, "line 1: not JSON" },
	{ "[1]\n{\"seq\":1}\n", VMM_E_IMAGE, "line 1: not JSON" },
	{ "{\"seq\":1,\"ns\":1}\n", VMM_E_IMAGE, "line 1: not a trace record (no \"event\")" },
	{ "{\"event\":\"fill\",\"gva\":\"0x1\"}\n", VMM_E_IMAGE,
	  "line 1: record without \"ns\" or \"seq\"" },
	{ "{\"seq\":1,\"ns\":1,\"event\":\"fill\"}\n", VMM_E_IMAGE,
	  "line 1: fill record without \"gva\"" },
	{ "{\"seq\":1,\"ns\":1,\"event\":\"cr3\",\"cr3\":\"zz\"}\n", VMM_E_IMAGE,
	  "line 1: cr3 record without \"cr3\"" },
	{ "{\"seq\":1,\"ns\":1,\"event\":\"fill\",\"gva\":\"0x2000\"}\n{\"seq\":2,\"ev", VMM_OK,
	  NULL },
};

/* The whole text after `head` (line 1 good), as a file and through
 * trace_plot_main; a failing read names the line (one more than in the
 * table, for the head). */
START_TEST(test_plot_bad_traces_get_their_status)
{
	const struct bad_case *c = &bads[_i];
	struct trace_plot_options o = { 0 };
	size_t len = strlen(head) + strlen(c->text) + 1;
	char *text = malloc(len), *path, err[256] = "", want[256];
	struct trace_plot *p;
	FILE *f;

	snprintf(text, len, "%s%s", head, c->text);
	path = write_temp(text, strlen(text));
	ck_assert_int_eq(trace_plot_main(path, test_file("bad.png"), &o), c->status);
	ck_assert_int_eq(access(test_file("bad.png"), F_OK) == 0, c->status == VMM_OK);
	f = fopen(path, "r");
	ck_assert_int_eq(trace_plot_read(f, path, &o, &p, err, sizeof(err)), c->err ? -1 : 0);
	fclose(f);
	if (c->err) {
		unsigned line;
		ck_assert_int_eq(sscanf(c->err, "line %u", &line), 1);
		snprintf(want, sizeof(want), "line %u%s", line + 1, strchr(c->err, ':'));
		ck_assert_str_eq(err, want);
	} else {
		ck_assert_uint_eq(trace_plot_truncated(p), 3);
		trace_plot_free(p);
	}
	free(text);
	free(path);
}
END_TEST

START_TEST(test_plot_unwritable_out_is_73_and_missing_trace_66)
{
	struct trace_plot_options o = { 0 };
	char *path = write_temp(head, strlen(head));

	ck_assert_int_eq(trace_plot_main(path, "/nonexistent/dir/x.png", &o), VMM_E_TRACE);
	ck_assert_int_eq(trace_plot_main(path, "/nonexistent/dir/x.svg", &o), VMM_E_TRACE);
	ck_assert_int_eq(trace_plot_main(test_file("none.jsonl"), test_file("x.png"), &o),
			 VMM_E_NOINPUT);
	ck_assert_int_eq(trace_plot_main(path, test_file("x.svg"), &o), VMM_OK);
	ck_assert_int_eq(access(test_file("x.svg"), F_OK), 0);
	free(path);
}
END_TEST

Suite *trace_plot_suite(void)
{
	Suite *s = suite_create("trace_plot");
	TCase *tc = tcase_create("plot");

	tcase_set_timeout(tc, 60);
	tcase_add_temp_dir(tc);
	tcase_add_loop_test(tc, test_plot_diagonal_lands_on_its_pixels, 0, 2);
	tcase_add_test(tc, test_plot_kinds_bands_and_rules);
	tcase_add_loop_test(tc, test_plot_bad_traces_get_their_status, 0,
			    (int)(sizeof(bads) / sizeof(bads[0])));
	tcase_add_test(tc, test_plot_unwritable_out_is_73_and_missing_trace_66);
	suite_add_tcase(s, tc);
	return s;
}
