/* The console's input side: the Ctrl-A escapes a terminal gets, and a
 * pipe read as a byte stream into COM1 through the input thread, waiting
 * while the receive buffer is full rather than dropping a byte. */
#include <check.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "console.h"
#include "devices.h"
#include "suites.h"

static unsigned keys(struct console *c, const char *in, unsigned char *out, bool *quit)
{
	unsigned n = 0;

	*quit = false;
	for (const char *p = in; *p && !*quit; p++)
		n += console_key(c, (unsigned char)*p, out + n, quit);
	return n;
}

START_TEST(test_console_escapes)
{
	struct console c = { 0 };
	unsigned char out[16];
	bool quit;

	ck_assert_uint_eq(keys(&c, "ls\r", out, &quit), 3);
	ck_assert(!quit);
	ck_assert_mem_eq(out, "ls\r", 3);
	/* Ctrl-A X quits, and sends nothing */
	ck_assert_uint_eq(keys(&c, "a\001x", out, &quit), 1);
	ck_assert(quit);
	c.escape = false;
	ck_assert_uint_eq(keys(&c, "\001X", out, &quit), 0);
	ck_assert(quit);
	/* Ctrl-A Ctrl-A is one Ctrl-A for the guest */
	c.escape = false;
	ck_assert_uint_eq(keys(&c, "\001\001b", out, &quit), 2);
	ck_assert(!quit);
	ck_assert_mem_eq(out, "\001b", 2);
	/* an unknown escape is dropped, the next key is plain again */
	ck_assert_uint_eq(keys(&c, "\001zq", out, &quit), 1);
	ck_assert_uint_eq(out[0], 'q');
	ck_assert(!c.escape);
}
END_TEST

static struct devices dev;

static void quit_never(void *opaque)
{
	(void)opaque;
	ck_abort_msg("a pipe has no escapes");
}

static uint8_t inb(uint16_t port)
{
	uint8_t v = 0;

	ck_assert_int_eq(devices_pio(&dev, port, true, &v, 1), -1);
	return v;
}

/* Wait (at most 10 s) until COM1 says a byte is there. */
static bool data_ready(void)
{
	for (int i = 0; i < 10000; i++) {
		if (inb(0x3fd) & 1)
			return true;
		usleep(1000);
	}
	return false;
}

/* More bytes than the receive buffer holds, through a pipe: all of them
 * arrive, in order, Ctrl-A and Ctrl-A X included (no escapes off a tty). */
START_TEST(test_console_pipe_is_a_byte_stream)
{
	static uint8_t sent[UART_RX_SIZE * 2 + 100];
	struct console c;
	char err[160];
	int p[2];

	devices_init(&dev, stderr, 64u << 20, true);
	for (size_t i = 0; i < sizeof(sent); i++)
		sent[i] = (uint8_t)(i * 13 + 1);
	sent[5] = CONSOLE_ESCAPE, sent[6] = 'x';
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_msg(console_start(&c, p[0], &dev.com1, quit_never, NULL, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert(!c.tty);
	ck_assert_int_eq(write(p[1], sent, sizeof(sent)), (ssize_t)sizeof(sent));
	for (size_t i = 0; i < sizeof(sent); i++) {
		ck_assert_msg(data_ready(), "byte %zu never came", i);
		ck_assert_uint_eq(inb(0x3f8), sent[i]);
	}
	close(p[1]);
	console_stop(&c);
	console_stop(&c); /* twice is harmless */
	close(p[0]);
	ck_assert_uint_eq(dev.com1.received, sizeof(sent));
	devices_fini(&dev);
}
END_TEST

Suite *console_suite(void)
{
	Suite *s = suite_create("console");
	TCase *tc = tcase_create("input");

	tcase_add_test(tc, test_console_escapes);
	tcase_add_test(tc, test_console_pipe_is_a_byte_stream);
	suite_add_tcase(s, tc);
	return s;
}
