/* Random JSON for differential tests of pkg/api against jansson (test-api-canonical,
 * test-api-parse): a seeded PRNG, so a seed always gives the same values, and trees heavy on what
 * is hard to get right — escapes, control characters (NUL included), every UTF-8 length, keys that
 * share prefixes, integers at the edges of 64 bits, reals of every magnitude. Not thread-safe: one
 * generator per test program. */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Restarts the sequence (0 counts as 1). */
void jgen_seed(uint64_t seed);
uint64_t jgen_next(void);
/* Uniform-ish in [0, n). */
unsigned jgen_below(unsigned n);

/* Valid UTF-8 of up to max characters at o (room for 4 * max bytes); returns its length. May
 * hold NUL. */
size_t jgen_text(char *o, unsigned max);
/* A finite real: edge values, fractions of random integers, random bit patterns. */
double jgen_real(void);
json_int_t jgen_integer(void);
/* A random tree; depth: how many containers enclose it. Each of null, a boolean, an integer, a
 * real, an array and an object one time in 9, a string three times; no containers from depth 6. */
json_t *jgen_tree(unsigned depth);
