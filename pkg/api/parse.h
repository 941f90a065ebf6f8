/* Parsing JSON text into jansson trees, faster than jansson's json_loadb()/json_loads() and with
 * exactly their results: for every input the same tree (json_equal, integers and reals told apart
 * as jansson does), NULL exactly where jansson gives NULL, and the same json_error_t, success or
 * not. Not a general JSON parser: it takes the documents jansson would take, and hands everything
 * else, and the rare cases listed at api_json_parse_fast(), to jansson itself. */
#pragma once

#include <jansson.h>
#include <stddef.h>

/* Containers nested deeper than this are left to jansson (whose own limit is
 * JSON_PARSER_MAX_DEPTH). Bounds the parser's recursion. */
#define API_PARSE_DEPTH_MAX 512

/* What json_loadb(text, len, flags, error) returns, made without jansson's byte-at-a-time
 * lexer for flags 0 and JSON_REJECT_DUPLICATES (any other flag: jansson parses). Returns a new
 * reference, or NULL with *error set by jansson (error may be NULL). text need not be
 * NUL-terminated. Any thread. */
json_t *api_json_loadb(const char *text, size_t len, size_t flags, json_error_t *error);

/* The same for json_loads(text, flags, error): text NUL-terminated, or NULL (jansson's error). */
json_t *api_json_loads(const char *text, size_t flags, json_error_t *error);

/* The fast path of both, exposed so tests and the bench can tell it apart from the jansson
 * fallback; nothing else should call it. Returns a new reference, or NULL where it declines:
 * every input jansson rejects, and the few it takes that are left to it — flags other than
 * JSON_REJECT_DUPLICATES, nesting past API_PARSE_DEPTH_MAX, a real of more than 63 characters,
 * any NUL byte (jansson drops one it read ahead of a number or literal and put back, so it takes
 * "[1\0]") — and out of memory. Any thread. */
json_t *api_json_parse_fast(const char *text, size_t len, size_t flags);
