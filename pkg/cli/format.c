/* Text formatters for stratusctl (see format.h): ages, durations, sizes, kind names, cells. */
#include "cli/format.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"

const char *cli_age_format(int64_t seconds, char out[static CLI_AGE_MAX])
{
    if (seconds < -1) {
        snprintf(out, CLI_AGE_MAX, "<invalid>");
        return out;
    }
    if (seconds < 0)
        seconds = 0;
    int64_t s = seconds, m = s / 60, h = s / 3600, d = h / 24;
    if (s < 120)
        snprintf(out, CLI_AGE_MAX, "%llds", (long long)s);
    else if (m < 10 && s % 60)
        snprintf(out, CLI_AGE_MAX, "%lldm%llds", (long long)m, (long long)(s % 60));
    else if (m < 180)
        snprintf(out, CLI_AGE_MAX, "%lldm", (long long)m);
    else if (h < 8 && m % 60)
        snprintf(out, CLI_AGE_MAX, "%lldh%lldm", (long long)h, (long long)(m % 60));
    else if (h < 48)
        snprintf(out, CLI_AGE_MAX, "%lldh", (long long)h);
    else if (h < 24 * 8 && h % 24)
        snprintf(out, CLI_AGE_MAX, "%lldd%lldh", (long long)d, (long long)(h % 24));
    else if (h < 24 * 365 * 2)
        snprintf(out, CLI_AGE_MAX, "%lldd", (long long)d);
    else if (h < 24 * 365 * 8 && d % 365)
        snprintf(out, CLI_AGE_MAX, "%lldy%lldd", (long long)(d / 365), (long long)(d % 365));
    else
        snprintf(out, CLI_AGE_MAX, "%lldy", (long long)(d / 365));
    return out;
}

const char *cli_age_since(const char *ts, usec_t now, char out[static CLI_AGE_MAX])
{
    usec_t t;
    if (!ts || timestamp_parse(ts, &t) < 0) {
        snprintf(out, CLI_AGE_MAX, "<unknown>");
        return out;
    }
    /* Whole seconds on both sides, as kubectl: a fraction never rounds an age up. */
    int64_t secs = (int64_t)(now / USEC_PER_SEC) - (int64_t)(t / USEC_PER_SEC);
    return cli_age_format(secs, out);
}

const char *cli_duration_format(usec_t d, char out[static CLI_AGE_MAX])
{
    uint64_t ms = d / USEC_PER_MSEC, s = d / USEC_PER_SEC;
    if (ms < 1000)
        snprintf(out, CLI_AGE_MAX, "%llums", (unsigned long long)ms);
    else if (s < 60)
        snprintf(out, CLI_AGE_MAX, "%llu.%llus", (unsigned long long)s,
                 (unsigned long long)(ms % 1000 / 100));
    else if (s < 3600)
        snprintf(out, CLI_AGE_MAX, "%llum%llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    else
        snprintf(out, CLI_AGE_MAX, "%lluh%llum", (unsigned long long)(s / 3600),
                 (unsigned long long)(s / 60 % 60));
    return out;
}

const char *cli_duration_between(const char *start, const char *end, char out[static CLI_AGE_MAX])
{
    usec_t a, b;
    out[0] = '\0';
    if (!start || !end || timestamp_parse(start, &a) < 0 || timestamp_parse(end, &b) < 0 || b < a)
        return out;
    return cli_duration_format(b - a, out);
}

const char *cli_mib_format(int64_t mib, char out[static CLI_AGE_MAX])
{
    if (mib >= 1024 * 1024 && mib % (1024 * 1024) == 0)
        snprintf(out, CLI_AGE_MAX, "%lldTi", (long long)(mib / (1024 * 1024)));
    else if (mib >= 1024 && mib % 1024 == 0)
        snprintf(out, CLI_AGE_MAX, "%lldGi", (long long)(mib / 1024));
    else
        snprintf(out, CLI_AGE_MAX, "%lldMi", (long long)mib);
    return out;
}

const char *cli_gib_format(int64_t gib, char out[static CLI_AGE_MAX])
{
    if (gib >= 1024 && gib % 1024 == 0)
        snprintf(out, CLI_AGE_MAX, "%lldTi", (long long)(gib / 1024));
    else
        snprintf(out, CLI_AGE_MAX, "%lldGi", (long long)gib);
    return out;
}

const char *cli_kind_singular(const api_kind_info *k)
{
    static const char *const names[_API_KIND_MAX] = {
        [API_KIND_INSTANCE] = "instance", [API_KIND_FLAVOR] = "flavor",
        [API_KIND_IMAGE] = "image",       [API_KIND_NETWORK] = "network",
        [API_KIND_VOLUME] = "volume",     [API_KIND_SERVER_GROUP] = "servergroup",
        [API_KIND_NODE] = "node",         [API_KIND_EVENT] = "event",
        [API_KIND_LEASE] = "lease",
    };
    if (!k || k->kind < 0 || k->kind >= _API_KIND_MAX)
        return NULL;
    return names[k->kind] ? names[k->kind] : k->plural; /* a kind added without a row here */
}

char *cli_cell(const char *s, size_t max, const char *empty)
{
    if (!s || !*s)
        return xstrdup(empty ? empty : "");
    size_t n = strlen(s);
    bool cut = n > max;
    if (cut) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--; /* do not split a UTF-8 sequence */
    }
    char *out = xmalloc(n + 4);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    if (cut) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

size_t cli_text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}
