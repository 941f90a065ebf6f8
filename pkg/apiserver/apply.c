/* Apply: create or update an object to the document a user sent (Kubernetes' apply, done on the
 * server). The document is the whole desired state of what the user owns — spec, labels,
 * annotations — so a field the user set before and leaves out now is removed. What the system
 * owns is carried over: uid, creationTimestamp, generation (+1 when the spec changed), finalizers,
 * status, and an instance's binding (spec.nodeName once the scheduler set it). References to
 * other objects must exist when the object is admitted. A new instance gets its IP addresses in
 * the same transaction that creates it. Every write is a compare-and-swap; a lost race re-reads
 * and decides again, since applying is "make it so". */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "internal.h"
#include "stratus/v1/stratus.pb-c.h"

/* A reference from a field of one kind to an object of another kind. */
typedef struct reference {
    api_kind from;
    const char *array; /* spec array to walk, or NULL for a plain spec field */
    const char *field;
    api_kind to;
} reference;

static const reference references[] = {
    {API_KIND_INSTANCE, NULL, "flavor", API_KIND_FLAVOR},
    {API_KIND_INSTANCE, NULL, "image", API_KIND_IMAGE},
    {API_KIND_INSTANCE, NULL, "serverGroup", API_KIND_SERVER_GROUP},
    {API_KIND_INSTANCE, "networks", "network", API_KIND_NETWORK},
    {API_KIND_INSTANCE, "blockDevices", "volume", API_KIND_VOLUME},
    {API_KIND_VOLUME, NULL, "image", API_KIND_IMAGE},
};

static int check_reference(worker *w, const char *ns, const char *path, const char *name,
                           api_kind to, apierr *e)
{
    const api_kind_info *k = api_kind_get(to);
    _cleanup_free_ char *key = NULL;
    if (api_key_build(k, k->namespaced ? ns : NULL, name, &key) < 0)
        return apierr_set(e, RPC_CODE_INVALID_ARGUMENT, "%s: \"%.64s\" is not a valid name", path,
                          name);
    if (!w)
        return 0; /* names only */
    _cleanup_(store_result_freep) store_result *r = NULL;
    int err = sx_get(w, key, &r);
    if (err == -ENOENT)
        return apierr_set(e, RPC_CODE_INVALID_ARGUMENT, "%s: %s \"%s\" not found", path,
                          api_kind_to_string(to), name);
    if (err < 0)
        return apierr_store(e, err, key);
    return 0;
}

/* Every reference names an object that exists (read from etcd). */
static int admit_references(worker *w, const api_kind_info *k, const json_t *obj, apierr *e)
{
    const json_t *spec = json_object_get(obj, "spec");
    const char *ns = api_object_namespace(obj);
    for (size_t i = 0; i < ELEMENTSOF(references); i++) {
        const reference *ref = &references[i];
        if (ref->from != k->kind)
            continue;
        char path[256];
        if (!ref->array) {
            const char *name = json_string_value(json_object_get(spec, ref->field));
            snprintf(path, sizeof(path), "spec.%s", ref->field);
            if (name && check_reference(w, ns, path, name, ref->to, e) < 0)
                return -1;
            continue;
        }
        size_t j;
        json_t *it;
        json_array_foreach (json_object_get(spec, ref->array), j, it) {
            const char *name = json_string_value(json_object_get(it, ref->field));
            snprintf(path, sizeof(path), "spec.%s[%zu].%s", ref->array, j, ref->field);
            if (name && check_reference(w, ns, path, name, ref->to, e) < 0)
                return -1;
        }
    }
    return 0;
}

/* The keys of the objects a document refers to, for compares in the transaction that writes it:
 * a reference is admitted by etcd together with the write, not by an earlier read. */
#define REFS_MAX (3 + API_INSTANCE_NETWORKS_MAX + API_INSTANCE_BLOCK_DEVICES_MAX)

typedef struct refset {
    size_t n;
    char *keys[REFS_MAX];
} refset;

static void refset_clear(refset *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        free(rs->keys[i]);
    rs->n = 0;
}

static void refset_add(refset *rs, const api_kind_info *k, const char *ns, const char *name)
{
    char *key = NULL;
    if (rs->n < REFS_MAX && api_key_build(k, k->namespaced ? ns : NULL, name, &key) == 0)
        rs->keys[rs->n++] = key;
}

/* Collects what admit_references checks (names it cannot turn into keys were refused there). */
static void references_collect(const api_kind_info *k, const json_t *obj, refset *rs)
{
    const json_t *spec = json_object_get(obj, "spec");
    const char *ns = api_object_namespace(obj);
    for (size_t i = 0; i < ELEMENTSOF(references); i++) {
        const reference *ref = &references[i];
        const api_kind_info *to = api_kind_get(ref->to);
        if (ref->from != k->kind)
            continue;
        if (!ref->array) {
            const char *name = json_string_value(json_object_get(spec, ref->field));
            if (name)
                refset_add(rs, to, ns, name);
            continue;
        }
        size_t j;
        json_t *it;
        json_array_foreach (json_object_get(spec, ref->array), j, it) {
            const char *name = json_string_value(json_object_get(it, ref->field));
            if (name)
                refset_add(rs, to, ns, name);
        }
    }
}

/* Each referenced object still exists when the transaction runs. */
static void references_compare(store_txn *t, const refset *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        store_txn_compare(t, rs->keys[i], STORE_CMP_CREATE, STORE_CMP_GREATER, 0);
}

/* Every reference is a valid name; whether it exists is left to the write's compares. */
static int admit_reference_names(const api_kind_info *k, const json_t *obj, apierr *e)
{
    return admit_references(NULL, k, obj, e);
}

static bool spec_field_equal(const json_t *a, const json_t *b, const char *field)
{
    json_t *x = json_object_get(json_object_get(a, "spec"), field);
    json_t *y = json_object_get(json_object_get(b, "spec"), field);
    if (!x || !y)
        return !x && !y;
    return json_equal(x, y);
}

/* What may not change on an existing instance, and the binding carried over. */
static int instance_update_rules(json_t *obj, const json_t *cur, apierr *e)
{
    json_t *spec = json_object_get(obj, "spec");
    const char *bound =
        json_string_value(json_object_get(json_object_get(cur, "spec"), "nodeName"));
    const char *want = json_string_value(json_object_get(spec, "nodeName"));
    if (bound) {
        if (want && !streq(want, bound))
            return apierr_set(e, RPC_CODE_INVALID_ARGUMENT,
                              "spec.nodeName: the instance is bound to node \"%s\"; delete and "
                              "re-create it to move it to \"%s\"",
                              bound, want);
        json_object_set_new(spec, "nodeName", json_string(bound));
        if (!spec_field_equal(obj, cur, "flavor"))
            return apierr_set(e, RPC_CODE_INVALID_ARGUMENT,
                              "spec.flavor: resizing a bound instance is not supported; delete and "
                              "re-create it");
    }
    static const char *const immutable[] = {"networks", "serverGroup", "image", "blockDevices"};
    for (size_t i = 0; i < ELEMENTSOF(immutable); i++)
        if (!spec_field_equal(obj, cur, immutable[i]))
            return apierr_set(e, RPC_CODE_INVALID_ARGUMENT,
                              "spec.%s: cannot be changed on an existing instance; delete and "
                              "re-create it",
                              immutable[i]);
    return 0;
}

/* A flavor's sizes are fixed once it exists, as in Nova: ledgers hold what instances claimed at
 * binding while agents check claims against the flavor, so a resized flavor would make the two
 * disagree. Labels and extraSpecs may change. */
static int flavor_update_rules(const json_t *obj, const json_t *cur, apierr *e)
{
    static const char *const sizes[] = {"vcpus", "memoryMiB", "rootDiskGiB", "ephemeralGiB",
                                        "swapMiB"};
    for (size_t i = 0; i < ELEMENTSOF(sizes); i++)
        if (!spec_field_equal(obj, cur, sizes[i]))
            return apierr_set(e, RPC_CODE_INVALID_ARGUMENT,
                              "spec.%s: a flavor's sizes cannot be changed once it exists; create "
                              "a flavor with another name",
                              sizes[i]);
    return 0;
}

static int update_rules(const api_kind_info *k, json_t *obj, const json_t *cur, apierr *e)
{
    if (k->kind == API_KIND_INSTANCE)
        return instance_update_rules(obj, cur, e);
    if (k->kind == API_KIND_FLAVOR)
        return flavor_update_rules(obj, cur, e);
    return 0;
}

static void reply_apply(rpc_call *call, Stratus__V1__ApplyResponse__Result result, json_t *obj)
{
    _cleanup_free_ char *text = api_json_canonical(obj);
    Stratus__V1__ApplyResponse rep = STRATUS__V1__APPLY_RESPONSE__INIT;
    rep.result = result;
    rep.object_json = text;
    rpc_call_reply(call, RPC_CODE_OK, NULL, &rep.base);
}

/* What a failed transaction of an Apply says: a reference went away (-1, e filled), or the
 * object or a ledger moved (0: decide again; the object's current state is noted for it). */
static int apply_lost(worker *w, const api_kind_info *k, const char *key, int64_t rev,
                      const json_t *doc, const store_result *r, apierr *e)
{
    /* The failure branch read the object back: if it is not as this attempt thought (absent, or
     * at rev), that explains it, and the next attempt starts from what it read. */
    const store_result *got = r->n_responses == 1 ? &r->responses[0] : NULL;
    int64_t now = got && got->n_kvs == 1 ? got->kvs[0].mod_revision : 0;
    if (got && now != rev) {
        if (now)
            recent_note_stale(w, key, got);
        else
            guess_refused(w);
        return 0;
    }
    guess_refused(w); /* an IP ledger moved, or a reference went away: read them again */
    return admit_references(w, k, doc, e) < 0 ? -1 : 0;
}

/* Returns 1 when done (replied), 0 to retry after a lost race, 2 to retry on a fresh read (the
 * object was guessed absent and the outcome was not a write), -1 on error (e filled). */
static int apply_create(worker *w, rpc_call *call, const api_kind_info *k, const char *key,
                        json_t *obj, const refset *refs, bool guessed, bool dry_run, apierr *e)
{
    json_t *md = json_object_get(obj, "metadata");
    char uid[37];
    uuid_random(uid);
    json_object_set_new(md, "uid", json_string(uid));
    json_set_timestamp(md, "creationTimestamp");
    json_object_set_new(md, "generation", json_integer(1));

    _cleanup_(store_txn_freep) store_txn *t = store_txn_new();
    _cleanup_(json_decrefp) json_t *writes = json_array();
    store_txn_compare(t, key, STORE_CMP_CREATE, STORE_CMP_EQUAL, 0);
    if (k->kind == API_KIND_INSTANCE) {
        json_t *st = json_object();
        json_object_set_new(st, "phase", json_string("Pending"));
        json_object_set_new(st, "observedGeneration", json_integer(0));
        json_object_set_new(obj, "status", st);
        object_set_condition(obj, "Scheduled", "False", "Pending", "waiting for the scheduler");
        if (ipam_allocate(w, t, obj, writes, e) < 0) {
            if (guessed) {
                *e = (apierr){0}; /* it may exist after all, and need no addresses */
                guess_refused(w);
                return 2;
            }
            apierr ipam_e = *e; /* a missing reference is the first thing to say */
            if (admit_references(w, k, obj, e) == 0)
                *e = ipam_e;
            return -1;
        }
    }
    if (dry_run) {
        reply_apply(call, STRATUS__V1__APPLY_RESPONSE__RESULT__CREATED, obj);
        return 1;
    }
    references_compare(t, refs);
    _cleanup_free_ char *text = object_to_store(obj);
    store_txn_put(t, STORE_ON_SUCCESS, key, text, strlen(text), 0, 0);
    store_txn_get(t, STORE_ON_FAILURE, key, NULL);
    _cleanup_(store_result_freep) store_result *r = NULL;
    int err = sx_txn(w, t, &r);
    if (err < 0)
        return apierr_store(e, err, key);
    if (!r->succeeded) /* created meanwhile, an IP ledger moved, or a reference went away */
        return apply_lost(w, k, key, 0, obj, r, e);
    recent_note_object(w, key, text, obj, r->revision); /* obj is only read from here on */
    recent_note_writes(w, writes, r->revision);
    reply_apply(call, STRATUS__V1__APPLY_RESPONSE__RESULT__CREATED, obj);
    return 1;
}

/* The same returns as apply_create; `guessed`: cur came from the recent values. */
static int apply_update(worker *w, rpc_call *call, const api_kind_info *k, const char *key,
                        json_t *obj, const json_t *cur, int64_t rev, const refset *refs,
                        bool guessed, bool dry_run, apierr *e)
{
    json_t *cur_md = json_object_get(cur, "metadata");
    if (guessed && (json_object_get(cur_md, "deletionTimestamp") ||
                    update_rules(k, obj, cur, e) < 0 || api_object_apply_equal(obj, cur))) {
        *e = (apierr){0}; /* no write would follow: decide it on what etcd holds */
        guess_refused(w);
        return 2;
    }
    if (json_object_get(cur_md, "deletionTimestamp"))
        return apierr_set(e, RPC_CODE_FAILED_PRECONDITION,
                          "%s is being deleted; wait until it is gone, then apply again", key);
    if (update_rules(k, obj, cur, e) < 0)
        return -1;
    if (api_object_apply_equal(obj, cur)) {
        json_t *same = json_deep_copy(cur);
        reply_apply(call, STRATUS__V1__APPLY_RESPONSE__RESULT__UNCHANGED, same);
        json_decref(same);
        return 1;
    }
    json_t *md = json_object_get(obj, "metadata");
    static const char *const carried[] = {"uid", "creationTimestamp", "finalizers"};
    for (size_t i = 0; i < ELEMENTSOF(carried); i++) {
        json_t *v = json_object_get(cur_md, carried[i]);
        if (v)
            json_object_set(md, carried[i], v);
        else
            json_object_del(md, carried[i]);
    }
    int64_t gen = api_object_generation(cur);
    json_object_set_new(md, "generation", json_integer(api_spec_equal(obj, cur) ? gen : gen + 1));
    json_t *status = json_object_get(cur, "status");
    if (status)
        json_object_set(obj, "status", status);
    if (dry_run) {
        api_object_set_resource_version(obj, rev);
        reply_apply(call, STRATUS__V1__APPLY_RESPONSE__RESULT__CONFIGURED, obj);
        return 1;
    }
    _cleanup_free_ char *text = object_to_store(obj);
    _cleanup_(store_txn_freep) store_txn *t = store_txn_new();
    store_txn_compare(t, key, STORE_CMP_MOD, STORE_CMP_EQUAL, rev);
    references_compare(t, refs);
    store_txn_put(t, STORE_ON_SUCCESS, key, text, strlen(text), 0, 0);
    store_txn_get(t, STORE_ON_FAILURE, key, NULL);
    _cleanup_(store_result_freep) store_result *r = NULL;
    int err = sx_txn(w, t, &r);
    if (err < 0)
        return apierr_store(e, err, key);
    if (!r->succeeded)
        return apply_lost(w, k, key, rev, obj, r, e);
    recent_note_object(w, key, text, obj, r->revision); /* obj is only read from here on */
    reply_apply(call, STRATUS__V1__APPLY_RESPONSE__RESULT__CONFIGURED, obj);
    return 1;
}

void handle_apply(worker *w, rpc_call *call, const ProtobufCMessage *request)
{
    const Stratus__V1__ApplyRequest *req = (const Stratus__V1__ApplyRequest *)request;
    apierr e = {0};
    api_error ae = {0};
    json_t *doc = NULL;
    const char *text = req->object_json ? req->object_json : "";
    if (api_json_load(text, strlen(text), &doc, &ae) < 0 || api_object_prepare(doc, &ae) < 0) {
        json_decref(doc);
        apierr_invalid(&e, &ae);
        reply_error(call, &e);
        return;
    }
    const api_kind_info *k = api_object_kind(doc);
    if (k->kind == API_KIND_LEASE) {
        json_decref(doc);
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT,
                   "kind: leases are written by the node agents' RenewLease, not applied");
        reply_error(call, &e);
        return;
    }
    _cleanup_free_ char *key = NULL;
    /* A dry run writes nothing, so nothing would check its references or guesses later: both
     * are read from etcd first. Otherwise references are compares in the write. */
    if (req->dry_run)
        guess_refused(w);
    if (api_object_key(doc, &key) < 0 ||
        (req->dry_run ? admit_references(w, k, doc, &e) : admit_reference_names(k, doc, &e)) < 0) {
        if (!key)
            apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "metadata.name: not a valid name");
        json_decref(doc);
        reply_error(call, &e);
        return;
    }
    refset refs = {0};
    references_collect(k, doc, &refs);
    for (int attempt = 0; attempt < APISERVER_CAS_RETRIES; attempt++) {
        json_t *obj = json_deep_copy(doc);
        json_t *cur = NULL;
        int64_t rev = 0;
        bool guessed = false;
        int r = read_for_apply(w, key, &cur, &rev, &guessed, &e);
        if (r == -ENOENT)
            r = apply_create(w, call, k, key, obj, &refs, guessed, req->dry_run, &e);
        else if (r == 0)
            r = apply_update(w, call, k, key, obj, cur, rev, &refs, guessed, req->dry_run, &e);
        json_decref(obj);
        json_decref(cur);
        if (r == 1 || r < 0) {
            if (r < 0)
                reply_error(call, &e);
            json_decref(doc);
            refset_clear(&refs);
            return;
        }
    }
    json_decref(doc);
    refset_clear(&refs);
    apierr_set(&e, RPC_CODE_ABORTED, "%s kept changing while it was applied; retry", key);
    reply_error(call, &e);
}
