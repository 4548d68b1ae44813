#include "guest.h"

static unsigned failures;

int check(int ok, const char *what)
{
	if (!ok) {
		failures++;
		printf("FAIL: %s\n", what);
	}
	return ok;
}

unsigned check_failures(void)
{
	return failures < GUEST_EXIT_RUNTIME - 1 ? failures : GUEST_EXIT_RUNTIME - 1;
}
