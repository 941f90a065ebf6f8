/* Flag value parsing shared by the programs. */
#include "base/flags.h"

#include <errno.h>
#include <stdlib.h>

#include "base/log.h"

int flag_count(const char *flag, const char *value, long long max, long long *ret)
{
    char *end;
    errno = 0;
    long long n = strtoll(value, &end, 10);
    if (errno || end == value || *end || n <= 0 || n > max) {
        log_error("%s: \"%s\" is not a number in 1..%lld", flag, value, max);
        return -EINVAL;
    }
    *ret = n;
    return 0;
}

int flag_duration(const char *flag, const char *value, usec_t *ret)
{
    if (duration_parse(value, ret) < 0 || *ret == 0) {
        log_error("%s: \"%s\" is not a duration like 30s or 5m", flag, value);
        return -EINVAL;
    }
    return 0;
}

int flag_log_level(const char *program, const char *value)
{
    int l = log_level_from_string(value);
    if (l < 0) {
        log_error("--log-level: \"%s\" is not error, warning, info or debug", value);
        return -EINVAL;
    }
    log_setup(program, (log_level)l);
    return 0;
}
