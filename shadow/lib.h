/* What shadow/ needs from its environment, and nothing more.  The library is
 * built hosted (linked into the VMM and the tests) and freestanding (`make
 * freestanding-shadow`, ready for the monitor), where the environment
 * provides only memset, memcpy and memmove: no allocation but through the
 * caller's struct shadow_alloc, no printing, no exit.  Every shadow/ file
 * includes this instead of libc headers. */
#ifndef SHADOWVM_SHADOW_LIB_H
#define SHADOWVM_SHADOW_LIB_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shadow.h"

#if __STDC_HOSTED__
#include <assert.h>
#include <string.h>
#else
void *memset(void *dst, int c, size_t n);
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
/* a broken internal invariant stops the monitor where it is */
#define assert(cond) ((cond) ? (void)0 : __builtin_trap())
#define static_assert _Static_assert
#endif

/* `bytes` zeroed bytes from cfg->alloc (hosted, with no allocator given:
 * calloc), or NULL.  Only shadow_create asks, never the fault path. */
void *shadow_zalloc(const struct shadow_alloc *a, size_t bytes);
void shadow_free(const struct shadow_alloc *a, void *p);

/* snprintf for the invariant messages: %s, %c, %d, %u, %x with an
 * optional 0 flag, width and l/ll; always NUL-terminates a non-empty buf. */
__attribute__((format(printf, 3, 4))) void shadow_format(char *buf, size_t len, const char *fmt,
							 ...);
__attribute__((format(printf, 3, 0))) void shadow_vformat(char *buf, size_t len, const char *fmt,
							  va_list ap);

#endif
