/* Program logging to stderr. Thread-safe: each record is formatted first, then written once. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "timeutil.h"

static const char *const log_level_table[_LOG_LEVEL_MAX] = {
    [LOG_LEVEL_ERROR] = "error",
    [LOG_LEVEL_WARNING] = "warning",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_DEBUG] = "debug",
};

static const char *log_program = "stratus";
static log_level log_max = LOG_LEVEL_INFO;

void log_setup(const char *program, log_level max_level)
{
    log_program = program;
    log_max = max_level;
}

int log_level_from_string(const char *s)
{
    for (int i = 0; i < _LOG_LEVEL_MAX; i++)
        if (strcmp(s, log_level_table[i]) == 0)
            return i;
    return -EINVAL;
}

const char *log_level_to_string(log_level l)
{
    return l < _LOG_LEVEL_MAX ? log_level_table[l] : "?";
}

int log_full(log_level level, int error, const char *fmt, ...)
{
    if (level > log_max)
        return error;
    char ts[TIMESTAMP_MAX], msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char line[4096 + 256];
    int n;
    if (error)
        n = snprintf(line, sizeof(line), "%s %s[%d]: %s: %s: %s\n",
                     timestamp_format(now_realtime(), ts), log_program, (int)getpid(),
                     log_level_table[level], msg, strerror(-error));
    else
        n = snprintf(line, sizeof(line), "%s %s[%d]: %s: %s\n",
                     timestamp_format(now_realtime(), ts), log_program, (int)getpid(),
                     log_level_table[level], msg);
    if (n > 0)
        (void)!write(STDERR_FILENO, line, MIN((size_t)n, sizeof(line) - 1));
    return error;
}
