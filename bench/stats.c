/* Measuring helpers shared by every benchmark: what a process has used (from /proc) and
 * latency figures. No cluster, no network: cluster.c builds on these. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stats.h"

long bench_proc_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

double bench_proc_cpu(pid_t pid)
{
    char path[64], buf[1024];
    if (pid)
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    else
        snprintf(path, sizeof(path), "/proc/self/stat");
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    char *s = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!s || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

int bench_cmp_usec(const void *a, const void *b)
{
    usec_t x = *(const usec_t *)a, y = *(const usec_t *)b;
    return x < y ? -1 : x > y;
}

usec_t bench_quantile(const usec_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)n);
    if (i > 0 && (double)i == p * (double)n)
        i--; /* nearest rank: the ceil(p n)-th value */
    return sorted[i < n ? i : n - 1];
}

double bench_ms(usec_t d)
{
    return (double)d / 1000.0;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

double bench_ns_per_call(void (*op)(void *arg), void *arg, int rounds)
{
    double best = 0;
    for (int round = 0; round < rounds; round++) {
        unsigned n = 0;
        double start = now_ns(), elapsed;
        do {
            for (int i = 0; i < 1000; i++)
                op(arg);
            n += 1000;
            elapsed = now_ns() - start;
        } while (elapsed < 2e8);
        double per = elapsed / n;
        if (round == 0 || per < best)
            best = per;
    }
    return best;
}
