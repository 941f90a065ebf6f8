/* Fuzz target: api_json_loadb() (pkg/api/parse.c) against jansson's json_loadb() on arbitrary
 * bytes, with flags 0 and JSON_REJECT_DUPLICATES. Aborts where they differ: one parses and the
 * other not, the json_error_t differs in any byte (both start from the same garbage), or the
 * trees differ (json_equal, or canonical bytes, which tell 1 from 1.0 and -0.0 from 0.0). Seeds:
 * manifests/, the api-data corpora and the store-response corpus (JSON after a first byte). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/object.h"
#include "api/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *text, size_t size, size_t flags)
{
    json_error_t want_e, got_e;
    memset(&want_e, 0x5a, sizeof(want_e));
    memset(&got_e, 0x5a, sizeof(got_e));
    json_t *want = json_loadb(text, size, flags, &want_e);
    json_t *got = api_json_loadb(text, size, flags, &got_e);
    if (!want != !got || memcmp(&want_e, &got_e, sizeof(want_e)) != 0)
        abort();
    if (want) {
        char *a = api_json_canonical(want), *b = api_json_canonical(got);
        if (!json_equal(want, got) || strcmp(a, b) != 0)
            abort();
        free(a);
        free(b);
    }
    json_decref(want);
    json_decref(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check((const char *)data, size, 0);
    check((const char *)data, size, JSON_REJECT_DUPLICATES);
    return 0;
}
