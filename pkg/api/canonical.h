/* The fast path of api_json_canonical() (object.h), exposed so tests can tell it apart from the
 * jansson fallback. Nothing else should call it: api_json_canonical() is the one canonical form. */
#pragma once

#include <jansson.h>

/* Deeper than this (a cycle, or a tree no parser produced) is left to jansson. Equal to jansson's
 * JSON_PARSER_MAX_DEPTH, so every parsed tree takes the fast path. */
#define API_CANONICAL_DEPTH_MAX 2048

/* The bytes json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) makes, without its
 * loop detection. Returns 0 and a malloc'd NUL-terminated string in *ret_text, or, with *ret_text
 * untouched, one of the cases where only jansson knows the answer: -ELOOP when containers nest
 * deeper than API_CANONICAL_DEPTH_MAX, -EILSEQ when a string or key is not valid UTF-8, -EINVAL
 * when jansson cannot format a real. Any thread; j is only read. */
int api_json_canonical_fast(const json_t *j, char **ret_text);
