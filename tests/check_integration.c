/* Integration: real guests on a real /dev/kvm through build/shadowvm.  Run
 * under scripts/with-kvm on machines without KVM; without /dev/kvm every
 * test here fails — it never passes silently. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

START_TEST(test_triplefault_is_diagnosed)
{
	struct run_result r;

	RUN(&r, "run", GUEST("triplefault"));
	ck_assert_int_eq(r.status, VMM_E_CRASH);
	ck_assert_str_eq(r.out, "loading an empty IDT, then ud2\n");
	ck_assert_msg(strstr(r.err, "shadowvm: guest crash: triple fault (KVM_EXIT_SHUTDOWN) at rip=0x"),
		      "stderr: %s", r.err);
	ck_assert_msg(strstr(r.err, "rax=0x") && strstr(r.err, "cr3=0x"), "stderr: %s", r.err);
	run_result_free(&r);
}
END_TEST

START_TEST(test_timeout_stops_spinning_guest)
{
	struct run_result r;

	RUN(&r, "run", "--timeout", "1", GUEST("spin"));
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
	tcase_add_test(tc, test_triplefault_is_diagnosed);
	tcase_add_test(tc, test_timeout_stops_spinning_guest);
	tcase_add_test(tc, test_portloop_counts_exits);
	tcase_add_test(tc, test_bad_inputs_fail_before_kvm);
	suite_add_tcase(s, tc);
	return s;
}
