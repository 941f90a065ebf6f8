/* Node capacity and flavor claims: the arithmetic Bind and the scheduler share. */
#include "api/resources.h"

#include <errno.h>
#include <string.h>

#include "api/object.h"
#include "base/macro.h"

const api_resource_info api_resource_table[_API_RESOURCE_MAX] = {
    [API_RESOURCE_VCPUS] = {"vcpus", "cpu", "vcpus", ""},
    [API_RESOURCE_MEMORY] = {"memoryMiB", "memory", "memory", " MiB"},
    [API_RESOURCE_DISK] = {"diskGiB", "disk", "disk", " GiB"},
};

void api_node_capacity_of(const json_t *node, api_node_capacity *ret)
{
    const json_t *allocatable = api_json_lookup(node, "status.allocatable");
    const json_t *spec_capacity = api_json_lookup(node, "spec.capacity");
    const json_t *status_capacity = api_json_lookup(node, "status.capacity");
    const json_t *reserved = api_json_lookup(node, "spec.reserved");
    const json_t *ratios = api_json_lookup(node, "spec.allocationRatios");
    for (api_resource r = 0; r < _API_RESOURCE_MAX; r++) {
        const char *f = api_resource_table[r].field;
        const json_t *v = json_object_get(allocatable, f);
        int64_t a;
        if (json_is_integer(v))
            a = json_integer_value(v);
        else {
            const json_t *c = json_object_get(spec_capacity, f);
            if (!c)
                c = json_object_get(status_capacity, f);
            a = json_integer_value(c) - json_integer_value(json_object_get(reserved, f));
        }
        const json_t *rv = json_object_get(ratios, api_resource_table[r].ratio);
        double ratio = json_is_number(rv) ? json_number_value(rv) : 1.0;
        if (!(ratio > 0))
            ratio = 1.0;
        ret->allocatable[r] = MAX(a, 0);
        ret->ratio[r] = ratio;
        /* Both are >= 0, so the cast rounds down; the epsilon keeps 10 × 0.7 from becoming 6. */
        ret->limit[r] = (int64_t)((double)ret->allocatable[r] * ratio + 1e-9);
    }
}

void api_flavor_resources(const json_t *flavor, api_resources *ret)
{
    const json_t *spec = json_object_get(flavor, "spec");
    int64_t swap_mib = json_integer_value(json_object_get(spec, "swapMiB"));
    ret->amount[API_RESOURCE_VCPUS] = json_integer_value(json_object_get(spec, "vcpus"));
    ret->amount[API_RESOURCE_MEMORY] = json_integer_value(json_object_get(spec, "memoryMiB"));
    ret->amount[API_RESOURCE_DISK] = json_integer_value(json_object_get(spec, "rootDiskGiB")) +
                                     json_integer_value(json_object_get(spec, "ephemeralGiB")) +
                                     (swap_mib + 1023) / 1024;
}

int api_instance_claim(const json_t *inst, api_resources *ret)
{
    const json_t *st = json_object_get(inst, "status");
    const json_t *c = json_object_get(st, "claim");
    const char *at = json_string_value(json_object_get(st, "nodeName"));
    const char *node =
        json_string_value(json_object_get(json_object_get(inst, "spec"), "nodeName"));
    /* Only for the binding it was recorded with (an older apiserver's Unbind left it behind). */
    if (!json_is_object(c) || !at || !node || strcmp(at, node) != 0)
        return -ENOENT;
    for (api_resource k = 0; k < _API_RESOURCE_MAX; k++) {
        const json_t *v = json_object_get(c, api_resource_table[k].field);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return -ENOENT;
        ret->amount[k] = json_integer_value(v);
    }
    return 0;
}

json_t *api_resources_json(const api_resources *r)
{
    json_t *o = json_object();
    for (api_resource k = 0; k < _API_RESOURCE_MAX; k++)
        json_object_set_new(o, api_resource_table[k].field, json_integer(r->amount[k]));
    return o;
}
