/* Capped growable buffer. */
#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

static int buf_reserve(buf *b, size_t extra)
{
    if (b->max && (extra > b->max || b->len > b->max - extra))
        return -EMSGSIZE;
    size_t need = b->len + extra + 1;
    if (need > b->allocated) {
        size_t n = b->allocated ? b->allocated : 256;
        while (n < need)
            n *= 2;
        b->data = xrealloc(b->data, n);
        b->allocated = n;
    }
    return 0;
}

int buf_append(buf *b, const void *p, size_t n)
{
    int r = buf_reserve(b, n);
    if (r < 0)
        return r;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_append_str(buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    int r = buf_reserve(b, (size_t)n);
    if (r < 0)
        return r;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void buf_consume(buf *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void buf_reset(buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void buf_done(buf *b)
{
    b->data = mfree(b->data);
    b->len = b->allocated = 0;
}

char *buf_steal(buf *b, size_t *ret_len)
{
    char *d = b->data ? b->data : xstrdup("");
    if (ret_len)
        *ret_len = b->len;
    b->data = NULL;
    b->len = b->allocated = 0;
    return d;
}
