/* The size parser and the command line. */
#include <check.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "size.h"
#include "status.h"
#include "suites.h"

struct size_case {
	const char *in;
	int ok;
	unsigned long long bytes; /* when ok */
	const char *msg;          /* when not ok */
};

static const struct size_case sizes[] = {
	{ "64", 1, 64ull << 20, NULL },
	{ "64M", 1, 64ull << 20, NULL },
	{ "64MiB", 1, 64ull << 20, NULL },
	{ "512k", 1, 512ull << 10, NULL },
	{ "2G", 1, 2ull << 30, NULL },
	{ "1gb", 1, 1ull << 30, NULL },
	{ "0", 1, 0, NULL },
	{ "", 0, 0, "size '' does not start with a digit" },
	{ "-1", 0, 0, "size '-1' does not start with a digit" },
	{ "12X", 0, 0, "size '12X' has unknown suffix 'X' (use K, M or G)" },
	{ "1.5G", 0, 0, "size '1.5G' has unknown suffix '.5G' (use K, M or G)" },
	{ "99999999999999999999", 0, 0, "size '99999999999999999999' overflows 64 bits" },
	{ "17179869184G", 0, 0, "size '17179869184G' overflows 64 bits" },
};

START_TEST(test_size_parse_table)
{
	const struct size_case *c = &sizes[_i];
	uint64_t bytes = 0;
	char err[160] = "";
	int rc = size_parse(c->in, &bytes, err, sizeof(err));

	if (c->ok) {
		ck_assert_msg(rc == 0, "'%s' rejected: %s", c->in, err);
		ck_assert_uint_eq(bytes, c->bytes);
	} else {
		ck_assert_int_eq(rc, -1);
		ck_assert_str_eq(err, c->msg);
	}
}
END_TEST

struct cli_case {
	const char *argv[8];
	int status;
	const char *msg; /* error text when status != 0 */
};

static const struct cli_case clis[] = {
	{ { "shadowvm", "run", "g.elf" }, 0, NULL },
	{ { "shadowvm" }, VMM_E_USAGE, "missing command (see shadowvm --help)" },
	{ { "shadowvm", "fly" },
	  VMM_E_USAGE,
	  "unknown command 'fly' (run, check, trace, kvm; see --help)" },
	{ { "shadowvm", "run" }, VMM_E_USAGE, "run: missing IMAGE (see shadowvm --help)" },
	{ { "shadowvm", "run", "-m", "1M", "g.elf" },
	  VMM_E_USAGE,
	  "--mem 1M = 0x100000 is outside 0x200000..0x100000000" },
	{ { "shadowvm", "run", "-m", "5G", "g.elf" },
	  VMM_E_USAGE,
	  "--mem 5G = 0x140000000 is outside 0x200000..0x100000000" },
	{ { "shadowvm", "run", "-m", "3M", "g.elf" },
	  VMM_E_USAGE,
	  "--mem 3M = 0x300000 is not a multiple of 2 MiB" },
	{ { "shadowvm", "run", "-m", "lots", "g.elf" },
	  VMM_E_USAGE,
	  "--mem: size 'lots' does not start with a digit" },
	{ { "shadowvm", "run", "--paging=ept", "g.elf" },
	  VMM_E_USAGE,
	  "--paging 'ept' is not a paging mode (shadow, hw)" },
	{ { "shadowvm", "run", "--lapic=x2apic", "g.elf" },
	  VMM_E_USAGE,
	  "--lapic 'x2apic' is not an APIC path (monitor, kvm)" },
	{ { "shadowvm", "run", "--lapic=kvm", "g.elf" }, 0, NULL },
	{ { "shadowvm", "run", "--timeout", "0", "g.elf" },
	  VMM_E_USAGE,
	  "--timeout '0' is not a number of seconds in (0, 1e6]" },
	{ { "shadowvm", "run", "--bogus", "g.elf" },
	  VMM_E_USAGE,
	  "run: option '--bogus' is unknown or lacks its argument" },
	{ { "shadowvm", "run", "g.elf", "extra" },
	  VMM_E_USAGE,
	  "unexpected 'extra' after IMAGE (guest args go after --)" },
	{ { "shadowvm", "run", "--shadow-pool", "3", "g.elf" },
	  VMM_E_USAGE,
	  "--shadow-pool '3' is not a page count in 4..65536" },
	{ { "shadowvm", "run", "--paging=hw", "--dump-shadow", "g.elf" }, 0, NULL },
	{ { "shadowvm", "check", "--timeout", "3", "g.elf" },
	  VMM_E_USAGE,
	  "check: only -m, -v and -q apply" },
	{ { "shadowvm", "trace", "fly" },
	  VMM_E_USAGE,
	  "trace: unknown or missing subcommand (summary, plot)" },
	{ { "shadowvm", "trace", "plot", "t.jsonl" },
	  VMM_E_USAGE,
	  "trace plot: missing -o OUT (a .png or .svg file)" },
	{ { "shadowvm", "trace", "plot", "-o", "t.png" },
	  VMM_E_USAGE,
	  "trace plot: expects exactly one FILE" },
	{ { "shadowvm", "trace", "plot", "t.jsonl", "-o", "t.jpg" },
	  VMM_E_USAGE,
	  "trace plot: -o t.jpg: not a .png or .svg file name" },
	{ { "shadowvm", "trace", "plot", "t.jsonl", "-o", "t.png", "--x=time" },
	  VMM_E_USAGE,
	  "trace plot: --x 'time' is not an axis (ns, seq)" },
	{ { "shadowvm", "trace", "plot", "t.jsonl", "-o", "t.png", "--width=639" },
	  VMM_E_USAGE,
	  "trace plot: --width '639' is not a pixel count in 640..8192" },
	{ { "shadowvm", "trace", "plot", "t.jsonl", "-o", "t.png", "--height=9000" },
	  VMM_E_USAGE,
	  "trace plot: --height '9000' is not a pixel count in 480..8192" },
	{ { "shadowvm", "trace", "plot", "t.jsonl", "-o", "t.png", "--depth=3" },
	  VMM_E_USAGE,
	  "trace plot: option '--depth=3' is unknown or lacks its argument" },
	{ { "shadowvm", "trace", "plot", "t.jsonl", "-o", "t.SVG" }, 0, NULL },
	{ { "shadowvm", "run", "--module", ",env", "k.elf" },
	  VMM_E_USAGE,
	  "--module ',env': empty file name" },
	{ { "shadowvm", "check", "--module", "env.txt", "k.elf" },
	  VMM_E_USAGE,
	  "check: only -m, -v and -q apply" },
};

START_TEST(test_cli_parse_table)
{
	const struct cli_case *c = &clis[_i];
	struct options o;
	char err[256] = "";
	int argc = 0;

	while (c->argv[argc])
		argc++;
	ck_assert_int_eq(cli_parse(argc, (char **)c->argv, &o, err, sizeof(err)), c->status);
	if (c->status)
		ck_assert_str_eq(err, c->msg);
}
END_TEST

START_TEST(test_cli_parse_run_options)
{
	const char *argv[] = { "shadowvm", "run", "-m",    "32", "-p", "a=1", "--timeout",
			       "2.5",      "-v",  "g.elf", "--", "x",  "y",   NULL };
	struct options o;
	char err[256] = "";

	ck_assert_int_eq(cli_parse(13, (char **)argv, &o, err, sizeof(err)), 0);
	ck_assert_int_eq(o.command, CLI_RUN);
	ck_assert_str_eq(o.image, "g.elf");
	ck_assert_uint_eq(o.mem_size, 32ull << 20);
	ck_assert_str_eq(o.cmdline, "a=1 x y");
	ck_assert_double_eq(o.timeout, 2.5);
	ck_assert_int_eq(o.verbosity, LOG_INFO);
	ck_assert_int_eq(o.paging, PAGING_SHADOW);
	ck_assert_uint_eq(o.pool_pages, CLI_POOL_DEFAULT);
	ck_assert_int_eq(o.lapic_kvm, 0);
}
END_TEST

START_TEST(test_cli_parse_plot_options)
{
	const char *argv[] = { "shadowvm", "trace",       "plot",        "--x=seq",
			       "t.jsonl",  "--title=T 1", "--width=800", "--height",
			       "600",      "-o",          "t.png",       NULL };
	struct options o;
	char err[256] = "";

	ck_assert_msg(cli_parse(11, (char **)argv, &o, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(o.command, CLI_TRACE_PLOT);
	ck_assert_str_eq(o.summary, "t.jsonl");
	ck_assert_str_eq(o.plot_out, "t.png");
	ck_assert_int_eq(o.plot.x, TRACE_PLOT_X_SEQ);
	ck_assert_str_eq(o.plot.title, "T 1");
	ck_assert_uint_eq(o.plot.width, 800);
	ck_assert_uint_eq(o.plot.height, 600);
}
END_TEST

START_TEST(test_cli_parse_modules)
{
	const char *argv[] = { "shadowvm",       "run",         "--module", "env.txt,env a=b",
			       "--module=m.bin", "--paging=hw", "k.elf",    NULL };
	struct options o;
	char err[256] = "";

	ck_assert_msg(cli_parse(7, (char **)argv, &o, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(o.nmodules, 2);
	ck_assert_str_eq(o.modules[0].path, "env.txt");
	ck_assert_str_eq(o.modules[0].string, "env a=b");
	ck_assert_str_eq(o.modules[1].path, "m.bin");
	ck_assert_str_eq(o.modules[1].string, "m.bin"); /* no comma: the file name */
	ck_assert_str_eq(o.image, "k.elf");
}
END_TEST

START_TEST(test_cli_parse_rejects_module_count_and_length)
{
	const char *argv[2 + 2 * (BOOT_MODULES_MAX + 1) + 2];
	static char longname[CLI_MODULE_PATH_MAX + 1];
	struct options o;
	char err[256] = "";
	int argc = 0;

	argv[argc++] = "shadowvm";
	argv[argc++] = "run";
	for (unsigned i = 0; i <= BOOT_MODULES_MAX; i++) {
		argv[argc++] = "--module";
		argv[argc++] = "m.bin";
	}
	argv[argc++] = "k.elf";
	argv[argc] = NULL;
	ck_assert_int_eq(cli_parse(argc, (char **)argv, &o, err, sizeof(err)), VMM_E_USAGE);
	ck_assert_str_eq(err, "--module m.bin: more than 16 modules");
	/* exactly the limit is fine */
	argv[argc - 3] = "k.elf";
	argv[argc - 2] = NULL;
	ck_assert_msg(cli_parse(argc - 2, (char **)argv, &o, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(o.nmodules, BOOT_MODULES_MAX);
	memset(longname, 'a', CLI_MODULE_PATH_MAX);
	argv[3] = longname;
	ck_assert_int_eq(cli_parse(argc - 2, (char **)argv, &o, err, sizeof(err)), VMM_E_USAGE);
	ck_assert_str_eq(err, "--module: file name of 1025 bytes exceeds limit 1024");
}
END_TEST

Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("parse");

	tcase_add_loop_test(tc, test_size_parse_table, 0, (int)(sizeof(sizes) / sizeof(sizes[0])));
	tcase_add_loop_test(tc, test_cli_parse_table, 0, (int)(sizeof(clis) / sizeof(clis[0])));
	tcase_add_test(tc, test_cli_parse_run_options);
	tcase_add_test(tc, test_cli_parse_plot_options);
	tcase_add_test(tc, test_cli_parse_modules);
	tcase_add_test(tc, test_cli_parse_rejects_module_count_and_length);
	suite_add_tcase(s, tc);
	return s;
}
