/* Time helpers: microsecond clocks, RFC 3339 timestamps, and human durations ("30s", "5m"). */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef uint64_t usec_t;

#define USEC_PER_SEC  ((usec_t)1000000ULL)
#define USEC_PER_MSEC ((usec_t)1000ULL)
#define USEC_INFINITY ((usec_t)UINT64_MAX)

usec_t now_monotonic(void);
usec_t now_realtime(void);

/* Formats a realtime usec as "2026-11-22T02:31:00Z" (UTC, second precision) into out, which
 * must hold at least TIMESTAMP_MAX bytes. Returns out. */
#define TIMESTAMP_MAX 32
char *timestamp_format(usec_t t, char out[static TIMESTAMP_MAX]);
/* The same with milliseconds ("2026-11-22T02:31:00.123Z"), for durations that matter below a
 * second (build steps). */
char *timestamp_format_ms(usec_t t, char out[static TIMESTAMP_MAX]);
/* Parses an RFC 3339 UTC timestamp ("...Z" with optional fraction). Returns 0 or -EINVAL. */
int timestamp_parse(const char *s, usec_t *ret);
/* Parses "250ms", "30s", "5m", "2h", "1h30m", or a bare number of seconds. Returns 0 or -EINVAL
 * (also for overflow). */
int duration_parse(const char *s, usec_t *ret);
