/* Bind and Unbind: placing instances on nodes, and the ledgers that keep placement honest.
 *
 * A scheduler decides where an instance should go; this file decides whether it still may, in
 * the one etcd transaction that records it. Two kinds of ledger hold what the decision needs:
 *
 *   /stratus/v1/allocations/<node>      {"instances": {"<uid>": {"namespace", "name", "vcpus",
 *                                                               "memoryMiB", "diskGiB"}}}
 *   /stratus/v1/groupledger/<ns>/<group> {"members": {"<uid>": "<node>"}}
 *
 * Totals are the sums of the entries. A ledger is written only together with the instances it
 * describes (bind, unbind, final delete), each write guarded by the ledger's own mod_revision
 * (create_revision == 0 while it does not exist) and by every instance's mod_revision. So
 * schedulers racing each other cannot overcommit a node, bind an instance twice or break a hard
 * (anti-)affinity rule: the loser of a race re-reads and decides again.
 *
 * An instance claims its flavor's vcpus and memoryMiB, and rootDiskGiB + ephemeralGiB + swapMiB
 * rounded up to whole GiB of disk. A rootDiskGiB of 0 ("the image's size", as in Nova) adds no
 * root disk: the apiserver does not know image sizes. A node can hand out status.allocatable ×
 * spec.allocationRatios (allocatable falls back to capacity − reserved when the agent has not
 * reported it).
 *
 * An instance is claimed on node N when its uid is in N's ledger; spec.nodeName == N whenever
 * that holds (bind sets both, unbind and final delete clear both), so spec.nodeName alone says
 * where an instance may be claimed. A spec.nodeName set by the user (a forced node) without a
 * claim is bound like any other instance, to that node only.
 *
 * Not here: choosing a node (the scheduler), soft policies (its scores), whether the node is
 * Ready or cordoned (its filters; a binding that raced a cordon stands). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/names.h"
#include "base/alloc.h"
#include "api/resources.h"
#include "internal.h"
#include "stratus/v1/stratus.pb-c.h"

#define ALLOCATIONS_PREFIX  "/stratus/v1/allocations/"
#define GROUP_LEDGER_PREFIX "/stratus/v1/groupledger/"

/* ---- ledgers */

int ledger_load(worker *w, const char *key, const char *member, ledger *ret, apierr *e)
{
    _cleanup_(store_result_freep) store_result *r = NULL;
    int err = sx_get(w, key, &r);
    json_t *doc;
    int64_t rev = 0;
    if (err == -ENOENT) {
        doc = json_object();
        json_object_set_new(doc, member, json_object());
    } else if (err < 0) {
        return apierr_store(e, err, key);
    } else {
        doc = json_loadb(r->kvs[0].value, r->kvs[0].value_len, JSON_REJECT_DUPLICATES, NULL);
        /* Never repaired silently: an empty ledger would hand out what is already claimed. */
        if (!json_is_object(json_object_get(doc, member))) {
            json_decref(doc);
            return apierr_set(e, RPC_CODE_DATA_LOSS,
                              "%s: the stored ledger is not a JSON object with \"%s\"", key,
                              member);
        }
        rev = r->kvs[0].mod_revision;
    }
    *ret =
        (ledger){.key = xstrdup(key), .doc = doc, .map = json_object_get(doc, member), .rev = rev};
    return 0;
}

void ledger_commit(store_txn *t, const ledger *l)
{
    if (!l->changed)
        return;
    if (l->rev > 0)
        store_txn_compare(t, l->key, STORE_CMP_MOD, STORE_CMP_EQUAL, l->rev);
    else
        store_txn_compare(t, l->key, STORE_CMP_CREATE, STORE_CMP_EQUAL, 0);
    if (json_object_size(l->map) == 0) {
        if (l->rev > 0)
            store_txn_delete(t, STORE_ON_SUCCESS, l->key, NULL, 0);
        return;
    }
    _cleanup_free_ char *text = api_json_canonical(l->doc);
    store_txn_put(t, STORE_ON_SUCCESS, l->key, text, strlen(text), 0, 0);
}

void ledger_clear(ledger *l)
{
    free(l->key);
    json_decref(l->doc);
    *l = (ledger){0};
}

/* Takes the uid out of the ledger at key, into t. Returns 0, or -1 with e filled. */
static int ledger_drop(worker *w, store_txn *t, const char *key, const char *member,
                       const char *uid, apierr *e)
{
    ledger l;
    if (ledger_load(w, key, member, &l, e) < 0)
        return -1;
    if (json_object_get(l.map, uid)) {
        json_object_del(l.map, uid);
        l.changed = true;
        ledger_commit(t, &l);
    }
    ledger_clear(&l);
    return 0;
}

static const char *instance_node(const json_t *obj)
{
    return json_string_value(api_json_lookup(obj, "spec.nodeName"));
}

int ledger_release(worker *w, store_txn *t, const json_t *obj, apierr *e)
{
    const char *uid = api_object_uid(obj);
    if (!uid)
        return 0;
    /* status.nodeName too, in case a claim predates the rule that spec.nodeName names it. */
    const char *nodes[2] = {instance_node(obj),
                            json_string_value(api_json_lookup(obj, "status.nodeName"))};
    for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
        if (!nodes[i] || !api_is_dns_subdomain(nodes[i]) ||
            (i == 1 && nodes[0] && streq(nodes[0], nodes[1])))
            continue;
        _cleanup_free_ char *key = xasprintf(ALLOCATIONS_PREFIX "%s", nodes[i]);
        if (ledger_drop(w, t, key, "instances", uid, e) < 0)
            return -1;
    }
    const char *group = json_string_value(api_json_lookup(obj, "spec.serverGroup"));
    const char *ns = api_object_namespace(obj);
    if (group && ns && api_is_dns_subdomain(group) && api_is_dns_label(ns)) {
        _cleanup_free_ char *key = xasprintf(GROUP_LEDGER_PREFIX "%s/%s", ns, group);
        if (ledger_drop(w, t, key, "members", uid, e) < 0)
            return -1;
    }
    return 0;
}

/* ---- resources */

typedef api_resources claim;
typedef api_node_capacity capacity;

static void ledger_sum(const ledger *l, int64_t used[_API_RESOURCE_MAX])
{
    const char *uid;
    json_t *entry;
    for (api_resource r = 0; r < _API_RESOURCE_MAX; r++)
        used[r] = 0;
    json_object_foreach (l->map, uid, entry) {
        for (api_resource r = 0; r < _API_RESOURCE_MAX; r++)
            used[r] += json_integer_value(json_object_get(entry, api_resource_table[r].field));
    }
}

/* "1.0", "1.5", "0.125": enough digits to be exact for ratios people write. */
static const char *ratio_format(double ratio, char out[static 32])
{
    snprintf(out, 32, "%.3f", ratio);
    size_t n = strlen(out);
    while (n > 2 && out[n - 1] == '0' && out[n - 2] != '.')
        out[--n] = '\0';
    return out;
}

/* ---- one Bind call */

typedef struct flavor_claim {
    char *name;
    claim c;
} flavor_claim;

typedef struct bind_call {
    worker *w;
    const Stratus__V1__BindRequest *req;
    size_t n;
    const char **namespaces; /* per binding, defaulted */
    char **keys;             /* per binding; NULL when refused before reading anything */
    int64_t *want_rev;       /* per binding; 0: no precondition */
    rpc_code *codes;         /* per binding: the result */
    char **messages;
    flavor_claim *flavors; /* flavors read during this call */
    size_t n_flavors, flavors_allocated;
} bind_call;

static void result_set(bind_call *c, size_t i, rpc_code code, const char *fmt, ...) _printf_(4, 5);
static void result_set(bind_call *c, size_t i, rpc_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(c->messages[i]);
    c->messages[i] = xvasprintf(fmt, ap);
    c->codes[i] = code;
    va_end(ap);
}

static void result_error(bind_call *c, size_t i, const apierr *e)
{
    result_set(c, i, e->code, "%s", e->message);
}

static void result_ok(bind_call *c, size_t i)
{
    c->messages[i] = mfree(c->messages[i]);
    c->codes[i] = RPC_CODE_OK;
}

static int flavor_claim_get(bind_call *c, const char *name, claim *ret, apierr *e)
{
    for (size_t i = 0; i < c->n_flavors; i++)
        if (streq(c->flavors[i].name, name)) {
            *ret = c->flavors[i].c;
            return 0;
        }
    _cleanup_free_ char *key = NULL;
    if (api_key_build(api_kind_get(API_KIND_FLAVOR), NULL, name, &key) < 0)
        return apierr_set(e, RPC_CODE_FAILED_PRECONDITION,
                          "spec.flavor: \"%.64s\" is not a valid flavor name", name);
    json_t *f = NULL;
    int r = object_read(c->w, key, &f, NULL, e);
    if (r == -ENOENT)
        return apierr_set(e, RPC_CODE_NOT_FOUND, "flavors \"%s\" not found (spec.flavor)", name);
    if (r < 0)
        return -1;
    claim cl = {0};
    api_flavor_resources(f, &cl);
    json_decref(f);
    c->flavors = xgrow(c->flavors, &c->flavors_allocated, c->n_flavors + 1, sizeof(flavor_claim));
    c->flavors[c->n_flavors++] = (flavor_claim){.name = xstrdup(name), .c = cl};
    *ret = cl;
    return 0;
}

/* ---- one attempt at one batch: instances for one node, committed in one transaction */

typedef struct group_slot {
    char *ref;     /* "<ns>/<name>" */
    json_t *group; /* the ServerGroup */
    ledger members;
} group_slot;

typedef struct bind_attempt {
    bind_call *c;
    const char *node;
    capacity cap;
    ledger alloc;
    int64_t used[_API_RESOURCE_MAX];
    group_slot groups[APISERVER_TXN_INSTANCES]; /* at most one per instance */
    size_t n_groups;
    store_txn *t;
    size_t in_txn[APISERVER_TXN_INSTANCES]; /* bindings the transaction writes */
    size_t n_in_txn;
} bind_attempt;

static void attempt_clear(bind_attempt *a)
{
    ledger_clear(&a->alloc);
    for (size_t i = 0; i < a->n_groups; i++) {
        free(a->groups[i].ref);
        json_decref(a->groups[i].group);
        ledger_clear(&a->groups[i].members);
    }
    a->t = store_txn_free(a->t);
}

static group_slot *group_get(bind_attempt *a, const char *ns, const char *name, apierr *e)
{
    _cleanup_free_ char *ref = xasprintf("%s/%s", ns, name);
    for (size_t i = 0; i < a->n_groups; i++)
        if (streq(a->groups[i].ref, ref))
            return &a->groups[i];
    _cleanup_free_ char *key = NULL;
    if (api_key_build(api_kind_get(API_KIND_SERVER_GROUP), ns, name, &key) < 0) {
        apierr_set(e, RPC_CODE_FAILED_PRECONDITION,
                   "spec.serverGroup: \"%.64s\" is not a valid server group name", name);
        return NULL;
    }
    json_t *g = NULL;
    int r = object_read(a->c->w, key, &g, NULL, e);
    if (r == -ENOENT)
        apierr_set(e, RPC_CODE_NOT_FOUND, "servergroups \"%s\" not found (spec.serverGroup)", ref);
    if (r < 0)
        return NULL;
    _cleanup_free_ char *lkey = xasprintf(GROUP_LEDGER_PREFIX "%s", ref);
    group_slot *s = &a->groups[a->n_groups];
    if (ledger_load(a->c->w, lkey, "members", &s->members, e) < 0) {
        json_decref(g);
        return NULL;
    }
    s->ref = TAKE_PTR(ref);
    s->group = g;
    a->n_groups++;
    return s;
}

/* The hard policies: whether uid may join its group on the attempt's node. */
static int group_admit(const bind_attempt *a, const group_slot *s, const char *uid, apierr *e)
{
    const json_t *spec = json_object_get(s->group, "spec");
    const char *policy = json_string_value(json_object_get(spec, "policy"));
    const char *member, *where;
    json_t *v;
    if (policy && streq(policy, "anti-affinity")) {
        const json_t *m = json_object_get(spec, "maxPerNode");
        json_int_t max =
            json_is_integer(m) && json_integer_value(m) > 0 ? json_integer_value(m) : 1;
        json_int_t here = 0;
        json_object_foreach (s->members.map, member, v) {
            where = json_string_value(v);
            if (!streq(member, uid) && where && streq(where, a->node))
                here++;
        }
        if (here >= max)
            return apierr_set(e, RPC_CODE_FAILED_PRECONDITION,
                              "server group \"%s\" (anti-affinity, at most %lld per node): node "
                              "\"%s\" already has %lld of its members",
                              s->ref, (long long)max, a->node, (long long)here);
    } else if (policy && streq(policy, "affinity")) {
        json_object_foreach (s->members.map, member, v) {
            where = json_string_value(v);
            if (!streq(member, uid) && where && !streq(where, a->node))
                return apierr_set(e, RPC_CODE_FAILED_PRECONDITION,
                                  "server group \"%s\" (affinity): its members are on node \"%s\"",
                                  s->ref, where);
        }
    }
    return 0;
}

/* Whether uid holds a claim on node (for telling "bound elsewhere" from "forced elsewhere"). */
static int claimed_on(worker *w, const char *node, const char *uid, bool *ret, apierr *e)
{
    if (!api_is_dns_subdomain(node)) {
        *ret = false;
        return 0;
    }
    _cleanup_free_ char *key = xasprintf(ALLOCATIONS_PREFIX "%s", node);
    ledger l;
    if (ledger_load(w, key, "instances", &l, e) < 0)
        return -1;
    *ret = json_object_get(l.map, uid) != NULL;
    ledger_clear(&l);
    return 0;
}

static void instance_mark_bound(json_t *obj, const char *node)
{
    json_t *spec = json_object_get(obj, "spec");
    json_object_set_new(spec, "nodeName", json_string(node));
    json_t *st = json_object_get(obj, "status");
    if (!json_is_object(st)) {
        st = json_object();
        json_object_set_new(obj, "status", st);
    }
    json_object_set_new(st, "phase", json_string("Scheduled"));
    json_object_set_new(st, "nodeName", json_string(node));
    _cleanup_free_ char *msg = xasprintf("bound to node \"%s\"", node);
    object_set_condition(obj, "Scheduled", "True", "Bound", msg);
    json_t *md = json_object_get(obj, "metadata");
    json_t *fin = json_object_get(md, "finalizers");
    if (!json_is_array(fin)) {
        fin = json_array();
        json_object_set_new(md, "finalizers", fin);
    }
    if (!json_strv_contains(fin, APISERVER_FINALIZER))
        json_array_append_new(fin, json_string(APISERVER_FINALIZER));
}

/* Decides binding i of the batch with the instance as read. Either sets its result, or claims
 * it in the attempt's ledgers and adds its write to the transaction. */
static void bind_decide(bind_attempt *a, size_t i, json_t *obj, int64_t rev, const char *what)
{
    bind_call *c = a->c;
    const Stratus__V1__Binding *b = c->req->bindings[i];
    apierr e = {0};
    const char *uid = api_object_uid(obj);
    if (!uid) {
        result_set(c, i, RPC_CODE_INTERNAL, "%s has no metadata.uid", what);
        return;
    }
    if (b->uid && *b->uid && !streq(b->uid, uid)) {
        result_set(c, i, RPC_CODE_ABORTED, "%s was deleted and recreated (uid %s, not %s)", what,
                   uid, b->uid);
        return;
    }
    if (api_json_lookup(obj, "metadata.deletionTimestamp")) {
        result_set(c, i, RPC_CODE_FAILED_PRECONDITION, "%s is being deleted", what);
        return;
    }
    if (json_object_get(a->alloc.map, uid)) {
        result_ok(c, i); /* bound here already: a retried Bind */
        return;
    }
    const char *node = instance_node(obj);
    if (node && !streq(node, a->node)) {
        bool bound;
        if (claimed_on(c->w, node, uid, &bound, &e) < 0)
            result_error(c, i, &e);
        else if (bound)
            result_set(c, i, RPC_CODE_ALREADY_EXISTS, "%s is already bound to node \"%s\"", what,
                       node);
        else
            result_set(c, i, RPC_CODE_FAILED_PRECONDITION,
                       "%s may only go to node \"%s\" (spec.nodeName)", what, node);
        return;
    }
    if (c->want_rev[i] && c->want_rev[i] != rev) {
        result_set(c, i, RPC_CODE_ABORTED, "%s: resourceVersion is %lld, not %lld", what,
                   (long long)rev, (long long)c->want_rev[i]);
        return;
    }
    json_t *fin = api_json_lookup(obj, "metadata.finalizers");
    if (!json_strv_contains(fin, APISERVER_FINALIZER) &&
        json_array_size(fin) >= API_FINALIZERS_MAX) {
        result_set(c, i, RPC_CODE_FAILED_PRECONDITION,
                   "%s already has %d finalizers; there is no room for %s", what,
                   API_FINALIZERS_MAX, APISERVER_FINALIZER);
        return;
    }

    const char *flavor = json_string_value(api_json_lookup(obj, "spec.flavor"));
    claim cl;
    if (!flavor) {
        result_set(c, i, RPC_CODE_FAILED_PRECONDITION, "%s has no spec.flavor", what);
        return;
    }
    if (flavor_claim_get(c, flavor, &cl, &e) < 0) {
        result_error(c, i, &e);
        return;
    }
    for (api_resource r = 0; r < _API_RESOURCE_MAX; r++) {
        int64_t want = cl.amount[r];
        if (want == 0 || a->used[r] + want <= a->cap.limit[r])
            continue;
        const api_resource_info *ri = &api_resource_table[r];
        char ratio[32];
        result_set(c, i, RPC_CODE_RESOURCE_EXHAUSTED,
                   "node \"%s\": insufficient %s (requested %lld%s, %lld%s free of %lld%s × %s)",
                   a->node, ri->name, (long long)want, ri->unit,
                   (long long)MAX(a->cap.limit[r] - a->used[r], 0), ri->unit,
                   (long long)a->cap.allocatable[r], ri->unit,
                   ratio_format(a->cap.ratio[r], ratio));
        return;
    }
    group_slot *g = NULL;
    const char *group = json_string_value(api_json_lookup(obj, "spec.serverGroup"));
    if (group) {
        g = group_get(a, c->namespaces[i], group, &e);
        if (!g || group_admit(a, g, uid, &e) < 0) {
            result_error(c, i, &e);
            return;
        }
    }

    json_t *entry = json_object();
    json_object_set_new(entry, "namespace", json_string(c->namespaces[i]));
    json_object_set_new(entry, "name", json_string(b->name));
    for (api_resource r = 0; r < _API_RESOURCE_MAX; r++) {
        json_object_set_new(entry, api_resource_table[r].field, json_integer(cl.amount[r]));
        a->used[r] += cl.amount[r];
    }
    json_object_set_new(a->alloc.map, uid, entry);
    a->alloc.changed = true;
    if (g) {
        json_object_set_new(g->members.map, uid, json_string(a->node));
        g->members.changed = true;
    }
    instance_mark_bound(obj, a->node);
    _cleanup_free_ char *text = object_to_store(obj);
    store_txn_compare(a->t, c->keys[i], STORE_CMP_MOD, STORE_CMP_EQUAL, rev);
    store_txn_put(a->t, STORE_ON_SUCCESS, c->keys[i], text, strlen(text), 0, 0);
    a->in_txn[a->n_in_txn++] = i;
    /* What stays if every retry loses its race. */
    result_set(c, i, RPC_CODE_ABORTED,
               "node \"%s\": its allocations kept changing while binding %s; retry", a->node, what);
}

static void bind_one(bind_attempt *a, size_t i)
{
    bind_call *c = a->c;
    char what[512];
    snprintf(what, sizeof(what), "instances \"%s/%s\"", c->namespaces[i],
             c->req->bindings[i]->name);
    apierr e = {0};
    json_t *obj = NULL;
    int64_t rev = 0;
    int r = object_read(c->w, c->keys[i], &obj, &rev, &e);
    if (r == -ENOENT)
        result_set(c, i, RPC_CODE_NOT_FOUND, "%s not found", what);
    else if (r < 0)
        result_error(c, i, &e);
    else
        bind_decide(a, i, obj, rev, what);
    json_decref(obj);
}

/* Returns 1 when every binding of the batch has its result, 0 when the transaction lost a race
 * and the batch must be decided again from fresh reads, 2 when it was too large for etcd and
 * the instances must go one by one. */
static int attempt_run(bind_attempt *a, const size_t *idx, size_t n)
{
    bind_call *c = a->c;
    apierr e = {0};
    _cleanup_free_ char *node_key = NULL;
    json_t *node = NULL;
    int r = api_key_build(api_kind_get(API_KIND_NODE), NULL, a->node, &node_key);
    if (r < 0)
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "node: \"%.64s\" is not a valid node name",
                   a->node);
    else {
        r = object_read(c->w, node_key, &node, NULL, &e);
        if (r == -ENOENT)
            apierr_set(&e, RPC_CODE_NOT_FOUND, "nodes \"%s\" not found", a->node);
    }
    if (r >= 0) {
        api_node_capacity_of(node, &a->cap);
        json_decref(node);
        _cleanup_free_ char *key = xasprintf(ALLOCATIONS_PREFIX "%s", a->node);
        r = ledger_load(c->w, key, "instances", &a->alloc, &e);
    }
    if (r < 0) {
        for (size_t k = 0; k < n; k++)
            result_error(c, idx[k], &e);
        return 1;
    }
    ledger_sum(&a->alloc, a->used);
    for (size_t k = 0; k < n; k++)
        bind_one(a, idx[k]);
    if (a->n_in_txn == 0)
        return 1;

    ledger_commit(a->t, &a->alloc);
    for (size_t g = 0; g < a->n_groups; g++)
        ledger_commit(a->t, &a->groups[g].members);
    _cleanup_(store_result_freep) store_result *res = NULL;
    int err = sx_txn(c->w, a->t, &res);
    if (err == -EMSGSIZE && a->n_in_txn > 1)
        return 2; /* large objects (annotations, userData): one per transaction */
    if (err < 0) {
        /* A timeout may have applied: the caller retries and finds the binding done. */
        apierr_store(&e, err, "the binding transaction");
        for (size_t k = 0; k < a->n_in_txn; k++)
            result_error(c, a->in_txn[k], &e);
        return 1;
    }
    if (!res->succeeded)
        return 0;
    for (size_t k = 0; k < a->n_in_txn; k++)
        result_ok(c, a->in_txn[k]);
    return 1;
}

static void bind_batch(bind_call *c, const char *node, const size_t *idx, size_t n)
{
    for (int i = 0; i < APISERVER_CAS_RETRIES; i++) {
        bind_attempt a = {.c = c, .node = node, .t = store_txn_new()};
        int done = attempt_run(&a, idx, n);
        attempt_clear(&a);
        if (done == 2) {
            for (size_t k = 0; k < n; k++)
                bind_batch(c, node, &idx[k], 1);
            return;
        }
        if (done)
            return;
    }
}

static bool batch_has_key(const bind_call *c, const size_t *batch, size_t n, const char *key)
{
    for (size_t k = 0; k < n; k++)
        if (streq(c->keys[batch[k]], key))
            return true;
    return false;
}

/* Bindings go node by node (in the order nodes first appear) in batches of at most
 * APISERVER_TXN_INSTANCES. The same instance twice in one batch would be two puts of one key,
 * which etcd refuses; the second waits for the next batch and finds the first one's outcome. */
static void bind_run(bind_call *c)
{
    _cleanup_free_ bool *taken = xnew(bool, c->n);
    _cleanup_free_ size_t *pending = xnew(size_t, c->n);
    size_t batch[APISERVER_TXN_INSTANCES];
    for (size_t i = 0; i < c->n; i++) {
        if (!c->keys[i] || taken[i])
            continue;
        const char *node = c->req->bindings[i]->node;
        size_t m = 0;
        for (size_t j = i; j < c->n; j++)
            if (c->keys[j] && !taken[j] && streq(c->req->bindings[j]->node, node)) {
                pending[m++] = j;
                taken[j] = true;
            }
        while (m > 0) {
            size_t nb = 0, rest = 0;
            for (size_t k = 0; k < m; k++) {
                size_t j = pending[k];
                if (nb < ELEMENTSOF(batch) && !batch_has_key(c, batch, nb, c->keys[j]))
                    batch[nb++] = j;
                else
                    pending[rest++] = j;
            }
            m = rest;
            bind_batch(c, node, batch, nb);
        }
    }
}

/* Checks what can be checked without etcd. Returns 0, or -1 with the result set. */
static int binding_prepare(bind_call *c, size_t i)
{
    const Stratus__V1__Binding *b = c->req->bindings[i];
    const char *ns = b->namespace_ && *b->namespace_ ? b->namespace_ : "default";
    const char *name = b->name ? b->name : "";
    const char *node = b->node ? b->node : "";
    c->namespaces[i] = ns;
    apierr e = {0};
    const char *problem;
    if ((problem = api_dns_label_problem(ns)))
        result_set(c, i, RPC_CODE_INVALID_ARGUMENT,
                   "bindings[%zu].namespace: \"%.64s\" is not a valid namespace: %s", i, ns,
                   problem);
    else if (!*name)
        result_set(c, i, RPC_CODE_INVALID_ARGUMENT, "bindings[%zu].name: required", i);
    else if (api_key_build(api_kind_get(API_KIND_INSTANCE), ns, name, &c->keys[i]) < 0)
        result_set(c, i, RPC_CODE_INVALID_ARGUMENT,
                   "bindings[%zu].name: \"%.64s\" is not a valid instance name", i, name);
    else if (!*node)
        result_set(c, i, RPC_CODE_INVALID_ARGUMENT, "bindings[%zu].node: required", i);
    else if ((problem = api_dns_subdomain_problem(node)))
        result_set(c, i, RPC_CODE_INVALID_ARGUMENT,
                   "bindings[%zu].node: \"%.64s\" is not a valid node name: %s", i, node, problem);
    else {
        char field[64];
        snprintf(field, sizeof(field), "bindings[%zu].resourceVersion", i);
        if (parse_revision(b->resource_version, field, &c->want_rev[i], &e) == 0)
            return 0;
        result_error(c, i, &e);
    }
    c->keys[i] = mfree(c->keys[i]);
    return -1;
}

static void bind_call_clear(bind_call *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->keys[i]);
        free(c->messages[i]);
    }
    for (size_t i = 0; i < c->n_flavors; i++)
        free(c->flavors[i].name);
    free(c->flavors);
    free(c->namespaces);
    free(c->keys);
    free(c->want_rev);
    free(c->codes);
    free(c->messages);
}

void handle_bind(worker *w, rpc_call *call, const ProtobufCMessage *request)
{
    const Stratus__V1__BindRequest *req = (const Stratus__V1__BindRequest *)request;
    if (req->n_bindings > APISERVER_BIND_BATCH_MAX) {
        apierr e;
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "bindings: %zu bindings; at most %d per request",
                   req->n_bindings, APISERVER_BIND_BATCH_MAX);
        reply_error(call, &e);
        return;
    }
    size_t n = req->n_bindings;
    bind_call c = {
        .w = w,
        .req = req,
        .n = n,
        .namespaces = xnew(const char *, n),
        .keys = xnew(char *, n),
        .want_rev = xnew(int64_t, n),
        .codes = xnew(rpc_code, n),
        .messages = xnew(char *, n),
    };
    for (size_t i = 0; i < n; i++)
        binding_prepare(&c, i);
    bind_run(&c);

    Stratus__V1__BindResult *results = xnew(Stratus__V1__BindResult, n);
    Stratus__V1__BindResult **ptrs = xnew(Stratus__V1__BindResult *, n);
    for (size_t i = 0; i < n; i++) {
        Stratus__V1__BindResult *res = &results[i];
        *res = (Stratus__V1__BindResult)STRATUS__V1__BIND_RESULT__INIT;
        res->namespace_ = (char *)c.namespaces[i];
        res->name = req->bindings[i]->name;
        res->ok = c.codes[i] == RPC_CODE_OK;
        res->code = (int32_t)c.codes[i];
        if (c.messages[i])
            res->message = c.messages[i];
        ptrs[i] = res;
    }
    Stratus__V1__BindResponse rep = STRATUS__V1__BIND_RESPONSE__INIT;
    rep.n_results = n;
    rep.results = ptrs;
    rpc_call_reply(call, RPC_CODE_OK, NULL, &rep.base);
    free(ptrs);
    free(results);
    bind_call_clear(&c);
}

/* ---- Unbind */

static int check_reason(const char *s)
{
    if (!s || !*s || strlen(s) > API_REASON_MAX)
        return -EINVAL;
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')))
        return -EINVAL;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return -EINVAL;
    return 0;
}

static void instance_mark_unbound(json_t *obj, const Stratus__V1__UnbindRequest *req)
{
    json_object_del(json_object_get(obj, "spec"), "nodeName");
    json_t *st = json_object_get(obj, "status");
    if (!json_is_object(st)) {
        st = json_object();
        json_object_set_new(obj, "status", st);
    }
    json_object_del(st, "nodeName");
    json_object_set_new(st, "phase", json_string("Pending"));

    json_t *attempts = json_object_get(st, "attempts");
    if (!json_is_array(attempts)) {
        attempts = json_array();
        json_object_set_new(st, "attempts", attempts);
    }
    json_t *at = json_object();
    json_object_set_new(at, "nodeName", json_string(req->node));
    json_object_set_new(at, "reason", json_string(req->reason));
    if (req->message && *req->message)
        json_object_set_new(at, "message", json_string(req->message));
    json_set_timestamp(at, "time");
    json_array_append_new(attempts, at);
    while (json_array_size(attempts) > API_ATTEMPTS_MAX)
        json_array_remove(attempts, 0);

    _cleanup_free_ char *msg = NULL;
    if (!req->message || !*req->message)
        msg = xasprintf("node \"%s\" gave it back", req->node);
    object_set_condition(obj, "Scheduled", "False", req->reason, msg ? msg : req->message);

    json_t *fin = api_json_lookup(obj, "metadata.finalizers");
    for (size_t i = json_array_size(fin); i-- > 0;) {
        const char *f = json_string_value(json_array_get(fin, i));
        if (f && streq(f, APISERVER_FINALIZER))
            json_array_remove(fin, i);
    }
}

/* Returns 1 when replied, 0 to retry after a lost race, -1 with e filled. */
static int unbind_once(worker *w, rpc_call *call, const Stratus__V1__UnbindRequest *req,
                       const char *key, const char *what, apierr *e)
{
    json_t *obj = NULL;
    int64_t rev = 0;
    int r = object_read(w, key, &obj, &rev, e);
    if (r == -ENOENT)
        return apierr_set(e, RPC_CODE_NOT_FOUND, "%s not found", what);
    if (r < 0)
        return -1;
    const char *uid = api_object_uid(obj);
    const char *node = instance_node(obj);
    r = -1;
    if (req->uid && *req->uid && (!uid || !streq(uid, req->uid)))
        apierr_set(e, RPC_CODE_FAILED_PRECONDITION, "%s was deleted and recreated (uid %s, not %s)",
                   what, uid ? uid : "unset", req->uid);
    else if (api_json_lookup(obj, "metadata.deletionTimestamp"))
        apierr_set(e, RPC_CODE_FAILED_PRECONDITION,
                   "%s is being deleted; remove the finalizer %s instead of unbinding it", what,
                   APISERVER_FINALIZER);
    else if (!node || !streq(node, req->node))
        apierr_set(e, RPC_CODE_FAILED_PRECONDITION, "%s is not bound to node \"%s\"%s%s%s", what,
                   req->node, node ? " (it is bound to \"" : " (it is not bound)", node ? node : "",
                   node ? "\")" : "");
    else {
        _cleanup_(store_txn_freep) store_txn *t = store_txn_new();
        store_txn_compare(t, key, STORE_CMP_MOD, STORE_CMP_EQUAL, rev);
        if (ledger_release(w, t, obj, e) == 0) {
            instance_mark_unbound(obj, req);
            _cleanup_free_ char *text = object_to_store(obj);
            store_txn_put(t, STORE_ON_SUCCESS, key, text, strlen(text), 0, 0);
            _cleanup_(store_result_freep) store_result *res = NULL;
            int err = sx_txn(w, t, &res);
            if (err < 0)
                apierr_store(e, err, what);
            else if (!res->succeeded)
                r = 0;
            else {
                api_object_set_resource_version(obj, res->revision);
                _cleanup_free_ char *out = api_json_canonical(obj);
                Stratus__V1__ObjectResponse rep = STRATUS__V1__OBJECT_RESPONSE__INIT;
                rep.object_json = out;
                rpc_call_reply(call, RPC_CODE_OK, NULL, &rep.base);
                r = 1;
            }
        }
    }
    json_decref(obj);
    return r;
}

void handle_unbind(worker *w, rpc_call *call, const ProtobufCMessage *request)
{
    const Stratus__V1__UnbindRequest *req = (const Stratus__V1__UnbindRequest *)request;
    apierr e = {0};
    const api_kind_info *k;
    _cleanup_free_ char *key = NULL;
    const char *problem = NULL;
    if (request_key("Instance", req->namespace_, req->name, &k, &key, &e) < 0) {
        reply_error(call, &e);
        return;
    }
    if (!req->node || !*req->node)
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "node: required");
    else if ((problem = api_dns_subdomain_problem(req->node)))
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "node: \"%.64s\" is not a valid node name: %s",
                   req->node, problem);
    else if (!req->reason || !*req->reason)
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT,
                   "reason: required (a CamelCase word such as InsufficientMemory)");
    else if (check_reason(req->reason) < 0)
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT,
                   "reason: \"%.64s\" is not a CamelCase word of at most %d letters and digits",
                   req->reason, API_REASON_MAX);
    else if (req->message && strlen(req->message) > API_MESSAGE_MAX)
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "message: %zu bytes; at most %d",
                   strlen(req->message), API_MESSAGE_MAX);
    if (e.code) {
        reply_error(call, &e);
        return;
    }
    char what[256];
    object_describe(k, req->namespace_, req->name, what, sizeof(what));
    for (int attempt = 0; attempt < APISERVER_CAS_RETRIES; attempt++) {
        int r = unbind_once(w, call, req, key, what, &e);
        if (r > 0)
            return;
        if (r < 0) {
            reply_error(call, &e);
            return;
        }
    }
    apierr_set(&e, RPC_CODE_ABORTED, "%s kept changing while it was unbound; retry", what);
    reply_error(call, &e);
}
