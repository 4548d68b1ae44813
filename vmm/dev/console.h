/* The console's input side: stdin into COM1's receive buffer, from a thread
 * of its own, so that a byte typed while the vCPU runs (or sits halted in
 * KVM) raises IRQ 4 at once.  On a terminal it behaves like `qemu
 * -nographic`: the terminal goes raw while the guest runs (restored on
 * every way out, fatal signals included), and Ctrl-A starts an escape:
 * Ctrl-A X quits, Ctrl-A Ctrl-A sends a Ctrl-A, Ctrl-A H lists them.
 * Anything else (a pipe, a file) is read as a byte stream, escapes and all,
 * so that tests can script a session. */
#ifndef SHADOWVM_CONSOLE_H
#define SHADOWVM_CONSOLE_H

#include <pthread.h>
#include <stdbool.h>
#include <termios.h>

#include "devices.h"

#define CONSOLE_ESCAPE 0x01 /* Ctrl-A */

struct console {
	int fd;
	bool tty, started, escape;
	volatile bool stop;
	int wake[2]; /* a pipe: a byte ends the thread's poll */
	pthread_t thread;
	struct uart *uart;
	void (*quit)(void *opaque); /* Ctrl-A X */
	void *opaque;
};

/* Start reading `fd` into `u`; `quit` runs (on the input thread) at Ctrl-A
 * X.  0, or -1 with err set. */
int console_start(struct console *c, int fd, struct uart *u, void (*quit)(void *), void *opaque,
		  char *err, size_t errlen);

/* Stop the thread and give the terminal back as it was; safe to call on a
 * console never started, and more than once. */
void console_stop(struct console *c);

/* What the input thread does with one byte read from a terminal: the
 * escape state machine.  Returns the bytes for the guest (0, 1) in *out;
 * sets *quit at Ctrl-A X.  (Exposed for the unit tests.) */
unsigned console_key(struct console *c, unsigned char key, unsigned char *out, bool *quit);

#endif
