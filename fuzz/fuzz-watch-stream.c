/* Fuzz target: the watch stream as it arrives — framed into lines in chunks whose sizes come
 * from the input itself, each line parsed as a watch message, with a small line cap. */
#include <stdint.h>

#include "store/store-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int parse_line(const char *line, size_t n, void *userdata)
{
    store_watch_msg m;
    if (store_parse_watch_msg(line, n, &m) == 0)
        store_watch_msg_clear(&m);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = 1 + data[0] % 97;
    buf b = BUF_INIT(4096);
    for (size_t off = 1; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (store_frame_lines(&b, (const char *)data + off, n, parse_line, NULL) < 0)
            break;
    }
    buf_done(&b);
    return 0;
}
