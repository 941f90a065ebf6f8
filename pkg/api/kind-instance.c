/* Instance: one VM, the equivalent of the arguments of Nova's create() (see docs/api.md for the
 * mapping). Schema, cross-field rules, defaults and the status schema. Admission checks that need
 * other objects (the flavor exists, fixedIp inside the network's CIDR) live in the apiserver. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/kind-internal.h"

static const char *const power_state_values[] = {"Running", "Stopped", NULL};
static const char *const device_type_values[] = {"disk", "cdrom", NULL};
static const char *const bus_values[] = {"virtio", "scsi", "ide", "sata", NULL};
static const char *const toleration_operator_values[] = {"Equal", "Exists", NULL};

static const api_field network_fields[] = {
    API_F_STRING("network", true, 0, api_check_ref_name),
    API_F_STRING("fixedIp", false, API_SHORT_STRING_MAX, api_check_ipv4),
    API_F_END,
};
static const api_field network_elem = API_F_OBJECT(NULL, false, network_fields, NULL);

static int check_block_device(api_vctx *c, const json_t *bd)
{
    const json_t *volume = json_object_get(bd, "volume"), *size = json_object_get(bd, "sizeGiB");
    if (!volume == !size)
        return api_vfail(c, "exactly one of volume or sizeGiB must be set");
    const char *type = json_string_value(json_object_get(bd, "type"));
    if (type && streq(type, "cdrom") && !volume)
        return api_vfail_at(c, "type", "a cdrom needs a volume");
    return 0;
}

static const api_field block_device_fields[] = {
    API_F_STRING("name", true, 0, api_check_dns_label),
    API_F_STRING("volume", false, 0, api_check_ref_name),
    API_F_INT("sizeGiB", false, 1, API_DISK_GIB_MAX),
    API_F_INT("bootIndex", false, 0, API_INSTANCE_BLOCK_DEVICES_MAX - 1),
    API_F_ENUM("type", false, device_type_values),
    API_F_ENUM("bus", false, bus_values),
    API_F_BOOL("deleteOnTermination", false),
    API_F_END,
};
static const api_field block_device_elem =
    API_F_OBJECT(NULL, false, block_device_fields, check_block_device);

/* One line of an authorized_keys file, public part only: "<type> <base64> [comment]". */
static int check_ssh_key(api_vctx *c, const json_t *v)
{
    static const char *const prefixes[] = {"ssh-", "ecdsa-", "sk-"};
    const char *s = json_string_value(v);
    bool ok = false;
    for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
        if (strneq(s, prefixes[i], strlen(prefixes[i])))
            ok = strchr(s, ' ') != NULL;
    for (const char *p = s; ok && *p; p++)
        if ((unsigned char)*p < 0x20)
            ok = false;
    if (ok)
        return 0;
    char q[API_QUOTE_MAX];
    return api_vfail(c, "%s is not an OpenSSH public key line (\"ssh-ed25519 AAAA... comment\")",
                     api_quote(s, q));
}

static const api_field ssh_key_elem = API_F_STRING(NULL, false, API_SSH_KEY_MAX, check_ssh_key);
static const api_field server_metadata_value =
    API_F_STRING(NULL, false, API_SERVER_METADATA_VALUE_MAX, NULL);

static int check_zone(api_vctx *c, const json_t *v)
{
    if (!*json_string_value(v))
        return api_vfail(c, "must not be empty");
    return api_check_label_value(c, v);
}

static int check_toleration(api_vctx *c, const json_t *t)
{
    const char *op = json_string_value(json_object_get(t, "operator"));
    const char *value = json_string_value(json_object_get(t, "value"));
    if (op && streq(op, "Exists")) {
        if (value && *value)
            return api_vfail_at(c, "value", "must be empty when operator is Exists");
    } else if (!json_object_get(t, "key")) {
        return api_vfail_at(c, "key", "is required when operator is Equal");
    }
    return 0;
}

static const api_field toleration_fields[] = {
    API_F_STRING("key", false, 0, api_check_label_key_value),
    API_F_ENUM("operator", false, toleration_operator_values),
    API_F_STRING("value", false, 0, api_check_label_value),
    API_F_ENUM("effect", false, api_taint_effect_values),
    API_F_END,
};
static const api_field toleration_elem =
    API_F_OBJECT(NULL, false, toleration_fields, check_toleration);

const api_field api_instance_spec_fields[] = {
    API_F_STRING("flavor", true, 0, api_check_ref_name),
    API_F_STRING("image", false, 0, api_check_ref_name),
    API_F_ARRAY("networks", false, API_INSTANCE_NETWORKS_MAX, &network_elem, NULL),
    API_F_ARRAY("blockDevices", false, API_INSTANCE_BLOCK_DEVICES_MAX, &block_device_elem, NULL),
    API_F_ENUM("powerState", false, power_state_values),
    API_F_STRING("hostname", false, 0, api_check_dns_label),
    API_F_STRING("userData", false, API_USER_DATA_MAX, NULL),
    API_F_ARRAY("sshKeys", false, API_SSH_KEYS_MAX, &ssh_key_elem, NULL),
    API_F_MAP("metadata", false, API_SERVER_METADATA_MAX, api_check_free_key,
              &server_metadata_value, NULL),
    API_F_BOOL("configDrive", false),
    API_F_STRING("serverGroup", false, 0, api_check_ref_name),
    API_F_STRING("availabilityZone", false, 0, check_zone),
    API_F_STRING("nodeName", false, 0, api_check_ref_name),
    API_F_ARRAY("tolerations", false, API_TOLERATIONS_MAX, &toleration_elem, NULL),
    API_F_END,
};

/* Fails at spec.blockDevices[i].member. */
static int fail_device(api_vctx *c, size_t i, const char *member, const char *fmt, ...)
    _printf_(4, 5);
static int fail_device(api_vctx *c, size_t i, const char *member, const char *fmt, ...)
{
    char msg[API_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t old = api_vpath_key(c, "blockDevices");
    api_vpath_index(c, i);
    int r = api_vfail_at(c, member, "%s", msg);
    api_vpath_restore(c, old);
    return r;
}

static int check_block_devices(api_vctx *c, const json_t *spec)
{
    const json_t *devices = json_object_get(spec, "blockDevices");
    bool has_image = json_object_get(spec, "image") != NULL, boots_volume = false;
    for (size_t i = 0; i < json_array_size(devices); i++) {
        const json_t *d = json_array_get(devices, i);
        const json_t *name = json_object_get(d, "name"), *boot = json_object_get(d, "bootIndex");
        for (size_t j = 0; j < i; j++) {
            const json_t *o = json_array_get(devices, j);
            char q[API_QUOTE_MAX];
            if (json_equal(name, json_object_get(o, "name")))
                return fail_device(c, i, "name", "%s is already used by blockDevices[%zu]",
                                   api_quote(json_string_value(name), q), j);
            if (boot && json_equal(boot, json_object_get(o, "bootIndex")))
                return fail_device(c, i, "bootIndex", "%lld is already used by blockDevices[%zu]",
                                   (long long)json_integer_value(boot), j);
        }
        if (!boot || json_integer_value(boot) != 0)
            continue;
        if (has_image)
            return fail_device(c, i, "bootIndex",
                               "0 is taken by the root disk of spec.image; use 1 or more");
        if (!json_object_get(d, "volume"))
            return fail_device(c, i, "bootIndex",
                               "0 needs a volume to boot from, not a blank disk");
        boots_volume = true;
    }
    if (!has_image && !boots_volume)
        return api_vfail_at(c, "image",
                            "is required unless a block device with a volume has "
                            "bootIndex 0");
    return 0;
}

static int check_fixed_ips(api_vctx *c, const json_t *spec)
{
    const json_t *networks = json_object_get(spec, "networks");
    for (size_t i = 0; i < json_array_size(networks); i++) {
        const json_t *n = json_array_get(networks, i), *ip = json_object_get(n, "fixedIp");
        if (!ip)
            continue;
        for (size_t j = 0; j < i; j++) {
            const json_t *o = json_array_get(networks, j);
            if (json_equal(json_object_get(n, "network"), json_object_get(o, "network")) &&
                json_equal(ip, json_object_get(o, "fixedIp"))) {
                char q[API_QUOTE_MAX];
                size_t old = api_vpath_key(c, "networks");
                api_vpath_index(c, i);
                int r = api_vfail_at(c, "fixedIp", "%s is already requested by networks[%zu]",
                                     api_quote(json_string_value(ip), q), j);
                api_vpath_restore(c, old);
                return r;
            }
        }
    }
    return 0;
}

int api_instance_validate_spec(api_vctx *c, const json_t *spec)
{
    int r = check_block_devices(c, spec);
    if (r < 0)
        return r;
    return check_fixed_ips(c, spec);
}

void api_instance_default(json_t *obj)
{
    json_t *spec = api_child_object(obj, "spec");
    if (!spec)
        return;
    api_default_set(spec, "powerState", json_string("Running"));
    api_default_set(spec, "configDrive", json_false());
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
    if (name)
        api_default_set(spec, "hostname", json_string(name));

    json_t *d;
    size_t i;
    json_array_foreach (json_object_get(spec, "blockDevices"), i, d) {
        if (!json_is_object(d))
            continue;
        api_default_set(d, "type", json_string("disk"));
        const char *type = json_string_value(json_object_get(d, "type"));
        /* q35 machines have no IDE controller: a cdrom goes on SATA. */
        api_default_set(d, "bus", json_string(type && streq(type, "cdrom") ? "sata" : "virtio"));
        /* Nova: a volume outlives its instance unless asked; a blank disk never does. */
        api_default_set(d, "deleteOnTermination", json_boolean(!json_object_get(d, "volume")));
    }
    json_t *t;
    json_array_foreach (json_object_get(spec, "tolerations"), i, t)
        if (json_is_object(t))
            api_default_set(t, "operator", json_string("Equal"));
}

/* ---- status ---- */

static const char *const phase_values[] = {"Pending", "Scheduled", "Building", "Running",
                                           "Stopped", "Failed",    "Deleting", NULL};
static const char *const condition_type_values[] = {
    "Scheduled", "ResourcesClaimed", "BlockDevicesReady", "NetworkReady", "DomainRunning", "Ready",
    NULL};

static const api_field condition_fields[] = {
    API_F_ENUM("type", true, condition_type_values),
    API_F_ENUM("status", true, api_condition_status_values),
    API_F_STRING("reason", false, API_REASON_MAX, api_check_reason),
    API_F_STRING("message", false, API_MESSAGE_MAX, NULL),
    API_F_STRING("lastTransitionTime", false, API_SHORT_STRING_MAX, api_check_timestamp),
    API_F_END,
};
static const api_field condition_elem = API_F_OBJECT(NULL, false, condition_fields, NULL);

static const api_field address_fields[] = {
    API_F_STRING("network", true, 0, api_check_ref_name),
    API_F_STRING("ip", true, API_SHORT_STRING_MAX, api_check_ipv4),
    API_F_STRING("mac", false, API_SHORT_STRING_MAX, api_check_mac),
    API_F_END,
};
static const api_field address_elem = API_F_OBJECT(NULL, false, address_fields, NULL);

static const api_field attempt_fields[] = {
    API_F_STRING("nodeName", true, 0, api_check_ref_name),
    API_F_STRING("step", false, API_SHORT_STRING_MAX, api_check_reason),
    API_F_STRING("reason", true, API_REASON_MAX, api_check_reason),
    API_F_STRING("message", false, API_MESSAGE_MAX, NULL),
    API_F_STRING("time", true, API_SHORT_STRING_MAX, api_check_timestamp),
    API_F_END,
};
static const api_field attempt_elem = API_F_OBJECT(NULL, false, attempt_fields, NULL);

static const char *const step_result_values[] = {"Succeeded", "Failed", NULL};
static const api_field timeline_fields[] = {
    API_F_STRING("step", true, API_SHORT_STRING_MAX, api_check_reason),
    API_F_STRING("startTime", true, API_SHORT_STRING_MAX, api_check_timestamp),
    API_F_STRING("endTime", false, API_SHORT_STRING_MAX, api_check_timestamp),
    API_F_ENUM("result", false, step_result_values),
    API_F_END,
};
static const api_field timeline_elem = API_F_OBJECT(NULL, false, timeline_fields, NULL);

/* What Bind recorded in the node's ledger (api_instance_claim); the apiserver keeps it as
 * stored on UpdateStatus. */
static const api_field claim_fields[] = {
    API_F_INT("vcpus", true, 0, INT64_MAX),
    API_F_INT("memoryMiB", true, 0, INT64_MAX),
    API_F_INT("diskGiB", true, 0, INT64_MAX),
    API_F_END,
};

const api_field api_instance_status_fields[] = {
    API_F_ENUM("phase", false, phase_values),
    API_F_STRING("reason", false, API_REASON_MAX, api_check_reason),
    API_F_STRING("message", false, API_MESSAGE_MAX, NULL),
    API_F_STRING("nodeName", false, 0, api_check_ref_name),
    API_F_OBJECT("claim", false, claim_fields, NULL),
    API_F_ARRAY("conditions", false, API_CONDITIONS_MAX, &condition_elem, api_check_conditions),
    API_F_ARRAY("addresses", false, API_ADDRESSES_MAX, &address_elem, NULL),
    API_F_ARRAY("attempts", false, API_ATTEMPTS_MAX, &attempt_elem, NULL),
    API_F_ARRAY("timeline", false, API_TIMELINE_MAX, &timeline_elem, NULL),
    API_F_INT("observedGeneration", false, 0, INT64_MAX),
    API_F_STRING("consoleLog", false, API_CONSOLE_LOG_MAX, NULL),
    API_F_STRING("domainUUID", false, API_UID_MAX, NULL),
    API_F_END,
};
