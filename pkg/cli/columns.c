/* Per-kind table columns for stratusctl get (see columns.h). One row per column in `columns`:
 * adding a column is one cell function and one row. */
#include "cli/columns.h"

#include <stdio.h>
#include <string.h>

#include "api/object.h"
#include "api/resources.h"
#include "base/alloc.h"
#include "cli/format.h"

#define CELL_MAX 512
#define NONE     "<none>"

typedef void (*cell_fn)(const json_t *obj, const cli_print_opts *o, char *out, size_t size);

typedef struct column {
    api_kind kind;
    const char *header;
    bool wide; /* only with -o wide */
    cell_fn cell;
} column;

static const char *str_at(const json_t *obj, const char *path)
{
    return json_string_value(api_json_lookup(obj, path));
}

static void put(char *out, size_t size, const char *s, const char *empty)
{
    snprintf(out, size, "%s", s && *s ? s : empty);
}

static void put_int(char *out, size_t size, const json_t *v, const char *empty)
{
    if (json_is_integer(v))
        snprintf(out, size, "%lld", (long long)json_integer_value(v));
    else
        put(out, size, NULL, empty);
}

const json_t *cli_condition_get(const json_t *obj, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach (api_json_lookup(obj, "status.conditions"), i, c) {
        const char *t = json_string_value(json_object_get(c, "type"));
        if (t && streq(t, type))
            return c;
    }
    return NULL;
}

const char *cli_condition_status(const json_t *obj, const char *type)
{
    return json_string_value(json_object_get(cli_condition_get(obj, type), "status"));
}

const char *cli_object_ref(const char *kind, const char *name, char *out, size_t size)
{
    const char *k = cli_kind_singular(api_kind_lookup(kind ? kind : ""));
    snprintf(out, size, "%s/%s", k ? k : (kind ? kind : "?"), name ? name : "?");
    return out;
}

/* ---- every kind ---- */

static void cell_name(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, api_object_name(obj), "?");
}

static void cell_namespace(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, api_object_namespace(obj), "");
}

static void cell_age(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    char age[CLI_AGE_MAX];
    put(out, size, cli_age_since(str_at(obj, "metadata.creationTimestamp"), o->now, age), "");
}

/* ---- Instance ---- */

static void cell_phase(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "status.phase"), "<unknown>");
}

static void cell_instance_node(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    const char *n = str_at(obj, "status.nodeName");
    put(out, size, n ? n : str_at(obj, "spec.nodeName"), NONE);
}

static void cell_instance_ip(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    json_t *first = json_array_get(api_json_lookup(obj, "status.addresses"), 0);
    put(out, size, json_string_value(json_object_get(first, "ip")), NONE);
}

static void cell_flavor(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "spec.flavor"), NONE);
}

static void cell_spec_image(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "spec.image"), NONE);
}

static void cell_power(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "spec.powerState"), "Running");
}

static void cell_zone(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "spec.availabilityZone"), NONE);
}

static void cell_attempts(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    snprintf(out, size, "%zu", json_array_size(api_json_lookup(obj, "status.attempts")));
}

static void cell_ready(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, cli_condition_status(obj, "Ready"), "Unknown");
}

/* ---- Node ---- */

static void cell_node_ready(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    const char *s = cli_condition_status(obj, "Ready");
    bool cordoned = json_is_true(api_json_lookup(obj, "spec.unschedulable"));
    snprintf(out, size, "%s%s", s ? s : "Unknown", cordoned ? ",SchedulingDisabled" : "");
}

static void cell_node_zone(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size,
        json_string_value(json_object_get(api_object_labels(obj), "topology.stratus.io/zone")),
        NONE);
}

int64_t cli_node_limit(const json_t *node, api_resource r)
{
    if (r < 0 || r >= _API_RESOURCE_MAX)
        return -1;
    const char *f = api_resource_table[r].field;
    if (!json_object_get(api_json_lookup(node, "status.allocatable"), f) &&
        !json_object_get(api_json_lookup(node, "spec.capacity"), f) &&
        !json_object_get(api_json_lookup(node, "status.capacity"), f))
        return -1; /* nothing reported yet: not the same as a node with no room */
    api_node_capacity cap;
    api_node_capacity_of(node, &cap);
    return cap.limit[r];
}

static const json_t *node_usage_of(const json_t *obj, const cli_print_opts *o)
{
    const char *name = api_object_name(obj);
    return o->node_usage && name ? json_object_get(o->node_usage, name) : NULL;
}

static void usage_cell(const json_t *obj, const cli_print_opts *o, api_resource r, bool mib,
                       char *out, size_t size)
{
    const json_t *u = node_usage_of(obj, o);
    int64_t used = json_integer_value(json_object_get(u, api_resource_table[r].field));
    int64_t limit = cli_node_limit(obj, r);
    char a[CLI_AGE_MAX] = "", b[CLI_AGE_MAX] = "?";
    if (mib) {
        cli_mib_format(used, a);
        if (limit >= 0)
            cli_mib_format(limit, b);
    } else {
        snprintf(a, sizeof(a), "%lld", (long long)used);
        if (limit >= 0)
            snprintf(b, sizeof(b), "%lld", (long long)limit);
    }
    if (!o->node_usage)
        snprintf(out, size, "%s", b);
    else
        snprintf(out, size, "%s/%s", a, b);
}

static void cell_node_cpu(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    usage_cell(obj, o, API_RESOURCE_VCPUS, false, out, size);
}

static void cell_node_mem(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    usage_cell(obj, o, API_RESOURCE_MEMORY, true, out, size);
}

static void cell_node_instances(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    if (!o->node_usage)
        put(out, size, NULL, "?");
    else
        snprintf(
            out, size, "%lld",
            (long long)json_integer_value(json_object_get(node_usage_of(obj, o), "instances")));
}

static void cell_node_taints(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    size_t i, n = 0;
    json_t *t;
    out[0] = '\0';
    json_array_foreach (api_json_lookup(obj, "spec.taints"), i, t) {
        const char *key = json_string_value(json_object_get(t, "key"));
        const char *effect = json_string_value(json_object_get(t, "effect"));
        n += (size_t)snprintf(out + MIN(n, size - 1), size - MIN(n, size - 1), "%s%s:%s",
                              i ? "," : "", key ? key : "?", effect ? effect : "?");
    }
    if (!out[0])
        put(out, size, NULL, NONE);
}

static void cell_node_ip(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    size_t i;
    json_t *a;
    json_array_foreach (api_json_lookup(obj, "status.addresses"), i, a) {
        const char *type = json_string_value(json_object_get(a, "type"));
        if (type && streq(type, "InternalIP")) {
            put(out, size, json_string_value(json_object_get(a, "address")), NONE);
            return;
        }
    }
    put(out, size, NULL, NONE);
}

static void cell_node_hypervisor(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "status.nodeInfo.hypervisor"), NONE);
}

static void cell_node_backend(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "status.nodeInfo.backend"), NONE);
}

/* ---- Flavor ---- */

static void cell_vcpus(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put_int(out, size, api_json_lookup(obj, "spec.vcpus"), "?");
}

static void cell_memory(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    char m[CLI_AGE_MAX];
    put(out, size, cli_mib_format(json_integer_value(api_json_lookup(obj, "spec.memoryMiB")), m),
        "?");
}

static void cell_disk(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    int64_t g = json_integer_value(api_json_lookup(obj, "spec.rootDiskGiB"));
    char m[CLI_AGE_MAX];
    put(out, size, g ? cli_gib_format(g, m) : "<image>", "");
}

static void cell_ephemeral(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    char m[CLI_AGE_MAX];
    put(out, size, cli_gib_format(json_integer_value(api_json_lookup(obj, "spec.ephemeralGiB")), m),
        "");
}

static void cell_swap(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    char m[CLI_AGE_MAX];
    put(out, size, cli_mib_format(json_integer_value(api_json_lookup(obj, "spec.swapMiB")), m), "");
}

/* ---- Image ---- */

static void cell_image_format(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    const char *f = str_at(obj, "spec.source.format");
    bool kernel = api_json_lookup(obj, "spec.kernel") != NULL;
    if (f && kernel)
        snprintf(out, size, "%s+kernel", f);
    else
        put(out, size, f ? f : (kernel ? "kernel" : NULL), "?");
}

static void cell_image_arch(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "spec.properties.architecture"), NONE);
}

static void cell_image_source(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    const char *u = str_at(obj, "spec.source.url");
    put(out, size, u ? u : str_at(obj, "spec.kernel.url"), NONE);
}

/* ---- Network ---- */

static void cell_cidr(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "spec.cidr"), "?");
}

static void cell_gateway(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "spec.gateway"), NONE);
}

static void cell_dhcp(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, json_is_false(api_json_lookup(obj, "spec.dhcp")) ? "false" : "true", "");
}

static void cell_mtu(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put_int(out, size, api_json_lookup(obj, "spec.mtu"), "1500");
}

static void cell_bridge(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "spec.bridge"), NONE);
}

/* ---- Volume ---- */

static void cell_size(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    char m[CLI_AGE_MAX];
    put(out, size, cli_gib_format(json_integer_value(api_json_lookup(obj, "spec.sizeGiB")), m),
        "?");
}

static void cell_volume_phase(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "status.phase"), "Pending");
}

static void cell_attached(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "status.attachedTo"), NONE);
}

static void cell_volume_format(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "spec.format"), "qcow2");
}

static void cell_status_node(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "status.nodeName"), NONE);
}

/* ---- ServerGroup ---- */

static void cell_policy(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "spec.policy"), "?");
}

static void cell_members(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    snprintf(out, size, "%zu", json_array_size(api_json_lookup(obj, "status.members")));
}

static void cell_max_per_node(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put_int(out, size, api_json_lookup(obj, "spec.maxPerNode"), NONE);
}

/* ---- Event ---- */

static void cell_last_seen(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    const char *t = str_at(obj, "spec.lastTimestamp");
    if (!t)
        t = str_at(obj, "spec.firstTimestamp");
    if (!t)
        t = str_at(obj, "metadata.creationTimestamp");
    char age[CLI_AGE_MAX];
    put(out, size, cli_age_since(t, o->now, age), "");
}

static void cell_first_seen(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    const char *t = str_at(obj, "spec.firstTimestamp");
    char age[CLI_AGE_MAX];
    put(out, size, t ? cli_age_since(t, o->now, age) : NULL, NONE);
}

static void cell_event_type(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "spec.type"), "Normal");
}

static void cell_reason(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "spec.reason"), "");
}

static void cell_event_object(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    cli_object_ref(str_at(obj, "spec.involvedObject.kind"), str_at(obj, "spec.involvedObject.name"),
                   out, size);
}

static void cell_message(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "spec.message"), "");
}

static void cell_source(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    const char *c = str_at(obj, "spec.source.component"), *h = str_at(obj, "spec.source.host");
    if (c && h)
        snprintf(out, size, "%s, %s", c, h);
    else
        put(out, size, c ? c : h, NONE);
}

static void cell_count(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put_int(out, size, api_json_lookup(obj, "spec.count"), "1");
}

/* ---- Lease ---- */

static void cell_holder(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    put(out, size, str_at(obj, "spec.holder"), NONE);
}

static void cell_lease_duration(const json_t *obj, const cli_print_opts *o, char *out, size_t size)
{
    json_t *v = api_json_lookup(obj, "spec.leaseDurationSeconds");
    if (json_is_integer(v))
        snprintf(out, size, "%llds", (long long)json_integer_value(v));
    else
        put(out, size, NULL, NONE);
}

#define K(x) API_KIND_##x
static const column columns[] = {
    {K(INSTANCE), "NAME", false, cell_name},
    {K(INSTANCE), "PHASE", false, cell_phase},
    {K(INSTANCE), "NODE", false, cell_instance_node},
    {K(INSTANCE), "IP", false, cell_instance_ip},
    {K(INSTANCE), "FLAVOR", false, cell_flavor},
    {K(INSTANCE), "AGE", false, cell_age},
    {K(INSTANCE), "IMAGE", true, cell_spec_image},
    {K(INSTANCE), "POWER", true, cell_power},
    {K(INSTANCE), "ZONE", true, cell_zone},
    {K(INSTANCE), "ATTEMPTS", true, cell_attempts},
    {K(INSTANCE), "READY", true, cell_ready},

    {K(NODE), "NAME", false, cell_name},
    {K(NODE), "READY", false, cell_node_ready},
    {K(NODE), "ZONE", false, cell_node_zone},
    {K(NODE), "CPU", false, cell_node_cpu},
    {K(NODE), "MEM", false, cell_node_mem},
    {K(NODE), "INSTANCES", false, cell_node_instances},
    {K(NODE), "AGE", false, cell_age},
    {K(NODE), "INTERNAL-IP", true, cell_node_ip},
    {K(NODE), "HYPERVISOR", true, cell_node_hypervisor},
    {K(NODE), "BACKEND", true, cell_node_backend},
    {K(NODE), "TAINTS", true, cell_node_taints},

    {K(FLAVOR), "NAME", false, cell_name},
    {K(FLAVOR), "VCPUS", false, cell_vcpus},
    {K(FLAVOR), "MEMORY", false, cell_memory},
    {K(FLAVOR), "DISK", false, cell_disk},
    {K(FLAVOR), "AGE", false, cell_age},
    {K(FLAVOR), "EPHEMERAL", true, cell_ephemeral},
    {K(FLAVOR), "SWAP", true, cell_swap},

    {K(IMAGE), "NAME", false, cell_name},
    {K(IMAGE), "FORMAT", false, cell_image_format},
    {K(IMAGE), "ARCH", false, cell_image_arch},
    {K(IMAGE), "AGE", false, cell_age},
    {K(IMAGE), "SOURCE", true, cell_image_source},

    {K(NETWORK), "NAME", false, cell_name},
    {K(NETWORK), "CIDR", false, cell_cidr},
    {K(NETWORK), "GATEWAY", false, cell_gateway},
    {K(NETWORK), "AGE", false, cell_age},
    {K(NETWORK), "DHCP", true, cell_dhcp},
    {K(NETWORK), "MTU", true, cell_mtu},
    {K(NETWORK), "BRIDGE", true, cell_bridge},

    {K(VOLUME), "NAME", false, cell_name},
    {K(VOLUME), "SIZE", false, cell_size},
    {K(VOLUME), "PHASE", false, cell_volume_phase},
    {K(VOLUME), "ATTACHED-TO", false, cell_attached},
    {K(VOLUME), "AGE", false, cell_age},
    {K(VOLUME), "IMAGE", true, cell_spec_image},
    {K(VOLUME), "FORMAT", true, cell_volume_format},
    {K(VOLUME), "NODE", true, cell_status_node},

    {K(SERVER_GROUP), "NAME", false, cell_name},
    {K(SERVER_GROUP), "POLICY", false, cell_policy},
    {K(SERVER_GROUP), "MEMBERS", false, cell_members},
    {K(SERVER_GROUP), "AGE", false, cell_age},
    {K(SERVER_GROUP), "MAX-PER-NODE", true, cell_max_per_node},

    {K(LEASE), "NAME", false, cell_name},
    {K(LEASE), "HOLDER", false, cell_holder},
    {K(LEASE), "DURATION", false, cell_lease_duration},
    {K(LEASE), "AGE", false, cell_age},

    {K(EVENT), "LAST SEEN", false, cell_last_seen},
    {K(EVENT), "TYPE", false, cell_event_type},
    {K(EVENT), "REASON", false, cell_reason},
    {K(EVENT), "OBJECT", false, cell_event_object},
    {K(EVENT), "MESSAGE", false, cell_message},
    {K(EVENT), "SOURCE", true, cell_source},
    {K(EVENT), "COUNT", true, cell_count},
    {K(EVENT), "FIRST SEEN", true, cell_first_seen},
};
#undef K

/* The columns of k under o, in order; the NAMESPACE column is index SIZE_MAX. */
static size_t columns_of(const api_kind_info *k, const cli_print_opts *o,
                         size_t ret[static CLI_TABLE_COLUMNS_MAX])
{
    size_t n = 0;
    if (o->namespaces && k->namespaced)
        ret[n++] = SIZE_MAX;
    for (size_t i = 0; i < ELEMENTSOF(columns) && n < CLI_TABLE_COLUMNS_MAX; i++)
        if (columns[i].kind == k->kind && (!columns[i].wide || o->wide))
            ret[n++] = i;
    return n;
}

size_t cli_columns_headers(const api_kind_info *k, const cli_print_opts *o,
                           const char *ret[static CLI_TABLE_COLUMNS_MAX])
{
    size_t idx[CLI_TABLE_COLUMNS_MAX];
    size_t n = columns_of(k, o, idx);
    for (size_t i = 0; i < n; i++)
        ret[i] = idx[i] == SIZE_MAX ? "NAMESPACE" : columns[idx[i]].header;
    return n;
}

cli_table *cli_columns_table(const api_kind_info *k, const cli_print_opts *o)
{
    const char *headers[CLI_TABLE_COLUMNS_MAX];
    size_t n = cli_columns_headers(k, o, headers);
    return cli_table_new(n, headers);
}

void cli_columns_add_row(cli_table *t, const api_kind_info *k, const cli_print_opts *o,
                         const json_t *obj)
{
    size_t idx[CLI_TABLE_COLUMNS_MAX];
    size_t n = columns_of(k, o, idx);
    char cells[CLI_TABLE_COLUMNS_MAX][CELL_MAX];
    const char *row[CLI_TABLE_COLUMNS_MAX];
    for (size_t i = 0; i < n; i++) {
        if (idx[i] == SIZE_MAX)
            cell_namespace(obj, o, cells[i], CELL_MAX);
        else
            columns[idx[i]].cell(obj, o, cells[i], CELL_MAX);
        row[i] = cells[i];
    }
    cli_table_add(t, row);
}

json_t *cli_node_usage(const json_t *instances, const json_t *flavors)
{
    json_t *by_flavor = json_object();
    size_t i;
    json_t *f;
    json_array_foreach (flavors, i, f) {
        const char *name = api_object_name(f);
        if (name)
            json_object_set(by_flavor, name, f);
    }
    json_t *usage = json_object();
    json_t *inst;
    json_array_foreach (instances, i, inst) {
        const char *node = str_at(inst, "spec.nodeName");
        const char *phase = str_at(inst, "status.phase");
        if (!node || !phase || streq(phase, "Pending"))
            continue; /* not bound: no claim in the ledger (a forced node waits for its Bind) */
        json_t *u = json_object_get(usage, node);
        if (!u) {
            u = json_pack("{s:I,s:I,s:I,s:I}", "vcpus", (json_int_t)0, "memoryMiB", (json_int_t)0,
                          "diskGiB", (json_int_t)0, "instances", (json_int_t)0);
            json_object_set_new(usage, node, u);
        }
        const char *flavor = str_at(inst, "spec.flavor");
        api_resources claim = {{0}};
        if (api_instance_claim(inst, &claim) < 0) /* what Bind recorded, else the flavor */
            api_flavor_resources(flavor ? json_object_get(by_flavor, flavor) : NULL, &claim);
        for (api_resource r = 0; r < _API_RESOURCE_MAX; r++) {
            const char *field = api_resource_table[r].field;
            json_object_set_new(
                u, field,
                json_integer(json_integer_value(json_object_get(u, field)) + claim.amount[r]));
        }
        json_object_set_new(u, "instances",
                            json_integer(json_integer_value(json_object_get(u, "instances")) + 1));
    }
    json_decref(by_flavor);
    return usage;
}
