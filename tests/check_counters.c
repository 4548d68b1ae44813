/* vmm/trace/counters.c: the one counter table read from a fake struct vm, written
 * as --stats's JSON (whose layout the integration suite and the bench report
 * parse) and as the -v line. */
#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "fake_vm.h"
#include "shadow.h"
#include "suites.h"
#include "util.h"
#include "vm.h"

/* v[c] = c + 1: every counter its own value */
static void numbered(uint64_t v[COUNTER_N])
{
	for (unsigned c = 0; c < COUNTER_N; c++)
		v[c] = c + 1;
}

/* counters_json's output inside `{"status":0` ... `}`, malloc'd */
static char *json_text(const uint64_t v[COUNTER_N])
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(f);
	fputs("{\"status\":0", f);
	counters_json(f, v);
	fputs("}", f);
	ck_assert_int_eq(fclose(f), 0);
	return text;
}

/* The layout --stats has always had: tests and the bench parse it. */
START_TEST(test_counters_json_keeps_the_stats_layout)
{
	uint64_t v[COUNTER_N];
	char *text;

	numbered(v);
	text = json_text(v);
	ck_assert_str_eq(text, "{\"status\":0,\"traps\":1,\"hidden_faults\":2,"
			       "\"fills\":{\"1\":3,\"2\":4,\"3\":5},\"a_sets\":6,\"d_sets\":7,"
			       "\"guest_faults\":8,\"reflected\":9,\"emulated\":10,\"syscalls\":11,"
			       "\"cr3_writes\":12,\"invlpgs\":13,\"flushes\":14,\"evictions\":15,"
			       "\"ad_retries\":16,\"pages_peak\":17,\"roots_reused\":18,"
			       "\"unprotects\":19,\"zaps\":20,\"floods\":21,\"prefetched\":22,"
			       "\"huge_leaves\":23,\"fast_fills\":24,\"applies\":25,\"stores\":26,"
			       "\"drains\":27,\"stores_peak\":28,"
			       "\"monitor\":{\"resolved\":29,\"guest_fault\":30,\"error\":31,"
			       "\"rsvd\":32,\"repeat\":33,\"pool\":34,\"ring\":35,\"slot\":36,"
			       "\"not_ready\":37,\"check\":38,\"insn\":39,\"mode\":40},"
			       "\"interrupts\":41,\"halts\":42,\"in_replays\":43,\"mmio_marks\":44,"
			       "\"mmio_unmarks\":45,"
			       "\"lapic\":{\"id_reads\":46,\"forwarded\":47,\"declined\":48}}");
	free(text);
}
END_TEST

/* The leaves of a JSON object tree. */
static size_t leaves(struct json_object *o)
{
	size_t n = 0;

	if (!json_object_is_type(o, json_type_object))
		return 1;
	json_object_object_foreach(o, key, val)
	{
		(void)key;
		n += leaves(val);
	}
	return n;
}

START_TEST(test_counters_json_has_every_path_and_nothing_else)
{
	uint64_t v[COUNTER_N];
	struct json_object *o;
	char *text;

	numbered(v);
	text = json_text(v);
	o = json_tokener_parse(text);
	ck_assert_msg(o, "not JSON: %s", text);
	for (unsigned c = 0; c < COUNTER_N; c++) {
		int64_t got = -1;

		ck_assert_msg(json_path_int(o, counter_path(c), &got), "no %s in %s",
			      counter_path(c), text);
		ck_assert_int_eq(got, c + 1);
	}
	ck_assert_uint_eq(leaves(o), COUNTER_N + 1); /* and "status" */
	json_object_put(o);
	free(text);
}
END_TEST

START_TEST(test_counters_line_names_every_counter_in_order)
{
	uint64_t v[COUNTER_N];
	char line[1024];
	const char *p = line;

	numbered(v);
	counters_line(line, sizeof(line), v);
	for (unsigned c = 0; c < COUNTER_N; c++) {
		char want[64];

		snprintf(want, sizeof(want), " %s=%u", counter_name(c), c + 1);
		ck_assert_msg(!strncmp(p, want, strlen(want)), "want \"%s\" at: %s", want, p);
		p += strlen(want);
	}
	ck_assert_str_eq(p, "");
}
END_TEST

START_TEST(test_counters_line_truncates_to_its_buffer)
{
	uint64_t v[COUNTER_N];
	char line[16];

	numbered(v);
	counters_line(line, sizeof(line), v);
	ck_assert_str_eq(line, " traps=1 hidden");
}
END_TEST

/* README.md's --stats paragraph names every counter of the table, so the
 * documentation cannot fall behind it (the runner runs in the repository's
 * root, as the Makefile starts it). */
START_TEST(test_counters_all_in_the_readme)
{
	FILE *f = fopen("README.md", "r");
	char *text = calloc(1, 1 << 20), *p, *end;
	size_t n;

	ck_assert_msg(f, "README.md: %s (run from the repository's root)", strerror(errno));
	ck_assert_ptr_nonnull(text);
	n = fread(text, 1, (1 << 20) - 1, f);
	fclose(f);
	text[n] = '\0';
	p = strstr(text, "`--stats[=FILE]` writes");
	ck_assert_msg(p, "README.md has no --stats paragraph");
	end = strstr(p, "\n\n");
	ck_assert_ptr_nonnull(end);
	*end = '\0';
	for (unsigned c = 0; c < COUNTER_N; c++) {
		char want[64];

		snprintf(want, sizeof(want), "`%.*s`", (int)strcspn(counter_path(c), "."),
			 counter_path(c));
		ck_assert_msg(strstr(p, want), "README.md's --stats paragraph lacks %s", want);
	}
	free(text);
}
END_TEST

static struct vm *vm;

static void setup(void)
{
	vm = fake_vm_open();
}

static void teardown(void)
{
	fake_vm_close(vm);
}

/* Each counter reads its own field: a real fault, a CR3 write and the trap
 * path's counts move exactly the counters they should. */
START_TEST(test_counters_read_takes_each_field)
{
	uint64_t before[COUNTER_N], after[COUNTER_N];
	struct shadow_fault_result res;

	counters_read(vm, before);
	vm->tstats = (struct trap_stats){ .traps = before[COUNTER_traps] + 1,
					  .emulated = before[COUNTER_emulated] + 2,
					  .reflected = before[COUNTER_reflected] + 3,
					  .syscalls = before[COUNTER_syscalls] + 4 };
	ck_assert_int_eq(shadow_fault(vm->shadow, 0x60000, SHADOW_ACC_WRITE, &res), SHADOW_FILLED);
	shadow_set_cr3(vm->shadow, FAKE_PML4_GPA);
	counters_read(vm, after);
	for (unsigned c = 0; c < COUNTER_N; c++) {
		uint64_t d = after[c] - before[c];

		switch (c) {
		case COUNTER_traps: ck_assert_uint_eq(d, 1); break;
		case COUNTER_emulated: ck_assert_uint_eq(d, 2); break;
		case COUNTER_reflected: ck_assert_uint_eq(d, 3); break;
		case COUNTER_syscalls: ck_assert_uint_eq(d, 4); break;
		case COUNTER_hidden_faults:
		case COUNTER_fills_1:
		case COUNTER_cr3_writes:
			ck_assert_msg(d == 1, "%s moved by %llu", counter_name(c),
				      (unsigned long long)d);
			break;
		case COUNTER_a_sets:
		case COUNTER_d_sets:
		case COUNTER_pages_peak:
		case COUNTER_roots_reused:
		case COUNTER_flushes: break; /* the fake vm's tables and options decide */
		default:
			ck_assert_msg(d == 0, "%s moved by %llu", counter_name(c),
				      (unsigned long long)d);
		}
	}
}
END_TEST

START_TEST(test_counters_read_zero_without_a_shadow)
{
	struct shadow *s = vm->shadow;
	uint64_t v[COUNTER_N];

	vm->shadow = NULL; /* --paging=hw */
	vm->tstats = (struct trap_stats){ 0 };
	counters_read(vm, v);
	vm->shadow = s;
	for (unsigned c = 0; c < COUNTER_N; c++)
		ck_assert_msg(v[c] == 0, "%s = %llu", counter_name(c), (unsigned long long)v[c]);
}
END_TEST

Suite *counters_suite(void)
{
	Suite *s = suite_create("counters");
	TCase *tc = tcase_create("output");

	tcase_add_test(tc, test_counters_json_keeps_the_stats_layout);
	tcase_add_test(tc, test_counters_json_has_every_path_and_nothing_else);
	tcase_add_test(tc, test_counters_line_names_every_counter_in_order);
	tcase_add_test(tc, test_counters_line_truncates_to_its_buffer);
	tcase_add_test(tc, test_counters_all_in_the_readme);
	suite_add_tcase(s, tc);
	tc = tcase_create("read");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_counters_read_takes_each_field);
	tcase_add_test(tc, test_counters_read_zero_without_a_shadow);
	suite_add_tcase(s, tc);
	return s;
}
