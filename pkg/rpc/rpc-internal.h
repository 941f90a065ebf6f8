/* Internals shared by the server and client halves of pkg/rpc: the method table and the
 * conversions between protobuf-c messages, gRPC byte buffers and deadlines. The only header
 * besides the .c files of this module that includes gRPC; never installed or included elsewhere. */
#pragma once

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "rpc/rpc.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

typedef struct rpc_method_info {
    rpc_method method;
    const char *name; /* "Get" */
    const char *path; /* "/stratus.v1.Stratus/Get" */
    const ProtobufCMessageDescriptor *request;
    const ProtobufCMessageDescriptor *reply;
    bool streaming; /* the server sends a stream of replies */
} rpc_method_info;

/* NULL when m is out of range. */
const rpc_method_info *rpc_method_info_get(rpc_method m);

struct rpc_encoded {
    grpc_byte_buffer *bb;
    const ProtobufCMessageDescriptor *type;
    size_t size;
};

/* Encodes msg into a new byte buffer (caller destroys it). 0 or -EMSGSIZE. */
int rpc_byte_buffer_encode(const ProtobufCMessage *msg, grpc_byte_buffer **ret);
/* Decodes a byte buffer as `type`. 0 and a message to free with rpc_message_free, or -EBADMSG
 * (also for bb == NULL). The caller keeps bb. */
int rpc_byte_buffer_decode(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *type,
                           ProtobufCMessage **ret);

/* An absolute deadline `timeout` from now (USEC_INFINITY: none). */
gpr_timespec rpc_deadline_after(usec_t timeout);
/* grpc_init(), with gRPC core's own log silenced unless GRPC_VERBOSITY is set: the library does
 * not log, and pkg/store (in the same process in the apiserver) keeps the same policy. */
void rpc_grpc_init(void);
/* A gRPC deadline on the now_monotonic() clock (USEC_INFINITY when infinite). */
usec_t rpc_deadline_to_monotonic(gpr_timespec deadline);

/* Fills status (when not NULL) with code and a copy of message (len bytes; cut to fit). */
void rpc_status_set(rpc_status *status, rpc_code code, const char *message, size_t len);
