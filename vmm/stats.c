#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "shadow.h"
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

#define U(x) ((unsigned long long)(x))

/* Shadow-mode counters; all zero under --paging=hw, so the keys never vary. */
static void shadow_counters(FILE *f, const struct vm *vm)
{
	struct shadow_stats st = { 0 };
	const struct trap_stats *t = &vm->tstats;

	if (vm->shadow)
		shadow_get_stats(vm->shadow, &st);
	fprintf(f, ",\"traps\":%llu,\"hidden_faults\":%llu,\"fills\":{\"1\":%llu,\"2\":%llu,\"3\":%llu}"
		   ",\"a_sets\":%llu,\"d_sets\":%llu,\"guest_faults\":%llu,\"reflected\":%llu"
		   ",\"emulated\":%llu,\"syscalls\":%llu,\"cr3_writes\":%llu,\"invlpgs\":%llu"
		   ",\"flushes\":%llu,\"evictions\":%llu,\"ad_retries\":%llu,\"pages_peak\":%u"
		   ",\"roots_reused\":%llu,\"unprotects\":%llu,\"zaps\":%llu,\"floods\":%llu"
		   ",\"prefetched\":%llu,\"huge_leaves\":%llu,\"fast_fills\":%llu",
		U(t->traps), U(st.hidden_faults), U(st.fills[1]), U(st.fills[2]), U(st.fills[3]),
		U(st.a_sets), U(st.d_sets), U(st.guest_faults), U(t->reflected), U(t->emulated),
		U(t->syscalls), U(st.cr3_loads), U(st.invlpgs), U(st.flushes), U(st.evictions),
		U(st.ad_retries), st.pages_peak, U(st.roots_reused), U(st.unprotects), U(st.zaps),
		U(st.floods), U(st.prefetched), U(st.huge_leaves), U(st.fast_fills));
}

int stats_write(const struct vm *vm, int status, double secs)
{
	const char *path = vm->opts->stats_file;
	FILE *f = path ? fopen(path, "w") : stderr;
	int bad;

	if (!f) {
		pr_err("stats: %s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	fprintf(f, "{\"status\":%d,\"reason\":\"%s\",\"paging\":\"%s\",\"wall_s\":%.6f,", status,
		vmm_status_name(status), vm->opts->paging == PAGING_HW ? "hw" : "shadow", secs);
	exits(f, &vm->vcpu);
	shadow_counters(f, vm);
	fprintf(f, "}\n");
	bad = fflush(f) != 0 || ferror(f);
	if (path && fclose(f) != 0)
		bad = 1;
	if (bad)
		pr_err("stats: %s: write failed: %s", path ? path : "stderr", strerror(errno));
	return bad ? -1 : 0;
}
