/* Integration: real guests on a real /dev/kvm through build/shadowvm.  Run
 * under scripts/with-kvm on machines without KVM; without /dev/kvm every
 * test here fails — it never passes silently. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shadowvm_abi.h"
#include "status.h"
#include "suites.h"
#include "util.h"

#define VMM "build/shadowvm"
#define GUEST(name) "build/guest/" name ".elf"

static void require_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR);

	ck_assert_msg(fd >= 0, "no usable /dev/kvm: run the integration suite under scripts/with-kvm");
	close(fd);
}

static void vmm(struct run_result *res, const char **argv)
{
	require_kvm();
	run_cmd((char *const *)argv, res);
}

#define RUN(res, ...) vmm(res, (const char *[]){ VMM, __VA_ARGS__, NULL })

START_TEST(test_hello_prints_and_exits_zero)
{
	struct run_result r;

	RUN(&r, "run", GUEST("hello"));
	ck_assert_msg(r.status == 0, "status %d, stderr: %s", r.status, r.err);
	ck_assert_str_eq(r.out, "hello from a shadowvm guest\nram=64 MiB abi=1 cmdline=\"\"\n");
	ck_assert_str_eq(r.err, "");
	run_result_free(&r);
}
END_TEST

START_TEST(test_hello_sees_ram_size_and_cmdline)
{
	struct run_result r;

	RUN(&r, "run", "-m", "32M", "-p", "a=1", GUEST("hello"), "--", "b c");
	ck_assert_msg(r.status == 0, "status %d, stderr: %s", r.status, r.err);
	ck_assert_str_eq(r.out, "hello from a shadowvm guest\nram=32 MiB abi=1 cmdline=\"a=1 b c\"\n");
	run_result_free(&r);
}
END_TEST

static const int exit_values[] = { 0, 1, 7, 42, 63 };

START_TEST(test_exitcode_propagates)
{
	struct run_result r;
	char arg[16], want[32];

	snprintf(arg, sizeof(arg), "%d", exit_values[_i]);
	snprintf(want, sizeof(want), "exiting with %d\n", exit_values[_i]);
	RUN(&r, "run", GUEST("exitcode"), "--", arg);
	ck_assert_int_eq(r.status, exit_values[_i]);
	ck_assert_str_eq(r.out, want);
	run_result_free(&r);
}
END_TEST

START_TEST(test_exitcode_out_of_range_is_diagnosed)
{
	struct run_result r;

	RUN(&r, "run", GUEST("exitcode"), "--", "200");
	ck_assert_int_eq(r.status, VMM_E_EXITRANGE);
	ck_assert_str_eq(r.err, "shadowvm: guest exit value 200 exceeds the ABI maximum 63\n");
	run_result_free(&r);
}
END_TEST

static const char *const modes[] = { "--paging=shadow", "--paging=hw" };

START_TEST(test_triplefault_is_diagnosed)
{
	struct run_result r;

	RUN(&r, "run", modes[_i], GUEST("triplefault"));
	ck_assert_int_eq(r.status, VMM_E_CRASH);
	ck_assert_str_eq(r.out, "loading an empty IDT, then ud2\n");
	ck_assert_msg(strncmp(r.err, "shadowvm: guest crash: triple fault (", 37) == 0, "stderr: %s",
		      r.err);
	ck_assert_msg(strstr(r.err, ") at rip=0x") && strstr(r.err, " cr2=0x"), "stderr: %s", r.err);
	run_result_free(&r);
}
END_TEST

START_TEST(test_timeout_stops_spinning_guest)
{
	struct run_result r;

	RUN(&r, "run", "--timeout", "1", modes[_i], GUEST("spin"));
	ck_assert_int_eq(r.status, VMM_E_TIMEOUT);
	ck_assert_str_eq(r.out, "spinning\n");
	ck_assert_msg(strstr(r.err, "timeout: guest stopped by --timeout at rip=0x"), "stderr: %s",
		      r.err);
	ck_assert_msg(r.secs >= 1.0 && r.secs < 30.0, "took %.2fs", r.secs);
	run_result_free(&r);
}
END_TEST

START_TEST(test_portloop_counts_exits)
{
	struct run_result r;
	const char *p;
	unsigned long io = 0;

	RUN(&r, "run", "-v", GUEST("portloop"), "--", "n=2000");
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "portloop: 2000 port writes\n");
	p = strstr(r.err, " IO=");
	ck_assert_msg(p, "stderr: %s", r.err);
	io = strtoul(p + 4, NULL, 10);
	/* 2000 port writes + console bytes (THR and LSR polls) + the exit port */
	ck_assert_uint_ge(io, 2000 + 2 * strlen(r.out) + 1);
	run_result_free(&r);
}
END_TEST

START_TEST(test_bad_inputs_fail_before_kvm)
{
	struct run_result r;

	RUN(&r, "run", "/nonexistent.elf");
	ck_assert_int_eq(r.status, VMM_E_NOINPUT);
	ck_assert_str_eq(r.err, "shadowvm: /nonexistent.elf: cannot open: No such file or directory\n");
	run_result_free(&r);
	RUN(&r, "run", "Makefile");
	ck_assert_int_eq(r.status, VMM_E_IMAGE);
	ck_assert_str_eq(r.err, "shadowvm: Makefile: not an ELF file (bad magic)\n");
	run_result_free(&r);
}
END_TEST

/* ---- the differential test: shadow paging against hardware paging ---- */

struct diff_case {
	const char *guest;
	const char *arg; /* after --, or NULL */
	int status;
};

static const struct diff_case diffs[] = {
	{ "hello", NULL, 0 },     { "exitcode", "7", 7 },   { "paging", NULL, 0 },
	{ "usermode", NULL, 0 },  { "faults", NULL, 0 },    { "triplefault", NULL, VMM_E_CRASH },
	{ "accessmatrix", NULL, 0 }, { "scenarios", NULL, 0 },
	{ "torture", "seed=1 steps=3000", 0 }, { "torture", "seed=2 steps=3000", 0 },
	{ "torture", "seed=3 steps=3000", 0 },
};

static void run_mode(struct run_result *r, const struct diff_case *c, const char *mode)
{
	char image[128];

	snprintf(image, sizeof(image), "build/guest/%s.elf", c->guest);
	if (c->arg)
		RUN(r, "run", "--timeout", "60", mode, image, "--", c->arg);
	else
		RUN(r, "run", "--timeout", "60", mode, image);
}

START_TEST(test_transcript_identical_under_shadow_and_hw)
{
	const struct diff_case *c = &diffs[_i];
	struct run_result hw, sh;

	run_mode(&hw, c, "--paging=hw");
	run_mode(&sh, c, "--paging=shadow");
	ck_assert_msg(hw.status == c->status, "%s hw: status %d, stderr: %s", c->guest, hw.status,
		      hw.err);
	ck_assert_msg(sh.status == c->status, "%s shadow: status %d, stderr: %s", c->guest,
		      sh.status, sh.err);
	ck_assert_msg(strlen(hw.out) > 0, "%s printed nothing", c->guest);
	ck_assert_msg(strcmp(hw.out, sh.out) == 0, "%s transcripts differ\n--- hw\n%s--- shadow\n%s",
		      c->guest, hw.out, sh.out);
	ck_assert_msg(!strstr(hw.out, "FAIL"), "%s self-check failed:\n%s", c->guest, hw.out);
	run_result_free(&hw);
	run_result_free(&sh);
}
END_TEST

static unsigned count_between(const char *from, const char *to, const char *needle)
{
	unsigned n = 0;

	for (const char *p = strstr(from, needle); p && (!to || p < to); p = strstr(p + 1, needle))
		n++;
	return n;
}

START_TEST(test_shadow_starts_with_only_the_hypervisor_entry)
{
	struct run_result r;
	const char *boot, *exit_dump;
	char want[64];

	RUN(&r, "run", "--dump-shadow", GUEST("hello"));
	ck_assert_int_eq(r.status, 0);
	boot = strstr(r.err, "shadowvm: shadow: boot root=0x");
	exit_dump = strstr(r.err, "shadowvm: shadow: exit root=0x");
	ck_assert_msg(boot && exit_dump, "stderr: %s", r.err);
	ck_assert_msg(strstr(boot, " present=1\n") < exit_dump, "stderr: %s", r.err);
	snprintf(want, sizeof(want), "pml4[%u]=0x", SVM_ABI_RESERVED_PML4_INDEX);
	ck_assert_uint_eq(count_between(boot, exit_dump, "pml4["), 1);
	ck_assert_uint_eq(count_between(boot, exit_dump, want), 1);
	/* by the end the guest's own slot 0 has been filled in */
	ck_assert_uint_ge(count_between(exit_dump, NULL, "pml4["), 2);
	run_result_free(&r);
}
END_TEST

static unsigned long stat_field(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	ck_assert_msg(p != NULL, "no %s in: %s", key, text);
	return strtoul(p + strlen(key), NULL, 10);
}

START_TEST(test_hidden_faults_cover_pages_touched)
{
	struct run_result r;
	unsigned long touched, hidden;

	RUN(&r, "run", "-v", GUEST("paging"));
	ck_assert_int_eq(r.status, 0);
	touched = stat_field(r.out, "pages touched=");
	hidden = stat_field(r.err, " hidden_pf=");
	ck_assert_uint_gt(touched, 0);
	ck_assert_msg(hidden >= touched, "hidden faults %lu < pages touched %lu", hidden, touched);
	ck_assert_uint_gt(stat_field(r.err, " emulated="), 0);
	ck_assert_uint_gt(stat_field(r.err, " cr3_loads="), 0);
	run_result_free(&r);
}
END_TEST

START_TEST(test_hw_mode_has_no_shadow)
{
	struct run_result r;

	RUN(&r, "run", "-v", "--paging=hw", GUEST("hello"));
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strstr(r.err, "paging=hw") && !strstr(r.err, "hidden_pf="), "stderr: %s", r.err);
	run_result_free(&r);
}
END_TEST

Suite *integration_suite(void)
{
	Suite *s = suite_create("integration");
	TCase *tc = tcase_create("guests");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_hello_prints_and_exits_zero);
	tcase_add_test(tc, test_hello_sees_ram_size_and_cmdline);
	tcase_add_loop_test(tc, test_exitcode_propagates, 0,
			    (int)(sizeof(exit_values) / sizeof(exit_values[0])));
	tcase_add_test(tc, test_exitcode_out_of_range_is_diagnosed);
	tcase_add_loop_test(tc, test_triplefault_is_diagnosed, 0, 2);
	tcase_add_loop_test(tc, test_timeout_stops_spinning_guest, 0, 2);
	tcase_add_test(tc, test_portloop_counts_exits);
	tcase_add_test(tc, test_bad_inputs_fail_before_kvm);
	suite_add_tcase(s, tc);
	tc = tcase_create("shadow");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_transcript_identical_under_shadow_and_hw, 0,
			    (int)(sizeof(diffs) / sizeof(diffs[0])));
	tcase_add_test(tc, test_shadow_starts_with_only_the_hypervisor_entry);
	tcase_add_test(tc, test_hidden_faults_cover_pages_touched);
	tcase_add_test(tc, test_hw_mode_has_no_shadow);
	suite_add_tcase(s, tc);
	return s;
}
