#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "shadowvm_abi.h"
#include "size.h"
#include "status.h"
#include "shadow.h"
#include "trace.h"

void cli_usage(FILE *out)
{
	fprintf(out,
		"usage: shadowvm run [options] IMAGE [-- GUEST-ARGS...]\n"
		"       shadowvm check [-m SIZE] IMAGE\n"
		"       shadowvm trace summary FILE\n"
		"       shadowvm trace plot FILE -o OUT [--x=ns|seq] [--title=TEXT]\n"
		"                           [--width=N] [--height=N]\n"
		"       shadowvm kvm [--json | --brief]\n"
		"       shadowvm --help | --version\n"
		"\n"
		"Run an ELF64 x86-64 guest image (ABI v%u, include/shadowvm_abi.h) on KVM, or\n"
		"an ELF32/ELF64 kernel with a Multiboot v1 header (include/multiboot.h).\n"
		"\n"
		"run options:\n"
		"  -m, --mem SIZE        guest RAM; K/M/G suffix, MiB if none (default 64M,\n"
		"                        2M..4G, a multiple of 2 MiB)\n"
		"      --paging=MODE     shadow: the guest kernel runs deprivileged at CPL1 on\n"
		"                        shadow page tables kept by shadowvm (the default);\n"
		"                        hw: the guest at CPL0 on KVM's own MMU (the baseline)\n"
		"      --shadow-pool N   shadow pages in the pool (default %u, %u..%u)\n"
		"      --shadow-opts L   shadow optimizations, comma-separated: cache (shadow\n"
		"                        tables kept across CR3 writes, guest tables write-\n"
		"                        protected), prefetch (neighbours whose A bit is set),\n"
		"                        huge (2 MiB shadow leaves); all (the default) or none\n"
		"      --fill=WHERE      monitor (the default): hidden faults are resolved\n"
		"                        inside the VM by the monitor, without an exit;\n"
		"                        vmm: every hidden fault exits to shadowvm\n"
		"      --lapic=WHO       Multiboot images under --fill=monitor: monitor (the\n"
		"                        default): the monitor serves the guest kernel's\n"
		"                        local-APIC loads and stores inside the VM, ID reads\n"
		"                        without an exit; kvm: every access goes to KVM\n"
		"      --dump-shadow     print the shadow root's entries at boot and at exit\n"
		"      --check-invariants  after every trap, verify the shadow's safety\n"
		"                        invariants (status 70 with the broken entry if not)\n"
		"  -p, --cmdline STR     guest command line; GUEST-ARGS after -- are appended\n"
		"      --module FILE[,STRING]  Multiboot images only: load FILE as a boot\n"
		"                        module, page-aligned above the kernel, with STRING\n"
		"                        as its string (default FILE); repeat, at most %u\n"
		"      --disk FILE[,ro][,master|,slave]  an IDE disk on the primary channel\n"
		"                        (ports 0x1f0, IRQ 14); the first is the master\n"
		"                        unless a unit is named; ro refuses writes\n"
		"      --no-mptable      Multiboot images only: no MP table in the BIOS area\n"
		"      --timeout SECS    stop the guest after SECS seconds (status 124)\n"
		"      --trace FILE      write every event as JSON Lines to FILE (- = stderr)\n"
		"      --trace-events L  only the events matching L, comma-separated globs\n"
		"                        (shadow_init fill ad_set guest_fault cr3 invlpg evict\n"
		"                        flush emulate exit prefetch unprotect reflect)\n"
		"      --trace-format F  json (the default) or text: one human line an event\n"
		"      --stats[=FILE]    at exit, one JSON object of counters (default stderr)\n"
		"      --ignore-backend  run even where `shadowvm kvm` says this paging mode\n"
		"                        cannot run (an experiment: expect wrong results)\n"
		"  -v, --verbose         more diagnostics (repeat for debug)\n"
		"  -q, --quiet           only errors\n"
		"\n"
		"check validates IMAGE for a guest of SIZE bytes of RAM without running it.\n"
		"trace summary reads a --trace file: counts per event, the most-faulting pages.\n"
		"trace plot draws one (PNG or SVG by OUT's extension): the address space over\n"
		"time (a mark per fill, prefetch, guest fault, unprotect at its GVA; cr3, flush,\n"
		"evict as rules), the shadow pool in use, fills and exits per bin.  --x=seq\n"
		"puts the records in event order instead of time; --width %u..%u (default %u),\n"
		"--height %u..%u (default %u) pixels; --title replaces the file name on top.\n"
		"kvm prints what serves /dev/kvm (kvm_intel, kvm_amd, kvm_pvm; EPT/NPT; the\n"
		"CPU features offered) and whether each paging mode runs on it; status 0 when\n"
		"both do, else 69.  run refuses a mode that cannot run with 69.\n"
		"\n"
		"exit status: the guest's exit-port value (0..%u), or\n"
		"  64 usage error             65 image rejected        66 image unreadable\n"
		"  69 KVM unavailable or unfit for the paging mode (see shadowvm kvm)\n"
		"  70 internal VMM error       71 guest crash           72 guest halted forever\n"
		"  73 trace not written        74 exit value out of range\n"
		"  75 guest broke the ABI      78 quit from the console (Ctrl-A X)\n"
		"  124 timeout                 128+N killed by signal N\n"
		"  A Multiboot guest's write of N to port 0xf4 ends it with ((N << 1) | 1) & 0xff,\n"
		"  as QEMU's isa-debug-exit does.\n"
		"\n"
		"console: COM1 is stdout; for Multiboot images stdin is its receive side (IRQ 4).\n"
		"On a terminal it goes raw while the guest runs, as qemu -nographic: Ctrl-A X\n"
		"quits (status 78), Ctrl-A Ctrl-A sends Ctrl-A, Ctrl-A H lists the keys.\n",
		SHADOWVM_ABI_VERSION, CLI_POOL_DEFAULT, CLI_POOL_MIN, CLI_POOL_MAX,
		BOOT_MODULES_MAX, TRACE_PLOT_WIDTH_MIN, TRACE_PLOT_SIZE_MAX, TRACE_PLOT_WIDTH,
		TRACE_PLOT_HEIGHT_MIN, TRACE_PLOT_SIZE_MAX, TRACE_PLOT_HEIGHT,
		SHADOWVM_ABI_EXIT_MAX);
}

__attribute__((format(printf, 3, 4))) static int usage_err(char *err, size_t errlen,
							   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return VMM_E_USAGE;
}

static int parse_mem(const char *arg, struct options *o, char *err, size_t errlen)
{
	char why[160];

	if (size_parse(arg, &o->mem_size, why, sizeof(why)) != 0)
		return usage_err(err, errlen, "--mem: %s", why);
	if (o->mem_size < SHADOWVM_ABI_RAM_MIN || o->mem_size > SHADOWVM_ABI_RAM_MAX)
		return usage_err(err, errlen, "--mem %s = 0x%llx is outside 0x%llx..0x%llx", arg,
				 (unsigned long long)o->mem_size, SHADOWVM_ABI_RAM_MIN,
				 SHADOWVM_ABI_RAM_MAX);
	if (o->mem_size % (2u << 20))
		return usage_err(err, errlen, "--mem %s = 0x%llx is not a multiple of 2 MiB", arg,
				 (unsigned long long)o->mem_size);
	return 0;
}

static int parse_timeout(const char *arg, struct options *o, char *err, size_t errlen)
{
	char *end;
	double t = strtod(arg, &end);

	if (end == arg || *end || !isfinite(t) || t <= 0 || t > 1e6)
		return usage_err(err, errlen,
				 "--timeout '%s' is not a number of seconds in (0, 1e6]", arg);
	o->timeout = t;
	return 0;
}

static int append_cmdline(struct options *o, const char *s, char *err, size_t errlen)
{
	size_t have = strlen(o->cmdline), add = strlen(s) + (have ? 1 : 0);

	if (have + add + 1 > SHADOWVM_ABI_CMDLINE_MAX)
		return usage_err(err, errlen, "guest command line of %zu bytes exceeds limit %u",
				 have + add + 1, SHADOWVM_ABI_CMDLINE_MAX);
	if (have)
		o->cmdline[have++] = ' ';
	memcpy(o->cmdline + have, s, strlen(s) + 1);
	return 0;
}

/* --module FILE[,STRING] */
static int add_module(struct options *o, const char *arg, char *err, size_t errlen)
{
	const char *comma = strchr(arg, ',');
	size_t len = comma ? (size_t)(comma - arg) : strlen(arg);
	struct boot_module *m = &o->modules[o->nmodules];

	if (o->nmodules == BOOT_MODULES_MAX)
		return usage_err(err, errlen, "--module %s: more than %u modules", arg,
				 BOOT_MODULES_MAX);
	if (len == 0)
		return usage_err(err, errlen, "--module '%s': empty file name", arg);
	if (len >= CLI_MODULE_PATH_MAX)
		return usage_err(err, errlen, "--module: file name of %zu bytes exceeds limit %u",
				 len + 1, CLI_MODULE_PATH_MAX);
	memcpy(o->module_paths[o->nmodules], arg, len);
	o->module_paths[o->nmodules][len] = '\0';
	m->path = o->module_paths[o->nmodules];
	m->string = comma ? comma + 1 : m->path;
	o->nmodules++;
	return 0;
}

/* --disk FILE[,ro][,master|,slave]: without a unit, the first free one */
static int add_disk(struct options *o, const char *arg, char *err, size_t errlen)
{
	const char *comma = strchr(arg, ',');
	size_t len = comma ? (size_t)(comma - arg) : strlen(arg);
	int unit = -1;
	bool ro = false;

	if (len == 0)
		return usage_err(err, errlen, "--disk '%s': empty file name", arg);
	if (len >= CLI_MODULE_PATH_MAX)
		return usage_err(err, errlen, "--disk: file name of %zu bytes exceeds limit %u",
				 len + 1, CLI_MODULE_PATH_MAX);
	for (const char *p = comma; p; p = strchr(p + 1, ',')) {
		size_t n = strcspn(p + 1, ",");
		if (n == 2 && !strncmp(p + 1, "ro", 2))
			ro = true;
		else if (n == 6 && !strncmp(p + 1, "master", 6))
			unit = 0;
		else if (n == 5 && !strncmp(p + 1, "slave", 5))
			unit = 1;
		else
			return usage_err(err, errlen,
					 "--disk '%s': '%.*s' is not one of ro, master, slave", arg,
					 (int)n, p + 1);
	}
	if (unit < 0)
		unit = o->disks[0].path ? 1 : 0;
	if (o->disks[unit].path)
		return usage_err(err, errlen, "--disk %s: the primary %s already has %s", arg,
				 unit ? "slave" : "master", o->disks[unit].path);
	memcpy(o->disk_paths[unit], arg, len);
	o->disk_paths[unit][len] = '\0';
	o->disks[unit].path = o->disk_paths[unit];
	o->disks[unit].ro = ro;
	return 0;
}

enum {
	OPT_PAGING = 256,
	OPT_TIMEOUT,
	OPT_POOL,
	OPT_DUMP_SHADOW,
	OPT_FILL,
	OPT_CHECK_INV,
	OPT_TRACE,
	OPT_TRACE_EVENTS,
	OPT_TRACE_FORMAT,
	OPT_STATS,
	OPT_SHADOW_OPTS,
	OPT_IGNORE_BACKEND,
	OPT_MODULE,
	OPT_DISK,
	OPT_NO_MPTABLE,
	OPT_LAPIC
};

static int parse_trace_format(const char *arg, struct options *o, char *err, size_t errlen)
{
	if (strcmp(arg, "json") && strcmp(arg, "text"))
		return usage_err(err, errlen, "--trace-format '%s' is not a format (json, text)",
				 arg);
	o->trace_text = arg[0] == 't';
	return 0;
}

static int parse_trace_events(const char *arg, struct options *o, char *err, size_t errlen)
{
	return trace_events_parse(arg, &o->trace_events, err, errlen) ? VMM_E_USAGE : 0;
}

static int parse_pool(const char *arg, struct options *o, char *err, size_t errlen)
{
	char *end;
	unsigned long n = strtoul(arg, &end, 10);

	if (end == arg || *end || n < CLI_POOL_MIN || n > CLI_POOL_MAX)
		return usage_err(err, errlen, "--shadow-pool '%s' is not a page count in %u..%u",
				 arg, CLI_POOL_MIN, CLI_POOL_MAX);
	o->pool_pages = (uint32_t)n;
	return 0;
}

static int parse_shadow_opts(const char *arg, struct options *o, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		unsigned bits;
	} names[] = {
		{ "cache", SHADOW_OPT_CACHE },
		{ "prefetch", SHADOW_OPT_PREFETCH },
		{ "huge", SHADOW_OPT_HUGE },
		{ "all", SHADOW_OPT_ALL },
		{ "none", 0 },
	};
	unsigned opts = 0;
	const char *p = arg;

	for (;;) {
		size_t len = strcspn(p, ","), i;

		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strlen(names[i].name) == len && !strncmp(p, names[i].name, len))
				break;
		if (i == sizeof(names) / sizeof(names[0]))
			return usage_err(
				err, errlen,
				"--shadow-opts '%s': '%.*s' is not one of cache, prefetch, huge, all, none",
				arg, (int)len, p);
		opts |= names[i].bits;
		if (!p[len])
			break;
		p += len + 1;
	}
	o->shadow_opts = opts;
	return 0;
}

static int parse_option(int c, const char *arg, struct options *o, char *err, size_t errlen)
{
	switch (c) {
	case 'm': return parse_mem(arg, o, err, errlen);
	case 'p': return append_cmdline(o, arg, err, errlen);
	case 'v': o->verbosity++; return 0;
	case 'q': o->verbosity = LOG_ERR; return 0;
	case OPT_TIMEOUT: return parse_timeout(arg, o, err, errlen);
	case OPT_POOL: return parse_pool(arg, o, err, errlen);
	case OPT_SHADOW_OPTS: return parse_shadow_opts(arg, o, err, errlen);
	case OPT_DUMP_SHADOW: o->dump_shadow = 1; return 0;
	case OPT_CHECK_INV: o->check_invariants = 1; return 0;
	case OPT_TRACE: o->trace = arg; return 0;
	case OPT_TRACE_EVENTS: return parse_trace_events(arg, o, err, errlen);
	case OPT_TRACE_FORMAT: return parse_trace_format(arg, o, err, errlen);
	case OPT_STATS:
		o->stats = 1;
		o->stats_file = arg;
		return 0;
	case OPT_IGNORE_BACKEND: o->ignore_backend = 1; return 0;
	case OPT_MODULE: return add_module(o, arg, err, errlen);
	case OPT_DISK: return add_disk(o, arg, err, errlen);
	case OPT_NO_MPTABLE: o->no_mptable = 1; return 0;
	case OPT_FILL:
		if (strcmp(arg, "monitor") == 0 || strcmp(arg, "vmm") == 0) {
			o->fill = arg[0] == 'm' ? FILL_MONITOR : FILL_VMM;
			return 0;
		}
		return usage_err(err, errlen, "--fill '%s' is not a fill mode (monitor, vmm)", arg);
	case OPT_LAPIC:
		if (strcmp(arg, "monitor") == 0 || strcmp(arg, "kvm") == 0) {
			o->lapic_kvm = arg[0] == 'k';
			return 0;
		}
		return usage_err(err, errlen, "--lapic '%s' is not an APIC path (monitor, kvm)",
				 arg);
	case OPT_PAGING:
		if (strcmp(arg, "hw") == 0 || strcmp(arg, "shadow") == 0) {
			o->paging = arg[0] == 'h' ? PAGING_HW : PAGING_SHADOW;
			return 0;
		}
		return usage_err(err, errlen, "--paging '%s' is not a paging mode (shadow, hw)",
				 arg);
	case 'h': o->command = CLI_HELP; return 0;
	default: return usage_err(err, errlen, "unknown option (see shadowvm --help)");
	}
}

typedef int (*option_fn)(int c, const char *arg, struct options *o, char *err, size_t errlen);

/* getopt_long over argv (argv[0] the command, named `cmd` in errors), each
 * option through fn; stops early at --help.  0 or fn's status. */
static int each_option(int argc, char **argv, const char *shortopts, const struct option *longopts,
		       const char *cmd, option_fn fn, struct options *o, char *err, size_t errlen)
{
	int c, rc;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (c == '?' || c == ':')
			return usage_err(err, errlen,
					 "%s: option '%s' is unknown or lacks its argument", cmd,
					 argv[optind - 1]);
		if ((rc = fn(c, optarg, o, err, errlen)) != 0)
			return rc;
		if (o->command == CLI_HELP)
			return 0;
	}
	return 0;
}

/* option_fn of run and check: check takes only -m, -v and -q. */
static int run_option(int c, const char *arg, struct options *o, char *err, size_t errlen)
{
	int rc = parse_option(c, arg, o, err, errlen);

	if (!rc && o->command == CLI_CHECK && c != 'm' && c != 'v' && c != 'q')
		return usage_err(err, errlen, "check: only -m, -v and -q apply");
	return rc;
}

static int parse_command(int argc, char **argv, struct options *o, char *err, size_t errlen)
{
	static const struct option longopts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "cmdline", required_argument, NULL, 'p' },
		{ "paging", required_argument, NULL, OPT_PAGING },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "shadow-pool", required_argument, NULL, OPT_POOL },
		{ "shadow-opts", required_argument, NULL, OPT_SHADOW_OPTS },
		{ "fill", required_argument, NULL, OPT_FILL },
		{ "lapic", required_argument, NULL, OPT_LAPIC },
		{ "dump-shadow", no_argument, NULL, OPT_DUMP_SHADOW },
		{ "check-invariants", no_argument, NULL, OPT_CHECK_INV },
		{ "trace", required_argument, NULL, OPT_TRACE },
		{ "trace-events", required_argument, NULL, OPT_TRACE_EVENTS },
		{ "trace-format", required_argument, NULL, OPT_TRACE_FORMAT },
		{ "stats", optional_argument, NULL, OPT_STATS },
		{ "ignore-backend", no_argument, NULL, OPT_IGNORE_BACKEND },
		{ "module", required_argument, NULL, OPT_MODULE },
		{ "disk", required_argument, NULL, OPT_DISK },
		{ "no-mptable", no_argument, NULL, OPT_NO_MPTABLE },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int rc;

	if ((rc = each_option(argc, argv, "+m:p:vqh", longopts, argv[0], run_option, o, err,
			      errlen)) != 0 ||
	    o->command == CLI_HELP)
		return rc;
	if (optind >= argc)
		return usage_err(err, errlen, "%s: missing IMAGE (see shadowvm --help)", argv[0]);
	o->image = argv[optind++];
	if (optind < argc && strcmp(argv[optind], "--") == 0)
		optind++;
	else if (optind < argc)
		return usage_err(err, errlen,
				 "unexpected '%s' after IMAGE (guest args go after --)",
				 argv[optind]);
	if (o->command == CLI_CHECK && optind < argc)
		return usage_err(err, errlen, "check: guest args make no sense");
	if (!o->trace && (o->trace_text || o->trace_events != TRACE_ALL_EVENTS))
		return usage_err(err, errlen,
				 "--trace-events and --trace-format need --trace FILE");
	for (; optind < argc; optind++)
		if ((rc = append_cmdline(o, argv[optind], err, errlen)) != 0)
			return rc;
	return 0;
}

static int parse_pixels(const char *opt, const char *arg, unsigned min, unsigned *out, char *err,
			size_t errlen)
{
	char *end;
	unsigned long n = strtoul(arg, &end, 10);

	if (end == arg || *end || n < min || n > TRACE_PLOT_SIZE_MAX)
		return usage_err(err, errlen,
				 "trace plot: --%s '%s' is not a pixel count in %u..%u", opt, arg,
				 min, TRACE_PLOT_SIZE_MAX);
	*out = (unsigned)n;
	return 0;
}

static int parse_plot_option(int c, const char *arg, struct options *o, char *err, size_t errlen)
{
	switch (c) {
	case 1: /* "-" in the short options: FILE, in place (argv is not permuted) */
		if (o->summary)
			return usage_err(err, errlen, "trace plot: expects exactly one FILE");
		o->summary = arg;
		return 0;
	case 'o': o->plot_out = arg; return 0;
	case 'h': o->command = CLI_HELP; return 0;
	case 't': o->plot.title = arg; return 0;
	case 'W':
		return parse_pixels("width", arg, TRACE_PLOT_WIDTH_MIN, &o->plot.width, err,
				    errlen);
	case 'H':
		return parse_pixels("height", arg, TRACE_PLOT_HEIGHT_MIN, &o->plot.height, err,
				    errlen);
	case 'x':
		if (strcmp(arg, "ns") && strcmp(arg, "seq"))
			return usage_err(err, errlen,
					 "trace plot: --x '%s' is not an axis (ns, seq)", arg);
		o->plot.x = arg[0] == 's' ? TRACE_PLOT_X_SEQ : TRACE_PLOT_X_NS;
		return 0;
	default: return usage_err(err, errlen, "trace plot: unknown option (see shadowvm --help)");
	}
}

/* `shadowvm trace plot FILE -o OUT [--x=ns|seq] [--title=T] [--width=N] [--height=N]`;
 * argv[0] is "plot". */
static int parse_plot_command(int argc, char **argv, struct options *o, char *err, size_t errlen)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "x", required_argument, NULL, 'x' },
		{ "title", required_argument, NULL, 't' },
		{ "width", required_argument, NULL, 'W' },
		{ "height", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int rc;

	o->command = CLI_TRACE_PLOT;
	if ((rc = each_option(argc, argv, "-o:h", longopts, "trace plot", parse_plot_option, o, err,
			      errlen)) != 0 ||
	    o->command == CLI_HELP)
		return rc;
	if (!o->summary || optind != argc)
		return usage_err(err, errlen, "trace plot: expects exactly one FILE");
	if (!o->plot_out)
		return usage_err(err, errlen, "trace plot: missing -o OUT (a .png or .svg file)");
	if (trace_plot_format_of(o->plot_out) < 0)
		return usage_err(err, errlen, "trace plot: -o %s: not a .png or .svg file name",
				 o->plot_out);
	return 0;
}

/* `shadowvm trace summary FILE`, `shadowvm trace plot FILE -o OUT ...` */
static int parse_trace_command(int argc, char **argv, struct options *o, char *err, size_t errlen)
{
	if (argc >= 3 && !strcmp(argv[2], "plot"))
		return parse_plot_command(argc - 2, argv + 2, o, err, errlen);
	if (argc < 3 || strcmp(argv[2], "summary"))
		return usage_err(err, errlen,
				 "trace: unknown or missing subcommand (summary, plot)");
	if (argc != 4)
		return usage_err(err, errlen, "trace summary: expects exactly one FILE");
	o->command = CLI_TRACE_SUMMARY;
	o->summary = argv[3];
	return 0;
}

/* `shadowvm kvm [--json | --brief]` */
static int parse_kvm_command(int argc, char **argv, struct options *o, char *err, size_t errlen)
{
	o->command = CLI_KVM;
	if (argc == 2)
		return 0;
	if (argc == 3 && !strcmp(argv[2], "--json"))
		o->kvm_format = 1;
	else if (argc == 3 && !strcmp(argv[2], "--brief"))
		o->kvm_format = 2;
	else
		return usage_err(err, errlen, "kvm: expects at most one of --json, --brief");
	return 0;
}

int cli_parse(int argc, char **argv, struct options *o, char *err, size_t errlen)
{
	memset(o, 0, sizeof(*o));
	o->mem_size = SHADOWVM_ABI_RAM_DEFAULT;
	o->paging = PAGING_SHADOW;
	o->pool_pages = CLI_POOL_DEFAULT;
	o->shadow_opts = SHADOW_OPT_ALL;
	o->verbosity = LOG_WARN;
	o->trace_events = TRACE_ALL_EVENTS;
	if (argc < 2)
		return usage_err(err, errlen, "missing command (see shadowvm --help)");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		o->command = CLI_HELP;
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		o->command = CLI_VERSION;
		return 0;
	}
	if (!strcmp(argv[1], "run"))
		o->command = CLI_RUN;
	else if (!strcmp(argv[1], "check"))
		o->command = CLI_CHECK;
	else if (!strcmp(argv[1], "trace"))
		return parse_trace_command(argc, argv, o, err, errlen);
	else if (!strcmp(argv[1], "kvm"))
		return parse_kvm_command(argc, argv, o, err, errlen);
	else
		return usage_err(err, errlen,
				 "unknown command '%s' (run, check, trace, kvm; see --help)",
				 argv[1]);
	return parse_command(argc - 1, argv + 1, o, err, errlen);
}
