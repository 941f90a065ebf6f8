/* The gRPC engine: etcd's native v3 API (etcdserverpb KV, Watch, Lease, Maintenance) through
 * gRPC core and protobuf-c.
 *
 * Threads. gRPC core completes batches on a completion queue that someone must block on, so a
 * store of this engine has one thread of its own doing only that: it takes each completed
 * batch's tag, appends it to a locked list and wakes the store's loop with ev_async. Everything
 * else — starting calls, decoding replies, failover, watch bookkeeping, callbacks — runs on the
 * loop thread, in completion order. The thread never touches a request; the loop never blocks.
 *
 * Connections. One channel per endpoint for requests (receive cap max_response) and one for
 * watches (receive cap max_event_line); gRPC multiplexes every request and stream of a channel
 * over one HTTP/2 connection. Calls are fail-fast: a member that cannot be reached answers
 * UNAVAILABLE at once, and the request moves to the next endpoint. Reconnect backoff is capped
 * at 1 s so a restarted member is used again quickly.
 *
 * Requests are unary calls (LeaseKeepAlive, a stream in etcd, is used as one request and one
 * reply): one batch with all six operations, so one completion (one hand-over to the loop) per
 * attempt. Watches are one Watch stream each: a create request, then a receive batch posted again
 * after every message, and a status batch that tells how the stream ended.
 *
 * Freeing. A request or stream that is dropped on the loop (store_watch_free) is cancelled and
 * kept, without its owner, until its batches are done. store_free cancels everything, shuts the
 * completion queue down, joins the thread (which ends once every batch is done) and then frees
 * what is left; no callback runs. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "base/alloc.h"
#include "base/list.h"
#include "engine.h"
#include "grpc-internal.h"

typedef enum gtag_kind {
    TAG_REQ,
    TAG_WATCH_START,
    TAG_WATCH_RECV,
    TAG_WATCH_STATUS,
} gtag_kind;

/* A batch's tag: the cq thread fills `ok` and queues it for the loop. */
typedef struct gtag {
    gtag_kind kind;
    bool ok;
    void *owner;
    struct gtag *next;
} gtag;

typedef struct greq {
    store *s;
    struct greq *prev, *next;
    store_kind kind;
    store_shape shape;
    grpc_slice payload; /* the encoded request, sent again on failover */
    size_t endpoint;
    unsigned tries;
    gpr_timespec deadline; /* of the whole request, failover included */
    grpc_call *call;
    grpc_byte_buffer *send, *recv;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code code;
    grpc_slice details;
    gtag tag;
    store_cb cb;
    void *userdata;
} greq;

struct store_gwatch {
    store *s;
    store_watch *w; /* NULL once dropped: freed when its batches are done */
    struct store_gwatch *prev, *next;
    grpc_call *call;
    grpc_byte_buffer *send, *recv;
    grpc_metadata require_leader; /* sent with the stream's initial metadata */
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code code;
    grpc_slice details;
    gtag tag_start, tag_recv, tag_status;
    unsigned pending;     /* batches out; counted down after their handler has returned */
    bool status_deferred; /* the status came while the watch's callback ran the loop */
};
typedef struct store_gwatch gwatch;

typedef struct store_grpc {
    grpc_completion_queue *cq;
    pthread_t thread;
    bool thread_started;
    grpc_channel *channels[STORE_ENDPOINTS_MAX];
    grpc_channel *watch_channels[STORE_ENDPOINTS_MAX];
    void *methods[STORE_ENDPOINTS_MAX][_STORE_KIND_MAX];
    void *watch_methods[STORE_ENDPOINTS_MAX];

    pthread_mutex_t lock; /* guards done_head/done_tail, shared with the cq thread */
    gtag *done_head, *done_tail;
    ev_async async;
    unsigned active; /* calls with batches out; the async watcher runs while > 0 */

    greq *reqs;
    gwatch *streams; /* live and dropped */
} store_grpc;

/* ---- the completion-queue thread and the hand-over to the loop */

/* Completions that are already there are taken together: one lock and one wake-up of the loop
 * for a burst, not one per batch. */
#define CQ_DRAIN_MAX 64

static void *cq_thread(void *arg)
{
    store *s = arg;
    store_grpc *g = s->grpc;
    gpr_timespec forever = gpr_inf_future(GPR_CLOCK_MONOTONIC);
    gpr_timespec now = gpr_inf_past(GPR_CLOCK_MONOTONIC);
    bool shutdown = false;
    while (!shutdown) {
        gtag *head = NULL, *tail = NULL;
        grpc_event ev = grpc_completion_queue_next(g->cq, forever, NULL);
        for (unsigned n = 0;; n++) {
            if (ev.type == GRPC_QUEUE_SHUTDOWN) {
                shutdown = true;
                break;
            }
            if (ev.type == GRPC_OP_COMPLETE) {
                gtag *t = ev.tag;
                t->ok = ev.success != 0;
                t->next = NULL;
                if (tail)
                    tail->next = t;
                else
                    head = t;
                tail = t;
            }
            if (n + 1 >= CQ_DRAIN_MAX)
                break;
            ev = grpc_completion_queue_next(g->cq, now, NULL);
            if (ev.type == GRPC_QUEUE_TIMEOUT)
                break;
        }
        if (!head)
            continue;
        pthread_mutex_lock(&g->lock);
        if (g->done_tail)
            g->done_tail->next = head;
        else
            g->done_head = head;
        g->done_tail = tail;
        pthread_mutex_unlock(&g->lock);
        ev_async_send(s->loop, &g->async);
    }
    return NULL;
}

static void active_inc(store *s)
{
    if (s->grpc->active++ == 0)
        ev_async_start(s->loop, &s->grpc->async);
}

static void active_dec(store *s)
{
    if (--s->grpc->active == 0)
        ev_async_stop(s->loop, &s->grpc->async);
}

/* A batch that could not be started completes at once, as a failure, through the same list. */
static void tag_fail_now(store *s, gtag *t)
{
    store_grpc *g = s->grpc;
    t->ok = false;
    t->next = NULL;
    pthread_mutex_lock(&g->lock);
    if (g->done_tail)
        g->done_tail->next = t;
    else
        g->done_head = t;
    g->done_tail = t;
    pthread_mutex_unlock(&g->lock);
    ev_async_send(s->loop, &g->async);
}

static gpr_timespec deadline_after(usec_t t)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_micros((int64_t)t, GPR_TIMESPAN));
}

/* An unpacked reply lives only until it is converted, so protobuf-c allocates its fields from an
 * arena freed at once (a chunk on the stack, then malloc'd ones), not one malloc per field. */
typedef struct unpack_arena {
    ProtobufCAllocator allocator;
    char *cur, *end;
    void *chunks; /* malloc'd, each starting with the link to the next */
    size_t next_chunk;
    _Alignas(16) char local[2048];
} unpack_arena;

#define ARENA_ALIGN 16

static void *arena_alloc(void *data, size_t size)
{
    unpack_arena *a = data;
    size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if ((size_t)(a->end - a->cur) < size) {
        size_t n = MAX(size, a->next_chunk) + ARENA_ALIGN;
        char *c = xmalloc(n);
        *(void **)c = a->chunks;
        a->chunks = c;
        a->cur = c + ARENA_ALIGN;
        a->end = c + n;
        a->next_chunk *= 2;
    }
    void *p = a->cur;
    a->cur += size;
    return p;
}

static void arena_free(void *data, void *p) {}

static void arena_init(unpack_arena *a)
{
    a->allocator =
        (ProtobufCAllocator){.alloc = arena_alloc, .free = arena_free, .allocator_data = a};
    a->cur = a->local;
    a->end = a->local + sizeof(a->local);
    a->chunks = NULL;
    a->next_chunk = 4096;
}

static void arena_done(unpack_arena *a)
{
    while (a->chunks) {
        void *next = *(void **)a->chunks;
        free(a->chunks);
        a->chunks = next;
    }
}

/* Unpacks bb into the arena a (which the caller releases with arena_done in any case). A message
 * that arrived in one uncompressed slice is read in place; only one in several pieces is joined
 * first. */
static int decode(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc, unpack_arena *a,
                  ProtobufCMessage **ret)
{
    arena_init(a);
    if (!bb)
        return -EBADMSG;
    grpc_slice sl;
    if (bb->type == GRPC_BB_RAW && bb->data.raw.compression == GRPC_COMPRESS_NONE &&
        bb->data.raw.slice_buffer.count == 1)
        sl = grpc_slice_ref(bb->data.raw.slice_buffer.slices[0]);
    else {
        grpc_byte_buffer_reader rd;
        if (!grpc_byte_buffer_reader_init(&rd, bb))
            return -EBADMSG;
        sl = grpc_byte_buffer_reader_readall(&rd);
        grpc_byte_buffer_reader_destroy(&rd);
    }
    /* The unpacked form is the wire bytes plus the structs around them. */
    a->next_chunk = GRPC_SLICE_LENGTH(sl) + 4096;
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &a->allocator, GRPC_SLICE_LENGTH(sl),
                                                    GRPC_SLICE_START_PTR(sl));
    grpc_slice_unref(sl);
    if (!m)
        return -EBADMSG;
    *ret = m;
    return 0;
}

static grpc_slice encode(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice sl = grpc_slice_malloc(n);
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(sl));
    return sl;
}

static char *slice_text(grpc_slice sl)
{
    size_t n = GRPC_SLICE_LENGTH(sl);
    char *t = xmalloc(n + 1);
    if (n)
        memcpy(t, GRPC_SLICE_START_PTR(sl), n);
    t[n] = '\0';
    return t;
}

/* ---- requests */

static void req_attempt(greq *q);

static void req_attempt_clear(greq *q)
{
    if (q->call)
        grpc_call_unref(q->call);
    q->call = NULL;
    if (q->send)
        grpc_byte_buffer_destroy(q->send);
    q->send = NULL;
    if (q->recv)
        grpc_byte_buffer_destroy(q->recv);
    q->recv = NULL;
    grpc_metadata_array_destroy(&q->initial_md);
    grpc_metadata_array_destroy(&q->trailing_md);
    grpc_metadata_array_init(&q->initial_md);
    grpc_metadata_array_init(&q->trailing_md);
    grpc_slice_unref(q->details);
    q->details = grpc_empty_slice();
}

static void req_unlink(greq *q)
{
    LIST_REMOVE(q->s->grpc->reqs, q);
}

static void req_free(greq *q)
{
    req_attempt_clear(q);
    grpc_slice_unref(q->payload);
    free(q);
}

static void req_finish(greq *q)
{
    store *s = q->s;
    _cleanup_free_ char *details = slice_text(q->details);
    bool not_sent;
    int e = store_grpc_status_error(q->code, details, &not_sent);
    _cleanup_(store_result_freep) store_result *r = xnew(store_result, 1);
    if (e == 0) {
        ProtobufCMessage *reply = NULL;
        unpack_arena arena;
        e = decode(q->recv, store_grpc_method_of(q->kind)->reply, &arena, &reply);
        if (e < 0)
            r->error = e;
        else
            e = store_grpc_response(q->kind, reply, r);
        arena_done(&arena);
    } else {
        r->error = e;
        r->message = strncmp(details, "etcdserver: ", 12) == 0
                         ? TAKE_PTR(details)
                         : xasprintf("%s: %s", s->opts.endpoints[q->endpoint], details);
    }
    req_attempt_clear(q);
    active_dec(s);

    if (e < 0 && store_failover(s, &q->endpoint, q->kind, e, not_sent, q->tries,
                                gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), q->deadline) < 0)) {
        req_attempt(q);
        return;
    }
    store_result_shape(r, q->shape);
    req_unlink(q);
    store_cb cb = q->cb;
    void *ud = q->userdata;
    req_free(q);
    cb(TAKE_PTR(r), ud);
}

static void req_attempt(greq *q)
{
    store *s = q->s;
    store_grpc *g = s->grpc;
    q->tries++;
    q->code = GRPC_STATUS_UNKNOWN;
    q->call = grpc_channel_create_registered_call(
        g->channels[q->endpoint], NULL, GRPC_PROPAGATE_DEFAULTS, g->cq,
        g->methods[q->endpoint][q->kind], q->deadline, NULL);
    q->send = grpc_raw_byte_buffer_create(&q->payload, 1);
    active_inc(s);

    grpc_op ops[6] = {
        {.op = GRPC_OP_SEND_INITIAL_METADATA},  {.op = GRPC_OP_SEND_MESSAGE},
        {.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT}, {.op = GRPC_OP_RECV_INITIAL_METADATA},
        {.op = GRPC_OP_RECV_MESSAGE},           {.op = GRPC_OP_RECV_STATUS_ON_CLIENT}};
    ops[1].data.send_message.send_message = q->send;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &q->initial_md;
    ops[4].data.recv_message.recv_message = &q->recv;
    ops[5].data.recv_status_on_client.trailing_metadata = &q->trailing_md;
    ops[5].data.recv_status_on_client.status = &q->code;
    ops[5].data.recv_status_on_client.status_details = &q->details;
    if (grpc_call_start_batch(q->call, ops, ELEMENTSOF(ops), &q->tag, NULL) != GRPC_CALL_OK) {
        q->code = GRPC_STATUS_INTERNAL;
        grpc_call_cancel(q->call, NULL);
        tag_fail_now(s, &q->tag);
    }
}

static int grpc_submit(store *s, const store_request *req, store_shape shape, store_cb cb,
                       void *userdata)
{
    store_grpc_msg m;
    if (store_grpc_request(req, &m) < 0)
        return -EINVAL;
    greq *q = xnew(greq, 1);
    q->s = s;
    q->kind = req->kind;
    q->shape = shape;
    q->payload = encode(&m.base);
    store_grpc_msg_done(&m);
    q->endpoint = s->endpoint;
    q->deadline = deadline_after(s->opts.request_timeout);
    q->details = grpc_empty_slice();
    grpc_metadata_array_init(&q->initial_md);
    grpc_metadata_array_init(&q->trailing_md);
    q->tag = (gtag){.kind = TAG_REQ, .owner = q};
    q->cb = cb;
    q->userdata = userdata;
    LIST_PREPEND(s->grpc->reqs, q);
    req_attempt(q);
    return 0;
}

/* ---- watch streams */

static void gwatch_free(gwatch *gw)
{
    store_grpc *g = gw->s->grpc;
    if (gw->prev)
        gw->prev->next = gw->next;
    else
        g->streams = gw->next;
    if (gw->next)
        gw->next->prev = gw->prev;
    if (gw->call)
        grpc_call_unref(gw->call);
    if (gw->send)
        grpc_byte_buffer_destroy(gw->send);
    if (gw->recv)
        grpc_byte_buffer_destroy(gw->recv);
    grpc_metadata_array_destroy(&gw->initial_md);
    grpc_metadata_array_destroy(&gw->trailing_md);
    grpc_slice_unref(gw->details);
    free(gw);
}

/* Lets go of the watch: the call is cancelled and the stream freed once its batches are done. */
static void gwatch_detach(gwatch *gw)
{
    if (gw->w) {
        gw->w->stream = NULL;
        gw->w = NULL;
        grpc_call_cancel(gw->call, NULL);
    }
}

static void gwatch_post_recv(gwatch *gw)
{
    grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
    op.data.recv_message.recv_message = &gw->recv;
    gw->pending++;
    if (grpc_call_start_batch(gw->call, &op, 1, &gw->tag_recv, NULL) != GRPC_CALL_OK) {
        grpc_call_cancel(gw->call, NULL);
        tag_fail_now(gw->s, &gw->tag_recv);
    }
}

static void grpc_watch_connect(store_watch *w)
{
    store *s = w->s;
    store_grpc *g = s->grpc;
    gwatch *gw = xnew(gwatch, 1);
    gw->s = s;
    gw->w = w;
    w->stream = gw;
    gw->next = g->streams;
    if (gw->next)
        gw->next->prev = gw;
    g->streams = gw;
    gw->details = grpc_empty_slice();
    grpc_metadata_array_init(&gw->initial_md);
    grpc_metadata_array_init(&gw->trailing_md);
    gw->tag_start = (gtag){.kind = TAG_WATCH_START, .owner = gw};
    gw->tag_recv = (gtag){.kind = TAG_WATCH_RECV, .owner = gw};
    gw->tag_status = (gtag){.kind = TAG_WATCH_STATUS, .owner = gw};

    store_watch_req create = store_watch_request(w);
    store_grpc_msg req;
    store_grpc_watch_request(&create, &req);
    grpc_slice payload = encode(&req.base);
    store_grpc_msg_done(&req);
    gw->send = grpc_raw_byte_buffer_create(&payload, 1);
    grpc_slice_unref(payload);

    gw->call = grpc_channel_create_registered_call(
        g->watch_channels[w->endpoint], NULL, GRPC_PROPAGATE_DEFAULTS, g->cq,
        g->watch_methods[w->endpoint], gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    active_inc(s);

    /* "hasleader: true" (etcd's rpctypes.MetadataRequireLeaderKey): a member that has no leader
     * refuses the stream, and cancels it when it loses its leader, with "etcdserver: no leader";
     * without it, a member cut off from the others keeps the stream open and silent, and the
     * watch would never fail over. */
    gw->require_leader = (grpc_metadata){.key = grpc_slice_from_static_string("hasleader"),
                                         .value = grpc_slice_from_static_string("true")};
    /* The stream stays open for writing: etcd would end it on a half-close. */
    grpc_op start_ops[3] = {{.op = GRPC_OP_SEND_INITIAL_METADATA},
                            {.op = GRPC_OP_SEND_MESSAGE},
                            {.op = GRPC_OP_RECV_INITIAL_METADATA}};
    start_ops[0].data.send_initial_metadata.count = 1;
    start_ops[0].data.send_initial_metadata.metadata = &gw->require_leader;
    start_ops[1].data.send_message.send_message = gw->send;
    start_ops[2].data.recv_initial_metadata.recv_initial_metadata = &gw->initial_md;
    grpc_op status_op = {.op = GRPC_OP_RECV_STATUS_ON_CLIENT};
    status_op.data.recv_status_on_client.trailing_metadata = &gw->trailing_md;
    status_op.data.recv_status_on_client.status = &gw->code;
    status_op.data.recv_status_on_client.status_details = &gw->details;

    gw->pending = 2;
    if (grpc_call_start_batch(gw->call, start_ops, ELEMENTSOF(start_ops), &gw->tag_start, NULL) !=
        GRPC_CALL_OK) {
        grpc_call_cancel(gw->call, NULL);
        tag_fail_now(s, &gw->tag_start);
    }
    gw->code = GRPC_STATUS_UNKNOWN;
    if (grpc_call_start_batch(gw->call, &status_op, 1, &gw->tag_status, NULL) != GRPC_CALL_OK) {
        grpc_call_cancel(gw->call, NULL);
        tag_fail_now(s, &gw->tag_status);
    }
    gwatch_post_recv(gw);
}

static void grpc_watch_disconnect(store_watch *w)
{
    if (w->stream)
        gwatch_detach(w->stream);
}

/* After a delivery: finish a watch its callback freed; detach from one that is dead. */
static void gwatch_after_delivery(gwatch *gw, store_watch *w)
{
    if (w->free_requested) {
        gwatch_detach(gw);
        store_watch_destroy(w);
    } else if (w->dead)
        gwatch_detach(gw);
}

static void gwatch_on_status(gwatch *gw);

static void gwatch_on_recv(gwatch *gw, bool ok)
{
    store_watch *w = gw->w;
    grpc_byte_buffer *bb = TAKE_PTR(gw->recv);
    if (!w || !ok || !bb) {
        /* The stream is over: its status says how (the status batch). */
        if (bb)
            grpc_byte_buffer_destroy(bb);
        return;
    }
    ProtobufCMessage *msg = NULL;
    unpack_arena arena;
    int e = decode(bb, &etcdserverpb__watch_response__descriptor, &arena, &msg);
    grpc_byte_buffer_destroy(bb);
    store_watch_msg m;
    if (e == 0)
        e = store_grpc_watch_msg((Etcdserverpb__WatchResponse *)msg, &m);
    arena_done(&arena);
    if (e < 0) {
        store_watch_fail_malformed(w);
        gwatch_after_delivery(gw, w);
        return;
    }
    e = store_watch_on_msg(w, &m);
    store_watch_msg_clear(&m);
    /* The callback may have run the loop (store_wait). This stream stays ours meanwhile (its
     * status waits for us, see gwatch_on_status), but be safe if it was let go. */
    if (gw->w != w) {
        if (w->free_requested)
            store_watch_destroy(w);
        return;
    }
    if (gw->status_deferred && !w->free_requested && !w->dead) {
        gwatch_on_status(gw);
        return;
    }
    if (e == 0) {
        gwatch_post_recv(gw);
        return;
    }
    if (w->free_requested || w->dead) {
        gwatch_after_delivery(gw, w);
        return;
    }
    gwatch_detach(gw);
    store_watch_stream_ended(w, true);
}

static void gwatch_on_status(gwatch *gw)
{
    store_watch *w = gw->w;
    if (!w)
        return;
    if (w->in_callback) {
        /* The callback (run from this stream's receive handler) is running the loop: ending the
         * stream now would reconnect or fail the watch under its feet. The receive handler
         * takes the status up when the callback returns. */
        gw->status_deferred = true;
        return;
    }
    gw->status_deferred = false;
    _cleanup_free_ char *details = slice_text(gw->details);
    bool not_sent;
    int e = store_grpc_status_error(gw->code, details, &not_sent);
    gwatch_detach(gw);
    if (e == -EMSGSIZE || e == -ERANGE) {
        store_watch_fail(w, e, 0, details);
        if (w->free_requested)
            store_watch_destroy(w);
        return;
    }
    store_watch_stream_ended(w, gw->code != GRPC_STATUS_OK);
}

/* ---- the loop side of the hand-over */

static void on_completions(struct ev_loop *loop, ev_async *a, int revents)
{
    store *s = a->data;
    store_grpc *g = s->grpc;
    pthread_mutex_lock(&g->lock);
    gtag *t = g->done_head;
    g->done_head = g->done_tail = NULL;
    pthread_mutex_unlock(&g->lock);
    while (t) {
        gtag *next = t->next;
        switch (t->kind) {
        case TAG_REQ:
            req_finish(t->owner);
            break;
        case TAG_WATCH_START:
        case TAG_WATCH_RECV:
        case TAG_WATCH_STATUS: {
            gwatch *gw = t->owner;
            /* Counted down only after the handler: a callback that runs the loop (store_wait)
             * must not see this stream's last batch done and free it under our feet. */
            if (t->kind == TAG_WATCH_RECV)
                gwatch_on_recv(gw, t->ok);
            else if (t->kind == TAG_WATCH_STATUS)
                gwatch_on_status(gw);
            if (--gw->pending == 0) {
                gwatch_detach(gw);
                gwatch_free(gw);
                active_dec(s);
            }
            break;
        }
        }
        t = next;
    }
}

/* ---- set-up and tear-down */

static int read_file(const char *path, char **ret)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    char *data = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (1u << 20)) { /* PEM files are small; this is not one */
                free(data);
                fclose(f);
                return -EFBIG;
            }
            data = xrealloc(data, cap);
        }
        size_t got = fread(data + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    bool err = ferror(f);
    fclose(f);
    if (err) {
        free(data);
        return -EIO;
    }
    data[n] = '\0';
    *ret = data;
    return 0;
}

static int credentials(store *s, bool tls, grpc_channel_credentials **ret)
{
    if (!tls) {
        *ret = grpc_insecure_credentials_create();
        return 0;
    }
    _cleanup_free_ char *ca = NULL, *cert = NULL, *key = NULL;
    int e;
    if (s->opts.ca_file && (e = read_file(s->opts.ca_file, &ca)) < 0)
        return e;
    if (s->opts.cert_file && (e = read_file(s->opts.cert_file, &cert)) < 0)
        return e;
    if (s->opts.key_file && (e = read_file(s->opts.key_file, &key)) < 0)
        return e;
    if (!cert != !key)
        return -EINVAL;
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
    *ret = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL, NULL);
    return *ret ? 0 : -EINVAL;
}

static grpc_channel *channel_new(store *s, const char *target, grpc_channel_credentials *creds,
                                 size_t max_receive)
{
    int connect_ms = (int)MIN(s->opts.connect_timeout / USEC_PER_MSEC, (usec_t)INT_MAX);
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = (int)MIN(max_receive, (size_t)INT_MAX)},
        /* A member that vanishes without closing the connection must still be noticed. */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIME_MS, .value.integer = 10000},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .value.integer = 5000},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA,
         .value.integer = 0},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_HTTP2_MIN_SENT_PING_INTERVAL_WITHOUT_DATA_MS,
         .value.integer = 10000},
        /* gRPC's minimum connect deadline is our connect timeout. */
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
         .value.integer = connect_ms},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
         .value.integer = 100},
        /* The default grows to 120 s: a restarted member would look down for minutes. */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, .value.integer = 1000},
        {.type = GRPC_ARG_STRING,
         .key = GRPC_ARG_PRIMARY_USER_AGENT_STRING,
         .value.string = "stratus-store"},
    };
    grpc_channel_args channel_args = {.num_args = ELEMENTSOF(args), .args = args};
    return grpc_channel_create(target, creds, &channel_args);
}

static void grpc_done(store *s);

static void grpc_log_discard(gpr_log_func_args *args) {}

static int grpc_engine_init(store *s)
{
    store_grpc *g = xnew(store_grpc, 1);
    s->grpc = g;
    /* The library never logs, and gRPC core would print its own errors on stderr (a failed
     * connect, a TLS alert). The setting is the process's: pkg/rpc does the same, so a program
     * with both gets one policy. GRPC_VERBOSITY set by the user brings gRPC's log back. */
    if (!getenv("GRPC_VERBOSITY"))
        gpr_set_log_function(grpc_log_discard);
    grpc_init();
    pthread_mutex_init(&g->lock, NULL);
    ev_async_init(&g->async, on_completions);
    g->async.data = s;
    g->cq = grpc_completion_queue_create_for_next(NULL);
    for (size_t i = 0; i < s->opts.n_endpoints; i++) {
        const char *url = s->opts.endpoints[i];
        bool tls = strncmp(url, "https://", 8) == 0;
        const char *hostport = url + (tls ? 8 : 7);
        /* "dns:///": a host named like a gRPC resolver ("unix", "dns", "ipv4") is still a
         * host. IP literals resolve without a lookup. */
        _cleanup_free_ char *target =
            xasprintf("dns:///%.*s", (int)strcspn(hostport, "/"), hostport);
        grpc_channel_credentials *creds;
        int e = credentials(s, tls, &creds);
        if (e < 0) {
            grpc_done(s);
            return e;
        }
        g->channels[i] = channel_new(s, target, creds, s->opts.max_response);
        g->watch_channels[i] = channel_new(s, target, creds, s->opts.max_event_line);
        grpc_channel_credentials_release(creds);
        for (store_kind k = 0; k < _STORE_KIND_MAX; k++)
            g->methods[i][k] = grpc_channel_register_call(
                g->channels[i], store_grpc_method_of(k)->path, NULL, NULL);
        g->watch_methods[i] = grpc_channel_register_call(g->watch_channels[i],
                                                         "/etcdserverpb.Watch/Watch", NULL, NULL);
    }
    /* The thread must not take the program's signals (the apiserver waits for them itself). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&g->thread, NULL, cq_thread, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        grpc_done(s);
        return -e;
    }
    g->thread_started = true;
    return 0;
}

static void grpc_done(store *s)
{
    store_grpc *g = s->grpc;
    if (!g)
        return;
    for (greq *q = g->reqs; q; q = q->next)
        if (q->call)
            grpc_call_cancel(q->call, NULL);
    for (gwatch *gw = g->streams; gw; gw = gw->next)
        if (gw->call)
            grpc_call_cancel(gw->call, NULL);
    /* The queue reports shutdown only after every batch is done: then the thread ends. */
    grpc_completion_queue_shutdown(g->cq);
    if (g->thread_started)
        pthread_join(g->thread, NULL);
    else
        while (grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
    ev_async_stop(s->loop, &g->async);
    while (g->reqs) {
        greq *q = g->reqs;
        req_unlink(q);
        req_free(q);
    }
    while (g->streams)
        gwatch_free(g->streams);
    for (size_t i = 0; i < s->opts.n_endpoints; i++) {
        if (g->channels[i])
            grpc_channel_destroy(g->channels[i]);
        if (g->watch_channels[i])
            grpc_channel_destroy(g->watch_channels[i]);
    }
    grpc_completion_queue_destroy(g->cq);
    pthread_mutex_destroy(&g->lock);
    free(g);
    s->grpc = NULL;
    grpc_shutdown();
}

const store_engine store_engine_grpc = {
    .name = "grpc",
    .init = grpc_engine_init,
    .done = grpc_done,
    .submit = grpc_submit,
    .watch_connect = grpc_watch_connect,
    .watch_disconnect = grpc_watch_disconnect,
};
