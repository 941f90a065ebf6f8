/* Allocation wrappers that abort on out-of-memory, so callers never handle NULL from them.
 * Sizes that come from the network must be capped by the caller before they get here. */
#pragma once

#include <stdarg.h>
#include <stddef.h>

#include "macro.h"

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
/* Grows an array to hold at least `need` elements of `size` bytes; doubles to amortise. */
void *xgrow(void *p, size_t *allocated, size_t need, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);
char *xvasprintf(const char *fmt, va_list ap) _printf_(1, 0);

#define xnew(type, count) ((type *)xcalloc((count), sizeof(type)))

/* Reports the failure and aborts: the one thing to do when memory is gone. */
_noreturn_ void alloc_oom(size_t n);
