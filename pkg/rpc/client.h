/* The Stratus gRPC client, for stratusctl, the scheduler and node agents: blocking unary calls
 * with a deadline (one typed wrapper per method) and a Watch stream read with a timeout. Calls
 * never wait for a server to become reachable: one that cannot be reached fails at once with
 * UNAVAILABLE, and every call ends by its deadline at the latest. See docs/rpc.md. */
#pragma once

#include "rpc/rpc.h"

typedef struct rpc_client rpc_client;

typedef struct rpc_client_options {
    size_t max_receive_bytes;     /* largest reply or watch event accepted; 0 → 64 MiB */
    usec_t keepalive;             /* ping the server this often when a call is open, and give
                                     up on the connection after 20 s without answer; 0 → 30 s */
    usec_t max_reconnect_backoff; /* longest wait between connection attempts; 0 → 5 s */
} rpc_client_options;

/* Creates a client for target ("127.0.0.1:7443", "dns:///api.example:7443", "unix:/path").
 * Connecting happens lazily, on the first call. opts may be NULL. Returns 0 and the client in
 * *ret, or -EINVAL. A client may be used by many threads at once. */
int rpc_client_new(const char *target, const rpc_client_options *opts, rpc_client **ret);
/* Accepts NULL; returns NULL. No call or watch of this client may still be running. */
rpc_client *rpc_client_free(rpc_client *c);

/* Calls a unary method and waits for its reply for at most `timeout` (USEC_INFINITY: no
 * deadline). `request` must be of the method's request type. Returns 0 and the reply in
 * *ret_reply (the method's reply type; free it with rpc_message_free); or the status as a -errno
 * (rpc_code_to_errno: -ENOENT for NOT_FOUND, -ETIMEDOUT for DEADLINE_EXCEEDED, -EHOSTDOWN for
 * UNAVAILABLE, ...), or -EINVAL for a bad method or request type. When status is not NULL it is
 * filled in every case (code OK on success). Any thread. */
int rpc_client_call(rpc_client *c, rpc_method m, const ProtobufCMessage *request, usec_t timeout,
                    ProtobufCMessage **ret_reply, rpc_status *status);

/* Typed wrappers of rpc_client_call, one per unary method: same returns and rules. */
#define RPC_CLIENT_UNARY(name, method, Request, Reply)                                             \
    static inline int name(rpc_client *c, const Request *request, usec_t timeout, Reply **ret,     \
                           rpc_status *status)                                                     \
    {                                                                                              \
        return rpc_client_call(c, method, &request->base, timeout, (ProtobufCMessage **)ret,       \
                               status);                                                            \
    }
RPC_CLIENT_UNARY(rpc_client_apply, RPC_METHOD_APPLY, Stratus__V1__ApplyRequest,
                 Stratus__V1__ApplyResponse)
RPC_CLIENT_UNARY(rpc_client_get, RPC_METHOD_GET, Stratus__V1__GetRequest,
                 Stratus__V1__ObjectResponse)
RPC_CLIENT_UNARY(rpc_client_list, RPC_METHOD_LIST, Stratus__V1__ListRequest,
                 Stratus__V1__ListResponse)
RPC_CLIENT_UNARY(rpc_client_delete, RPC_METHOD_DELETE, Stratus__V1__DeleteRequest,
                 Stratus__V1__ObjectResponse)
RPC_CLIENT_UNARY(rpc_client_update_status, RPC_METHOD_UPDATE_STATUS,
                 Stratus__V1__UpdateStatusRequest, Stratus__V1__ObjectResponse)
RPC_CLIENT_UNARY(rpc_client_bind, RPC_METHOD_BIND, Stratus__V1__BindRequest,
                 Stratus__V1__BindResponse)
RPC_CLIENT_UNARY(rpc_client_unbind, RPC_METHOD_UNBIND, Stratus__V1__UnbindRequest,
                 Stratus__V1__ObjectResponse)
RPC_CLIENT_UNARY(rpc_client_renew_lease, RPC_METHOD_RENEW_LEASE, Stratus__V1__RenewLeaseRequest,
                 Stratus__V1__RenewLeaseResponse)
RPC_CLIENT_UNARY(rpc_client_health, RPC_METHOD_HEALTH, Stratus__V1__HealthRequest,
                 Stratus__V1__HealthResponse)
#undef RPC_CLIENT_UNARY

/* One open Watch stream. Read by one thread at a time; rpc_watch_cancel may come from any. */
typedef struct rpc_watch rpc_watch;

/* Starts a Watch (no deadline: watches are long-lived). Returns 0 and the stream in *ret;
 * -EINVAL for a request of the wrong type, -EMSGSIZE, -EIO. Whether the server could be reached
 * and accepted it shows in the first rpc_watch_next(). Any thread. */
int rpc_client_watch(rpc_client *c, const Stratus__V1__WatchRequest *request, rpc_watch **ret);
/* Waits up to `timeout` (0: just poll; USEC_INFINITY: forever) for the next event. Returns 0 and
 * the event in *ret_event (free it with rpc_message_free); -ETIMEDOUT when none came in time (the
 * stream goes on; call again); -ECANCELED after rpc_watch_cancel; when the stream has ended,
 * after every event sent before the end was returned: the end status as a -errno (-ERANGE for
 * RPC_CODE_RELIST: List again; -EHOSTDOWN for UNAVAILABLE; -EPIPE when the server ended it with
 * OK), and the same again on later calls. status, when not NULL, is filled on every return
 * except 0 and -ETIMEDOUT. The reading thread only. */
int rpc_watch_next(rpc_watch *w, usec_t timeout, Stratus__V1__WatchEvent **ret_event,
                   rpc_status *status);
/* Cancels the stream: a reader blocked in rpc_watch_next wakes up with -ECANCELED, and the
 * server sees the cancellation. Any thread, as long as the watch is not being freed. */
void rpc_watch_cancel(rpc_watch *w);
/* The messages received so far: with batches (WatchRequest.batch, which this client always
 * asks for), fewer than the events rpc_watch_next returned. */
size_t rpc_watch_messages(const rpc_watch *w);
/* Events received in a batch and not handed out yet (rpc_watch_free frees them). */
size_t rpc_watch_buffered(const rpc_watch *w);
/* Cancels if still open, waits until gRPC is done with the stream and frees it. Accepts NULL;
 * returns NULL. The reading thread, once no other thread can call rpc_watch_cancel. */
rpc_watch *rpc_watch_free(rpc_watch *w);
