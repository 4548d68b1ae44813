/* Command-line parsing for `shadowvm run|check`. */
#ifndef SHADOWVM_CLI_H
#define SHADOWVM_CLI_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "elf_load.h"
#include "trace_plot.h"

enum cli_command {
	CLI_RUN,
	CLI_CHECK,
	CLI_TRACE_SUMMARY,
	CLI_TRACE_PLOT,
	CLI_KVM,
	CLI_HELP,
	CLI_VERSION
};
enum paging_mode { PAGING_SHADOW, PAGING_HW };
enum fill_mode { FILL_MONITOR, FILL_VMM };

#define CLI_POOL_DEFAULT 1024u /* 4 MiB of shadow tables */
#define CLI_POOL_MIN 4u
#define CLI_POOL_MAX 65536u
#define CLI_MODULE_PATH_MAX 1024u /* bytes of a --module file name, with its NUL */

struct options {
	enum cli_command command;
	const char *image;
	uint64_t mem_size;
	enum paging_mode paging;
	char cmdline[4096];   /* --cmdline, then the guest args after "--" */
	double timeout;       /* seconds; 0 = none */
	uint32_t pool_pages;  /* shadow pool size */
	unsigned shadow_opts; /* --shadow-opts: SHADOW_OPT_* */
	enum fill_mode fill;  /* --fill: who resolves hidden faults */
	int lapic_kvm;        /* --lapic=kvm: no local-APIC fast path */
	int dump_shadow;      /* print the shadow root at boot and exit */
	int check_invariants; /* shadow_check after every trap */
	int verbosity;
	const char *trace;      /* --trace FILE ("-" = stderr), or NULL */
	uint32_t trace_events;  /* --trace-events mask (trace.h TRACE_EV_*) */
	int trace_text;         /* --trace-format=text */
	int stats;              /* --stats given */
	const char *stats_file; /* --stats=FILE, or NULL for stderr */
	const char *summary;    /* `trace summary FILE`, `trace plot FILE` */
	const char *plot_out;   /* `trace plot -o OUT` */
	struct trace_plot_options plot;
	int kvm_format;     /* `kvm`: BACKEND_OUT_* (0 text, 1 --json, 2 --brief) */
	int ignore_backend; /* --ignore-backend: run where backend_refuses says no */
	/* --module FILE[,STRING]: path points into module_paths, string after
	 * the comma (or is the path when there is none) */
	struct boot_module modules[BOOT_MODULES_MAX];
	unsigned nmodules;
	char module_paths[BOOT_MODULES_MAX][CLI_MODULE_PATH_MAX];
	/* --disk FILE[,ro][,master|,slave]: the primary channel's two units */
	struct {
		const char *path; /* NULL: no disk */
		int ro;
	} disks[2];
	char disk_paths[2][CLI_MODULE_PATH_MAX];
	int no_mptable; /* --no-mptable */
};

/* Fill opts from argv.  Returns 0, or VMM_E_USAGE with one line in err. */
int cli_parse(int argc, char **argv, struct options *opts, char *err, size_t errlen);

/* The --help text. */
void cli_usage(FILE *out);

#endif
