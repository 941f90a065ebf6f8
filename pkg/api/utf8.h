/* The bytes of a JSON string as jansson sees them, shared by the canonical dumper (canonical.c)
 * and the parser (parse.c): which bytes stand for themselves, which need an escape, and which
 * multi-byte UTF-8 sequences jansson accepts (its utf8_check_first and utf8_check_full). Internal
 * to pkg/api; not a general UTF-8 library (no decoding, no code points out). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* What a byte starts in a string: plain text, a character that is escaped in JSON text ('"',
 * '\\', control characters), a UTF-8 sequence of 2-4 bytes, or nothing valid (a continuation
 * byte, an overlong lead 0xC0/0xC1, 0xF5-0xFF). A sequence's class is its length. */
enum {
    API_BYTE_PLAIN = 0,
    API_BYTE_ESCAPE = 1,
    API_BYTE_SEQ2 = 2,
    API_BYTE_SEQ3 = 3,
    API_BYTE_SEQ4 = 4,
    API_BYTE_INVALID = 5,
};

static const unsigned char api_byte_class[256] = {
    [0x00 ... 0x1F] = API_BYTE_ESCAPE, ['"'] = API_BYTE_ESCAPE,
    ['\\'] = API_BYTE_ESCAPE,          [0x80 ... 0xC1] = API_BYTE_INVALID,
    [0xC2 ... 0xDF] = API_BYTE_SEQ2,   [0xE0 ... 0xEF] = API_BYTE_SEQ3,
    [0xF0 ... 0xF4] = API_BYTE_SEQ4,   [0xF5 ... 0xFF] = API_BYTE_INVALID,
};

/* Whether the n-byte sequence at p (n = its lead's class, at most end - p bytes available) is
 * one jansson's utf8_check_full accepts: continuation bytes, a code point in range, no surrogate,
 * no overlong form. */
static inline bool api_utf8_sequence_valid(const unsigned char *p, const unsigned char *end,
                                           size_t n)
{
    if ((size_t)(end - p) < n)
        return false;
    static const unsigned char lead_mask[5] = {0, 0, 0x1F, 0x0F, 0x07};
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    uint32_t cp = p[0] & lead_mask[n];
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return false;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    return cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF) && cp >= least[n];
}

#define API_BYTES_ONES 0x0101010101010101ULL

/* Whether the 8 bytes at p are all plain: none below 0x20, none '"' or '\\', none above 0x7f.
 * False may still be plain (a borrow), never the reverse: callers look at the bytes one by one
 * then. */
static inline bool api_bytes8_plain(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    uint64_t special = (w - API_BYTES_ONES * 0x20) | ((w ^ API_BYTES_ONES * '"') - API_BYTES_ONES) |
                       ((w ^ API_BYTES_ONES * '\\') - API_BYTES_ONES) | w;
    return !(special & API_BYTES_ONES * 0x80);
}

/* The first byte at or after p that is not plain (see api_bytes8_plain), or end. Sixteen bytes
 * at a time where SSE2 is there (a signed compare below 0x20 also catches every byte from 0x80),
 * else eight. */
static inline const unsigned char *api_plain_skip(const unsigned char *p, const unsigned char *end)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i special =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                         _mm_cmplt_epi8(x, space));
        unsigned mask = (unsigned)_mm_movemask_epi8(special);
        if (mask)
            return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
    while (end - p >= 8 && api_bytes8_plain(p))
        p += 8;
    while (p < end && api_byte_class[*p] == API_BYTE_PLAIN)
        p++;
    return p;
}

/* Writes code point cp (at most 0x10FFFF, not a surrogate) as 1-4 bytes of UTF-8 at o; returns
 * how many. */
static inline size_t api_utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}
