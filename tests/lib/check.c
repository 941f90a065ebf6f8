/* Test harness runner. */
#include "check.h"

#include <stdarg.h>
#include <stdlib.h>

#include "base/macro.h"
#include "base/timeutil.h"

jmp_buf check_jmp;
int check_failures_in_case;

void check_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "  %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    check_failures_in_case++;
    longjmp(check_jmp, 1);
}

void check_skip(const char *fmt, ...)
{
    va_list ap;
    fputs("skip: ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    exit(77);
}

/* setjmp lives in its own frame so no caller local can be clobbered by the longjmp. */
static bool check_run_case(const check_case *c)
{
    check_failures_in_case = 0;
    if (setjmp(check_jmp) == 0)
        c->fn();
    return check_failures_in_case == 0;
}

int check_run(const check_case *cases, size_t n, int argc, char **argv)
{
    int passed = 0, failed = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < n; i++) {
        bool selected = argc <= 1;
        for (int a = 1; a < argc; a++)
            if (strcmp(argv[a], cases[i].name) == 0)
                selected = true;
        if (!selected)
            continue;
        usec_t start = now_monotonic();
        bool ok = check_run_case(&cases[i]);
        double ms = (double)(now_monotonic() - start) / 1000.0;
        if (!ok) {
            printf("FAIL %s (%.1f ms)\n", cases[i].name, ms);
            failed++;
        } else {
            printf("ok   %s (%.1f ms)\n", cases[i].name, ms);
            passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
