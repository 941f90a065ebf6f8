/* Get and List. List reads etcd in pages pinned to one revision, filters by label and field
 * selector on the server, and returns up to `limit` matching objects plus a continue token that
 * carries the revision and the last key read, so following pages are a consistent snapshot (or
 * OUT_OF_RANGE "relist" once that revision has been compacted). A page also stops short of the
 * client's default 4 MiB receive limit. */
#include <errno.h>
#include <string.h>

#include "api/selector.h"
#include "base/alloc.h"
#include "base/b64.h"
#include "internal.h"
#include "stratus/v1/stratus.pb-c.h"

#define LIST_PAGE_BYTES (3u << 20)
#define LIST_SCAN_CHUNK 1000
/* What one etcd read of a List should bring back, about: the keys of a read are as many as fit
 * at the average size of the values read so far; a page's first read, before any size is known,
 * takes LIST_FIRST_READ keys — at API_OBJECT_SIZE_MAX each, still under the store's response
 * limit (STORE_DEFAULT_MAX_RESPONSE). */
#define LIST_READ_BYTES ((size_t)8 << 20)
#define LIST_FIRST_READ 32

void handle_get(worker *w, rpc_call *call, const ProtobufCMessage *request)
{
    const Stratus__V1__GetRequest *req = (const Stratus__V1__GetRequest *)request;
    apierr e = {0};
    const api_kind_info *k;
    _cleanup_free_ char *key = NULL;
    if (request_key(req->kind, req->namespace_, req->name, &k, &key, &e) < 0) {
        reply_error(call, &e);
        return;
    }
    json_t *obj = NULL;
    int r = object_read(w, key, &obj, NULL, &e);
    if (r == -ENOENT) {
        char what[256];
        object_describe(k, req->namespace_, req->name, what, sizeof(what));
        apierr_set(&e, RPC_CODE_NOT_FOUND, "%s not found", what);
    }
    if (r < 0) {
        reply_error(call, &e);
        return;
    }
    _cleanup_free_ char *text = api_json_canonical(obj);
    json_decref(obj);
    Stratus__V1__ObjectResponse rep = STRATUS__V1__OBJECT_RESPONSE__INIT;
    rep.object_json = text;
    rpc_call_reply(call, RPC_CODE_OK, NULL, &rep.base);
}

/* The continue token: base64 of "<revision> <last key>". Opaque to clients. */
static char *token_make(int64_t rev, const char *last)
{
    _cleanup_free_ char *raw = xasprintf("%lld %s", (long long)rev, last);
    return b64_encode(raw, strlen(raw));
}

static int token_parse(const char *token, const char *prefix, int64_t *ret_rev, char **ret_key,
                       apierr *e)
{
    _cleanup_free_ char *raw = NULL;
    size_t n;
    long long rev;
    int used = 0;
    if (strlen(token) > 4096 || b64_decode(token, strlen(token), &raw, &n) < 0 ||
        strlen(raw) != n || sscanf(raw, "%lld %n", &rev, &used) != 1 || rev <= 0 ||
        strncmp(raw + used, prefix, strlen(prefix)) != 0)
        return apierr_set(e, RPC_CODE_INVALID_ARGUMENT,
                          "continue: not a continue token from this list; start again without it");
    *ret_rev = rev;
    *ret_key = xstrdup(raw + used);
    return 0;
}

void handle_list(worker *w, rpc_call *call, const ProtobufCMessage *request)
{
    const Stratus__V1__ListRequest *req = (const Stratus__V1__ListRequest *)request;
    apierr e = {0};
    api_error ae = {0};
    const api_kind_info *k = api_kind_lookup(req->kind ? req->kind : "");
    if (!k) {
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "kind: unknown kind \"%.64s\"",
                   req->kind ? req->kind : "");
        reply_error(call, &e);
        return;
    }
    if (req->limit < 0 || req->limit > APISERVER_LIST_MAX) {
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "limit: must be between 0 and %d",
                   APISERVER_LIST_MAX);
        reply_error(call, &e);
        return;
    }
    const char *ns = NULL;
    if (k->namespaced && !req->all_namespaces)
        ns = req->namespace_ && *req->namespace_ ? req->namespace_ : "default";
    _cleanup_free_ char *prefix = NULL;
    if (api_key_prefix(k, ns, &prefix) < 0) {
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "namespace: \"%.64s\" is not a valid namespace",
                   ns);
        reply_error(call, &e);
        return;
    }
    _cleanup_(api_label_selector_freep) api_label_selector *ls = NULL;
    _cleanup_(api_field_selector_freep) api_field_selector *fs = NULL;
    if (api_label_selector_parse(req->label_selector, &ls, &ae) < 0 ||
        api_field_selector_parse(req->field_selector, k, &fs, &ae) < 0) {
        apierr_invalid(&e, &ae);
        reply_error(call, &e);
        return;
    }
    int64_t rev = 0;
    _cleanup_free_ char *after = NULL;
    if (req->continue_token && *req->continue_token &&
        token_parse(req->continue_token, prefix, &rev, &after, &e) < 0) {
        reply_error(call, &e);
        return;
    }
    size_t limit = req->limit > 0 ? (size_t)req->limit : APISERVER_LIST_DEFAULT;
    _cleanup_free_ char *end = store_prefix_end(prefix);

    char **items = xnew(char *, limit);
    size_t n_items = 0, bytes = 0;
    bool more = true;
    char *last = NULL; /* last key read from etcd, owned by `after` */
    size_t read_keys = 0, read_bytes = 0;
    while (more && n_items < limit && bytes < LIST_PAGE_BYTES) {
        /* Without selectors every key read is returned: read just what the page still needs,
         * or the next page would read the rest again. With them, read ahead in chunks. Either
         * way no more than about LIST_READ_BYTES at once. */
        bool filtering = ls->n_requirements > 0 || fs->n_requirements > 0;
        int64_t chunk = filtering ? LIST_SCAN_CHUNK : (int64_t)(limit - n_items);
        size_t fit =
            read_keys ? LIST_READ_BYTES / MAX(read_bytes / read_keys, (size_t)1) : LIST_FIRST_READ;
        chunk = MIN(chunk, (int64_t)MAX(fit, (size_t)1));
        store_range_opts o = {
            .key = prefix, .range_end = end, .after = after, .revision = rev, .limit = chunk};
        _cleanup_(store_result_freep) store_result *r = NULL;
        int err = sx_range(w, &o, &r);
        if (err < 0) {
            apierr_store(&e, err, prefix);
            if (err == -ERANGE)
                apierr_set(&e, RPC_CODE_RELIST,
                           "the list's revision %lld was compacted; list again from the start",
                           (long long)rev);
            for (size_t i = 0; i < n_items; i++)
                free(items[i]);
            free(items);
            reply_error(call, &e);
            return;
        }
        if (!rev)
            rev = r->revision;
        more = r->more;
        read_keys += r->n_kvs;
        for (size_t i = 0; i < r->n_kvs; i++)
            read_bytes += r->kvs[i].key_len + r->kvs[i].value_len;
        size_t i;
        for (i = 0; i < r->n_kvs && n_items < limit && bytes < LIST_PAGE_BYTES; i++) {
            last = r->kvs[i].key;
            /* Only read: the recent values' parse of exactly this revision will do. When a
             * worker wrote that revision, the value is the object's canonical text but for
             * resourceVersion, so the item is that text with it put in, without a dump (as the
             * watch cache does). */
            bool written = false;
            json_t *obj =
                recent_parsed_at(w->srv->recent, r->kvs[i].key, r->kvs[i].mod_revision, &written);
            if (!obj)
                obj = object_from_kv(&r->kvs[i]);
            if (!obj)
                continue;
            if (api_label_selector_matches(ls, api_object_labels(obj)) &&
                api_field_selector_matches(fs, obj)) {
                char *text = written ? object_text_with_resource_version(r->kvs[i].value,
                                                                         r->kvs[i].value_len,
                                                                         r->kvs[i].mod_revision)
                                     : NULL;
                items[n_items] = text ? text : api_json_canonical(obj);
                bytes += strlen(items[n_items]);
                n_items++;
            }
            json_decref(obj);
        }
        if (i < r->n_kvs)
            more = true; /* stopped inside this chunk */
        if (last) {
            free(after);
            after = xstrdup(last);
            last = NULL;
        }
    }

    char rv_text[24];
    snprintf(rv_text, sizeof(rv_text), "%lld", (long long)rev);
    _cleanup_free_ char *token = more && after ? token_make(rev, after) : NULL;
    Stratus__V1__ListResponse rep = STRATUS__V1__LIST_RESPONSE__INIT;
    rep.items_json = items;
    rep.n_items_json = n_items;
    rep.resource_version = rv_text;
    rep.continue_token = token ? token : (char *)"";
    rpc_call_reply(call, RPC_CODE_OK, NULL, &rep.base);
    for (size_t i = 0; i < n_items; i++)
        free(items[i]);
    free(items);
}
