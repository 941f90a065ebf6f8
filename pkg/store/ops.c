/* The store's operations: each builds the gateway's JSON request and submits it to the engine.
 * create, update and conditional delete are transactions underneath whose failure branch reads
 * the key, so a lost compare comes back with the current value in one round trip. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/b64.h"
#include "engine.h"

json_t *store_json_b64(const void *data, size_t len)
{
    char *e = b64_encode(data, len);
    json_t *v = json_string_nocheck(e);
    free(e);
    return v;
}

json_t *store_json_int(int64_t v)
{
    char n[24];
    snprintf(n, sizeof(n), "%lld", (long long)v);
    return json_string(n);
}

static json_t *key_field(const char *key)
{
    return store_json_b64(key, strlen(key));
}

char *store_prefix_end(const char *prefix)
{
    size_t n = strlen(prefix);
    char *end = xstrdup(prefix);
    /* Increment the last byte that is not 0xff; an all-0xff prefix ranges to the end ("\0"). */
    while (n > 0) {
        if ((unsigned char)end[n - 1] < 0xff) {
            end[n - 1]++;
            end[n] = '\0';
            return end;
        }
        n--;
    }
    end[0] = '\0';
    return end;
}

static json_t *range_end_field(const char *range_end)
{
    /* etcd reads range_end "\0" as "to the end of the keyspace". */
    return *range_end ? key_field(range_end) : store_json_b64("\0", 1);
}

json_t *store_json_range_request(const store_range_opts *o)
{
    json_t *req = json_object();
    if (o->after) {
        size_t n = strlen(o->after);
        char *k = xmalloc(n + 1);
        memcpy(k, o->after, n + 1); /* the key followed by a 0 byte: the next possible key */
        json_object_set_new(req, "key", store_json_b64(k, n + 1));
        free(k);
    } else
        json_object_set_new(req, "key", key_field(o->key));
    if (o->range_end)
        json_object_set_new(req, "range_end", range_end_field(o->range_end));
    if (o->limit > 0)
        json_object_set_new(req, "limit", store_json_int(o->limit));
    if (o->revision > 0)
        json_object_set_new(req, "revision", store_json_int(o->revision));
    if (o->keys_only)
        json_object_set_new(req, "keys_only", json_true());
    if (o->count_only)
        json_object_set_new(req, "count_only", json_true());
    if (o->serializable)
        json_object_set_new(req, "serializable", json_true());
    return req;
}

int store_range(store *s, const store_range_opts *o, store_cb cb, void *userdata)
{
    if (!o || !o->key || !cb || o->limit < 0 || o->revision < 0)
        return -EINVAL;
    return store_submit(s, STORE_KIND_RANGE, STORE_SHAPE_PLAIN, store_json_range_request(o), cb,
                        userdata);
}

int store_get(store *s, const char *key, store_cb cb, void *userdata)
{
    if (!key || !cb)
        return -EINVAL;
    store_range_opts o = {.key = key};
    return store_submit(s, STORE_KIND_RANGE, STORE_SHAPE_GET, store_json_range_request(&o), cb,
                        userdata);
}

static json_t *put_request(const char *key, const void *value, size_t len, int64_t lease,
                           unsigned flags)
{
    json_t *req = json_object();
    json_object_set_new(req, "key", key_field(key));
    json_object_set_new(req, "value", store_json_b64(value, len));
    if (lease)
        json_object_set_new(req, "lease", store_json_int(lease));
    if (flags & STORE_PREV_KV)
        json_object_set_new(req, "prev_kv", json_true());
    if (flags & STORE_IGNORE_LEASE)
        json_object_set_new(req, "ignore_lease", json_true());
    return req;
}

static json_t *delete_request(const char *key, const char *range_end, unsigned flags)
{
    json_t *req = json_object();
    json_object_set_new(req, "key", key_field(key));
    if (range_end)
        json_object_set_new(req, "range_end", range_end_field(range_end));
    if (flags & STORE_PREV_KV)
        json_object_set_new(req, "prev_kv", json_true());
    return req;
}

int store_put(store *s, const char *key, const void *value, size_t len, int64_t lease,
              unsigned flags, store_cb cb, void *userdata)
{
    if (!key || (!value && len) || !cb)
        return -EINVAL;
    return store_submit(s, STORE_KIND_PUT, STORE_SHAPE_PLAIN,
                        put_request(key, value ? value : "", len, lease, flags), cb, userdata);
}

/* ---- transactions */

struct store_txn {
    json_t *compare, *success, *failure;
};

store_txn *store_txn_new(void)
{
    store_txn *t = xnew(store_txn, 1);
    t->compare = json_array();
    t->success = json_array();
    t->failure = json_array();
    return t;
}

store_txn *store_txn_free(store_txn *t)
{
    if (!t)
        return NULL;
    json_decref(t->compare);
    json_decref(t->success);
    json_decref(t->failure);
    free(t);
    return NULL;
}

static const char *const cmp_target_names[_STORE_CMP_TARGET_MAX] = {
    [STORE_CMP_VERSION] = "VERSION", [STORE_CMP_CREATE] = "CREATE", [STORE_CMP_MOD] = "MOD",
    [STORE_CMP_VALUE] = "VALUE",     [STORE_CMP_LEASE] = "LEASE",
};
static const char *const cmp_target_fields[_STORE_CMP_TARGET_MAX] = {
    [STORE_CMP_VERSION] = "version",  [STORE_CMP_CREATE] = "create_revision",
    [STORE_CMP_MOD] = "mod_revision", [STORE_CMP_VALUE] = "value",
    [STORE_CMP_LEASE] = "lease",
};
static const char *const cmp_op_names[_STORE_CMP_OP_MAX] = {
    [STORE_CMP_EQUAL] = "EQUAL",
    [STORE_CMP_NOT_EQUAL] = "NOT_EQUAL",
    [STORE_CMP_LESS] = "LESS",
    [STORE_CMP_GREATER] = "GREATER",
};

static json_t *compare_new(const char *key, store_cmp_target target, store_cmp_op op)
{
    json_t *c = json_object();
    json_object_set_new(c, "key", key_field(key));
    json_object_set_new(c, "target", json_string(cmp_target_names[target]));
    json_object_set_new(c, "result", json_string(cmp_op_names[op]));
    return c;
}

void store_txn_compare(store_txn *t, const char *key, store_cmp_target target, store_cmp_op op,
                       int64_t value)
{
    json_t *c = compare_new(key, target, op);
    json_object_set_new(c, cmp_target_fields[target], store_json_int(value));
    json_array_append_new(t->compare, c);
}

void store_txn_compare_value(store_txn *t, const char *key, store_cmp_op op, const void *value,
                             size_t len)
{
    json_t *c = compare_new(key, STORE_CMP_VALUE, op);
    json_object_set_new(c, "value", store_json_b64(value, len));
    json_array_append_new(t->compare, c);
}

static void txn_add(store_txn *t, store_branch b, const char *op, json_t *req)
{
    json_t *wrapper = json_object();
    json_object_set_new(wrapper, op, req);
    json_array_append_new(b == STORE_ON_SUCCESS ? t->success : t->failure, wrapper);
}

void store_txn_put(store_txn *t, store_branch b, const char *key, const void *value, size_t len,
                   int64_t lease, unsigned flags)
{
    txn_add(t, b, "request_put", put_request(key, value ? value : "", len, lease, flags));
}

void store_txn_get(store_txn *t, store_branch b, const char *key, const char *range_end)
{
    store_range_opts o = {.key = key, .range_end = range_end};
    txn_add(t, b, "request_range", store_json_range_request(&o));
}

void store_txn_delete(store_txn *t, store_branch b, const char *key, const char *range_end,
                      unsigned flags)
{
    txn_add(t, b, "request_delete_range", delete_request(key, range_end, flags));
}

size_t store_txn_ops(const store_txn *t)
{
    return json_array_size(t->success) + json_array_size(t->failure);
}

json_t *store_txn_request(const store_txn *t)
{
    json_t *body = json_object();
    json_object_set(body, "compare", t->compare);
    json_object_set(body, "success", t->success);
    json_object_set(body, "failure", t->failure);
    return body;
}

int store_txn_commit(store *s, const store_txn *t, store_cb cb, void *userdata)
{
    if (!t || !cb)
        return -EINVAL;
    return store_submit(s, STORE_KIND_TXN, STORE_SHAPE_PLAIN, store_txn_request(t), cb, userdata);
}

/* A one-key compare-then-put/delete whose failure branch reads the key back. */
static int submit_guarded(store *s, store_txn *t, const char *key, store_shape shape, store_cb cb,
                          void *userdata)
{
    store_txn_get(t, STORE_ON_FAILURE, key, NULL);
    int e = store_submit(s, STORE_KIND_TXN, shape, store_txn_request(t), cb, userdata);
    store_txn_free(t);
    return e;
}

int store_create(store *s, const char *key, const void *value, size_t len, int64_t lease,
                 store_cb cb, void *userdata)
{
    if (!key || (!value && len) || !cb)
        return -EINVAL;
    store_txn *t = store_txn_new();
    store_txn_compare(t, key, STORE_CMP_CREATE, STORE_CMP_EQUAL, 0);
    store_txn_put(t, STORE_ON_SUCCESS, key, value, len, lease, 0);
    return submit_guarded(s, t, key, STORE_SHAPE_CREATE, cb, userdata);
}

int store_update(store *s, const char *key, const void *value, size_t len, int64_t mod_revision,
                 int64_t lease, store_cb cb, void *userdata)
{
    if (!key || (!value && len) || mod_revision <= 0 || !cb)
        return -EINVAL;
    store_txn *t = store_txn_new();
    store_txn_compare(t, key, STORE_CMP_MOD, STORE_CMP_EQUAL, mod_revision);
    store_txn_put(t, STORE_ON_SUCCESS, key, value, len, lease, 0);
    return submit_guarded(s, t, key, STORE_SHAPE_CAS, cb, userdata);
}

int store_delete(store *s, const char *key, int64_t mod_revision, store_cb cb, void *userdata)
{
    if (!key || mod_revision < 0 || !cb)
        return -EINVAL;
    if (mod_revision == 0)
        return store_submit(s, STORE_KIND_DELETE, STORE_SHAPE_DELETE, delete_request(key, NULL, 0),
                            cb, userdata);
    store_txn *t = store_txn_new();
    store_txn_compare(t, key, STORE_CMP_MOD, STORE_CMP_EQUAL, mod_revision);
    store_txn_delete(t, STORE_ON_SUCCESS, key, NULL, 0);
    return submit_guarded(s, t, key, STORE_SHAPE_DELETE, cb, userdata);
}

int store_delete_range(store *s, const char *key, const char *range_end, unsigned flags,
                       store_cb cb, void *userdata)
{
    if (!key || !cb)
        return -EINVAL;
    return store_submit(s, STORE_KIND_DELETE, STORE_SHAPE_PLAIN,
                        delete_request(key, range_end, flags), cb, userdata);
}

int store_delete_prefix(store *s, const char *prefix, store_cb cb, void *userdata)
{
    if (!prefix || !*prefix)
        return -EINVAL; /* an empty prefix would delete the whole keyspace */
    _cleanup_free_ char *end = store_prefix_end(prefix);
    return store_delete_range(s, prefix, end, 0, cb, userdata);
}

int store_compact(store *s, int64_t revision, bool physical, store_cb cb, void *userdata)
{
    if (revision <= 0 || !cb)
        return -EINVAL;
    json_t *req = json_object();
    json_object_set_new(req, "revision", store_json_int(revision));
    if (physical)
        json_object_set_new(req, "physical", json_true());
    return store_submit(s, STORE_KIND_COMPACT, STORE_SHAPE_PLAIN, req, cb, userdata);
}

int store_status(store *s, store_cb cb, void *userdata)
{
    if (!cb)
        return -EINVAL;
    return store_submit(s, STORE_KIND_STATUS, STORE_SHAPE_PLAIN, json_object(), cb, userdata);
}

static json_t *lease_request(int64_t id)
{
    json_t *req = json_object();
    json_object_set_new(req, "ID", store_json_int(id));
    return req;
}

int store_lease_grant(store *s, int64_t ttl_seconds, store_cb cb, void *userdata)
{
    if (ttl_seconds <= 0 || !cb)
        return -EINVAL;
    json_t *req = json_object();
    json_object_set_new(req, "TTL", store_json_int(ttl_seconds));
    return store_submit(s, STORE_KIND_LEASE_GRANT, STORE_SHAPE_PLAIN, req, cb, userdata);
}

int store_lease_keepalive(store *s, int64_t lease_id, store_cb cb, void *userdata)
{
    if (lease_id <= 0 || !cb)
        return -EINVAL;
    return store_submit(s, STORE_KIND_LEASE_KEEPALIVE, STORE_SHAPE_PLAIN, lease_request(lease_id),
                        cb, userdata);
}

int store_lease_revoke(store *s, int64_t lease_id, store_cb cb, void *userdata)
{
    if (lease_id <= 0 || !cb)
        return -EINVAL;
    return store_submit(s, STORE_KIND_LEASE_REVOKE, STORE_SHAPE_PLAIN, lease_request(lease_id), cb,
                        userdata);
}

int store_lease_ttl(store *s, int64_t lease_id, store_cb cb, void *userdata)
{
    if (lease_id <= 0 || !cb)
        return -EINVAL;
    return store_submit(s, STORE_KIND_LEASE_TTL, STORE_SHAPE_PLAIN, lease_request(lease_id), cb,
                        userdata);
}

const char *store_strerror(int error)
{
    switch (error) {
    case 0:
        return "ok";
    case -ENOENT:
        return "not found";
    case -EEXIST:
        return "already exists";
    case -ESTALE:
        return "compare failed: the revision changed";
    case -ERANGE:
        return "revision compacted: relist";
    case -ETIME:
        return "lease expired";
    case -EHOSTDOWN:
        return "etcd unavailable";
    case -ETIMEDOUT:
        return "etcd request timed out";
    case -ECONNRESET:
        return "connection to etcd lost mid-request";
    case -EMSGSIZE:
        return "request or response too large";
    case -E2BIG:
        return "too many operations in one transaction";
    case -EBADMSG:
        return "malformed response from etcd";
    case -EINVAL:
        return "invalid request";
    case -EPROTO:
        return "etcd error";
    default:
        return strerror(-error);
    }
}

bool store_error_is_unavailable(int error)
{
    return error == -EHOSTDOWN || error == -ETIMEDOUT || error == -ECONNRESET;
}
