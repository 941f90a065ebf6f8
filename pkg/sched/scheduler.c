/* The scheduler controller (see scheduler.h). One loop; informers feed a work queue of Pending
 * instances; each time keys are ready, a batch is placed against a snapshot built from the
 * caches (plus what this scheduler just bound, through informer_assume) and bound with one Bind.
 *
 * Unschedulable instances are parked, not retried in a loop: the cluster changing (a node added
 * or changed, a lease back, an instance deleted or unbound) moves them back to the queue, and a
 * slow timer retries them anyway. Conflicts with other schedulers (the apiserver refused because
 * its ledger moved) are retried with per-key backoff against fresh caches. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "api/conditions.h"
#include "api/object.h"
#include "base/alloc.h"
#include "reconcile/informer.h"
#include "reconcile/workqueue.h"
#include "rpc/client.h"
#include "sched/sched.h"
#include "sched/scheduler.h"

#define RPC_TIMEOUT (10 * USEC_PER_SEC)

enum {
    INF_INSTANCES,
    INF_NODES,
    INF_FLAVORS,
    INF_IMAGES,
    INF_GROUPS,
    INF_LEASES,
    INF_VOLUMES,
    _INF_MAX
};

static const char *const inf_kinds[_INF_MAX] = {
    [INF_INSTANCES] = "Instance", [INF_NODES] = "Node",         [INF_FLAVORS] = "Flavor",
    [INF_IMAGES] = "Image",       [INF_GROUPS] = "ServerGroup", [INF_LEASES] = "Lease",
    [INF_VOLUMES] = "Volume",
};

struct scheduler {
    struct ev_loop *loop;
    scheduler_options o;
    rpc_client *client;
    informer *inf[_INF_MAX];
    workqueue *q;
    json_t *parked;      /* key → true: unschedulable, waiting for the cluster to change */
    json_t *lost;        /* node → monotonic usec its lease was first seen missing */
    json_t *marked;      /* node → true: marked NotReady for this absence of its lease */
    json_t *failures;    /* node → Unbinds seen from it (decays) */
    json_t *reported;    /* key → the unschedulable message last written, to write it once */
    json_t *deferred;    /* key → when it was first left to its owner (monotonic usec) */
    char lease_name[64]; /* "stratus-scheduler.<id>": this scheduler's presence */
    int64_t lease_id;
    ev_timer presence;
    ev_timer retry; /* parked → queue */
    ev_timer lifecycle;
    unsigned seed;
    scheduler_stats stats;
    struct memo *instance_memo, *node_memo;
    struct binder *binder;
};

/* ---- small helpers */

static const char *str_at(const json_t *o, const char *path)
{
    return json_string_value(api_json_lookup(o, path));
}

static bool is_bound(const json_t *inst)
{
    const char *phase = str_at(inst, "status.phase");
    return str_at(inst, "spec.nodeName") && phase && !streq(phase, "Pending") &&
           !streq(phase, "Failed");
}

static bool needs_scheduling(const json_t *inst)
{
    const char *phase = str_at(inst, "status.phase");
    return !api_json_lookup(inst, "metadata.deletionTimestamp") &&
           (!phase || streq(phase, "Pending"));
}

static void unpark_all(scheduler *s)
{
    const char *key;
    json_t *v;
    json_object_foreach (s->parked, key, v)
        workqueue_add(s->q, key);
    json_object_clear(s->parked);
}

static bool synced(scheduler *s)
{
    for (int i = 0; i < _INF_MAX; i++)
        if (!informer_has_synced(s->inf[i]))
            return false;
    return true;
}

/* ---- sharing the work between schedulers
 *
 * Every scheduler considers every Pending instance; with several, each instance would be bound
 * by all of them at once and all but one would lose. So each scheduler announces itself with a
 * Lease ("stratus-scheduler.<id>", renewed like a node's), and rendezvous hashing over the live
 * ones names one owner per instance: the owner places it at once; the others look again every
 * TAKEOVER_DELAY while it is Pending. When the owner dies its lease expires and the instance
 * hashes to a live scheduler; an owner that is alive but has not placed it in TAKEOVER_STUCK
 * (wedged, or far behind) loses it to whoever looks next. Taking over on the first look instead
 * made three busy schedulers place everything three times over. Correctness never depended on
 * this: the ledger decides. */

#define PRESENCE_PREFIX "stratus-scheduler."
#define PRESENCE_TTL    6
/* A node is marked NotReady once its lease has been missing this long: an agent that registers
 * writes its Node a moment before its first lease, and marking it then (the first design) left
 * new nodes NotReady until their next lease change — 46 of 100 hollow nodes, for a minute. */
#define LEASE_GRACE    (3 * USEC_PER_SEC)
#define TAKEOVER_DELAY (2 * USEC_PER_SEC)  /* how often a non-owner looks again */
#define TAKEOVER_STUCK (10 * USEC_PER_SEC) /* ... and when it stops waiting for a live owner */

static uint64_t hash_pair(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = a; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (const char *p = b; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h ^ (h >> 29);
}

/* Whether this scheduler is key's owner among itself and the other live schedulers `others`
 * (their presence Lease names, taken once per snapshot: listing every Lease per instance was
 * 13% of a busy scheduler's CPU with 1,000 nodes). */
static bool owns_among(const scheduler *s, char *const *others, size_t n, const char *key)
{
    uint64_t mine = hash_pair(key, s->lease_name);
    for (size_t i = 0; i < n; i++)
        if (hash_pair(key, others[i]) > mine)
            return false;
    return true;
}

static void presence_fired(struct ev_loop *loop, ev_timer *t, int revents)
{
    scheduler *s = t->data;
    Stratus__V1__RenewLeaseRequest req = STRATUS__V1__RENEW_LEASE_REQUEST__INIT;
    req.node = s->lease_name;
    req.ttl_seconds = PRESENCE_TTL;
    req.lease_id = s->lease_id;
    Stratus__V1__RenewLeaseResponse *rep = NULL;
    rpc_status st;
    if (rpc_client_renew_lease(s->client, &req, RPC_TIMEOUT, &rep, &st) == 0)
        s->lease_id = rep->lease_id;
    rpc_message_free(rep);
}

/* ---- informer handlers: decide what goes into the queue */

static void instance_changed(informer *inf, const char *key, json_t *obj, void *ud)
{
    scheduler *s = ud;
    if (needs_scheduling(obj) && !json_object_get(s->parked, key))
        workqueue_add(s->q, key);
}

static void instance_updated(informer *inf, const char *key, json_t *old, json_t *obj, void *ud)
{
    scheduler *s = ud;
    if (is_bound(old) && !is_bound(obj)) {
        /* given back (Unbind): capacity freed, and the node that gave it back is noted */
        size_t n = json_array_size(api_json_lookup(obj, "status.attempts"));
        const char *node =
            str_at(json_array_get(api_json_lookup(obj, "status.attempts"), n - 1), "nodeName");
        if (node)
            json_object_set_new(
                s->failures, node,
                json_integer(json_integer_value(json_object_get(s->failures, node)) + 1));
        unpark_all(s);
    }
    json_object_del(s->parked, key);
    instance_changed(inf, key, obj, ud);
}

static void instance_deleted(informer *inf, const char *key, json_t *obj, void *ud)
{
    scheduler *s = ud;
    json_object_del(s->parked, key);
    json_object_del(s->reported, key);
    json_object_del(s->deferred, key);
    if (is_bound(obj))
        unpark_all(s);
}

static void cluster_changed(informer *inf, const char *key, json_t *obj, void *ud)
{
    unpark_all(ud);
}

static void cluster_updated(informer *inf, const char *key, json_t *old, json_t *obj, void *ud)
{
    unpark_all(ud);
}

static bool same_at(const json_t *a, const json_t *b, const char *path)
{
    const json_t *x = api_json_lookup(a, path), *y = api_json_lookup(b, path);
    return x == y || (x && y && json_equal(x, y));
}

static const char *ready_status(const json_t *node)
{
    size_t i;
    json_t *c;
    json_array_foreach (api_json_lookup(node, "status.conditions"), i, c)
        if (streq(str_at(c, "type") ? str_at(c, "type") : "", "Ready"))
            return str_at(c, "status");
    return NULL;
}

/* A node's heartbeat rewrites its status every few seconds; only what the filters read can make
 * a parked instance fit. Unparking on every heartbeat was a busy loop: with 50 nodes and 200
 * instances that fit nowhere, three schedulers made 60,000 decisions in two minutes. */
static void node_updated(informer *inf, const char *key, json_t *old, json_t *obj, void *ud)
{
    const char *r0 = ready_status(old), *r1 = ready_status(obj);
    if (!same_at(old, obj, "spec") || !same_at(old, obj, "metadata.labels") ||
        !same_at(old, obj, "status.allocatable") || !same_at(old, obj, "status.capacity") ||
        !same_at(old, obj, "status.nodeInfo") || (r0 != r1 && (!r0 || !r1 || !streq(r0, r1))))
        unpark_all(ud);
}

/* A Volume matters to placement by where its disk is; attach and release change nothing. */
static void volume_updated(informer *inf, const char *key, json_t *old, json_t *obj, void *ud)
{
    if (!same_at(old, obj, "status.nodeName"))
        unpark_all(ud);
}

/* A lease that appears is a node (or scheduler) coming alive; a renewal changes nothing. */
static void lease_updated(informer *inf, const char *key, json_t *old, json_t *obj, void *ud) {}

static void cluster_shrunk(informer *inf, const char *key, json_t *obj, void *ud) {}

/* ---- what the snapshot needs of each object, worked out once per object version
 *
 * Every batch takes a snapshot of the whole cluster, and reading it out of the JSON of every
 * instance and node each time was two thirds of the scheduler's CPU in steady churn (one
 * instance per batch). The informers' objects are immutable and replaced on every change, so
 * what is read from one is memoized by its address, with a reference held so the address cannot
 * be reused while memoized. Each snapshot keeps the entries of the objects it saw and drops the
 * rest. */

typedef struct placed {
    bool bound;
    const char *node, *flavor, *image; /* borrowed from the object */
    char *group;                       /* "<ns>/<group>", or NULL */
} placed;

typedef struct memo_entry {
    json_t *obj; /* a reference; NULL: empty */
    bool kept;   /* carried over into the next memo */
    bool lease_alive;
    union {
        placed inst;
        sched_node node;
    } u;
} memo_entry;

typedef struct memo {
    memo_entry *slots;
    size_t cap; /* a power of two */
} memo;

static size_t ptr_hash(const void *p)
{
    uint64_t x = (uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static memo_entry *memo_find(memo *m, const json_t *obj, bool insert)
{
    if (!m || !m->cap)
        return NULL;
    for (size_t i = ptr_hash(obj) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->slots[i].obj == obj)
            return &m->slots[i];
        if (!m->slots[i].obj)
            return insert ? &m->slots[i] : NULL;
    }
}

static memo *memo_new(size_t n)
{
    memo *m = xnew(memo, 1);
    m->cap = 16;
    while (m->cap < 2 * n + 16)
        m->cap *= 2;
    m->slots = xnew(memo_entry, m->cap);
    return m;
}

/* Frees m, releasing what was not carried over. */
static memo *memo_free(memo *m, bool instances)
{
    if (!m)
        return NULL;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].obj && !m->slots[i].kept) {
            if (instances)
                free(m->slots[i].u.inst.group);
            json_decref(m->slots[i].obj);
        }
    free(m->slots);
    free(m);
    return NULL;
}

/* The entry for obj in `next`: carried over from `prev` when it was there, else new (*fresh). */
static memo_entry *memo_carry(memo *prev, memo *next, json_t *obj, bool *fresh)
{
    memo_entry *e = memo_find(next, obj, true), *old = memo_find(prev, obj, false);
    if (e->obj)
        return *fresh = false, e; /* listed twice */
    if (old) {
        *e = *old;
        e->kept = false;
        old->kept = true;
        *fresh = false;
    } else {
        *e = (memo_entry){.obj = json_incref(obj)};
        *fresh = true;
    }
    return e;
}

static void placed_init(placed *p, const json_t *inst)
{
    const json_t *spec = json_object_get(inst, "spec");
    p->node = json_string_value(json_object_get(spec, "nodeName"));
    p->bound = is_bound(inst);
    p->flavor = json_string_value(json_object_get(spec, "flavor"));
    p->image = json_string_value(json_object_get(spec, "image"));
    const char *group = json_string_value(json_object_get(spec, "serverGroup"));
    p->group = group ? xasprintf("%s/%s", api_object_namespace(inst), group) : NULL;
}

/* ---- the snapshot */

typedef struct snapshot {
    sched_node *nodes;
    size_t n;
    json_t **node_objs;
    json_t *index; /* node name → its index */
    /* Warm image caches and server-group members, per node, so that a request reads them by
     * node index instead of by name: images (by name) and groups ("ns/group") are numbered in
     * `ids`, each with an array of n entries. */
    json_t *image_ids, *group_ids;
    bool **image_here; /* [image id][node] */
    struct group_members {
        size_t *here; /* [node] */
        size_t placed;
    } * groups; /* [group id] */
    size_t n_images, n_groups, images_allocated, groups_allocated;
    char **others; /* the other live schedulers' presence names */
    size_t n_others;
} snapshot;

static void snapshot_free(snapshot *sn)
{
    informer_items_free(sn->node_objs, sn->n);
    free(sn->nodes);
    json_decref(sn->index);
    json_decref(sn->image_ids);
    json_decref(sn->group_ids);
    for (size_t i = 0; i < sn->n_images; i++)
        free(sn->image_here[i]);
    for (size_t i = 0; i < sn->n_groups; i++)
        free(sn->groups[i].here);
    free(sn->image_here);
    free(sn->groups);
    for (size_t i = 0; i < sn->n_others; i++)
        free(sn->others[i]);
    free(sn->others);
    *sn = (snapshot){0};
}

static int node_index(const snapshot *sn, const char *name)
{
    json_t *i = name ? json_object_get(sn->index, name) : NULL;
    return i ? (int)json_integer_value(i) : -1;
}

static int flavor_resources(scheduler *s, const char *name, api_resources *ret)
{
    json_t *f = name ? informer_get(s->inf[INF_FLAVORS], name) : NULL;
    if (!f)
        return -ENOENT;
    api_flavor_resources(f, ret);
    json_decref(f);
    return 0;
}

/* The id of an image, or -1 when no instance of it is placed (add: give it one). */
static ssize_t image_id(snapshot *sn, const char *image, bool add)
{
    json_t *id = json_object_get(sn->image_ids, image);
    if (id || !add)
        return id ? (ssize_t)json_integer_value(id) : -1;
    sn->image_here = xgrow(sn->image_here, &sn->images_allocated, sn->n_images + 1, sizeof(bool *));
    sn->image_here[sn->n_images] = xnew(bool, sn->n);
    json_object_set_new(sn->image_ids, image, json_integer((json_int_t)sn->n_images));
    return (ssize_t)sn->n_images++;
}

static ssize_t group_id_of(snapshot *sn, const char *gkey, bool add)
{
    if (!gkey)
        return -1;
    json_t *id = json_object_get(sn->group_ids, gkey);
    if (id || !add)
        return id ? (ssize_t)json_integer_value(id) : -1;
    sn->groups = xgrow(sn->groups, &sn->groups_allocated, sn->n_groups + 1, sizeof(*sn->groups));
    sn->groups[sn->n_groups] = (struct group_members){.here = xnew(size_t, sn->n)};
    json_object_set_new(sn->group_ids, gkey, json_integer((json_int_t)sn->n_groups));
    return (ssize_t)sn->n_groups++;
}

static ssize_t group_id(snapshot *sn, const json_t *inst, bool add)
{
    const char *group = str_at(inst, "spec.serverGroup");
    if (!group)
        return -1;
    char gkey[600];
    snprintf(gkey, sizeof(gkey), "%s/%s", api_object_namespace(inst), group);
    return group_id_of(sn, gkey, add);
}

/* Counts an instance (bound, or just placed in this batch) on node ni: its claim, its image,
 * its server-group membership. */
static void snapshot_place_at(snapshot *sn, int ni, const char *image, const char *gkey,
                              const api_resources *need)
{
    for (api_resource r = 0; r < _API_RESOURCE_MAX; r++)
        sn->nodes[ni].used.amount[r] += need->amount[r];
    sn->nodes[ni].n_instances++;
    if (image) {
        ssize_t im = image_id(sn, image, true); /* first: it may move sn->image_here */
        sn->image_here[im][ni] = true;
    }
    ssize_t g = group_id_of(sn, gkey, true);
    if (g >= 0) {
        sn->groups[g].here[ni]++;
        sn->groups[g].placed++;
    }
}

static void snapshot_place(snapshot *sn, int ni, const json_t *inst, const api_resources *need)
{
    placed p;
    placed_init(&p, inst);
    snapshot_place_at(sn, ni, p.image, p.group, need);
    free(p.group);
}

static void snapshot_take(scheduler *s, snapshot *sn)
{
    *sn = (snapshot){0};
    sn->index = json_object();
    sn->image_ids = json_object();
    sn->group_ids = json_object();
    informer_list(s->inf[INF_NODES], &sn->node_objs, &sn->n);
    sn->nodes = xnew(sched_node, sn->n);
    /* The other schedulers' presence, once: only they matter for the node shares. */
    json_t **leases = NULL;
    size_t n_leases = 0;
    informer_list(s->inf[INF_LEASES], &leases, &n_leases);
    sn->others = xnew(char *, n_leases + 1);
    for (size_t i = 0; i < n_leases; i++) {
        const char *name = api_object_name(leases[i]);
        if (name && strncmp(name, PRESENCE_PREFIX, strlen(PRESENCE_PREFIX)) == 0 &&
            !streq(name, s->lease_name))
            sn->others[sn->n_others++] = xstrdup(name);
    }
    memo *nodes_next = memo_new(sn->n);
    for (size_t i = 0; i < sn->n; i++) {
        sched_node *n = &sn->nodes[i];
        const char *name = api_object_name(sn->node_objs[i]);
        json_t *lease = name ? informer_get(s->inf[INF_LEASES], name) : NULL;
        bool fresh;
        memo_entry *e = memo_carry(s->node_memo, nodes_next, sn->node_objs[i], &fresh);
        if (fresh || e->lease_alive != (lease != NULL)) {
            sched_node_init(&e->u.node, sn->node_objs[i], lease != NULL);
            e->lease_alive = lease != NULL;
        }
        *n = e->u.node;
        json_decref(lease);
        n->preferred = !name || owns_among(s, sn->others, sn->n_others, name);
        if (n->name)
            json_object_set_new(sn->index, n->name, json_integer((json_int_t)i));
        n->recent_failures = (unsigned)json_integer_value(json_object_get(s->failures, n->name));
    }
    informer_items_free(leases, n_leases);
    memo_free(s->node_memo, false);
    s->node_memo = nodes_next;
    json_t **instances = NULL;
    size_t n_instances = 0;
    informer_list(s->inf[INF_INSTANCES], &instances, &n_instances);
    json_t *claims = json_object(); /* flavor name → looked up once */
    memo *next = memo_new(n_instances);
    for (size_t i = 0; i < n_instances; i++) {
        bool fresh;
        memo_entry *e = memo_carry(s->instance_memo, next, instances[i], &fresh);
        if (fresh)
            placed_init(&e->u.inst, instances[i]);
        const placed *p = &e->u.inst;
        if (!p->bound)
            continue;
        int ni = node_index(sn, p->node);
        const char *flavor = p->flavor;
        if (ni < 0 || !flavor)
            continue;
        api_resources need;
        json_t *c = json_object_get(claims, flavor);
        if (c) {
            for (api_resource r = 0; r < _API_RESOURCE_MAX; r++)
                need.amount[r] = json_integer_value(json_array_get(c, r));
        } else {
            if (flavor_resources(s, flavor, &need) < 0)
                continue;
            json_object_set_new(claims, flavor,
                                json_pack("[I,I,I]", (json_int_t)need.amount[0],
                                          (json_int_t)need.amount[1], (json_int_t)need.amount[2]));
        }
        snapshot_place_at(sn, ni, p->image, p->group, &need);
    }
    json_decref(claims);
    memo_free(s->instance_memo, true);
    s->instance_memo = next;
    informer_items_free(instances, n_instances);
}

/* Per request: where the instance's server group already is, and where its image runs. */
static void snapshot_for(scheduler *s, snapshot *sn, const json_t *inst, sched_request *r)
{
    const char *image = str_at(inst, "spec.image");
    ssize_t im = image ? image_id(sn, image, false) : -1;
    ssize_t g = group_id(sn, inst, false);
    r->group_placed = g >= 0 ? sn->groups[g].placed : 0;
    for (size_t i = 0; i < sn->n; i++) {
        sn->nodes[i].group_members = g >= 0 ? sn->groups[g].here[i] : 0;
        sn->nodes[i].image_here = im >= 0 && sn->image_here[im][i];
    }
}

/* ---- writing back: status conditions, events, failures */

static void emit_event(scheduler *s, const json_t *inst, const char *reason, const char *type,
                       const char *message)
{
    char name[300];
    char *lower = xstrdup(reason);
    for (char *p = lower; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    snprintf(name, sizeof(name), "%.200s.%.60s", api_object_name(inst), lower);
    free(lower);
    char ts[TIMESTAMP_MAX];
    timestamp_format(now_realtime(), ts);
    const api_kind_info *k = api_object_kind(inst);
    json_t *ev = json_pack(
        "{s:s, s:s, s:{s:s, s:s}, s:{s:{s:s, s:s, s:s, s:s}, s:s, s:s, s:s, "
        "s:s, s:{s:s}}}",
        "apiVersion", API_VERSION, "kind", "Event", "metadata", "name", name, "namespace",
        k && k->namespaced ? api_object_namespace(inst) : "default", "spec", "involvedObject",
        "kind", k ? k->name : "Instance", "name", api_object_name(inst), "uid",
        api_object_uid(inst) ? api_object_uid(inst) : "", "namespace",
        k && k->namespaced ? api_object_namespace(inst) : "default", "reason", reason, "type", type,
        "message", message, "lastTimestamp", ts, "source", "component", s->o.name);
    if (!ev)
        return;
    if (k && !k->namespaced)
        json_object_del(json_object_get(json_object_get(ev, "spec"), "involvedObject"),
                        "namespace");
    char *text = json_dumps(ev, JSON_COMPACT);
    Stratus__V1__ApplyRequest req = STRATUS__V1__APPLY_REQUEST__INIT;
    req.object_json = text;
    Stratus__V1__ApplyResponse *rep = NULL;
    rpc_status st;
    if (rpc_client_apply(s->client, &req, RPC_TIMEOUT, &rep, &st) == 0)
        rpc_message_free(rep);
    free(text);
    json_decref(ev);
}

/* Writes the instance's status with a Scheduled condition (and phase, when given). */
static int write_status(scheduler *s, const json_t *inst, const char *phase, const char *status,
                        const char *reason, const char *message)
{
    json_t *st = json_deep_copy(json_object_get(inst, "status"));
    if (!json_is_object(st)) {
        json_decref(st);
        st = json_object();
    }
    if (phase)
        json_object_set_new(st, "phase", json_string(phase));
    api_status_set_condition(st, "Scheduled", status, reason, message, now_realtime());
    char *text = json_dumps(st, JSON_COMPACT);
    json_decref(st);
    Stratus__V1__UpdateStatusRequest req = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
    req.kind = "Instance";
    req.namespace_ = (char *)api_object_namespace(inst);
    req.name = (char *)api_object_name(inst);
    req.resource_version = (char *)str_at(inst, "metadata.resourceVersion");
    req.status_json = text;
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status rs;
    int r = rpc_client_update_status(s->client, &req, RPC_TIMEOUT, &rep, &rs);
    rpc_message_free(rep);
    free(text);
    return r;
}

static void report_unschedulable(scheduler *s, const char *key, const json_t *inst,
                                 const char *message)
{
    s->stats.unschedulable++;
    json_object_set_new(s->parked, key, json_true());
    const char *last = json_string_value(json_object_get(s->reported, key));
    if (last && streq(last, message))
        return; /* said already: no write per retry */
    if (write_status(s, inst, NULL, "False", "Unschedulable", message) == 0) {
        json_object_set_new(s->reported, key, json_string(message));
        emit_event(s, inst, "FailedScheduling", "Warning", message);
    }
}

static void give_up(scheduler *s, const json_t *inst, size_t attempts)
{
    char msg[1024];
    int off = snprintf(msg, sizeof(msg), "gave up after %zu attempts:", attempts);
    size_t i;
    json_t *a;
    json_array_foreach (api_json_lookup(inst, "status.attempts"), i, a) {
        if (off < 0 || (size_t)off >= sizeof(msg))
            break;
        off += snprintf(msg + off, sizeof(msg) - (size_t)off, "%s node %s: %s (%s)", i ? ";" : "",
                        str_at(a, "nodeName") ? str_at(a, "nodeName") : "?",
                        str_at(a, "reason") ? str_at(a, "reason") : "?",
                        str_at(a, "message") ? str_at(a, "message") : "");
    }
    if (write_status(s, inst, "Failed", "False", "TooManyAttempts", msg) == 0) {
        s->stats.failed++;
        emit_event(s, inst, "FailedScheduling", "Warning", msg);
    }
}

/* ---- placing a batch */

typedef struct pick {
    char *key;
    json_t *inst;
    int node;
} pick;

/* ---- binding, beside placing
 *
 * A batch's bindings go to the apiserver as up to bind_calls Bind calls at once, split by node
 * so that no two of them write the same node's ledger, from threads of their own: the loop
 * places the next batch meanwhile, on caches that already assume this one's bindings. One Bind
 * of a whole batch runs on one apiserver worker; waiting for it was most of a batch's time
 * (scheduler-bench: 0.5 ms per instance waiting, 0.13 ms placing). A refused binding drops its
 * assumption and goes back to the queue.
 *
 * The next batch's calls are held until this batch's are all answered: sent side by side, two
 * batches wrote some node ledgers at once, and a lost compare sends every binding of its
 * transaction (up to 32 nodes') to be retried alone — 5x the transactions in scheduler-bench.
 * So one batch binds while the next is placed, and keys wait in the queue beyond that. */

typedef struct bind_job {
    struct bind_job *next;
    pick *picks; /* keys and instances owned by the job */
    char **nodes;
    size_t n;
    /* the result, filled by a binder thread */
    int r;
    rpc_status st;
    Stratus__V1__BindResponse *rep;
    usec_t took;
} bind_job;

typedef struct binder {
    scheduler *s;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bind_job *todo, **todo_tail, *done;
    bool stop;
    pthread_t *threads;
    size_t n_threads;
    ev_async done_async;
    size_t in_flight; /* jobs sent and not yet settled; loop thread */
    bind_job *held;   /* the next batch's jobs, sent when in_flight is 0; loop thread */
    size_t n_held;
} binder;

static void bind_job_free(bind_job *j)
{
    for (size_t i = 0; i < j->n; i++) {
        json_decref(j->picks[i].inst);
        free(j->picks[i].key);
        free(j->nodes[i]);
    }
    rpc_message_free(j->rep);
    free(j->picks);
    free(j->nodes);
    free(j);
}

static void bind_jobs_free(bind_job *j)
{
    while (j) {
        bind_job *next = j->next;
        bind_job_free(j);
        j = next;
    }
}

static void *binder_main(void *arg)
{
    binder *b = arg;
    pthread_mutex_lock(&b->lock);
    for (;;) {
        while (!b->stop && !b->todo)
            pthread_cond_wait(&b->cond, &b->lock);
        if (b->stop)
            break;
        bind_job *j = b->todo;
        b->todo = j->next;
        if (!b->todo)
            b->todo_tail = &b->todo;
        pthread_mutex_unlock(&b->lock);

        Stratus__V1__Binding *bs = xnew(Stratus__V1__Binding, j->n);
        Stratus__V1__Binding **bp = xnew(Stratus__V1__Binding *, j->n);
        for (size_t i = 0; i < j->n; i++) {
            stratus__v1__binding__init(&bs[i]);
            bs[i].namespace_ = (char *)api_object_namespace(j->picks[i].inst);
            bs[i].name = (char *)api_object_name(j->picks[i].inst);
            bs[i].uid = (char *)api_object_uid(j->picks[i].inst);
            bs[i].node = j->nodes[i];
            bp[i] = &bs[i];
        }
        Stratus__V1__BindRequest req = STRATUS__V1__BIND_REQUEST__INIT;
        req.n_bindings = j->n;
        req.bindings = bp;
        usec_t t0 = now_monotonic();
        j->r = rpc_client_call(b->s->client, RPC_METHOD_BIND, &req.base, RPC_TIMEOUT,
                               (ProtobufCMessage **)&j->rep, &j->st);
        j->took = now_monotonic() - t0;
        free(bp);
        free(bs);

        pthread_mutex_lock(&b->lock);
        j->next = b->done;
        b->done = j;
        ev_async_send(b->s->loop, &b->done_async);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* What the apiserver said about one job's bindings. Loop thread. */
static void bind_settle(scheduler *s, bind_job *j)
{
    for (size_t i = 0; i < j->n; i++) {
        const pick *p = &j->picks[i];
        const Stratus__V1__BindResult *res =
            j->r == 0 && i < j->rep->n_results ? j->rep->results[i] : NULL;
        if (res && res->ok) {
            json_object_del(s->reported, p->key);
            s->stats.bound++;
            workqueue_forget(s->q, p->key);
        } else {
            /* The assumption was wrong: the cache shows the server's object again. */
            informer_unassume(s->inf[INF_INSTANCES], p->key);
            if (res && (res->code == RPC_CODE_NOT_FOUND || res->code == RPC_CODE_ALREADY_EXISTS)) {
                workqueue_forget(s->q, p->key); /* deleted, or someone else bound it */
            } else {
                /* lost a race with another scheduler, or the apiserver was away: fresh caches,
                 * later */
                s->stats.conflicts++;
                workqueue_add_rate_limited(s->q, p->key, NULL);
            }
        }
        workqueue_done(s->q, p->key);
    }
    s->stats.bind_usec += j->took;
}

static void schedule_ready(workqueue *q, void *userdata);

/* Hands jobs (a list) to the threads. Loop thread. */
static void binder_send(binder *b, bind_job *jobs, size_t n)
{
    pthread_mutex_lock(&b->lock);
    while (jobs) {
        bind_job *j = jobs;
        jobs = j->next;
        j->next = NULL;
        *b->todo_tail = j;
        b->todo_tail = &j->next;
    }
    b->in_flight += n;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static void binds_done(struct ev_loop *loop, ev_async *a, int revents)
{
    binder *b = a->data;
    pthread_mutex_lock(&b->lock);
    bind_job *done = b->done;
    b->done = NULL;
    pthread_mutex_unlock(&b->lock);
    while (done) {
        bind_job *j = done;
        done = j->next;
        bind_settle(b->s, j);
        bind_job_free(j);
        b->in_flight--;
    }
    if (b->in_flight == 0 && b->held) {
        binder_send(b, b->held, b->n_held);
        b->held = NULL;
        b->n_held = 0;
    }
    schedule_ready(b->s->q, b->s); /* places what waited for room */
}

static binder *binder_new(scheduler *s, size_t threads)
{
    binder *b = xnew(binder, 1);
    b->s = s;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    b->todo_tail = &b->todo;
    ev_async_init(&b->done_async, binds_done);
    b->done_async.data = b;
    ev_async_start(s->loop, &b->done_async);
    b->threads = xnew(pthread_t, threads);
    for (; b->n_threads < threads; b->n_threads++)
        if (pthread_create(&b->threads[b->n_threads], NULL, binder_main, b) != 0)
            break;
    return b;
}

/* Stops the threads once their calls end (by RPC_TIMEOUT at the latest); what was not sent or
 * not settled is dropped with the scheduler. */
static binder *binder_free(binder *b)
{
    if (!b)
        return NULL;
    pthread_mutex_lock(&b->lock);
    b->stop = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    for (size_t i = 0; i < b->n_threads; i++)
        pthread_join(b->threads[i], NULL);
    ev_async_stop(b->s->loop, &b->done_async);
    bind_jobs_free(b->todo);
    bind_jobs_free(b->done);
    bind_jobs_free(b->held);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
    free(b->threads);
    free(b);
    return NULL;
}

/* Room for one more batch: none is held waiting for the one that binds. */
static bool binder_has_room(const binder *b)
{
    return !b->held;
}

/* Assumes every pick bound (until the watch brings the instance, or its Bind is refused), then
 * hands the picks to the binder threads as up to n_threads jobs split by node — or holds them
 * while another batch's calls are out. Takes the picks' keys and instances. */
static void bind_submit(scheduler *s, snapshot *sn, pick *picks, size_t n)
{
    binder *b = s->binder;
    size_t k = MAX(MIN(b->n_threads, n), (size_t)1);
    bind_job **jobs = xnew(bind_job *, k);
    for (size_t i = 0; i < n; i++) {
        const char *node = sn->nodes[picks[i].node].name;
        json_t *assumed = json_deep_copy(picks[i].inst);
        json_object_set_new(json_object_get(assumed, "spec"), "nodeName", json_string(node));
        json_t *stj = json_object_get(assumed, "status");
        if (json_is_object(stj))
            json_object_set_new(stj, "phase", json_string("Scheduled"));
        int64_t rv = 0;
        informer_object_resource_version(assumed, &rv);
        api_object_set_resource_version(assumed, rv + 1);
        informer_assume(s->inf[INF_INSTANCES], picks[i].key, assumed);
        json_decref(assumed);

        bind_job **jp = &jobs[(size_t)picks[i].node % k];
        if (!*jp) {
            *jp = xnew(bind_job, 1);
            (*jp)->picks = xnew(pick, n);
            (*jp)->nodes = xnew(char *, n);
        }
        (*jp)->picks[(*jp)->n] = picks[i];
        (*jp)->nodes[(*jp)->n++] = xstrdup(node);
    }
    bind_job *list = NULL;
    size_t n_jobs = 0;
    for (size_t i = k; i-- > 0;)
        if (jobs[i]) {
            jobs[i]->next = list;
            list = jobs[i];
            n_jobs++;
        }
    free(jobs);
    if (b->in_flight == 0)
        binder_send(b, list, n_jobs);
    else {
        b->held = list;
        b->n_held = n_jobs;
    }
}

/* Where the instance's Volumes are: the node of each one that has a disk somewhere, copied into
 * buf (size bytes). A Volume the cache does not have puts no constraint (the agent fails the
 * build if it is gone). */
static void volumes_where(scheduler *s, const json_t *inst, sched_request *r, char *buf,
                          size_t size)
{
    size_t i;
    json_t *bd;
    json_array_foreach (api_json_lookup(inst, "spec.blockDevices"), i, bd) {
        const char *name = str_at(bd, "volume");
        if (!name)
            continue;
        char key[600];
        snprintf(key, sizeof(key), "%s/%s", api_object_namespace(inst), name);
        json_t *vol = informer_get(s->inf[INF_VOLUMES], key);
        const char *node = str_at(vol, "status.nodeName");
        if (node && r->volume_node && !streq(node, r->volume_node))
            r->volumes_apart = true;
        else if (node && !r->volume_node) {
            snprintf(buf, size, "%s", node);
            r->volume_node = buf;
        }
        json_decref(vol);
    }
}

/* Places up to one batch; returns how many keys it took from the queue. */
static size_t schedule_batch(scheduler *s)
{
    snapshot sn;
    usec_t t0 = now_monotonic();
    snapshot_take(s, &sn);
    usec_t t1 = now_monotonic();
    pick *picks = xnew(pick, s->o.batch_size);
    size_t n_picks = 0;
    char *key;
    size_t taken = 0;
    while (n_picks < s->o.batch_size && workqueue_get(s->q, 0, &key) == 0) {
        taken++;
        json_t *inst = informer_get(s->inf[INF_INSTANCES], key);
        if (!inst || !needs_scheduling(inst)) {
            workqueue_forget(s->q, key);
            workqueue_done(s->q, key);
            json_decref(inst);
            free(key);
            continue;
        }
        json_t *since = json_object_get(s->deferred, key);
        usec_t now = now_monotonic();
        if (!owns_among(s, sn.others, sn.n_others, key) &&
            (!since || now - (usec_t)json_integer_value(since) < TAKEOVER_STUCK)) {
            if (!since)
                json_object_set_new(s->deferred, key, json_integer((json_int_t)now));
            workqueue_done(s->q, key);
            workqueue_add_after(s->q, key, TAKEOVER_DELAY);
            json_decref(inst);
            free(key);
            continue;
        }
        json_object_del(s->deferred, key);
        json_t *attempts = api_json_lookup(inst, "status.attempts");
        if (json_array_size(attempts) >= s->o.max_attempts) {
            give_up(s, inst, json_array_size(attempts));
            workqueue_forget(s->q, key);
            workqueue_done(s->q, key);
            json_decref(inst);
            free(key);
            continue;
        }
        sched_request r = {.instance = inst,
                           .forced_node = str_at(inst, "spec.nodeName"),
                           .zone = str_at(inst, "spec.availabilityZone"),
                           .tolerations = api_json_lookup(inst, "spec.tolerations")};
        const char *failed[64];
        size_t i;
        json_t *a;
        json_array_foreach (attempts, i, a)
            if (r.n_failed < ELEMENTSOF(failed) && str_at(a, "nodeName"))
                failed[r.n_failed++] = str_at(a, "nodeName");
        r.failed_nodes = failed;
        char volume_node[256];
        volumes_where(s, inst, &r, volume_node, sizeof(volume_node));
        json_t *image = str_at(inst, "spec.image")
                            ? informer_get(s->inf[INF_IMAGES], str_at(inst, "spec.image"))
                            : NULL;
        r.arch = sched_image_arch(image);
        json_t *group = NULL;
        if (str_at(inst, "spec.serverGroup")) {
            char gkey[600];
            snprintf(gkey, sizeof(gkey), "%s/%s", api_object_namespace(inst),
                     str_at(inst, "spec.serverGroup"));
            group = informer_get(s->inf[INF_GROUPS], gkey);
            r.group_policy = str_at(group, "spec.policy");
            r.max_per_node = json_integer_value(api_json_lookup(group, "spec.maxPerNode"));
        }
        char message[1024];
        int chosen = -1;
        if (flavor_resources(s, str_at(inst, "spec.flavor"), &r.need) < 0)
            snprintf(message, sizeof(message), "flavor \"%s\" not found",
                     str_at(inst, "spec.flavor") ? str_at(inst, "spec.flavor") : "");
        else if (str_at(inst, "spec.serverGroup") && !group)
            snprintf(message, sizeof(message), "server group \"%s\" not found",
                     str_at(inst, "spec.serverGroup"));
        else {
            snapshot_for(s, &sn, inst, &r);
            sched_verdict v;
            sched_options so = {.pack = s->o.pack};
            chosen = sched_select(&r, sn.nodes, sn.n, &so, &s->seed, &v);
            if (chosen < 0)
                sched_explain(&v, message, sizeof(message));
        }
        if (chosen >= 0) {
            /* later picks in this batch see this one: claim, image, group */
            snapshot_place(&sn, chosen, inst, &r.need);
            picks[n_picks++] = (pick){.key = key, .inst = inst, .node = chosen};
        } else {
            report_unschedulable(s, key, inst, message);
            workqueue_done(s->q, key);
            json_decref(inst);
            free(key);
        }
        json_decref(image);
        json_decref(group);
    }
    usec_t t2 = now_monotonic();
    if (n_picks > 0) {
        bind_submit(s, &sn, picks, n_picks);
        s->stats.batches++;
        s->stats.snapshot_usec += t1 - t0;
        s->stats.select_usec += t2 - t1;
    }
    free(picks);
    snapshot_free(&sn);
    return taken;
}

static void schedule_ready(workqueue *q, void *userdata)
{
    scheduler *s = userdata;
    /* Until every cache is filled, keys wait in the queue; the lifecycle tick comes back. */
    if (!synced(s))
        return;
    /* With the binder full, keys wait in the queue: binds_done comes back here. */
    while (binder_has_room(s->binder) && schedule_batch(s) > 0)
        ;
}

/* ---- node lifecycle */

static void set_node_not_ready(scheduler *s, const json_t *node, const char *message)
{
    json_t *st = json_deep_copy(json_object_get(node, "status"));
    if (!json_is_object(st)) {
        json_decref(st);
        st = json_object();
    }
    api_status_set_condition(st, "Ready", "False", "NodeLeaseExpired", message, now_realtime());
    char *text = json_dumps(st, JSON_COMPACT);
    json_decref(st);
    Stratus__V1__UpdateStatusRequest req = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
    req.kind = "Node";
    req.name = (char *)api_object_name(node);
    req.resource_version = (char *)str_at(node, "metadata.resourceVersion");
    req.status_json = text;
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status rs;
    if (rpc_client_update_status(s->client, &req, RPC_TIMEOUT, &rep, &rs) == 0)
        emit_event(s, node, "NodeNotReady", "Warning", message);
    rpc_message_free(rep);
    free(text);
}

static void reschedule_from(scheduler *s, const char *node, json_t **instances, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const json_t *inst = instances[i];
        const char *on = str_at(inst, "spec.nodeName");
        if (!is_bound(inst) || !on || !streq(on, node) ||
            api_json_lookup(inst, "metadata.deletionTimestamp"))
            continue;
        Stratus__V1__UnbindRequest req = STRATUS__V1__UNBIND_REQUEST__INIT;
        req.namespace_ = (char *)api_object_namespace(inst);
        req.name = (char *)api_object_name(inst);
        req.uid = (char *)api_object_uid(inst);
        req.node = (char *)node;
        req.reason = "NodeLost";
        char msg[256];
        snprintf(msg, sizeof(msg), "node %s stopped renewing its lease; placed elsewhere", node);
        req.message = msg;
        Stratus__V1__ObjectResponse *rep = NULL;
        rpc_status rs;
        if (rpc_client_call(s->client, RPC_METHOD_UNBIND, &req.base, RPC_TIMEOUT,
                            (ProtobufCMessage **)&rep, &rs) == 0) {
            s->stats.rescheduled++;
            emit_event(s, inst, "Rescheduled", "Warning", msg);
        }
        rpc_message_free(rep);
    }
}

static void lifecycle_fired(struct ev_loop *loop, ev_timer *t, int revents)
{
    scheduler *s = t->data;
    if (!synced(s))
        return;
    workqueue_stats qs;
    workqueue_stats_read(s->q, &qs);
    if (qs.depth > 0)
        schedule_ready(s->q, s);
    json_t **nodes = NULL, **instances = NULL;
    size_t n = 0, n_inst = 0;
    informer_list(s->inf[INF_NODES], &nodes, &n);
    bool listed = false;
    usec_t now = now_monotonic();
    for (size_t i = 0; i < n; i++) {
        const char *name = api_object_name(nodes[i]);
        json_t *lease = informer_get(s->inf[INF_LEASES], name);
        if (lease) {
            json_decref(lease);
            json_object_del(s->lost, name);
            json_object_del(s->marked, name);
            continue;
        }
        json_t *since = json_object_get(s->lost, name);
        if (!since) {
            json_object_set_new(s->lost, name, json_integer((json_int_t)now));
            continue;
        }
        usec_t missing = now - (usec_t)json_integer_value(since);
        if (missing >= LEASE_GRACE && !json_object_get(s->marked, name)) {
            json_object_set_new(s->marked, name, json_true());
            bool ready_false = false;
            size_t j;
            json_t *c;
            json_array_foreach (api_json_lookup(nodes[i], "status.conditions"), j, c)
                if (streq(str_at(c, "type") ? str_at(c, "type") : "", "Ready") &&
                    streq(str_at(c, "status") ? str_at(c, "status") : "", "False"))
                    ready_false = true;
            if (!ready_false)
                set_node_not_ready(s, nodes[i], "the node's lease expired: no heartbeat");
        }
        if (missing < s->o.fencing_margin)
            continue;
        if (!listed) {
            informer_list(s->inf[INF_INSTANCES], &instances, &n_inst);
            listed = true;
        }
        reschedule_from(s, name, instances, n_inst);
    }
    informer_items_free(nodes, n);
    informer_items_free(instances, n_inst);
}

static void retry_fired(struct ev_loop *loop, ev_timer *t, int revents)
{
    scheduler *s = t->data;
    unpark_all(s);
    /* failures decay: halve every retry interval */
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe (s->failures, tmp, k, v) {
        json_int_t x = json_integer_value(v) / 2;
        if (x)
            json_integer_set(v, x);
        else
            json_object_del(s->failures, k);
    }
}

/* ---- life cycle */

int scheduler_new(struct ev_loop *loop, const scheduler_options *o, scheduler **ret)
{
    scheduler *s = xnew(scheduler, 1);
    s->loop = loop;
    s->o = *o;
    if (!s->o.name)
        s->o.name = "stratus-scheduler";
    if (!s->o.max_attempts)
        s->o.max_attempts = 3;
    if (!s->o.batch_size)
        s->o.batch_size = 200;
    if (!s->o.fencing_margin)
        s->o.fencing_margin = 40 * USEC_PER_SEC;
    if (!s->o.retry_interval)
        s->o.retry_interval = 30 * USEC_PER_SEC;
    s->seed = o->seed ? o->seed : (unsigned)now_monotonic();
    s->parked = json_object();
    s->lost = json_object();
    s->marked = json_object();
    s->failures = json_object();
    s->reported = json_object();
    s->deferred = json_object();
    snprintf(s->lease_name, sizeof(s->lease_name), PRESENCE_PREFIX "%08x%04x", s->seed,
             (unsigned)(now_realtime() & 0xffff));
    int r = rpc_client_new(o->server, NULL, &s->client);
    if (r < 0) {
        scheduler_free(s);
        return r;
    }
    s->binder = binder_new(s, s->o.bind_calls ? s->o.bind_calls : 4);
    if (s->binder->n_threads == 0) {
        scheduler_free(s);
        return -EAGAIN;
    }
    /* A refused binding means "look again with fresher caches", not "overloaded": retry soon. */
    workqueue_options wo = {
        .backoff_base = 10 * USEC_PER_MSEC, .backoff_max = USEC_PER_SEC, .qps = -1};
    if ((r = workqueue_new(&wo, &s->q)) < 0 ||
        (r = workqueue_attach(s->q, loop, schedule_ready, s)) < 0) {
        scheduler_free(s);
        return r;
    }
    for (int i = 0; i < _INF_MAX; i++) {
        informer_options io = {.kind = inf_kinds[i], .all_namespaces = true};
        informer_handlers h = {.userdata = s};
        if (i == INF_INSTANCES)
            h = (informer_handlers){instance_changed, instance_updated, instance_deleted, s};
        else if (i == INF_NODES)
            h = (informer_handlers){cluster_changed, node_updated, cluster_shrunk, s};
        else if (i == INF_LEASES)
            h = (informer_handlers){cluster_changed, lease_updated, cluster_shrunk, s};
        else if (i == INF_VOLUMES)
            h = (informer_handlers){cluster_changed, volume_updated, cluster_changed, s};
        else if (i == INF_FLAVORS || i == INF_GROUPS)
            h = (informer_handlers){cluster_changed, cluster_updated, cluster_shrunk, s};
        if ((r = informer_new(s->client, loop, &io, &h, &s->inf[i])) < 0 ||
            (r = informer_start(s->inf[i])) < 0) {
            scheduler_free(s);
            return r;
        }
    }
    ev_timer_init(&s->retry, retry_fired, (double)s->o.retry_interval / USEC_PER_SEC,
                  (double)s->o.retry_interval / USEC_PER_SEC);
    s->retry.data = s;
    ev_timer_start(loop, &s->retry);
    ev_timer_init(&s->presence, presence_fired, 0.0, PRESENCE_TTL / 3.0);
    s->presence.data = s;
    ev_timer_start(loop, &s->presence);
    ev_timer_init(&s->lifecycle, lifecycle_fired, 1.0, 1.0);
    s->lifecycle.data = s;
    ev_timer_start(loop, &s->lifecycle);
    *ret = s;
    return 0;
}

scheduler *scheduler_free(scheduler *s)
{
    if (!s)
        return NULL;
    ev_timer_stop(s->loop, &s->retry);
    ev_timer_stop(s->loop, &s->lifecycle);
    ev_timer_stop(s->loop, &s->presence);
    s->binder = binder_free(s->binder); /* before the caches and queue its jobs refer to */
    for (int i = 0; i < _INF_MAX; i++)
        s->inf[i] = informer_free(s->inf[i]);
    s->q = workqueue_free(s->q);
    s->client = rpc_client_free(s->client);
    json_decref(s->parked);
    json_decref(s->lost);
    json_decref(s->marked);
    json_decref(s->failures);
    json_decref(s->reported);
    json_decref(s->deferred);
    memo_free(s->instance_memo, true);
    memo_free(s->node_memo, false);
    free(s);
    return NULL;
}

void scheduler_stats_read(scheduler *s, scheduler_stats *ret)
{
    *ret = s->stats;
}
