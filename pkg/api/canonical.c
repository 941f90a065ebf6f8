/* The canonical text of a JSON value: the bytes of jansson's
 * json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY), made without its costs. jansson
 * gathers an object's keys, qsorts them, looks each value up again by hash, and registers every
 * container in a hashtable keyed by its printed address to detect cycles. Here an object's
 * (key, length, value) triples come from one walk of it and are sorted in place on a scratch
 * stack shared by the whole dump, and depth is bounded instead of tracked.
 *
 * Where only jansson knows the answer, jansson makes the whole dump, so such a tree gives exactly
 * what it gave before: nesting past API_CANONICAL_DEPTH_MAX (a cycle: no text; a tree no parser
 * made), a string that is not valid UTF-8 (no text) and a key that is not (part of the key, then
 * the rest of the object). Reals are formatted by jansson, one scalar at a time.
 *
 * Not a general JSON encoder: no indentation, no escaping options. */
#include "api/canonical.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/object.h"
#include "api/utf8.h"
#include "base/alloc.h"

#define CANON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)

typedef struct canon_entry {
    const char *key;
    size_t len;
    json_t *value;
} canon_entry;

/* One dump: the text so far and the scratch stack of object entries. Both start on the caller's
 * stack and move to the heap only when they outgrow it. */
typedef struct canon {
    char *text;
    size_t len, allocated;
    bool text_heap;
    canon_entry *ents;
    size_t n_ents, allocated_ents;
    bool ents_heap;
} canon;

static void canon_done(canon *c)
{
    if (c->text_heap)
        free(c->text);
    if (c->ents_heap)
        free(c->ents);
}

static void text_grow(canon *c, size_t need)
{
    size_t n = c->allocated * 2;
    if (n < need)
        n = need;
    if (c->text_heap)
        c->text = xrealloc(c->text, n);
    else {
        char *p = xmalloc(n);
        memcpy(p, c->text, c->len);
        c->text = p;
        c->text_heap = true;
    }
    c->allocated = n;
}

/* Room for n more bytes; returns where they go (c->len is not moved). */
static inline char *text_reserve(canon *c, size_t n)
{
    if (_unlikely_(n > c->allocated - c->len))
        text_grow(c, c->len + n);
    return c->text + c->len;
}

static inline void text_append(canon *c, const void *p, size_t n)
{
    memcpy(text_reserve(c, n), p, n);
    c->len += n;
}

static inline void text_byte(canon *c, char ch)
{
    *text_reserve(c, 1) = ch;
    c->len++;
}

/* s[0..n) as a JSON string, escaped as jansson does without JSON_ENSURE_ASCII and
 * JSON_ESCAPE_SLASH: '"', '\\' and the short forms \b \f \n \r \t, other control characters as
 * \u00XX with upper-case hex, everything else (UTF-8 included) as it is. */
static int put_string(canon *c, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s, *end = p + n, *run = p;
    text_byte(c, '"');
    while (p < end) {
        /* Eight plain bytes at a time. */
        while (end - p >= 8 && api_bytes8_plain(p))
            p += 8;
        if (p == end)
            break;
        unsigned cls = api_byte_class[*p];
        if (_likely_(cls == API_BYTE_PLAIN)) {
            p++;
            continue;
        }
        if (cls >= API_BYTE_SEQ2 && cls <= API_BYTE_SEQ4) {
            if (!api_utf8_sequence_valid(p, end, cls))
                return -EILSEQ;
            p += cls;
            continue;
        }
        if (cls == API_BYTE_INVALID)
            return -EILSEQ;
        text_append(c, run, (size_t)(p - run));
        char *o = text_reserve(c, 6);
        o[0] = '\\';
        size_t w = 2;
        switch (*p) {
        case '"':
        case '\\':
            o[1] = (char)*p;
            break;
        case '\b':
            o[1] = 'b';
            break;
        case '\f':
            o[1] = 'f';
            break;
        case '\n':
            o[1] = 'n';
            break;
        case '\r':
            o[1] = 'r';
            break;
        case '\t':
            o[1] = 't';
            break;
        default:
            memcpy(o + 1, "u00", 3);
            o[4] = hex[*p >> 4];
            o[5] = hex[*p & 0xF];
            w = 6;
        }
        c->len += w;
        run = ++p;
    }
    text_append(c, run, (size_t)(p - run));
    text_byte(c, '"');
    return 0;
}

static void put_integer(canon *c, json_int_t v)
{
    char tmp[24], *e = tmp + sizeof(tmp), *p = e;
    /* In unsigned arithmetic, so the most negative value needs no special case. */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    text_append(c, p, (size_t)(e - p));
}

/* jansson's own digits: its real formatting (shortest round trip, ".0" added) is not worth
 * copying for the few reals objects hold. */
static int put_real(canon *c, const json_t *j)
{
    char tmp[64];
    size_t n = json_dumpb(j, tmp, sizeof(tmp), CANON_FLAGS);
    if (n == 0 || n > sizeof(tmp))
        return -EINVAL;
    text_append(c, tmp, n);
    return 0;
}

static inline bool entry_before(const canon_entry *a, const canon_entry *b)
{
    /* Most keys differ in their first byte; jansson keeps a NUL after every key, so it can be
     * read even for "". */
    unsigned char a0 = (unsigned char)a->key[0], b0 = (unsigned char)b->key[0];
    if (a0 != b0)
        return a0 < b0;
    int r = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);
    return r < 0 || (r == 0 && a->len < b->len);
}

/* Byte order, shorter first on a common prefix: jansson's compare_keys (memcmp, then length). */
static int entry_cmp(const void *a, const void *b)
{
    return entry_before(a, b) ? -1 : entry_before(b, a) ? 1 : 0;
}

static void entries_sort(canon_entry *e, size_t n)
{
    if (n > 16) {
        qsort(e, n, sizeof(*e), entry_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        canon_entry x = e[i];
        size_t k = i;
        for (; k > 0 && entry_before(&x, &e[k - 1]); k--)
            e[k] = e[k - 1];
        e[k] = x;
    }
}

static void entries_reserve(canon *c, size_t n)
{
    if (n <= c->allocated_ents - c->n_ents)
        return;
    size_t need = c->n_ents + n, a = c->allocated_ents * 2;
    if (a < need)
        a = need;
    if (c->ents_heap)
        c->ents = xrealloc(c->ents, a * sizeof(*c->ents));
    else {
        canon_entry *p = xmalloc(a * sizeof(*p));
        memcpy(p, c->ents, c->n_ents * sizeof(*p));
        c->ents = p;
        c->ents_heap = true;
    }
    c->allocated_ents = a;
}

static int put_value(canon *c, const json_t *j, unsigned depth);

static int put_object(canon *c, const json_t *j, unsigned depth)
{
    size_t n = json_object_size(j);
    if (n == 0) {
        text_append(c, "{}", 2);
        return 0;
    }
    /* This object's entries sit at [base, base + n) of the scratch stack while its members are
     * dumped above them; the stack may move meanwhile, so they are reached by index. */
    entries_reserve(c, n);
    size_t base = c->n_ents, got = 0;
    for (void *it = json_object_iter((json_t *)j); it && got < n;
         it = json_object_iter_next((json_t *)j, it))
        c->ents[base + got++] = (canon_entry){.key = json_object_iter_key(it),
                                              .len = json_object_iter_key_len(it),
                                              .value = json_object_iter_value(it)};
    c->n_ents += got;
    entries_sort(c->ents + base, got);
    int r = 0;
    text_byte(c, '{');
    for (size_t i = 0; i < got && r == 0; i++) {
        if (i)
            text_byte(c, ',');
        const canon_entry *e = &c->ents[base + i];
        r = put_string(c, e->key, e->len);
        if (r == 0) {
            text_byte(c, ':');
            r = put_value(c, e->value, depth + 1);
        }
    }
    c->n_ents = base;
    if (r == 0)
        text_byte(c, '}');
    return r;
}

static int put_array(canon *c, const json_t *j, unsigned depth)
{
    size_t n = json_array_size(j);
    text_byte(c, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            text_byte(c, ',');
        int r = put_value(c, json_array_get(j, i), depth + 1);
        if (r < 0)
            return r;
    }
    text_byte(c, ']');
    return 0;
}

/* depth: how many containers enclose j. */
static int put_value(canon *c, const json_t *j, unsigned depth)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return depth < API_CANONICAL_DEPTH_MAX ? put_object(c, j, depth) : -ELOOP;
    case JSON_ARRAY:
        return depth < API_CANONICAL_DEPTH_MAX ? put_array(c, j, depth) : -ELOOP;
    case JSON_STRING:
        return put_string(c, json_string_value(j), json_string_length(j));
    case JSON_INTEGER:
        put_integer(c, json_integer_value(j));
        return 0;
    case JSON_REAL:
        return put_real(c, j);
    case JSON_TRUE:
        text_append(c, "true", 4);
        return 0;
    case JSON_FALSE:
        text_append(c, "false", 5);
        return 0;
    case JSON_NULL:
        text_append(c, "null", 4);
        return 0;
    }
    return -EINVAL;
}

int api_json_canonical_fast(const json_t *j, char **ret_text)
{
    char text[4096];
    canon_entry ents[128];
    canon c = {
        .text = text, .allocated = sizeof(text), .ents = ents, .allocated_ents = ELEMENTSOF(ents)};
    int r = j ? put_value(&c, j, 0) : -EINVAL;
    if (r < 0) {
        canon_done(&c);
        return r;
    }
    text_byte(&c, '\0');
    if (c.text_heap) {
        *ret_text = xrealloc(c.text, c.len); /* give back the slack: callers keep the text */
        c.text_heap = false;
    } else
        *ret_text = xmemdup(c.text, c.len);
    canon_done(&c);
    return 0;
}

char *api_json_canonical(const json_t *j)
{
    char *s;
    if (api_json_canonical_fast(j, &s) == 0)
        return s;
    s = json_dumps(j, CANON_FLAGS);
    if (!s)
        alloc_oom(0);
    return s;
}
