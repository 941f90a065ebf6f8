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
 * rounded up to whole GiB of disk, recorded in its status.claim too (a flavor may be deleted while
 * instances of it are bound; those who count the instance need not find it). A rootDiskGiB of 0
 * ("the image's size", as in Nova) adds no root disk: the apiserver does not know image sizes. A
 * node can hand out status.allocatable × spec.allocationRatios (allocatable falls back to capacity
 * − reserved when the agent has not reported it).
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
#include "api/parse.h"
#include "base/alloc.h"
#include "api/resources.h"
#include "internal.h"
#include "stratus/v1/stratus.pb-c.h"

#define ALLOCATIONS_PREFIX  "/stratus/v1/allocations/"
#define GROUP_LEDGER_PREFIX "/stratus/v1/groupledger/"

/* ---- ledgers */

int ledger_parse(const char *key, const store_kv *kv, const char *member, ledger *ret, apierr *e)
{
    return ledger_parse_shared(key, kv, NULL, member, ret, e);
}

int ledger_parse_shared(const char *key, const store_kv *kv, const json_t *parsed,
                        const char *member, ledger *ret, apierr *e)
{
    json_t *doc;
    int64_t rev = 0;
    if (kv && parsed && json_is_object(json_object_get(parsed, member))) {
        /* Entries are only ever added or removed, never changed in place: copies of the document
         * and of its map are enough to leave the shared one as it is. */
        doc = json_copy((json_t *)parsed);
        json_object_set_new(doc, member, json_copy(json_object_get(parsed, member)));
        rev = kv->mod_revision;
    } else if (!kv) {
        doc = json_object();
        json_object_set_new(doc, member, json_object());
    } else {
        doc = api_json_loadb(kv->value, kv->value_len, JSON_REJECT_DUPLICATES, NULL);
        /* Never repaired silently: an empty ledger would hand out what is already claimed. */
        if (!json_is_object(json_object_get(doc, member))) {
            json_decref(doc);
            return apierr_set(e, RPC_CODE_DATA_LOSS,
                              "%s: the stored ledger is not a JSON object with \"%s\"", key,
                              member);
        }
        rev = kv->mod_revision;
    }
    *ret =
        (ledger){.key = xstrdup(key), .doc = doc, .map = json_object_get(doc, member), .rev = rev};
    return 0;
}

int ledger_load(worker *w, const char *key, const char *member, ledger *ret, apierr *e)
{
    _cleanup_(store_result_freep) store_result *r = NULL;
    int err = sx_get(w, key, &r);
    if (err < 0 && err != -ENOENT)
        return apierr_store(e, err, key);
    return ledger_parse(key, err == -ENOENT ? NULL : &r->kvs[0], member, ret, e);
}

int ledger_load_guess(worker *w, const char *key, const char *member, ledger *ret, apierr *e)
{
    store_kv *kv;
    _cleanup_(store_result_freep) store_result *owner = NULL;
    _cleanup_(json_decrefp) json_t *parsed = NULL;
    int guessed = ledger_read(w, key, &kv, &owner, &parsed, e);
    if (guessed < 0 || ledger_parse_shared(key, kv, parsed, member, ret, e) < 0)
        return -1;
    ret->guessed = guessed;
    return 0;
}

void ledger_commit(store_txn *t, const ledger *l, json_t *writes)
{
    if (!l->changed && !l->guessed)
        return;
    if (l->rev > 0)
        store_txn_compare(t, l->key, STORE_CMP_MOD, STORE_CMP_EQUAL, l->rev);
    else
        store_txn_compare(t, l->key, STORE_CMP_CREATE, STORE_CMP_EQUAL, 0);
    if (!l->changed)
        return;
    if (json_object_size(l->map) == 0) {
        if (l->rev > 0) {
            store_txn_delete(t, STORE_ON_SUCCESS, l->key, NULL, 0);
            if (writes)
                json_array_append_new(writes, json_pack("[s,n]", l->key));
        }
        return;
    }
    _cleanup_free_ char *text = api_json_canonical(l->doc);
    store_txn_put(t, STORE_ON_SUCCESS, l->key, text, strlen(text), 0, 0);
    /* The document goes with its text: once the transaction succeeded it is what the next
     * request starts from without parsing (l->doc is never changed after its commit). */
    if (writes)
        json_array_append_new(writes, json_pack("[s,s,O]", l->key, text, l->doc));
}

void ledger_clear(ledger *l)
{
    free(l->key);
    json_decref(l->doc);
    *l = (ledger){0};
}

/* Takes the uid out of the ledger at key, into t. Returns 0, or -1 with e filled. */
static int ledger_drop(worker *w, store_txn *t, const char *key, const char *member,
                       const char *uid, json_t *writes, apierr *e)
{
    ledger l;
    if (ledger_load_guess(w, key, member, &l, e) < 0)
        return -1;
    if (json_object_get(l.map, uid)) {
        json_object_del(l.map, uid);
        l.changed = true;
    }
    ledger_commit(t, &l, writes);
    ledger_clear(&l);
    return 0;
}

static const char *instance_node(const json_t *obj)
{
    return json_string_value(api_json_lookup(obj, "spec.nodeName"));
}

int ledger_release(worker *w, store_txn *t, const json_t *obj, json_t *writes, apierr *e)
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
        if (ledger_drop(w, t, key, "instances", uid, writes, e) < 0)
            return -1;
    }
    const char *group = json_string_value(api_json_lookup(obj, "spec.serverGroup"));
    const char *ns = api_object_namespace(obj);
    if (group && ns && api_is_dns_subdomain(group) && api_is_dns_label(ns)) {
        _cleanup_free_ char *key = xasprintf(GROUP_LEDGER_PREFIX "%s/%s", ns, group);
        if (ledger_drop(w, t, key, "members", uid, writes, e) < 0)
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
    bool *pending;         /* per binding: no result yet */
    bool *solo;            /* per binding: too large to share a transaction */
    unsigned *tries;       /* per binding: transactions that lost their race */
    bool *fresh;           /* per binding: read from etcd, not the recent values (a guess was
                              about to refuse it, or lost a race) */
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

/* ---- rounds: every pending binding decided from one set of reads, committed in a few
 * transactions that run side by side
 *
 * A round takes, in request order, the pending bindings it can: one unit per node (at most
 * APISERVER_TXN_INSTANCES of its bindings), each instance once, and only nodes no other round of
 * this apiserver holds (round_hold: a held node's bindings wait for a later round of the call,
 * instead of losing a race on its ledger to the holder). It reads every instance, node
 * and allocation ledger it needs in a handful of read-only transactions sent at once, decides
 * each unit against what it read, and packs the units into as few transactions as etcd accepts
 * (APISERVER_TXN_OPS compares, APISERVER_TXN_BYTES of values), all sent at once. Transactions of
 * a round never touch the same key: each unit has its own node, each instance is in one unit,
 * and a server group's ledger is written by the first transaction that needs it — a binding of
 * the same group that lands in another transaction waits for the next round. A transaction that
 * loses a race sends its bindings to the next round, which reads afresh and gives each of their
 * nodes a transaction of its own: with schedulers racing, one changed ledger among 60 nodes
 * would otherwise fail the same 60 again and again. Each binding has APISERVER_CAS_RETRIES
 * tries. The first unit of a round is never deferred, so every round
 * settles or retries at least one binding, and Bind ends. */

typedef struct group_slot {
    char *ref;     /* "<ns>/<name>" */
    json_t *group; /* the ServerGroup */
    ledger members;
    size_t txn; /* the transaction of the round that writes the ledger; SIZE_MAX: none */
} group_slot;

typedef struct bind_unit {
    const char *node;
    size_t idx[APISERVER_TXN_INSTANCES];
    size_t n;
    bool solo;  /* one binding that must go in a transaction of its own */
    bool alone; /* lost a race before: in a transaction of its own, so that it does not take
                   other nodes' bindings down with it again */
    bool held;  /* the round holds its node (round_hold) */
    const store_kv *node_kv;                          /* as read; NULL: no such node */
    const store_kv *alloc_kv;                         /* NULL: no ledger yet */
    const store_kv *inst_kv[APISERVER_TXN_INSTANCES]; /* NULL: no such instance */
    /* The same parsed, when the recent values held them so (shared: never changed); NULL: parse
     * the kv. */
    json_t *node_parsed, *alloc_parsed, *inst_parsed[APISERVER_TXN_INSTANCES];
    bool guessed;      /* some of the above came from the recent values */
    bool node_guessed; /* the node did: its revision is compared in the write */
    capacity cap;
    ledger alloc;
    int64_t used[_API_RESOURCE_MAX];
    size_t txn;
} bind_unit;

typedef struct round_txn {
    store_txn *t;
    json_t *writes; /* [[key, text or null], ...]: noted in the recent values on success */
    size_t *bound;  /* bindings it writes */
    size_t n_bound;
    size_t compares, bytes;
    bool solo;
    store_sync sync;
} round_txn;

typedef struct bind_round {
    bind_call *c;
    bind_unit *units;
    size_t n_units;
    group_slot *groups;
    size_t n_groups, groups_allocated;
    round_txn *txns;
    size_t n_txns, txns_allocated;
    store_result **reads; /* kept while the round runs: the kvs above point into them */
    size_t n_reads;
} bind_round;

typedef enum decision {
    DECIDED,  /* the binding has its result */
    WRITTEN,  /* claimed, and its write is in a transaction */
    DEFERRED, /* left for the next round */
} decision;

static void round_release(bind_round *r);

static void round_clear(bind_round *r)
{
    round_release(r);
    for (size_t u = 0; u < r->n_units; u++) {
        bind_unit *unit = &r->units[u];
        ledger_clear(&unit->alloc);
        json_decref(unit->node_parsed);
        json_decref(unit->alloc_parsed);
        for (size_t j = 0; j < unit->n; j++)
            json_decref(unit->inst_parsed[j]);
    }
    free(r->units);
    for (size_t i = 0; i < r->n_groups; i++) {
        free(r->groups[i].ref);
        json_decref(r->groups[i].group);
        ledger_clear(&r->groups[i].members);
    }
    free(r->groups);
    for (size_t i = 0; i < r->n_txns; i++) {
        store_txn_free(r->txns[i].t);
        json_decref(r->txns[i].writes);
        free(r->txns[i].bound);
        store_result_free(r->txns[i].sync.result);
    }
    free(r->txns);
    for (size_t i = 0; i < r->n_reads; i++)
        store_result_free(r->reads[i]);
    free(r->reads);
}

static group_slot *group_get(bind_round *r, const char *ns, const char *name, apierr *e)
{
    _cleanup_free_ char *ref = xasprintf("%s/%s", ns, name);
    for (size_t i = 0; i < r->n_groups; i++)
        if (streq(r->groups[i].ref, ref))
            return &r->groups[i];
    _cleanup_free_ char *key = NULL;
    if (api_key_build(api_kind_get(API_KIND_SERVER_GROUP), ns, name, &key) < 0) {
        apierr_set(e, RPC_CODE_FAILED_PRECONDITION,
                   "spec.serverGroup: \"%.64s\" is not a valid server group name", name);
        return NULL;
    }
    json_t *g = NULL;
    int res = object_read(r->c->w, key, &g, NULL, e);
    if (res == -ENOENT)
        apierr_set(e, RPC_CODE_NOT_FOUND, "servergroups \"%s\" not found (spec.serverGroup)", ref);
    if (res < 0)
        return NULL;
    _cleanup_free_ char *lkey = xasprintf(GROUP_LEDGER_PREFIX "%s", ref);
    ledger members;
    if (ledger_load(r->c->w, lkey, "members", &members, e) < 0) {
        json_decref(g);
        return NULL;
    }
    r->groups = xgrow(r->groups, &r->groups_allocated, r->n_groups + 1, sizeof(group_slot));
    group_slot *s = &r->groups[r->n_groups++];
    *s = (group_slot){.ref = TAKE_PTR(ref), .group = g, .members = members, .txn = SIZE_MAX};
    return s;
}

/* The hard policies: whether uid may join its group on node. */
static int group_admit(const group_slot *s, const char *node, const char *uid, apierr *e)
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
            if (!streq(member, uid) && where && streq(where, node))
                here++;
        }
        if (here >= max)
            return apierr_set(e, RPC_CODE_FAILED_PRECONDITION,
                              "server group \"%s\" (anti-affinity, at most %lld per node): node "
                              "\"%s\" already has %lld of its members",
                              s->ref, (long long)max, node, (long long)here);
    } else if (policy && streq(policy, "affinity")) {
        json_object_foreach (s->members.map, member, v) {
            where = json_string_value(v);
            if (!streq(member, uid) && where && !streq(where, node))
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

/* Replaces parent's member key, when it is an object or an array, with a shallow copy of it and
 * returns the copy (else the member, or NULL): what is changed in it is then parent's own. */
static json_t *member_own(json_t *parent, const char *key)
{
    json_t *v = json_object_get(parent, key);
    if (!json_is_object(v) && !json_is_array(v))
        return v;
    json_t *copy = json_copy(v);
    json_object_set_new(parent, key, copy);
    return copy;
}

/* The instance obj bound to node, as a new object. obj may be shared (the recent values' parse):
 * it is left unchanged, the result holds copies of what changes (the top level, spec, status,
 * its conditions and the condition changed, metadata and its finalizers) and shares the rest.
 * For a 600-byte instance that took 1.2 µs, copying it whole 2.2 µs, parsing it 9.3 µs.
 * metadata is always the result's own (recent_note_object sets its resourceVersion). */
static json_t *instance_bound(const json_t *obj, const char *node, const claim *cl)
{
    json_t *b = json_copy((json_t *)obj);
    json_t *spec = member_own(b, "spec");
    json_object_set_new(spec, "nodeName", json_string(node));
    json_t *st = member_own(b, "status");
    if (!json_is_object(st)) {
        st = json_object();
        json_object_set_new(b, "status", st);
    }
    json_object_set_new(st, "phase", json_string("Scheduled"));
    json_object_set_new(st, "nodeName", json_string(node));
    /* The claim as the ledger records it, in the instance too: who counts it (the scheduler,
     * the agent) need not find the flavor, which may be deleted meanwhile. */
    json_object_set_new(st, "claim", api_resources_json(cl));
    json_t *conds = member_own(st, "conditions");
    for (size_t i = 0; i < json_array_size(conds); i++) {
        json_t *c = json_array_get(conds, i);
        const char *type = json_string_value(json_object_get(c, "type"));
        if (json_is_object(c) && type && streq(type, "Scheduled"))
            json_array_set_new(conds, i, json_copy(c));
    }
    _cleanup_free_ char *msg = xasprintf("bound to node \"%s\"", node);
    object_set_condition(b, "Scheduled", "True", "Bound", msg);
    json_t *md = member_own(b, "metadata");
    json_t *fin = member_own(md, "finalizers");
    if (!json_is_array(fin)) {
        fin = json_array();
        json_object_set_new(md, "finalizers", fin);
    }
    if (!json_strv_contains(fin, APISERVER_FINALIZER))
        json_array_append_new(fin, json_string(APISERVER_FINALIZER));
    return b;
}

/* Decides binding i of unit u with the instance as read (only read: it may be shared), into
 * transaction tx of the round. */
static decision bind_decide(bind_round *r, bind_unit *u, size_t tx, size_t i, const json_t *obj,
                            int64_t rev, const char *what)
{
    bind_call *c = r->c;
    round_txn *t = &r->txns[tx];
    const Stratus__V1__Binding *b = c->req->bindings[i];
    apierr e = {0};
    const char *uid = api_object_uid(obj);
    if (!uid) {
        result_set(c, i, RPC_CODE_INTERNAL, "%s has no metadata.uid", what);
        return DECIDED;
    }
    if (b->uid && *b->uid && !streq(b->uid, uid)) {
        result_set(c, i, RPC_CODE_ABORTED, "%s was deleted and recreated (uid %s, not %s)", what,
                   uid, b->uid);
        return DECIDED;
    }
    if (api_json_lookup(obj, "metadata.deletionTimestamp")) {
        result_set(c, i, RPC_CODE_FAILED_PRECONDITION, "%s is being deleted", what);
        return DECIDED;
    }
    if (json_object_get(u->alloc.map, uid)) {
        result_ok(c, i); /* bound here already: a retried Bind */
        return DECIDED;
    }
    const char *node = instance_node(obj);
    if (node && !streq(node, u->node)) {
        bool bound;
        if (claimed_on(c->w, node, uid, &bound, &e) < 0)
            result_error(c, i, &e);
        else if (bound)
            result_set(c, i, RPC_CODE_ALREADY_EXISTS, "%s is already bound to node \"%s\"", what,
                       node);
        else
            result_set(c, i, RPC_CODE_FAILED_PRECONDITION,
                       "%s may only go to node \"%s\" (spec.nodeName)", what, node);
        return DECIDED;
    }
    if (c->want_rev[i] && c->want_rev[i] != rev) {
        result_set(c, i, RPC_CODE_ABORTED, "%s: resourceVersion is %lld, not %lld", what,
                   (long long)rev, (long long)c->want_rev[i]);
        return DECIDED;
    }
    const json_t *fin = api_json_lookup(obj, "metadata.finalizers");
    if (!json_strv_contains(fin, APISERVER_FINALIZER) &&
        json_array_size(fin) >= API_FINALIZERS_MAX) {
        result_set(c, i, RPC_CODE_FAILED_PRECONDITION,
                   "%s already has %d finalizers; there is no room for %s", what,
                   API_FINALIZERS_MAX, APISERVER_FINALIZER);
        return DECIDED;
    }

    const char *flavor = json_string_value(api_json_lookup(obj, "spec.flavor"));
    claim cl;
    if (!flavor) {
        result_set(c, i, RPC_CODE_FAILED_PRECONDITION, "%s has no spec.flavor", what);
        return DECIDED;
    }
    if (flavor_claim_get(c, flavor, &cl, &e) < 0) {
        result_error(c, i, &e);
        return DECIDED;
    }
    for (api_resource k = 0; k < _API_RESOURCE_MAX; k++) {
        int64_t want = cl.amount[k];
        if (want == 0 || u->used[k] + want <= u->cap.limit[k])
            continue;
        const api_resource_info *ri = &api_resource_table[k];
        char ratio[32];
        result_set(c, i, RPC_CODE_RESOURCE_EXHAUSTED,
                   "node \"%s\": insufficient %s (requested %lld%s, %lld%s free of %lld%s × %s)",
                   u->node, ri->name, (long long)want, ri->unit,
                   (long long)MAX(u->cap.limit[k] - u->used[k], 0), ri->unit,
                   (long long)u->cap.allocatable[k], ri->unit,
                   ratio_format(u->cap.ratio[k], ratio));
        return DECIDED;
    }
    group_slot *g = NULL;
    const char *group = json_string_value(api_json_lookup(obj, "spec.serverGroup"));
    if (group) {
        g = group_get(r, c->namespaces[i], group, &e);
        if (!g) {
            result_error(c, i, &e);
            return DECIDED;
        }
        if (g->txn != SIZE_MAX && g->txn != tx)
            return DEFERRED; /* another transaction of this round writes the group's ledger */
        if (group_admit(g, u->node, uid, &e) < 0) {
            result_error(c, i, &e);
            return DECIDED;
        }
    }

    /* The same sizes as the instance's status.claim (instance_bound), and who claims them. */
    json_t *entry = api_resources_json(&cl);
    json_object_set_new(entry, "namespace", json_string(c->namespaces[i]));
    json_object_set_new(entry, "name", json_string(b->name));
    for (api_resource k = 0; k < _API_RESOURCE_MAX; k++)
        u->used[k] += cl.amount[k];
    json_object_set_new(u->alloc.map, uid, entry);
    u->alloc.changed = true;
    if (g) {
        json_object_set_new(g->members.map, uid, json_string(u->node));
        g->members.changed = true;
        if (g->txn == SIZE_MAX) {
            g->txn = tx;
            t->compares++;
        }
    }
    json_t *bound = instance_bound(obj, u->node, &cl);
    _cleanup_free_ char *text = object_to_store(bound);
    store_txn_compare(t->t, c->keys[i], STORE_CMP_MOD, STORE_CMP_EQUAL, rev);
    store_txn_put(t->t, STORE_ON_SUCCESS, c->keys[i], text, strlen(text), 0, 0);
    /* With the object: the watch cache and the next request take it instead of parsing text. */
    json_array_append_new(t->writes, json_pack("[s,s,o,b]", c->keys[i], text, bound, 1));
    t->compares++;
    t->bytes += strlen(text);
    t->bound[t->n_bound++] = i;
    /* What stays if every try loses its race. */
    result_set(c, i, RPC_CODE_ABORTED,
               "node \"%s\": its allocations kept changing while binding %s; retry", u->node, what);
    return WRITTEN;
}

/* The longest a round waits for another round to let go of its nodes; then it goes ahead on them
 * unheld, racing as it did before holds (the compares keep it correct). Bounds what a stuck
 * holder — etcd slow to answer its write — can make other Bind calls wait. */
#define HOLD_WAIT_MAX (1 * USEC_PER_SEC)

/* Holds the nodes of the round's units that no other round of this apiserver holds, until
 * round_clear, and leaves out the units of nodes held by others; when every node is held, first
 * waits until one is let go (up to HOLD_WAIT_MAX, then keeps every unit, holding what it can).
 * A node's bindings left out stay pending for a later round of the call. Two Bind calls for one
 * node would otherwise both decide on the same ledger and one transaction would lose, taking
 * every other node it packed back to a retry: with three schedulers 7 transactions in 10 held 3
 * bindings or fewer, a fifth of them lost. A round never holds a node while it waits, so rounds
 * cannot wait on each other in a circle. Only node ledgers are held: two calls adding members of
 * one server group on different nodes still race on its ledger. */
static void round_hold(bind_round *r)
{
    apiserver *s = r->c->w->srv;
    if (r->n_units == 0)
        return;
    usec_t until = now_monotonic() + HOLD_WAIT_MAX;
    bool waited_out = false;
    pthread_mutex_lock(&s->holds_lock);
    for (;;) {
        size_t k = 0;
        while (k < r->n_units && json_object_get(s->holds, r->units[k].node))
            k++;
        if (k < r->n_units)
            break;
        struct timespec ts = {.tv_sec = (time_t)(until / USEC_PER_SEC),
                              .tv_nsec = (long)(until % USEC_PER_SEC) * 1000};
        if (pthread_cond_timedwait(&s->holds_cond, &s->holds_lock, &ts) == ETIMEDOUT) {
            waited_out = true;
            break;
        }
    }
    size_t kept = 0;
    for (size_t k = 0; k < r->n_units; k++) {
        bind_unit *u = &r->units[k];
        if (!json_object_get(s->holds, u->node)) {
            json_object_set_new(s->holds, u->node, json_true());
            u->held = true;
        } else if (!waited_out)
            continue;
        r->units[kept++] = *u;
    }
    r->n_units = kept;
    pthread_mutex_unlock(&s->holds_lock);
}

/* Lets go of the nodes the round holds (round_hold). */
static void round_release(bind_round *r)
{
    apiserver *s = r->c->w->srv;
    if (r->n_units == 0)
        return;
    pthread_mutex_lock(&s->holds_lock);
    for (size_t k = 0; k < r->n_units; k++)
        if (r->units[k].held)
            json_object_del(s->holds, r->units[k].node);
    pthread_cond_broadcast(&s->holds_cond);
    pthread_mutex_unlock(&s->holds_lock);
}

/* Picks this round's units from the pending bindings. */
static void round_select(bind_round *r)
{
    bind_call *c = r->c;
    json_t *keys = json_object();  /* instance keys in the round */
    json_t *nodes = json_object(); /* node -> unit index */
    r->units = xnew(bind_unit, c->n);
    for (size_t i = 0; i < c->n; i++) {
        if (!c->pending[i] || json_object_get(keys, c->keys[i]))
            continue;
        const char *node = c->req->bindings[i]->node;
        json_t *at = json_object_get(nodes, node);
        bind_unit *u;
        if (at) {
            u = &r->units[json_integer_value(at)];
            if (u->solo || c->solo[i] || u->n == ELEMENTSOF(u->idx))
                continue;
        } else {
            json_object_set_new(nodes, node, json_integer((json_int_t)r->n_units));
            u = &r->units[r->n_units++];
            *u = (bind_unit){.node = node, .solo = c->solo[i], .txn = SIZE_MAX};
        }
        u->idx[u->n++] = i;
        u->alone |= c->tries[i] > 0;
        json_object_set_new(keys, c->keys[i], json_true());
    }
    json_decref(keys);
    json_decref(nodes);
    round_hold(r);
}

typedef struct read_slot {
    char *key;
    const store_kv **into;
    json_t **parsed_into; /* the value parsed, when the recent values hold it so */
    bind_unit *u;
    bool node; /* the unit's Node */
} read_slot;

/* Whether unit u may start from the recent values: not after a lost race, and not for a binding
 * a guess was about to refuse. */
static bool unit_may_guess(const bind_round *r, const bind_unit *u)
{
    if (!r->c->w->guess_ok || u->alone)
        return false;
    for (size_t j = 0; j < u->n; j++)
        if (r->c->fresh[u->idx[j]])
            return false;
    return true;
}

/* Reads every node, allocation ledger and instance of the round: from the recent values where a
 * unit may guess and they hold the key (the write compares each revision), the rest in read-only
 * transactions sent side by side. Returns 0, or a store error. */
static int round_read(bind_round *r)
{
    bind_call *c = r->c;
    size_t n = 0;
    for (size_t u = 0; u < r->n_units; u++)
        n += 2 + r->units[u].n;
    _cleanup_free_ read_slot *slots = xnew(read_slot, n);
    n = 0;
    for (size_t k = 0; k < r->n_units; k++) {
        bind_unit *u = &r->units[k];
        if (api_key_build(api_kind_get(API_KIND_NODE), NULL, u->node, &slots[n].key) < 0)
            slots[n].key = xstrdup("/stratus/v1/invalid"); /* binding_prepare checked the name */
        slots[n].into = &u->node_kv;
        slots[n].parsed_into = &u->node_parsed;
        slots[n].u = u;
        slots[n++].node = true;
        slots[n++] = (read_slot){xasprintf(ALLOCATIONS_PREFIX "%s", u->node), &u->alloc_kv,
                                 &u->alloc_parsed, u};
        for (size_t j = 0; j < u->n; j++)
            slots[n++] =
                (read_slot){xstrdup(c->keys[u->idx[j]]), &u->inst_kv[j], &u->inst_parsed[j], u};
    }

    /* Guesses first; what they lack is read. */
    store_result *guesses = xnew(store_result, 1);
    guesses->kvs = xnew(store_kv, n);
    _cleanup_free_ size_t *miss = xnew(size_t, n);
    size_t n_miss = 0;
    for (size_t k = 0; k < n; k++) {
        store_kv *kv = &guesses->kvs[guesses->n_kvs];
        if (unit_may_guess(r, slots[k].u) &&
            recent_get_parsed(c->w->srv->recent, slots[k].key, &kv->value, &kv->value_len,
                              &kv->mod_revision, slots[k].parsed_into) == 0) {
            kv->key = xstrdup(slots[k].key);
            kv->key_len = strlen(kv->key);
            guesses->n_kvs++;
            *slots[k].into = kv;
            slots[k].u->guessed = true;
            slots[k].u->node_guessed |= slots[k].node;
        } else
            miss[n_miss++] = k;
    }

    size_t n_txn = (n_miss + APISERVER_TXN_OPS - 1) / APISERVER_TXN_OPS;
    store_txn **txns = xnew(store_txn *, n_txn);
    store_sync *syncs = xnew(store_sync, n_txn);
    r->reads = xnew(store_result *, n_txn + 1);
    r->reads[r->n_reads++] = guesses;
    int err = 0;
    for (size_t t = 0; t < n_txn; t++) {
        txns[t] = store_txn_new();
        for (size_t m = t * APISERVER_TXN_OPS; m < n_miss && m < (t + 1) * APISERVER_TXN_OPS; m++)
            store_txn_get(txns[t], STORE_ON_SUCCESS, slots[miss[m]].key, NULL);
        syncs[t] = STORE_SYNC_INIT;
        int e = store_txn_commit(c->w->st, txns[t], store_sync_done, &syncs[t]);
        if (e < 0) {
            err = err ? err : e;
            syncs[t].done = true;
        }
    }
    for (size_t t = 0; t < n_txn; t++) {
        if (!syncs[t].result && syncs[t].done)
            continue; /* never sent */
        store_result *res = NULL;
        int e = store_wait(c->w->st, &syncs[t], &res);
        r->reads[r->n_reads++] = res;
        if (e < 0 || res->n_responses != store_txn_ops(txns[t])) {
            err = err ? err : (e < 0 ? e : -EPROTO);
            continue;
        }
        for (size_t k = 0; k < res->n_responses; k++) {
            const store_result *sub = &res->responses[k];
            *slots[miss[t * APISERVER_TXN_OPS + k]].into = sub->n_kvs > 0 ? &sub->kvs[0] : NULL;
        }
    }
    for (size_t t = 0; t < n_txn; t++)
        store_txn_free(txns[t]);
    for (size_t k = 0; k < n; k++)
        free(slots[k].key);
    free(txns);
    free(syncs);
    return err;
}

static round_txn *round_txn_open(bind_round *r, bool solo)
{
    r->txns = xgrow(r->txns, &r->txns_allocated, r->n_txns + 1, sizeof(round_txn));
    round_txn *t = &r->txns[r->n_txns++];
    *t = (round_txn){
        .t = store_txn_new(), .writes = json_array(), .bound = xnew(size_t, r->c->n), .solo = solo};
    return t;
}

/* Settles every binding of unit u with one error. */
static void unit_fail(bind_round *r, const bind_unit *u, const apierr *e)
{
    for (size_t j = 0; j < u->n; j++) {
        result_error(r->c, u->idx[j], e);
        r->c->pending[u->idx[j]] = false;
    }
}

static void unit_decide(bind_round *r, bind_unit *u)
{
    bind_call *c = r->c;
    apierr e = {0};
    if (!u->node_kv) {
        apierr_set(&e, RPC_CODE_NOT_FOUND, "nodes \"%s\" not found", u->node);
        unit_fail(r, u, &e);
        return;
    }
    if (!u->node_parsed) {
        /* Only read from now on: the next unit of this node, in this call or another, takes it
         * when the recent values still hold the node at this revision. */
        u->node_parsed = object_from_kv(u->node_kv);
        recent_attach(c->w->srv->recent, u->node_kv->key, u->node_kv->mod_revision, u->node_parsed);
    }
    api_node_capacity_of(u->node_parsed, &u->cap);
    _cleanup_free_ char *key = xasprintf(ALLOCATIONS_PREFIX "%s", u->node);
    if (ledger_parse_shared(key, u->alloc_kv, u->alloc_parsed, "instances", &u->alloc, &e) < 0) {
        unit_fail(r, u, &e);
        return;
    }
    ledger_sum(&u->alloc, u->used);

    /* The most this unit can add: a compare per instance, its ledger, a group ledger each. */
    size_t need = 2 * u->n + 1 + u->node_guessed, bytes = u->alloc_kv ? u->alloc_kv->value_len : 0;
    for (size_t j = 0; j < u->n; j++)
        bytes += (u->inst_kv[j] ? u->inst_kv[j]->value_len : 0) + 512;
    round_txn *t = r->n_txns ? &r->txns[r->n_txns - 1] : NULL;
    if (!t || t->solo || u->solo || u->alone || t->compares + need > APISERVER_TXN_OPS ||
        (t->bytes > 0 && t->bytes + bytes > APISERVER_TXN_BYTES))
        t = round_txn_open(r, u->solo || u->alone);
    u->txn = (size_t)(t - r->txns);

    for (size_t j = 0; j < u->n; j++) {
        size_t i = u->idx[j];
        char what[512];
        snprintf(what, sizeof(what), "instances \"%s/%s\"", c->namespaces[i],
                 c->req->bindings[i]->name);
        if (!u->inst_kv[j]) {
            result_set(c, i, RPC_CODE_NOT_FOUND, "%s not found", what);
            c->pending[i] = false;
            continue;
        }
        json_t *obj =
            u->inst_parsed[j] ? json_incref(u->inst_parsed[j]) : object_from_kv(u->inst_kv[j]);
        if (!obj) {
            result_set(c, i, RPC_CODE_DATA_LOSS, "%s: the stored object is not JSON", what);
            c->pending[i] = false;
            continue;
        }
        if (bind_decide(r, u, u->txn, i, obj, u->inst_kv[j]->mod_revision, what) == DECIDED) {
            if (u->guessed) {
                /* Refused, or found done, on a guess: decided again on what etcd holds. */
                c->codes[i] = 0;
                c->messages[i] = mfree(c->messages[i]);
                c->fresh[i] = true;
            } else
                c->pending[i] = false;
        }
        json_decref(obj);
    }
    if (u->alloc.changed) {
        t->compares += 1 + u->node_guessed;
        t->bytes += 256 * json_object_size(u->alloc.map);
    }
}

/* Sends the round's transactions side by side and settles what they wrote. */
static void round_commit(bind_round *r)
{
    bind_call *c = r->c;
    for (size_t k = 0; k < r->n_units; k++) {
        bind_unit *u = &r->units[k];
        if (u->txn == SIZE_MAX)
            continue;
        round_txn *t = &r->txns[u->txn];
        ledger_commit(t->t, &u->alloc, t->writes);
        /* The capacity decided on is the one written against. */
        if (u->node_guessed && u->alloc.changed)
            store_txn_compare(t->t, u->node_kv->key, STORE_CMP_MOD, STORE_CMP_EQUAL,
                              u->node_kv->mod_revision);
    }
    for (size_t g = 0; g < r->n_groups; g++)
        if (r->groups[g].txn != SIZE_MAX)
            ledger_commit(r->txns[r->groups[g].txn].t, &r->groups[g].members,
                          r->txns[r->groups[g].txn].writes);
    for (size_t k = 0; k < r->n_txns; k++) {
        round_txn *t = &r->txns[k];
        t->sync = STORE_SYNC_INIT;
        if (t->n_bound == 0)
            continue;
        int e = store_txn_commit(c->w->st, t->t, store_sync_done, &t->sync);
        if (e < 0) {
            t->sync.result = xnew(store_result, 1);
            t->sync.result->error = e;
            t->sync.done = true;
        }
    }
    for (size_t k = 0; k < r->n_txns; k++) {
        round_txn *t = &r->txns[k];
        if (t->n_bound == 0)
            continue;
        store_result *res = NULL;
        int err = store_wait(c->w->st, &t->sync, &res);
        t->sync.result = res; /* freed with the round */
        if (err == 0 && res->succeeded)
            recent_note_writes(c->w, t->writes, res->revision);
        for (size_t j = 0; j < t->n_bound; j++) {
            size_t i = t->bound[j];
            if (err == -EMSGSIZE && t->n_bound > 1) {
                c->solo[i] = true; /* large objects (annotations, userData): one by one */
            } else if (err < 0) {
                /* A timeout may have applied: the caller retries and finds the binding done. */
                apierr e = {0};
                apierr_store(&e, err, "the binding transaction");
                result_error(c, i, &e);
                c->pending[i] = false;
            } else if (res->succeeded) {
                result_ok(c, i);
                c->pending[i] = false;
            } else if (++c->tries[i] >= APISERVER_CAS_RETRIES) {
                c->pending[i] = false; /* keeps "kept changing; retry" */
            }
        }
    }
}

/* Runs rounds until every binding has its result. */
static void bind_run(bind_call *c)
{
    for (;;) {
        bind_round r = {.c = c};
        round_select(&r);
        if (r.n_units == 0) {
            round_clear(&r);
            return;
        }
        int err = round_read(&r);
        if (err < 0) {
            apierr e = {0};
            apierr_store(&e, err, "reading the instances and nodes to bind");
            for (size_t k = 0; k < r.n_units; k++)
                unit_fail(&r, &r.units[k], &e);
        } else {
            for (size_t k = 0; k < r.n_units; k++)
                unit_decide(&r, &r.units[k]);
            round_commit(&r);
        }
        round_clear(&r);
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
    free(c->pending);
    free(c->solo);
    free(c->tries);
    free(c->fresh);
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
        .pending = xnew(bool, n),
        .solo = xnew(bool, n),
        .tries = xnew(unsigned, n),
        .fresh = xnew(bool, n),
    };
    for (size_t i = 0; i < n; i++)
        c.pending[i] = binding_prepare(&c, i) == 0;
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

static bool has_condition(const json_t *status, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach (json_object_get(status, "conditions"), i, c)
        if (streq(json_string_value(json_object_get(c, "type")) ?: "", type))
            return true;
    return false;
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
    json_object_del(st, "claim");
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
    /* What the old node's agent reported is no longer true: no domain runs for it now (the
     * agent gives an instance back only after removing its domain, and a lost node has fenced
     * its own). The next node's agent sets these again. */
    _cleanup_free_ char *gone = xasprintf("the instance left node \"%s\"", req->node);
    object_set_condition(obj, "DomainRunning", "False", req->reason, gone);
    object_set_condition(obj, "Ready", "False", req->reason, gone);
    /* The build's steps too: the next node's agent trusts a True claim, disks or network of
     * this instance as its own work (a claim it then never checks against its host, DHCP
     * entries it never makes). */
    static const char *const steps[] = {"ResourcesClaimed", "BlockDevicesReady", "NetworkReady"};
    for (size_t k = 0; k < ELEMENTSOF(steps); k++)
        if (has_condition(st, steps[k]))
            object_set_condition(obj, steps[k], "False", req->reason, gone);
    json_object_del(st, "domainUUID");

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
        _cleanup_(json_decrefp) json_t *writes = json_array();
        store_txn_compare(t, key, STORE_CMP_MOD, STORE_CMP_EQUAL, rev);
        if (ledger_release(w, t, obj, writes, e) == 0) {
            instance_mark_unbound(obj, req);
            _cleanup_free_ char *text = object_to_store(obj);
            store_txn_put(t, STORE_ON_SUCCESS, key, text, strlen(text), 0, 0);
            _cleanup_(store_result_freep) store_result *res = NULL;
            int err = sx_txn(w, t, &res);
            if (err < 0)
                apierr_store(e, err, what);
            else if (!res->succeeded) {
                guess_refused(w); /* the instance or a ledger moved: read them again */
                r = 0;
            } else {
                /* recent_note_writes sets obj's resourceVersion; only read from here on. */
                json_array_append_new(writes, json_pack("[s,s,O,b]", key, text, obj, 1));
                recent_note_writes(w, writes, res->revision);
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
