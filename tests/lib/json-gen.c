/* Random JSON for the differential tests (json-gen.h). Moved here from test-api-canonical.c, whose
 * sequences it keeps: a seed gives the same trees it gave there. */
#include "json-gen.h"

#include <math.h>
#include <string.h>

#include "api/utf8.h"
#include "base/macro.h"

static uint64_t rng_state = 1;

void jgen_seed(uint64_t seed)
{
    rng_state = seed ? seed : 1;
}

uint64_t jgen_next(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

unsigned jgen_below(unsigned n)
{
    return (unsigned)(jgen_next() % n);
}

size_t jgen_text(char *o, unsigned max)
{
    static const char special[] = "\"\\/\b\f\n\r\t\x01\x1f\x7f ";
    unsigned n = jgen_below(max + 1);
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        uint32_t cp;
        switch (jgen_below(8)) {
        case 0:
            cp = (uint32_t)special[jgen_below(sizeof(special) - 1)];
            break;
        case 1:
            cp = jgen_below(0x20); /* every control character, NUL included */
            break;
        case 2:
            cp = 0x80 + jgen_below(0x800 - 0x80);
            break;
        case 3:
            do
                cp = 0x800 + jgen_below(0x10000 - 0x800);
            while (cp >= 0xD800 && cp <= 0xDFFF);
            break;
        case 4:
            cp = 0x10000 + jgen_below(0x110000 - 0x10000);
            break;
        default:
            cp = 'a' + jgen_below(6); /* few letters, so keys share prefixes */
        }
        len += api_utf8_put(o + len, cp);
    }
    return len;
}

double jgen_real(void)
{
    static const double picks[] = {0.0,   -0.0, 0.1,     1e300,  1e-300,
                                   1.0,   -1.0, 0.5,     1e16,   1e17,
                                   1e-5,  1e-4, 123.456, 5e-324, 1.7976931348623157e308,
                                   3.0e10};
    for (;;) {
        double d;
        switch (jgen_below(3)) {
        case 0:
            return picks[jgen_below(ELEMENTSOF(picks))];
        case 1: {
            double m = (double)(int64_t)jgen_next(); /* in order: a seed must give the same trees */
            return m / (double)(1ULL << jgen_below(64));
        }
        default: {
            uint64_t bits = jgen_next();
            memcpy(&d, &bits, sizeof(d));
            if (isfinite(d)) /* jansson holds no NaN or infinity */
                return d;
        }
        }
    }
}

json_int_t jgen_integer(void)
{
    switch (jgen_below(4)) {
    case 0:
        return jgen_below(2) ? INT64_MAX : INT64_MIN;
    case 1:
        return (json_int_t)jgen_below(21) - 10;
    case 2: {
        uint64_t v = jgen_next();
        return (json_int_t)(v >> jgen_below(64));
    }
    default:
        return (json_int_t)jgen_next();
    }
}

json_t *jgen_tree(unsigned depth)
{
    char text[20 * 4];
    unsigned pick = jgen_below(depth >= 6 ? 7 : 9);
    switch (pick) {
    case 0:
        return json_null();
    case 1:
        return json_boolean(jgen_below(2));
    case 2:
        return json_integer(jgen_integer());
    case 3:
        return json_real(jgen_real());
    case 4:
    case 5:
    case 6: {
        size_t len = jgen_text(text, 20);
        return json_stringn(text, len);
    }
    case 7: {
        json_t *a = json_array();
        for (unsigned i = jgen_below(6); i > 0; i--)
            json_array_append_new(a, jgen_tree(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        unsigned n = jgen_below(6) == 0 ? jgen_below(40)
                                        : jgen_below(8); /* some above insertion sort's 16 */
        for (unsigned i = 0; i < n; i++) {
            size_t len = jgen_text(text, jgen_below(3) ? 4 : 12);
            json_object_setn_new(o, text, len, jgen_tree(depth + 1));
        }
        return o;
    }
    }
}
