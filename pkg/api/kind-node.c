/* Node: a host that runs instances. The agent registers it and writes its status (capacity from
 * libvirt, allocatable, conditions, nodeInfo); people set spec (cordon, taints, allocation ratios,
 * capacity overrides) and labels, e.g. the zone in topology.stratus.io/zone. Cluster-scoped. */
#include "api/kind-internal.h"

static const api_field taint_fields[] = {
    API_F_STRING("key", true, 0, api_check_label_key_value),
    API_F_STRING("value", false, 0, api_check_label_value),
    API_F_ENUM("effect", true, api_taint_effect_values),
    API_F_END,
};
static const api_field taint_elem = API_F_OBJECT(NULL, false, taint_fields, NULL);

static const api_field ratio_fields[] = {
    API_F_NUMBER("cpu", false, API_ALLOCATION_RATIO_MIN, API_ALLOCATION_RATIO_MAX),
    API_F_NUMBER("memory", false, API_ALLOCATION_RATIO_MIN, API_ALLOCATION_RATIO_MAX),
    API_F_NUMBER("disk", false, API_ALLOCATION_RATIO_MIN, API_ALLOCATION_RATIO_MAX),
    API_F_END,
};

static const api_field resources_fields[] = {
    API_F_INT("vcpus", false, 0, API_NODE_VCPUS_MAX),
    API_F_INT("memoryMiB", false, 0, API_NODE_MEMORY_MIB_MAX),
    API_F_INT("diskGiB", false, 0, API_NODE_DISK_GIB_MAX),
    API_F_END,
};

const api_field api_node_spec_fields[] = {
    API_F_BOOL("unschedulable", false),
    API_F_ARRAY("taints", false, API_TAINTS_MAX, &taint_elem, NULL),
    API_F_OBJECT("allocationRatios", false, ratio_fields, NULL),
    API_F_OBJECT("capacity", false, resources_fields, NULL),
    API_F_OBJECT("reserved", false, resources_fields, NULL),
    API_F_END,
};

int api_node_validate_spec(api_vctx *c, const json_t *spec)
{
    const json_t *taints = json_object_get(spec, "taints");
    for (size_t i = 0; i < json_array_size(taints); i++) {
        const json_t *t = json_array_get(taints, i);
        for (size_t j = 0; j < i; j++) {
            const json_t *o = json_array_get(taints, j);
            if (json_equal(json_object_get(t, "key"), json_object_get(o, "key")) &&
                json_equal(json_object_get(t, "effect"), json_object_get(o, "effect"))) {
                char q[API_QUOTE_MAX];
                size_t old = api_vpath_key(c, "taints");
                api_vpath_index(c, i);
                int r = api_vfail(c, "key %s with effect %s is already in taints[%zu]",
                                  api_quote(json_string_value(json_object_get(t, "key")), q),
                                  json_string_value(json_object_get(t, "effect")), j);
                api_vpath_restore(c, old);
                return r;
            }
        }
    }
    return 0;
}

void api_node_default(json_t *obj)
{
    json_t *spec = api_child_object(obj, "spec");
    if (!spec)
        return;
    api_default_set(spec, "unschedulable", json_false());
    /* Never overcommit unless asked: every ratio defaults to 1.0 (Nova: cpu 16, ram 1.5). */
    api_default_set(spec, "allocationRatios", json_object());
    json_t *ratios = api_child_object(spec, "allocationRatios");
    if (!ratios)
        return;
    api_default_set(ratios, "cpu", json_real(1.0));
    api_default_set(ratios, "memory", json_real(1.0));
    api_default_set(ratios, "disk", json_real(1.0));
}

static const char *const address_type_values[] = {"InternalIP", "Hostname", NULL};

static const api_field address_fields[] = {
    API_F_ENUM("type", true, address_type_values),
    API_F_STRING("address", true, API_DNS_SUBDOMAIN_MAX, NULL),
    API_F_END,
};
static const api_field address_elem = API_F_OBJECT(NULL, false, address_fields, NULL);

static const api_field node_info_fields[] = {
    API_F_STRING("hostname", false, API_DNS_SUBDOMAIN_MAX, NULL),
    API_F_STRING("architecture", false, API_SHORT_STRING_MAX, NULL),
    API_F_STRING("hypervisor", false, API_SHORT_STRING_MAX, NULL),
    API_F_STRING("hypervisorVersion", false, API_SHORT_STRING_MAX, NULL),
    API_F_STRING("libvirtVersion", false, API_SHORT_STRING_MAX, NULL),
    API_F_STRING("kernelVersion", false, API_REASON_MAX, NULL),
    API_F_STRING("osImage", false, API_REASON_MAX, NULL),
    API_F_STRING("cpuModel", false, API_REASON_MAX, NULL),
    API_F_STRING("agentVersion", false, API_SHORT_STRING_MAX, NULL),
    API_F_STRING("backend", false, API_SHORT_STRING_MAX, NULL),
    API_F_END,
};

const api_field api_node_status_fields[] = {
    API_F_OBJECT("capacity", false, resources_fields, NULL),
    API_F_OBJECT("allocatable", false, resources_fields, NULL),
    API_F_ARRAY("conditions", false, API_CONDITIONS_MAX, &api_condition_elem, api_check_conditions),
    API_F_ARRAY("addresses", false, API_ADDRESSES_MAX, &address_elem, NULL),
    API_F_OBJECT("nodeInfo", false, node_info_fields, NULL),
    API_F_INT("observedGeneration", false, 0, INT64_MAX),
    API_F_END,
};
