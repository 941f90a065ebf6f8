#include "json-docs.h"

#include <stdio.h>

json_t *bench_ledger(int n)
{
    json_t *map = json_object();
    for (int i = 0; i < n; i++) {
        char uid[40], name[16];
        snprintf(uid, sizeof(uid), "%08x-7b4d-4e2a-9c61-%012x", 0x9e3779b9u * (unsigned)(i + 1),
                 (unsigned)i * 7919u);
        snprintf(name, sizeof(name), "web-%d", i);
        json_object_set_new(map, uid,
                            json_pack("{s:s,s:s,s:i,s:i,s:i}", "namespace", "default", "name", name,
                                      "vcpus", 1, "memoryMiB", 512, "diskGiB", 1));
    }
    return json_pack("{s:o}", "instances", map);
}
