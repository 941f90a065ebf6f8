/* The gRPC engine's pure half (grpc-convert.c): the gateway-shaped request description turned
 * into etcd's protobuf request, etcd's protobuf replies turned into store results and watch
 * messages, and gRPC statuses turned into store errors. No network here, so all of it is
 * unit-tested on hand-made messages. Not for other modules. */
#pragma once

#include <jansson.h>

#include "etcd/rpc.pb-c.h"
#include "store-internal.h"

typedef struct store_grpc_method {
    const char *path; /* "/etcdserverpb.KV/Range" */
    const ProtobufCMessageDescriptor *reply;
} store_grpc_method;

const store_grpc_method *store_grpc_method_of(store_kind k);

/* Builds the protobuf request of kind `k` from the request object ops.c made for it. The message
 * and everything in it is malloc'd: free it with protobuf_c_message_free_unpacked(m, NULL).
 * Returns 0, or -EINVAL for a description that cannot be sent. */
int store_grpc_request(store_kind k, json_t *body, ProtobufCMessage **ret);
/* Fills r (zeroed) from etcd's reply `msg` of kind `k`. Returns 0, -ETIME for an expired lease
 * (keepalive, timetolive), or -EBADMSG (keys with an embedded NUL, a reply of the wrong type);
 * r->error is set to the same. */
int store_grpc_response(store_kind k, const ProtobufCMessage *msg, store_result *r);
/* Fills ret from one WatchResponse. Returns 0 or -EBADMSG (events out of revision order, bad
 * keys). */
int store_grpc_watch_msg(const Etcdserverpb__WatchResponse *resp, store_watch_msg *ret);
/* Maps a gRPC status (code, details) to a store error. *ret_not_sent is true when the request
 * certainly never reached a member (no connection could be made), so it may go elsewhere. */
int store_grpc_status_error(int code, const char *details, bool *ret_not_sent);
