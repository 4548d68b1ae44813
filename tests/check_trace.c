/* The trace writer (JSON and text, the event filter, write errors) and the
 * summary reader, on crafted events and crafted files: no KVM. */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "status.h"
#include "suites.h"
#include "trace.h"
#include "trace_summary.h"
#include "util.h"

/* ---- the writer ---- */

/* A 4 KiB write fill of gva 0x401000 through four guest entries. */
static struct shadow_event fill_event(void)
{
	struct shadow_event ev = { .kind = SHADOW_EV_FILL,
				   .gva = 0x401234,
				   .vcr3 = 0x9000,
				   .access = SHADOW_ACC_WRITE | SHADOW_ACC_USER,
				   .error_code = X86_PF_P | X86_PF_W | X86_PF_U,
				   .level = 1,
				   .depth = 4,
				   .gpa = 0x7401234,
				   .spte = 0x8000000007401007ull,
				   .spte_mpa = 0x800021008ull,
				   .pages_in_use = 4 };

	for (int l = 4; l >= 1; l--) {
		ev.gpte_gpa[l] = 0x9000 + (uint64_t)l * 0x1000;
		ev.gpte[l] = 0x67;
	}
	ev.ad_set[1] = X86_PTE_A | X86_PTE_D;
	return ev;
}

static int stopped_with;

static void on_stop(int status)
{
	stopped_with = status;
}

static struct trace *open_temp(char **path, uint32_t events, enum trace_format fmt)
{
	struct trace_config cfg = { .events = events, .format = fmt, .stop = on_stop };
	char err[256] = "";
	struct trace *t;

	*path = write_temp("", 0);
	cfg.path = *path;
	t = trace_open(&cfg, err, sizeof(err));
	ck_assert_msg(t, "trace_open: %s", err);
	return t;
}

static char *slurp_path(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	size_t n;

	ck_assert(f && buf);
	n = fread(buf, 1, 65535, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* Emit shadow_init, a fill and the exit record into a fresh trace. */
static char *three_events(uint32_t events, enum trace_format fmt)
{
	uint64_t root[X86_PT_ENTRIES] = { [510] = 0x800000023ull };
	struct shadow_event ev = fill_event();
	char *path, *text;
	struct trace *t = open_temp(&path, events, fmt);

	trace_shadow_init(t, 0x800020000ull, 0x9000, root, 510);
	trace_shadow_event(t, &ev);
	trace_exit(t, 0, 42, "IO");
	ck_assert(trace_close(t));
	text = slurp_path(path);
	unlink(path);
	free(path);
	return text;
}

static struct json_object *line_json(const char *text, unsigned n)
{
	const char *p = text;
	char line[4096];
	size_t len;

	for (unsigned i = 0; i < n; i++)
		p = strchr(p, '\n') + 1;
	len = (size_t)(strchr(p, '\n') - p);
	memcpy(line, p, len);
	line[len] = 0;
	return json_tokener_parse(line);
}

static const char *field(struct json_object *o, const char *key)
{
	struct json_object *v;

	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no field %s", key);
	return json_object_get_string(v);
}

START_TEST(test_trace_json_records_match_schema)
{
	char *text = three_events(TRACE_ALL_EVENTS, TRACE_FMT_JSON);
	struct json_object *init = line_json(text, 0), *fill = line_json(text, 1),
			   *ex = line_json(text, 2);
	const char *why;

	ck_assert_msg(init && fill && ex, "not JSON:\n%s", text);
	ck_assert_msg(!(why = trace_schema_error(init)), "%s", why);
	ck_assert_msg(!(why = trace_schema_error(fill)), "%s", why);
	ck_assert_msg(!(why = trace_schema_error(ex)), "%s", why);
	ck_assert_str_eq(field(init, "event"), "shadow_init");
	ck_assert_int_eq(json_object_array_length(json_object_object_get(init, "entries")), 1);
	ck_assert_str_eq(field(fill, "seq"), "1");
	ck_assert_str_eq(field(fill, "gva"), "0x401234");
	ck_assert_str_eq(field(fill, "gfn"), "0x7401");
	ck_assert_str_eq(field(fill, "pferr"), "P|W|U");
	ck_assert_str_eq(field(fill, "access"), "wu-");
	ck_assert_str_eq(field(fill, "spte"), "0x8000000007401007");
	ck_assert_str_eq(field(fill, "ad"), "A|D");
	ck_assert_int_eq(json_object_array_length(json_object_object_get(fill, "walk")), 4);
	ck_assert_str_eq(field(ex, "reason"), "ok");
	ck_assert_str_eq(field(ex, "exits"), "42");
	json_object_put(init);
	json_object_put(fill);
	json_object_put(ex);
	free(text);
}
END_TEST

/* A 32-bit paging fill (shadow.h: its walk is the PDE at level 2 and the
 * PTE at level 1, 4-byte values at their own GPAs) names those two. */
START_TEST(test_trace_json_walk_of_a_32bit_fill)
{
	struct shadow_event ev = fill_event();
	char *path, *text;
	struct trace *t = open_temp(&path, TRACE_ALL_EVENTS, TRACE_FMT_JSON);
	struct json_object *fill, *walk, *pde;
	const char *why;

	memset(ev.gpte, 0, sizeof(ev.gpte));
	memset(ev.gpte_gpa, 0, sizeof(ev.gpte_gpa));
	ev.depth = 2;
	ev.gpte_gpa[2] = 0x900c;
	ev.gpte[2] = 0xa027;
	ev.gpte_gpa[1] = 0xa018;
	ev.gpte[1] = 0x7401067;
	trace_shadow_event(t, &ev);
	ck_assert(trace_close(t));
	text = slurp_path(path);
	unlink(path);
	free(path);
	fill = line_json(text, 0);
	ck_assert_msg(fill, "not JSON:\n%s", text);
	ck_assert_msg(!(why = trace_schema_error(fill)), "%s", why);
	walk = json_object_object_get(fill, "walk");
	ck_assert_int_eq(json_object_array_length(walk), 2);
	pde = json_object_array_get_idx(walk, 0);
	ck_assert_str_eq(field(pde, "level"), "2");
	ck_assert_str_eq(field(pde, "gpa"), "0x900c");
	ck_assert_str_eq(field(pde, "pte"), "0xa027");
	ck_assert_str_eq(field(json_object_array_get_idx(walk, 1), "level"), "1");
	json_object_put(fill);
	free(text);
}
END_TEST

START_TEST(test_trace_filter_keeps_matching_events_and_seq)
{
	uint32_t mask;
	char err[256] = "", *text;
	struct json_object *o;

	ck_assert_int_eq(trace_events_parse("fil?,ex*", &mask, err, sizeof(err)), 0);
	ck_assert_uint_eq(mask, (1u << TRACE_EV_FILL) | (1u << TRACE_EV_EXIT));
	text = three_events(mask, TRACE_FMT_JSON);
	ck_assert_int_eq((int)strlen(text) > 0, 1);
	o = line_json(text, 0);
	ck_assert_str_eq(field(o, "event"), "fill");
	ck_assert_str_eq(field(o, "seq"), "1"); /* shadow_init was seq 0, filtered out */
	json_object_put(o);
	o = line_json(text, 1);
	ck_assert_str_eq(field(o, "event"), "exit");
	json_object_put(o);
	ck_assert_ptr_null(strchr(strchr(strchr(text, '\n') + 1, '\n') + 1, '\n'));
	free(text);
}
END_TEST

START_TEST(test_trace_events_parse_rejects_unknown)
{
	uint32_t mask;
	char err[256] = "";

	ck_assert_int_eq(trace_events_parse("*", &mask, err, sizeof(err)), 0);
	ck_assert_uint_eq(mask, TRACE_ALL_EVENTS);
	ck_assert_int_eq(trace_events_parse("fill,fault", &mask, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "'fault' matches no event"), "%s", err);
	ck_assert_int_eq(trace_events_parse(",", &mask, err, sizeof(err)), -1);
}
END_TEST

START_TEST(test_trace_text_is_one_line_per_event)
{
	char *text = three_events(TRACE_ALL_EVENTS, TRACE_FMT_TEXT);
	char *fill = strchr(text, '\n') + 1;
	unsigned lines = 0;

	for (const char *p = text; (p = strchr(p, '\n')); p++)
		lines++;
	ck_assert_uint_eq(lines, 3);
	ck_assert_msg(text[0] == '[' && strstr(text, "#0 vcpu0 shadow_init root=0x800020000"), "%s",
		      text);
	ck_assert_msg(strstr(text, "pml4[510]=0x800000023(hypervisor)"), "%s", text);
	ck_assert_msg(strstr(fill, "#1 vcpu0 fill gva=0x401234 cr3=0x9000 access=wu- "
				   "error_code=0x7 pferr=P|W|U level=1"),
		      "%s", fill);
	ck_assert_msg(strstr(fill, " walk=L4@0xd000=0x67,L3@0xc000=0x67,L2@0xb000=0x67,"
				   "L1@0xa000=0x67+A|D ad=A|D pages=4\n"),
		      "%s", fill);
	free(text);
}
END_TEST

START_TEST(test_trace_write_error_stops_the_run)
{
	struct trace_config cfg = { .path = "/dev/full",
				    .events = TRACE_ALL_EVENTS,
				    .stop = on_stop };
	char err[256] = "";
	struct trace *t = trace_open(&cfg, err, sizeof(err));

	ck_assert_msg(t, "%s", err);
	stopped_with = 0;
	trace_exit(t, 0, 1, "IO");
	ck_assert(trace_failed(t));
	ck_assert_int_eq(stopped_with, VMM_E_TRACE);
	ck_assert(!trace_close(t));
}
END_TEST

/* ---- the summary reader ---- */

#define REC(seq, ev, rest) "{\"seq\":" #seq ",\"vcpu\":0,\"ns\":1,\"event\":\"" ev "\"" rest "}\n"

static const char crafted[] = REC(0, "shadow_init",
				  ",\"root\":\"0x800020000\",\"cr3\":\"0x9000\",\"entries\":[]")
	REC(1, "fill", ",\"gva\":\"0x401000\",\"level\":1")
		REC(2, "fill", ",\"gva\":\"0x401ff8\",\"level\":1")
			REC(3, "fill", ",\"gva\":\"0x600000\",\"level\":2")
				REC(4, "guest_fault", ",\"gva\":\"0x7000\",\"level\":1")
					REC(5, "cr3", ",\"cr3\":\"0xa000\"")
						REC(6, "exit", ",\"status\":0,\"reason\":\"ok\"");

static int summarize(const char *text, struct trace_summary *s, char *err, size_t errlen)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int rc;

	ck_assert(f);
	rc = trace_summary_read(f, s, err, errlen);
	fclose(f);
	return rc;
}

START_TEST(test_summary_counts_events_and_pages)
{
	struct trace_summary s;
	char err[256] = "";

	ck_assert_msg(summarize(crafted, &s, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(s.lines, 7);
	ck_assert_uint_eq(s.events[TRACE_EV_FILL], 3);
	ck_assert_uint_eq(s.events[TRACE_EV_GUEST_FAULT], 1);
	ck_assert_uint_eq(s.events[TRACE_EV_EXIT], 1);
	ck_assert_uint_eq(s.fills_by_level[1], 2);
	ck_assert_uint_eq(s.fills_by_level[2], 1);
	ck_assert_uint_eq(s.truncated, 0);
	ck_assert_uint_eq(s.npages, 3);
	ck_assert_uint_eq(s.pages[0].page, 0x7000);
	ck_assert_uint_eq(s.pages[0].faults, 1);
	ck_assert_uint_eq(s.pages[1].page, 0x401000);
	ck_assert_uint_eq(s.pages[1].fills, 2);
	trace_summary_free(&s);
}
END_TEST

START_TEST(test_summary_skips_truncated_last_line)
{
	char text[sizeof(crafted) + 64];
	struct trace_summary s;
	char err[256] = "";

	snprintf(text, sizeof(text), "%s{\"seq\":7,\"vcpu\":0,\"ev", crafted);
	ck_assert_msg(summarize(text, &s, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(s.lines, 7);
	ck_assert_uint_eq(s.truncated, 8);
	ck_assert_uint_eq(s.events[TRACE_EV_FILL], 3);
	trace_summary_free(&s);
}
END_TEST

START_TEST(test_summary_rejects_bad_line_in_the_middle)
{
	char text[sizeof(crafted) + 64];
	struct trace_summary s;
	char err[256] = "";

	snprintf(text, sizeof(text), "{\"seq\":0,\n%s", crafted);
	ck_assert_int_eq(summarize(text, &s, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "line 1: not JSON");
	trace_summary_free(&s);
	ck_assert_int_eq(summarize("[1,2]\n{}\n", &s, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "line 1: not JSON");
	trace_summary_free(&s);
	ck_assert_int_eq(summarize("{\"seq\":1}\n{}\n", &s, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "line 1: not a trace record (no \"event\" or \"gva\")");
	trace_summary_free(&s);
}
END_TEST

START_TEST(test_summary_reads_what_the_writer_wrote)
{
	char *text = three_events(TRACE_ALL_EVENTS, TRACE_FMT_JSON);
	struct trace_summary s;
	char err[256] = "";

	ck_assert_msg(summarize(text, &s, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(s.lines, 3);
	ck_assert_uint_eq(s.events[TRACE_EV_SHADOW_INIT], 1);
	ck_assert_uint_eq(s.npages, 1);
	ck_assert_uint_eq(s.pages[0].page, 0x401000);
	trace_summary_free(&s);
	free(text);
}
END_TEST

Suite *trace_suite(void)
{
	Suite *s = suite_create("trace");
	TCase *tc = tcase_create("writer");

	tcase_add_temp_dir(tc);
	tcase_add_test(tc, test_trace_json_records_match_schema);
	tcase_add_test(tc, test_trace_json_walk_of_a_32bit_fill);
	tcase_add_test(tc, test_trace_filter_keeps_matching_events_and_seq);
	tcase_add_test(tc, test_trace_events_parse_rejects_unknown);
	tcase_add_test(tc, test_trace_text_is_one_line_per_event);
	tcase_add_test(tc, test_trace_write_error_stops_the_run);
	suite_add_tcase(s, tc);
	tc = tcase_create("summary");
	tcase_add_temp_dir(tc);
	tcase_add_test(tc, test_summary_counts_events_and_pages);
	tcase_add_test(tc, test_summary_skips_truncated_last_line);
	tcase_add_test(tc, test_summary_rejects_bad_line_in_the_middle);
	tcase_add_test(tc, test_summary_reads_what_the_writer_wrote);
	suite_add_tcase(s, tc);
	return s;
}
