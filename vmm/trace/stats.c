#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "counters.h"
#include "log.h"
#include "stats.h"
#include "status.h"
#include "vm.h"

static void exits(FILE *f, const struct vcpu *v)
{
	fprintf(f, "\"exits\":{\"total\":%llu", (unsigned long long)v->exits);
	for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++)
		if (v->exits_by_reason[r])
			fprintf(f, ",\"%s\":%llu", vcpu_exit_name(r),
				(unsigned long long)v->exits_by_reason[r]);
	fprintf(f, "}");
}

int stats_write(const struct vm *vm, int status, double secs)
{
	const char *path = vm->opts->stats_file;
	FILE *f = path ? fopen(path, "w") : stderr;
	uint64_t v[COUNTER_N];
	int bad;

	if (!f) {
		pr_err("stats: %s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	fprintf(f, "{\"status\":%d,\"reason\":\"%s\",\"paging\":\"%s\",\"wall_s\":%.6f,", status,
		vmm_status_name(status), vm->opts->paging == PAGING_HW ? "hw" : "shadow", secs);
	exits(f, &vm->vcpu);
	counters_read(vm, v);
	counters_json(f, v);
	fprintf(f, "}\n");
	bad = fflush(f) != 0 || ferror(f);
	if (path && fclose(f) != 0)
		bad = 1;
	if (bad)
		pr_err("stats: %s: write failed: %s", path ? path : "stderr", strerror(errno));
	return bad ? -1 : 0;
}
