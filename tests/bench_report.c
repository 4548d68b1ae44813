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

struct config {
	const char *name;
	const char *opts;
	bool callgrind;
};

static const struct config configs[] = {
	{ "hw", "--paging=hw", false },
	{ "none", "--paging=shadow --shadow-opts=none", true },
	{ "cache", "--paging=shadow --shadow-opts=cache", false },
	{ "prefetch", "--paging=shadow --shadow-opts=prefetch", false },
	{ "huge", "--paging=shadow --shadow-opts=huge", false },
	{ "all", "--paging=shadow --shadow-opts=all", true },
};
#define NCONF (sizeof(configs) / sizeof(configs[0]))
#define BASE 1 /* the baseline column: none */
#define OPT 5  /* the optimized column: all */

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

static int plan(const char *image)
{
	for (size_t w = 0; w < NWORK; w++)
		for (size_t c = 0; c < NCONF; c++) {
			plan_line(&workloads[w], &configs[c], "run", false, workloads[w].args, 0,
				  image);
			plan_line(&workloads[w], &configs[c], "dry", false, workloads[w].args, 1,
				  image);
		}
	for (size_t w = 0; w < NWORK; w++)
		for (size_t c = 0; c < NCONF; c++) {
			if (!configs[c].callgrind)
				continue;
			plan_line(&workloads[w], &configs[c], "cg", true, workloads[w].cg_args, 0,
				  image);
			plan_line(&workloads[w], &configs[c], "cgdry", false, workloads[w].cg_args,
				  1, image);
		}
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

static void print_configs(void)
{
	printf("\nexits per page (x hw guest-time ratio) by --shadow-opts\n%-13s", "workload");
	for (size_t c = 0; c < NCONF; c++)
		printf(" %17s", configs[c].name);
	printf("\n");
	for (size_t w = 0; w < NWORK; w++) {
		printf("%-13s", workloads[w].name);
		for (size_t c = 0; c < NCONF; c++) {
			const struct cell *x = &cells[w][c];
			char buf[32];

			if (x->ok)
				snprintf(buf, sizeof(buf), "%.4f (%.1fx)",
					 per(x->d[C_EXITS], x->run.units), ratio(w, c));
			printf(" %17s", x->ok ? buf : "(failed)");
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

static struct target targets[3];

static void compute_targets(void)
{
	const struct cell *re = &cells[2][OPT], *fa = &cells[1][OPT];
	const struct cg *g = &cgs[0][OPT];

	targets[0] = (struct target){ "retouch exits/page (all)", "exits/page",
				      per(re->d[C_EXITS], re->run.units), 0.01, re->ok };
	targets[1] = (struct target){ "firsttouch_a exits/page (all)", "exits/page",
				      per(fa->d[C_EXITS], fa->run.units), 0.125, fa->ok };
	targets[2] = (struct target){ "firsttouch VMM Ir/fill (all)", "Ir/fill",
				      ir_per(g, g->fills), 300, g->ok && g->fills };
}

static void print_targets(void)
{
	printf("\ntargets (issue 8)\n");
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		const struct target *t = &targets[i];

		if (!t->known)
			printf("  %-32s unknown (the run failed)\n", t->name);
		else
			printf("  %-32s %10.4f <= %g  %s\n", t->name, t->value, t->limit,
			       t->value <= t->limit ? "met" : "NOT MET");
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
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
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
