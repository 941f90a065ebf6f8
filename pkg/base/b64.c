/* base64 encode/decode. Decoding is strict: the gateway never sends anything else, and accepting
 * junk would hide a broken peer. */
#include "b64.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *b64_encode(const void *data, size_t len)
{
    const unsigned char *in = data;
    char *out = xmalloc((len + 2) / 3 * 4 + 1);
    char *o = out;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = b64_alphabet[v >> 18 & 63];
        *o++ = b64_alphabet[v >> 12 & 63];
        *o++ = b64_alphabet[v >> 6 & 63];
        *o++ = b64_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        *o++ = b64_alphabet[v >> 18 & 63];
        *o++ = b64_alphabet[v >> 12 & 63];
        *o++ = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int b64_decode(const char *text, size_t len, char **ret, size_t *ret_len)
{
    if (len % 4 != 0)
        return -EINVAL;
    size_t pad = 0;
    if (len >= 1 && text[len - 1] == '=')
        pad++;
    if (len >= 2 && text[len - 2] == '=')
        pad++;
    size_t out_len = len / 4 * 3 - pad;
    char *out = xmalloc(out_len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++) {
            bool is_pad = i + (size_t)k >= len - pad;
            v[k] = is_pad ? 0 : b64_value(text[i + (size_t)k]);
            if (v[k] < 0 || (is_pad && text[i + (size_t)k] != '=')) {
                free(out);
                return -EINVAL;
            }
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        unsigned char bytes[3] = {w >> 16 & 0xff, w >> 8 & 0xff, w & 0xff};
        for (int k = 0; k < 3 && o < out_len; k++)
            out[o++] = (char)bytes[k];
    }
    out[out_len] = '\0';
    *ret = out;
    if (ret_len)
        *ret_len = out_len;
    return 0;
}
