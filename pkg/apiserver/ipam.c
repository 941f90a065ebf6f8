/* IPAM: the IPv4 addresses of instances.
 *
 * Each Network has a ledger of the addresses in use,
 *
 *   /stratus/v1/ipam/<namespace>/<network>   {"allocations": {"10.0.0.5": "<uid>"}}
 *
 * written only in the transaction that creates an instance (ipam_allocate, called by Apply) or
 * finally deletes it (ipam_release, called by object_finalize), guarded by the ledger's own
 * mod_revision, so two instances never get one address. Addresses live as long as the instance:
 * stop/start and rescheduling keep them. Both functions only add compares and writes to a
 * transaction their caller commits; when it loses a race the caller starts over, and they read
 * everything again.
 *
 * A MAC address is 52:54:00 (QEMU's prefix) followed by the low 24 bits of the IP address (what
 * Docker does with 02:42). A network's prefix is at least /8, so the MAC is unique on its network
 * by construction, where a hashed one would collide by the birthday bound (24 bits: even odds at
 * ~5000 NICs); it is stable for the instance's life and readable. Two NICs of one instance on
 * networks whose addresses agree in the last three octets would share a MAC, so automatic picks
 * skip such addresses.
 *
 * Not here: DHCP, bridges, configuring the guest (the node agent); changing the networks of an
 * existing instance (Apply refuses it). Network status.allocatedIPs is not kept up to date here:
 * the ledger is the record. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/ipv4.h"
#include "api/names.h"
#include "base/alloc.h"
#include "internal.h"

#define IPAM_PREFIX "/stratus/v1/ipam/"

typedef struct ipam_net {
    const char *name; /* borrowed from the instance */
    api_ipv4_cidr cidr;
    uint32_t gateway;
    bool has_gateway;
    ledger l;
} ipam_net;

typedef struct ipam_alloc {
    worker *w;
    const char *ns;
    const char *uid;
    ipam_net nets[API_INSTANCE_NETWORKS_MAX];
    size_t n_nets;
    ipam_net *net_of[API_INSTANCE_NETWORKS_MAX]; /* per spec.networks entry */
    uint32_t ip[API_INSTANCE_NETWORKS_MAX];
    bool have[API_INSTANCE_NETWORKS_MAX];
} ipam_alloc;

static char *ledger_key(const char *ns, const char *network)
{
    return xasprintf(IPAM_PREFIX "%s/%s", ns, network);
}

static ipam_net *net_get(ipam_alloc *a, size_t i, const char *name, apierr *e)
{
    for (size_t k = 0; k < a->n_nets; k++)
        if (streq(a->nets[k].name, name))
            return &a->nets[k];
    _cleanup_free_ char *key = NULL;
    if (api_key_build(api_kind_get(API_KIND_NETWORK), a->ns, name, &key) < 0) {
        apierr_set(e, RPC_CODE_INVALID_ARGUMENT,
                   "spec.networks[%zu].network: \"%.64s\" is not a valid network name", i, name);
        return NULL;
    }
    json_t *obj = NULL;
    int r = object_read(a->w, key, &obj, NULL, e);
    if (r == -ENOENT)
        apierr_set(e, RPC_CODE_INVALID_ARGUMENT,
                   "spec.networks[%zu].network: network \"%s\" not found", i, name);
    if (r < 0)
        return NULL;
    ipam_net *n = &a->nets[a->n_nets];
    *n = (ipam_net){.name = name};
    const char *cidr = json_string_value(api_json_lookup(obj, "spec.cidr"));
    const char *gw = json_string_value(api_json_lookup(obj, "spec.gateway"));
    bool deleting = api_json_lookup(obj, "metadata.deletionTimestamp") != NULL;
    r = -1;
    if (deleting)
        apierr_set(e, RPC_CODE_INVALID_ARGUMENT,
                   "spec.networks[%zu].network: network \"%s\" is being deleted", i, name);
    else if (!cidr || api_ipv4_cidr_parse(cidr, &n->cidr) < 0 ||
             (gw && api_ipv4_parse(gw, &n->gateway) < 0))
        apierr_set(e, RPC_CODE_DATA_LOSS, "%s: the stored spec.cidr or spec.gateway is not valid",
                   key);
    else {
        _cleanup_free_ char *lkey = ledger_key(a->ns, name);
        n->has_gateway = gw != NULL;
        r = ledger_load(a->w, lkey, "allocations", &n->l, e);
    }
    json_decref(obj);
    if (r < 0)
        return NULL;
    a->n_nets++;
    return n;
}

static int claim_fixed(ipam_alloc *a, size_t i, const char *s, apierr *e)
{
    ipam_net *n = a->net_of[i];
    char c[API_IPV4_CIDR_STRLEN];
    uint32_t ip;
    uint64_t index;
    api_ipv4_cidr_format(&n->cidr, c);
    if (api_ipv4_parse(s, &ip) < 0)
        return apierr_set(e, RPC_CODE_INVALID_ARGUMENT,
                          "spec.networks[%zu].fixedIp: \"%.64s\" is not an IPv4 address", i, s);
    if (!api_ipv4_cidr_contains(&n->cidr, ip))
        return apierr_set(e, RPC_CODE_INVALID_ARGUMENT,
                          "spec.networks[%zu].fixedIp: \"%s\" is not in network \"%s\" (%s)", i, s,
                          n->name, c);
    if (api_ipv4_cidr_host_index(&n->cidr, ip, &index) < 0)
        return apierr_set(e, RPC_CODE_INVALID_ARGUMENT,
                          "spec.networks[%zu].fixedIp: \"%s\" is the %s address of %s", i, s,
                          ip == api_ipv4_cidr_network(&n->cidr) ? "network" : "broadcast", c);
    if (n->has_gateway && ip == n->gateway)
        return apierr_set(e, RPC_CODE_INVALID_ARGUMENT,
                          "spec.networks[%zu].fixedIp: \"%s\" is the gateway of network \"%s\"", i,
                          s, n->name);
    char text[API_IPV4_STRLEN];
    api_ipv4_format(ip, text);
    if (json_object_get(n->l.map, text))
        return apierr_set(e, RPC_CODE_ALREADY_EXISTS,
                          "spec.networks[%zu].fixedIp: \"%s\" is already in use on network \"%s\"",
                          i, text, n->name);
    json_object_set_new(n->l.map, text, json_string(a->uid));
    n->l.changed = true;
    a->ip[i] = ip;
    a->have[i] = true;
    return 0;
}

/* Whether ip would give NIC i the MAC of another NIC of the same instance. */
static bool mac_clash(const ipam_alloc *a, size_t i, uint32_t ip, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (j != i && a->have[j] && (a->ip[j] & 0xffffff) == (ip & 0xffffff))
            return true;
    return false;
}

static int claim_lowest(ipam_alloc *a, size_t i, size_t n_entries, apierr *e)
{
    ipam_net *n = a->net_of[i];
    uint64_t hosts = api_ipv4_cidr_host_count(&n->cidr);
    for (uint64_t k = 0; k < hosts; k++) {
        uint32_t ip;
        char text[API_IPV4_STRLEN];
        if (api_ipv4_cidr_nth_host(&n->cidr, k, &ip) < 0)
            break;
        if ((n->has_gateway && ip == n->gateway) ||
            json_object_get(n->l.map, api_ipv4_format(ip, text)) || mac_clash(a, i, ip, n_entries))
            continue;
        json_object_set_new(n->l.map, text, json_string(a->uid));
        n->l.changed = true;
        a->ip[i] = ip;
        a->have[i] = true;
        return 0;
    }
    char c[API_IPV4_CIDR_STRLEN];
    return apierr_set(e, RPC_CODE_RESOURCE_EXHAUSTED,
                      "spec.networks[%zu].network: network \"%s\" has no free address (%s)", i,
                      n->name, api_ipv4_cidr_format(&n->cidr, c));
}

static int allocate_run(ipam_alloc *a, json_t *obj, const json_t *networks, apierr *e)
{
    size_t n = json_array_size(networks);
    for (size_t i = 0; i < n; i++) {
        const char *name =
            json_string_value(json_object_get(json_array_get(networks, i), "network"));
        if (!name)
            return apierr_set(e, RPC_CODE_INVALID_ARGUMENT, "spec.networks[%zu].network: required",
                              i);
        a->net_of[i] = net_get(a, i, name, e);
        if (!a->net_of[i])
            return -1;
    }
    /* Fixed addresses first, so an automatic pick never takes one asked for further down. */
    for (size_t i = 0; i < n; i++) {
        const char *fixed =
            json_string_value(json_object_get(json_array_get(networks, i), "fixedIp"));
        if (fixed && claim_fixed(a, i, fixed, e) < 0)
            return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!a->have[i] && claim_lowest(a, i, n, e) < 0)
            return -1;

    json_t *addresses = json_array();
    for (size_t i = 0; i < n; i++) {
        char ip[API_IPV4_STRLEN], mac[18];
        snprintf(mac, sizeof(mac), "52:54:00:%02x:%02x:%02x", (a->ip[i] >> 16) & 0xff,
                 (a->ip[i] >> 8) & 0xff, a->ip[i] & 0xff);
        json_t *addr = json_object();
        json_object_set_new(addr, "network", json_string(a->net_of[i]->name));
        json_object_set_new(addr, "ip", json_string(api_ipv4_format(a->ip[i], ip)));
        json_object_set_new(addr, "mac", json_string(mac));
        json_array_append_new(addresses, addr);
    }
    json_t *st = json_object_get(obj, "status");
    if (!json_is_object(st)) {
        st = json_object();
        json_object_set_new(obj, "status", st);
    }
    json_object_set_new(st, "addresses", addresses);
    return 0;
}

int ipam_allocate(worker *w, store_txn *t, json_t *obj, json_t *writes, apierr *e)
{
    const json_t *networks = api_json_lookup(obj, "spec.networks");
    size_t n = json_array_size(networks);
    if (n == 0)
        return 0;
    if (n > API_INSTANCE_NETWORKS_MAX)
        return apierr_set(e, RPC_CODE_INVALID_ARGUMENT, "spec.networks: %zu entries; at most %d", n,
                          API_INSTANCE_NETWORKS_MAX);
    const char *uid = api_object_uid(obj);
    if (!uid)
        return apierr_set(e, RPC_CODE_INTERNAL, "ipam: the instance has no metadata.uid yet");
    const char *ns = api_object_namespace(obj);
    ipam_alloc a = {.w = w, .ns = ns ? ns : "default", .uid = uid};
    int r = allocate_run(&a, obj, networks, e);
    for (size_t i = 0; i < a.n_nets; i++) {
        if (r == 0)
            ledger_commit(t, &a.nets[i].l, writes);
        ledger_clear(&a.nets[i].l);
    }
    return r;
}

/* Adds name to names (distinct), up to max. */
static void name_add(const char **names, size_t *n, size_t max, const char *name)
{
    if (!name || !api_is_dns_subdomain(name) || *n >= max)
        return;
    for (size_t i = 0; i < *n; i++)
        if (streq(names[i], name))
            return;
    names[(*n)++] = name;
}

int ipam_release(worker *w, store_txn *t, const json_t *obj, json_t *writes, apierr *e)
{
    const char *uid = api_object_uid(obj);
    const char *ns = api_object_namespace(obj);
    if (!uid)
        return 0;
    if (!ns)
        ns = "default";
    /* Every network the instance names or holds an address on: status can be rewritten by
     * UpdateStatus, so entries are found by uid, not by the addresses it lists. */
    const char *names[API_INSTANCE_NETWORKS_MAX + API_ADDRESSES_MAX];
    size_t n = 0;
    size_t i;
    json_t *it;
    json_array_foreach (api_json_lookup(obj, "spec.networks"), i, it)
        name_add(names, &n, ELEMENTSOF(names), json_string_value(json_object_get(it, "network")));
    json_array_foreach (api_json_lookup(obj, "status.addresses"), i, it)
        name_add(names, &n, ELEMENTSOF(names), json_string_value(json_object_get(it, "network")));

    for (size_t k = 0; k < n; k++) {
        _cleanup_free_ char *key = ledger_key(ns, names[k]);
        ledger l;
        if (ledger_load_guess(w, key, "allocations", &l, e) < 0)
            return -1;
        const char *ip;
        json_t *holder;
        void *tmp;
        json_object_foreach_safe (l.map, tmp, ip, holder) {
            const char *h = json_string_value(holder);
            if (h && streq(h, uid)) {
                json_object_del(l.map, ip);
                l.changed = true;
            }
        }
        ledger_commit(t, &l, writes);
        ledger_clear(&l);
    }
    return 0;
}
