/* Image: a disk image (qcow2/raw) and/or a kernel + initrd for direct boot, each with a URL and a
 * sha256 that the node agent verifies after download. Cluster-scoped. */
#include "api/kind-internal.h"

static const char *const format_values[] = {"qcow2", "raw", NULL};
static const char *const architecture_values[] = {"x86_64", "aarch64", "i686", "ppc64le",
                                                  "s390x",  "riscv64", NULL};

static const api_field source_fields[] = {
    API_F_STRING("url", true, API_URL_MAX, api_check_url),
    API_F_STRING("sha256", true, 0, api_check_sha256),
    API_F_ENUM("format", false, format_values),
    API_F_END,
};

static const api_field blob_fields[] = {
    API_F_STRING("url", true, API_URL_MAX, api_check_url),
    API_F_STRING("sha256", true, 0, api_check_sha256),
    API_F_END,
};

/* Well-known properties have types; the rest are free strings, integers or booleans. */
static const api_field property_rules[] = {
    API_F_ENUM("architecture", false, architecture_values),
    API_F_INT("minMemoryMiB", false, 0, API_MEMORY_MIB_MAX),
    API_F_INT("minDiskGiB", false, 0, API_DISK_GIB_MAX),
    API_F_END,
};

static int check_properties(api_vctx *c, const json_t *props)
{
    for (const api_field *f = property_rules; f->name; f++) {
        const json_t *v = json_object_get(props, f->name);
        if (!v)
            continue;
        size_t old = api_vpath_key(c, f->name);
        int r = api_field_check(c, f, v);
        api_vpath_restore(c, old);
        if (r < 0)
            return r;
    }
    return 0;
}

static const api_field property_scalar = {.type = API_FIELD_SCALAR, .max = API_PROPERTY_VALUE_MAX};

static int check_cmdline(api_vctx *c, const json_t *v)
{
    for (const char *p = json_string_value(v); *p; p++)
        if ((unsigned char)*p < 0x20)
            return api_vfail(c, "must be one line without control characters");
    return 0;
}

const api_field api_image_spec_fields[] = {
    API_F_OBJECT("source", false, source_fields, NULL),
    API_F_OBJECT("kernel", false, blob_fields, NULL),
    API_F_OBJECT("initrd", false, blob_fields, NULL),
    API_F_STRING("cmdline", false, API_CMDLINE_MAX, check_cmdline),
    API_F_MAP("properties", false, API_PROPERTIES_MAX, api_check_free_key, &property_scalar,
              check_properties),
    API_F_END,
};

int api_image_validate_spec(api_vctx *c, const json_t *spec)
{
    bool kernel = json_object_get(spec, "kernel") != NULL;
    if (!json_object_get(spec, "source") && !kernel)
        return api_vfail(c, "either source or kernel is required");
    if (!kernel && json_object_get(spec, "initrd"))
        return api_vfail_at(c, "initrd", "needs spec.kernel");
    if (!kernel && json_object_get(spec, "cmdline"))
        return api_vfail_at(c, "cmdline", "needs spec.kernel");
    return 0;
}

void api_image_default(json_t *obj)
{
    json_t *source = api_child_object(api_child_object(obj, "spec"), "source");
    if (source)
        api_default_set(source, "format", json_string("qcow2"));
}

const api_field api_image_status_fields[] = {
    API_F_ARRAY("conditions", false, API_CONDITIONS_MAX, &api_condition_elem, api_check_conditions),
    API_F_INT("observedGeneration", false, 0, INT64_MAX),
    API_F_END,
};
