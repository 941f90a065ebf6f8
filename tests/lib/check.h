/* The unit-test harness: a table of test functions and CHECK macros. Each test program prints one
 * "ok"/"FAIL" line per case and a closing "N passed, N failed" line, and exits non-zero when any
 * case failed; CTest runs one program per module. A failed CHECK ends its case with longjmp (not
 * the program), so later cases still run; the failed case's cleanup attributes are skipped, so
 * anything that must be undone even on failure (daemons) is registered with the fixture instead. */
#pragma once

#include <inttypes.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef struct check_case {
    const char *name;
    void (*fn)(void);
} check_case;

extern jmp_buf check_jmp;
extern int check_failures_in_case;

void check_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Runs the cases named on the command line (all when none) and returns the exit status. */
int check_run(const check_case *cases, size_t n, int argc, char **argv);
/* Ends the program as skipped: prints "skip: <why>" (printf-style) and exits 77, which CTest
 * reports as "Skipped" for a test with SKIP_RETURN_CODE 77 — a skip is not a pass. Handlers
 * registered with atexit (fixtures, teardowns) still run, so whatever was started is stopped. */
_Noreturn void check_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define CHECK_MAIN(...)                                                                            \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        static const check_case cases[] = {__VA_ARGS__};                                           \
        return check_run(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);                     \
    }
#define CASE(f)                                                                                    \
    {                                                                                              \
#f, f                                                                                      \
    }

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            check_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                                    \
    } while (0)

#define CHECK_INT(a, op, b)                                                                        \
    do {                                                                                           \
        long long _a_ = (long long)(a), _b_ = (long long)(b);                                      \
        if (!(_a_ op _b_))                                                                         \
            check_fail(__FILE__, __LINE__, "%s %s %s: %lld vs %lld", #a, #op, #b, _a_, _b_);       \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *_a_ = (a), *_b_ = (b);                                                         \
        if (!_a_ || !_b_ || strcmp(_a_, _b_) != 0)                                                 \
            check_fail(__FILE__, __LINE__, "%s == %s: \"%s\" vs \"%s\"", #a, #b,                   \
                       _a_ ? _a_ : "(null)", _b_ ? _b_ : "(null)");                                \
    } while (0)

/* Checks that an int-returning call succeeded (returned >= 0), printing the errno name if not. */
#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        int _r_ = (expr);                                                                          \
        if (_r_ < 0)                                                                               \
            check_fail(__FILE__, __LINE__, "%s failed: %d (%s)", #expr, _r_, strerror(-_r_));      \
    } while (0)
