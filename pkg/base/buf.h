/* A growable byte buffer with a size cap: the one way Stratus collects bytes from the network.
 * The data is always NUL-terminated (the terminator is not counted in len), so text can be
 * handed to parsers directly. Not thread-safe; owned by whoever embeds it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct buf {
    char *data;
    size_t len;
    size_t allocated;
    size_t max; /* 0 = no cap */
} buf;

#define BUF_INIT(cap) ((buf){.data = NULL, .len = 0, .allocated = 0, .max = (cap)})

/* Appends n bytes. Returns 0, or -EMSGSIZE (nothing appended) when len would pass max. */
int buf_append(buf *b, const void *p, size_t n);
int buf_append_str(buf *b, const char *s);
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes, keeping the rest (used by stream framers). */
void buf_consume(buf *b, size_t n);
void buf_reset(buf *b);
/* Frees the storage; the buffer can be used again afterwards. */
void buf_done(buf *b);
/* Hands the data to the caller (who frees it) and resets the buffer. Never NULL. */
char *buf_steal(buf *b, size_t *ret_len);
