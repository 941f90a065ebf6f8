/* The gRPC engine's pure half (grpc-convert.c): ops.c's request descriptions turned into etcd's
 * protobuf requests (straight from the raw bytes), etcd's protobuf replies turned into store
 * results and watch messages, and gRPC statuses turned into store errors. No network here, so all
 * of it is unit-tested on hand-made messages. Not for other modules. */
#pragma once

#include "etcd/rpc.pb-c.h"
#include "store-internal.h"

typedef struct store_grpc_method {
    const char *path; /* "/etcdserverpb.KV/Range" */
    const ProtobufCMessageDescriptor *reply;
} store_grpc_method;

const store_grpc_method *store_grpc_method_of(store_kind k);

/* A request as a protobuf message, laid over the description's bytes (nothing is copied): valid
 * while the description is; store_grpc_msg_done() frees what building it allocated. */
typedef struct store_grpc_msg {
    union {
        ProtobufCMessage base;
        Etcdserverpb__RangeRequest range;
        Etcdserverpb__PutRequest put;
        Etcdserverpb__DeleteRangeRequest del;
        Etcdserverpb__TxnRequest txn;
        Etcdserverpb__CompactionRequest compact;
        Etcdserverpb__LeaseGrantRequest grant;
        Etcdserverpb__LeaseKeepAliveRequest keepalive;
        Etcdserverpb__LeaseRevokeRequest revoke;
        Etcdserverpb__LeaseTimeToLiveRequest ttl;
        Etcdserverpb__StatusRequest status;
        Etcdserverpb__WatchRequest watch;
    };
    Etcdserverpb__WatchCreateRequest watch_create;
    void *mem; /* a transaction's compares and operations */
} store_grpc_msg;

/* Builds the protobuf request `r` describes into m (m->base is the message to pack). Returns 0, or
 * -EINVAL for a description that cannot be sent (nothing to free then). */
int store_grpc_request(const store_request *r, store_grpc_msg *m);
/* Builds a Watch stream's create request. */
void store_grpc_watch_request(const store_watch_req *w, store_grpc_msg *m);
void store_grpc_msg_done(store_grpc_msg *m);
/* Fills r (zeroed) from etcd's reply `msg` of kind `k`. Returns 0, -ETIME for an expired lease
 * (keepalive, timetolive), or -EBADMSG (keys with an embedded NUL, a reply of the wrong type or
 * without a header);
 * r->error is set to the same. */
int store_grpc_response(store_kind k, const ProtobufCMessage *msg, store_result *r);
/* Fills ret from one WatchResponse. Returns 0 or -EBADMSG (events out of revision order, bad
 * keys). */
int store_grpc_watch_msg(const Etcdserverpb__WatchResponse *resp, store_watch_msg *ret);
/* Maps a gRPC status (code, details) to a store error. *ret_not_sent is true when the request
 * certainly never reached a member (no connection could be made), so it may go elsewhere. */
int store_grpc_status_error(int code, const char *details, bool *ret_not_sent);
