/* Standard base64 (RFC 4648, with padding), as etcd's JSON gateway uses for keys and values. */
#pragma once

#include <stddef.h>

/* Returns the encoded text, NUL-terminated; the caller frees it. */
char *b64_encode(const void *data, size_t len);
/* Decodes text of length len. Returns 0 and a malloc'd NUL-terminated buffer in *ret (length in
 * *ret_len), or -EINVAL for anything that is not canonical padded base64. */
int b64_decode(const char *text, size_t len, char **ret, size_t *ret_len);
