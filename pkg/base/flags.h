/* Flag values for the programs (cmd/): one wording for every bad value, so each program says
 * "--workers: "x" is not a number in 1..1000" the same way. Each returns 0, or logs the problem
 * (programs log; see log.h) and returns -EINVAL. For programs only, not for libraries. */
#pragma once

#include "base/timeutil.h"

/* A whole number in 1..max. */
int flag_count(const char *flag, const char *value, long long max, long long *ret);
/* A duration above zero: "250ms", "30s", "5m". */
int flag_duration(const char *flag, const char *value, usec_t *ret);
/* error, warning, info or debug: applied with log_setup(program, …). */
int flag_log_level(const char *program, const char *value);
