/* Allocation wrappers: every allocation in Stratus goes through here and never returns NULL. */
#include "alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void alloc_oom(size_t n)
{
    char msg[96];
    int len = snprintf(msg, sizeof(msg), "fatal: out of memory allocating %zu bytes\n", n);
    if (len > 0)
        (void)!write(STDERR_FILENO, msg, (size_t)len);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        alloc_oom(n);
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        alloc_oom(count * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        alloc_oom(n);
    return q;
}

void *xgrow(void *p, size_t *allocated, size_t need, size_t size)
{
    if (need <= *allocated)
        return p;
    size_t n = *allocated ? *allocated : 4;
    while (n < need) {
        if (n > SIZE_MAX / 2 / size)
            alloc_oom(SIZE_MAX);
        n *= 2;
    }
    p = xrealloc(p, n * size);
    *allocated = n;
    return p;
}

char *xstrdup(const char *s)
{
    return xmemdup(s, strlen(s) + 1);
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *r = xmalloc(len + 1);
    memcpy(r, s, len);
    r[len] = '\0';
    return r;
}

void *xmemdup(const void *p, size_t n)
{
    void *r = xmalloc(n);
    if (n)
        memcpy(r, p, n);
    return r;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    char *r = NULL;
    if (vasprintf(&r, fmt, ap) < 0)
        alloc_oom(strlen(fmt));
    return r;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *r = xvasprintf(fmt, ap);
    va_end(ap);
    return r;
}
