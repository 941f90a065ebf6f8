/* Validation errors of the object model: the field path that is wrong and a message that names
 * the bad value, e.g. `spec.networks[1].fixedIp: "10.0.0.300" is not an IPv4 address`. Every
 * parser in pkg/api reports the first error it finds (in document order: unknown fields of an
 * object first, then its fields in schema order, then rules that span fields) and returns
 * -EINVAL. The struct is fixed-size and owns nothing, so callers keep it on the stack. */
#pragma once

#include "api/limits.h"
#include "base/macro.h"

typedef struct api_error {
    /* Dotted path: "spec.blockDevices[0].bus", map entries as `metadata.labels["a/b"]`; "" when
     * the whole document is wrong (not JSON, too large). */
    char path[API_ERROR_PATH_MAX];
    char message[API_ERROR_MESSAGE_MAX];
} api_error;

/* Fills e (when not NULL) and returns -EINVAL, so `return api_error_set(e, "spec", "...")` reads
 * naturally. Texts longer than the fields are cut. Any thread. */
int api_error_set(api_error *e, const char *path, const char *fmt, ...) _printf_(3, 4);

/* Returns "path: message" (or the message alone when path is empty), malloc'd; the caller frees
 * it. Never NULL. Any thread. */
char *api_error_to_string(const api_error *e);

/* Quotes s as a JSON string for a message: escapes quotes, backslashes and control characters and
 * keeps at most API_ERROR_VALUE_SHOWN bytes (cut on a UTF-8 boundary, ending in ...). Returns
 * out, which must hold API_QUOTE_MAX bytes. Any thread. */
#define API_QUOTE_MAX (API_ERROR_VALUE_SHOWN * 6 + 8)
const char *api_quote(const char *s, char out[static API_QUOTE_MAX]);
