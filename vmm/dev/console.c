#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "console.h"
#include "log.h"

/* The terminal's settings before raw mode, for every way out: the normal
 * one (console_stop), exit() (atexit), and the fatal signals, whose
 * handler may only call async-signal-safe functions (tcsetattr is one). */
static struct termios saved_tty;
static volatile sig_atomic_t tty_raw;
static int tty_fd = -1;

static void tty_restore(void)
{
	if (tty_raw) {
		tcsetattr(tty_fd, TCSAFLUSH, &saved_tty);
		tty_raw = 0;
	}
}

static void on_fatal(int sig)
{
	tty_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Raw input as `qemu -nographic` sets it: no line editing, no echo, no
 * signals from the keyboard (Ctrl-C goes to the guest), no CR/LF
 * translation on input; output keeps OPOST, so the guest's "\n" still
 * starts a line. */
static int tty_raw_mode(int fd)
{
	static const int fatal[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL };
	static bool hooked;
	struct termios t;

	if (tcgetattr(fd, &saved_tty) != 0)
		return -1;
	t = saved_tty;
	t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	t.c_oflag |= OPOST;
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
	t.c_cflag |= CS8;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (!hooked) {
		hooked = true;
		atexit(tty_restore);
		for (unsigned i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
			signal(fatal[i], on_fatal);
	}
	tty_fd = fd;
	if (tcsetattr(fd, TCSAFLUSH, &t) != 0)
		return -1;
	tty_raw = 1;
	return 0;
}

unsigned console_key(struct console *c, unsigned char key, unsigned char *out, bool *quit)
{
	static const char help[] = "\r\nC-a x    quit shadowvm\r\n"
				   "C-a C-a  send C-a to the guest\r\n"
				   "C-a h    this list\r\n";

	*quit = false;
	if (!c->escape) {
		if (key == CONSOLE_ESCAPE) {
			c->escape = true;
			return 0;
		}
		*out = key;
		return 1;
	}
	c->escape = false;
	switch (key) {
	case 'x':
	case 'X': *quit = true; return 0;
	case CONSOLE_ESCAPE: *out = key; return 1;
	case 'h':
	case 'H':
		if (write(STDERR_FILENO, help, sizeof(help) - 1) < 0)
			return 0;
		return 0;
	default: return 0; /* an unknown escape is dropped, as QEMU does */
	}
}

/* Hand `n` bytes to the UART, waiting for room as the guest reads. */
static void feed(struct console *c, const unsigned char *buf, size_t n)
{
	while (n && !c->stop) {
		size_t took = uart_receive(c->uart, buf, n);
		buf += took;
		n -= took;
		if (n)
			uart_wait_room(c->uart, &c->stop);
	}
}

/* How long input may wait unread, IRQ 4 high, before uart_nudge makes a
 * new edge. */
#define CONSOLE_NUDGE_MS 50

static void *input_thread(void *arg)
{
	struct console *c = arg;
	unsigned char buf[256], keys[256];
	bool eof = false, waiting = false;

	while (!c->stop) {
		/* after end of input only the wake pipe (fd -1 is skipped) */
		struct pollfd p[2] = { { .fd = eof ? -1 : c->fd, .events = POLLIN },
				       { .fd = c->wake[0], .events = POLLIN } };
		ssize_t n;
		size_t k = 0;
		int r = poll(p, 2, waiting ? CONSOLE_NUDGE_MS : -1);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents || c->stop)
			break;
		if (r == 0) {
			waiting = uart_nudge(c->uart);
			if (eof && !waiting)
				break;
			continue;
		}
		n = read(c->fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			/* end of input: the guest runs on without it, once it has
			 * what was sent */
			eof = true;
			waiting = uart_nudge(c->uart);
			if (!waiting)
				break;
			continue;
		}
		waiting = true;
		if (!c->tty) {
			feed(c, buf, (size_t)n);
			continue;
		}
		for (ssize_t i = 0; i < n; i++) {
			bool quit;
			k += console_key(c, buf[i], keys + k, &quit);
			if (quit) {
				feed(c, keys, k);
				c->quit(c->opaque);
				return NULL;
			}
		}
		feed(c, keys, k);
	}
	return NULL;
}

int console_start(struct console *c, int fd, struct uart *u, void (*quit)(void *), void *opaque,
		  char *err, size_t errlen)
{
	int rc;

	*c = (struct console){
		.fd = fd, .uart = u, .quit = quit, .opaque = opaque, .wake = { -1, -1 }
	};
	if (pipe(c->wake) != 0) {
		snprintf(err, errlen, "console: pipe: %s", strerror(errno));
		return -1;
	}
	c->tty = isatty(fd);
	if (c->tty && tty_raw_mode(fd) != 0) {
		pr_warn("console: cannot make the terminal raw (%s): reading it as a stream",
			strerror(errno));
		c->tty = false;
	}
	/* the thread inherits a mask blocking every signal, so that the
	 * watchdog's (SIGALRM, SIGTERM, the SIGUSR1 kick ...) always reach the
	 * vCPU thread and end its KVM_RUN */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&c->thread, NULL, input_thread, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "console: starting the input thread: %s", strerror(rc));
		tty_restore();
		close(c->wake[0]);
		close(c->wake[1]);
		return -1;
	}
	c->started = true;
	return 0;
}

void console_stop(struct console *c)
{
	if (!c->started)
		return;
	c->stop = true;
	if (write(c->wake[1], "", 1) < 0)
		pr_warn("console: waking the input thread: %s", strerror(errno));
	uart_wake(c->uart);
	pthread_join(c->thread, NULL);
	c->started = false;
	close(c->wake[0]);
	close(c->wake[1]);
	tty_restore();
}
