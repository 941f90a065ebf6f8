/* The server half of the gRPC adapter: one completion queue, worker threads that take its events,
 * request slots kept posted per method (plus one generic slot that answers UNIMPLEMENTED), and
 * calls that their handlers end later from any thread. docs/rpc.md explains the life of a call;
 * the short version:
 *
 *   - A call is "attached" while gRPC may still complete something for it: its RECV_CLOSE batch
 *     (posted when it arrives; it reports cancellation) or its one send batch in flight. It is on
 *     the server's list and counted in ncalls. It detaches (grpc_call_unref) on a worker thread
 *     when the last of those completes.
 *   - Separately, the handler owns the call until it ends it. The memory goes when both are over,
 *     so a handler may end a call that gRPC and even the server are long done with.
 *   - No batch is ever started on a detached call, and the completion queue is shut down only
 *     once no call is attached and none can attach any more (cq_closing).
 *
 * Lock order: the server's lock, then a call's lock (only rpc_server_shutdown takes both). gRPC
 * is called under either: it never calls back into this file but through the completion queue. */
#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/list.h"
#include "rpc/rpc-internal.h"
#include "rpc/server.h"

typedef enum tag_kind {
    TAG_SLOT,          /* a registered method's call arrived (or the request failed at shutdown) */
    TAG_GENERIC,       /* a call for a method nobody handles arrived */
    TAG_UNIMPLEMENTED, /* the UNIMPLEMENTED answer to such a call is done */
    TAG_RECV_CLOSE,    /* a call closed; tells whether it was cancelled */
    TAG_SEND,          /* a call's send batch is done */
    TAG_SHUTDOWN,      /* grpc_server_shutdown_and_notify is done */
} tag_kind;

typedef struct rpc_tag {
    tag_kind kind;
} rpc_tag;

typedef struct slot {
    rpc_tag tag;
    const rpc_method_info *method;
    void *registered;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array metadata;
    grpc_byte_buffer *payload;
} slot;

typedef struct generic_slot {
    rpc_tag tag;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array metadata;
} generic_slot;

typedef struct unimplemented_call {
    rpc_tag tag;
    grpc_call *call;
    grpc_slice details;
    int cancelled;
} unimplemented_call;

struct rpc_call {
    rpc_tag recv_close_tag;
    rpc_tag send_tag;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* cb_running went false */
    const rpc_method_info *method;
    ProtobufCMessage *request;
    usec_t deadline;
    size_t queue_max;

    /* Attached state. list_call and prev/next are guarded by the server's lock and stay valid
     * while the call is on the list; server and gcall are NULL once detaching. */
    rpc_server *server;
    grpc_call *gcall;
    grpc_call *list_call;
    struct rpc_call *prev, *next;

    int recv_close_cancelled; /* written by gRPC */
    bool recv_close_done;
    bool cancelled; /* by the client, a deadline, an overflow, the server: nothing more is sent */
    bool server_ended; /* the shutting-down server queued its own status in the handler's place */
    bool send_in_flight;
    grpc_byte_buffer *sending;  /* message of the batch in flight */
    grpc_slice sending_details; /* status message of the batch in flight */
    bool sending_status;
    bool initial_metadata_sent;
    bool status_started;
    bool finish_pending; /* send the status once the queue is empty */
    rpc_code finish_code;
    char *finish_message;
    grpc_byte_buffer **queue; /* ring of queue_max + 1 (the +1 is for rpc_call_reply's message) */
    size_t queue_head, queue_len;
    unsigned coalesce_field; /* rpc_stream_coalesce; 0: one message per send */
    size_t coalesce_max;
    bool held; /* rpc_stream_hold: messages wait for rpc_stream_flush (or a full batch) */

    bool owner_done; /* the handler ended the call */
    bool detaching, detached, freeing;

    rpc_cancel_fn cancel_fn;
    void *cancel_userdata;
    bool cancel_notified, cb_running;
    pthread_t cb_thread;
};

struct rpc_server {
    grpc_server *server;
    grpc_completion_queue *cq;
    rpc_server_options opts;
    rpc_handler handlers[_RPC_METHOD_MAX];
    slot *slots;
    size_t n_slots;
    generic_slot generic;
    rpc_tag shutdown_tag;
    pthread_t *threads;
    unsigned n_threads;
    int port;

    pthread_mutex_t lock;
    pthread_cond_t cond;    /* shutdown_notified, ncalls, stopped changed */
    bool shutting_down;     /* no more requests are posted */
    bool shutdown_notified; /* gRPC finished its shutdown */
    bool cq_closing;        /* no call may attach or start a batch any more */
    bool stopped;           /* rpc_server_shutdown is done */
    unsigned ncalls;
    rpc_call *calls;
};

#define STATUS_MESSAGE_MAX 4096

static const char relist_message[] =
    "watch fell behind: too many events waiting to be sent; list again, then watch from the "
    "list's resourceVersion";
static const char shutting_down_message[] = "server is shutting down";

static void cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

/* Waits on c until `until` (now_monotonic clock). Returns false on timeout. */
static bool cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, usec_t until)
{
    if (until == USEC_INFINITY) {
        pthread_cond_wait(c, m);
        return true;
    }
    struct timespec ts = {.tv_sec = (time_t)(until / USEC_PER_SEC),
                          .tv_nsec = (long)(until % USEC_PER_SEC) * 1000};
    return pthread_cond_timedwait(c, m, &ts) != ETIMEDOUT;
}

/* ---- calls ---- */

static void queue_push(rpc_call *c, grpc_byte_buffer *bb)
{
    size_t cap = c->queue_max + 1;
    if (!c->queue)
        c->queue = xnew(grpc_byte_buffer *, cap);
    c->queue[(c->queue_head + c->queue_len) % cap] = bb;
    c->queue_len++;
}

static grpc_byte_buffer *queue_pop(rpc_call *c)
{
    if (c->queue_len == 0)
        return NULL;
    grpc_byte_buffer *bb = c->queue[c->queue_head];
    c->queue_head = (c->queue_head + 1) % (c->queue_max + 1);
    c->queue_len--;
    return bb;
}

#define COALESCE_ITEMS_MAX 256

/* Appends the protobuf key of a length-delimited `field` and `len` as varints to out. */
static size_t field_prefix(uint8_t out[static 20], unsigned field, size_t len)
{
    size_t n = 0;
    for (uint64_t v = ((uint64_t)field << 3) | 2;; v >>= 7) {
        out[n++] = (uint8_t)(v & 0x7f) | (v > 0x7f ? 0x80 : 0);
        if (v <= 0x7f)
            break;
    }
    for (uint64_t v = len;; v >>= 7) {
        out[n++] = (uint8_t)(v & 0x7f) | (v > 0x7f ? 0x80 : 0);
        if (v <= 0x7f)
            break;
    }
    return n;
}

/* first (popped) and the messages queued behind it, up to coalesce_max bytes, as one message
 * whose repeated field coalesce_field holds each: a message's encoding is the concatenation of
 * its fields', so this is each one's bytes behind a key and a length, without re-encoding (the
 * slices are shared, not copied). Call lock held. */
static grpc_byte_buffer *queue_coalesce(rpc_call *c, grpc_byte_buffer *first)
{
    grpc_byte_buffer *items[COALESCE_ITEMS_MAX];
    size_t n = 0, total = grpc_byte_buffer_length(first);
    items[n++] = first;
    while (n < COALESCE_ITEMS_MAX && c->queue_len > 0) {
        size_t len = grpc_byte_buffer_length(c->queue[c->queue_head]);
        if (total + len + 20 * (n + 1) > c->coalesce_max)
            break;
        items[n++] = queue_pop(c);
        total += len;
    }
    if (n == 1)
        return first;
    size_t n_slices = 0, allocated = 0;
    grpc_slice *slices = NULL;
    for (size_t i = 0; i < n; i++) {
        uint8_t pre[20];
        size_t k = field_prefix(pre, c->coalesce_field, grpc_byte_buffer_length(items[i]));
        slices = xgrow(slices, &allocated, n_slices + 1, sizeof(grpc_slice));
        slices[n_slices++] = grpc_slice_from_copied_buffer((const char *)pre, k);
        grpc_byte_buffer_reader r;
        if (!grpc_byte_buffer_reader_init(&r, items[i]))
            abort(); /* only fails for compressed buffers, which this server never makes */
        grpc_slice s;
        while (grpc_byte_buffer_reader_next(&r, &s)) {
            slices = xgrow(slices, &allocated, n_slices + 1, sizeof(grpc_slice));
            slices[n_slices++] = s;
        }
        grpc_byte_buffer_reader_destroy(&r);
        grpc_byte_buffer_destroy(items[i]);
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, n_slices);
    for (size_t i = 0; i < n_slices; i++)
        grpc_slice_unref(slices[i]);
    free(slices);
    return bb;
}

static void queue_clear(rpc_call *c)
{
    grpc_byte_buffer *bb;
    while ((bb = queue_pop(c)))
        grpc_byte_buffer_destroy(bb);
}

static void call_free(rpc_call *c)
{
    queue_clear(c);
    free(c->queue);
    free(c->finish_message);
    rpc_message_free(c->request);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}

/* Takes the call off the server: called once, on a worker thread, without the call's lock. */
static void server_forget_call(rpc_server *s, rpc_call *c, grpc_call *gcall)
{
    pthread_mutex_lock(&s->lock);
    LIST_REMOVE(s->calls, c);
    grpc_call_unref(gcall);
    s->ncalls--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Detaches and frees the call when their time has come. Called with the call's lock held;
 * releases it. The call may be gone afterwards. */
static void call_settle(rpc_call *c)
{
    if (!c->detaching && c->recv_close_done && !c->send_in_flight) {
        rpc_server *s = c->server;
        grpc_call *gcall = c->gcall;
        c->detaching = true;
        c->server = NULL;
        c->gcall = NULL;
        queue_clear(c);
        pthread_mutex_unlock(&c->lock);
        server_forget_call(s, c, gcall);
        pthread_mutex_lock(&c->lock);
        c->detached = true;
    }
    bool free_it = c->detached && c->owner_done && !c->cb_running && !c->freeing;
    if (free_it)
        c->freeing = true;
    pthread_mutex_unlock(&c->lock);
    if (free_it)
        call_free(c);
}

/* Marks the call cancelled from our side; nothing more will be sent. Call lock held. */
static void call_mark_cancelled(rpc_call *c)
{
    c->cancelled = true;
    c->finish_pending = false;
    queue_clear(c);
}

/* Starts the next send batch when none is in flight: the next queued message, with the initial
 * metadata if not sent yet and with the status if it is the last thing to send. Call lock held. */
static void call_pump(rpc_call *c)
{
    if (c->send_in_flight || c->cancelled || c->status_started || !c->gcall)
        return;
    if (c->held && !c->finish_pending && c->queue_len < MIN(COALESCE_ITEMS_MAX, c->queue_max))
        return;
    grpc_byte_buffer *bb = queue_pop(c);
    if (bb && c->coalesce_field && c->queue_len > 0)
        bb = queue_coalesce(c, bb);
    bool with_status = c->finish_pending && c->queue_len == 0;
    if (!bb && !with_status)
        return;

    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof(ops));
    if (!c->initial_metadata_sent) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        c->initial_metadata_sent = true;
    }
    if (bb) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = bb;
    }
    if (with_status) {
        c->sending_details =
            grpc_slice_from_copied_string(c->finish_message ? c->finish_message : "");
        c->sending_status = true;
        c->status_started = true;
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = (grpc_status_code)c->finish_code;
        ops[n++].data.send_status_from_server.status_details = &c->sending_details;
    }
    c->sending = bb;
    if (grpc_call_start_batch(c->gcall, ops, n, &c->send_tag, NULL) != GRPC_CALL_OK) {
        /* Only a bug in this file gets here; end the call rather than wedge it. */
        if (bb)
            grpc_byte_buffer_destroy(bb);
        if (c->sending_status)
            grpc_slice_unref(c->sending_details);
        c->sending = NULL;
        c->sending_status = false;
        call_mark_cancelled(c);
        grpc_call_cancel(c->gcall, NULL);
        return;
    }
    c->send_in_flight = true;
}

static void call_on_send_done(rpc_call *c, bool ok)
{
    pthread_mutex_lock(&c->lock);
    c->send_in_flight = false;
    if (c->sending)
        grpc_byte_buffer_destroy(c->sending);
    c->sending = NULL;
    if (c->sending_status)
        grpc_slice_unref(c->sending_details);
    c->sending_status = false;
    if (!ok)
        call_mark_cancelled(c);
    else
        call_pump(c);
    call_settle(c);
}

static void call_on_recv_close(rpc_call *c, bool ok)
{
    pthread_mutex_lock(&c->lock);
    c->recv_close_done = true;
    if ((!ok || c->recv_close_cancelled) && !c->cancelled)
        call_mark_cancelled(c);
    if ((c->cancelled || c->server_ended) && c->cancel_fn && !c->owner_done &&
        !c->cancel_notified) {
        c->cancel_notified = true;
        c->cb_running = true;
        c->cb_thread = pthread_self();
        pthread_mutex_unlock(&c->lock);
        c->cancel_fn(c, c->cancel_userdata);
        pthread_mutex_lock(&c->lock);
        c->cb_running = false;
        pthread_cond_broadcast(&c->cond);
    }
    call_settle(c);
}

/* The handler gives the call up: queue the last message and the status. Consumes bb. */
static int call_end(rpc_call *c, grpc_byte_buffer *bb, rpc_code code, const char *message, int r)
{
    pthread_mutex_lock(&c->lock);
    while (c->cb_running && !pthread_equal(c->cb_thread, pthread_self()))
        pthread_cond_wait(&c->cond, &c->lock);
    c->owner_done = true;
    if (c->cancelled || c->server_ended || c->status_started || !c->gcall) {
        if (bb)
            grpc_byte_buffer_destroy(bb);
        if (r == 0)
            r = -ECANCELED;
    } else {
        if (bb)
            queue_push(c, bb);
        c->finish_pending = true;
        c->finish_code = code;
        c->finish_message = message ? xstrndup(message, STATUS_MESSAGE_MAX) : NULL;
        call_pump(c);
    }
    call_settle(c);
    return r;
}

rpc_method rpc_call_method(const rpc_call *call)
{
    return call->method->method;
}

usec_t rpc_call_deadline(const rpc_call *call)
{
    return call->deadline;
}

bool rpc_call_is_cancelled(rpc_call *call)
{
    pthread_mutex_lock(&call->lock);
    bool r = call->cancelled || call->server_ended;
    pthread_mutex_unlock(&call->lock);
    return r;
}

int rpc_call_on_cancel(rpc_call *call, rpc_cancel_fn fn, void *userdata)
{
    pthread_mutex_lock(&call->lock);
    int r = 0;
    if (call->cancelled || call->server_ended)
        r = -ECANCELED;
    else {
        call->cancel_fn = fn;
        call->cancel_userdata = userdata;
    }
    pthread_mutex_unlock(&call->lock);
    return r;
}

int rpc_call_reply(rpc_call *call, rpc_code code, const char *message,
                   const ProtobufCMessage *reply)
{
    grpc_byte_buffer *bb = NULL;
    int r = 0;
    if ((unsigned)code >= _RPC_CODE_MAX) {
        code = RPC_CODE_INTERNAL;
        message = "server error: invalid status code";
        r = -EINVAL;
    } else if (code == RPC_CODE_OK) {
        if (reply && reply->descriptor == call->method->reply) {
            if (rpc_byte_buffer_encode(reply, &bb) < 0) {
                code = RPC_CODE_INTERNAL;
                message = "server error: reply too large";
                r = -EMSGSIZE;
            }
        } else if (reply || !call->method->streaming) {
            code = RPC_CODE_INTERNAL;
            message = "server error: missing or mistyped reply";
            r = -EINVAL;
        }
    }
    return call_end(call, bb, code, message, r);
}

int rpc_stream_finish(rpc_call *call, rpc_code code, const char *message)
{
    return rpc_call_reply(call, code, message, NULL);
}

int rpc_stream_send_encoded(rpc_call *call, const rpc_encoded *e)
{
    if (!call->method->streaming || e->type != call->method->reply)
        return -EINVAL;
    pthread_mutex_lock(&call->lock);
    int r = 0;
    if (call->owner_done)
        r = -EINVAL;
    else if (call->cancelled || call->server_ended || call->status_started || !call->gcall)
        r = -ECANCELED;
    else if (call->send_in_flight && call->queue_len >= call->queue_max) {
        /* Cancelling (rather than queueing a status behind a send that a stalled client may
         * never let finish) puts the status on the wire now. */
        call_mark_cancelled(call);
        call->cancel_notified = true; /* the handler learns it from this return */
        grpc_call_cancel_with_status(call->gcall, GRPC_STATUS_OUT_OF_RANGE, relist_message, NULL);
        r = -ENOBUFS;
    } else {
        queue_push(call, grpc_byte_buffer_copy(e->bb));
        call_pump(call);
    }
    pthread_mutex_unlock(&call->lock);
    return r;
}

void rpc_stream_coalesce(rpc_call *call, unsigned field, size_t max_bytes)
{
    pthread_mutex_lock(&call->lock);
    call->coalesce_field = field;
    call->coalesce_max = max_bytes;
    pthread_mutex_unlock(&call->lock);
}

void rpc_stream_hold(rpc_call *call)
{
    pthread_mutex_lock(&call->lock);
    call->held = call->coalesce_field != 0;
    pthread_mutex_unlock(&call->lock);
}

void rpc_stream_flush(rpc_call *call)
{
    pthread_mutex_lock(&call->lock);
    if (call->held) {
        call->held = false;
        call_pump(call);
    }
    pthread_mutex_unlock(&call->lock);
}

size_t rpc_stream_room(rpc_call *call)
{
    pthread_mutex_lock(&call->lock);
    size_t room = 0;
    if (!call->owner_done && !call->cancelled && !call->server_ended && !call->status_started &&
        call->gcall)
        room = call->queue_len >= call->queue_max ? 0 : call->queue_max - call->queue_len;
    pthread_mutex_unlock(&call->lock);
    return room;
}

int rpc_stream_send(rpc_call *call, const ProtobufCMessage *msg)
{
    rpc_encoded *e;
    int r = rpc_encode(msg, &e);
    if (r < 0)
        return r;
    r = rpc_stream_send_encoded(call, e);
    rpc_encoded_free(e);
    return r;
}

/* ---- arrivals ---- */

/* Posts a slot's request again, unless the server is shutting down. Server lock held. */
static void slot_post(rpc_server *s, slot *sl)
{
    if (s->shutting_down)
        return;
    grpc_server_request_registered_call(s->server, sl->registered, &sl->call, &sl->deadline,
                                        &sl->metadata, &sl->payload, s->cq, s->cq, &sl->tag);
}

static void generic_post(rpc_server *s)
{
    if (s->shutting_down)
        return;
    grpc_server_request_call(s->server, &s->generic.call, &s->generic.details, &s->generic.metadata,
                             s->cq, s->cq, &s->generic.tag);
}

static void on_slot(rpc_server *s, slot *sl, bool ok)
{
    grpc_call *gcall = sl->call;
    grpc_byte_buffer *payload = sl->payload;
    gpr_timespec deadline = sl->deadline;
    sl->call = NULL;
    sl->payload = NULL;
    grpc_metadata_array_destroy(&sl->metadata);
    grpc_metadata_array_init(&sl->metadata);
    if (!ok) {
        if (payload)
            grpc_byte_buffer_destroy(payload);
        return;
    }

    rpc_call *c = xnew(rpc_call, 1);
    c->recv_close_tag.kind = TAG_RECV_CLOSE;
    c->send_tag.kind = TAG_SEND;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->method = sl->method;
    c->deadline = rpc_deadline_to_monotonic(deadline);
    c->queue_max = s->opts.stream_queue_max;
    c->gcall = c->list_call = gcall;
    c->server = s;

    pthread_mutex_lock(&s->lock);
    if (s->cq_closing) {
        /* Too late to serve it: nothing may be started on the queue any more. */
        slot_post(s, sl);
        pthread_mutex_unlock(&s->lock);
        grpc_call_cancel(gcall, NULL);
        grpc_call_unref(gcall);
        if (payload)
            grpc_byte_buffer_destroy(payload);
        call_free(c);
        return;
    }
    slot_post(s, sl);
    bool too_many = s->ncalls >= s->opts.max_calls;
    s->ncalls++;
    LIST_PREPEND(s->calls, c);
    grpc_op op = {.op = GRPC_OP_RECV_CLOSE_ON_SERVER};
    op.data.recv_close_on_server.cancelled = &c->recv_close_cancelled;
    bool closing_posted =
        grpc_call_start_batch(gcall, &op, 1, &c->recv_close_tag, NULL) == GRPC_CALL_OK;
    pthread_mutex_unlock(&s->lock);
    if (!closing_posted) {
        pthread_mutex_lock(&c->lock);
        c->recv_close_done = true;
        call_mark_cancelled(c);
        c->owner_done = true;
        call_settle(c);
        if (payload)
            grpc_byte_buffer_destroy(payload);
        return;
    }

    int r = rpc_byte_buffer_decode(payload, sl->method->request, &c->request);
    if (payload)
        grpc_byte_buffer_destroy(payload);
    const rpc_handler *h = &s->handlers[sl->method->method];
    if (too_many)
        rpc_call_reply(c, RPC_CODE_RESOURCE_EXHAUSTED, "too many calls open on this server", NULL);
    else if (r < 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "request is not a valid %s", sl->method->request->name);
        rpc_call_reply(c, RPC_CODE_INVALID_ARGUMENT, msg, NULL);
    } else
        h->fn(c, c->request, h->userdata);
}

static void on_generic(rpc_server *s, bool ok)
{
    grpc_call *gcall = s->generic.call;
    s->generic.call = NULL;
    char path[128];
    grpc_slice m = s->generic.details.method;
    size_t len = MIN(GRPC_SLICE_LENGTH(m), sizeof(path) - 1);
    memcpy(path, GRPC_SLICE_START_PTR(m), len);
    path[len] = '\0';
    grpc_call_details_destroy(&s->generic.details);
    grpc_call_details_init(&s->generic.details);
    grpc_metadata_array_destroy(&s->generic.metadata);
    grpc_metadata_array_init(&s->generic.metadata);
    if (!ok)
        return;

    unimplemented_call *u = xnew(unimplemented_call, 1);
    u->tag.kind = TAG_UNIMPLEMENTED;
    u->call = gcall;
    char msg[192];
    snprintf(msg, sizeof(msg), "method %s is not implemented by this server", path);
    u->details = grpc_slice_from_copied_string(msg);
    grpc_op ops[3];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[1].data.send_status_from_server.status = GRPC_STATUS_UNIMPLEMENTED;
    ops[1].data.send_status_from_server.status_details = &u->details;
    ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[2].data.recv_close_on_server.cancelled = &u->cancelled;

    pthread_mutex_lock(&s->lock);
    generic_post(s);
    bool started = !s->cq_closing && grpc_call_start_batch(gcall, ops, ELEMENTSOF(ops), &u->tag,
                                                           NULL) == GRPC_CALL_OK;
    pthread_mutex_unlock(&s->lock);
    if (!started) {
        grpc_call_cancel(gcall, NULL);
        grpc_call_unref(gcall);
        grpc_slice_unref(u->details);
        free(u);
    }
}

static void on_unimplemented_done(unimplemented_call *u)
{
    grpc_call_unref(u->call);
    grpc_slice_unref(u->details);
    free(u);
}

static void *worker(void *userdata)
{
    rpc_server *s = userdata;
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        rpc_tag *t = ev.tag;
        switch (t->kind) {
        case TAG_SLOT:
            on_slot(s, container_of(t, slot, tag), ev.success);
            break;
        case TAG_GENERIC:
            on_generic(s, ev.success);
            break;
        case TAG_UNIMPLEMENTED:
            on_unimplemented_done(container_of(t, unimplemented_call, tag));
            break;
        case TAG_RECV_CLOSE:
            call_on_recv_close(container_of(t, rpc_call, recv_close_tag), ev.success);
            break;
        case TAG_SEND:
            call_on_send_done(container_of(t, rpc_call, send_tag), ev.success);
            break;
        case TAG_SHUTDOWN:
            pthread_mutex_lock(&s->lock);
            s->shutdown_notified = true;
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->lock);
            break;
        }
    }
    return NULL;
}

/* ---- the server ---- */

static int options_fill(const rpc_server_options *in, rpc_server_options *o)
{
    *o = in ? *in : (rpc_server_options){0};
    if (o->max_receive_bytes == 0)
        o->max_receive_bytes = (size_t)4 << 20;
    if (o->threads == 0)
        o->threads = 2;
    if (o->slots_per_method == 0)
        o->slots_per_method = 8;
    if (o->max_calls == 0)
        o->max_calls = 10000;
    if (o->max_streams_per_connection == 0)
        o->max_streams_per_connection = 1000;
    if (o->stream_queue_max == 0)
        o->stream_queue_max = 1024;
    if (o->keepalive == 0)
        o->keepalive = 60 * USEC_PER_SEC;
    if (o->max_receive_bytes > RPC_MESSAGE_SIZE_MAX || o->threads > 64 ||
        o->slots_per_method > 1024 || o->max_streams_per_connection > INT32_MAX ||
        o->stream_queue_max > ((size_t)1 << 24) || o->keepalive < USEC_PER_SEC ||
        o->keepalive > 24 * 3600 * USEC_PER_SEC)
        return -EINVAL;
    return 0;
}

int rpc_server_new(const char *addr, const rpc_server_options *opts,
                   const rpc_handler handlers[_RPC_METHOD_MAX], rpc_server **ret)
{
    rpc_server_options o;
    if (!addr || !*addr || options_fill(opts, &o) < 0)
        return -EINVAL;

    rpc_grpc_init();
    rpc_server *s = xnew(rpc_server, 1);
    s->opts = o;
    memcpy(s->handlers, handlers, sizeof(s->handlers));
    pthread_mutex_init(&s->lock, NULL);
    cond_init_monotonic(&s->cond);
    s->shutdown_tag.kind = TAG_SHUTDOWN;
    s->generic.tag.kind = TAG_GENERIC;
    grpc_call_details_init(&s->generic.details);
    grpc_metadata_array_init(&s->generic.metadata);

    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = (int)o.max_receive_bytes},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_CONCURRENT_STREAMS,
         .value.integer = (int)o.max_streams_per_connection},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_KEEPALIVE_TIME_MS,
         .value.integer = (int)(o.keepalive / USEC_PER_MSEC)},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .value.integer = 20000},
        /* Clients ping every 30 s by default (rpc_client_options.keepalive); allow down to 10 s
         * so that a client configured tighter is not sent away with "too_many_pings". */
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
         .value.integer = 10000},
    };
    grpc_channel_args channel_args = {.num_args = ELEMENTSOF(args), .args = args};
    s->server = grpc_server_create(&channel_args, NULL);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->cq, NULL);

    size_t n_methods = 0;
    for (rpc_method m = 0; m < _RPC_METHOD_MAX; m++)
        if (s->handlers[m].fn)
            n_methods++;
    s->slots = xnew(slot, n_methods * o.slots_per_method);
    for (rpc_method m = 0; m < _RPC_METHOD_MAX; m++) {
        if (!s->handlers[m].fn)
            continue;
        const rpc_method_info *info = rpc_method_info_get(m);
        void *registered = grpc_server_register_method(
            s->server, info->path, NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
        for (unsigned i = 0; i < o.slots_per_method; i++) {
            slot *sl = &s->slots[s->n_slots++];
            sl->tag.kind = TAG_SLOT;
            sl->method = info;
            sl->registered = registered;
            grpc_metadata_array_init(&sl->metadata);
        }
    }

    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(s->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (port <= 0) {
        /* Never started, so it can go at once; the queue saw no work. */
        grpc_server_destroy(s->server);
        s->server = NULL;
        grpc_completion_queue_shutdown(s->cq);
        while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(s->cq);
        s->cq = NULL;
        s->stopped = true;
        rpc_server_free(s);
        return -EADDRINUSE;
    }
    s->port = strneq(addr, "unix:", 5) || strneq(addr, "unix-abstract:", 14) ? 0 : port;
    grpc_server_start(s->server);

    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_slots; i++)
        slot_post(s, &s->slots[i]);
    generic_post(s);
    pthread_mutex_unlock(&s->lock);

    s->threads = xnew(pthread_t, o.threads);
    for (unsigned i = 0; i < o.threads; i++) {
        int r = pthread_create(&s->threads[i], NULL, worker, s);
        if (r != 0) {
            rpc_server_free(s);
            return -r;
        }
        s->n_threads++;
    }
    *ret = s;
    return 0;
}

int rpc_server_port(const rpc_server *s)
{
    return s->port;
}

/* Ends every call whose handler still holds it with UNAVAILABLE, through the normal send path
 * (after the message on its way; queued ones are dropped: a watcher resumes from the last event
 * it got). Its handler learns it from the cancel callback. Server lock held. */
static void end_attached_calls(rpc_server *s)
{
    for (rpc_call *c = s->calls; c; c = c->next) {
        pthread_mutex_lock(&c->lock);
        if (!c->owner_done && !c->cancelled && !c->server_ended && !c->status_started && c->gcall) {
            c->server_ended = true;
            queue_clear(c);
            c->finish_pending = true;
            c->finish_code = RPC_CODE_UNAVAILABLE;
            c->finish_message = xstrdup(shutting_down_message);
            call_pump(c);
        }
        pthread_mutex_unlock(&c->lock);
    }
}

/* Cancels every attached call at once, for clients that do not read. Server lock held. */
static void cancel_attached_calls(rpc_server *s)
{
    for (rpc_call *c = s->calls; c; c = c->next)
        grpc_call_cancel_with_status(c->list_call, GRPC_STATUS_UNAVAILABLE, shutting_down_message,
                                     NULL);
}

void rpc_server_shutdown(rpc_server *s, usec_t grace)
{
    pthread_mutex_lock(&s->lock);
    if (s->shutting_down) {
        while (!s->stopped)
            pthread_cond_wait(&s->cond, &s->lock);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    s->shutting_down = true;
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);

    usec_t until = grace == USEC_INFINITY ? USEC_INFINITY : now_monotonic() + grace;
    while (!s->shutdown_notified && cond_wait_until(&s->cond, &s->lock, until))
        ;
    if (!s->shutdown_notified) {
        /* A status first, so clients read "shutting down" rather than "socket closed"; they then
         * leave on the GOAWAY sent at shutdown. Only those that don't are cut off. */
        end_attached_calls(s);
        until = now_monotonic() + USEC_PER_SEC;
        while (!s->shutdown_notified && cond_wait_until(&s->cond, &s->lock, until))
            ;
        if (!s->shutdown_notified)
            grpc_server_cancel_all_calls(s->server);
    }
    /* Calls matched just before the shutdown may still attach; keep cancelling until none is
     * left. gRPC completes every cancelled call promptly. */
    while (!s->shutdown_notified || s->ncalls > 0) {
        if (!cond_wait_until(&s->cond, &s->lock, now_monotonic() + 200 * USEC_PER_MSEC)) {
            cancel_attached_calls(s);
            grpc_server_cancel_all_calls(s->server);
        }
    }
    s->cq_closing = true;
    pthread_mutex_unlock(&s->lock);

    grpc_server_destroy(s->server);
    s->server = NULL;
    grpc_completion_queue_shutdown(s->cq);
    for (unsigned i = 0; i < s->n_threads; i++)
        pthread_join(s->threads[i], NULL);
    s->n_threads = 0;
    grpc_completion_queue_destroy(s->cq);
    s->cq = NULL;

    pthread_mutex_lock(&s->lock);
    s->stopped = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

rpc_server *rpc_server_free(rpc_server *s)
{
    if (!s)
        return NULL;
    if (!s->stopped)
        rpc_server_shutdown(s, 0);
    for (size_t i = 0; i < s->n_slots; i++)
        grpc_metadata_array_destroy(&s->slots[i].metadata);
    free(s->slots);
    grpc_call_details_destroy(&s->generic.details);
    grpc_metadata_array_destroy(&s->generic.metadata);
    free(s->threads);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
    grpc_shutdown();
    return NULL;
}
