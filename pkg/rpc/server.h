/* The Stratus gRPC server: listens on one address, decodes requests of the methods it has
 * handlers for, and lets the handlers reply later, from any thread. It owns its completion-queue
 * worker threads; handlers and cancel callbacks run on them and must return quickly (hand the
 * work to the program's own loop). Methods without a handler, and unknown paths, are answered
 * UNIMPLEMENTED at once. Not the place for business logic or logging: see docs/rpc.md. */
#pragma once

#include "rpc/rpc.h"

typedef struct rpc_server rpc_server;
/* One incoming call. It belongs to its handler from the moment the handler is called until the
 * handler ends it with rpc_call_reply() (any method) or rpc_stream_finish() (streaming methods);
 * afterwards it must not be touched. */
typedef struct rpc_call rpc_call;

/* Called on a server worker thread when a call arrives. `request` is the decoded request (the
 * method's request type, e.g. Stratus__V1__GetRequest for RPC_METHOD_GET); it stays valid until
 * the call is ended. The handler must end the call exactly once, now or later, from any thread. */
typedef void (*rpc_handler_fn)(rpc_call *call, const ProtobufCMessage *request, void *userdata);

typedef struct rpc_handler {
    rpc_handler_fn fn; /* NULL: the method answers UNIMPLEMENTED */
    void *userdata;
} rpc_handler;

/* Zero fields take the defaults below; docs/rpc.md has the table. */
typedef struct rpc_server_options {
    /* Largest request accepted; 0 → 4 MiB. Over it gRPC itself answers RESOURCE_EXHAUSTED. */
    size_t max_receive_bytes;
    /* Completion-queue worker threads; 0 → 2. */
    unsigned threads;
    /* Calls waiting to be accepted, per method; 0 → 8. */
    unsigned slots_per_method;
    /* Calls open at once; more get RESOURCE_EXHAUSTED; 0 → 10000. */
    unsigned max_calls;
    /* HTTP/2 concurrent streams per connection; 0 → 1000. */
    unsigned max_streams_per_connection;
    /* Messages queued per stream behind the one being sent; one more ends the stream with
     * RPC_CODE_RELIST; 0 → 1024. */
    size_t stream_queue_max;
    /* Ping connections this often; drop one whose ping is not answered in 20 s; 0 → 60 s. */
    usec_t keepalive;
} rpc_server_options;

/* Listens on addr ("127.0.0.1:7443", "[::]:0", "unix:/path"; port 0 picks a free port, see
 * rpc_server_port) and starts serving `handlers` (indexed by rpc_method, _RPC_METHOD_MAX entries;
 * copied). opts may be NULL for defaults. SO_REUSEPORT is off, so a second server on a busy port
 * fails instead of sharing it. Returns 0 and the server in *ret; -EADDRINUSE when it cannot
 * listen there (gRPC does not say why: a port in use or an address it cannot parse); -EINVAL
 * for options out of range. Call from the program's main thread, after blocking signals (see
 * rpc/rpc.h). */
int rpc_server_new(const char *addr, const rpc_server_options *opts,
                   const rpc_handler handlers[_RPC_METHOD_MAX], rpc_server **ret);
/* The TCP port the server listens on (the one picked for port 0); 0 for unix sockets. */
int rpc_server_port(const rpc_server *s);
/* Stops the server: accepts no new calls, waits up to `grace` for open calls to end, then ends
 * the rest with UNAVAILABLE "server is shutting down" (handlers get their cancel callbacks) and
 * waits until gRPC is done with every call. Returns then, even if handlers still hold calls:
 * ending those later is harmless and frees them. Idempotent. Any thread except a server worker
 * (never from a handler or cancel callback). */
void rpc_server_shutdown(rpc_server *s, usec_t grace);
/* Shuts down (with no grace if rpc_server_shutdown was not called) and frees the server and its
 * threads. Accepts NULL; returns NULL. Same thread rule as rpc_server_shutdown. */
rpc_server *rpc_server_free(rpc_server *s);

/* Which method the call is for. Any thread, while the handler owns the call. */
rpc_method rpc_call_method(const rpc_call *call);
/* The client's deadline on the now_monotonic() clock, or USEC_INFINITY. Any thread, while the
 * handler owns the call. */
usec_t rpc_call_deadline(const rpc_call *call);
/* Whether the call was cancelled (client went away, deadline passed, stream overflow, server
 * shutdown): replies will be dropped. Any thread, while the handler owns the call. */
bool rpc_call_is_cancelled(rpc_call *call);

/* Called once, on a server worker thread, when a call is cancelled before its handler ended it.
 * It must return quickly (post to the handler's loop) and may end the call itself. It never runs
 * after rpc_call_reply/rpc_stream_finish has returned. */
typedef void (*rpc_cancel_fn)(rpc_call *call, void *userdata);
/* Sets the cancel callback. Returns 0, or -ECANCELED when the call is already cancelled (the
 * callback will not run; end the call). Any thread, while the handler owns the call. */
int rpc_call_on_cancel(rpc_call *call, rpc_cancel_fn fn, void *userdata);

/* Ends the call: with code RPC_CODE_OK, sends `reply` (the method's reply type; for a streaming
 * method it is sent as a last message, or may be NULL) then the status; with any other code
 * sends the status and `message` (may be NULL; reply is ignored). Always consumes the call, also
 * on error. Returns 0; -ECANCELED when the call was cancelled (nothing sent); -EINVAL when reply
 * is missing or of the wrong type (the client gets INTERNAL instead). Any thread, once. */
int rpc_call_reply(rpc_call *call, rpc_code code, const char *message,
                   const ProtobufCMessage *reply);

/* Queues a message on a streaming call (the method's reply type). At most one message is on its
 * way at a time; the rest wait in a queue bounded by stream_queue_max. Returns 0; -ECANCELED when
 * the call was cancelled (drop the watcher and end the call); -ENOBUFS when the queue was full:
 * the stream has been ended with RPC_CODE_RELIST "watch fell behind" (end the call too);
 * -EINVAL for a message of the wrong type or a non-streaming call. Any thread, while the handler
 * owns the call; one thread at a time per call keeps the order. */
int rpc_stream_send(rpc_call *call, const ProtobufCMessage *msg);
/* How many more messages rpc_stream_send would queue now without ending the stream (0 once the
 * call is cancelled or ended), so a producer can go at the client's pace. Any thread. */
size_t rpc_stream_room(rpc_call *call);
/* From now on, messages waiting behind the one being sent go out together: as one message of
 * the reply type whose repeated field number `field` (of the reply type itself) holds each, up to
 * max_bytes in all (one larger than that goes alone). Only for a client that asked for it
 * (WatchRequest.batch). Nothing waits for a batch to fill: a message goes at once when nothing
 * is being sent (unless held, rpc_stream_hold), so only a stream that is behind, or held, gets
 * batches. */
void rpc_stream_coalesce(rpc_call *call, unsigned field, size_t max_bytes);
/* The same with a message encoded once for many streams; e is not consumed. */
int rpc_stream_send_encoded(rpc_call *call, const rpc_encoded *e);
/* For a stream that coalesces: its queue does not drain — messages sent from now on, and those
 * already waiting — until rpc_stream_flush (or until a batch is full, or the call ends), so that
 * a producer with several at once (the events of one etcd response) sends them as one batch
 * instead of the first alone and the rest behind it. Hold briefly. No effect on a stream that
 * does not coalesce. The handler's thread. */
void rpc_stream_hold(rpc_call *call);
void rpc_stream_flush(rpc_call *call);
/* Ends a streaming call with a status after the queued messages have been sent. Consumes the
 * call. Returns 0 or -ECANCELED (nothing more will be sent). Any thread, once. */
int rpc_stream_finish(rpc_call *call, rpc_code code, const char *message);
