/* api_json_loadb() and api_json_loads() (parse.h): jansson's json_loadb()/json_loads() without
 * their costs. jansson reads its input one byte at a time through a stream abstraction (one
 * indirect call, UTF-8 bookkeeping and a copy into a token buffer per byte), then copies every
 * string token again. Here one recursive descent walks the input in place: a string without
 * escapes goes from the input straight into json_stringn_nocheck() or
 * json_object_setn_new_nocheck() once its bytes are checked as jansson checks them (utf8.h), and
 * only a string with escapes is decoded, into a buffer on the caller's stack that moves to the
 * heap only when a string outgrows it. The tree is built with the same jansson calls jansson's
 * parser makes, so objects, duplicate keys (last wins) and singletons come out as jansson makes
 * them.
 *
 * The fast path accepts a subset of what jansson accepts and declines everything else; the caller
 * then lets jansson parse the whole input, so errors (text, line, column, position) are always
 * jansson's own, and a failure costs a fast attempt more than it did. Reals are converted by
 * strtod in the C locale, which is what jansson does after swapping '.' for the locale's decimal
 * point. */
#include "api/parse.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/utf8.h"
#include "base/alloc.h"

/* Longest real handed to strtod (copied, NUL-terminated); longer ones are left to jansson. */
#define REAL_TEXT_MAX 63
/* Integers of more digits may not fit in 64 bits; jansson says which are too big. */
#define INTEGER_DIGITS_MAX 19

typedef struct parser {
    const unsigned char *p, *end;
    bool reject_duplicates;
    /* The decoded text of the last string with escapes: on the caller's stack until a string
     * outgrows it. */
    char *buf;
    size_t allocated;
    bool buf_heap;
} parser;

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* jansson's whitespace: exactly these four. */
static inline void skip_space(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

/* Whether the next byte (after whitespace) is c; consumes it if so. */
static inline bool take(parser *ps, unsigned char c)
{
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == c) {
        ps->p++;
        return true;
    }
    return false;
}

static void buf_put(parser *ps, size_t *len, const void *p, size_t n)
{
    if (n > ps->allocated - *len) {
        size_t a = ps->allocated * 2;
        if (a < *len + n)
            a = *len + n;
        if (ps->buf_heap)
            ps->buf = xrealloc(ps->buf, a);
        else {
            char *h = xmalloc(a);
            memcpy(h, ps->buf, *len);
            ps->buf = h;
            ps->buf_heap = true;
        }
        ps->allocated = a;
    }
    memcpy(ps->buf + *len, p, n);
    *len += n;
}

/* The 4 hex digits at p (both cases), or -1. */
static int32_t hex4(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 4)
        return -1;
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* Past the run of bytes at p that stand for themselves in a string (plain ASCII and UTF-8
 * sequences jansson accepts); stops at '"', '\\', a control character, a byte that is not valid
 * UTF-8, or end. */
static const unsigned char *plain_run(const unsigned char *p, const unsigned char *end)
{
    for (;;) {
        p = api_plain_skip(p, end);
        if (p == end)
            return p;
        unsigned cls = api_byte_class[*p];
        if (cls >= API_BYTE_SEQ2 && cls <= API_BYTE_SEQ4 && api_utf8_sequence_valid(p, end, cls))
            p += cls;
        else
            return p;
    }
}

/* The rest of a string from its first escape at p (start: just past the opening quote), decoded
 * into ps->buf. jansson's rules: the short escapes, \uXXXX with a high surrogate only as the
 * first of a pair, no lone low surrogate; \u0000 declines (jansson refuses it in keys always and
 * in values without JSON_ALLOW_NUL). */
static bool string_decode(parser *ps, const unsigned char *start, const unsigned char *p,
                          const char **ret, size_t *ret_len)
{
    const unsigned char *end = ps->end;
    size_t n = 0;
    buf_put(ps, &n, start, (size_t)(p - start));
    for (;;) {
        if (p == end)
            return false;
        if (*p == '"')
            break;
        if (*p != '\\' || end - p < 2)
            return false; /* a control character or a byte that is not UTF-8 */
        char out[4];
        size_t w = 1;
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
            out[0] = (char)p[1];
            break;
        case 'b':
            out[0] = '\b';
            break;
        case 'f':
            out[0] = '\f';
            break;
        case 'n':
            out[0] = '\n';
            break;
        case 'r':
            out[0] = '\r';
            break;
        case 't':
            out[0] = '\t';
            break;
        case 'u': {
            int32_t cp = hex4(p + 2, end);
            if (cp <= 0)
                return false;
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (end - p < 4 || p[2] != '\\' || p[3] != 'u')
                    return false;
                int32_t low = hex4(p + 4, end);
                if (low < 0xDC00 || low > 0xDFFF)
                    return false;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                p += 6;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF)
                return false;
            w = api_utf8_put(out, (uint32_t)cp);
            break;
        }
        default:
            return false;
        }
        buf_put(ps, &n, out, w);
        p += 2;
        const unsigned char *run = p;
        p = plain_run(p, end);
        buf_put(ps, &n, run, (size_t)(p - run));
    }
    ps->p = p + 1;
    *ret = ps->buf;
    *ret_len = n;
    return true;
}

/* The string whose opening quote is at ps->p: its text in *ret, either in the input or, when it
 * has escapes, in ps->buf (valid until the next string with escapes). ps->p ends past the closing
 * quote. */
static bool string_scan(parser *ps, const char **ret, size_t *ret_len)
{
    const unsigned char *start = ps->p + 1, *p = plain_run(start, ps->end);
    if (p < ps->end && *p == '"') {
        ps->p = p + 1;
        *ret = (const char *)start;
        *ret_len = (size_t)(p - start);
        return true;
    }
    return string_decode(ps, start, p, ret, ret_len);
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* The real whose text is [start, ps->p) with more to come at ps->p ('.', 'e' or 'E'). */
static json_t *real_parse(parser *ps, const unsigned char *start)
{
    const unsigned char *p = ps->p, *end = ps->end;
    if (*p == '.') {
        p++;
        if (p == end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p))
            p++;
    }
    size_t n = (size_t)(p - start);
    if (n > REAL_TEXT_MAX)
        return NULL;
    pthread_once(&c_locale_once, c_locale_init);
    if (!c_locale)
        return NULL;
    char text[REAL_TEXT_MAX + 1], *text_end;
    memcpy(text, start, n);
    text[n] = '\0';
    int saved_errno = errno;
    errno = 0;
    double d = strtod_l(text, &text_end, c_locale);
    /* jansson refuses overflow (json_real would refuse the infinity too), and takes underflow (to
     * 0 or a subnormal) as it comes. */
    bool overflow = (d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE;
    errno = saved_errno;
    if (overflow || text_end != text + n)
        return NULL;
    ps->p = p;
    return json_real(d);
}

static json_t *number_parse(parser *ps)
{
    const unsigned char *start = ps->p, *p = start, *end = ps->end;
    bool negative = *p == '-';
    if (negative)
        p++;
    if (p == end || !is_digit(*p))
        return NULL;
    const unsigned char *digits = p;
    uint64_t u = 0;
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p))
            return NULL; /* no leading zeros */
    } else
        for (; p < end && is_digit(*p); p++)
            u = u * 10 + (unsigned)(*p - '0'); /* wraps past 19 digits: checked below */
    ps->p = p;
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
        return real_parse(ps, start);
    if (p - digits > INTEGER_DIGITS_MAX || u > (uint64_t)INT64_MAX + negative)
        return NULL; /* jansson: "too big integer" */
    /* -(u - 1) - 1: -2^63 has no positive counterpart. */
    return json_integer(!negative ? (json_int_t)u : u ? -(json_int_t)(u - 1) - 1 : 0);
}

/* "true", "false" or "null" at ps->p; jansson reads a run of letters as one token, so "trueish"
 * is no literal. */
static json_t *literal_parse(parser *ps, const char *word, size_t n, json_t *value)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return NULL;
    ps->p += n;
    if (ps->p < ps->end && is_alpha(*ps->p))
        return NULL;
    return value;
}

static json_t *value_parse(parser *ps, unsigned depth);

static json_t *object_parse(parser *ps, unsigned depth)
{
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    ps->p++;
    if (take(ps, '}'))
        return obj;
    for (;;) {
        const char *key;
        size_t key_len;
        skip_space(ps);
        if (ps->p == ps->end || *ps->p != '"' || !string_scan(ps, &key, &key_len))
            break;
        /* A decoded key lives in ps->buf, which the value's strings may reuse. */
        char *key_copy = key == ps->buf ? xmemdup(key, key_len) : NULL;
        if (key_copy)
            key = key_copy;
        json_t *v = NULL;
        if (take(ps, ':')) {
            skip_space(ps);
            v = value_parse(ps, depth + 1);
        }
        size_t size = ps->reject_duplicates ? json_object_size(obj) : 0;
        /* Takes v even when it fails; jansson adds members with this very call. */
        bool added = v && json_object_setn_new_nocheck(obj, key, key_len, v) == 0;
        free(key_copy);
        if (!added || (ps->reject_duplicates && json_object_size(obj) == size))
            break;
        if (take(ps, '}'))
            return obj;
        if (!take(ps, ','))
            break;
    }
    json_decref(obj);
    return NULL;
}

static json_t *array_parse(parser *ps, unsigned depth)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    ps->p++;
    if (take(ps, ']'))
        return a;
    for (;;) {
        skip_space(ps);
        json_t *v = value_parse(ps, depth + 1);
        if (!v || json_array_append_new(a, v) < 0)
            break;
        if (take(ps, ']'))
            return a;
        if (!take(ps, ','))
            break;
    }
    json_decref(a);
    return NULL;
}

/* The value at ps->p (whitespace skipped); depth: how many containers enclose it. */
static json_t *value_parse(parser *ps, unsigned depth)
{
    if (ps->p == ps->end)
        return NULL;
    switch (*ps->p) {
    case '{':
        return depth < API_PARSE_DEPTH_MAX ? object_parse(ps, depth) : NULL;
    case '[':
        return depth < API_PARSE_DEPTH_MAX ? array_parse(ps, depth) : NULL;
    case '"': {
        const char *s;
        size_t n;
        return string_scan(ps, &s, &n) ? json_stringn_nocheck(s, n) : NULL;
    }
    case '-':
    case '0' ... '9':
        return number_parse(ps);
    case 't':
        return literal_parse(ps, "true", 4, json_true());
    case 'f':
        return literal_parse(ps, "false", 5, json_false());
    case 'n':
        return literal_parse(ps, "null", 4, json_null());
    }
    return NULL;
}

json_t *api_json_parse_fast(const char *text, size_t len, size_t flags)
{
    if (!text || (flags & ~(size_t)JSON_REJECT_DUPLICATES))
        return NULL;
    char buf[1024];
    parser ps = {.p = (const unsigned char *)text,
                 .end = (const unsigned char *)text + len,
                 .reject_duplicates = flags & JSON_REJECT_DUPLICATES,
                 .buf = buf,
                 .allocated = sizeof(buf)};
    skip_space(&ps);
    json_t *j = NULL;
    /* Without JSON_DECODE_ANY jansson takes only an object or an array at the top. */
    if (ps.p < ps.end && (*ps.p == '{' || *ps.p == '['))
        j = value_parse(&ps, 0);
    skip_space(&ps);
    if (j && ps.p != ps.end) { /* jansson: "end of file expected" */
        json_decref(j);
        j = NULL;
    }
    if (ps.buf_heap)
        free(ps.buf);
    return j;
}

/* *error as jansson leaves it after a success: initialised for `source`, then the position of
 * the end of input (all of it read). The rest of error->text is left alone, as jansson does. */
static void error_set_success(json_error_t *error, const char *source, size_t len)
{
    if (!error)
        return;
    error->text[0] = '\0';
    error->line = -1;
    error->column = -1;
    error->position = (int)len;
    memcpy(error->source, source, strlen(source) + 1);
}

json_t *api_json_loadb(const char *text, size_t len, size_t flags, json_error_t *error)
{
    json_t *j = api_json_parse_fast(text, len, flags);
    if (!j)
        return json_loadb(text, len, flags, error);
    error_set_success(error, "<buffer>", len);
    return j;
}

json_t *api_json_loads(const char *text, size_t flags, json_error_t *error)
{
    size_t len = text ? strlen(text) : 0;
    json_t *j = api_json_parse_fast(text, len, flags);
    if (!j)
        return json_loads(text, flags, error);
    error_set_success(error, "<string>", len);
    return j;
}
