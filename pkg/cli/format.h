/* Small text formatters for stratusctl: ages as kubectl prints them ("5s", "3m10s", "4d"),
 * durations of build steps, memory and disk sizes, kind names as the CLI spells them, and cell
 * text made safe for one table cell. Pure functions on caller-provided buffers: any thread. */
#pragma once

#include <stdint.h>

#include "api/kind.h"
#include "base/timeutil.h"

#define CLI_AGE_MAX 32

/* kubectl's HumanDuration of `seconds`: "0s".."119s", "2m5s".."9m59s", "10m".."179m", "3h5m"..
 * "7h59m", "8h".."47h", "2d3h".."7d23h", "8d".."729d", "2y10d".., "8y". A negative age beyond
 * the 1 s of clock skew tolerated gives "<invalid>". Returns out. */
const char *cli_age_format(int64_t seconds, char out[static CLI_AGE_MAX]);
/* The age of an RFC 3339 timestamp at realtime `now` (usec); "<unknown>" when ts is NULL or not
 * a timestamp. Returns out. */
const char *cli_age_since(const char *ts, usec_t now, char out[static CLI_AGE_MAX]);
/* A step duration: "850ms", "3.2s", "2m5s", "1h2m". Returns out. */
const char *cli_duration_format(usec_t d, char out[static CLI_AGE_MAX]);
/* The time between two RFC 3339 timestamps as cli_duration_format; "" when either is missing or
 * invalid, or end is before start. Returns out. */
const char *cli_duration_between(const char *start, const char *end, char out[static CLI_AGE_MAX]);
/* Sizes: 512 → "512Mi", 2048 → "2Gi", 1536 → "1536Mi" (MiB); 20 → "20Gi" (GiB). Returns out. */
const char *cli_mib_format(int64_t mib, char out[static CLI_AGE_MAX]);
const char *cli_gib_format(int64_t gib, char out[static CLI_AGE_MAX]);

/* The kind as the CLI prints it in "instance/web-1": the kind name in lower case. Static
 * strings from a table; NULL for an unknown kind. */
const char *cli_kind_singular(const api_kind_info *k);

/* A copy of s fit for one table cell or one line of text: control characters (newlines, tabs)
 * become spaces and the text is cut after `max` bytes (on a UTF-8 boundary, ending in "...").
 * NULL or "" gives `empty` (which may be NULL for ""). malloc'd. */
char *cli_cell(const char *s, size_t max, const char *empty);
/* Display width of UTF-8 text: code points, not bytes (no wide-character tables). */
size_t cli_text_width(const char *s);
