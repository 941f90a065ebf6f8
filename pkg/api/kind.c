/* The kind table: one row per kind of object. */
#include "api/kind.h"

#include <strings.h>

#include "api/kind-internal.h"
#include "base/macro.h"

static const char *const instance_aliases[] = {"inst", "i", NULL};
static const char *const flavor_aliases[] = {"fl", NULL};
static const char *const image_aliases[] = {"img", NULL};
static const char *const network_aliases[] = {"net", NULL};
static const char *const volume_aliases[] = {"vol", NULL};
static const char *const server_group_aliases[] = {"sg", NULL};
static const char *const node_aliases[] = {"no", NULL};
static const char *const event_aliases[] = {"ev", NULL};
static const char *const lease_aliases[] = {NULL};

static const api_kind_info kinds[_API_KIND_MAX] = {
    [API_KIND_INSTANCE] =
        {
            .kind = API_KIND_INSTANCE,
            .name = "Instance",
            .plural = "instances",
            .aliases = instance_aliases,
            .namespaced = true,
            .name_rule = API_NAME_RULE_DNS_LABEL,
            .spec = api_instance_spec_fields,
            .status = api_instance_status_fields,
            .validate_spec = api_instance_validate_spec,
            .default_object = api_instance_default,
        },
    [API_KIND_FLAVOR] =
        {
            .kind = API_KIND_FLAVOR,
            .name = "Flavor",
            .plural = "flavors",
            .aliases = flavor_aliases,
            .namespaced = false,
            .name_rule = API_NAME_RULE_DNS_SUBDOMAIN,
            .spec = api_flavor_spec_fields,
            .status = NULL,
            .validate_spec = NULL,
            .default_object = api_flavor_default,
        },
    [API_KIND_IMAGE] =
        {
            .kind = API_KIND_IMAGE,
            .name = "Image",
            .plural = "images",
            .aliases = image_aliases,
            .namespaced = false,
            .name_rule = API_NAME_RULE_DNS_SUBDOMAIN,
            .spec = api_image_spec_fields,
            .status = api_image_status_fields,
            .validate_spec = api_image_validate_spec,
            .default_object = api_image_default,
        },
    [API_KIND_NETWORK] =
        {
            .kind = API_KIND_NETWORK,
            .name = "Network",
            .plural = "networks",
            .aliases = network_aliases,
            .namespaced = true,
            .name_rule = API_NAME_RULE_DNS_SUBDOMAIN,
            .spec = api_network_spec_fields,
            .status = api_network_status_fields,
            .validate_spec = api_network_validate_spec,
            .default_object = api_network_default,
        },
    [API_KIND_VOLUME] =
        {
            .kind = API_KIND_VOLUME,
            .name = "Volume",
            .plural = "volumes",
            .aliases = volume_aliases,
            .namespaced = true,
            .name_rule = API_NAME_RULE_DNS_SUBDOMAIN,
            .spec = api_volume_spec_fields,
            .status = api_volume_status_fields,
            .validate_spec = NULL,
            .default_object = api_volume_default,
        },
    [API_KIND_SERVER_GROUP] =
        {
            .kind = API_KIND_SERVER_GROUP,
            .name = "ServerGroup",
            .plural = "servergroups",
            .aliases = server_group_aliases,
            .namespaced = true,
            .name_rule = API_NAME_RULE_DNS_SUBDOMAIN,
            .spec = api_server_group_spec_fields,
            .status = api_server_group_status_fields,
            .validate_spec = api_server_group_validate_spec,
            .default_object = api_server_group_default,
        },
    [API_KIND_NODE] =
        {
            .kind = API_KIND_NODE,
            .name = "Node",
            .plural = "nodes",
            .aliases = node_aliases,
            .namespaced = false,
            .name_rule = API_NAME_RULE_DNS_SUBDOMAIN,
            .spec = api_node_spec_fields,
            .status = api_node_status_fields,
            .validate_spec = api_node_validate_spec,
            .default_object = api_node_default,
        },
    [API_KIND_EVENT] =
        {
            .kind = API_KIND_EVENT,
            .name = "Event",
            .plural = "events",
            .aliases = event_aliases,
            .namespaced = true,
            .name_rule = API_NAME_RULE_DNS_SUBDOMAIN,
            .spec = api_event_spec_fields,
            .status = NULL,
            .validate_spec = api_event_validate_spec,
            .default_object = api_event_default,
        },
    [API_KIND_LEASE] =
        {
            .kind = API_KIND_LEASE,
            .name = "Lease",
            .plural = "leases",
            .aliases = lease_aliases,
            .namespaced = false,
            .name_rule = API_NAME_RULE_DNS_SUBDOMAIN,
            .spec = api_lease_spec_fields,
            .status = NULL,
        },
};

const api_kind_info *api_kind_get(api_kind k)
{
    if (k < 0 || k >= _API_KIND_MAX)
        return NULL;
    return &kinds[k];
}

const api_kind_info *api_kind_lookup(const char *s)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
        if (strcasecmp(s, kinds[i].name) == 0 || strcasecmp(s, kinds[i].plural) == 0)
            return &kinds[i];
        for (const char *const *a = kinds[i].aliases; *a; a++)
            if (strcasecmp(s, *a) == 0)
                return &kinds[i];
    }
    return NULL;
}

const api_kind_info *api_kind_from_name(const char *s)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
        if (streq(s, kinds[i].name))
            return &kinds[i];
    return NULL;
}

const char *api_kind_to_string(api_kind k)
{
    const api_kind_info *info = api_kind_get(k);
    return info ? info->name : NULL;
}

api_kind api_kind_from_string(const char *s)
{
    const api_kind_info *info = api_kind_from_name(s);
    return info ? info->kind : _API_KIND_INVALID;
}

static const char *const name_rule_table[_API_NAME_RULE_MAX] = {
    [API_NAME_RULE_DNS_LABEL] = "dns-label",
    [API_NAME_RULE_DNS_SUBDOMAIN] = "dns-subdomain",
};

const char *api_name_rule_to_string(api_name_rule r)
{
    if (r < 0 || r >= _API_NAME_RULE_MAX)
        return NULL;
    return name_rule_table[r];
}
