/* Fuzz target: every etcd gateway response parser and the error mapper on arbitrary bytes. The
 * first byte picks the response kind. Must never crash, leak or read out of bounds. */
#include <stdint.h>

#include "store/store-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    store_kind k = (store_kind)(data[0] % _STORE_KIND_MAX);
    store_result r = {0};
    if (store_parse_response(k, (const char *)data + 1, size - 1, &r) == 0) {
        store_result_shape(&r, (store_shape)(data[0] / _STORE_KIND_MAX % 5));
    }
    store_result_clear(&r);
    store_parse_error(400, (const char *)data + 1, size - 1, &r);
    store_result_clear(&r);
    return 0;
}
