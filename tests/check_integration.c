/* Integration: real guests on a real /dev/kvm through build/shadowvm.  Run
 * under scripts/with-kvm on machines without KVM; without /dev/kvm every
 * test here fails — it never passes silently. */
#include <check.h>
#include <stdbool.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "counters.h"
#include "shadowvm_abi.h"
#include "status.h"
#include "suites.h"
#include "trace_plot.h"
#include "util.h"

#define VMM "build/shadowvm"
#define GUEST(name) "build/guest/" name ".elf"

static void require_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR);

	ck_assert_msg(fd >= 0,
		      "no usable /dev/kvm: run the integration suite under scripts/with-kvm");
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
	ck_assert_str_eq(r.out,
			 "hello from a shadowvm guest\nram=32 MiB abi=1 cmdline=\"a=1 b c\"\n");
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
	ck_assert_msg(strncmp(r.err, "shadowvm: guest crash: triple fault (", 37) == 0,
		      "stderr: %s", r.err);
	ck_assert_msg(strstr(r.err, ") at rip=0x") && strstr(r.err, " cr2=0x"), "stderr: %s",
		      r.err);
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
	ck_assert_str_eq(r.err,
			 "shadowvm: /nonexistent.elf: cannot open: No such file or directory\n");
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
	bool big;           /* too many traps to run shadow_check after each under TCG */
	const char *module; /* --module, or NULL */
	bool disk;          /* --disk: a fresh disk_image() */
};

static const struct diff_case diffs[] = {
	{ "hello", NULL, 0, false, NULL, false },
	{ "exitcode", "7", 7, false, NULL, false },
	{ "paging", NULL, 0, false, NULL, false },
	{ "usermode", NULL, 0, false, NULL, false },
	{ "faults", NULL, 0, false, NULL, false },
	{ "scenarios", NULL, 0, false, NULL, false },
	/* the guests above, before the first big one, are the traced ones (ntraced) */
	{ "accessmatrix", NULL, 0, true, NULL, false },
	{ "torture", "seed=1 steps=3000", 0, true, NULL, false },
	{ "torture", "seed=2 steps=3000", 0, true, NULL, false },
	{ "torture", "seed=3 steps=3000", 0, true, NULL, false },
	/* make bench's workloads, small: CR3 ping-pong, COW fork, 2 MiB pages */
	{ "bench", "case=retouch pages=256 rounds=2 cycles=0", 0, false, NULL, false },
	{ "bench", "case=pingpong pages=8 procs=4 rounds=2 cycles=0", 0, false, NULL, false },
	{ "bench", "case=fork pages=64 rounds=1 cycles=0", 0, false, NULL, false },
	{ "bench", "case=huge pages=1024 rounds=1 cycles=0", 0, false, NULL, false },
	/* Multiboot ELF32: every paging mode; isa-debug-exit 0 is status 1 */
	{ "mbmodes", NULL, 1, true, NULL, false },
	/* a test kernel's probe of the PC, its environment in a module */
	{ "mbprobe", "probe the PC", 1, false, "guest/mb/env.txt,env", false },
	/* what xv6 needs: interrupts in kernel and user mode, the MP table,
	 * 32-bit TSS switches, int $64, IDE reads and writes.  Big: the
	 * timer ticks on host time, and with shadow_check after every trap
	 * (milliseconds under TCG) each tick's traps outlast its period, so
	 * the guest would only ever run its timer handler */
	{ "mbos", NULL, 1, true, NULL, true },
	/* last, after mbos: after an L2 triple fault under --paging=hw (KVM's
	 * SHUTDOWN exit) the nested runner's emulated CPU was seen to hang or
	 * fail a later mbos hw run within a few runs (README, "The nested
	 * runner's hang").  The tests case shadow runs after this loop run no
	 * mbos; keep it so */
	{ "triplefault", NULL, VMM_E_CRASH, false, NULL, false },
};

#define DISK_SECTORS 64

/* A fresh disk for mbos (in the test's directory): sector 0 holds the
 * pattern it checks, byte i = i * 7 + 3; the rest is zero. */
static const char *disk_image(void)
{
	static uint8_t sectors[DISK_SECTORS * 512];
	const char *path = test_file("disk.img");
	FILE *f;

	memset(sectors, 0, sizeof(sectors));
	for (unsigned i = 0; i < 512; i++)
		sectors[i] = (uint8_t)(i * 7 + 3);
	ck_assert_ptr_nonnull(f = fopen(path, "wb"));
	ck_assert_uint_eq(fwrite(sectors, 1, sizeof(sectors), f), sizeof(sectors));
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

static void run_with(struct run_result *r, const struct diff_case *c, const char *mode,
		     const char *opts, const char *fill)
{
	const char *argv[16];
	char image[128];
	int n = 0;

	snprintf(image, sizeof(image), "build/guest/%s.elf", c->guest);
	argv[n++] = VMM;
	argv[n++] = "run";
	/* generous: on KVM's shadow MMU under TCG accessmatrix takes 80 s */
	argv[n++] = "--timeout";
	argv[n++] = "240";
	argv[n++] = mode;
	argv[n++] = opts;
	argv[n++] = fill;
	if (c->module) {
		argv[n++] = "--module";
		argv[n++] = c->module;
	}
	if (c->disk) {
		argv[n++] = "--disk";
		argv[n++] = disk_image();
	}
	argv[n++] = image;
	if (c->arg) {
		argv[n++] = "--";
		argv[n++] = c->arg;
	}
	argv[n] = NULL;
	vmm(r, argv);
}

static void run_mode(struct run_result *r, const struct diff_case *c, const char *mode,
		     const char *opts)
{
	run_with(r, c, mode, opts, "-q");
}

/* The transcript every paging mode agreed on, kept for the npt0 case, which
 * runs on a host where shadow mode is refused: build/transcripts/diff-N.txt,
 * "status=S" on the first line, then the guest's output. */
#define TRANSCRIPTS "build/transcripts"

static void transcript_path(int i, char *path, size_t len)
{
	snprintf(path, len, TRANSCRIPTS "/diff-%02d.txt", i);
}

/* Write head and text to path under TRANSCRIPTS whole or not at all (a
 * later case reads it). */
static void keep(const char *path, const char *head, const char *text)
{
	char tmp[96];
	FILE *f;

	mkdir(TRANSCRIPTS, 0755);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	ck_assert_msg((f = fopen(tmp, "w")) != NULL, "cannot write %s", tmp);
	fputs(head, f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(rename(tmp, path), 0);
}

static void transcript_save(int i, const struct run_result *r)
{
	char path[64], head[32];

	transcript_path(i, path, sizeof(path));
	snprintf(head, sizeof(head), "status=%d\n", r->status);
	keep(path, head, r->out);
}

/* Shadow runs: every optimization (the default), none (the plain virtual
 * TLB) and, for the small guests, each one alone. */
static const char *const shadow_opts[] = {
	"--shadow-opts=all",      "--shadow-opts=none", "--shadow-opts=cache",
	"--shadow-opts=prefetch", "--shadow-opts=huge",
};

/* ... each with both fill paths: the monitor's, inside the VM (the
 * default), and the VMM's, on an exit. */
static const char *const fills[] = { "--fill=monitor", "--fill=vmm" };
#define NFILLS (sizeof(fills) / sizeof(fills[0]))

/* How many shadow settings a case runs: every shadow_opts by every fill;
 * the big guests, all and none. */
static size_t shadow_settings(const struct diff_case *c)
{
	return NFILLS * (c->big ? 2 : sizeof(shadow_opts) / sizeof(shadow_opts[0]));
}

/* Setting o's name, for messages. */
static const char *setting_name(size_t o, char *buf, size_t len)
{
	snprintf(buf, len, "%s %s", shadow_opts[o / NFILLS], fills[o % NFILLS]);
	return buf;
}

/* Run c in shadow mode with setting o: paging=shadow is the default, and
 * --check-invariants keeps it, for all but the big guests (with the
 * monitor's fill, each fault it resolves is then handed over for the
 * check). */
static void run_shadow(struct run_result *r, const struct diff_case *c, size_t o)
{
	run_with(r, c, c->big ? "--paging=shadow" : "--check-invariants", shadow_opts[o / NFILLS],
		 fills[o % NFILLS]);
}

START_TEST(test_transcript_identical_under_shadow_and_hw)
{
	const struct diff_case *c = &diffs[_i];
	struct run_result hw, sh;

	run_mode(&hw, c, "--paging=hw", "-q");
	ck_assert_msg(hw.status == c->status, "%s hw: status %d, stderr: %s, stdout:\n%s", c->guest,
		      hw.status, hw.err, hw.out);
	ck_assert_msg(strlen(hw.out) > 0, "%s printed nothing", c->guest);
	ck_assert_msg(!strstr(hw.out, "FAIL"), "%s self-check failed:\n%s", c->guest, hw.out);
	for (size_t o = 0; o < shadow_settings(c); o++) {
		char name[64];

		run_shadow(&sh, c, o);
		ck_assert_msg(sh.status == c->status, "%s shadow %s: status %d, stderr: %s",
			      c->guest, setting_name(o, name, sizeof(name)), sh.status, sh.err);
		ck_assert_msg(strcmp(hw.out, sh.out) == 0,
			      "%s %s: transcripts differ\n--- hw\n%s--- shadow\n%s", c->guest,
			      setting_name(o, name, sizeof(name)), hw.out, sh.out);
		run_result_free(&sh);
	}
	transcript_save(_i, &hw);
	run_result_free(&hw);
}
END_TEST

/* A pool smaller than one instruction's working set: every fault evicts the
 * translation another access of the same instruction needs.  shadowvm must
 * say so, not spin until the watchdog. */
START_TEST(test_pool_too_small_for_an_instruction_is_diagnosed)
{
	struct run_result r;

	RUN(&r, "run", "--timeout", "60", "--shadow-pool", "4", GUEST("paging"));
	ck_assert_msg(r.status == VMM_E_INTERNAL, "status %d, stderr: %s", r.status, r.err);
	ck_assert_msg(strstr(r.err, "needs more shadow pages than the pool's 4") &&
			      strstr(r.err, "raise --shadow-pool"),
		      "stderr: %s", r.err);
	run_result_free(&r);
	/* a pool that holds it runs the same guest to the end */
	RUN(&r, "run", "--timeout", "60", "--shadow-pool", "8", GUEST("paging"));
	ck_assert_msg(r.status == 0, "status %d, stderr: %s", r.status, r.err);
	run_result_free(&r);
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
	snprintf(want, sizeof(want), "pml4[%u]=0x", SHADOWVM_ABI_RESERVED_PML4_INDEX);
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
	hidden = stat_field(r.err, " hidden_faults=");
	ck_assert_uint_gt(touched, 0);
	ck_assert_msg(hidden >= touched, "hidden faults %lu < pages touched %lu", hidden, touched);
	ck_assert_uint_gt(stat_field(r.err, " emulated="), 0);
	ck_assert_uint_gt(stat_field(r.err, " cr3_writes="), 0);
	run_result_free(&r);
}
END_TEST

START_TEST(test_hw_mode_has_no_shadow)
{
	struct run_result r;

	RUN(&r, "run", "-v", "--paging=hw", GUEST("hello"));
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strstr(r.err, "paging=hw") && !strstr(r.err, "hidden_faults="), "stderr: %s",
		      r.err);
	run_result_free(&r);
}
END_TEST

/* ---- the trace (--trace, --stats) ---- */

struct trace_file {
	struct json_object *rec[65536];
	size_t n;
};

/* Every line of `path` parses and matches the schema; the file ends with a
 * newline and the sequence numbers count up from 0 without gaps. */
static void trace_load(const char *path, struct trace_file *tf, const char *what)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	ck_assert_msg(f, "%s: no trace file %s", what, path);
	tf->n = 0;
	while ((len = getline(&line, &cap, f)) > 0) {
		struct json_object *o = json_tokener_parse(line);
		const char *why;
		ck_assert_msg(line[len - 1] == '\n', "%s: line %zu has no newline: %s", what,
			      tf->n + 1, line);
		ck_assert_msg(o, "%s: line %zu is not JSON: %s", what, tf->n + 1, line);
		why = trace_schema_error(o);
		ck_assert_msg(!why, "%s: line %zu: %s: %s", what, tf->n + 1, why, line);
		ck_assert_msg(tf->n < sizeof(tf->rec) / sizeof(tf->rec[0]), "%s: trace too long",
			      what);
		ck_assert_int_eq(json_object_get_int64(json_object_object_get(o, "seq")),
				 (int64_t)tf->n);
		tf->rec[tf->n++] = o;
	}
	free(line);
	fclose(f);
	ck_assert_msg(tf->n > 0, "%s: empty trace", what);
}

static void trace_free(struct trace_file *tf)
{
	for (size_t i = 0; i < tf->n; i++)
		json_object_put(tf->rec[i]);
	tf->n = 0;
}

static const char *rec_str(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static int64_t rec_int(struct json_object *o, const char *key)
{
	return json_object_get_int64(json_object_object_get(o, key));
}

/* The trace's records counted as the --stats counters they add up to, and
 * the exit record's KVM exits. */
struct trace_counts {
	int64_t c[COUNTER_N], exits;
};

/* The records that count one each. */
static const struct {
	const char *event;
	enum counter counter;
} one_each[] = {
	{ "guest_fault", COUNTER_guest_faults }, { "cr3", COUNTER_cr3_writes },
	{ "invlpg", COUNTER_invlpgs },           { "flush", COUNTER_flushes },
	{ "evict", COUNTER_evictions },          { "prefetch", COUNTER_prefetched },
	{ "unprotect", COUNTER_unprotects },     { "reflect", COUNTER_reflected },
};

/* The counters the trace accounts for: those, fills by level, A/D bits set
 * by walks, and emulations. */
static const enum counter traced_counters[] = {
	COUNTER_fills_1,    COUNTER_fills_2,   COUNTER_fills_3,      COUNTER_a_sets,
	COUNTER_d_sets,     COUNTER_emulated,  COUNTER_guest_faults, COUNTER_cr3_writes,
	COUNTER_invlpgs,    COUNTER_flushes,   COUNTER_evictions,    COUNTER_prefetched,
	COUNTER_unprotects, COUNTER_reflected,
};
_Static_assert(COUNTER_fills_2 == COUNTER_fills_1 + 1 && COUNTER_fills_3 == COUNTER_fills_1 + 2,
	       "fills by level in a row");

static void count_one(struct trace_counts *c, const char *ev)
{
	for (size_t k = 0; k < sizeof(one_each) / sizeof(one_each[0]); k++)
		if (!strcmp(ev, one_each[k].event))
			c->c[one_each[k].counter]++;
}

static void count_trace(const struct trace_file *tf, struct trace_counts *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < tf->n; i++) {
		struct json_object *o = tf->rec[i];
		const char *ev = rec_str(o, "event");
		int64_t level = rec_int(o, "level");

		count_one(c, ev);
		if (!strcmp(ev, "fill") && level >= 1 && level <= 3)
			c->c[COUNTER_fills_1 + level - 1]++;
		else if (!strcmp(ev, "exit"))
			c->exits = rec_int(o, "exits");
		else if (!strcmp(ev, "emulate"))
			c->c[COUNTER_emulated] += !strcmp(rec_str(o, "result"), "done") ||
						  !strcmp(rec_str(o, "result"), "jumped");
		else if (!strcmp(ev, "ad_set")) {
			struct json_object *walk = json_object_object_get(o, "walk");
			for (size_t k = 0; k < json_object_array_length(walk); k++) {
				const char *ad = rec_str(json_object_array_get_idx(walk, k), "ad");
				c->c[COUNTER_a_sets] += strchr(ad, 'A') != NULL;
				c->c[COUNTER_d_sets] += strchr(ad, 'D') != NULL;
			}
		}
	}
}

static int64_t stat_int(struct json_object *st, const char *path)
{
	int64_t v = 0;

	ck_assert_msg(json_path_int(st, path, &v), "--stats has no \"%s\"", path);
	return v;
}

/* --stats has every counter of the table, and the trace's counts equal it,
 * counter by counter. */
static void compare_with_stats(const struct trace_file *tf, const char *stats_path,
			       const char *what)
{
	struct json_object *st = json_object_from_file(stats_path);
	struct trace_counts c;

	ck_assert_msg(st, "%s: --stats file %s is not JSON", what, stats_path);
	for (unsigned k = 0; k < COUNTER_N; k++)
		stat_int(st, counter_path(k));
	count_trace(tf, &c);
	ck_assert_int_eq(stat_int(st, "ad_retries"), 0);
	for (size_t k = 0; k < sizeof(traced_counters) / sizeof(traced_counters[0]); k++) {
		enum counter n = traced_counters[k];

		ck_assert_msg(c.c[n] == stat_int(st, counter_path(n)),
			      "%s: %s: trace %lld, --stats %lld", what, counter_path(n),
			      (long long)c.c[n], (long long)stat_int(st, counter_path(n)));
	}
	ck_assert_int_eq(c.exits, stat_int(st, "exits.total"));
	json_object_put(st);
}

static struct trace_file the_trace;

/* Every event kind but evict: the guests that exercise the trap path, the
 * diffs[] before the first big one (accessmatrix and friends would write
 * traces of hundreds of MiB). */
static int ntraced(void)
{
	int n = 0;

	while (!diffs[n].big)
		n++;
	return n;
}

START_TEST(test_trace_parses_matches_schema_and_stats)
{
	const struct diff_case *c = &diffs[_i % ntraced()];
	const char *mode = _i < ntraced() ? "--paging=shadow" : "--paging=hw";
	const char *arg = c->arg ? c->arg : "";
	const char *trace = test_file("t.jsonl"), *stats = test_file("t.stats");
	char image[128], what[160], stats_arg[PATH_MAX + 8];
	struct run_result r;

	snprintf(image, sizeof(image), "build/guest/%s.elf", c->guest);
	snprintf(what, sizeof(what), "%s %s", c->guest, mode);
	snprintf(stats_arg, sizeof(stats_arg), "--stats=%s", stats);
	RUN(&r, "run", "--timeout", "60", mode, "--trace", trace, stats_arg, image, "--", arg);
	ck_assert_msg(r.status == c->status, "%s: status %d, stderr: %s", what, r.status, r.err);
	trace_load(trace, &the_trace, what);
	ck_assert_str_eq(rec_str(the_trace.rec[the_trace.n - 1], "event"), "exit");
	ck_assert_int_eq(rec_int(the_trace.rec[the_trace.n - 1], "status"), c->status);
	compare_with_stats(&the_trace, stats, what);
	if (mode[9] == 'h') /* --paging=hw: the VMM sees no paging, only the exit */
		ck_assert_uint_eq(the_trace.n, 1);
	trace_free(&the_trace);
	run_result_free(&r);
}
END_TEST

/* A record without what may differ between two runs of one guest: its
 * number and time, and for the exit record the count of KVM exits. */
static const char *record_body(struct json_object *o)
{
	json_object_object_del(o, "seq");
	json_object_object_del(o, "ns");
	if (!strcmp(rec_str(o, "event"), "exit"))
		json_object_object_del(o, "exits");
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
}

/* The monitor's fill leaves the trace the VMM's fill makes, record for
 * record (the same kinds, counts, order and fields; issue 14), while it
 * resolves the hidden faults without an exit. */
START_TEST(test_trace_is_the_same_with_the_monitor_fill)
{
	const struct diff_case *c = &diffs[_i];
	const char *arg = c->arg ? c->arg : "";
	const char *tv = test_file("vmm.jsonl"), *tm = test_file("mon.jsonl");
	const char *stats = test_file("mon.stats");
	char image[128], what[160], stats_arg[PATH_MAX + 8];
	static struct trace_file mon;
	struct json_object *st;
	struct run_result r;

	snprintf(image, sizeof(image), "build/guest/%s.elf", c->guest);
	snprintf(stats_arg, sizeof(stats_arg), "--stats=%s", stats);
	RUN(&r, "run", "--timeout", "60", "--fill=vmm", "--trace", tv, image, "--", arg);
	ck_assert_msg(r.status == c->status, "%s vmm: status %d: %s", c->guest, r.status, r.err);
	run_result_free(&r);
	RUN(&r, "run", "--timeout", "60", "--fill=monitor", "--trace", tm, stats_arg, image, "--",
	    arg);
	ck_assert_msg(r.status == c->status, "%s monitor: status %d: %s", c->guest, r.status,
		      r.err);
	run_result_free(&r);
	snprintf(what, sizeof(what), "%s --fill=vmm", c->guest);
	trace_load(tv, &the_trace, what);
	snprintf(what, sizeof(what), "%s --fill=monitor", c->guest);
	trace_load(tm, &mon, what);
	compare_with_stats(&mon, stats, what);
	ck_assert_msg(the_trace.n == mon.n,
		      "%s: %zu records with the VMM's fill, %zu with the monitor's", c->guest,
		      the_trace.n, mon.n);
	for (size_t i = 0; i < mon.n; i++) {
		char *want = strdup(record_body(the_trace.rec[i]));

		ck_assert_msg(!strcmp(want, record_body(mon.rec[i])),
			      "%s: record %zu differs\n--- vmm\n%s\n--- monitor\n%s", c->guest, i,
			      want, record_body(mon.rec[i]));
		free(want);
	}
	/* and the monitor did resolve faults itself */
	st = json_object_from_file(stats);
	ck_assert_ptr_nonnull(st);
	if (stat_int(st, "fills.1") + stat_int(st, "fills.2") > 0)
		ck_assert_msg(stat_int(st, "monitor.resolved") > 0,
			      "%s: the monitor resolved nothing", c->guest);
	json_object_put(st);
	trace_free(&mon);
	trace_free(&the_trace);
}
END_TEST

/* A pool of 8 pages cannot hold the paging guest's shadows: evictions.  (With 4 it
 * livelocks: one instruction needs more pages than the pool holds.) */
START_TEST(test_trace_counts_evictions)
{
	const char *trace = test_file("e.jsonl"), *stats = test_file("e.stats");
	char stats_arg[PATH_MAX + 8];
	struct run_result r;
	struct trace_counts c;

	snprintf(stats_arg, sizeof(stats_arg), "--stats=%s", stats);
	RUN(&r, "run", "--shadow-pool", "8", "--trace", trace, stats_arg, GUEST("paging"));
	ck_assert_msg(r.status == 0, "status %d, stderr: %s", r.status, r.err);
	trace_load(trace, &the_trace, "paging --shadow-pool 8");
	compare_with_stats(&the_trace, stats, "paging --shadow-pool 8");
	count_trace(&the_trace, &c);
	ck_assert_int_gt(c.c[COUNTER_evictions], 0);
	trace_free(&the_trace);
	run_result_free(&r);
}
END_TEST

/* SIGTERM mid-run: the trace still ends with a complete exit record. */
START_TEST(test_trace_survives_sigterm)
{
	struct run_result r;
	struct json_object *last;

	require_kvm();
	run_cmd((char *const[]){ "/usr/bin/timeout", "--preserve-status", "-s", "TERM", "1", VMM,
				 "run", "--trace", (char *)test_file("sig.jsonl"), GUEST("spin"),
				 NULL },
		&r);
	ck_assert_msg(r.status == VMM_E_SIGNAL + 15, "status %d, stderr: %s", r.status, r.err);
	trace_load(test_file("sig.jsonl"), &the_trace, "spin SIGTERM");
	last = the_trace.rec[the_trace.n - 1];
	ck_assert_str_eq(rec_str(last, "event"), "exit");
	ck_assert_str_eq(rec_str(last, "reason"), "signal");
	trace_free(&the_trace);
	run_result_free(&r);
}
END_TEST

START_TEST(test_trace_of_hello_starts_with_only_the_hypervisor_entry)
{
	struct json_object *first, *entries, *e;
	struct run_result r;

	RUN(&r, "run", "--trace", test_file("h.jsonl"), GUEST("hello"));
	ck_assert_int_eq(r.status, 0);
	trace_load(test_file("h.jsonl"), &the_trace, "hello");
	first = the_trace.rec[0];
	ck_assert_str_eq(rec_str(first, "event"), "shadow_init");
	entries = json_object_object_get(first, "entries");
	ck_assert_uint_eq(json_object_array_length(entries), 1);
	e = json_object_array_get_idx(entries, 0);
	ck_assert_int_eq(rec_int(e, "index"), SHADOWVM_ABI_RESERVED_PML4_INDEX);
	ck_assert_str_eq(rec_str(e, "owner"), "hypervisor");
	ck_assert_str_eq(rec_str(the_trace.rec[1], "event"), "fill");
	trace_free(&the_trace);
	run_result_free(&r);
}
END_TEST

START_TEST(test_trace_survives_timeout)
{
	struct run_result r;
	struct json_object *last;

	RUN(&r, "run", "--timeout", "1", "--trace", test_file("s.jsonl"), GUEST("spin"));
	ck_assert_int_eq(r.status, VMM_E_TIMEOUT);
	trace_load(test_file("s.jsonl"), &the_trace, "spin");
	last = the_trace.rec[the_trace.n - 1];
	ck_assert_str_eq(rec_str(last, "event"), "exit");
	ck_assert_str_eq(rec_str(last, "reason"), "timeout");
	ck_assert_int_eq(rec_int(last, "status"), VMM_E_TIMEOUT);
	trace_free(&the_trace);
	run_result_free(&r);
}
END_TEST

START_TEST(test_trace_write_error_ends_the_run_with_73)
{
	struct run_result r;

	RUN(&r, "run", "--trace", "/dev/full", GUEST("paging"));
	ck_assert_int_eq(r.status, VMM_E_TRACE);
	ck_assert_msg(strstr(r.err, "trace: /dev/full: write failed: No space left on device"),
		      "stderr: %s", r.err);
	run_result_free(&r);
}
END_TEST

START_TEST(test_trace_summary_reads_a_real_trace)
{
	struct run_result r;

	RUN(&r, "run", "--trace", test_file("p.jsonl"), GUEST("paging"));
	ck_assert_int_eq(r.status, 0);
	run_result_free(&r);
	RUN(&r, "trace", "summary", test_file("p.jsonl"));
	ck_assert_msg(r.status == 0, "status %d, stderr: %s", r.status, r.err);
	ck_assert_msg(strstr(r.out, "  shadow_init  1\n") && strstr(r.out, "  exit         1\n") &&
			      strstr(r.out, "most-faulting pages"),
		      "stdout: %s", r.out);
	run_result_free(&r);
}
END_TEST

/* A record's mark class as the plotter ranks them (trace_plot.c draw
 * order): 0..2 fills by level, 3 unprotect, 4 guest_fault; -1 for none.
 * Prefetches are drawn under fills and do not matter here. */
static int plot_rank(struct json_object *o)
{
	const char *ev = rec_str(o, "event");

	if (!strcmp(ev, "fill"))
		return (int)rec_int(o, "level") - 1;
	return !strcmp(ev, "unprotect") ? 3 : !strcmp(ev, "guest_fault") ? 4 : -1;
}

/* The GVA a mark is drawn at: its own, or for an unprotect that of the
 * fill after it. */
static uint64_t plot_gva(const struct trace_file *tf, size_t i)
{
	while (i < tf->n && !strcmp(rec_str(tf->rec[i], "event"), "unprotect"))
		i++;
	return i < tf->n ? strtoull(rec_str(tf->rec[i], "gva"), NULL, 16) : 0;
}

/* A fill whose pixel no mark drawn over fills of its level covers. */
static size_t clear_fill(const struct trace_file *tf, const struct trace_plot *p)
{
	for (size_t i = 0; i < tf->n; i++) {
		int x, y, rank = plot_rank(tf->rec[i]);
		bool clear = true;
		if (rank < 0 || rank > 2)
			continue;
		x = trace_plot_x(p, (uint64_t)rec_int(tf->rec[i], "ns"));
		y = trace_plot_y(p, plot_gva(tf, i));
		for (size_t k = 0; k < tf->n && clear; k++) {
			int xk, yk;
			if (plot_rank(tf->rec[k]) <= rank)
				continue;
			xk = trace_plot_x(p, (uint64_t)rec_int(tf->rec[k], "ns"));
			yk = trace_plot_y(p, plot_gva(tf, k));
			clear = abs(xk - x) > 2 * TRACE_PLOT_DOT ||
				abs(yk - y) > 2 * TRACE_PLOT_DOT;
		}
		if (clear)
			return i;
	}
	ck_abort_msg("every fill is covered by another mark");
	return 0;
}

static unsigned fill_pixels(cairo_surface_t *png)
{
	unsigned n = 0;

	for (int y = 0; y < cairo_image_surface_get_height(png); y++)
		for (int x = 0; x < cairo_image_surface_get_width(png); x++)
			for (unsigned l = 1; l <= 3; l++)
				n += png_pixel(png, x, y) == trace_plot_colour(TRACE_PLOT_FILL, l);
	return n;
}

/* trace plot on a real guest's trace: the PNG's size, marks on it, and one
 * fill, picked from the trace, at the pixel the plotter's mapping names. */
START_TEST(test_trace_plot_draws_a_real_trace)
{
	const char *trace = test_file("pp.jsonl"), *png_path = test_file("pp.png");
	struct trace_plot_options o = { 0 };
	struct trace_plot *p;
	cairo_surface_t *png;
	struct run_result r;
	char err[256] = "";
	size_t i;
	FILE *f;

	RUN(&r, "run", "--trace", trace, GUEST("paging"));
	ck_assert_int_eq(r.status, 0);
	run_result_free(&r);
	RUN(&r, "trace", "plot", trace, "-o", png_path);
	ck_assert_msg(r.status == 0, "status %d, stderr: %s", r.status, r.err);
	run_result_free(&r);
	png = png_load(png_path);
	ck_assert_int_eq(cairo_image_surface_get_width(png), TRACE_PLOT_WIDTH);
	ck_assert_int_eq(cairo_image_surface_get_height(png), TRACE_PLOT_HEIGHT);
	ck_assert_uint_ge(fill_pixels(png), 9); /* one mark at least */
	ck_assert_ptr_nonnull(f = fopen(trace, "r"));
	ck_assert_msg(trace_plot_read(f, trace, &o, &p, err, sizeof(err)) == 0, "%s", err);
	fclose(f);
	trace_load(trace, &the_trace, "paging (plot)");
	i = clear_fill(&the_trace, p);
	ck_assert_msg(png_pixel(png, trace_plot_x(p, (uint64_t)rec_int(the_trace.rec[i], "ns")),
				trace_plot_y(p, plot_gva(&the_trace, i))) ==
			      trace_plot_colour(TRACE_PLOT_FILL,
						(unsigned)rec_int(the_trace.rec[i], "level")),
		      "fill at line %zu (gva %s) is not in the fill colour", i + 1,
		      rec_str(the_trace.rec[i], "gva"));
	trace_free(&the_trace);
	trace_plot_free(p);
	cairo_surface_destroy(png);
}
END_TEST

/* ---- hostile guests: each ends in its diagnosis, never a VMM crash ---- */

struct adv_case {
	const char *name;
	const char *mode;
	int status;
	const char *out; /* the whole transcript */
	const char *err; /* must appear on stderr; NULL: stderr empty */
};

static const struct adv_case advs[] = {
	{ "monitor_write", "--paging=shadow", VMM_E_CONTRACT, "writing the monitor's IDT page\n",
	  "guest broke the ABI: the hypervisor's reserved slot holds 0xffffff0000003000" },
	{ "map_reserved", "--paging=shadow", VMM_E_CONTRACT, "mapping PML4 slot 510\n",
	  "guest broke the ABI: PML4 entry 510 (the hypervisor's reserved slot) is present" },
	{ "pte_beyond_ram", "--paging=shadow", VMM_E_CONTRACT,
	  "mapping machine address 0x800000000\n",
	  "guest broke the ABI: page table or page at GPA 0x800000000 outside RAM 0x4000000" },
	{ "pte_beyond_ram", "--paging=hw", VMM_E_CRASH, "mapping machine address 0x800000000\n",
	  "guest crash: read of 8 bytes at unbacked GPA 0x800000000" },
	{ "lgdt_garbage", "--paging=shadow", VMM_E_CONTRACT, "lgdt with a 64 KiB limit\n",
	  "guest broke the ABI: GDT limit 0xffff exceeds 0xffbf" },
	{ "lidt_garbage", "--paging=shadow", VMM_E_CRASH, "lidt of an unmapped base, then ud2\n",
	  "guest crash: triple fault (fault vector 14 while delivering #DF)" },
	{ "lidt_garbage", "--paging=hw", VMM_E_CRASH, "lidt of an unmapped base, then ud2\n",
	  "guest crash: triple fault" },
	{ "stub_jump", "--paging=shadow", VMM_E_CONTRACT, "calling a monitor stub\n",
	  "guest broke the ABI: the hypervisor's reserved slot holds 0xffffff0000015" },
	{ "forge_trap_stack", "--check-invariants", 0,
	  "forging the trap stack\nstill running after a fault\n", NULL },
	{ "cr3_zero", "--paging=shadow", VMM_E_CRASH, "loading CR3 = 0\n",
	  "guest crash: triple fault" },
	{ "cr3_zero", "--paging=hw", VMM_E_CRASH, "loading CR3 = 0\n",
	  "guest crash: triple fault" },
	{ "cr3_outside_ram", "--paging=shadow", VMM_E_CONTRACT, "loading CR3 past RAM\n",
	  "guest broke the ABI: page table or page at GPA 0x4100000 outside RAM 0x4000000" },
	{ "invlpg_noncanonical", "--paging=shadow", 0,
	  "invlpg of non-canonical addresses: no fault\n", NULL },
	{ "invlpg_noncanonical", "--paging=hw", 0, "invlpg of non-canonical addresses: no fault\n",
	  NULL },
	{ "hlt_forever", "--paging=shadow", VMM_E_HALTED, "cli; hlt\n",
	  "guest halted forever: hlt with interrupts off" },
	/* the monitor's own address space (DESIGN.md §2): its pool, its store
	 * queue, its code and its root are out of the guest's reach */
	{ "write_pool", "--check-invariants", VMM_E_CONTRACT,
	  "writing the shadow pool through a PTE to 0x800020000\n",
	  "guest broke the ABI: page table or page at GPA 0x800020000 outside RAM 0x4000000" },
	{ "write_queue", "--check-invariants", VMM_E_CONTRACT,
	  "writing the store queue through a PTE to 0x80001c000\n",
	  "guest broke the ABI: page table or page at GPA 0x80001c000 outside RAM 0x4000000" },
	{ "write_applier", "--check-invariants", VMM_E_CONTRACT,
	  "writing the monitor's store applier\n",
	  "guest broke the ABI: the hypervisor's reserved slot holds 0xffffff0000016000" },
	{ "write_queue_va", "--check-invariants", VMM_E_CONTRACT,
	  "writing the store queue at its monitor address\n",
	  "guest broke the ABI: the hypervisor's reserved slot holds 0xffffff000001c000" },
	{ "cr3_monitor_root", "--check-invariants", VMM_E_CONTRACT,
	  "loading the monitor's root into CR3\n",
	  "guest broke the ABI: page table or page at GPA 0x800019000 outside RAM 0x4000000" },
	{ "hlt_forever", "--paging=hw", VMM_E_HALTED, "cli; hlt\n",
	  "guest halted forever: hlt with interrupts off" },
};

/* Run adversary case c of `image` and hold it to c. */
static void adversary_case(const struct adv_case *c, const char *image)
{
	struct run_result r;
	char arg[48];

	snprintf(arg, sizeof(arg), "case=%s", c->name);
	RUN(&r, "run", "--timeout", "60", c->mode, image, "--", arg);
	ck_assert_msg(r.status == c->status, "%s %s: status %d, stderr: %s", c->name, c->mode,
		      r.status, r.err);
	ck_assert_str_eq(r.out, c->out);
	if (c->err)
		ck_assert_msg(strstr(r.err, c->err) != NULL, "%s %s stderr: %s", c->name, c->mode,
			      r.err);
	else
		ck_assert_str_eq(r.err, "");
	run_result_free(&r);
}

START_TEST(test_adversary_is_contained)
{
	adversary_case(&advs[_i], GUEST("adversary"));
}
END_TEST

/* The foreign-kernel cases (guest/mb/mbadversary.c): what --paging=shadow
 * does is the SDM's (Intel's: a PDPTE is checked when it is loaded); the
 * hardware under the nested runner is QEMU's AMD, which checks PDPTEs
 * during the walk and lets CR0.PG with LME but not PAE pass, so --paging=hw
 * is held only to the outcomes the architectures share. */
static const struct adv_case mb_advs[] = {
	{ "pdpte_reserved", "--paging=shadow", 1,
	  "mbadversary: PAE with R/W set in PDPTE 0, then CR0.PG\n"
	  "mbadversary: vector 13 error code 0\n",
	  NULL },
	{ "pae_cr3_above_ram", "--paging=shadow", 1,
	  "mbadversary: PAE with CR3 at 0x3ffff000, past RAM\n"
	  "mbadversary: vector 13 error code 0\n",
	  NULL },
	{ "lme_without_pae", "--paging=shadow", 1,
	  "mbadversary: EFER.LME, CR4.PAE clear, then CR0.PG\n"
	  "mbadversary: vector 13 error code 0\n",
	  NULL },
	{ "pg_without_pe", "--paging=shadow", 1,
	  "mbadversary: CR0.PG with CR0.PE clear\nmbadversary: vector 13 error code 0\n", NULL },
	{ "pse_high_bits", "--paging=shadow", VMM_E_CONTRACT,
	  "mbadversary: a 4 MiB page with PDE bits 13-20 set, read\n",
	  "guest broke the ABI: page table or page at GPA 0xff00000000 outside RAM" },
	{ "pse_high_bits", "--paging=hw", VMM_E_CRASH,
	  "mbadversary: a 4 MiB page with PDE bits 13-20 set, read\n",
	  "at unbacked GPA 0xff00000000" },
	{ "mmio_nowhere", "--paging=shadow", VMM_E_CONTRACT,
	  "mbadversary: reading 0xfed00000, where no device is\n",
	  "guest broke the ABI: page table or page at GPA 0xfed00000 outside RAM" },
	{ "mmio_nowhere", "--paging=hw", VMM_E_CRASH,
	  "mbadversary: reading 0xfed00000, where no device is\n", "at unbacked GPA 0xfed00000" },
};

START_TEST(test_mb_adversary_is_contained)
{
	adversary_case(&mb_advs[_i], GUEST("mbadversary"));
}
END_TEST

/* A sparse address space needing more shadow tables than the pool holds:
 * served correctly by eviction, identical to hardware paging. */
START_TEST(test_pool_exhaustion_is_served)
{
	struct run_result hw, sh;

	RUN(&hw, "run", "--paging=hw", GUEST("adversary"), "--", "case=pool_exhaust");
	RUN(&sh, "run", "-v", "--check-invariants", "--shadow-pool", "16", GUEST("adversary"), "--",
	    "case=pool_exhaust");
	ck_assert_int_eq(hw.status, 0);
	ck_assert_msg(sh.status == 0, "stderr: %s", sh.err);
	ck_assert_str_eq(hw.out, sh.out);
	ck_assert_msg(strstr(sh.out, "512 sparse pages written and read back"), "%s", sh.out);
	ck_assert_uint_gt(stat_field(sh.err, " evictions="), 0);
	ck_assert_uint_le(stat_field(sh.err, " pages_peak="), 16);
	run_result_free(&hw);
	run_result_free(&sh);
}
END_TEST

/* ---- the backend underneath: shadowvm kvm and the refusals ---- */

/* A sysfs file's first line, "" if absent. */
static void sysfs_read(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	buf[0] = 0;
	if (f && fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = 0;
	if (f)
		fclose(f);
}

/* What this machine's sysfs says, read here independently of vmm/kvm/backend.c:
 * PVM, or a KVM with its TDP parameter off, or a KVM with it on. */
enum host_kind { HOST_NOKVM, HOST_PVM, HOST_NO_TDP, HOST_TDP };

static enum host_kind host_kind(const char **module)
{
	char ept[8], npt[8];
	int fd = open("/dev/kvm", O_RDWR);

	if (fd < 0)
		return HOST_NOKVM;
	close(fd);
	*module = "kvm_pvm";
	if (access("/sys/module/kvm_pvm", F_OK) == 0)
		return HOST_PVM;
	sysfs_read("/sys/module/kvm_intel/parameters/ept", ept, sizeof(ept));
	sysfs_read("/sys/module/kvm_amd/parameters/npt", npt, sizeof(npt));
	*module = ept[0] ? "kvm_intel" : "kvm_amd";
	if (!strcmp(ept, "N") || !strcmp(npt, "N") || !strcmp(npt, "0"))
		return HOST_NO_TDP;
	return HOST_TDP;
}

static void run_hello(struct run_result *r, const char *mode)
{
	run_cmd((char *const[]){ VMM, "run", (char *)mode, GUEST("hello"), NULL }, r);
}

/* `shadowvm kvm` names what sysfs names, its status says whether both modes
 * run, and `run` keeps to its verdict: 69 and one line where refused, the
 * guest's own transcript where not.  Run directly on the host (case
 * backend), in the nested runner (case guests) and with npt=0 (case npt0). */
START_TEST(test_kvm_command_matches_this_host)
{
	const char *module = "none";
	enum host_kind k = host_kind(&module);
	struct run_result r, js, sh, hw;
	struct json_object *o, *p;
	bool shadow_ok = k == HOST_TDP || k == HOST_NO_TDP, hw_ok = shadow_ok;

	run_cmd((char *const[]){ VMM, "kvm", NULL }, &r);
	ck_assert_msg(r.status == (shadow_ok && hw_ok ? 0 : VMM_E_NOKVM), "status %d:\n%s",
		      r.status, r.out);
	ck_assert_msg(strstr(r.out, module), "sysfs says %s:\n%s", module, r.out);
	run_cmd((char *const[]){ VMM, "kvm", "--json", NULL }, &js);
	ck_assert_int_eq(js.status, r.status);
	ck_assert_ptr_nonnull(o = json_tokener_parse(js.out));
	ck_assert(json_object_object_get_ex(o, "backend", &p));
	ck_assert_str_eq(json_object_get_string(p), k == HOST_NOKVM ? "none" : module);
	run_hello(&sh, "--paging=shadow");
	run_hello(&hw, "--paging=hw");
	ck_assert_msg(sh.status == (shadow_ok ? 0 : VMM_E_NOKVM), "shadow: %d %s", sh.status,
		      sh.err);
	ck_assert_msg(hw.status == (hw_ok ? 0 : VMM_E_NOKVM), "hw: %d %s", hw.status, hw.err);
	if (!shadow_ok)
		ck_assert_msg(strstr(sh.err, module) && count_between(sh.err, NULL, "\n") == 1,
			      "one line naming %s: %s", module, sh.err);
	if (k == HOST_PVM)
		ck_assert_msg(strstr(hw.err, "PVM-enlightened"), "%s", hw.err);
	if (hw_ok)
		ck_assert_msg(strstr(hw.out, "hello") && !strcmp(hw.out, sh.out),
			      "hw:\n%sshadow:\n%s", hw.out, sh.out);
	json_object_put(o);
	run_result_free(&r);
	run_result_free(&js);
	run_result_free(&sh);
	run_result_free(&hw);
}
END_TEST

/* The faults guest with raw=1 under --paging=hw prints error codes as the
 * "hardware" delivered them: on the nested runner with NPT that is QEMU's
 * MMU.  Case shadow keeps its transcript; case npt0 compares. */
#define FAULTS_RAW TRANSCRIPTS "/faults-raw-npt1.txt"

static void run_faults_raw(struct run_result *r)
{
	RUN(r, "run", "--timeout", "60", "--paging=hw", "-q", GUEST("faults"), "--", "raw=1");
	ck_assert_msg(r->status == 0, "faults raw=1: status %d, stderr: %s", r->status, r->err);
}

START_TEST(test_faults_raw_transcript_on_npt_is_kept)
{
	struct run_result r;

	run_faults_raw(&r);
	keep(FAULTS_RAW, "", r.out);
	run_result_free(&r);
}
END_TEST

/* A file read whole, NUL-terminated; fails the test if it is missing or
 * older than build/shadowvm (a transcript of another build). */
static char *read_fresh(const char *path)
{
	struct stat ts, vs;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	ck_assert_msg(stat(path, &ts) == 0 && stat(VMM, &vs) == 0 && ts.st_mtime >= vs.st_mtime,
		      "%s missing or older than " VMM ": run case shadow first", path);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	ck_assert(getdelim(&text, &len, 0, f) > 0);
	fclose(f);
	return text;
}

/* One listed QEMU deviation (README "Tests"): a reserved-bit #PF whose error
 * code lacks P under QEMU's MMU and has it under KVM's walk (SDM 3A §4.7). */
static bool rsvd_without_p(const char *qemu_line, const char *kvm_line)
{
	const char *qe = strstr(qemu_line, " err=0x"), *ke = strstr(kvm_line, " err=0x");
	unsigned long q, k;

	if (!strstr(qemu_line, " vec=14 ") || !qe || !ke || qe - qemu_line != ke - kvm_line ||
	    strncmp(qemu_line, kvm_line, (size_t)(qe - qemu_line)))
		return false;
	q = strtoul(qe + 7, NULL, 16);
	k = strtoul(ke + 7, NULL, 16);
	return (q & 0x8) && !(q & 0x1) && k == (q | 0x1) &&
	       !strcmp(strchr(qe + 1, ' '), strchr(ke + 1, ' '));
}

/* npt0: the raw faults transcript on KVM's shadow MMU differs from the one
 * on QEMU's MMU only in lines that are a listed deviation. */
START_TEST(test_faults_raw_differs_from_npt_only_by_listed_qemu_deviations)
{
	char *want = read_fresh(FAULTS_RAW), *wl, *gl, *ws = NULL, *gs = NULL;
	struct run_result r;
	unsigned lines = 0, deviations = 0;

	run_faults_raw(&r);
	wl = strtok_r(want, "\n", &ws);
	gl = strtok_r(r.out, "\n", &gs);
	for (; wl && gl; wl = strtok_r(NULL, "\n", &ws), gl = strtok_r(NULL, "\n", &gs), lines++) {
		if (!strcmp(wl, gl))
			continue;
		ck_assert_msg(rsvd_without_p(wl, gl),
			      "line %u differs, and not by a listed deviation:\n"
			      "npt=1: %s\nnpt=0: %s",
			      lines + 1, wl, gl);
		deviations++;
	}
	ck_assert_msg(!wl && !gl, "the transcripts differ in length after %u lines", lines);
	fprintf(stderr,
		"npt0: faults raw=1: %u lines, %u differ, each a reserved-bit #PF without P "
		"on QEMU's MMU\n",
		lines, deviations);
	free(want);
	run_result_free(&r);
}
END_TEST

/* npt0: on KVM's own shadow MMU (kvm-amd npt=0, a second oracle written by
 * KVM's developers) --paging=hw gives byte for byte the transcript that
 * shadow mode and QEMU-backed hw mode agreed on in case shadow. */
START_TEST(test_both_modes_on_kvm_shadow_mmu_match_the_saved_transcript)
{
	const struct diff_case *c = &diffs[_i];
	const char *module = "none";
	char path[64], *want, *nl;
	struct run_result hw;

	ck_assert_msg(
		host_kind(&module) == HOST_NO_TDP,
		"case npt0 runs under WITH_KVM_NPT=0 scripts/with-kvm (scripts/check-integration)");
	transcript_path(_i, path, sizeof(path));
	want = read_fresh(path);
	ck_assert_ptr_nonnull(nl = strchr(want, '\n'));
	*nl = 0;
	run_mode(&hw, c, "--paging=hw", "-q");
	ck_assert_msg(hw.status == atoi(want + strlen("status=")),
		      "%s: status %d, want %s; stderr: %s", c->guest, hw.status, want, hw.err);
	ck_assert_msg(strcmp(hw.out, nl + 1) == 0,
		      "%s %s: KVM's shadow MMU differs\n--- hw on npt=0\n%s--- shadow on npt=1\n%s",
		      c->guest, c->arg ? c->arg : "", hw.out, nl + 1);
	/* shadow mode on KVM's shadow MMU: right only because the monitor makes
	 * every shadow store (DESIGN.md §3); every setting of the shadow case */
	for (size_t o = 0; o < shadow_settings(c); o++) {
		struct run_result sh;
		char name[64];

		run_shadow(&sh, c, o);
		ck_assert_msg(sh.status == hw.status,
			      "%s shadow %s on npt=0: status %d, stderr: %s", c->guest,
			      setting_name(o, name, sizeof(name)), sh.status, sh.err);
		ck_assert_msg(
			strcmp(sh.out, nl + 1) == 0,
			"%s %s on npt=0: transcripts differ\n--- shadow on npt=0\n%s--- npt=1\n%s",
			c->guest, setting_name(o, name, sizeof(name)), sh.out, nl + 1);
		run_result_free(&sh);
	}
	free(want);
	run_result_free(&hw);
}
END_TEST

/* npt0: 10^5 torture steps in both modes on KVM's shadow MMU. */
START_TEST(test_torture_100k_steps_on_kvm_shadow_mmu)
{
	struct run_result hw, sh;

	RUN(&hw, "run", "-q", "--paging=hw", GUEST("torture"), "--", "seed=11 steps=100000");
	RUN(&sh, "run", "-q", "--paging=shadow", GUEST("torture"), "--", "seed=11 steps=100000");
	ck_assert_msg(hw.status == 0 && sh.status == 0, "hw %d, shadow %d: %s", hw.status,
		      sh.status, sh.err);
	ck_assert_msg(strstr(hw.out, "steps=100000") && strstr(hw.out, "failures=0"), "%s", hw.out);
	ck_assert_str_eq(hw.out, sh.out);
	run_result_free(&hw);
	run_result_free(&sh);
}
END_TEST

/* A console session as a person at a terminal has it, scripted through
 * pipes (stdin is COM1's receive side, IRQ 4): boot mbos to its prompt,
 * type a command, read its output, shut it down from its shell.  In both
 * paging modes. */
START_TEST(test_console_session_is_scripted)
{
	static const struct console_step steps[] = {
		{ "$ ", "echo hello from the console\r" },
		{ "hello from the console", "" },
		{ "$ ", "exit 3\r" },
	};
	const char *argv[] = {
		VMM,           "run", "-q",     _i ? "--paging=hw" : "--paging=shadow",
		"--timeout",   "120", "--disk", disk_image(),
		GUEST("mbos"), "--",  "shell",  NULL
	};
	struct run_result r;

	require_kvm();
	run_console((char *const *)argv, steps, sizeof(steps) / sizeof(steps[0]), 120, &r);
	ck_assert_msg(r.failed_step < 0, "%s: never saw '%s'; output:\n%s\nstderr: %s", argv[3],
		      steps[r.failed_step].expect, r.out, r.err);
	/* the typed line comes back as the guest echoes it, then the output */
	ck_assert_ptr_nonnull(strstr(r.out, "$ echo hello from the console"));
	ck_assert_int_eq(r.status, (3 << 1) | 1); /* isa-debug-exit of 3 */
	run_result_free(&r);
}
END_TEST

/* Input sent before the guest boots, as a pipe does: mbos's shell, like
 * xv6's uartinit, enables COM1's receive interrupt while IRQ 4 is masked
 * and unmasks it after, so the line is already high when the edge-triggered
 * pin opens; the console makes a new edge (uart_nudge) and every byte is
 * read.  In both paging modes. */
START_TEST(test_console_input_typed_ahead_is_delivered)
{
	static const struct console_step steps[] = {
		{ "", "echo typed ahead\rexit 4\r" },
	};
	const char *argv[] = { VMM,           "run",
			       "-q",          _i ? "--paging=hw" : "--paging=shadow",
			       "--timeout",   "120",
			       GUEST("mbos"), "--",
			       "shell",       NULL };
	struct run_result r;

	require_kvm();
	run_console((char *const *)argv, steps, sizeof(steps) / sizeof(steps[0]), 120, &r);
	ck_assert_msg(strstr(r.out, "$ echo typed ahead\r\ntyped ahead") ||
			      strstr(r.out, "$ echo typed ahead\ntyped ahead"),
		      "%s: output:\n%s\nstderr: %s", argv[3], r.out, r.err);
	ck_assert_msg(r.status == ((4 << 1) | 1), "%s: status %d, stderr: %s", argv[3], r.status,
		      r.err); /* isa-debug-exit of 4 */
	run_result_free(&r);
}
END_TEST

/* Under --paging=shadow every interrupt mbos takes reaches its IDT through
 * the monitor, and its sti; hlt waits in KVM: both counted in --stats. */
START_TEST(test_interrupts_are_reflected_and_counted)
{
	const char *stats = test_file("stats.json");
	char arg[128];
	struct run_result r;
	int64_t irqs = 0, halts = 0;
	struct json_object *o;

	snprintf(arg, sizeof(arg), "--stats=%s", stats);
	RUN(&r, "run", "-q", arg, "--disk", disk_image(), GUEST("mbos"));
	ck_assert_msg(r.status == 1, "status %d: %s", r.status, r.err);
	ck_assert_ptr_nonnull(o = json_object_from_file(stats));
	ck_assert(json_path_int(o, "interrupts", &irqs) && json_path_int(o, "halts", &halts));
	ck_assert_int_ge(irqs, 5); /* timer ticks in kernel and user mode, IDE completions */
	ck_assert_int_ge(halts, 1);
	json_object_put(o);
	run_result_free(&r);
}
END_TEST

/* mbos's local-APIC counters under `extra` (NULL: the defaults), its
 * transcript into *out (the caller frees it). */
struct lapic_counts {
	int64_t id_reads, declined, marks, unmarks, exits;
};

static struct lapic_counts run_mbos_lapic(const char *extra, char **out)
{
	const char *stats = test_file("lapic.json");
	struct lapic_counts n = { 0 };
	struct run_result r;
	struct json_object *o;
	char arg[128];

	snprintf(arg, sizeof(arg), "--stats=%s", stats);
	RUN(&r, "run", "-q", arg, extra ? extra : "--paging=shadow", "--disk", disk_image(),
	    GUEST("mbos"));
	ck_assert_msg(r.status == 1, "%s: status %d: %s", extra ? extra : "default", r.status,
		      r.err);
	ck_assert_ptr_nonnull(o = json_object_from_file(stats));
	ck_assert(json_path_int(o, "lapic.id_reads", &n.id_reads) &&
		  json_path_int(o, "lapic.declined", &n.declined) &&
		  json_path_int(o, "mmio_marks", &n.marks) &&
		  json_path_int(o, "mmio_unmarks", &n.unmarks) &&
		  json_path_int(o, "exits.total", &n.exits));
	json_object_put(o);
	*out = r.out;
	r.out = NULL;
	run_result_free(&r);
	return n;
}

/* The local-APIC fast path (README "The local APIC without an exit"):
 * mbos reads its APIC ID 100,000 times with `mov` (guest/mb/mbos.c
 * LAPIC_ID_READS), once with `add`, then drops the page's translation and
 * reads it 1,000 times more.  The movs are served inside the VM (fewer
 * exits in the whole run than reads), the add is left to KVM through a
 * leaf made plain, the refill marks it again; with --lapic=kvm or
 * --fill=vmm nothing is marked.  The transcript never changes. */
START_TEST(test_lapic_id_reads_are_served_inside_the_vm)
{
	char *fast_out, *kvm_out, *vmm_out;
	struct lapic_counts fast = run_mbos_lapic(NULL, &fast_out);
	struct lapic_counts kvm = run_mbos_lapic("--lapic=kvm", &kvm_out);
	struct lapic_counts vmmfill = run_mbos_lapic("--fill=vmm", &vmm_out);

	ck_assert_int_ge(fast.id_reads, 100000 + 1000);
	ck_assert_int_lt(fast.exits, 100000);
	ck_assert_int_ge(fast.declined, 1);
	ck_assert_int_ge(fast.unmarks, 1);
	ck_assert_int_gt(fast.marks, fast.unmarks);
	ck_assert_int_eq(kvm.id_reads + kvm.marks + kvm.unmarks, 0);
	ck_assert_int_eq(vmmfill.id_reads + vmmfill.marks + vmmfill.unmarks, 0);
	ck_assert_ptr_nonnull(strstr(fast_out, "lapic: id read by add, then 1000 more reads"));
	ck_assert_str_eq(fast_out, kvm_out);
	ck_assert_str_eq(fast_out, vmm_out);
	free(fast_out);
	free(kvm_out);
	free(vmm_out);
}
END_TEST

Suite *integration_suite(void)
{
	Suite *s = suite_create("integration");
	TCase *tc = tcase_create("guests");

	tcase_set_timeout(tc, 120);
	tcase_add_temp_dir(tc);
	tcase_add_test(tc, test_hello_prints_and_exits_zero);
	tcase_add_test(tc, test_hello_sees_ram_size_and_cmdline);
	tcase_add_loop_test(tc, test_exitcode_propagates, 0,
			    (int)(sizeof(exit_values) / sizeof(exit_values[0])));
	tcase_add_test(tc, test_exitcode_out_of_range_is_diagnosed);
	tcase_add_loop_test(tc, test_timeout_stops_spinning_guest, 0, 2);
	tcase_add_test(tc, test_portloop_counts_exits);
	tcase_add_test(tc, test_bad_inputs_fail_before_kvm);
	tcase_add_test(tc, test_kvm_command_matches_this_host);
	tcase_add_loop_test(tc, test_console_session_is_scripted, 0, 2);
	tcase_add_loop_test(tc, test_console_input_typed_ahead_is_delivered, 0, 2);
	tcase_add_test(tc, test_interrupts_are_reflected_and_counted);
	tcase_add_test(tc, test_lapic_id_reads_are_served_inside_the_vm);
	/* after every mbos test, for the reason given at diffs[] */
	tcase_add_loop_test(tc, test_triplefault_is_diagnosed, 0, 2);
	suite_add_tcase(s, tc);
	tc = tcase_create("backend"); /* scripts/check-integration runs it on the host itself */
	tcase_set_timeout(tc, 60);
	tcase_add_temp_dir(tc);
	tcase_add_test(tc, test_kvm_command_matches_this_host);
	suite_add_tcase(s, tc);
	tc = tcase_create("npt0"); /* under WITH_KVM_NPT=0, after case shadow */
	/* accessmatrix's five runs there take 240-290 s (about 80 s in hw,
	 * 35-45 s each in shadow): 300 s was seen to expire */
	tcase_set_timeout(tc, 600);
	tcase_add_temp_dir(tc);
	tcase_add_test(tc, test_kvm_command_matches_this_host);
	tcase_add_loop_test(tc, test_both_modes_on_kvm_shadow_mmu_match_the_saved_transcript, 0,
			    (int)(sizeof(diffs) / sizeof(diffs[0])));
	tcase_add_test(tc, test_faults_raw_differs_from_npt_only_by_listed_qemu_deviations);
	tcase_add_test(tc, test_torture_100k_steps_on_kvm_shadow_mmu);
	suite_add_tcase(s, tc);
	tc = tcase_create("shadow");
	tcase_set_timeout(tc, 300);
	tcase_add_temp_dir(tc);
	tcase_add_loop_test(tc, test_transcript_identical_under_shadow_and_hw, 0,
			    (int)(sizeof(diffs) / sizeof(diffs[0])));
	tcase_add_test(tc, test_shadow_starts_with_only_the_hypervisor_entry);
	tcase_add_test(tc, test_hidden_faults_cover_pages_touched);
	tcase_add_test(tc, test_hw_mode_has_no_shadow);
	tcase_add_test(tc, test_pool_too_small_for_an_instruction_is_diagnosed);
	tcase_add_test(tc, test_faults_raw_transcript_on_npt_is_kept);
	suite_add_tcase(s, tc);
	tc = tcase_create("adversary");
	tcase_set_timeout(tc, 300);
	tcase_add_temp_dir(tc);
	tcase_add_loop_test(tc, test_adversary_is_contained, 0,
			    (int)(sizeof(advs) / sizeof(advs[0])));
	tcase_add_test(tc, test_pool_exhaustion_is_served);
	tcase_add_loop_test(tc, test_mb_adversary_is_contained, 0,
			    (int)(sizeof(mb_advs) / sizeof(mb_advs[0])));
	suite_add_tcase(s, tc);
	tc = tcase_create("trace");
	tcase_set_timeout(tc, 300);
	tcase_add_temp_dir(tc);
	tcase_add_loop_test(tc, test_trace_is_the_same_with_the_monitor_fill, 0, ntraced());
	tcase_add_loop_test(tc, test_trace_parses_matches_schema_and_stats, 0, 2 * ntraced());
	tcase_add_test(tc, test_trace_of_hello_starts_with_only_the_hypervisor_entry);
	tcase_add_test(tc, test_trace_counts_evictions);
	tcase_add_test(tc, test_trace_survives_sigterm);
	tcase_add_test(tc, test_trace_survives_timeout);
	tcase_add_test(tc, test_trace_write_error_ends_the_run_with_73);
	tcase_add_test(tc, test_trace_summary_reads_a_real_trace);
	tcase_add_test(tc, test_trace_plot_draws_a_real_trace);
	suite_add_tcase(s, tc);
	return s;
}
