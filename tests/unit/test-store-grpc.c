/* Unit tests of the gRPC engine's pure half (pkg/store/grpc-convert.c) on hand-made messages:
 * requests from ops.c's descriptions, replies into results (with the shared shapes), watch
 * messages, and the gRPC status → error mapping. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "store/engine.h"
#include "store/grpc-internal.h"

static void status_errors_map_like_the_gateway(void)
{
    bool not_sent;
    CHECK_INT(store_grpc_status_error(0, "", &not_sent), ==, 0);
    CHECK_INT(store_grpc_status_error(11, "etcdserver: mvcc: required revision has been compacted",
                                      &not_sent),
              ==, -ERANGE);
    CHECK_INT(store_grpc_status_error(5, "etcdserver: requested lease not found", &not_sent), ==,
              -ETIME);
    CHECK_INT(store_grpc_status_error(3, "etcdserver: request is too large", &not_sent), ==,
              -EMSGSIZE);
    CHECK_INT(
        store_grpc_status_error(3, "etcdserver: too many operations in txn request", &not_sent), ==,
        -E2BIG);
    CHECK_INT(store_grpc_status_error(14, "etcdserver: no leader", &not_sent), ==, -EHOSTDOWN);
    CHECK(!not_sent); /* etcd answered: nothing applied, but it was sent */
    /* refused before it was proposed: nothing applied; proposed, then the member stopped: maybe */
    CHECK_INT(store_grpc_status_error(8, "etcdserver: too many requests", &not_sent), ==,
              -EHOSTDOWN);
    CHECK_INT(store_grpc_status_error(14, "etcdserver: server stopped", &not_sent), ==,
              -ECONNRESET);
    CHECK_INT(store_grpc_status_error(4, "Deadline Exceeded", &not_sent), ==, -ETIMEDOUT);
    CHECK_INT(
        store_grpc_status_error(8, "Received message larger than max (5000 vs. 4096)", &not_sent),
        ==, -EMSGSIZE);
    CHECK_INT(store_grpc_status_error(14,
                                      "failed to connect to all addresses; last error: UNKNOWN: "
                                      "ipv4:127.0.0.1:1: Connection refused",
                                      &not_sent),
              ==, -EHOSTDOWN);
    CHECK(not_sent);
    CHECK_INT(store_grpc_status_error(14, "Socket closed", &not_sent), ==, -ECONNRESET);
    CHECK(!not_sent); /* a broken connection: a write may have landed */
    CHECK_INT(store_grpc_status_error(3, "etcdserver: key is not provided", &not_sent), ==,
              -EINVAL);
    CHECK_INT(store_grpc_status_error(13, "something else", &not_sent), ==, -EPROTO);
}

static void only_reads_are_retried_after_an_unknown_outcome(void)
{
    CHECK(store_should_retry(STORE_KIND_PUT, -EHOSTDOWN, true, 1, 2));
    CHECK(store_should_retry(STORE_KIND_TXN, -EHOSTDOWN, false, 1, 2)); /* etcd: unavailable */
    CHECK(!store_should_retry(STORE_KIND_PUT, -ECONNRESET, false, 1, 2));
    CHECK(!store_should_retry(STORE_KIND_TXN, -ETIMEDOUT, false, 1, 2));
    CHECK(store_should_retry(STORE_KIND_RANGE, -ETIMEDOUT, false, 1, 2));
    CHECK(!store_should_retry(STORE_KIND_RANGE, -ETIMEDOUT, false, 2, 2)); /* each member once */
    CHECK(!store_should_retry(STORE_KIND_RANGE, -ESTALE, false, 1, 2));
}

static void txn_request_keeps_compares_and_branches(void)
{
    _cleanup_(store_txn_freep) store_txn *t = store_txn_new();
    store_txn_compare(t, "/k", STORE_CMP_MOD, STORE_CMP_EQUAL, 42);
    store_txn_compare(t, "/new", STORE_CMP_CREATE, STORE_CMP_EQUAL, 0);
    store_txn_compare_value(t, "/v", STORE_CMP_NOT_EQUAL, "ab\0c", 4);
    store_txn_put(t, STORE_ON_SUCCESS, "/k", "val", 3, 7, STORE_PREV_KV);
    store_txn_delete(t, STORE_ON_SUCCESS, "/d/", "/d0", 0);
    store_txn_get(t, STORE_ON_FAILURE, "/k", NULL);
    /* ops.c's description of the transaction, the same the gateway gets, through the wire */
    store_request r = {.kind = STORE_KIND_TXN, .txn = store_txn_request(t)};
    store_grpc_msg built;
    CHECK_OK(store_grpc_request(&r, &built));
    size_t n = protobuf_c_message_get_packed_size(&built.base);
    _cleanup_free_ uint8_t *wire = malloc(n);
    protobuf_c_message_pack(&built.base, wire);
    store_grpc_msg_done(&built);
    ProtobufCMessage *m =
        protobuf_c_message_unpack(&etcdserverpb__txn_request__descriptor, NULL, n, wire);
    CHECK(m != NULL);
    Etcdserverpb__TxnRequest *req = (Etcdserverpb__TxnRequest *)m;
    CHECK_INT(req->n_compare, ==, 3);
    CHECK_INT(req->compare[0]->target, ==, ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD);
    CHECK_INT(req->compare[0]->target_union_case, ==,
              ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION);
    CHECK_INT(req->compare[0]->mod_revision, ==, 42);
    CHECK_INT(req->compare[1]->target_union_case, ==,
              ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION);
    CHECK_INT(req->compare[1]->create_revision, ==, 0);
    CHECK_INT(req->compare[2]->result, ==, ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL);
    CHECK_INT(req->compare[2]->value.len, ==, 4);
    CHECK(memcmp(req->compare[2]->value.data, "ab\0c", 4) == 0);
    CHECK_INT(req->n_success, ==, 2);
    Etcdserverpb__PutRequest *put = req->success[0]->request_put;
    CHECK_INT(put->key.len, ==, 2);
    CHECK_INT(put->lease, ==, 7);
    CHECK(put->prev_kv);
    CHECK_INT(req->success[1]->request_case, ==,
              ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE);
    CHECK_INT(req->success[1]->request_delete_range->range_end.len, ==, 3);
    CHECK_INT(req->n_failure, ==, 1);
    CHECK_INT(req->failure[0]->request_case, ==, ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE);
    protobuf_c_message_free_unpacked(m, NULL);
}

static void failed_cas_reply_gives_the_current_value(void)
{
    Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT;
    kv.key = (ProtobufCBinaryData){.len = 2, .data = (uint8_t *)"/k"};
    kv.value = (ProtobufCBinaryData){.len = 2, .data = (uint8_t *)"v2"};
    kv.mod_revision = 9;
    Mvccpb__KeyValue *kvs[] = {&kv};
    Etcdserverpb__RangeResponse range = ETCDSERVERPB__RANGE_RESPONSE__INIT;
    range.kvs = kvs;
    range.n_kvs = 1;
    range.count = 1;
    Etcdserverpb__ResponseOp op = ETCDSERVERPB__RESPONSE_OP__INIT;
    op.response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
    op.response_range = &range;
    Etcdserverpb__ResponseOp *ops[] = {&op};
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    h.revision = 12;
    Etcdserverpb__TxnResponse txn = ETCDSERVERPB__TXN_RESPONSE__INIT;
    txn.header = &h;
    txn.succeeded = false;
    txn.responses = ops;
    txn.n_responses = 1;

    store_result r = {0};
    CHECK_OK(store_grpc_response(STORE_KIND_TXN, &txn.base, &r));
    CHECK_INT(r.revision, ==, 12);
    store_result_shape(&r, STORE_SHAPE_CAS);
    CHECK_INT(r.error, ==, -ESTALE);
    CHECK_INT(r.n_kvs, ==, 1);
    CHECK_STR(r.kvs[0].value, "v2");
    CHECK_INT(r.kvs[0].mod_revision, ==, 9);
    store_result_clear(&r);

    /* empty failure branch of a create: the key is gone → -EEXIST only with a value */
    range.n_kvs = 0;
    CHECK_OK(store_grpc_response(STORE_KIND_TXN, &txn.base, &r));
    store_result_shape(&r, STORE_SHAPE_CAS);
    CHECK_INT(r.error, ==, -ENOENT);
    store_result_clear(&r);

    /* a key with an embedded NUL is refused */
    range.n_kvs = 1;
    kv.key = (ProtobufCBinaryData){.len = 3, .data = (uint8_t *)"/\0k"};
    CHECK_INT(store_grpc_response(STORE_KIND_TXN, &txn.base, &r), ==, -EBADMSG);
    CHECK_INT(r.n_responses, ==, 0);
    store_result_clear(&r);

    /* a reply of another type than asked is refused */
    CHECK_INT(store_grpc_response(STORE_KIND_RANGE, &txn.base, &r), ==, -EBADMSG);
    store_result_clear(&r);

    /* a reply without a header is refused, as on the gateway */
    range.n_kvs = 0;
    kv.key = (ProtobufCBinaryData){.len = 2, .data = (uint8_t *)"/k"};
    CHECK_OK(store_grpc_response(STORE_KIND_TXN, &txn.base, &r));
    store_result_clear(&r);
    txn.header = NULL;
    CHECK_INT(store_grpc_response(STORE_KIND_TXN, &txn.base, &r), ==, -EBADMSG);
    CHECK_INT(r.error, ==, -EBADMSG);
    store_result_clear(&r);
    Etcdserverpb__StatusResponse st = ETCDSERVERPB__STATUS_RESPONSE__INIT;
    CHECK_INT(store_grpc_response(STORE_KIND_STATUS, &st.base, &r), ==, -EBADMSG);
    store_result_clear(&r);
}

static void expired_lease_replies(void)
{
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    Etcdserverpb__LeaseKeepAliveResponse ka = ETCDSERVERPB__LEASE_KEEP_ALIVE_RESPONSE__INIT;
    ka.header = &h;
    ka.id = 5;
    store_result r = {0};
    CHECK_INT(store_grpc_response(STORE_KIND_LEASE_KEEPALIVE, &ka.base, &r), ==, -ETIME);
    CHECK_INT(r.error, ==, -ETIME);
    store_result_clear(&r);
    ka.ttl = 30;
    CHECK_OK(store_grpc_response(STORE_KIND_LEASE_KEEPALIVE, &ka.base, &r));
    CHECK_INT(r.ttl, ==, 30);
    store_result_clear(&r);
    Etcdserverpb__LeaseTimeToLiveResponse ttl = ETCDSERVERPB__LEASE_TIME_TO_LIVE_RESPONSE__INIT;
    ttl.header = &h;
    ttl.ttl = -1;
    CHECK_INT(store_grpc_response(STORE_KIND_LEASE_TTL, &ttl.base, &r), ==, -ETIME);
    store_result_clear(&r);
}

static void watch_messages(void)
{
    Mvccpb__KeyValue a = MVCCPB__KEY_VALUE__INIT, b = MVCCPB__KEY_VALUE__INIT,
                     prev = MVCCPB__KEY_VALUE__INIT;
    a.key = (ProtobufCBinaryData){.len = 2, .data = (uint8_t *)"/a"};
    a.mod_revision = 5;
    b.key = (ProtobufCBinaryData){.len = 2, .data = (uint8_t *)"/b"};
    b.mod_revision = 6;
    prev.key = a.key;
    prev.value = (ProtobufCBinaryData){.len = 3, .data = (uint8_t *)"old"};
    Mvccpb__Event e1 = MVCCPB__EVENT__INIT, e2 = MVCCPB__EVENT__INIT;
    e1.kv = &a;
    e1.prev_kv = &prev;
    e2.type = MVCCPB__EVENT__EVENT_TYPE__DELETE;
    e2.kv = &b;
    Mvccpb__Event *evs[] = {&e1, &e2};
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    h.revision = 6;
    Etcdserverpb__WatchResponse w = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    w.header = &h;
    w.events = evs;
    w.n_events = 2;
    store_watch_msg m;
    CHECK_OK(store_grpc_watch_msg(&w, &m));
    CHECK_INT(m.n_events, ==, 2);
    CHECK_INT(m.revision, ==, 6);
    CHECK_INT(m.events[0].type, ==, STORE_EVENT_PUT);
    CHECK_STR(m.events[0].prev_kv->value, "old");
    CHECK_INT(m.events[1].type, ==, STORE_EVENT_DELETE);
    CHECK(m.events[1].prev_kv == NULL);
    store_watch_msg_clear(&m);

    a.mod_revision = 7; /* out of revision order */
    CHECK_INT(store_grpc_watch_msg(&w, &m), ==, -EBADMSG);

    Etcdserverpb__WatchResponse c = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    c.canceled = true;
    c.compact_revision = 40;
    c.cancel_reason = "mvcc: required revision has been compacted";
    CHECK_OK(store_grpc_watch_msg(&c, &m));
    CHECK(m.canceled);
    CHECK_INT(m.compact_revision, ==, 40);
    store_watch_msg_clear(&m);
}

CHECK_MAIN(CASE(status_errors_map_like_the_gateway),
           CASE(only_reads_are_retried_after_an_unknown_outcome),
           CASE(txn_request_keeps_compares_and_branches),
           CASE(failed_cas_reply_gives_the_current_value), CASE(expired_lease_replies),
           CASE(watch_messages))
