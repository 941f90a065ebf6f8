/* Delete, the Kubernetes way: an object with finalizers only gets metadata.deletionTimestamp (an
 * instance also turns phase Deleting) and stays until the controllers holding the finalizers
 * have cleaned up and removed them (UpdateStatus remove_finalizers); one without goes at once.
 * The final deletion of an instance releases its node allocation, server-group membership and
 * IP addresses in the same transaction that removes it, so nothing leaks and nothing is freed
 * twice. Preconditions on resourceVersion and uid make a delete safe against a re-created
 * object of the same name. */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "internal.h"
#include "stratus/v1/stratus.pb-c.h"

int object_finalize(worker *w, const api_kind_info *k, const char *key, const json_t *obj,
                    int64_t rev, apierr *e)
{
    _cleanup_(store_txn_freep) store_txn *t = store_txn_new();
    _cleanup_(json_decrefp) json_t *writes = json_array();
    bool guessing = w->guess_ok;
    store_txn_compare(t, key, STORE_CMP_MOD, STORE_CMP_EQUAL, rev);
    store_txn_delete(t, STORE_ON_SUCCESS, key, NULL, 0);
    if (k->kind == API_KIND_INSTANCE &&
        (ledger_release(w, t, obj, writes, e) < 0 || ipam_release(w, t, obj, writes, e) < 0))
        return -EINVAL;
    _cleanup_(store_result_freep) store_result *r = NULL;
    int err = sx_txn(w, t, &r);
    if (err < 0) {
        apierr_store(e, err, key);
        return err;
    }
    if (!r->succeeded) {
        /* The object or a ledger moved; with guessed ledgers it may have been only they, which
         * says nothing about the object: -EAGAIN, decide again on fresh reads. */
        guess_refused(w);
        return guessing ? -EAGAIN : -ESTALE;
    }
    recent_note(w, key, NULL, r->revision);
    recent_note_writes(w, writes, r->revision);
    return 0;
}

static void reply_object(rpc_call *call, const json_t *obj)
{
    _cleanup_free_ char *text = api_json_canonical(obj);
    Stratus__V1__ObjectResponse rep = STRATUS__V1__OBJECT_RESPONSE__INIT;
    rep.object_json = text;
    rpc_call_reply(call, RPC_CODE_OK, NULL, &rep.base);
}

/* Returns 1 when replied, 0 to retry after a lost race, 2 to retry on a fresh read, -1 on error. */
static int delete_once(worker *w, rpc_call *call, const api_kind_info *k, const char *key,
                       const char *what, int64_t want_rev, const char *want_uid, apierr *e)
{
    json_t *obj = NULL;
    int64_t rev = 0;
    bool guessed;
    int r = read_for_update(w, key, &obj, &rev, &guessed, e);
    if (r == -ENOENT)
        return apierr_set(e, RPC_CODE_NOT_FOUND, "%s not found", what);
    if (r < 0)
        return -1;
    json_t *md = json_object_get(obj, "metadata");
    json_t *fin = json_object_get(md, "finalizers");
    const char *uid = api_object_uid(obj);
    /* Whatever ends in an error or a reply without a write is decided on what etcd holds. */
    if (guessed && ((want_rev && want_rev != rev) ||
                    (want_uid && *want_uid && (!uid || !streq(uid, want_uid))) ||
                    (json_array_size(fin) > 0 && json_object_get(md, "deletionTimestamp")))) {
        json_decref(obj);
        guess_refused(w);
        return 2;
    }
    int ret = -1;
    if (want_rev && want_rev != rev)
        apierr_set(e, RPC_CODE_ABORTED,
                   "%s: precondition failed: resourceVersion is %lld, not %lld", what,
                   (long long)rev, (long long)want_rev);
    else if (want_uid && *want_uid && (!uid || !streq(uid, want_uid)))
        apierr_set(e, RPC_CODE_ABORTED, "%s: precondition failed: uid is %s, not %s", what,
                   uid ? uid : "unset", want_uid);
    else if (json_array_size(fin) > 0) {
        if (json_object_get(md, "deletionTimestamp")) {
            reply_object(call, obj); /* already on its way out */
            ret = 1;
        } else {
            json_set_timestamp(md, "deletionTimestamp");
            if (k->kind == API_KIND_INSTANCE) {
                json_t *st = json_object_get(obj, "status");
                if (!json_is_object(st))
                    json_object_set_new(obj, "status", st = json_object());
                json_object_set_new(st, "phase", json_string("Deleting"));
            }
            _cleanup_free_ char *text = object_to_store(obj);
            _cleanup_(store_result_freep) store_result *res = NULL;
            int err = sx_update(w, key, text, rev, &res);
            if (err == -ESTALE || err == -ENOENT) {
                recent_note_stale(w, key, res);
                ret = 0;
            } else if (err < 0)
                apierr_store(e, err, what);
            else {
                recent_note_object(w, key, text, obj, res->revision); /* only read from here */
                reply_object(call, obj);
                ret = 1;
            }
        }
    } else {
        int err = object_finalize(w, k, key, obj, rev, e);
        if (err == -EAGAIN)
            ret = 2;
        else if (err == -ESTALE)
            ret = 0;
        else if (err == 0) {
            reply_object(call, obj);
            ret = 1;
        }
    }
    json_decref(obj);
    return ret;
}

void handle_delete(worker *w, rpc_call *call, const ProtobufCMessage *request)
{
    const Stratus__V1__DeleteRequest *req = (const Stratus__V1__DeleteRequest *)request;
    apierr e = {0};
    const api_kind_info *k;
    _cleanup_free_ char *key = NULL;
    int64_t want_rev = 0;
    if (request_key(req->kind, req->namespace_, req->name, &k, &key, &e) < 0 ||
        parse_revision(req->resource_version, "resourceVersion", &want_rev, &e) < 0) {
        reply_error(call, &e);
        return;
    }
    char what[256];
    object_describe(k, req->namespace_, req->name, what, sizeof(what));
    for (int attempt = 0; attempt < APISERVER_CAS_RETRIES; attempt++) {
        int r = delete_once(w, call, k, key, what, want_rev, req->uid, &e);
        if (r == 1)
            return;
        if (r == 2)
            continue;
        if (r < 0) {
            reply_error(call, &e);
            return;
        }
        if (want_rev)
            break; /* the object moved past the revision the caller insisted on */
    }
    apierr_set(&e, RPC_CODE_ABORTED, "%s kept changing while it was deleted; retry", what);
    reply_error(call, &e);
}
