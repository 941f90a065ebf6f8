/* The gRPC engine's conversions, pure: requests from ops.c's descriptions, replies into store
 * results, watch replies into watch messages, statuses into errors. Replies come from the
 * network: keys are checked (no embedded NUL), events must be in revision order, a reply of the
 * wrong type is -EBADMSG. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/b64.h"
#include "grpc-internal.h"

static const store_grpc_method methods[_STORE_KIND_MAX] = {
    [STORE_KIND_RANGE] = {"/etcdserverpb.KV/Range", &etcdserverpb__range_response__descriptor},
    [STORE_KIND_PUT] = {"/etcdserverpb.KV/Put", &etcdserverpb__put_response__descriptor},
    [STORE_KIND_DELETE] = {"/etcdserverpb.KV/DeleteRange",
                           &etcdserverpb__delete_range_response__descriptor},
    [STORE_KIND_TXN] = {"/etcdserverpb.KV/Txn", &etcdserverpb__txn_response__descriptor},
    [STORE_KIND_COMPACT] = {"/etcdserverpb.KV/Compact",
                            &etcdserverpb__compaction_response__descriptor},
    [STORE_KIND_LEASE_GRANT] = {"/etcdserverpb.Lease/LeaseGrant",
                                &etcdserverpb__lease_grant_response__descriptor},
    [STORE_KIND_LEASE_KEEPALIVE] = {"/etcdserverpb.Lease/LeaseKeepAlive",
                                    &etcdserverpb__lease_keep_alive_response__descriptor},
    [STORE_KIND_LEASE_REVOKE] = {"/etcdserverpb.Lease/LeaseRevoke",
                                 &etcdserverpb__lease_revoke_response__descriptor},
    [STORE_KIND_LEASE_TTL] = {"/etcdserverpb.Lease/LeaseTimeToLive",
                              &etcdserverpb__lease_time_to_live_response__descriptor},
    [STORE_KIND_STATUS] = {"/etcdserverpb.Maintenance/Status",
                           &etcdserverpb__status_response__descriptor},
};

const store_grpc_method *store_grpc_method_of(store_kind k)
{
    return (unsigned)k < _STORE_KIND_MAX ? &methods[k] : NULL;
}

/* ---- requests: ops.c writes bytes as base64 and 64-bit numbers as strings, for the gateway */

static int field_bytes(json_t *o, const char *name, ProtobufCBinaryData *ret)
{
    json_t *v = json_object_get(o, name);
    if (!v)
        return 0;
    char *data;
    size_t len;
    if (!json_is_string(v) ||
        b64_decode(json_string_value(v), json_string_length(v), &data, &len) < 0)
        return -EINVAL;
    *ret = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)data};
    return 0;
}

static int field_int(json_t *o, const char *name, int64_t *ret)
{
    return store_json_int64(json_object_get(o, name), ret) < 0 ? -EINVAL : 0;
}

static protobuf_c_boolean field_bool(json_t *o, const char *name)
{
    return json_is_true(json_object_get(o, name));
}

static int range_request(json_t *o, Etcdserverpb__RangeRequest **ret)
{
    Etcdserverpb__RangeRequest *m = xnew(Etcdserverpb__RangeRequest, 1);
    etcdserverpb__range_request__init(m);
    *ret = m;
    m->serializable = field_bool(o, "serializable");
    m->keys_only = field_bool(o, "keys_only");
    m->count_only = field_bool(o, "count_only");
    return field_bytes(o, "key", &m->key) < 0 || field_bytes(o, "range_end", &m->range_end) < 0 ||
                   field_int(o, "limit", &m->limit) < 0 ||
                   field_int(o, "revision", &m->revision) < 0
               ? -EINVAL
               : 0;
}

static int put_request(json_t *o, Etcdserverpb__PutRequest **ret)
{
    Etcdserverpb__PutRequest *m = xnew(Etcdserverpb__PutRequest, 1);
    etcdserverpb__put_request__init(m);
    *ret = m;
    m->prev_kv = field_bool(o, "prev_kv");
    m->ignore_lease = field_bool(o, "ignore_lease");
    return field_bytes(o, "key", &m->key) < 0 || field_bytes(o, "value", &m->value) < 0 ||
                   field_int(o, "lease", &m->lease) < 0
               ? -EINVAL
               : 0;
}

static int delete_request(json_t *o, Etcdserverpb__DeleteRangeRequest **ret)
{
    Etcdserverpb__DeleteRangeRequest *m = xnew(Etcdserverpb__DeleteRangeRequest, 1);
    etcdserverpb__delete_range_request__init(m);
    *ret = m;
    m->prev_kv = field_bool(o, "prev_kv");
    return field_bytes(o, "key", &m->key) < 0 || field_bytes(o, "range_end", &m->range_end) < 0
               ? -EINVAL
               : 0;
}

static int compare_from(json_t *o, Etcdserverpb__Compare **ret)
{
    static const char *const targets[] = {"VERSION", "CREATE", "MOD", "VALUE", "LEASE"};
    static const char *const fields[] = {"version", "create_revision", "mod_revision", "value",
                                         "lease"};
    static const struct {
        const char *name;
        Etcdserverpb__Compare__CompareResult op;
    } results[] = {
        {"EQUAL", ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL},
        {"GREATER", ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER},
        {"LESS", ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS},
        {"NOT_EQUAL", ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL},
    };
    Etcdserverpb__Compare *m = xnew(Etcdserverpb__Compare, 1);
    etcdserverpb__compare__init(m);
    *ret = m;
    const char *target = json_string_value(json_object_get(o, "target"));
    const char *result = json_string_value(json_object_get(o, "result"));
    if (!target || !result || field_bytes(o, "key", &m->key) < 0)
        return -EINVAL;
    size_t t = 0, r = 0;
    while (t < ELEMENTSOF(targets) && !streq(target, targets[t]))
        t++;
    while (r < ELEMENTSOF(results) && !streq(result, results[r].name))
        r++;
    if (t == ELEMENTSOF(targets) || r == ELEMENTSOF(results))
        return -EINVAL;
    /* The generated enums and oneof cases follow etcd's numbering: target t is oneof field 4 + t.
     */
    m->target = (Etcdserverpb__Compare__CompareTarget)t;
    m->result = results[r].op;
    m->target_union_case = (Etcdserverpb__Compare__TargetUnionCase)(4 + t);
    if (t == 3)
        return field_bytes(o, fields[t], &m->value);
    return field_int(o, fields[t], &m->version); /* every int64 member shares the union's slot */
}

static int request_op_from(json_t *o, Etcdserverpb__RequestOp **ret)
{
    Etcdserverpb__RequestOp *m = xnew(Etcdserverpb__RequestOp, 1);
    etcdserverpb__request_op__init(m);
    *ret = m;
    json_t *body;
    if ((body = json_object_get(o, "request_range"))) {
        m->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
        return range_request(body, &m->request_range);
    }
    if ((body = json_object_get(o, "request_put"))) {
        m->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        return put_request(body, &m->request_put);
    }
    if ((body = json_object_get(o, "request_delete_range"))) {
        m->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
        return delete_request(body, &m->request_delete_range);
    }
    return -EINVAL;
}

static int txn_ops(json_t *arr, Etcdserverpb__RequestOp ***ret, size_t *ret_n)
{
    size_t n = json_array_size(arr);
    *ret = xnew(Etcdserverpb__RequestOp *, n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        *ret_n = i + 1; /* counted before filling, so a half-built op is freed too */
        if (request_op_from(json_array_get(arr, i), &(*ret)[i]) < 0)
            return -EINVAL;
    }
    return 0;
}

static int txn_request(json_t *o, Etcdserverpb__TxnRequest **ret)
{
    Etcdserverpb__TxnRequest *m = xnew(Etcdserverpb__TxnRequest, 1);
    etcdserverpb__txn_request__init(m);
    *ret = m;
    json_t *cmp = json_object_get(o, "compare");
    size_t n = json_array_size(cmp);
    m->compare = xnew(Etcdserverpb__Compare *, n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        m->n_compare = i + 1;
        if (compare_from(json_array_get(cmp, i), &m->compare[i]) < 0)
            return -EINVAL;
    }
    return txn_ops(json_object_get(o, "success"), &m->success, &m->n_success) < 0 ||
                   txn_ops(json_object_get(o, "failure"), &m->failure, &m->n_failure) < 0
               ? -EINVAL
               : 0;
}

static int lease_id_request(store_kind k, json_t *o, ProtobufCMessage **ret)
{
    int64_t id;
    if (field_int(o, "ID", &id) < 0)
        return -EINVAL;
    switch (k) {
    case STORE_KIND_LEASE_KEEPALIVE: {
        Etcdserverpb__LeaseKeepAliveRequest *m = xnew(Etcdserverpb__LeaseKeepAliveRequest, 1);
        etcdserverpb__lease_keep_alive_request__init(m);
        m->id = id;
        *ret = &m->base;
        return 0;
    }
    case STORE_KIND_LEASE_REVOKE: {
        Etcdserverpb__LeaseRevokeRequest *m = xnew(Etcdserverpb__LeaseRevokeRequest, 1);
        etcdserverpb__lease_revoke_request__init(m);
        m->id = id;
        *ret = &m->base;
        return 0;
    }
    default: {
        Etcdserverpb__LeaseTimeToLiveRequest *m = xnew(Etcdserverpb__LeaseTimeToLiveRequest, 1);
        etcdserverpb__lease_time_to_live_request__init(m);
        m->id = id;
        *ret = &m->base;
        return 0;
    }
    }
}

int store_grpc_request(store_kind k, json_t *body, ProtobufCMessage **ret)
{
    if (!json_is_object(body))
        return -EINVAL;
    ProtobufCMessage *m = NULL;
    int e;
    switch (k) {
    case STORE_KIND_RANGE:
        e = range_request(body, (Etcdserverpb__RangeRequest **)&m);
        break;
    case STORE_KIND_PUT:
        e = put_request(body, (Etcdserverpb__PutRequest **)&m);
        break;
    case STORE_KIND_DELETE:
        e = delete_request(body, (Etcdserverpb__DeleteRangeRequest **)&m);
        break;
    case STORE_KIND_TXN:
        e = txn_request(body, (Etcdserverpb__TxnRequest **)&m);
        break;
    case STORE_KIND_COMPACT: {
        Etcdserverpb__CompactionRequest *c = xnew(Etcdserverpb__CompactionRequest, 1);
        etcdserverpb__compaction_request__init(c);
        c->physical = field_bool(body, "physical");
        m = &c->base;
        e = field_int(body, "revision", &c->revision);
        break;
    }
    case STORE_KIND_LEASE_GRANT: {
        Etcdserverpb__LeaseGrantRequest *g = xnew(Etcdserverpb__LeaseGrantRequest, 1);
        etcdserverpb__lease_grant_request__init(g);
        m = &g->base;
        e = field_int(body, "TTL", &g->ttl);
        break;
    }
    case STORE_KIND_LEASE_KEEPALIVE:
    case STORE_KIND_LEASE_REVOKE:
    case STORE_KIND_LEASE_TTL:
        e = lease_id_request(k, body, &m);
        break;
    case STORE_KIND_STATUS: {
        Etcdserverpb__StatusRequest *st = xnew(Etcdserverpb__StatusRequest, 1);
        etcdserverpb__status_request__init(st);
        m = &st->base;
        e = 0;
        break;
    }
    default:
        return -EINVAL;
    }
    if (e < 0) {
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        return -EINVAL;
    }
    *ret = m;
    return 0;
}

/* ---- replies */

static int kv_from(const Mvccpb__KeyValue *in, store_kv *ret)
{
    if (!in)
        return -EBADMSG;
    /* Keys are handed out as C strings; an embedded NUL would silently truncate one. */
    if (in->key.len && memchr(in->key.data, '\0', in->key.len))
        return -EBADMSG;
    store_kv kv = {
        .key = xmalloc(in->key.len + 1),
        .key_len = in->key.len,
        .value = xmalloc(in->value.len + 1),
        .value_len = in->value.len,
        .create_revision = in->create_revision,
        .mod_revision = in->mod_revision,
        .version = in->version,
        .lease = in->lease,
    };
    if (in->key.len)
        memcpy(kv.key, in->key.data, in->key.len);
    kv.key[in->key.len] = '\0';
    if (in->value.len)
        memcpy(kv.value, in->value.data, in->value.len);
    kv.value[in->value.len] = '\0';
    *ret = kv;
    return 0;
}

static int kvs_from(Mvccpb__KeyValue *const *in, size_t n, store_result *r)
{
    if (n == 0)
        return 0;
    r->kvs = xnew(store_kv, n);
    for (size_t i = 0; i < n; i++) {
        if (kv_from(in[i], &r->kvs[i]) < 0)
            return -EBADMSG;
        r->n_kvs = i + 1;
    }
    return 0;
}

static int64_t header_revision(const Etcdserverpb__ResponseHeader *h)
{
    return h ? h->revision : 0;
}

static int range_from(const Etcdserverpb__RangeResponse *m, store_result *r)
{
    r->more = m->more;
    r->count = m->count;
    return kvs_from(m->kvs, m->n_kvs, r);
}

static int put_from(const Etcdserverpb__PutResponse *m, store_result *r)
{
    return m->prev_kv ? kvs_from(&m->prev_kv, 1, r) : 0;
}

static int delete_from(const Etcdserverpb__DeleteRangeResponse *m, store_result *r)
{
    if (m->deleted < 0)
        return -EBADMSG;
    r->deleted = m->deleted;
    return kvs_from(m->prev_kvs, m->n_prev_kvs, r);
}

static int txn_from(const Etcdserverpb__TxnResponse *m, store_result *r)
{
    r->succeeded = m->succeeded;
    if (m->n_responses == 0)
        return 0;
    r->responses = xnew(store_result, m->n_responses);
    for (size_t i = 0; i < m->n_responses; i++) {
        const Etcdserverpb__ResponseOp *op = m->responses[i];
        store_result *sub = &r->responses[i];
        r->n_responses = i + 1;
        sub->revision = r->revision;
        int e;
        switch (op->response_case) {
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE:
            e = range_from(op->response_range, sub);
            break;
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT:
            e = put_from(op->response_put, sub);
            break;
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE:
            e = delete_from(op->response_delete_range, sub);
            break;
        default:
            e = -EBADMSG; /* a nested txn we never send, or nothing */
        }
        if (e < 0)
            return e;
    }
    return 0;
}

static int response_body(store_kind k, const ProtobufCMessage *msg, store_result *r)
{
    const store_grpc_method *meth = store_grpc_method_of(k);
    if (!meth || !msg || msg->descriptor != meth->reply)
        return -EBADMSG;
    switch (k) {
    case STORE_KIND_RANGE: {
        const Etcdserverpb__RangeResponse *m = (const void *)msg;
        r->revision = header_revision(m->header);
        return range_from(m, r);
    }
    case STORE_KIND_PUT: {
        const Etcdserverpb__PutResponse *m = (const void *)msg;
        r->revision = header_revision(m->header);
        return put_from(m, r);
    }
    case STORE_KIND_DELETE: {
        const Etcdserverpb__DeleteRangeResponse *m = (const void *)msg;
        r->revision = header_revision(m->header);
        return delete_from(m, r);
    }
    case STORE_KIND_TXN: {
        const Etcdserverpb__TxnResponse *m = (const void *)msg;
        r->revision = header_revision(m->header);
        return txn_from(m, r);
    }
    case STORE_KIND_COMPACT:
        r->revision = header_revision(((const Etcdserverpb__CompactionResponse *)msg)->header);
        return 0;
    case STORE_KIND_LEASE_GRANT: {
        const Etcdserverpb__LeaseGrantResponse *m = (const void *)msg;
        r->revision = header_revision(m->header);
        r->lease_id = m->id;
        r->ttl = m->ttl;
        return 0;
    }
    case STORE_KIND_LEASE_KEEPALIVE: {
        const Etcdserverpb__LeaseKeepAliveResponse *m = (const void *)msg;
        r->revision = header_revision(m->header);
        r->lease_id = m->id;
        r->ttl = m->ttl;
        return r->ttl <= 0 ? -ETIME : 0; /* an expired lease is renewed to TTL 0 */
    }
    case STORE_KIND_LEASE_REVOKE:
        r->revision = header_revision(((const Etcdserverpb__LeaseRevokeResponse *)msg)->header);
        return 0;
    case STORE_KIND_LEASE_TTL: {
        const Etcdserverpb__LeaseTimeToLiveResponse *m = (const void *)msg;
        r->revision = header_revision(m->header);
        r->lease_id = m->id;
        r->ttl = m->ttl;
        return r->ttl < 0 ? -ETIME : 0;
    }
    case STORE_KIND_STATUS:
        r->revision = header_revision(((const Etcdserverpb__StatusResponse *)msg)->header);
        return 0;
    default:
        return -EBADMSG;
    }
}

int store_grpc_response(store_kind k, const ProtobufCMessage *msg, store_result *r)
{
    int e = response_body(k, msg, r);
    if (e < 0) {
        /* A half-filled result must not reach the caller. */
        int64_t rev = r->revision;
        store_result_clear(r);
        r->revision = rev;
        r->error = e;
        if (e == -ETIME)
            r->message = xstrdup("lease expired or not found");
    }
    return e;
}

int store_grpc_watch_msg(const Etcdserverpb__WatchResponse *resp, store_watch_msg *ret)
{
    store_watch_msg m = {
        .created = resp->created,
        .canceled = resp->canceled,
        .compact_revision = resp->compact_revision,
        .revision = header_revision(resp->header),
    };
    if (resp->cancel_reason && *resp->cancel_reason)
        m.cancel_reason = xstrdup(resp->cancel_reason);
    if (resp->n_events)
        m.events = xnew(store_event, resp->n_events);
    int64_t last = 0;
    for (size_t i = 0; i < resp->n_events; i++) {
        const Mvccpb__Event *in = resp->events[i];
        store_event *ev = &m.events[i];
        if (in->type != MVCCPB__EVENT__EVENT_TYPE__PUT &&
            in->type != MVCCPB__EVENT__EVENT_TYPE__DELETE)
            goto bad;
        ev->type =
            in->type == MVCCPB__EVENT__EVENT_TYPE__DELETE ? STORE_EVENT_DELETE : STORE_EVENT_PUT;
        if (kv_from(in->kv, &ev->kv) < 0)
            goto bad;
        m.n_events = i + 1;
        if (in->prev_kv) {
            ev->prev_kv = xnew(store_kv, 1);
            if (kv_from(in->prev_kv, ev->prev_kv) < 0)
                goto bad;
        }
        /* Revision order is what the callers rely on; a peer that breaks it is broken. */
        if (ev->kv.mod_revision < last)
            goto bad;
        last = ev->kv.mod_revision;
    }
    *ret = m;
    return 0;
bad:
    store_watch_msg_clear(&m);
    return -EBADMSG;
}

int store_grpc_status_error(int code, const char *details, bool *ret_not_sent)
{
    *ret_not_sent = false;
    if (code == 0)
        return 0;
    /* etcd's own errors: the same table as the gateway's. */
    if (details && strncmp(details, "etcdserver: ", 12) == 0)
        return store_error_from_etcd(code, details);
    switch (code) {
    case 8: /* RESOURCE_EXHAUSTED: a message over either side's size limit */
        return -EMSGSIZE;
    case 4: /* DEADLINE_EXCEEDED */
        return -ETIMEDOUT;
    case 14: /* UNAVAILABLE */
        /* gRPC says UNAVAILABLE both when no connection could be made (nothing sent) and when
         * an open one broke (a write may have landed); only its words tell them apart. */
        if (details &&
            (strstr(details, "failed to connect") || strstr(details, "Connection refused") ||
             strstr(details, "DNS resolution failed") || strstr(details, "empty address list") ||
             strstr(details, "Handshake"))) {
            *ret_not_sent = true;
            return -EHOSTDOWN;
        }
        return -ECONNRESET;
    case 1: /* CANCELLED: by the transport, since this library cancels only what it drops */
        return -ECONNRESET;
    default:
        return store_error_from_etcd(code, details);
    }
}
