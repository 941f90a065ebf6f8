/* The gateway engine's request bodies: ops.c's descriptions written as the JSON etcd's gateway
 * takes — bytes as base64, 64-bit numbers as strings, zero fields left out. Pure (no network),
 * so unit-tested. What a request means is decided in ops.c; this file only spells it. */
#include <stdio.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "base/b64.h"
#include "store-internal.h"

static void set_bytes(json_t *o, const char *name, store_bytes b)
{
    if (b.len == 0)
        return;
    char *e = b64_encode(b.data, b.len);
    json_object_set_new_nocheck(o, name, json_string_nocheck(e));
    free(e);
}

static void set_int(json_t *o, const char *name, int64_t v)
{
    char n[24];
    snprintf(n, sizeof(n), "%lld", (long long)v);
    json_object_set_new_nocheck(o, name, json_string_nocheck(n));
}

static void set_int_nonzero(json_t *o, const char *name, int64_t v)
{
    if (v)
        set_int(o, name, v);
}

static void set_true(json_t *o, const char *name, bool v)
{
    if (v)
        json_object_set_new_nocheck(o, name, json_true());
}

static json_t *range_json(const store_range_req *r)
{
    json_t *o = json_object();
    set_bytes(o, "key", r->key);
    set_bytes(o, "range_end", r->range_end);
    set_int_nonzero(o, "limit", r->limit);
    set_int_nonzero(o, "revision", r->revision);
    set_true(o, "keys_only", r->keys_only);
    set_true(o, "count_only", r->count_only);
    set_true(o, "serializable", r->serializable);
    return o;
}

static json_t *put_json(const store_put_req *r)
{
    json_t *o = json_object();
    set_bytes(o, "key", r->key);
    set_bytes(o, "value", r->value);
    set_int_nonzero(o, "lease", r->lease);
    set_true(o, "prev_kv", r->prev_kv);
    set_true(o, "ignore_lease", r->ignore_lease);
    return o;
}

static json_t *delete_json(const store_delete_req *r)
{
    json_t *o = json_object();
    set_bytes(o, "key", r->key);
    set_bytes(o, "range_end", r->range_end);
    set_true(o, "prev_kv", r->prev_kv);
    return o;
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

static json_t *compare_json(const store_compare *c)
{
    if ((unsigned)c->target >= _STORE_CMP_TARGET_MAX || (unsigned)c->op >= _STORE_CMP_OP_MAX)
        return NULL;
    json_t *o = json_object();
    set_bytes(o, "key", c->key);
    json_object_set_new_nocheck(o, "target", json_string_nocheck(cmp_target_names[c->target]));
    json_object_set_new_nocheck(o, "result", json_string_nocheck(cmp_op_names[c->op]));
    /* The compared field is one member of a oneof: sent even when zero ("not created yet"). */
    if (c->target == STORE_CMP_VALUE) {
        char *e = b64_encode(c->value.data, c->value.len);
        json_object_set_new_nocheck(o, "value", json_string_nocheck(e));
        free(e);
    } else
        set_int(o, cmp_target_fields[c->target], c->number);
    return o;
}

static json_t *ops_json(const store_op *ops, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *w = json_object();
        switch (ops[i].kind) {
        case STORE_KIND_RANGE:
            json_object_set_new_nocheck(w, "request_range", range_json(&ops[i].range));
            break;
        case STORE_KIND_PUT:
            json_object_set_new_nocheck(w, "request_put", put_json(&ops[i].put));
            break;
        case STORE_KIND_DELETE:
            json_object_set_new_nocheck(w, "request_delete_range", delete_json(&ops[i].del));
            break;
        default:
            json_decref(w);
            json_decref(arr);
            return NULL;
        }
        json_array_append_new(arr, w);
    }
    return arr;
}

static json_t *txn_json(const store_txn_req *t)
{
    json_t *cmp = json_array();
    for (size_t i = 0; i < t->n_compare; i++) {
        json_t *c = compare_json(&t->compare[i]);
        if (!c) {
            json_decref(cmp);
            return NULL;
        }
        json_array_append_new(cmp, c);
    }
    json_t *success = ops_json(t->success, t->n_success);
    json_t *failure = ops_json(t->failure, t->n_failure);
    if (!success || !failure) {
        json_decref(cmp);
        json_decref(success);
        json_decref(failure);
        return NULL;
    }
    json_t *o = json_object();
    json_object_set_new_nocheck(o, "compare", cmp);
    json_object_set_new_nocheck(o, "success", success);
    json_object_set_new_nocheck(o, "failure", failure);
    return o;
}

json_t *store_gateway_request(const store_request *r)
{
    json_t *o;
    switch (r->kind) {
    case STORE_KIND_RANGE:
        return range_json(&r->range);
    case STORE_KIND_PUT:
        return put_json(&r->put);
    case STORE_KIND_DELETE:
        return delete_json(&r->del);
    case STORE_KIND_TXN:
        return txn_json(&r->txn);
    case STORE_KIND_COMPACT:
        o = json_object();
        set_int(o, "revision", r->compact.revision);
        set_true(o, "physical", r->compact.physical);
        return o;
    case STORE_KIND_LEASE_GRANT:
        o = json_object();
        set_int(o, "TTL", r->ttl);
        return o;
    case STORE_KIND_LEASE_KEEPALIVE:
    case STORE_KIND_LEASE_REVOKE:
    case STORE_KIND_LEASE_TTL:
        o = json_object();
        set_int(o, "ID", r->lease_id);
        return o;
    case STORE_KIND_STATUS:
        return json_object();
    default:
        return NULL;
    }
}

json_t *store_gateway_watch_request(const store_watch_req *w)
{
    json_t *create = json_object();
    set_bytes(create, "key", w->key);
    set_bytes(create, "range_end", w->range_end);
    set_int_nonzero(create, "start_revision", w->start_revision);
    set_true(create, "prev_kv", w->prev_kv);
    set_true(create, "progress_notify", w->progress_notify);
    set_true(create, "fragment", w->fragment);
    json_t *req = json_object();
    json_object_set_new_nocheck(req, "create_request", create);
    return req;
}
