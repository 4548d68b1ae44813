/* The environment shadow/ runs in: allocation and message formatting. */
#include "lib.h"

#if __STDC_HOSTED__
#include <stdlib.h>
#endif

void *shadow_zalloc(const struct shadow_alloc *a, size_t bytes)
{
	void *p;

	if (a->zalloc)
		return a->zalloc(a->opaque, bytes);
#if __STDC_HOSTED__
	p = calloc(1, bytes ? bytes : 1);
#else
	p = NULL;
#endif
	return p;
}

void shadow_free(const struct shadow_alloc *a, void *p)
{
	if (!p)
		return;
	if (a->zalloc) {
		if (a->free)
			a->free(a->opaque, p);
		return;
	}
#if __STDC_HOSTED__
	free(p);
#endif
}

struct out {
	char *buf;
	size_t len, pos;
};

static void put(struct out *o, char c)
{
	if (o->pos + 1 < o->len)
		o->buf[o->pos] = c;
	o->pos++;
}

/* One number in base 10 or 16, right-aligned in `width` with ' ' or '0'. */
static void number(struct out *o, uint64_t v, bool neg, unsigned base, unsigned width, char pad)
{
	char digits[24];
	unsigned n = 0;

	do {
		digits[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg && pad == '0')
		put(o, '-');
	for (unsigned i = n + neg; i < width; i++)
		put(o, pad);
	if (neg && pad != '0')
		put(o, '-');
	while (n)
		put(o, digits[--n]);
}

static void integer(struct out *o, va_list *ap, char conv, unsigned longs, unsigned width, char pad)
{
	uint64_t u;
	int64_t d;

	if (conv == 'd') {
		d = longs >= 2 ? va_arg(*ap, long long)
		    : longs    ? va_arg(*ap, long)
			       : va_arg(*ap, int);
		number(o, d < 0 ? 0 - (uint64_t)d : (uint64_t)d, d < 0, 10, width, pad);
		return;
	}
	u = longs >= 2 ? va_arg(*ap, unsigned long long)
	    : longs    ? va_arg(*ap, unsigned long)
		       : va_arg(*ap, unsigned);
	number(o, u, false, conv == 'x' ? 16 : 10, width, pad);
}

void shadow_format(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	shadow_vformat(buf, len, fmt, ap);
	va_end(ap);
}

void shadow_vformat(char *buf, size_t len, const char *fmt, va_list args)
{
	struct out o = { buf, len, 0 };
	va_list ap;

	va_copy(ap, args);
	for (const char *p = fmt; *p; p++) {
		unsigned width = 0, longs = 0;
		char pad = ' ';

		if (*p != '%') {
			put(&o, *p);
			continue;
		}
		if (*++p == '0')
			pad = '0', p++;
		while (*p >= '0' && *p <= '9')
			width = width * 10 + (unsigned)(*p++ - '0');
		while (*p == 'l')
			longs++, p++;
		if (*p == 's') {
			for (const char *s = va_arg(ap, const char *); *s; s++)
				put(&o, *s);
		} else if (*p == 'c') {
			put(&o, (char)va_arg(ap, int));
		} else if (*p == 'd' || *p == 'u' || *p == 'x') {
			integer(&o, &ap, *p, longs, width, pad);
		} else {
			put(&o, *p ? *p : '%');
			if (!*p)
				break;
		}
	}
	va_end(ap);
	if (len)
		buf[o.pos < len ? o.pos : len - 1] = 0;
}
