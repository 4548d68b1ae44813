#include <stdarg.h>
#include <stdio.h>

#include "log.h"

int log_verbosity = LOG_WARN;

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if ((int)level > log_verbosity)
		return;
	/* The console transcript goes to stdout; keep the two streams ordered
	 * for a reader watching a terminal. */
	fflush(stdout);
	fputs("shadowvm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
