/* Measuring helpers for benchmarks (stats.c). */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "base/timeutil.h"

/* A field of /proc/<pid>/status in KiB ("VmRSS", "VmHWM"), or -1. */
long bench_proc_kib(pid_t pid, const char *field);
/* User + system CPU seconds of a process so far (0: this one). */
double bench_proc_cpu(pid_t pid);

/* qsort comparator for usec_t. */
int bench_cmp_usec(const void *a, const void *b);
/* The p-quantile (0..1) of n sorted values (nearest rank); 0 when n is 0. */
usec_t bench_quantile(const usec_t *sorted, size_t n, double p);
double bench_ms(usec_t d);
/* Nanoseconds per call of op(arg), for micro-benchmarks: the best of `rounds` rounds of at least
 * 0.2 s each, the calls in runs of 1,000. */
double bench_ns_per_call(void (*op)(void *arg), void *arg, int rounds);
