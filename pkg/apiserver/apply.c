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
    _cleanup_(store_result_freep) store_result *r = NULL;
    int err = sx_get(w, key, &r);
    if (err == -ENOENT)
        return apierr_set(e, RPC_CODE_INVALID_ARGUMENT, "%s: %s \"%s\" not found", path,
                          api_kind_to_string(to), name);
    if (err < 0)
        return apierr_store(e, err, key);
    return 0;
}

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

static void reply_apply(rpc_call *call, Stratus__V1__ApplyResponse__Result result, json_t *obj)
{
    _cleanup_free_ char *text = api_json_canonical(obj);
    Stratus__V1__ApplyResponse rep = STRATUS__V1__APPLY_RESPONSE__INIT;
    rep.result = result;
    rep.object_json = text;
    rpc_call_reply(call, RPC_CODE_OK, NULL, &rep.base);
}

/* Returns 1 when done (replied), 0 to retry after a lost race, -1 on error (e filled). */
static int apply_create(worker *w, rpc_call *call, const api_kind_info *k, const char *key,
                        json_t *obj, bool dry_run, apierr *e)
{
    json_t *md = json_object_get(obj, "metadata");
    char uid[37];
    uuid_random(uid);
    json_object_set_new(md, "uid", json_string(uid));
    json_set_timestamp(md, "creationTimestamp");
    json_object_set_new(md, "generation", json_integer(1));

    _cleanup_(store_txn_freep) store_txn *t = store_txn_new();
    store_txn_compare(t, key, STORE_CMP_CREATE, STORE_CMP_EQUAL, 0);
    if (k->kind == API_KIND_INSTANCE) {
        json_t *st = json_object();
        json_object_set_new(st, "phase", json_string("Pending"));
        json_object_set_new(st, "observedGeneration", json_integer(0));
        json_object_set_new(obj, "status", st);
        object_set_condition(obj, "Scheduled", "False", "Pending", "waiting for the scheduler");
        if (ipam_allocate(w, t, obj, e) < 0)
            return -1;
    }
    if (dry_run) {
        reply_apply(call, STRATUS__V1__APPLY_RESPONSE__RESULT__CREATED, obj);
        return 1;
    }
    _cleanup_free_ char *text = object_to_store(obj);
    store_txn_put(t, STORE_ON_SUCCESS, key, text, strlen(text), 0, 0);
    _cleanup_(store_result_freep) store_result *r = NULL;
    int err = sx_txn(w, t, &r);
    if (err < 0)
        return apierr_store(e, err, key);
    if (!r->succeeded)
        return 0; /* created meanwhile, or an IP ledger moved: decide again */
    api_object_set_resource_version(obj, r->revision);
    reply_apply(call, STRATUS__V1__APPLY_RESPONSE__RESULT__CREATED, obj);
    return 1;
}

static int apply_update(worker *w, rpc_call *call, const api_kind_info *k, const char *key,
                        json_t *obj, const json_t *cur, int64_t rev, bool dry_run, apierr *e)
{
    json_t *cur_md = json_object_get(cur, "metadata");
    if (json_object_get(cur_md, "deletionTimestamp"))
        return apierr_set(e, RPC_CODE_FAILED_PRECONDITION,
                          "%s is being deleted; wait until it is gone, then apply again", key);
    if (k->kind == API_KIND_INSTANCE && instance_update_rules(obj, cur, e) < 0)
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
    _cleanup_(store_result_freep) store_result *r = NULL;
    int err = sx_update(w, key, text, rev, &r);
    if (err == -ESTALE || err == -ENOENT)
        return 0;
    if (err < 0)
        return apierr_store(e, err, key);
    api_object_set_resource_version(obj, r->revision);
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
    if (api_object_key(doc, &key) < 0 || admit_references(w, k, doc, &e) < 0) {
        if (!key)
            apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "metadata.name: not a valid name");
        json_decref(doc);
        reply_error(call, &e);
        return;
    }
    for (int attempt = 0; attempt < APISERVER_CAS_RETRIES; attempt++) {
        json_t *obj = json_deep_copy(doc);
        json_t *cur = NULL;
        int64_t rev = 0;
        int r = object_read(w, key, &cur, &rev, &e);
        if (r == -ENOENT)
            r = apply_create(w, call, k, key, obj, req->dry_run, &e);
        else if (r == 0)
            r = apply_update(w, call, k, key, obj, cur, rev, req->dry_run, &e);
        json_decref(obj);
        json_decref(cur);
        if (r != 0) {
            if (r < 0)
                reply_error(call, &e);
            json_decref(doc);
            return;
        }
    }
    json_decref(doc);
    apierr_set(&e, RPC_CODE_ABORTED, "%s kept changing while it was applied; retry", key);
    reply_error(call, &e);
}
