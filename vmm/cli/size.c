#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "size.h"

static int suffix_shift(const char *p, unsigned *shift)
{
	static const struct {
		const char *s;
		unsigned shift;
	} tab[] = {
		{ "", 20 },   { "k", 10 },   { "kb", 10 }, { "kib", 10 }, { "m", 20 },
		{ "mb", 20 }, { "mib", 20 }, { "g", 30 },  { "gb", 30 },  { "gib", 30 },
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		if (strcasecmp(p, tab[i].s) == 0) {
			*shift = tab[i].shift;
			return 0;
		}
	}
	return -1;
}

int size_parse(const char *s, uint64_t *bytes, char *err, size_t errlen)
{
	uint64_t n = 0;
	const char *p = s;
	unsigned shift;

	if (!isdigit((unsigned char)*p)) {
		snprintf(err, errlen, "size '%s' does not start with a digit", s);
		return -1;
	}
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (n > (UINT64_MAX - d) / 10) {
			snprintf(err, errlen, "size '%s' overflows 64 bits", s);
			return -1;
		}
		n = n * 10 + d;
	}
	if (suffix_shift(p, &shift) != 0) {
		snprintf(err, errlen, "size '%s' has unknown suffix '%s' (use K, M or G)", s, p);
		return -1;
	}
	if (n > (UINT64_MAX >> shift)) {
		snprintf(err, errlen, "size '%s' overflows 64 bits", s);
		return -1;
	}
	*bytes = n << shift;
	return 0;
}
