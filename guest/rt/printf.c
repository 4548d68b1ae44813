/* A small vsnprintf: %c %s %d %i %u %x %X %p %%, flags '-' and '0', a field
 * width, and the l / ll / z length modifiers. */
#include "guest.h"

struct out {
	char *buf;
	size_t size, len;
};

struct spec {
	int width, left, upper;
	char pad;
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void put_field(struct out *o, const char *s, int n, const struct spec *sp)
{
	int fill = sp->width > n ? sp->width - n : 0;

	if (!sp->left && sp->pad == '0' && (*s == '-') && n > 0) {
		put(o, *s++);
		n--;
	}
	for (; !sp->left && fill; fill--)
		put(o, sp->pad);
	while (n--)
		put(o, *s++);
	for (; fill; fill--)
		put(o, ' ');
}

static void put_num(struct out *o, uint64_t v, int neg, unsigned base, const struct spec *sp)
{
	const char *digits = sp->upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int n = (int)sizeof(tmp);

	do {
		tmp[--n] = digits[v % base];
		v /= base;
	} while (v);
	if (neg)
		tmp[--n] = '-';
	put_field(o, tmp + n, (int)sizeof(tmp) - n, sp);
}

static uint64_t get_arg(va_list *ap, int lng, int sgn)
{
	if (lng)
		return sgn ? (uint64_t)va_arg(*ap, long) : va_arg(*ap, unsigned long);
	return sgn ? (uint64_t)(int64_t)va_arg(*ap, int) : va_arg(*ap, unsigned);
}

static const char *conv(struct out *o, const char *f, va_list *ap)
{
	struct spec sp = { .pad = ' ' };
	int lng = 0;
	const char *s;
	int64_t sv;

	for (; *f == '-' || *f == '0'; f++)
		*f == '-' ? (sp.left = 1) : (sp.pad = '0');
	for (; *f >= '0' && *f <= '9'; f++)
		sp.width = sp.width * 10 + (*f - '0');
	for (; *f == 'l' || *f == 'z'; f++)
		lng = 1;
	switch (*f) {
	case 'c': put(o, (char)va_arg(*ap, int)); break;
	case 's':
		s = va_arg(*ap, const char *);
		s = s ? s : "(null)";
		put_field(o, s, (int)strlen(s), &sp);
		break;
	case 'd':
	case 'i':
		sv = (int64_t)get_arg(ap, lng, 1);
		put_num(o, sv < 0 ? -(uint64_t)sv : (uint64_t)sv, sv < 0, 10, &sp);
		break;
	case 'u': put_num(o, get_arg(ap, lng, 0), 0, 10, &sp); break;
	case 'X': sp.upper = 1; /* fall through */
	case 'x': put_num(o, get_arg(ap, lng, 0), 0, 16, &sp); break;
	case 'p':
		put(o, '0'), put(o, 'x');
		put_num(o, (uint64_t)(uintptr_t)va_arg(*ap, void *), 0, 16, &sp);
		break;
	case '%': put(o, '%'); break;
	default:
		put(o, '%');
		put(o, *f);
		break;
	}
	return *f ? f + 1 : f;
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };
	va_list aq;

	va_copy(aq, ap);
	while (*fmt) {
		if (*fmt != '%')
			put(&o, *fmt++);
		else
			fmt = conv(&o, fmt + 1, &aq);
	}
	va_end(aq);
	if (size)
		buf[o.len < size ? o.len : size - 1] = 0;
	return (int)o.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

int printf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	console_write(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
	return n;
}
