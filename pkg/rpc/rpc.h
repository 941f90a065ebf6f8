/* pkg/rpc: what servers and clients of the Stratus API share — status codes and their mapping
 * from -errno, the method table, and pre-encoded messages. The server lives in rpc/server.h, the
 * client in rpc/client.h. This module is the only one that sees gRPC; everyone else sees the
 * protobuf-c message structs generated from api/stratus/v1/stratus.proto (plain C structs, no
 * gRPC in them) and the types below. See docs/rpc.md for the design.
 *
 * Programs using it must block SIGINT/SIGTERM (pthread_sigmask) before the first rpc_server_new()
 * or rpc_client_new(), which start gRPC's threads: they inherit the mask, so signals reach the
 * thread that waits for them (sigwait/signalfd) and not a random gRPC thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "base/timeutil.h"
#include "stratus/v1/stratus.pb-c.h"

/* gRPC status codes, with gRPC's numbers (so they cross the wire as is, e.g. in BindResult.code
 * and WatchEvent.code). */
typedef enum rpc_code {
    RPC_CODE_OK = 0,
    RPC_CODE_CANCELLED = 1,
    RPC_CODE_UNKNOWN = 2,
    RPC_CODE_INVALID_ARGUMENT = 3,
    RPC_CODE_DEADLINE_EXCEEDED = 4,
    RPC_CODE_NOT_FOUND = 5,
    RPC_CODE_ALREADY_EXISTS = 6,
    RPC_CODE_PERMISSION_DENIED = 7,
    RPC_CODE_RESOURCE_EXHAUSTED = 8,
    RPC_CODE_FAILED_PRECONDITION = 9,
    RPC_CODE_ABORTED = 10,
    RPC_CODE_OUT_OF_RANGE = 11,
    RPC_CODE_UNIMPLEMENTED = 12,
    RPC_CODE_INTERNAL = 13,
    RPC_CODE_UNAVAILABLE = 14,
    RPC_CODE_DATA_LOSS = 15,
    RPC_CODE_UNAUTHENTICATED = 16,
    _RPC_CODE_MAX,
} rpc_code;

/* The code that ends a Watch stream when the client must List again before watching: its
 * resource version was compacted away, or it fell behind and events were dropped. */
#define RPC_CODE_RELIST RPC_CODE_OUT_OF_RANGE

/* "NOT_FOUND", ...; "UNKNOWN" for values outside the enum. Any thread. */
const char *rpc_code_to_string(rpc_code c);
/* The ONE mapping from Stratus errors to status codes (table in docs/rpc.md): 0 → OK, -EINVAL →
 * INVALID_ARGUMENT, -ENOENT/-ETIME → NOT_FOUND, -EEXIST → ALREADY_EXISTS, -ESTALE → ABORTED,
 * -ERANGE → OUT_OF_RANGE, -EHOSTDOWN (and connection errors) → UNAVAILABLE, ... anything
 * unknown → INTERNAL. Accepts error or -error. Any thread. */
rpc_code rpc_code_from_errno(int error);
/* The reverse, for clients: a status code as a -errno (0 for OK; -EPROTO for UNKNOWN and codes
 * outside the enum). rpc_code_from_errno(rpc_code_to_errno(c)) == c for every code but UNKNOWN.
 * Any thread. */
int rpc_code_to_errno(rpc_code c);

/* A status: the code and a message for a person. Filled by every client call. */
#define RPC_MESSAGE_MAX 1024
typedef struct rpc_status {
    rpc_code code;
    char message[RPC_MESSAGE_MAX]; /* NUL-terminated, cut to fit */
} rpc_status;

/* The methods of service stratus.v1.Stratus, in .proto order. */
typedef enum rpc_method {
    RPC_METHOD_APPLY,         /* ApplyRequest → ApplyResponse */
    RPC_METHOD_GET,           /* GetRequest → ObjectResponse */
    RPC_METHOD_LIST,          /* ListRequest → ListResponse */
    RPC_METHOD_DELETE,        /* DeleteRequest → ObjectResponse */
    RPC_METHOD_WATCH,         /* WatchRequest → stream WatchEvent */
    RPC_METHOD_UPDATE_STATUS, /* UpdateStatusRequest → ObjectResponse */
    RPC_METHOD_BIND,          /* BindRequest → BindResponse */
    RPC_METHOD_UNBIND,        /* UnbindRequest → ObjectResponse */
    RPC_METHOD_RENEW_LEASE,   /* RenewLeaseRequest → RenewLeaseResponse */
    RPC_METHOD_HEALTH,        /* HealthRequest → HealthResponse */
    _RPC_METHOD_MAX,
} rpc_method;

/* "Get"; NULL when out of range. */
const char *rpc_method_to_string(rpc_method m);
/* "/stratus.v1.Stratus/Get"; NULL when out of range. */
const char *rpc_method_path(rpc_method m);
/* The protobuf-c descriptors of a method's request and reply messages; NULL when out of range. */
const ProtobufCMessageDescriptor *rpc_method_request_type(rpc_method m);
const ProtobufCMessageDescriptor *rpc_method_reply_type(rpc_method m);
/* Whether the server sends a stream of replies (Watch). */
bool rpc_method_is_streaming(rpc_method m);

/* Frees a message that this module unpacked (requests are owned by their call; replies and
 * watch events are given to the caller, who frees them with this). Accepts NULL; returns NULL. */
void *rpc_message_free(void *msg);

/* A message encoded once to be sent on many streams (one watch event to every watcher): each
 * send shares the bytes instead of encoding again. Immutable; any thread may send it at once. */
typedef struct rpc_encoded rpc_encoded;
/* Encodes msg. Returns 0 and the encoding in *ret (caller frees it with rpc_encoded_free), or
 * -EMSGSIZE when it is larger than RPC_MESSAGE_SIZE_MAX. Any thread. */
#define RPC_MESSAGE_SIZE_MAX ((size_t)64 << 20)
int rpc_encode(const ProtobufCMessage *msg, rpc_encoded **ret);
/* Size on the wire, in bytes. */
size_t rpc_encoded_size(const rpc_encoded *e);
/* Accepts NULL; returns NULL. Sends in progress keep their own reference to the bytes. */
rpc_encoded *rpc_encoded_free(rpc_encoded *e);
