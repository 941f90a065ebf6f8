/* The scheduler controller (see scheduler.h). One loop; informers feed a work queue of Pending
 * instances and, through their handlers, the placement cache (cache.h); each time keys are
 * ready, a batch is placed against a copy of the cache's nodes (each pick assumed bound through
 * informer_assume, which the cache counts) and bound by the binder threads.
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
#include "sched/cache.h"
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
    unsigned retries; /* retry timer firings, for the audit */
    scheduler_stats stats;
    sched_cache *cache; /* what a snapshot copies, kept current by the handlers */
    sched_view view;    /* the batch's snapshot of it */
    sched_memo memo;    /* per-node results of alike requests, over view */
    json_t *others;     /* other schedulers' presence lease names → true */
    /* Flavors deleted while instances may still hold claims of their sizes (the ledger keeps
     * them until those instances go): name → last state. A flavor of that name applied again
     * replaces it. */
    json_t *gone_flavors;
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

/* Whether inst holds a claim in its node's ledger: bound, including Failed there (an agent that
 * fails an instance for good keeps it on its node; only Unbind or the final delete release the
 * claim). Counting only is_bound ones made the scheduler see room the ledger refused, and pick
 * that node again after every refused Bind. */
static bool holds_claim(const json_t *inst)
{
    const char *phase = str_at(inst, "status.phase");
    if (!str_at(inst, "spec.nodeName") || !phase || streq(phase, "Pending"))
        return false;
    /* Failed or Deleting without ever being bound (a forced node the scheduler gave up on, or
     * deleted while Pending) never had a claim: Bind sets status.nodeName, Unbind clears it. An
     * assumption (phase Scheduled) has no status.nodeName and counts. */
    if (streq(phase, "Failed") || streq(phase, "Deleting"))
        return str_at(inst, "status.nodeName") != NULL;
    return true;
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
static bool owns_among(const scheduler *s, const char *const *others, size_t n, const char *key)
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

/* A scheduler that stops says so: its share of new instances goes to the others at once
 * instead of waiting for its presence to expire (PRESENCE_TTL, then TAKEOVER_STUCK at worst).
 * Best effort: a scheduler that dies without it is covered by the expiry. */
static void release_presence(scheduler *s)
{
    if (!s->client || !s->lease_id)
        return;
    Stratus__V1__DeleteRequest req = STRATUS__V1__DELETE_REQUEST__INIT;
    req.kind = "Lease";
    req.name = s->lease_name;
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status st;
    if (rpc_client_delete(s->client, &req, USEC_PER_SEC, &rep, &st) == 0)
        rpc_message_free(rep);
    s->lease_id = 0;
}

/* ---- informer handlers: keep the cache (account, sched_cache_set_*) and decide what goes into
 * the queue. The handlers are told the server's objects; what the cache counts is what the
 * informer shows, assumptions included, so instances are counted from informer_get. */

static void account(scheduler *s, const char *key);
static void account_flavor(scheduler *s, const char *flavor);

static void instance_queue(scheduler *s, const char *key, json_t *obj)
{
    if (needs_scheduling(obj) && !json_object_get(s->parked, key))
        workqueue_add(s->q, key);
}

static void instance_changed(informer *inf, const char *key, json_t *obj, void *ud)
{
    scheduler *s = ud;
    account(s, key);
    instance_queue(s, key, obj);
}

static void instance_updated(informer *inf, const char *key, json_t *old, json_t *obj, void *ud)
{
    scheduler *s = ud;
    account(s, key);
    if (holds_claim(old) && !holds_claim(obj)) {
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
    /* Deferred means "Pending and left to another": once placed (by anyone) it is not. A stale
     * entry made a rescheduled instance look stuck at once (every scheduler took it over) and was
     * requeued at every change of the schedulers' set. */
    if (!needs_scheduling(obj))
        json_object_del(s->deferred, key);
    instance_queue(s, key, obj);
}

static void instance_deleted(informer *inf, const char *key, json_t *obj, void *ud)
{
    scheduler *s = ud;
    account(s, key);
    json_object_del(s->parked, key);
    json_object_del(s->reported, key);
    json_object_del(s->deferred, key);
    if (holds_claim(obj))
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
    scheduler *s = ud;
    sched_cache_set_node(s->cache, api_object_name(obj), obj);
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

static void node_added(informer *inf, const char *key, json_t *obj, void *ud)
{
    scheduler *s = ud;
    sched_cache_set_node(s->cache, api_object_name(obj), obj);
    unpark_all(s);
}

static void node_deleted(informer *inf, const char *key, json_t *obj, void *ud)
{
    scheduler *s = ud;
    sched_cache_set_node(s->cache, api_object_name(obj), NULL);
}

/* A lease is a node's heartbeat, or another scheduler's presence. When the set of schedulers
 * changes, so do the owners: what was left to another is looked at again now, not after
 * TAKEOVER_DELAY. Three schedulers started together each saw the others arrive one by one and
 * left their shares of 2,000 instances alone for 2 s (304 bound/s instead of ~1,500). */
static void lease_set(scheduler *s, const char *name, bool alive)
{
    sched_cache_set_lease(s->cache, name, alive);
    if (name && strncmp(name, PRESENCE_PREFIX, strlen(PRESENCE_PREFIX)) == 0 &&
        !streq(name, s->lease_name)) {
        bool was = json_object_get(s->others, name) != NULL;
        if (alive)
            json_object_set_new(s->others, name, json_true());
        else
            json_object_del(s->others, name);
        if (was != alive) {
            const char *key;
            json_t *since;
            json_object_foreach (s->deferred, key, since)
                workqueue_add(s->q, key);
        }
    }
}

/* A lease that appears is a node (or scheduler) coming alive. */
static void lease_added(informer *inf, const char *key, json_t *obj, void *ud)
{
    lease_set(ud, api_object_name(obj), true);
    unpark_all(ud);
}

/* A renewal changes nothing. */
static void lease_updated(informer *inf, const char *key, json_t *old, json_t *obj, void *ud) {}

static void lease_deleted(informer *inf, const char *key, json_t *obj, void *ud)
{
    lease_set(ud, api_object_name(obj), false);
}

/* What an instance claims is its flavor's: all of them count again. */
static void flavor_added(informer *inf, const char *key, json_t *obj, void *ud)
{
    scheduler *s = ud;
    json_object_del(s->gone_flavors, key);
    account_flavor(s, key);
    unpark_all(s);
}

static void flavor_updated(informer *inf, const char *key, json_t *old, json_t *obj, void *ud)
{
    account_flavor(ud, key);
    unpark_all(ud);
}

/* Instances bound with it keep their claims (Nova lets a flavor in use be deleted too): they go
 * on counting its sizes, as the ledger does; only new placements say it is not found. */
static void flavor_deleted(informer *inf, const char *key, json_t *obj, void *ud)
{
    scheduler *s = ud;
    json_object_set(s->gone_flavors, key, obj);
    account_flavor(s, key);
}

static void cluster_shrunk(informer *inf, const char *key, json_t *obj, void *ud) {}

/* The cache is audited every this many retry intervals (5 minutes by default): rebuilding it
 * from 10,000 instances holds the loop for 50-80 ms. */
#define AUDIT_EVERY 10

/* ---- the snapshot
 *
 * What a batch places against: the scheduler's cache (cache.h) copied per node. The cache is
 * kept current one change at a time, from the informers' handlers and from this scheduler's
 * own assumptions and their reverts: every change of the instance a key shows (informer_get:
 * the assumed object while there is one) goes through account(). Building the snapshot from
 * every instance of the cluster each batch (the first design, memoized per object) was 11% of
 * the process's CPU at 10,000 instances; copying 1,000 nodes is a few microseconds. Everything
 * here runs on the loop thread, and so do the handlers: a batch never sees a change half made.
 * The binder threads only send what a batch hands them. */

/* The sizes of flavor `name`; with `gone`, also of one deleted (for claims already held). */
static int flavor_resources(scheduler *s, const char *name, bool gone, api_resources *ret)
{
    json_t *f = name ? informer_get(s->inf[INF_FLAVORS], name) : NULL;
    if (!f && name && gone)
        f = json_incref(json_object_get(s->gone_flavors, name));
    if (!f)
        return -ENOENT;
    api_flavor_resources(f, ret);
    json_decref(f);
    return 0;
}

/* What inst counts (an instance holding a claim, recorded by Bind or of a known flavor: its claim,
 * image and server group), into *ret with the group's key in gbuf; false when it counts nothing. */
static bool claim_of(scheduler *s, const json_t *inst, sched_claim *ret, char *gbuf, size_t size)
{
    if (!inst || !holds_claim(inst))
        return false;
    const json_t *spec = json_object_get(inst, "spec");
    const char *node = json_string_value(json_object_get(spec, "nodeName"));
    const char *flavor = json_string_value(json_object_get(spec, "flavor"));
    /* As Bind recorded it; an assumption, or an instance bound before Bind recorded claims,
     * counts its flavor (remembered after its deletion: gone_flavors). */
    if (!node || (api_instance_claim(inst, &ret->need) < 0 &&
                  (!flavor || flavor_resources(s, flavor, true, &ret->need) < 0)))
        return false;
    ret->node = node;
    ret->image = json_string_value(json_object_get(spec, "image"));
    const char *group = json_string_value(json_object_get(spec, "serverGroup"));
    ret->group = NULL;
    if (group) {
        snprintf(gbuf, size, "%s/%s", api_object_namespace(inst), group);
        ret->group = gbuf;
    }
    return true;
}

/* Makes the cache count what key shows now. */
static void account_in(scheduler *s, sched_cache *c, const char *key, const json_t *inst)
{
    sched_claim claim;
    char group[600];
    sched_cache_set_claim(c, key, claim_of(s, inst, &claim, group, sizeof(group)) ? &claim : NULL);
}

static void account(scheduler *s, const char *key)
{
    json_t *inst = informer_get(s->inf[INF_INSTANCES], key);
    account_in(s, s->cache, key, inst);
    json_decref(inst);
}

/* A flavor changed, came or went: every instance of it counts differently. Rare; O(cluster)
 * (a string compare per instance, a recount per instance of the flavor). */
static void account_flavor(scheduler *s, const char *flavor)
{
    json_t **items = NULL;
    size_t n = 0;
    informer_list(s->inf[INF_INSTANCES], &items, &n);
    for (size_t i = 0; i < n; i++) {
        const char *f = str_at(items[i], "spec.flavor");
        char *key;
        if (!f || !streq(f, flavor) || informer_object_key(items[i], &key) < 0)
            continue;
        account_in(s, s->cache, key, items[i]);
        free(key);
    }
    informer_items_free(items, n);
}

void scheduler_audit(scheduler *s)
{
    sched_cache *fresh = sched_cache_new();
    json_t **items = NULL;
    size_t n = 0;
    informer_list(s->inf[INF_NODES], &items, &n);
    for (size_t i = 0; i < n; i++)
        sched_cache_set_node(fresh, api_object_name(items[i]), items[i]);
    informer_items_free(items, n);
    informer_list(s->inf[INF_LEASES], &items, &n);
    for (size_t i = 0; i < n; i++)
        sched_cache_set_lease(fresh, api_object_name(items[i]), true);
    informer_items_free(items, n);
    informer_list(s->inf[INF_INSTANCES], &items, &n);
    for (size_t i = 0; i < n; i++) {
        char *key;
        if (informer_object_key(items[i], &key) < 0)
            continue;
        account_in(s, fresh, key, items[i]);
        free(key);
    }
    informer_items_free(items, n);
    if (!sched_cache_equal(s->cache, fresh)) {
        s->stats.cache_repairs++;
        sched_cache_free(s->cache);
        s->cache = TAKE_PTR(fresh);
    }
    sched_cache_free(fresh);
}

typedef struct snapshot {
    sched_view *view;    /* the scheduler's, refilled per batch */
    const char **others; /* the other live schedulers' presence names */
    size_t n_others;
    /* The image and group the nodes' image_here and group_members are filled for, and the
     * group's members on them: a batch of one image and no group fills them once. */
    bool filled;
    char *image, *group;
    size_t group_placed;
} snapshot;

static void snapshot_free(snapshot *sn)
{
    free(sn->others);
    free(sn->image);
    free(sn->group);
    *sn = (snapshot){0};
}

static bool same_name(const char *a, const char *b)
{
    return a == b || (a && b && streq(a, b));
}

static void snapshot_take(scheduler *s, snapshot *sn)
{
    *sn = (snapshot){.view = &s->view};
    sched_cache_view(s->cache, sn->view);
    sched_memo_reset(&s->memo);
    /* The other schedulers' presence, once: only they matter for the node shares. */
    sn->others = xnew(const char *, json_object_size(s->others) + 1);
    const char *name;
    json_t *v;
    json_object_foreach (s->others, name, v)
        sn->others[sn->n_others++] = name;
    bool failures = json_object_size(s->failures) > 0;
    for (size_t i = 0; i < sn->view->n; i++) {
        sched_node *n = &sn->view->nodes[i];
        n->preferred =
            !n->name || sn->n_others == 0 || owns_among(s, sn->others, sn->n_others, n->name);
        n->recent_failures =
            failures && n->name
                ? (unsigned)json_integer_value(json_object_get(s->failures, n->name))
                : 0;
    }
}

/* Per request: where the instance's server group already is, and where its image runs. */
static void snapshot_for(scheduler *s, snapshot *sn, const json_t *inst, sched_request *r)
{
    const char *group = str_at(inst, "spec.serverGroup");
    char gkey[600];
    if (group)
        snprintf(gkey, sizeof(gkey), "%s/%s", api_object_namespace(inst), group);
    const char *image = str_at(inst, "spec.image");
    if (!sn->filled || !same_name(sn->image, image) || !same_name(sn->group, group ? gkey : NULL)) {
        free(sn->image);
        free(sn->group);
        sn->image = image ? xstrdup(image) : NULL;
        sn->group = group ? xstrdup(gkey) : NULL;
        sn->group_placed = sched_cache_view_for(s->cache, sn->view, sn->image, sn->group);
        sn->filled = true;
    }
    r->group_placed = sn->group_placed;
}

/* An instance claimed on node i (account'ed): its image and group may be there now. */
static void snapshot_for_node(scheduler *s, snapshot *sn, size_t i)
{
    if (!sn->filled)
        return;
    size_t was = sn->view->nodes[i].group_members;
    sched_cache_view_for_node(s->cache, sn->view, i, sn->image, sn->group);
    sn->group_placed = sn->group_placed - was + sn->view->nodes[i].group_members;
}

/* A copy of the object member `name` of copy (shallow: its members are shared, as cached
 * objects are immutable), set in copy; a new object when it was not one. */
static json_t *own_member(json_t *copy, const char *name)
{
    json_t *m = json_object_get(copy, name);
    m = json_is_object(m) ? json_copy(m) : json_object();
    json_object_set_new(copy, name, m);
    return m;
}

/* Assumes inst bound to node i of the snapshot (until the watch brings the bound object, or its
 * Bind is refused), so that the rest of the batch, and the batches placed while it binds, count
 * it: its claim, image and server group. */
static void snapshot_place(scheduler *s, snapshot *sn, size_t i, const char *key,
                           const json_t *inst, const api_resources *need)
{
    sched_memo_forget(&s->memo, i);
    /* Only spec, status and metadata change: copying the rest (json_deep_copy) was 3% of the
     * process's CPU in scheduler-bench. */
    json_t *assumed = json_copy((json_t *)inst);
    json_object_set_new(own_member(assumed, "spec"), "nodeName",
                        json_string(sn->view->nodes[i].name));
    json_object_set_new(own_member(assumed, "status"), "phase", json_string("Scheduled"));
    own_member(assumed, "metadata");
    int64_t rv = 0;
    informer_object_resource_version(assumed, &rv);
    api_object_set_resource_version(assumed, rv + 1);
    int r = informer_assume(s->inf[INF_INSTANCES], key, assumed);
    json_decref(assumed);
    if (r < 0) {
        /* not assumed (the cache is full?): this batch counts its claim all the same */
        for (api_resource k = 0; k < _API_RESOURCE_MAX; k++)
            sn->view->nodes[i].used.amount[k] += need->amount[k];
        sn->view->nodes[i].n_instances++;
        return;
    }
    account(s, key);
    sched_cache_view_refresh(s->cache, sn->view, i);
    snapshot_for_node(s, sn, i);
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
            account(s, p->key);
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

/* Hands the picks (assumed bound by snapshot_place) to the binder threads as up to n_threads
 * jobs split by node — or holds them while another batch's calls are out. Takes the picks' keys
 * and instances. */
static void bind_submit(scheduler *s, snapshot *sn, pick *picks, size_t n)
{
    binder *b = s->binder;
    size_t k = MAX(MIN(b->n_threads, n), (size_t)1);
    bind_job **jobs = xnew(bind_job *, k);
    for (size_t i = 0; i < n; i++) {
        const char *node = sn->view->nodes[picks[i].node].name;
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
            json_object_del(s->deferred, key); /* placed by another, or gone */
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
        if (flavor_resources(s, str_at(inst, "spec.flavor"), false, &r.need) < 0)
            snprintf(message, sizeof(message), "flavor \"%s\" not found",
                     str_at(inst, "spec.flavor") ? str_at(inst, "spec.flavor") : "");
        else if (str_at(inst, "spec.serverGroup") && !group)
            snprintf(message, sizeof(message), "server group \"%s\" not found",
                     str_at(inst, "spec.serverGroup"));
        else {
            snapshot_for(s, &sn, inst, &r);
            sched_verdict v;
            sched_options so = {.pack = s->o.pack, .memo = &s->memo};
            chosen = sched_select(&r, sn.view->nodes, sn.view->n, &so, &s->seed, &v);
            if (chosen < 0)
                sched_explain(&v, message, sizeof(message));
        }
        if (chosen >= 0) {
            /* later picks in this batch see this one: claim, image, group */
            snapshot_place(s, &sn, (size_t)chosen, key, inst, &r.need);
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
    if (synced(s) && ++s->retries % AUDIT_EVERY == 0)
        scheduler_audit(s);
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
    s->others = json_object();
    s->gone_flavors = json_object();
    s->cache = sched_cache_new();
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
            h = (informer_handlers){node_added, node_updated, node_deleted, s};
        else if (i == INF_LEASES)
            h = (informer_handlers){lease_added, lease_updated, lease_deleted, s};
        else if (i == INF_VOLUMES)
            h = (informer_handlers){cluster_changed, volume_updated, cluster_changed, s};
        else if (i == INF_FLAVORS)
            h = (informer_handlers){flavor_added, flavor_updated, flavor_deleted, s};
        else if (i == INF_GROUPS)
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
    release_presence(s);
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
    s->cache = sched_cache_free(s->cache);
    sched_view_done(&s->view);
    sched_memo_done(&s->memo);
    json_decref(s->others);
    json_decref(s->gone_flavors);
    free(s);
    return NULL;
}

void scheduler_stats_read(scheduler *s, scheduler_stats *ret)
{
    *ret = s->stats;
    for (size_t i = 0; i < _INF_MAX; i++) {
        informer_stats is;
        informer_stats_read(s->inf[i], &is);
        ret->relists += is.relists;
    }
}
