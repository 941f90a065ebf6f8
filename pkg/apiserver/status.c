/* UpdateStatus: the system's writes of what is (status), separate from what users want (spec),
 * as Kubernetes' status subresource. The whole status is replaced by a validated document, with a
 * resourceVersion precondition when the caller gives one (else last writer wins, retried on a
 * lost race). The same call removes finalizers: a controller saying its cleanup is done; the
 * object being deleted then goes for good once none is left. */
#include <errno.h>
#include <string.h>

#include "api/parse.h"
#include "base/alloc.h"
#include "internal.h"
#include "stratus/v1/stratus.pb-c.h"

static void remove_finalizers(json_t *obj, char **names, size_t n)
{
    json_t *fin = json_object_get(json_object_get(obj, "metadata"), "finalizers");
    for (size_t i = json_array_size(fin); i-- > 0;) {
        const char *f = json_string_value(json_array_get(fin, i));
        for (size_t j = 0; f && j < n; j++)
            if (streq(f, names[j])) {
                json_array_remove(fin, i);
                break;
            }
    }
}

void handle_update_status(worker *w, rpc_call *call, const ProtobufCMessage *request)
{
    const Stratus__V1__UpdateStatusRequest *req = (const Stratus__V1__UpdateStatusRequest *)request;
    apierr e = {0};
    api_error ae = {0};
    const api_kind_info *k;
    _cleanup_free_ char *key = NULL;
    int64_t want_rev = 0;
    if (request_key(req->kind, req->namespace_, req->name, &k, &key, &e) < 0 ||
        parse_revision(req->resource_version, "resourceVersion", &want_rev, &e) < 0) {
        reply_error(call, &e);
        return;
    }
    json_t *status = NULL;
    if (req->status_json && *req->status_json) {
        status = api_json_loads(req->status_json, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(status)) {
            json_decref(status);
            apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "status: must be a JSON object");
            reply_error(call, &e);
            return;
        }
        /* status.claim is Bind's to write (kept as stored below): what a writer sends of it,
         * as an agent sends back the status it read, is not even validated. */
        if (k == api_kind_get(API_KIND_INSTANCE))
            json_object_del(status, "claim");
        if (api_object_validate_status(k, status, &ae) < 0) {
            json_decref(status);
            apierr_invalid(&e, &ae);
            reply_error(call, &e);
            return;
        }
    } else if (req->n_remove_finalizers == 0) {
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "status: required (or finalizers to remove)");
        reply_error(call, &e);
        return;
    }
    char what[256];
    object_describe(k, req->namespace_, req->name, what, sizeof(what));
    for (int attempt = 0; attempt < APISERVER_CAS_RETRIES; attempt++) {
        json_t *obj = NULL;
        int64_t rev = 0;
        bool guessed;
        int r = read_for_update(w, key, &obj, &rev, &guessed, &e);
        if (r == -ENOENT)
            apierr_set(&e, RPC_CODE_NOT_FOUND, "%s not found", what);
        if (r < 0)
            break;
        if (want_rev && want_rev != rev) {
            json_decref(obj);
            if (guessed) {
                /* The guess is what etcd held at its revision; another one is decided on what
                 * etcd holds now. An equal one is checked by the write's compare. */
                guess_refused(w);
                continue;
            }
            apierr_set(&e, RPC_CODE_ABORTED,
                       "%s: resourceVersion is %lld, not %lld; read it again and retry", what,
                       (long long)rev, (long long)want_rev);
            break;
        }
        if (status) {
            /* An instance keeps the status.claim Bind wrote (the writer's was dropped above). */
            json_t *st = json_copy(status);
            json_t *claim = json_object_get(json_object_get(obj, "status"), "claim");
            if (claim && k == api_kind_get(API_KIND_INSTANCE))
                json_object_set(st, "claim", claim);
            json_object_set_new(obj, "status", st);
        }
        remove_finalizers(obj, req->remove_finalizers, req->n_remove_finalizers);
        json_t *md = json_object_get(obj, "metadata");
        int err;
        int64_t new_rev = 0;
        if (json_object_get(md, "deletionTimestamp") &&
            json_array_size(json_object_get(md, "finalizers")) == 0) {
            err = object_finalize(w, k, key, obj, rev, &e);
        } else {
            _cleanup_free_ char *text = object_to_store(obj);
            _cleanup_(store_result_freep) store_result *res = NULL;
            err = sx_update(w, key, text, rev, &res);
            if (err == 0) {
                new_rev = res->revision;
                recent_note_object(w, key, text, obj, new_rev); /* only read from here on */
            } else if (err == -ESTALE || err == -ENOENT)
                recent_note_stale(w, key, res);
            else
                apierr_store(&e, err, what);
        }
        if (err == 0) {
            _cleanup_free_ char *text = api_json_canonical(obj);
            Stratus__V1__ObjectResponse rep = STRATUS__V1__OBJECT_RESPONSE__INIT;
            rep.object_json = text;
            rpc_call_reply(call, RPC_CODE_OK, NULL, &rep.base);
            json_decref(obj);
            json_decref(status);
            return;
        }
        json_decref(obj);
        if (err == -EAGAIN)
            continue; /* a guessed ledger lost: decided again on fresh reads */
        if (err != -ESTALE && err != -ENOENT)
            break;
        if (want_rev) {
            apierr_set(&e, RPC_CODE_ABORTED, "%s was changed by someone else; read it again", what);
            break;
        }
        if (err == -ENOENT) {
            apierr_set(&e, RPC_CODE_NOT_FOUND, "%s not found", what);
            break;
        }
    }
    json_decref(status);
    if (!e.code)
        apierr_set(&e, RPC_CODE_ABORTED, "%s kept changing; retry", what);
    reply_error(call, &e);
}
