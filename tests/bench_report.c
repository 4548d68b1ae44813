/* bench_report: the plan and the report of `make bench`.
 *
 *   bench_report plan IMAGE           one line per run: ID VALGRIND ARGS...
 *   bench_report report DIR OUT.json  read DIR/ID.{rc,json,out,cg.2}, print
 *                                     the tables, write OUT.json
 *
 * scripts/bench-workloads runs the plan inside one scripts/with-kvm session:
 * `shadowvm run --stats=DIR/ID.json ARGS > DIR/ID.out`, its status in
 * DIR/ID.rc, under callgrind when VALGRIND is 1.  Every workload runs under
 * each configuration twice, measured and dry (the set-up alone); the
 * difference of the two runs' counters is the measured phase's own.  The
 * --stats files are read with json-c.  Exit status: 0, or 1 when a run is
 * missing, failed, or printed a transcript that differs from --paging=hw's.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "util.h"

struct workload {
	const char *name;
	const char *args;    /* the measured and dry runs */
	const char *cg_args; /* the callgrind runs: smaller, valgrind is slow */
};

/* Sized for about 2-3 minutes of the whole plan under the nested runner. */
static const struct workload workloads[] = {
	{ "firsttouch", "pages=4096 rounds=2", "pages=1024 rounds=1" },
	{ "firsttouch_a", "pages=4096 rounds=2", "pages=1024 rounds=1" },
	{ "retouch", "pages=4096 rounds=4", "pages=1024 rounds=2" },
	{ "pingpong", "pages=16 procs=8 rounds=16", "pages=16 procs=8 rounds=4" },
	{ "fork", "pages=1024 rounds=2", "pages=256 rounds=1" },
	{ "huge", "pages=4096 rounds=2", "pages=2048 rounds=1" },
};
#define NWORK (sizeof(workloads) / sizeof(workloads[0]))

/* npt0: run after the plan's "@npt0" line, which has scripts/bench-workloads
 * reload kvm-amd with npt=0 inside the same VM: --paging=hw is then KVM's
 * own shadow MMU, the peer to beat. */
struct config {
	const char *name;
	const char *opts;
	bool callgrind;
	bool npt0;
};

static const struct config configs[] = {
	{ "hw", "--paging=hw", false, false },
	{ "none", "--paging=shadow --fill=vmm --shadow-opts=none", true, false },
	{ "cache", "--paging=shadow --fill=vmm --shadow-opts=cache", false, false },
	{ "prefetch", "--paging=shadow --fill=vmm --shadow-opts=prefetch", false, false },
	{ "huge", "--paging=shadow --fill=vmm --shadow-opts=huge", false, false },
	{ "all", "--paging=shadow --fill=vmm --shadow-opts=all", true, false },
	{ "mon-none", "--paging=shadow --fill=monitor --shadow-opts=none", false, false },
	{ "mon-all", "--paging=shadow --fill=monitor --shadow-opts=all", false, false },
	{ "kvm-shadow", "--paging=hw", false, true },
	{ "mon-all-npt0", "--paging=shadow --fill=monitor --shadow-opts=all", false, true },
};
#define NCONF (sizeof(configs) / sizeof(configs[0]))
#define BASE 1     /* the baseline column: none */
#define OPT 5      /* the optimized column: all, filled by the VMM */
#define MON_NONE 6 /* the fill monitor */
#define MON 7
#define KVM 8  /* KVM's shadow MMU */
#define MON0 9 /* the fill monitor on npt=0 */

/* The --stats counters the report subtracts: the KVM exits, then every one
 * of vmm/trace/counters.h's table (pages_peak, a high-water mark, is reported
 * apart, not subtracted). */
#define C_EXITS 0
#define C(name) (1 + COUNTER_##name)
#define NCOUNT (1 + COUNTER_N)

static const char *count_name(size_t i)
{
	return i == C_EXITS ? "exits" : counter_name((enum counter)(i - 1));
}

static const char *count_path(size_t i)
{
	return i == C_EXITS ? "exits.total" : counter_path((enum counter)(i - 1));
}

struct run {
	bool ok;
	int64_t c[NCOUNT];
	uint64_t units, cycles;
	char *transcript; /* the console without the cycles line */
};

struct cell {
	struct run run, dry;
	int64_t d[NCOUNT]; /* run - dry */
	bool ok;
};

struct cg {
	bool ok;
	uint64_t ir;
	int64_t fills, hidden, leaves; /* leaves: fills + prefetched */
	char why[600];
};

static struct cell cells[NWORK][NCONF];
static struct cg cgs[NWORK][NCONF];
static bool failed;

static void complain(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	failed = true;
}

/* ---- the plan ---- */

static void plan_line(const struct workload *w, const struct config *c, const char *kind, bool vg,
		      const char *args, int dry, const char *image)
{
	printf("%s.%s.%s %d %s %s -- case=%s %s dry=%d\n", w->name, c->name, kind, vg, c->opts,
	       image, w->name, args, dry);
}

static void plan_phase(const char *image, bool npt0)
{
	for (size_t w = 0; w < NWORK; w++)
		for (size_t c = 0; c < NCONF; c++) {
			if (configs[c].npt0 != npt0)
				continue;
			plan_line(&workloads[w], &configs[c], "run", false, workloads[w].args, 0,
				  image);
			plan_line(&workloads[w], &configs[c], "dry", false, workloads[w].args, 1,
				  image);
		}
}

static int plan(const char *image)
{
	plan_phase(image, false);
	for (size_t w = 0; w < NWORK; w++)
		for (size_t c = 0; c < NCONF; c++) {
			if (!configs[c].callgrind)
				continue;
			plan_line(&workloads[w], &configs[c], "cg", true, workloads[w].cg_args, 0,
				  image);
			plan_line(&workloads[w], &configs[c], "cgdry", false, workloads[w].cg_args,
				  1, image);
		}
	printf("@npt0\n");
	plan_phase(image, true);
	return 0;
}

/* ---- reading one run ---- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	if (!f)
		return NULL;
	FILE *m = open_memstream(&buf, &len);
	int ch;

	while (m && (ch = fgetc(f)) != EOF)
		fputc(ch, m);
	fclose(f);
	if (m)
		fclose(m);
	return buf;
}

static bool read_stats(const char *dir, const char *id, struct run *r)
{
	char path[512];
	struct json_object *o, *st;

	snprintf(path, sizeof(path), "%s/%s.json", dir, id);
	o = json_object_from_file(path);
	if (!o) {
		complain("%s: %s", path, json_util_get_last_err());
		return false;
	}
	if (!json_object_object_get_ex(o, "status", &st) || json_object_get_int(st) != 0) {
		complain("%s: the run ended with status %d (see %s/%s.err)", id,
			 st ? json_object_get_int(st) : -1, dir, id);
		json_object_put(o);
		return false;
	}
	for (size_t i = 0; i < NCOUNT; i++)
		if (!json_path_int(o, count_path(i), &r->c[i]))
			r->c[i] = 0; /* an older --stats */
	json_object_put(o);
	return true;
}

/* The start of the line that begins with `prefix`, or NULL. */
static char *find_line(char *text, const char *prefix)
{
	size_t n = strlen(prefix);

	for (char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, prefix, n))
			return p;
	return NULL;
}

/* Parse the guest's "units=" and "cycles=" and keep the transcript without
 * the cycles line, the one line that may differ between paging modes. */
static bool read_transcript(const char *dir, const char *id, struct run *r)
{
	char path[512], *text, *units, *cyc, *next;

	snprintf(path, sizeof(path), "%s/%s.out", dir, id);
	text = slurp(path);
	if (!text) {
		complain("%s: %s", path, strerror(errno));
		return false;
	}
	units = find_line(text, "bench: units=");
	cyc = find_line(text, "cycles=");
	if (!units || !cyc) {
		complain("%s: no \"bench: units=\" or \"cycles=\" line", path);
		free(text);
		return false;
	}
	r->units = strtoull(units + 13, NULL, 10);
	r->cycles = strtoull(cyc + 7, NULL, 10);
	next = strchr(cyc, '\n');
	next = next ? next + 1 : cyc + strlen(cyc);
	memmove(cyc, next, strlen(next) + 1);
	r->transcript = text;
	return true;
}

static bool read_rc(const char *dir, const char *id)
{
	char path[512];
	FILE *f;
	int rc = -1;

	snprintf(path, sizeof(path), "%s/%s.rc", dir, id);
	f = fopen(path, "r");
	if (!f) {
		complain("%s: the run did not happen (no %s)", id, path);
		return false;
	}
	if (fscanf(f, "%d", &rc) != 1)
		rc = -1;
	fclose(f);
	if (rc != 0)
		complain("%s: shadowvm exited with status %d (see %s/%s.err)", id, rc, dir, id);
	return rc == 0;
}

static bool read_run(const char *dir, const char *id, struct run *r)
{
	memset(r, 0, sizeof(*r));
	r->ok = read_rc(dir, id) && read_stats(dir, id, r) && read_transcript(dir, id, r);
	return r->ok;
}

/* ---- the cells: a workload under a configuration ---- */

static void read_cell(const char *dir, size_t w, size_t c)
{
	struct cell *x = &cells[w][c];
	char id[128];

	snprintf(id, sizeof(id), "%s.%s.run", workloads[w].name, configs[c].name);
	read_run(dir, id, &x->run);
	snprintf(id, sizeof(id), "%s.%s.dry", workloads[w].name, configs[c].name);
	read_run(dir, id, &x->dry);
	x->ok = x->run.ok && x->dry.ok && x->run.units > 0;
	for (size_t i = 0; x->ok && i < NCOUNT; i++)
		x->d[i] = x->run.c[i] - x->dry.c[i];
}

/* Every configuration must print what --paging=hw printed, cycles aside. */
static bool same_transcripts(size_t w)
{
	const struct cell *hw = &cells[w][0];
	bool same = true;

	for (size_t c = 1; c < NCONF; c++) {
		const struct cell *x = &cells[w][c];

		if (!x->ok || !hw->ok)
			continue;
		if (strcmp(x->run.transcript, hw->run.transcript) ||
		    strcmp(x->dry.transcript, hw->dry.transcript)) {
			complain("%s: transcript under %s differs from hw:\n--- hw\n%s--- %s\n%s",
				 workloads[w].name, configs[c].name, hw->run.transcript,
				 configs[c].name, x->run.transcript);
			same = false;
		}
	}
	return same;
}

/* Callgrind's Ir inside shadow_fault during the measured phase: the second
 * dump, cut by the guest's port-0x80 marks (--dump-before=post_pio). */
static void read_cg(const char *dir, size_t w, size_t c)
{
	struct cg *g = &cgs[w][c];
	char path[512], id[128], *text, *p;
	struct run run, dry;

	snprintf(path, sizeof(path), "%s/%s.%s.cg.callgrind.2", dir, workloads[w].name,
		 configs[c].name);
	text = slurp(path);
	p = text ? strstr(text, "\ntotals: ") : NULL;
	if (!p) {
		snprintf(g->why, sizeof(g->why), "no phase dump %s (see the .err next to it)",
			 path);
		free(text);
		return;
	}
	g->ir = strtoull(p + 9, NULL, 10);
	free(text);
	snprintf(id, sizeof(id), "%s.%s.cg", workloads[w].name, configs[c].name);
	if (!read_run(dir, id, &run))
		return;
	snprintf(id, sizeof(id), "%s.%s.cgdry", workloads[w].name, configs[c].name);
	if (read_run(dir, id, &dry)) {
		g->fills = run.c[C(fills_1)] + run.c[C(fills_2)] + run.c[C(fills_3)] -
			   (dry.c[C(fills_1)] + dry.c[C(fills_2)] + dry.c[C(fills_3)]);
		g->hidden = run.c[C(hidden_faults)] - dry.c[C(hidden_faults)];
		g->leaves = g->fills + run.c[C(prefetched)] - dry.c[C(prefetched)];
		g->ok = true;
	}
	free(run.transcript);
	free(dry.transcript);
}

/* ---- the tables ---- */

static double per(int64_t n, uint64_t units)
{
	return units ? (double)n / (double)units : 0;
}

static int64_t fills(const struct cell *x)
{
	return x->d[C(fills_1)] + x->d[C(fills_2)] + x->d[C(fills_3)];
}

/* Exits for page faults, hidden or genuine: the monitor's traps that were
 * neither an emulated instruction nor a syscall (the bench guest takes no
 * other exception). */
static int64_t pf_traps(const struct cell *x)
{
	return x->d[C(traps)] - x->d[C(emulated)] - x->d[C(syscalls)];
}

static double ratio(size_t w, size_t c)
{
	const struct cell *hw = &cells[w][0], *x = &cells[w][c];

	return hw->ok && x->ok && hw->run.cycles ? (double)x->run.cycles / (double)hw->run.cycles
						 : 0;
}

static void print_half(size_t w, size_t c)
{
	const struct cell *x = &cells[w][c];
	uint64_t u = x->run.units;

	if (!x->ok) {
		printf(" | %47s", "(failed)");
		return;
	}
	printf(" | %7.4f %6.4f %6.4f %6.4f %6.4f %6.4f %6.1f", per(x->d[C_EXITS], u),
	       per(pf_traps(x), u), per(x->d[C(emulated)], u), per(x->d[C(reflected)], u),
	       per(x->d[C(unprotects)], u), per(fills(x), u), ratio(w, c));
}

static void print_main(void)
{
	printf("\nmake bench: per page of the measured phase (run minus dry run); "
	       "x hw = guest cycles shadow / hw\n");
	printf("%-13s %6s | %-47s | %-47s\n", "", "", "baseline (--shadow-opts=none)",
	       "optimized (--shadow-opts=all)");
	printf("%-13s %6s", "workload", "pages");
	for (int i = 0; i < 2; i++)
		printf(" | %7s %6s %6s %6s %6s %6s %6s", "exits", "pf", "emul", "refl", "unprot",
		       "fills", "x hw");
	printf("\n");
	for (size_t w = 0; w < NWORK; w++) {
		printf("%-13s %6" PRIu64, workloads[w].name, cells[w][BASE].run.units);
		print_half(w, BASE);
		print_half(w, OPT);
		printf("\n");
	}
}

/* One cell of the configuration tables: exits per page (x hw guest time),
 * right-aligned in `width`, the ratio with `prec` decimals. */
static void print_exits_cell(size_t w, size_t c, int width, int prec)
{
	const struct cell *x = &cells[w][c];
	char buf[48];

	if (x->ok)
		snprintf(buf, sizeof(buf), "%.4f (%.*fx)", per(x->d[C_EXITS], x->run.units), prec,
			 ratio(w, c));
	printf(" %*s", width, x->ok ? buf : "(failed)");
}

static void print_configs(void)
{
	printf("\nexits per page (x hw guest-time ratio) by --shadow-opts\n%-13s", "workload");
	for (size_t c = 0; c < NCONF; c++)
		printf(" %17s", configs[c].name);
	printf("\n");
	for (size_t w = 0; w < NWORK; w++) {
		printf("%-13s", workloads[w].name);
		for (size_t c = 0; c < NCONF; c++) {
			print_exits_cell(w, c, 17, 1);
		}
		printf("\n");
	}
}

static double ir_per(const struct cg *g, int64_t n)
{
	return n > 0 ? (double)g->ir / (double)n : 0;
}

static void print_cg_half(const struct cg *g)
{
	if (!g->ok)
		printf(" | %26s", "(no profile)");
	else
		printf(" | %8.0f %8.0f %8.0f", ir_per(g, g->fills), ir_per(g, g->hidden),
		       ir_per(g, g->leaves));
}

static void print_cg(void)
{
	printf("\nVMM instructions inside shadow_fault (callgrind), measured phase, per fill, "
	       "per shadow_fault call, per leaf installed (fills + prefetched)\n");
	printf("%-13s %-27s | %-26s | %-26s\n", "", "", "none", "all");
	printf("%-13s %-27s", "workload", "args");
	for (int i = 0; i < 2; i++)
		printf(" | %8s %8s %8s", "Ir/fill", "Ir/fault", "Ir/leaf");
	printf("\n");
	for (size_t w = 0; w < NWORK; w++) {
		printf("%-13s %-27s", workloads[w].name, workloads[w].cg_args);
		print_cg_half(&cgs[w][BASE]);
		print_cg_half(&cgs[w][OPT]);
		printf("\n");
	}
	for (size_t w = 0; w < NWORK; w++)
		for (size_t c = 0; c < NCONF; c++)
			if (configs[c].callgrind && !cgs[w][c].ok && cgs[w][c].why[0])
				printf("  %s/%s: %s\n", workloads[w].name, configs[c].name,
				       cgs[w][c].why);
}

/* ---- the targets ---- */

struct target {
	const char *name, *unit;
	double value, limit;
	bool known;
};

enum { W_FIRSTTOUCH, W_FIRSTTOUCH_A, W_RETOUCH, W_PINGPONG, W_FORK, W_HUGE };

static struct target targets[16];
static size_t ntargets;

static void target(const char *name, const char *unit, double value, double limit, bool known)
{
	targets[ntargets++] = (struct target){ name, unit, value, limit, known };
}

/* Guest time of configuration c over KVM's shadow MMU's, workload w. */
static double vs_kvm(size_t w, size_t c)
{
	const struct cell *k = &cells[w][KVM], *x = &cells[w][c];

	return k->ok && x->ok && k->run.cycles ? (double)x->run.cycles / (double)k->run.cycles : 0;
}

static void exits_target(const char *name, size_t w, size_t c, double limit)
{
	const struct cell *x = &cells[w][c];

	target(name, "exits/page", per(x->d[C_EXITS], x->run.units), limit, x->ok);
}

static void kvm_target(const char *name, size_t w, double limit)
{
	target(name, "x kvm-shadow", vs_kvm(w, MON), limit, cells[w][MON].ok && cells[w][KVM].ok);
}

static void compute_targets(void)
{
	const struct cg *g = &cgs[W_FIRSTTOUCH][OPT];

	ntargets = 0;
	/* issue 8 */
	exits_target("retouch exits/page (all)", W_RETOUCH, OPT, 0.01);
	exits_target("firsttouch_a exits/page (all)", W_FIRSTTOUCH_A, OPT, 0.125);
	target("firsttouch VMM Ir/fill (all)", "Ir/fill", ir_per(g, g->fills), 300,
	       g->ok && g->fills);
	/* issue 14: the fill monitor, every option */
	exits_target("firsttouch exits/page (mon-all)", W_FIRSTTOUCH, MON, 0.01);
	exits_target("firsttouch_a exits/page (mon-all)", W_FIRSTTOUCH_A, MON, 0.01);
	exits_target("retouch exits/page (mon-all)", W_RETOUCH, MON, 0.01);
	exits_target("pingpong exits/page (mon-all)", W_PINGPONG, MON, 0.01);
	exits_target("huge exits/page (mon-all)", W_HUGE, MON, 0.01);
	kvm_target("firsttouch time (mon-all)", W_FIRSTTOUCH, 1.0);
	kvm_target("huge time (mon-all)", W_HUGE, 1.0);
	kvm_target("fork time (mon-all)", W_FORK, 1.0);
	kvm_target("retouch time (mon-all)", W_RETOUCH, 1.2);
	kvm_target("pingpong time (mon-all)", W_PINGPONG, 1.2);
}

/* The issue-14 table: the peers side by side, each as exits per page and
 * guest time over hw's. */
static void print_peers(void)
{
	static const size_t cols[] = { 0, KVM, OPT, MON, MON0 };

	printf("\nthe peers, every option: exits per page (x hw guest-time ratio); "
	       "kvm-shadow = --paging=hw on npt=0, KVM's own shadow MMU; "
	       "mon-all-npt0 = --fill=monitor on npt=0\n%-13s",
	       "workload");
	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
		printf(" %18s", configs[cols[i]].name);
	printf(" %12s\n", "mon/kvm");
	for (size_t w = 0; w < NWORK; w++) {
		printf("%-13s", workloads[w].name);
		for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
			print_exits_cell(w, cols[i], 18, 2);
		}
		printf(" %11.2fx\n", vs_kvm(w, MON));
	}
}

static void print_targets(void)
{
	printf("\ntargets (issues 8 and 14)\n");
	for (size_t i = 0; i < ntargets; i++) {
		const struct target *t = &targets[i];

		if (!t->known)
			printf("  %-36s unknown (the run failed)\n", t->name);
		else
			printf("  %-36s %10.4f <= %-5g %-13s %s\n", t->name, t->value, t->limit,
			       t->unit, t->value <= t->limit ? "met" : "NOT MET");
	}
}

/* ---- build/bench.json ---- */

static void json_num(FILE *f, double v, bool known)
{
	if (known)
		fprintf(f, "%.6g", v);
	else
		fputs("null", f);
}

static void json_cell(FILE *f, size_t w, size_t c)
{
	const struct cell *x = &cells[w][c];

	fprintf(f, "\"%s\":{\"ok\":%s", configs[c].name, x->ok ? "true" : "false");
	if (x->ok) {
		fprintf(f, ",\"cycles\":%" PRIu64 ",\"dry_cycles\":%" PRIu64 ",\"ratio_hw\":",
			x->run.cycles, x->dry.cycles);
		json_num(f, ratio(w, c), cells[w][0].ok && cells[w][0].run.cycles);
		fprintf(f, ",\"pages_peak\":%" PRId64 ",\"delta\":{", x->run.c[C(pages_peak)]);
		for (size_t i = 0; i < NCOUNT; i++)
			if (i != C(pages_peak))
				fprintf(f, "%s\"%s\":%" PRId64, i ? "," : "", count_name(i),
					x->d[i]);
		fprintf(f, ",\"fills\":%" PRId64 ",\"pf_traps\":%" PRId64 "},\"per_page\":{",
			fills(x), pf_traps(x));
		for (size_t i = 0; i < NCOUNT; i++)
			if (i != C(pages_peak))
				fprintf(f, "%s\"%s\":%.6g", i ? "," : "", count_name(i),
					per(x->d[i], x->run.units));
		fprintf(f, ",\"fills\":%.6g,\"pf_traps\":%.6g}", per(fills(x), x->run.units),
			per(pf_traps(x), x->run.units));
	}
	fputc('}', f);
}

static void json_cg(FILE *f, size_t w)
{
	fprintf(f, ",\"callgrind\":{\"args\":\"%s\"", workloads[w].cg_args);
	for (size_t c = 0; c < NCONF; c++) {
		const struct cg *g = &cgs[w][c];

		if (!configs[c].callgrind)
			continue;
		fprintf(f, ",\"%s\":{\"ok\":%s", configs[c].name, g->ok ? "true" : "false");
		if (g->ok) {
			fprintf(f,
				",\"ir\":%" PRIu64 ",\"fills\":%" PRId64
				",\"hidden_faults\":%" PRId64 ",\"leaves\":%" PRId64
				",\"ir_per_fill\":",
				g->ir, g->fills, g->hidden, g->leaves);
			json_num(f, ir_per(g, g->fills), g->fills > 0);
			fputs(",\"ir_per_hidden_fault\":", f);
			json_num(f, ir_per(g, g->hidden), g->hidden > 0);
			fputs(",\"ir_per_leaf\":", f);
			json_num(f, ir_per(g, g->leaves), g->leaves > 0);
		}
		fputc('}', f);
	}
	fputc('}', f);
}

/* The four columns of the peers' table, by the names issue 14 gives them. */
static void json_peers(FILE *f, size_t w)
{
	static const struct {
		const char *name;
		size_t c;
	} peers[] = { { "hw", 0 }, { "kvm-shadow", KVM }, { "vmm", OPT }, { "monitor", MON } };

	fputs(",\"peers\":{", f);
	for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++) {
		const struct cell *x = &cells[w][peers[i].c];

		fprintf(f, "%s\"%s\":{\"config\":\"%s\",\"exits_per_page\":", i ? "," : "",
			peers[i].name, configs[peers[i].c].name);
		json_num(f, per(x->d[C_EXITS], x->run.units), x->ok);
		fputs(",\"ratio_hw\":", f);
		json_num(f, ratio(w, peers[i].c), x->ok && cells[w][0].ok);
		fputs(",\"ratio_kvm_shadow\":", f);
		json_num(f, vs_kvm(w, peers[i].c), x->ok && cells[w][KVM].ok);
		fputc('}', f);
	}
	fputc('}', f);
}

static void json_workload(FILE *f, size_t w, bool same)
{
	fprintf(f,
		"{\"name\":\"%s\",\"args\":\"%s\",\"pages\":%" PRIu64
		",\"transcripts_match\":%s,\"configs\":{",
		workloads[w].name, workloads[w].args, cells[w][0].run.units,
		same ? "true" : "false");
	for (size_t c = 0; c < NCONF; c++) {
		if (c)
			fputc(',', f);
		json_cell(f, w, c);
	}
	fputc('}', f);
	json_peers(f, w);
	json_cg(f, w);
	fputc('}', f);
}

static int write_json(const char *path, const bool *same)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		complain("%s: %s", path, strerror(errno));
		return -1;
	}
	fprintf(f, "{\"schema\":1,\"baseline\":\"%s\",\"optimized\":\"%s\",\"configs\":{",
		configs[BASE].name, configs[OPT].name);
	for (size_t c = 0; c < NCONF; c++)
		fprintf(f, "%s\"%s\":\"%s\"", c ? "," : "", configs[c].name, configs[c].opts);
	fputs("},\"workloads\":[", f);
	for (size_t w = 0; w < NWORK; w++) {
		if (w)
			fputc(',', f);
		json_workload(f, w, same[w]);
	}
	fputs("],\"targets\":[", f);
	for (size_t i = 0; i < ntargets; i++) {
		fprintf(f,
			"%s{\"name\":\"%s\",\"unit\":\"%s\",\"limit\":%g,\"value\":", i ? "," : "",
			targets[i].name, targets[i].unit, targets[i].limit);
		json_num(f, targets[i].value, targets[i].known);
		fprintf(f, ",\"met\":%s}",
			targets[i].known && targets[i].value <= targets[i].limit ? "true"
										 : "false");
	}
	fputs("]}\n", f);
	if (fclose(f) != 0) {
		complain("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int report(const char *dir, const char *out)
{
	bool same[NWORK];

	for (size_t w = 0; w < NWORK; w++) {
		for (size_t c = 0; c < NCONF; c++) {
			read_cell(dir, w, c);
			if (configs[c].callgrind)
				read_cg(dir, w, c);
		}
		same[w] = same_transcripts(w);
	}
	compute_targets();
	print_main();
	print_configs();
	print_peers();
	print_cg();
	print_targets();
	if (write_json(out, same) == 0)
		printf("\nwritten: %s\n", out);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "plan"))
		return plan(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "report"))
		return report(argv[2], argv[3]);
	fprintf(stderr, "usage: bench_report plan IMAGE | bench_report report DIR OUT.json\n");
	return 64;
}
