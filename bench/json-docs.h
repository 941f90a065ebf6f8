/* Documents the JSON micro-benchmarks (canonical-bench, parse-bench) share (json-docs.c). */
#pragma once

#include <jansson.h>

/* A node's allocation ledger, /stratus/v1/allocations/<node>, with n instances (bind.c's
 * shape). A new reference. */
json_t *bench_ledger(int n);
