/* One work queue key, on a worker thread: an instance ("<node>/<ns>/<name>") or a node's
 * housekeeping ("<node>/#housekeeping").
 *
 * An instance: read it from the informer's cache, look up what it refers to (Flavor, Image,
 * Networks, Volumes; a short-lived cache in front of Get), run the step machine (steps.c), then
 * make its result true in the API: UpdateStatus with the resourceVersion it was computed from
 * (a conflict just runs the key again), Unbind, or the finalizer's removal; Events last. The
 * written object goes back into the informer as an assumption, so the next reconcile of the key
 * (or a claim on the node) sees it before the watch does.
 *
 * Housekeeping: adopt the domains that belong to bound instances (enqueue them), and remove,
 * after a grace period, domains, disks and folders that belong to no instance bound here. Only
 * domains whose metadata names this node (or no node: older agents) are looked at; another node
 * identity on the same libvirtd keeps its own. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent-internal.h"
#include "agent/files.h"
#include "agent/status.h"
#include "api/object.h"
#include "api/parse.h"
#include "base/alloc.h"

/* ---- object lookups ---- */

static void objcache_put(agent *a, const char *kind, const char *ns, const char *name, json_t *obj)
{
    _cleanup_free_ char *ck = xasprintf("%s/%s/%s", kind, ns ? ns : "", name);
    pthread_mutex_lock(&a->cache_lock);
    if (json_object_size(a->objcache) >= AGENT_OBJCACHE_MAX)
        json_object_clear(a->objcache);
    json_object_set_new(a->objcache, ck, json_pack("[O,I]", obj, (json_int_t)now_monotonic()));
    pthread_mutex_unlock(&a->cache_lock);
}

int agent_object_get(agent *a, const char *kind, const char *ns, const char *name, json_t **ret)
{
    if (!name || !*name)
        return -ENOENT;
    _cleanup_free_ char *ck = xasprintf("%s/%s/%s", kind, ns ? ns : "", name);
    usec_t now = now_monotonic();
    pthread_mutex_lock(&a->cache_lock);
    json_t *e = json_object_get(a->objcache, ck);
    if (e && now - (usec_t)json_integer_value(json_array_get(e, 1)) < AGENT_OBJCACHE_TTL) {
        *ret = json_incref(json_array_get(e, 0));
        pthread_mutex_unlock(&a->cache_lock);
        return 0;
    }
    pthread_mutex_unlock(&a->cache_lock);
    return agent_object_fetch(a, kind, ns, name, ret);
}

int agent_object_fetch(agent *a, const char *kind, const char *ns, const char *name, json_t **ret)
{
    if (!name || !*name)
        return -ENOENT;

    Stratus__V1__GetRequest req = STRATUS__V1__GET_REQUEST__INIT;
    req.kind = (char *)kind;
    req.namespace_ = (char *)(ns ? ns : "");
    req.name = (char *)name;
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status st;
    int r = rpc_client_get(a->client, &req, AGENT_RPC_TIMEOUT, &rep, &st);
    if (r < 0)
        return r;
    json_t *obj = api_json_loads(rep->object_json, 0, NULL);
    rpc_message_free(rep);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return -EPROTO;
    }
    objcache_put(a, kind, ns, name, obj);
    *ret = obj;
    return 0;
}

/* ---- events ---- */

void agent_event_emit(agent_node *n, const char *kind, const char *ns, const char *name,
                      const char *uid, bool warning, const char *reason, const char *message)
{
    agent *a = n->a;
    char ts[TIMESTAMP_MAX];
    usec_t now = now_realtime();
    timestamp_format(now, ts);
    uint64_t seq = atomic_fetch_add(&a->event_seq, 1);
    _cleanup_free_ char *ev_name = xasprintf("%s.%llx%04llx", name, (unsigned long long)now,
                                             (unsigned long long)(seq & 0xffff));
    _cleanup_free_ char *msg = status_text(message, API_MESSAGE_MAX);
    json_t *io = json_pack("{s:s,s:s}", "kind", kind, "name", name);
    if (ns && *ns)
        json_object_set_new(io, "namespace", json_string(ns));
    if (uid)
        json_object_set_new(io, "uid", json_string(uid));
    json_t *ev = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:o,s:s,s:s,s:s,s:i,s:s,s:s,s:{s:s,s:s}}}",
                           "apiVersion", "stratus/v1", "kind", "Event", "metadata", "name", ev_name,
                           "namespace", ns && *ns ? ns : "default", "spec", "involvedObject", io,
                           "reason", reason, "message", msg, "type", warning ? "Warning" : "Normal",
                           "count", 1, "firstTimestamp", ts, "lastTimestamp", ts, "source",
                           "component", AGENT_COMPONENT, "host", n->name);
    if (!ev)
        return;
    _cleanup_free_ char *text = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    Stratus__V1__ApplyRequest req = STRATUS__V1__APPLY_REQUEST__INIT;
    req.object_json = text;
    req.field_manager = AGENT_COMPONENT;
    Stratus__V1__ApplyResponse *rep = NULL;
    rpc_status st;
    if (rpc_client_apply(a->client, &req, AGENT_RPC_TIMEOUT, &rep, &st) == 0)
        atomic_fetch_add(&a->events, 1);
    else
        agent_log(a, AGENT_LOG_DEBUG, n->name, "event %s about %s/%s: %s", reason, ns, name,
                  st.message);
    rpc_message_free(rep);
}

/* ---- writes ---- */

typedef struct write_state {
    agent_node *n;
    const char *key; /* informer key */
    int64_t rv;      /* the resourceVersion the next status write is based on */
} write_state;

static int write_status(write_state *ws, const json_t *obj, const json_t *status)
{
    agent *a = ws->n->a;
    /* Without status.claim: Bind's to write, kept by the apiserver (one that predates it would
     * refuse the field). */
    _cleanup_(json_decrefp) json_t *sent = json_copy((json_t *)status);
    json_object_del(sent, "claim");
    _cleanup_free_ char *text = json_dumps(sent, JSON_COMPACT);
    char rv[24];
    snprintf(rv, sizeof(rv), "%lld", (long long)ws->rv);
    Stratus__V1__UpdateStatusRequest req = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
    req.kind = "Instance";
    req.namespace_ = (char *)api_object_namespace(obj);
    req.name = (char *)api_object_name(obj);
    req.resource_version = rv;
    req.status_json = text;
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status st;
    int r = rpc_client_update_status(a->client, &req, AGENT_RPC_TIMEOUT, &rep, &st);
    if (r < 0) {
        if (r == -ESTALE)
            atomic_fetch_add(&a->conflicts, 1);
        else
            agent_log(a, AGENT_LOG_WARNING, ws->n->name, "status of %s: %s", ws->key, st.message);
        return r;
    }
    atomic_fetch_add(&a->status_writes, 1);
    json_t *now = api_json_loads(rep->object_json, 0, NULL);
    rpc_message_free(rep);
    int64_t new_rv = 0;
    if (now && informer_object_resource_version(now, &new_rv) == 0) {
        ws->rv = new_rv;
        informer_assume(ws->n->inf, ws->key, now);
    }
    json_decref(now);
    return 0;
}

/* Whether a failed write may still have been applied (a timeout, the apiserver away): only a
 * refusal from the server is known not to have been. */
static bool write_maybe_applied(int r)
{
    return r != -ESTALE && r != -ENOENT && r != -EINVAL && r != -EBUSY && r != -ENOSPC &&
           r != -EACCES && r != -EPERM && r != -EEXIST && r != -ETIME;
}

/* The claim: what the other instances bound here hold — claimed ones from the informer's cache
 * (assumptions included, so a claim written a moment ago counts), and the reservations of
 * n->claiming — plus this one must fit. Checked and reserved under the node's claim lock,
 * written outside it: two workers cannot both take the last room, and neither waits for the
 * other's round trip. A reservation is [vcpus, memoryMiB, diskGiB, uncertain]: in flight while
 * its write is on its way; uncertain after a write that failed in a way that may still have
 * applied it, counted until the informer shows the instance claimed (it did apply), or not bound
 * here any more, or the instance claims again. */
static int claim_hook(void *userdata, agent_reconcile_ctx *ctx, const agent_resources *want,
                      char *why)
{
    write_state *ws = userdata;
    agent_node *n = ws->n;
    const char *uid = api_object_uid(ctx->instance);
    if (!uid)
        return -EINVAL;
    pthread_mutex_lock(&n->claim_lock);
    json_t *mine = json_object_get(n->claiming, uid);
    int r = 0;
    if (mine && !json_is_true(json_array_get(mine, 3)))
        r = -EBUSY; /* the same instance on two workers: the work queue never does that */
    else if (mine)
        json_object_del(n->claiming, uid); /* its own uncertain claim: this one replaces it */
    json_t **items = NULL;
    size_t count = 0;
    if (r == 0)
        r = informer_list(n->inf, &items, &count);
    agent_resources used = {0};
    json_t *here = json_object(); /* uids bound here, per the informer */
    for (size_t i = 0; r == 0 && i < count; i++) {
        const json_t *o = items[i];
        const char *ouid = api_object_uid(o);
        const json_t *st = json_object_get(o, "status");
        const char *claimed = status_condition_get(st, "ResourcesClaimed");
        const char *phase = status_phase_get(st);
        if (!ouid || streq(ouid, uid) || !agent_instance_is_bound(o, n->name))
            continue;
        json_object_set_new(here, ouid, json_true());
        bool counts = claimed && streq(claimed, "True") && !(phase && streq(phase, "Failed"));
        json_t *res = json_object_get(n->claiming, ouid);
        if (res && json_is_true(json_array_get(res, 3)) && counts)
            json_object_del(n->claiming, ouid); /* the uncertain write did apply */
        else if (res)
            continue; /* counted by its reservation */
        if (!counts)
            continue;
        /* What Bind recorded; an instance bound before it recorded claims counts its flavor, when
         * the flavor is still there. */
        agent_resources f;
        if (agent_instance_claim(o, &f) < 0) {
            json_t *flavor = NULL;
            if (agent_object_get(n->a, "Flavor", NULL,
                                 json_string_value(api_json_lookup(o, "spec.flavor")), &flavor) < 0)
                continue;
            f = agent_flavor_resources(flavor);
            json_decref(flavor);
        }
        used.vcpus += f.vcpus;
        used.memory_mib += f.memory_mib;
        used.disk_gib += f.disk_gib;
    }
    informer_items_free(items, count);
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe (n->claiming, tmp, k, v) {
        if (r == 0 && json_is_true(json_array_get(v, 3)) && !json_object_get(here, k)) {
            json_object_del(n->claiming, k); /* uncertain, and no longer bound here */
            continue;
        }
        used.vcpus += json_integer_value(json_array_get(v, 0));
        used.memory_mib += json_integer_value(json_array_get(v, 1));
        used.disk_gib += json_integer_value(json_array_get(v, 2));
    }
    json_decref(here);
    pthread_mutex_lock(&n->lock);
    agent_resources cap = n->schedulable;
    pthread_mutex_unlock(&n->lock);
    if (r == 0 && !agent_resources_fit(&cap, &used, want, why))
        r = -ENOSPC;
    if (r == 0)
        json_object_set_new(n->claiming, uid,
                            json_pack("[I,I,I,b]", (json_int_t)want->vcpus,
                                      (json_int_t)want->memory_mib, (json_int_t)want->disk_gib, 0));
    pthread_mutex_unlock(&n->claim_lock);
    if (r < 0)
        return r;
    /* On success the informer holds the claimed object (write_status assumes it) before the
     * reservation goes, so the claim is never counted by neither. */
    r = write_status(ws, ctx->instance, ctx->status);
    pthread_mutex_lock(&n->claim_lock);
    if (r < 0 && write_maybe_applied(r))
        json_array_set_new(json_object_get(n->claiming, uid), 3, json_true());
    else
        json_object_del(n->claiming, uid);
    pthread_mutex_unlock(&n->claim_lock);
    return r;
}

/* How long after an unfencing a start is checked against the apiserver, not only the cache: the
 * informer may still show instances the scheduler moved away while the node was cut off. */
#define AGENT_UNFENCED_CHECK (10 * 60 * USEC_PER_SEC)

static int may_start_hook(void *userdata, agent_reconcile_ctx *ctx)
{
    write_state *ws = userdata;
    agent_node *n = ws->n;
    if (atomic_load(&n->fenced))
        return -ECANCELED;
    usec_t unfenced = atomic_load(&n->unfenced_at);
    if (!unfenced || now_monotonic() - unfenced > AGENT_UNFENCED_CHECK)
        return 0;
    json_t *cur = NULL;
    int r = agent_object_fetch(n->a, "Instance", api_object_namespace(ctx->instance),
                               api_object_name(ctx->instance), &cur);
    if (r == -ENOENT)
        return -ECANCELED;
    if (r < 0)
        return -EAGAIN;
    const char *uid = api_object_uid(cur), *want = api_object_uid(ctx->instance);
    bool here = uid && want && streq(uid, want) && agent_instance_is_bound(cur, n->name) &&
                !api_json_lookup(cur, "metadata.deletionTimestamp");
    json_decref(cur);
    if (!here)
        return -ECANCELED;
    return atomic_load(&n->fenced) ? -ECANCELED : 0;
}

/* ---- Volume status ---- */

/* Writes a Volume's status, compared against the resourceVersion it was read at: -ESTALE when
 * someone wrote it since. */
static int volume_status_write(agent_node *n, const json_t *vol, json_t *status)
{
    agent *a = n->a;
    _cleanup_free_ char *text = json_dumps(status, JSON_COMPACT);
    Stratus__V1__UpdateStatusRequest req = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
    req.kind = "Volume";
    req.namespace_ = (char *)api_object_namespace(vol);
    req.name = (char *)api_object_name(vol);
    req.resource_version =
        (char *)json_string_value(api_json_lookup(vol, "metadata.resourceVersion"));
    req.status_json = text;
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status st;
    int r = rpc_client_update_status(a->client, &req, AGENT_RPC_TIMEOUT, &rep, &st);
    if (r == 0) {
        json_t *now = api_json_loads(rep->object_json, 0, NULL);
        if (json_is_object(now))
            objcache_put(a, "Volume", req.namespace_, req.name, now);
        json_decref(now);
    } else if (r != -ESTALE)
        agent_log(a, AGENT_LOG_WARNING, n->name, "status of volume %s/%s: %s", req.namespace_,
                  req.name, st.message);
    rpc_message_free(rep);
    return r;
}

static bool uses_volume(const json_t *inst, const char *volume)
{
    const json_t *bds = api_json_lookup(inst, "spec.blockDevices");
    for (size_t i = 0; i < json_array_size(bds); i++) {
        const char *v = json_string_value(json_object_get(json_array_get(bds, i), "volume"));
        if (v && streq(v, volume))
            return true;
    }
    return false;
}

/* The hooks' shared shape: read the Volume fresh, decide, write with compare-and-swap, and read
 * again when someone else wrote in between. */
static int volume_attach_hook(void *userdata, agent_reconcile_ctx *ctx, const char *volume,
                              char *why)
{
    write_state *ws = userdata;
    agent_node *n = ws->n;
    const char *ns = api_object_namespace(ctx->instance);
    const char *inst = api_object_name(ctx->instance);
    for (int attempt = 0; attempt < 5; attempt++) {
        _cleanup_(json_decrefp) json_t *vol = NULL;
        int r = agent_object_fetch(n->a, "Volume", ns, volume, &vol);
        if (r == -ENOENT)
            snprintf(why, API_MESSAGE_MAX, "volume \"%s\" not found", volume);
        if (r < 0)
            return r;
        const json_t *st = json_object_get(vol, "status");
        const char *phase = json_string_value(json_object_get(st, "phase"));
        const char *holder = json_string_value(json_object_get(st, "attachedTo"));
        const char *node = json_string_value(json_object_get(st, "nodeName"));
        if (api_json_lookup(vol, "metadata.deletionTimestamp")) {
            snprintf(why, API_MESSAGE_MAX, "volume \"%s\" is being deleted", volume);
            return -EBUSY;
        }
        if (phase && streq(phase, "InUse") && holder && streq(holder, inst) && node &&
            streq(node, n->name))
            return 0;
        if (holder && !streq(holder, inst)) {
            /* Another instance's, unless that instance is gone or no longer refers to it (its
             * agent was removed before it could say so). */
            _cleanup_(json_decrefp) json_t *other = NULL;
            r = agent_object_fetch(n->a, "Instance", ns, holder, &other);
            if (r < 0 && r != -ENOENT)
                return r;
            if (r == 0 && uses_volume(other, volume)) {
                snprintf(why, API_MESSAGE_MAX,
                         "volume \"%.253s\" is in use by instance \"%.253s\"%s%.253s%s", volume,
                         holder, node ? " on node \"" : "", node ? node : "", node ? "\"" : "");
                return -EBUSY;
            }
        }
        _cleanup_(json_decrefp) json_t *next =
            json_is_object(st) ? json_deep_copy(st) : json_object();
        json_object_set_new(next, "phase", json_string("InUse"));
        json_object_set_new(next, "attachedTo", json_string(inst));
        json_object_set_new(next, "nodeName", json_string(n->name));
        json_object_set_new(next, "observedGeneration", json_integer(api_object_generation(vol)));
        r = volume_status_write(n, vol, next);
        if (r != -ESTALE)
            return r;
    }
    return -ESTALE;
}

static int volume_release_hook(void *userdata, agent_reconcile_ctx *ctx, const char *volume)
{
    write_state *ws = userdata;
    agent_node *n = ws->n;
    const char *ns = api_object_namespace(ctx->instance);
    const char *inst = api_object_name(ctx->instance);
    for (int attempt = 0; attempt < 5; attempt++) {
        _cleanup_(json_decrefp) json_t *vol = NULL;
        int r = agent_object_fetch(n->a, "Volume", ns, volume, &vol);
        if (r == -ENOENT)
            return 0;
        if (r < 0)
            return r;
        const json_t *st = json_object_get(vol, "status");
        const char *holder = json_string_value(json_object_get(st, "attachedTo"));
        const char *node = json_string_value(json_object_get(st, "nodeName"));
        if (!holder || !streq(holder, inst) || (node && !streq(node, n->name)))
            return 0; /* not attached here: someone else's now, or never ours */
        /* nodeName stays: the Volume's disk is in this node's pool. */
        _cleanup_(json_decrefp) json_t *next = json_deep_copy(st);
        json_object_set_new(next, "phase", json_string("Available"));
        json_object_del(next, "attachedTo");
        json_object_set_new(next, "observedGeneration", json_integer(api_object_generation(vol)));
        r = volume_status_write(n, vol, next);
        if (r != -ESTALE)
            return r;
    }
    return -ESTALE;
}

static int unbind(agent_node *n, const json_t *obj, const char *reason, const char *message)
{
    Stratus__V1__UnbindRequest req = STRATUS__V1__UNBIND_REQUEST__INIT;
    req.namespace_ = (char *)api_object_namespace(obj);
    req.name = (char *)api_object_name(obj);
    req.uid = (char *)api_object_uid(obj);
    req.node = n->name;
    req.reason = (char *)reason;
    req.message = (char *)message;
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status st;
    int r = rpc_client_unbind(n->a->client, &req, AGENT_RPC_TIMEOUT, &rep, &st);
    rpc_message_free(rep);
    if (r == -ENOENT || r == -EBUSY || r == -EALREADY || r == -ENOTEMPTY)
        r = 0; /* gone, deleted, or no longer bound here: nothing to give back */
    if (r < 0)
        agent_log(n->a, AGENT_LOG_WARNING, n->name, "unbind %s/%s: %s", req.namespace_, req.name,
                  st.message);
    else
        atomic_fetch_add(&n->a->unbinds, 1);
    return r;
}

static int finalize(agent_node *n, const json_t *obj)
{
    char *fin[] = {AGENT_FINALIZER};
    Stratus__V1__UpdateStatusRequest req = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
    req.kind = "Instance";
    req.namespace_ = (char *)api_object_namespace(obj);
    req.name = (char *)api_object_name(obj);
    req.n_remove_finalizers = 1;
    req.remove_finalizers = fin;
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status st;
    int r = rpc_client_update_status(n->a->client, &req, AGENT_RPC_TIMEOUT, &rep, &st);
    rpc_message_free(rep);
    if (r == -ENOENT)
        r = 0;
    if (r < 0)
        agent_log(n->a, AGENT_LOG_WARNING, n->name, "finalizer of %s/%s: %s", req.namespace_,
                  req.name, st.message);
    else
        atomic_fetch_add(&n->a->finalized, 1);
    return r;
}

/* ---- one instance ---- */

typedef struct refs_held {
    json_t *objs[2 + 2 * API_INSTANCE_BLOCK_DEVICES_MAX + API_INSTANCE_NETWORKS_MAX];
    size_t n;
} refs_held;

static const json_t *hold(refs_held *h, json_t *o)
{
    if (o && h->n < ELEMENTSOF(h->objs))
        h->objs[h->n++] = o;
    return o;
}

/* Looks up what the instance refers to. Missing objects stay NULL (the plan says which);
 * returns -errno only when the apiserver could not answer. */
static int refs_lookup(agent *a, const json_t *inst, agent_refs *refs, refs_held *h)
{
    const char *ns = api_object_namespace(inst);
    json_t *o;
    int r = agent_object_get(a, "Flavor", NULL,
                             json_string_value(api_json_lookup(inst, "spec.flavor")), &o);
    if (r < 0 && r != -ENOENT)
        return r;
    refs->flavor = r == 0 ? hold(h, o) : NULL;
    const char *img = json_string_value(api_json_lookup(inst, "spec.image"));
    if (img) {
        r = agent_object_get(a, "Image", NULL, img, &o);
        if (r < 0 && r != -ENOENT)
            return r;
        refs->image = r == 0 ? hold(h, o) : NULL;
    }
    const json_t *nets = api_json_lookup(inst, "spec.networks");
    for (size_t i = 0; i < json_array_size(nets) && i < API_INSTANCE_NETWORKS_MAX; i++) {
        const char *net = json_string_value(json_object_get(json_array_get(nets, i), "network"));
        r = agent_object_get(a, "Network", ns, net, &o);
        if (r < 0 && r != -ENOENT)
            return r;
        refs->networks[i] = r == 0 ? hold(h, o) : NULL;
    }
    const json_t *bds = api_json_lookup(inst, "spec.blockDevices");
    for (size_t i = 0; i < json_array_size(bds) && i < API_INSTANCE_BLOCK_DEVICES_MAX; i++) {
        const char *vol = json_string_value(json_object_get(json_array_get(bds, i), "volume"));
        if (!vol)
            continue;
        r = agent_object_get(a, "Volume", ns, vol, &o);
        if (r < 0 && r != -ENOENT)
            return r;
        if (r < 0)
            continue;
        refs->volumes[i] = hold(h, o);
        const char *vimg = json_string_value(api_json_lookup(o, "spec.image"));
        if (vimg && agent_object_get(a, "Image", NULL, vimg, &o) == 0)
            refs->volume_images[i] = hold(h, o);
    }
    return 0;
}

static usec_t map_get(agent_node *n, json_t *map, const char *key)
{
    pthread_mutex_lock(&n->lock);
    usec_t v = (usec_t)json_integer_value(json_object_get(map, key));
    pthread_mutex_unlock(&n->lock);
    return v;
}

static void map_set(agent_node *n, json_t *map, const char *key, usec_t v)
{
    pthread_mutex_lock(&n->lock);
    if (v)
        json_object_set_new(map, key, json_integer((json_int_t)v));
    else
        json_object_del(map, key);
    pthread_mutex_unlock(&n->lock);
}

/* Runs the step machine for obj and makes its outcome true in the API. */
static void reconcile_run(agent_node *n, const char *qkey, const char *key, const json_t *obj,
                          const agent_refs *refs)
{
    agent *a = n->a;
    agent_reconcile_ctx ctx;
    agent_reconcile_ctx_init(&ctx, &n->env, obj);
    ctx.refs = *refs;
    write_state ws = {.n = n, .key = key};
    informer_object_resource_version(obj, &ws.rv);
    pthread_mutex_lock(&n->lock);
    ctx.capacity = n->schedulable;
    pthread_mutex_unlock(&n->lock);
    ctx.fenced = atomic_load(&n->fenced);
    _cleanup_free_ char *fkey = xasprintf("failures:%s", key);
    ctx.failures = (unsigned)map_get(n, n->shutdowns, fkey);
    ctx.shutdown_since = map_get(n, n->shutdowns, key);
    ctx.hooks = (agent_step_hooks){.claim = claim_hook,
                                   .volume_attach = volume_attach_hook,
                                   .volume_release = volume_release_hook,
                                   .may_start = may_start_hook,
                                   .userdata = &ws};

    agent_reconcile_instance(&ctx);

    if (ctx.outcome == AGENT_OUTCOME_RETRY && !backend_connected(n->be)) {
        /* The step failed because libvirt went away, not because of the instance: nothing to
         * report, no failure to count towards a give-back. The reconnect resyncs the key. */
        map_set(n, n->shutdowns, key, ctx.shutdown_since);
        agent_log(a, AGENT_LOG_DEBUG, n->name, "%s: hypervisor connection lost: %s", key,
                  ctx.message);
        agent_hypervisor_suspect(n);
        workqueue_forget(a->q, qkey);
        agent_reconcile_ctx_clear(&ctx);
        return;
    }
    map_set(n, n->shutdowns, key, ctx.shutdown_since);
    map_set(n, n->shutdowns, fkey, ctx.outcome == AGENT_OUTCOME_RETRY ? ctx.failures + 1 : 0);
    int r = 0;
    switch (ctx.outcome) {
    case AGENT_OUTCOME_FINALIZE:
        r = finalize(n, obj);
        if (r == 0)
            agent_log(a, AGENT_LOG_INFO, n->name, "%s: deleted", key);
        break;
    case AGENT_OUTCOME_UNBIND:
        r = unbind(n, obj, ctx.reason, ctx.message);
        if (r == 0)
            agent_log(a, AGENT_LOG_INFO, n->name, "%s: given back (%s): %s", key, ctx.reason,
                      ctx.message);
        break;
    default:
        if (agent_reconcile_status_changed(&ctx))
            r = write_status(&ws, obj, ctx.status);
        break;
    }
    for (size_t i = 0; i < ctx.n_events; i++)
        agent_event_emit(n, "Instance", api_object_namespace(obj), api_object_name(obj),
                         api_object_uid(obj), ctx.events[i].warning, ctx.events[i].reason,
                         ctx.events[i].message);
    if (ctx.outcome == AGENT_OUTCOME_RETRY)
        agent_log(a, AGENT_LOG_WARNING, n->name, "%s: %s: %s", key, ctx.reason, ctx.message);
    if (r < 0 || ctx.outcome == AGENT_OUTCOME_RETRY)
        workqueue_add_rate_limited(a->q, qkey, NULL);
    else {
        workqueue_forget(a->q, qkey);
        if (ctx.outcome == AGENT_OUTCOME_REQUEUE)
            workqueue_add_after(a->q, qkey, ctx.requeue_after);
    }
    agent_reconcile_ctx_clear(&ctx);
}

static void reconcile_instance(agent_node *n, const char *qkey, const char *key)
{
    agent *a = n->a;
    json_t *obj = informer_get(n->inf, key);
    if (!obj || !agent_instance_is_bound(obj, n->name)) {
        /* Gone from this node (deleted, unbound) or not bound yet: nothing to do here; the
         * housekeeping removes whatever it left behind. */
        map_set(n, n->shutdowns, key, 0);
        workqueue_forget(a->q, qkey);
        json_decref(obj);
        return;
    }
    atomic_fetch_add(&a->reconciles, 1);
    refs_held held = {0};
    agent_refs refs = {0};
    int r = 0;
    if (!api_json_lookup(obj, "metadata.deletionTimestamp"))
        r = refs_lookup(a, obj, &refs, &held);
    if (r < 0) {
        agent_log(a, AGENT_LOG_DEBUG, n->name, "%s: lookups failed: %s", key, strerror(-r));
        workqueue_add_rate_limited(a->q, qkey, NULL);
    } else
        reconcile_run(n, qkey, key, obj, &refs);
    for (size_t i = 0; i < held.n; i++)
        json_decref(held.objs[i]);
    json_decref(obj);
}

/* ---- housekeeping ---- */

/* The uid a disk or folder name starts with ("<uuid>-…" or "<uuid>"), or false. */
static bool name_uid(const char *name, char uid[37], bool whole)
{
    static const int dash[] = {8, 13, 18, 23};
    for (int i = 0; i < 36; i++) {
        char c = name[i];
        bool want_dash = i == dash[0] || i == dash[1] || i == dash[2] || i == dash[3];
        if (want_dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    if (whole ? name[36] != 0 : name[36] != '-')
        return false;
    memcpy(uid, name, 36);
    uid[36] = 0;
    return true;
}

/* Whether name has been an orphan for the grace period (and starts its clock if new). */
static bool orphan_due(agent_node *n, json_t *seen, const char *mkey, usec_t now)
{
    json_object_set_new(seen, mkey, json_true());
    usec_t first = map_get(n, n->orphans, mkey);
    if (!first) {
        map_set(n, n->orphans, mkey, now);
        return false;
    }
    return now - first >= n->a->o.orphan_grace;
}

static void housekeeping(agent_node *n, const char *qkey)
{
    agent *a = n->a;
    if (!n->inf || !informer_has_synced(n->inf)) {
        workqueue_add_after(a->q, qkey, 200 * USEC_PER_MSEC);
        return;
    }
    usec_t now = now_monotonic();
    json_t *known = json_object(); /* uids of instances bound here */
    json_t *seen = json_object();  /* orphan-map keys still orphaned */
    json_t **items = NULL;
    size_t count = 0;
    if (informer_list(n->inf, &items, &count) == 0) {
        for (size_t i = 0; i < count; i++)
            if (agent_instance_is_bound(items[i], n->name) && api_object_uid(items[i]))
                json_object_set_new(known, api_object_uid(items[i]), json_true());
        informer_items_free(items, count);
    }
    backend_domain *doms = NULL;
    size_t nd = 0;
    if (backend_domain_list(n->be, &doms, &nd) < 0) {
        /* Without the domains, their uids (other nodes' included) are unknown: sweeping disks
         * and folders now could take what is not an orphan. */
        agent_log(a, AGENT_LOG_DEBUG, n->name, "housekeeping: %s", backend_last_error());
        if (!backend_connected(n->be))
            agent_hypervisor_suspect(n);
        json_decref(known);
        json_decref(seen);
        workqueue_add_after(a->q, qkey, a->o.resync_interval);
        return;
    }
    for (size_t i = 0; i < nd; i++) {
        backend_domain *d = &doms[i];
        if (!d->uid || !d->namespace_ || !d->instance)
            continue; /* not made by Stratus */
        if (!agent_domain_is_ours(d, n->name)) {
            /* Another node identity's, on a libvirtd both use: its disks are its own
             * (should the pool be shared too), so they are not orphans here either. */
            if (!json_object_get(known, d->uid))
                json_object_set_new(known, d->uid, json_false());
            continue;
        }
        if (json_object_get(known, d->uid)) {
            _cleanup_free_ char *k = xasprintf("%s/%s", d->namespace_, d->instance);
            agent_enqueue(n, k);
            continue;
        }
        json_object_set_new(known, d->uid, json_false()); /* its disks go with it */
        _cleanup_free_ char *mkey = xasprintf("domain:%s", d->name);
        if (!orphan_due(n, seen, mkey, now))
            continue;
        if (agent_instance_cleanup(&n->env, d->name, d->uid) < 0) {
            agent_log(a, AGENT_LOG_WARNING, n->name, "removing orphan domain %s: %s", d->name,
                      backend_last_error());
            continue;
        }
        atomic_fetch_add(&a->orphans, 1);
        agent_log(a, AGENT_LOG_INFO, n->name, "removed orphan domain %s", d->name);
        _cleanup_free_ char *msg = xasprintf(
            "domain %s belongs to no instance bound to node \"%s\"; removed it and its disks",
            d->name, n->name);
        agent_event_emit(n, "Instance", d->namespace_, d->instance, d->uid, true, "OrphanRemoved",
                         msg);
    }
    backend_domains_free(doms, nd);
    char **disks = NULL;
    size_t nk = 0;
    if (backend_disk_list(n->be, &disks, &nk) == 0) {
        for (size_t i = 0; i < nk; i++) {
            char uid[37];
            if (!name_uid(disks[i], uid, false) || json_object_get(known, uid))
                continue;
            /* Made here only if this node has the instance's folder (the build makes it before
             * the disks, the cleanup removes it after them); otherwise another node identity
             * sharing the pool may be building it right now. */
            _cleanup_free_ char *folder = xasprintf("%s/%s", n->instance_dir, uid);
            if (access(folder, F_OK) < 0)
                continue;
            _cleanup_free_ char *mkey = xasprintf("disk:%s", disks[i]);
            if (orphan_due(n, seen, mkey, now) && backend_disk_delete(n->be, disks[i]) == 0) {
                atomic_fetch_add(&a->orphans, 1);
                agent_log(a, AGENT_LOG_INFO, n->name, "removed orphan disk %s", disks[i]);
            }
        }
        backend_names_free(disks, nk);
    }
    DIR *dir = opendir(n->instance_dir);
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        char uid[37];
        if (!name_uid(e->d_name, uid, true) || json_object_get(known, uid))
            continue;
        _cleanup_free_ char *mkey = xasprintf("folder:%s", e->d_name);
        /* Its DHCP entries go with it (a build killed before its domain existed). */
        if (orphan_due(n, seen, mkey, now) && agent_instance_files_remove(&n->env, uid) == 0)
            atomic_fetch_add(&a->orphans, 1);
    }
    if (dir)
        closedir(dir);
    /* Forget the clocks of what is no longer an orphan (adopted, or removed). */
    pthread_mutex_lock(&n->lock);
    const char *k;
    json_t *v, *tmp;
    json_object_foreach_safe (n->orphans, tmp, k, v)
        if (!json_object_get(seen, k))
            json_object_del(n->orphans, k);
    bool pending = json_object_size(n->orphans) > 0;
    pthread_mutex_unlock(&n->lock);
    json_decref(known);
    json_decref(seen);
    usec_t next = a->o.resync_interval;
    if (pending)
        next = MIN(next, a->o.orphan_grace / 2 + 1);
    workqueue_add_after(a->q, qkey, next);
}

void agent_process_key(agent *a, const char *key)
{
    char *end = NULL;
    unsigned long idx = strtoul(key, &end, 10);
    if (!end || *end != '/' || idx >= a->n_nodes)
        return;
    agent_node *n = a->nodes[idx];
    const char *rest = end + 1;
    if (streq(rest, AGENT_HYPERVISOR)) {
        agent_hypervisor_check(n, key);
        return;
    }
    if (atomic_load(&n->hv_down)) {
        /* Set aside: the reconnect enqueues every instance and the housekeeping again. */
        if (streq(rest, AGENT_HOUSEKEEPING))
            workqueue_add_after(a->q, key, a->o.resync_interval);
        else
            workqueue_forget(a->q, key);
        return;
    }
    if (streq(rest, AGENT_HOUSEKEEPING)) {
        housekeeping(n, key);
        return;
    }
    if (!informer_has_synced(n->inf)) {
        workqueue_add_after(a->q, key, 200 * USEC_PER_MSEC);
        return;
    }
    reconcile_instance(n, key, rest);
}
