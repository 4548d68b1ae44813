#ifndef SHADOWVM_SIZE_H
#define SHADOWVM_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* Parse a memory size: a decimal number with an optional K, M or G suffix
 * (binary units, case-insensitive, optional trailing "iB"/"B"); a bare number
 * is MiB.  Returns 0 and stores bytes, or -1 with a one-line reason in err
 * (no overflow, no empty or negative numbers, no trailing garbage). */
int size_parse(const char *s, uint64_t *bytes, char *err, size_t errlen);

#endif
