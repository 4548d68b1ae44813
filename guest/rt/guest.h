/* The freestanding guest runtime: console, exit, string helpers, port I/O.
 * A guest program defines `int main(const struct shadowvm_boot_info *bi)`; its
 * return value becomes the run's exit status (0..SHADOWVM_ABI_EXIT_MAX). */
#ifndef SHADOWVM_GUEST_H
#define SHADOWVM_GUEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "shadowvm_abi.h"

#include "pio.h"

int main(const struct shadowvm_boot_info *bi);

/* Console (COM1, polled). */
void console_putc(char c);
void console_write(const char *s, size_t n);
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* End the run with `status` through the exit port. */
__attribute__((noreturn)) void guest_exit(unsigned status);
/* Status of a run the runtime itself ended: out of frames, unhandled trap. */
#define GUEST_EXIT_RUNTIME 62u

/* Self-checks: a failed check prints "FAIL: what" and is counted. */
int check(int ok, const char *what);
/* Failed checks so far, capped to a usable exit status (at most 61). */
unsigned check_failures(void);

/* Freestanding string helpers (the compiler may also emit calls to these). */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
/* Parse an unsigned number (decimal, or hex with 0x); *end past it. */
uint64_t strtou64(const char *s, const char **end);

/* The value of "key=value" in the command line, copied into buf; NULL if
 * the key is absent. */
const char *cmdline_get(const struct shadowvm_boot_info *bi, const char *key, char *buf,
			size_t len);

#endif
