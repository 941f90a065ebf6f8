/* The store's operations: each describes its request once (store-internal.h: raw keys and values,
 * compares, transaction branches) and submits the description to the engine, which encodes it
 * (JSON for the gateway, protobuf for gRPC). Every semantic decision lives here. create, update
 * and conditional delete are transactions underneath whose failure branch reads the key, so a
 * lost compare comes back with the current value in one round trip. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "engine.h"

static store_bytes str_bytes(const char *s)
{
    return (store_bytes){.data = s, .len = strlen(s)};
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

store_bytes store_range_end(const char *range_end)
{
    if (!range_end)
        return (store_bytes){0};
    /* etcd reads range_end "\0" as "to the end of the keyspace". */
    return *range_end ? str_bytes(range_end) : (store_bytes){.data = "", .len = 1};
}

store_range_req store_range_request(const store_range_opts *o)
{
    return (store_range_req){
        /* after: the key followed by a 0 byte (its terminator), the next possible key */
        .key = o->after ? (store_bytes){.data = o->after, .len = strlen(o->after) + 1}
                        : str_bytes(o->key),
        .range_end = store_range_end(o->range_end),
        .limit = o->limit,
        .revision = o->revision,
        .keys_only = o->keys_only,
        .count_only = o->count_only,
        .serializable = o->serializable,
    };
}

int store_range(store *s, const store_range_opts *o, store_cb cb, void *userdata)
{
    if (!o || !o->key || !cb || o->limit < 0 || o->revision < 0)
        return -EINVAL;
    store_request r = {.kind = STORE_KIND_RANGE, .range = store_range_request(o)};
    return store_submit(s, &r, STORE_SHAPE_PLAIN, cb, userdata);
}

int store_get(store *s, const char *key, store_cb cb, void *userdata)
{
    if (!key || !cb)
        return -EINVAL;
    store_request r = {.kind = STORE_KIND_RANGE, .range = {.key = str_bytes(key)}};
    return store_submit(s, &r, STORE_SHAPE_GET, cb, userdata);
}

static store_put_req put_request(const char *key, const void *value, size_t len, int64_t lease,
                                 unsigned flags)
{
    return (store_put_req){
        .key = str_bytes(key),
        .value = {.data = value, .len = len},
        .lease = lease,
        .prev_kv = (flags & STORE_PREV_KV) != 0,
        .ignore_lease = (flags & STORE_IGNORE_LEASE) != 0,
    };
}

static store_delete_req delete_request(const char *key, const char *range_end, unsigned flags)
{
    return (store_delete_req){
        .key = str_bytes(key),
        .range_end = store_range_end(range_end),
        .prev_kv = (flags & STORE_PREV_KV) != 0,
    };
}

int store_put(store *s, const char *key, const void *value, size_t len, int64_t lease,
              unsigned flags, store_cb cb, void *userdata)
{
    if (!key || (!value && len) || !cb)
        return -EINVAL;
    store_request r = {.kind = STORE_KIND_PUT, .put = put_request(key, value, len, lease, flags)};
    return store_submit(s, &r, STORE_SHAPE_PLAIN, cb, userdata);
}

/* ---- transactions: a store_txn owns copies of its keys and values, since the caller may
 * change its buffers before committing. */

struct store_txn {
    store_compare *compare;
    size_t n_compare, cap_compare;
    store_op *ops[2]; /* by store_branch */
    size_t n_ops[2], cap_ops[2];
};

store_txn *store_txn_new(void)
{
    return xnew(store_txn, 1);
}

static store_bytes bytes_dup(store_bytes b)
{
    return b.len ? (store_bytes){.data = xmemdup(b.data, b.len), .len = b.len} : (store_bytes){0};
}

static void bytes_free(store_bytes b)
{
    free((void *)b.data);
}

static void op_free(store_op *op)
{
    switch (op->kind) {
    case STORE_KIND_RANGE:
        bytes_free(op->range.key);
        bytes_free(op->range.range_end);
        break;
    case STORE_KIND_PUT:
        bytes_free(op->put.key);
        bytes_free(op->put.value);
        break;
    default:
        bytes_free(op->del.key);
        bytes_free(op->del.range_end);
        break;
    }
}

store_txn *store_txn_free(store_txn *t)
{
    if (!t)
        return NULL;
    for (size_t i = 0; i < t->n_compare; i++) {
        bytes_free(t->compare[i].key);
        bytes_free(t->compare[i].value);
    }
    free(t->compare);
    for (size_t b = 0; b < 2; b++) {
        for (size_t i = 0; i < t->n_ops[b]; i++)
            op_free(&t->ops[b][i]);
        free(t->ops[b]);
    }
    free(t);
    return NULL;
}

static void compare_add(store_txn *t, store_compare c)
{
    c.key = bytes_dup(c.key);
    c.value = bytes_dup(c.value);
    t->compare = xgrow(t->compare, &t->cap_compare, t->n_compare + 1, sizeof(*t->compare));
    t->compare[t->n_compare++] = c;
}

void store_txn_compare(store_txn *t, const char *key, store_cmp_target target, store_cmp_op op,
                       int64_t value)
{
    compare_add(
        t, (store_compare){.key = str_bytes(key), .target = target, .op = op, .number = value});
}

void store_txn_compare_value(store_txn *t, const char *key, store_cmp_op op, const void *value,
                             size_t len)
{
    compare_add(t, (store_compare){.key = str_bytes(key),
                                   .target = STORE_CMP_VALUE,
                                   .op = op,
                                   .value = {.data = value, .len = len}});
}

static void op_add(store_txn *t, store_branch b, store_op op)
{
    switch (op.kind) {
    case STORE_KIND_RANGE:
        op.range.key = bytes_dup(op.range.key);
        op.range.range_end = bytes_dup(op.range.range_end);
        break;
    case STORE_KIND_PUT:
        op.put.key = bytes_dup(op.put.key);
        op.put.value = bytes_dup(op.put.value);
        break;
    default:
        op.del.key = bytes_dup(op.del.key);
        op.del.range_end = bytes_dup(op.del.range_end);
        break;
    }
    size_t i = b == STORE_ON_SUCCESS ? 0 : 1;
    t->ops[i] = xgrow(t->ops[i], &t->cap_ops[i], t->n_ops[i] + 1, sizeof(*t->ops[i]));
    t->ops[i][t->n_ops[i]++] = op;
}

void store_txn_put(store_txn *t, store_branch b, const char *key, const void *value, size_t len,
                   int64_t lease, unsigned flags)
{
    op_add(t, b,
           (store_op){.kind = STORE_KIND_PUT, .put = put_request(key, value, len, lease, flags)});
}

void store_txn_get(store_txn *t, store_branch b, const char *key, const char *range_end)
{
    store_range_opts o = {.key = key, .range_end = range_end};
    op_add(t, b, (store_op){.kind = STORE_KIND_RANGE, .range = store_range_request(&o)});
}

void store_txn_delete(store_txn *t, store_branch b, const char *key, const char *range_end,
                      unsigned flags)
{
    op_add(t, b,
           (store_op){.kind = STORE_KIND_DELETE, .del = delete_request(key, range_end, flags)});
}

size_t store_txn_ops(const store_txn *t)
{
    return t->n_ops[0] + t->n_ops[1];
}

store_txn_req store_txn_request(const store_txn *t)
{
    return (store_txn_req){
        .compare = t->compare,
        .n_compare = t->n_compare,
        .success = t->ops[0],
        .n_success = t->n_ops[0],
        .failure = t->ops[1],
        .n_failure = t->n_ops[1],
    };
}

int store_txn_commit(store *s, const store_txn *t, store_cb cb, void *userdata)
{
    if (!t || !cb)
        return -EINVAL;
    store_request r = {.kind = STORE_KIND_TXN, .txn = store_txn_request(t)};
    return store_submit(s, &r, STORE_SHAPE_PLAIN, cb, userdata);
}

/* A one-key compare-then-`then` whose failure branch reads the key back. Built on the stack over
 * the caller's bytes: nothing is copied. */
static int submit_guarded(store *s, const char *key, store_compare cmp, store_op then,
                          store_shape shape, store_cb cb, void *userdata)
{
    store_op read_back = {.kind = STORE_KIND_RANGE, .range = {.key = str_bytes(key)}};
    store_request r = {
        .kind = STORE_KIND_TXN,
        .txn = {.compare = &cmp,
                .n_compare = 1,
                .success = &then,
                .n_success = 1,
                .failure = &read_back,
                .n_failure = 1},
    };
    return store_submit(s, &r, shape, cb, userdata);
}

int store_create(store *s, const char *key, const void *value, size_t len, int64_t lease,
                 store_cb cb, void *userdata)
{
    if (!key || (!value && len) || !cb)
        return -EINVAL;
    store_compare cmp = {
        .key = str_bytes(key), .target = STORE_CMP_CREATE, .op = STORE_CMP_EQUAL, .number = 0};
    store_op put = {.kind = STORE_KIND_PUT, .put = put_request(key, value, len, lease, 0)};
    return submit_guarded(s, key, cmp, put, STORE_SHAPE_CREATE, cb, userdata);
}

int store_update(store *s, const char *key, const void *value, size_t len, int64_t mod_revision,
                 int64_t lease, store_cb cb, void *userdata)
{
    if (!key || (!value && len) || mod_revision <= 0 || !cb)
        return -EINVAL;
    store_compare cmp = {.key = str_bytes(key),
                         .target = STORE_CMP_MOD,
                         .op = STORE_CMP_EQUAL,
                         .number = mod_revision};
    store_op put = {.kind = STORE_KIND_PUT, .put = put_request(key, value, len, lease, 0)};
    return submit_guarded(s, key, cmp, put, STORE_SHAPE_CAS, cb, userdata);
}

int store_delete(store *s, const char *key, int64_t mod_revision, store_cb cb, void *userdata)
{
    if (!key || mod_revision < 0 || !cb)
        return -EINVAL;
    store_delete_req del = delete_request(key, NULL, 0);
    if (mod_revision == 0) {
        store_request r = {.kind = STORE_KIND_DELETE, .del = del};
        return store_submit(s, &r, STORE_SHAPE_DELETE, cb, userdata);
    }
    store_compare cmp = {.key = str_bytes(key),
                         .target = STORE_CMP_MOD,
                         .op = STORE_CMP_EQUAL,
                         .number = mod_revision};
    return submit_guarded(s, key, cmp, (store_op){.kind = STORE_KIND_DELETE, .del = del},
                          STORE_SHAPE_DELETE, cb, userdata);
}

int store_delete_range(store *s, const char *key, const char *range_end, unsigned flags,
                       store_cb cb, void *userdata)
{
    if (!key || !cb)
        return -EINVAL;
    store_request r = {.kind = STORE_KIND_DELETE, .del = delete_request(key, range_end, flags)};
    return store_submit(s, &r, STORE_SHAPE_PLAIN, cb, userdata);
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
    store_request r = {.kind = STORE_KIND_COMPACT,
                       .compact = {.revision = revision, .physical = physical}};
    return store_submit(s, &r, STORE_SHAPE_PLAIN, cb, userdata);
}

int store_status(store *s, store_cb cb, void *userdata)
{
    if (!cb)
        return -EINVAL;
    store_request r = {.kind = STORE_KIND_STATUS};
    return store_submit(s, &r, STORE_SHAPE_PLAIN, cb, userdata);
}

int store_lease_grant(store *s, int64_t ttl_seconds, store_cb cb, void *userdata)
{
    if (ttl_seconds <= 0 || !cb)
        return -EINVAL;
    store_request r = {.kind = STORE_KIND_LEASE_GRANT, .ttl = ttl_seconds};
    return store_submit(s, &r, STORE_SHAPE_PLAIN, cb, userdata);
}

static int lease_submit(store *s, store_kind kind, int64_t lease_id, store_cb cb, void *userdata)
{
    if (lease_id <= 0 || !cb)
        return -EINVAL;
    store_request r = {.kind = kind, .lease_id = lease_id};
    return store_submit(s, &r, STORE_SHAPE_PLAIN, cb, userdata);
}

int store_lease_keepalive(store *s, int64_t lease_id, store_cb cb, void *userdata)
{
    return lease_submit(s, STORE_KIND_LEASE_KEEPALIVE, lease_id, cb, userdata);
}

int store_lease_revoke(store *s, int64_t lease_id, store_cb cb, void *userdata)
{
    return lease_submit(s, STORE_KIND_LEASE_REVOKE, lease_id, cb, userdata);
}

int store_lease_ttl(store *s, int64_t lease_id, store_cb cb, void *userdata)
{
    return lease_submit(s, STORE_KIND_LEASE_TTL, lease_id, cb, userdata);
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
