/* Network: a bridged L2 IPv4 network with a CIDR, a gateway and optional DHCP. Namespaced.
 * Addresses are owned by instances and tracked in the IPAM ledger, not here. */
#include <string.h>

#include "api/ipv4.h"
#include "api/kind-internal.h"

static int check_network_cidr(api_vctx *c, const json_t *v)
{
    const char *s = json_string_value(v);
    char q[API_QUOTE_MAX];
    api_ipv4_cidr cidr;
    if (api_ipv4_cidr_parse(s, &cidr) < 0)
        return api_vfail(c, "%s is not an IPv4 CIDR (like \"10.0.0.0/24\")", api_quote(s, q));
    if (cidr.prefix < API_NETWORK_PREFIX_MIN || cidr.prefix > API_NETWORK_PREFIX_MAX)
        return api_vfail(c, "%s has prefix length %u, which must be %d..%d", api_quote(s, q),
                         cidr.prefix, API_NETWORK_PREFIX_MIN, API_NETWORK_PREFIX_MAX);
    if (!api_ipv4_cidr_is_network(&cidr)) {
        api_ipv4_cidr net = {.addr = api_ipv4_cidr_network(&cidr), .prefix = cidr.prefix};
        char n[API_IPV4_CIDR_STRLEN];
        return api_vfail(c, "%s has host bits set; the network is \"%s\"", api_quote(s, q),
                         api_ipv4_cidr_format(&net, n));
    }
    return 0;
}

static int check_bridge(api_vctx *c, const json_t *v)
{
    const char *s = json_string_value(v);
    bool ok = *s && !streq(s, ".") && !streq(s, "..");
    for (const char *p = s; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             *p == '_' || *p == '.' || *p == '-';
    if (ok)
        return 0;
    char q[API_QUOTE_MAX];
    return api_vfail(c, "%s is not an interface name (letters, digits, '_', '.', '-')",
                     api_quote(s, q));
}

static const api_field dns_elem = API_F_STRING(NULL, false, API_SHORT_STRING_MAX, api_check_ipv4);

const api_field api_network_spec_fields[] = {
    API_F_STRING("cidr", true, API_SHORT_STRING_MAX, check_network_cidr),
    API_F_STRING("gateway", false, API_SHORT_STRING_MAX, api_check_ipv4),
    API_F_BOOL("dhcp", false),
    API_F_STRING("bridge", false, API_BRIDGE_NAME_MAX, check_bridge),
    API_F_INT("mtu", false, API_MTU_MIN, API_MTU_MAX),
    API_F_SET("dns", false, API_DNS_SERVERS_MAX, &dns_elem),
    API_F_END,
};

int api_network_validate_spec(api_vctx *c, const json_t *spec)
{
    const char *gw = json_string_value(json_object_get(spec, "gateway"));
    if (!gw)
        return 0;
    api_ipv4_cidr cidr;
    uint32_t a;
    if (api_ipv4_cidr_parse(json_string_value(json_object_get(spec, "cidr")), &cidr) < 0 ||
        api_ipv4_parse(gw, &a) < 0)
        return api_vfail(c, "internal error: unchecked cidr or gateway");
    uint64_t index;
    if (api_ipv4_cidr_host_index(&cidr, a, &index) < 0) {
        char q[API_QUOTE_MAX], n[API_IPV4_CIDR_STRLEN];
        return api_vfail_at(c, "gateway", "%s is not a host address of %s", api_quote(gw, q),
                            api_ipv4_cidr_format(&cidr, n));
    }
    return 0;
}

void api_network_default(json_t *obj)
{
    json_t *spec = api_child_object(obj, "spec");
    if (!spec)
        return;
    api_ipv4_cidr cidr;
    uint32_t gw;
    if (!json_object_get(spec, "gateway") &&
        api_ipv4_cidr_parse(json_string_value(json_object_get(spec, "cidr")) ?: "", &cidr) >= 0 &&
        api_ipv4_cidr_nth_host(&cidr, 0, &gw) >= 0) {
        char s[API_IPV4_STRLEN];
        json_object_set_new(spec, "gateway", json_string(api_ipv4_format(gw, s)));
    }
    api_default_set(spec, "dhcp", json_true());
    api_default_set(spec, "mtu", json_integer(1500));
}

const api_field api_network_status_fields[] = {
    API_F_INT("allocatedIPs", false, 0, UINT32_MAX),
    API_F_ARRAY("conditions", false, API_CONDITIONS_MAX, &api_condition_elem, api_check_conditions),
    API_F_INT("observedGeneration", false, 0, INT64_MAX),
    API_F_END,
};
