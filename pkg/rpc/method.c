/* The method table of stratus.v1.Stratus and the conversions both halves of the adapter need:
 * protobuf-c messages to and from gRPC byte buffers, pre-encoded messages, deadlines. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <grpc/support/log.h>

#include "base/alloc.h"
#include "rpc/rpc-internal.h"

#define METHOD(m, n, req, rep, stream)                                                             \
    [m] = {.method = m,                                                                            \
           .name = n,                                                                              \
           .path = "/stratus.v1.Stratus/" n,                                                       \
           .request = &req,                                                                        \
           .reply = &rep,                                                                          \
           .streaming = stream}

/* Must follow the service in stratus.proto: test-rpc checks it against protoc-c's descriptor. */
static const rpc_method_info methods[_RPC_METHOD_MAX] = {
    METHOD(RPC_METHOD_APPLY, "Apply", stratus__v1__apply_request__descriptor,
           stratus__v1__apply_response__descriptor, false),
    METHOD(RPC_METHOD_GET, "Get", stratus__v1__get_request__descriptor,
           stratus__v1__object_response__descriptor, false),
    METHOD(RPC_METHOD_LIST, "List", stratus__v1__list_request__descriptor,
           stratus__v1__list_response__descriptor, false),
    METHOD(RPC_METHOD_DELETE, "Delete", stratus__v1__delete_request__descriptor,
           stratus__v1__object_response__descriptor, false),
    METHOD(RPC_METHOD_WATCH, "Watch", stratus__v1__watch_request__descriptor,
           stratus__v1__watch_event__descriptor, true),
    METHOD(RPC_METHOD_UPDATE_STATUS, "UpdateStatus", stratus__v1__update_status_request__descriptor,
           stratus__v1__object_response__descriptor, false),
    METHOD(RPC_METHOD_BIND, "Bind", stratus__v1__bind_request__descriptor,
           stratus__v1__bind_response__descriptor, false),
    METHOD(RPC_METHOD_UNBIND, "Unbind", stratus__v1__unbind_request__descriptor,
           stratus__v1__object_response__descriptor, false),
    METHOD(RPC_METHOD_RENEW_LEASE, "RenewLease", stratus__v1__renew_lease_request__descriptor,
           stratus__v1__renew_lease_response__descriptor, false),
    METHOD(RPC_METHOD_HEALTH, "Health", stratus__v1__health_request__descriptor,
           stratus__v1__health_response__descriptor, false),
};

const rpc_method_info *rpc_method_info_get(rpc_method m)
{
    if ((unsigned)m >= _RPC_METHOD_MAX)
        return NULL;
    return &methods[m];
}

const char *rpc_method_to_string(rpc_method m)
{
    const rpc_method_info *i = rpc_method_info_get(m);
    return i ? i->name : NULL;
}

const char *rpc_method_path(rpc_method m)
{
    const rpc_method_info *i = rpc_method_info_get(m);
    return i ? i->path : NULL;
}

const ProtobufCMessageDescriptor *rpc_method_request_type(rpc_method m)
{
    const rpc_method_info *i = rpc_method_info_get(m);
    return i ? i->request : NULL;
}

const ProtobufCMessageDescriptor *rpc_method_reply_type(rpc_method m)
{
    const rpc_method_info *i = rpc_method_info_get(m);
    return i ? i->reply : NULL;
}

bool rpc_method_is_streaming(rpc_method m)
{
    const rpc_method_info *i = rpc_method_info_get(m);
    return i && i->streaming;
}

void *rpc_message_free(void *msg)
{
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
    return NULL;
}

int rpc_byte_buffer_encode(const ProtobufCMessage *msg, grpc_byte_buffer **ret)
{
    size_t size = protobuf_c_message_get_packed_size(msg);
    if (size > RPC_MESSAGE_SIZE_MAX)
        return -EMSGSIZE;
    grpc_slice slice = grpc_slice_malloc(size);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    *ret = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return 0;
}

int rpc_byte_buffer_decode(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *type,
                           ProtobufCMessage **ret)
{
    grpc_byte_buffer_reader reader;
    if (!bb || !grpc_byte_buffer_reader_init(&reader, bb))
        return -EBADMSG;
    grpc_slice slice = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    ProtobufCMessage *msg = protobuf_c_message_unpack(type, NULL, GRPC_SLICE_LENGTH(slice),
                                                      GRPC_SLICE_START_PTR(slice));
    grpc_slice_unref(slice);
    if (!msg)
        return -EBADMSG;
    *ret = msg;
    return 0;
}

int rpc_encode(const ProtobufCMessage *msg, rpc_encoded **ret)
{
    grpc_byte_buffer *bb;
    int r = rpc_byte_buffer_encode(msg, &bb);
    if (r < 0)
        return r;
    rpc_encoded *e = xnew(rpc_encoded, 1);
    e->bb = bb;
    e->type = msg->descriptor;
    e->size = grpc_byte_buffer_length(bb);
    *ret = e;
    return 0;
}

size_t rpc_encoded_size(const rpc_encoded *e)
{
    return e->size;
}

rpc_encoded *rpc_encoded_free(rpc_encoded *e)
{
    if (!e)
        return NULL;
    grpc_byte_buffer_destroy(e->bb);
    free(e);
    return NULL;
}

/* Timeouts past this are "no deadline" (and keep gpr arithmetic far from overflow). */
#define TIMEOUT_FOREVER ((usec_t)100 * 365 * 24 * 3600 * USEC_PER_SEC)

gpr_timespec rpc_deadline_after(usec_t timeout)
{
    if (timeout >= TIMEOUT_FOREVER)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_micros((int64_t)timeout, GPR_TIMESPAN));
}

usec_t rpc_deadline_to_monotonic(gpr_timespec deadline)
{
    if (deadline.tv_sec == INT64_MAX || deadline.clock_type == GPR_TIMESPAN)
        return USEC_INFINITY;
    gpr_timespec left = gpr_time_sub(deadline, gpr_now(deadline.clock_type));
    usec_t now = now_monotonic();
    if (left.tv_sec < 0)
        return now;
    usec_t l = (usec_t)left.tv_sec * USEC_PER_SEC + (usec_t)left.tv_nsec / 1000;
    if (l >= TIMEOUT_FOREVER)
        return USEC_INFINITY;
    return now + l;
}

static void grpc_log_discard(gpr_log_func_args *args) {}

void rpc_grpc_init(void)
{
    if (!getenv("GRPC_VERBOSITY"))
        gpr_set_log_function(grpc_log_discard);
    grpc_init();
}
