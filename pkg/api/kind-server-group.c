/* ServerGroup: Nova's server group: (anti-)affinity of its member instances across nodes, hard or
 * soft, with a cap of members per node for hard anti-affinity. Namespaced; instances join with
 * spec.serverGroup and the apiserver checks hard rules in the binding transaction. */
#include "api/kind-internal.h"

static const char *const policy_values[] = {"affinity", "anti-affinity", "soft-affinity",
                                            "soft-anti-affinity", NULL};

const api_field api_server_group_spec_fields[] = {
    API_F_ENUM("policy", true, policy_values),
    API_F_INT("maxPerNode", false, 1, API_GROUP_MEMBERS_MAX),
    API_F_END,
};

int api_server_group_validate_spec(api_vctx *c, const json_t *spec)
{
    const char *policy = json_string_value(json_object_get(spec, "policy"));
    if (json_object_get(spec, "maxPerNode") && !streq(policy, "anti-affinity"))
        return api_vfail_at(c, "maxPerNode", "is only allowed with policy anti-affinity, not %s",
                            policy);
    return 0;
}

void api_server_group_default(json_t *obj)
{
    json_t *spec = api_child_object(obj, "spec");
    const char *policy = json_string_value(json_object_get(spec, "policy"));
    /* Nova's max_server_per_host rule defaults to 1: strict anti-affinity. */
    if (spec && policy && streq(policy, "anti-affinity"))
        api_default_set(spec, "maxPerNode", json_integer(1));
}

static const api_field member_elem = API_F_STRING(NULL, false, 0, api_check_dns_label);

const api_field api_server_group_status_fields[] = {
    API_F_SET("members", false, API_GROUP_MEMBERS_MAX, &member_elem),
    API_F_INT("observedGeneration", false, 0, INT64_MAX),
    API_F_END,
};
