/* mbos's shell on COM1: bytes arrive only through the receive interrupt
 * (IRQ 4, vector 36, into mbos_hw.c's ring) while the shell sleeps in
 * sti;hlt, as xv6's console does.  Lines are echoed as typed; backspace
 * (0x7f or 0x08) erases, CR or LF ends a line.  Commands: echo WORDS...,
 * ticks, disk, help, exit N. */
#include "mbos.h"

#define LINE_MAX 128
#define TICKS_HLTS 1000 /* hlts to wait for two ticks before "not ticking" */

static char line[LINE_MAX + 1];

/* Called with IF clear. */
static int getc_wait(void)
{
	int c;

	while ((c = mbos_uart_getc()) < 0)
		sti_hlt_cli();
	return c;
}

static void read_line(void)
{
	unsigned n = 0;

	for (;;) {
		int c = getc_wait();

		if (c == '\r' || c == '\n') {
			mb_putc('\n');
			break;
		}
		if (c == 0x7f || c == 0x08) {
			if (n > 0) {
				n--;
				mb_printf("\b \b");
			}
		} else if (c >= 0x20 && c < 0x7f && n < LINE_MAX) {
			line[n++] = (char)c;
			mb_putc((char)c);
		}
	}
	line[n] = 0;
}

/* Split line into at most max words in place; returns how many. */
static unsigned split(char *s, char **w, unsigned max)
{
	unsigned n = 0;

	for (;;) {
		while (*s == ' ')
			*s++ = 0;
		if (!*s || n == max)
			return n;
		w[n++] = s;
		while (*s && *s != ' ')
			s++;
	}
}

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static uint32_t atou(const char *s)
{
	uint32_t v = 0;

	while (*s >= '0' && *s <= '9')
		v = v * 10 + (uint32_t)(*s++ - '0');
	return v;
}

static void cmd_ticks(void)
{
	uint32_t t0 = mbos_ticks;

	for (unsigned i = 0; i < TICKS_HLTS && mbos_ticks - t0 < 2; i++)
		sti_hlt_cli();
	mb_printf(mbos_ticks - t0 >= 2 ? "ticking\n" : "not ticking\n");
}

static void run(char **w, unsigned n, int have_disk)
{
	if (streq(w[0], "echo")) {
		for (unsigned i = 1; i < n; i++)
			mb_printf(i > 1 ? " %s" : "%s", w[i]);
		mb_putc('\n');
	} else if (streq(w[0], "ticks")) {
		cmd_ticks();
	} else if (streq(w[0], "disk")) {
		if (!have_disk)
			mb_printf("ide: no disk\n");
		else if (mbos_disk_report() < 0)
			mb_printf("disk: read failed\n");
	} else if (streq(w[0], "help")) {
		mb_printf("commands: echo WORDS..., ticks, disk, help, exit N\n");
	} else if (streq(w[0], "exit")) {
		mb_exit(n > 1 ? atou(w[1]) : 0);
	} else {
		mb_printf("unknown command: %s\n", w[0]);
	}
}

/* Route COM1's receive interrupt and serve commands until "exit N". */
void mbos_shell(int have_disk)
{
	char *w[LINE_MAX / 2 + 1];

	cli();
	/* xv6's order (main.c, uart.c): the receive interrupt is enabled
	 * while IRQ 4 is still masked, and unmasked after: input typed ahead
	 * raises the line while the pin is masked, an edge KVM's IOAPIC does
	 * not keep, so it comes through only if the VMM makes a new edge */
	mbos_ioapic_mask(IRQ_COM1, MBOS_T_COM1);
	mbos_uart_init();
	mbos_ioapic_route(IRQ_COM1, MBOS_T_COM1, mbos_lapic_id());
	for (;;) {
		unsigned n;

		mb_printf("$ ");
		read_line();
		n = split(line, w, LINE_MAX / 2 + 1);
		if (n)
			run(w, n, have_disk);
	}
}
