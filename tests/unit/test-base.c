/* Unit tests for pkg/base: buffers, base64, time helpers. */
#include <errno.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "base/b64.h"
#include "base/buf.h"
#include "base/timeutil.h"
#include "check.h"

static void buf_caps_and_grows(void)
{
    buf b = BUF_INIT(10);
    CHECK_OK(buf_append_str(&b, "hello"));
    CHECK_INT(buf_append_str(&b, "world!"), ==, -EMSGSIZE);
    CHECK_STR(b.data, "hello"); /* a refused append leaves the buffer unchanged */
    CHECK_OK(buf_append_str(&b, "world"));
    CHECK_INT(b.len, ==, 10);
    buf_consume(&b, 3);
    CHECK_STR(b.data, "loworld");
    CHECK_OK(buf_printf(&b, "%d", 12));
    CHECK_STR(b.data, "loworld12");
    CHECK_INT(buf_printf(&b, "%d", 123), ==, -EMSGSIZE);
    buf_done(&b);

    buf big = BUF_INIT(0);
    for (int i = 0; i < 10000; i++)
        CHECK_OK(buf_append(&big, "abcdefgh", 8));
    CHECK_INT(big.len, ==, 80000);
    size_t n;
    char *d = buf_steal(&big, &n);
    CHECK_INT(n, ==, 80000);
    CHECK(big.data == NULL);
    free(d);
}

static void b64_round_trips(void)
{
    static const struct {
        const char *plain, *enc;
    } t[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
        {"/stratus/v1/x", "L3N0cmF0dXMvdjEveA=="},
    };
    for (size_t i = 0; i < ELEMENTSOF(t); i++) {
        _cleanup_free_ char *e = b64_encode(t[i].plain, strlen(t[i].plain));
        CHECK_STR(e, t[i].enc);
        _cleanup_free_ char *d = NULL;
        size_t n;
        CHECK_OK(b64_decode(t[i].enc, strlen(t[i].enc), &d, &n));
        CHECK_INT(n, ==, strlen(t[i].plain));
        CHECK_STR(d, t[i].plain);
    }
    unsigned char bin[256];
    for (int i = 0; i < 256; i++)
        bin[i] = (unsigned char)i;
    _cleanup_free_ char *e = b64_encode(bin, sizeof(bin));
    _cleanup_free_ char *d = NULL;
    size_t n;
    CHECK_OK(b64_decode(e, strlen(e), &d, &n));
    CHECK_INT(n, ==, 256);
    CHECK(memcmp(d, bin, 256) == 0);

    static const char *bad[] = {"Zg=", "Zm9v!A==", "=Zg=", "Zg==Zg==x", "Z===", "Zm9vY*=="};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        char *x = NULL;
        CHECK_INT(b64_decode(bad[i], strlen(bad[i]), &x, &n), ==, -EINVAL);
        CHECK(x == NULL);
    }
}

static void durations_parse(void)
{
    static const struct {
        const char *s;
        usec_t v;
    } ok[] = {
        {"30", 30 * USEC_PER_SEC},  {"30s", 30 * USEC_PER_SEC},     {"250ms", 250 * USEC_PER_MSEC},
        {"5m", 300 * USEC_PER_SEC}, {"1h30m", 5400 * USEC_PER_SEC}, {"10us", 10},
    };
    for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
        usec_t v = 0;
        CHECK_OK(duration_parse(ok[i].s, &v));
        CHECK_INT(v, ==, ok[i].v);
    }
    static const char *bad[] = {"", "s", "5x", "-5s", "5 s", "99999999999999999999s", "1.5s"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        usec_t v;
        CHECK_INT(duration_parse(bad[i], &v), ==, -EINVAL);
    }
}

static void timestamps_round_trip(void)
{
    char out[TIMESTAMP_MAX];
    usec_t t = 1795833060ULL * USEC_PER_SEC;
    CHECK_STR(timestamp_format(t, out), "2026-11-28T02:31:00Z");
    usec_t back = 0;
    CHECK_OK(timestamp_parse(out, &back));
    CHECK_INT(back, ==, t);
    CHECK_OK(timestamp_parse("2026-11-28T02:31:00.5Z", &back));
    CHECK_INT(back, ==, t + USEC_PER_SEC / 2);
    CHECK_STR(timestamp_format_ms(t + 123456, out), "2026-11-28T02:31:00.123Z");
    CHECK_OK(timestamp_parse(out, &back));
    CHECK_INT(back, ==, t + 123000);
    CHECK_INT(timestamp_parse("2026-11-28 23:11:00", &back), ==, -EINVAL);
    CHECK_INT(timestamp_parse("2026-11-28T02:31:00+01:00", &back), ==, -EINVAL);
}

CHECK_MAIN(CASE(buf_caps_and_grows), CASE(b64_round_trips), CASE(durations_parse),
           CASE(timestamps_round_trip))
