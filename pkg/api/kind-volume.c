/* Volume: a persistent disk that outlives instances, blank or created from an image. Namespaced.
 * Instances attach it through spec.blockDevices[].volume. */
#include "api/kind-internal.h"

static const char *const format_values[] = {"qcow2", "raw", NULL};
static const char *const phase_values[] = {"Pending", "Available", "InUse",
                                           "Failed",  "Deleting",  NULL};

const api_field api_volume_spec_fields[] = {
    API_F_INT("sizeGiB", true, 1, API_DISK_GIB_MAX),
    API_F_STRING("image", false, 0, api_check_ref_name),
    API_F_ENUM("format", false, format_values),
    API_F_END,
};

void api_volume_default(json_t *obj)
{
    json_t *spec = api_child_object(obj, "spec");
    if (spec)
        api_default_set(spec, "format", json_string("qcow2"));
}

const api_field api_volume_status_fields[] = {
    API_F_ENUM("phase", false, phase_values),
    API_F_STRING("attachedTo", false, 0, api_check_dns_label),
    API_F_STRING("nodeName", false, 0, api_check_ref_name),
    API_F_ARRAY("conditions", false, API_CONDITIONS_MAX, &api_condition_elem, api_check_conditions),
    API_F_INT("observedGeneration", false, 0, INT64_MAX),
    API_F_END,
};
