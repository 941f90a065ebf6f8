/* Validation errors: filling an api_error and quoting bad values for messages. */
#include "api/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"

int api_error_set(api_error *e, const char *path, const char *fmt, ...)
{
    if (!e)
        return -EINVAL;
    snprintf(e->path, sizeof(e->path), "%s", path ? path : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

char *api_error_to_string(const api_error *e)
{
    if (!e->path[0])
        return xstrdup(e->message);
    return xasprintf("%s: %s", e->path, e->message);
}

const char *api_quote(const char *s, char out[static API_QUOTE_MAX])
{
    size_t n = strlen(s), o = 0;
    bool cut = n > API_ERROR_VALUE_SHOWN;
    if (cut) {
        n = API_ERROR_VALUE_SHOWN;
        /* Never leave half a UTF-8 sequence: back up over continuation bytes. */
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (ch == '\t') {
            out[o++] = '\\';
            out[o++] = 't';
        } else if (ch < 0x20 || ch == 0x7F) {
            o += (size_t)snprintf(out + o, API_QUOTE_MAX - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    if (cut) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}
