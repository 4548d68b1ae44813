/* shadowvm: a shadow-paging hypervisor on the KVM API.  See README.md. */
#include <stdio.h>

#include "backend.h"
#include "cli.h"
#include "log.h"
#include "status.h"
#include "trace_plot.h"
#include "trace_summary.h"
#include "run.h"

int main(int argc, char **argv)
{
	static struct options opts;
	char err[512];
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((rc = cli_parse(argc, argv, &opts, err, sizeof(err))) != 0) {
		pr_err("%s", err);
		return rc;
	}
	log_verbosity = opts.verbosity;
	switch (opts.command) {
	case CLI_HELP: cli_usage(stdout); return VMM_OK;
	case CLI_VERSION: printf("shadowvm %s\n", SHADOWVM_VERSION); return VMM_OK;
	case CLI_CHECK: return run_check(&opts);
	case CLI_RUN: return run_guest(&opts);
	case CLI_KVM: return backend_main(opts.kvm_format);
	case CLI_TRACE_SUMMARY: return trace_summary_main(opts.summary);
	case CLI_TRACE_PLOT: return trace_plot_main(opts.summary, opts.plot_out, &opts.plot);
	}
	return VMM_E_INTERNAL;
}
