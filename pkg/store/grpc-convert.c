/* The gRPC engine's conversions, pure: requests from ops.c's descriptions, replies into store
 * results, watch replies into watch messages, statuses into errors. Replies come from the
 * network: keys are checked (no embedded NUL), events must be in revision order, a reply of the
 * wrong type is -EBADMSG. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
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

/* ---- requests: protobuf messages laid over the description's bytes, nothing copied */

static ProtobufCBinaryData pb_bytes(store_bytes b)
{
    return (ProtobufCBinaryData){.len = b.len, .data = (uint8_t *)b.data};
}

static void range_msg(const store_range_req *r, Etcdserverpb__RangeRequest *m)
{
    etcdserverpb__range_request__init(m);
    m->key = pb_bytes(r->key);
    m->range_end = pb_bytes(r->range_end);
    m->limit = r->limit;
    m->revision = r->revision;
    m->keys_only = r->keys_only;
    m->count_only = r->count_only;
    m->serializable = r->serializable;
}

static void put_msg(const store_put_req *r, Etcdserverpb__PutRequest *m)
{
    etcdserverpb__put_request__init(m);
    m->key = pb_bytes(r->key);
    m->value = pb_bytes(r->value);
    m->lease = r->lease;
    m->prev_kv = r->prev_kv;
    m->ignore_lease = r->ignore_lease;
}

static void delete_msg(const store_delete_req *r, Etcdserverpb__DeleteRangeRequest *m)
{
    etcdserverpb__delete_range_request__init(m);
    m->key = pb_bytes(r->key);
    m->range_end = pb_bytes(r->range_end);
    m->prev_kv = r->prev_kv;
}

static int compare_msg(const store_compare *c, Etcdserverpb__Compare *m)
{
    static const Etcdserverpb__Compare__CompareTarget targets[_STORE_CMP_TARGET_MAX] = {
        [STORE_CMP_VERSION] = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION,
        [STORE_CMP_CREATE] = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE,
        [STORE_CMP_MOD] = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD,
        [STORE_CMP_VALUE] = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE,
        [STORE_CMP_LEASE] = ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE,
    };
    static const Etcdserverpb__Compare__TargetUnionCase cases[_STORE_CMP_TARGET_MAX] = {
        [STORE_CMP_VERSION] = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION,
        [STORE_CMP_CREATE] = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION,
        [STORE_CMP_MOD] = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION,
        [STORE_CMP_VALUE] = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE,
        [STORE_CMP_LEASE] = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE,
    };
    static const Etcdserverpb__Compare__CompareResult results[_STORE_CMP_OP_MAX] = {
        [STORE_CMP_EQUAL] = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL,
        [STORE_CMP_NOT_EQUAL] = ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL,
        [STORE_CMP_LESS] = ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS,
        [STORE_CMP_GREATER] = ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER,
    };
    if ((unsigned)c->target >= _STORE_CMP_TARGET_MAX || (unsigned)c->op >= _STORE_CMP_OP_MAX)
        return -EINVAL;
    etcdserverpb__compare__init(m);
    m->key = pb_bytes(c->key);
    m->target = targets[c->target];
    m->result = results[c->op];
    /* A oneof member is sent even when zero: "create_revision = 0" is the create-only test. */
    m->target_union_case = cases[c->target];
    switch (c->target) {
    case STORE_CMP_VERSION:
        m->version = c->number;
        break;
    case STORE_CMP_CREATE:
        m->create_revision = c->number;
        break;
    case STORE_CMP_MOD:
        m->mod_revision = c->number;
        break;
    case STORE_CMP_VALUE:
        m->value = pb_bytes(c->value);
        break;
    default:
        m->lease = c->number;
        break;
    }
    return 0;
}

/* A transaction's parts all come from one block: its compares, its operations and their
 * requests, and the pointer arrays protobuf-c wants. */
typedef union sub_request {
    Etcdserverpb__RangeRequest range;
    Etcdserverpb__PutRequest put;
    Etcdserverpb__DeleteRangeRequest del;
} sub_request;

static int ops_msg(const store_op *in, size_t n, Etcdserverpb__RequestOp *ops, sub_request *subs,
                   Etcdserverpb__RequestOp **ptrs)
{
    for (size_t i = 0; i < n; i++) {
        Etcdserverpb__RequestOp *m = &ops[i];
        etcdserverpb__request_op__init(m);
        switch (in[i].kind) {
        case STORE_KIND_RANGE:
            range_msg(&in[i].range, &subs[i].range);
            m->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
            m->request_range = &subs[i].range;
            break;
        case STORE_KIND_PUT:
            put_msg(&in[i].put, &subs[i].put);
            m->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
            m->request_put = &subs[i].put;
            break;
        case STORE_KIND_DELETE:
            delete_msg(&in[i].del, &subs[i].del);
            m->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
            m->request_delete_range = &subs[i].del;
            break;
        default:
            return -EINVAL;
        }
        ptrs[i] = m;
    }
    return 0;
}

static int txn_msg(const store_txn_req *t, Etcdserverpb__TxnRequest *m, void **ret_mem)
{
    size_t nc = t->n_compare, no = t->n_success + t->n_failure;
    /* Every part has the alignment of a pointer or an int64, and a size that keeps it. */
    size_t size = nc * (sizeof(Etcdserverpb__Compare) + sizeof(Etcdserverpb__Compare *)) +
                  no * (sizeof(Etcdserverpb__RequestOp) + sizeof(sub_request) +
                        sizeof(Etcdserverpb__RequestOp *));
    char *mem = xmalloc(size ? size : 1);
    *ret_mem = mem;
    Etcdserverpb__Compare *cmps = (void *)mem;
    Etcdserverpb__RequestOp *ops = (void *)(cmps + nc);
    sub_request *subs = (void *)(ops + no);
    Etcdserverpb__Compare **cmp_ptrs = (void *)(subs + no);
    Etcdserverpb__RequestOp **op_ptrs = (void *)(cmp_ptrs + nc);

    etcdserverpb__txn_request__init(m);
    for (size_t i = 0; i < nc; i++) {
        if (compare_msg(&t->compare[i], &cmps[i]) < 0)
            return -EINVAL;
        cmp_ptrs[i] = &cmps[i];
    }
    m->compare = cmp_ptrs;
    m->n_compare = nc;
    size_t ns = t->n_success;
    if (ops_msg(t->success, ns, ops, subs, op_ptrs) < 0 ||
        ops_msg(t->failure, t->n_failure, ops + ns, subs + ns, op_ptrs + ns) < 0)
        return -EINVAL;
    m->success = op_ptrs;
    m->n_success = ns;
    m->failure = op_ptrs + ns;
    m->n_failure = t->n_failure;
    return 0;
}

int store_grpc_request(const store_request *r, store_grpc_msg *m)
{
    m->mem = NULL;
    switch (r->kind) {
    case STORE_KIND_RANGE:
        range_msg(&r->range, &m->range);
        return 0;
    case STORE_KIND_PUT:
        put_msg(&r->put, &m->put);
        return 0;
    case STORE_KIND_DELETE:
        delete_msg(&r->del, &m->del);
        return 0;
    case STORE_KIND_TXN:
        if (txn_msg(&r->txn, &m->txn, &m->mem) < 0) {
            store_grpc_msg_done(m);
            return -EINVAL;
        }
        return 0;
    case STORE_KIND_COMPACT:
        etcdserverpb__compaction_request__init(&m->compact);
        m->compact.revision = r->compact.revision;
        m->compact.physical = r->compact.physical;
        return 0;
    case STORE_KIND_LEASE_GRANT:
        etcdserverpb__lease_grant_request__init(&m->grant);
        m->grant.ttl = r->ttl;
        return 0;
    case STORE_KIND_LEASE_KEEPALIVE:
        etcdserverpb__lease_keep_alive_request__init(&m->keepalive);
        m->keepalive.id = r->lease_id;
        return 0;
    case STORE_KIND_LEASE_REVOKE:
        etcdserverpb__lease_revoke_request__init(&m->revoke);
        m->revoke.id = r->lease_id;
        return 0;
    case STORE_KIND_LEASE_TTL:
        etcdserverpb__lease_time_to_live_request__init(&m->ttl);
        m->ttl.id = r->lease_id;
        return 0;
    case STORE_KIND_STATUS:
        etcdserverpb__status_request__init(&m->status);
        return 0;
    default:
        return -EINVAL;
    }
}

void store_grpc_watch_request(const store_watch_req *w, store_grpc_msg *m)
{
    m->mem = NULL;
    Etcdserverpb__WatchCreateRequest *c = &m->watch_create;
    etcdserverpb__watch_create_request__init(c);
    c->key = pb_bytes(w->key);
    c->range_end = pb_bytes(w->range_end);
    c->start_revision = w->start_revision;
    c->prev_kv = w->prev_kv;
    c->progress_notify = w->progress_notify;
    c->fragment = w->fragment;
    etcdserverpb__watch_request__init(&m->watch);
    m->watch.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    m->watch.create_request = c;
}

void store_grpc_msg_done(store_grpc_msg *m)
{
    free(m->mem);
    m->mem = NULL;
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

/* Every reply of etcd carries a header; one without is malformed, as on the gateway. */
static int header_from(const Etcdserverpb__ResponseHeader *h, store_result *r)
{
    if (!h)
        return -EBADMSG;
    r->revision = h->revision;
    return 0;
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
        if (header_from(m->header, r) < 0)
            return -EBADMSG;
        return range_from(m, r);
    }
    case STORE_KIND_PUT: {
        const Etcdserverpb__PutResponse *m = (const void *)msg;
        if (header_from(m->header, r) < 0)
            return -EBADMSG;
        return put_from(m, r);
    }
    case STORE_KIND_DELETE: {
        const Etcdserverpb__DeleteRangeResponse *m = (const void *)msg;
        if (header_from(m->header, r) < 0)
            return -EBADMSG;
        return delete_from(m, r);
    }
    case STORE_KIND_TXN: {
        const Etcdserverpb__TxnResponse *m = (const void *)msg;
        if (header_from(m->header, r) < 0)
            return -EBADMSG;
        return txn_from(m, r);
    }
    case STORE_KIND_COMPACT:
        if (header_from(((const Etcdserverpb__CompactionResponse *)msg)->header, r) < 0)
            return -EBADMSG;
        return 0;
    case STORE_KIND_LEASE_GRANT: {
        const Etcdserverpb__LeaseGrantResponse *m = (const void *)msg;
        if (header_from(m->header, r) < 0)
            return -EBADMSG;
        r->lease_id = m->id;
        r->ttl = m->ttl;
        return 0;
    }
    case STORE_KIND_LEASE_KEEPALIVE: {
        const Etcdserverpb__LeaseKeepAliveResponse *m = (const void *)msg;
        if (header_from(m->header, r) < 0)
            return -EBADMSG;
        r->lease_id = m->id;
        r->ttl = m->ttl;
        return r->ttl <= 0 ? -ETIME : 0; /* an expired lease is renewed to TTL 0 */
    }
    case STORE_KIND_LEASE_REVOKE:
        if (header_from(((const Etcdserverpb__LeaseRevokeResponse *)msg)->header, r) < 0)
            return -EBADMSG;
        return 0;
    case STORE_KIND_LEASE_TTL: {
        const Etcdserverpb__LeaseTimeToLiveResponse *m = (const void *)msg;
        if (header_from(m->header, r) < 0)
            return -EBADMSG;
        r->lease_id = m->id;
        r->ttl = m->ttl;
        return r->ttl < 0 ? -ETIME : 0;
    }
    case STORE_KIND_STATUS:
        if (header_from(((const Etcdserverpb__StatusResponse *)msg)->header, r) < 0)
            return -EBADMSG;
        return 0;
    default:
        return -EBADMSG;
    }
}

int store_grpc_response(store_kind k, const ProtobufCMessage *msg, store_result *r)
{
    int e = response_body(k, msg, r);
    return e < 0 ? store_result_fail(r, e) : e;
}

int store_grpc_watch_msg(const Etcdserverpb__WatchResponse *resp, store_watch_msg *ret)
{
    store_watch_msg m = {
        .created = resp->created,
        .canceled = resp->canceled,
        .fragment = resp->fragment,
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
