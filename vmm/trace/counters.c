#include <stdbool.h>
#include <string.h>

#include "counters.h"
#include "monitor.h"
#include "shadow.h"
#include "vm.h"

void counters_read(const struct vm *vm, uint64_t v[COUNTER_N])
{
	struct shadow_stats shadow = { 0 };
	struct trap_stats trap = vm->tstats;
	struct hv_mon mon = { 0 };
	struct hv_lapic lapic = { 0 };

	if (vm->shadow) {
		shadow_get_stats(vm->shadow, &shadow);
		mon = *monitor_mon(&vm->mon);
		lapic = *monitor_lapic(&vm->mon);
	}
#define COUNTER_READ(name, path, src, field, meaning) v[COUNTER_##name] = src.field;
	COUNTERS(COUNTER_READ)
#undef COUNTER_READ
}

void counters_json(FILE *f, const uint64_t v[COUNTER_N])
{
	const char *group = NULL; /* the path of the object left open, or NULL */
	size_t glen = 0;

	for (unsigned c = 0; c < COUNTER_N; c++) {
		const char *path = counter_path(c), *dot = strchr(path, '.');
		size_t len = dot ? (size_t)(dot - path) : 0;
		bool same = group && len == glen && !strncmp(path, group, len);

		if (group && !same)
			fputc('}', f);
		if (dot && !same)
			fprintf(f, ",\"%.*s\":{", (int)len, path);
		fprintf(f, "%s\"%s\":%llu", dot && !same ? "" : ",", dot ? dot + 1 : path,
			(unsigned long long)v[c]);
		group = dot ? path : NULL;
		glen = len;
	}
	if (group)
		fputc('}', f);
}

void counters_line(char *buf, size_t len, const uint64_t v[COUNTER_N])
{
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned c = 0; c < COUNTER_N && n < len; c++) {
		int k = snprintf(buf + n, len - n, " %s=%llu", counter_name(c),
				 (unsigned long long)v[c]);
		if (k < 0)
			break;
		n += (size_t)k;
	}
}
