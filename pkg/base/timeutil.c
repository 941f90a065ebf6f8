/* Clocks and time formats. */
#include "timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static usec_t clock_usec(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / 1000;
}

usec_t now_monotonic(void)
{
    return clock_usec(CLOCK_MONOTONIC);
}

usec_t now_realtime(void)
{
    return clock_usec(CLOCK_REALTIME);
}

char *timestamp_format(usec_t t, char out[static TIMESTAMP_MAX])
{
    time_t sec = (time_t)(t / USEC_PER_SEC);
    struct tm tm;
    gmtime_r(&sec, &tm);
    strftime(out, TIMESTAMP_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return out;
}

char *timestamp_format_ms(usec_t t, char out[static TIMESTAMP_MAX])
{
    time_t sec = (time_t)(t / USEC_PER_SEC);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(out, TIMESTAMP_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, TIMESTAMP_MAX - n, ".%03uZ", (unsigned)(t % USEC_PER_SEC / 1000));
    return out;
}

int timestamp_parse(const char *s, usec_t *ret)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -EINVAL;
    usec_t frac = 0;
    if (*p == '.') {
        usec_t scale = 100000;
        p++;
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        for (; isdigit((unsigned char)*p); p++) {
            frac += (usec_t)(*p - '0') * scale;
            scale /= 10;
        }
    }
    if (strcmp(p, "Z") != 0)
        return -EINVAL;
    time_t sec = timegm(&tm);
    if (sec < 0)
        return -EINVAL;
    *ret = (usec_t)sec * USEC_PER_SEC + frac;
    return 0;
}

int duration_parse(const char *s, usec_t *ret)
{
    static const struct {
        const char *suffix;
        usec_t mult;
    } units[] = {
        {"us", 1},
        {"ms", USEC_PER_MSEC},
        {"s", USEC_PER_SEC},
        {"m", 60 * USEC_PER_SEC},
        {"h", 3600 * USEC_PER_SEC},
    };
    if (!s || !*s)
        return -EINVAL;
    usec_t total = 0;
    const char *p = s;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        usec_t v = 0;
        for (; isdigit((unsigned char)*p); p++) {
            if (v > (UINT64_MAX - 9) / 10)
                return -EINVAL;
            v = v * 10 + (usec_t)(*p - '0');
        }
        usec_t mult = 0;
        if (!*p && p != s && total == 0)
            mult = USEC_PER_SEC; /* a bare number means seconds */
        for (size_t i = 0; !mult && i < sizeof(units) / sizeof(units[0]); i++) {
            size_t n = strlen(units[i].suffix);
            /* "m" must not swallow the "m" of "ms" */
            if (strncmp(p, units[i].suffix, n) == 0 && !isalpha((unsigned char)p[n])) {
                mult = units[i].mult;
                p += n;
            }
        }
        if (!mult || (v && mult > UINT64_MAX / v) || total > UINT64_MAX - v * mult)
            return -EINVAL;
        total += v * mult;
    }
    *ret = total;
    return 0;
}
