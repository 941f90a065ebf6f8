/* Flavor: a named size of instance (Nova's instance_type): vcpus, memory, disks, extra specs.
 * Cluster-scoped; instances refer to it by name and the apiserver copies it at admission. */
#include "api/kind-internal.h"

static const api_field extra_spec_value = API_F_STRING(NULL, false, API_PROPERTY_VALUE_MAX, NULL);

const api_field api_flavor_spec_fields[] = {
    API_F_INT("vcpus", true, 1, API_VCPUS_MAX),
    API_F_INT("memoryMiB", true, API_MEMORY_MIB_MIN, API_MEMORY_MIB_MAX),
    API_F_INT("rootDiskGiB", false, 0, API_DISK_GIB_MAX),
    API_F_INT("ephemeralGiB", false, 0, API_DISK_GIB_MAX),
    API_F_INT("swapMiB", false, 0, API_SWAP_MIB_MAX),
    API_F_MAP("extraSpecs", false, API_EXTRA_SPECS_MAX, api_check_free_key, &extra_spec_value,
              NULL),
    API_F_END,
};

void api_flavor_default(json_t *obj)
{
    json_t *spec = api_child_object(obj, "spec");
    if (!spec)
        return;
    /* rootDiskGiB 0 means "as large as the image's virtual size", as in Nova. */
    api_default_set(spec, "rootDiskGiB", json_integer(0));
    api_default_set(spec, "ephemeralGiB", json_integer(0));
    api_default_set(spec, "swapMiB", json_integer(0));
}
