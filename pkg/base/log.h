/* Logging for programs (libraries return errors and do not log). One line per record on stderr:
 * "2026-11-22T02:31:00Z stratus-apiserver[123]: warning: message". */
#pragma once

#include "macro.h"

typedef enum log_level {
    LOG_LEVEL_ERROR,
    LOG_LEVEL_WARNING,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
    _LOG_LEVEL_MAX,
} log_level;

void log_setup(const char *program, log_level max_level);
/* Parses "error", "warning", "info" or "debug". Returns the level or -EINVAL. */
int log_level_from_string(const char *s);
const char *log_level_to_string(log_level l);
/* Logs and returns `error` (a -errno), so `return log_error_errno(r, "...")` reads naturally. */
int log_full(log_level level, int error, const char *fmt, ...) _printf_(3, 4);

#define log_error(...)            log_full(LOG_LEVEL_ERROR, 0, __VA_ARGS__)
#define log_warning(...)          log_full(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_info(...)             log_full(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_debug(...)            log_full(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_error_errno(e, ...)   log_full(LOG_LEVEL_ERROR, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full(LOG_LEVEL_WARNING, (e), __VA_ARGS__)
