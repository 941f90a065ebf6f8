/* The client half of the gRPC adapter: a channel with the methods registered once, unary calls
 * that block on their own completion queue until the reply or the deadline, and Watch streams
 * read with a timeout. Calls are fail-fast (no wait-for-ready): a server that cannot be reached
 * gives UNAVAILABLE instead of a wait. */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "base/alloc.h"
#include "rpc/client.h"
#include "rpc/rpc-internal.h"

struct rpc_client {
    grpc_channel *channel;
    void *registered[_RPC_METHOD_MAX];
};

struct rpc_watch {
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_byte_buffer *send;
    grpc_byte_buffer *recv;
    grpc_metadata_array initial_metadata, trailing_metadata;
    grpc_status_code code;
    grpc_slice details;
    char tag_start, tag_recv, tag_status; /* their addresses are the batches' tags */
    unsigned pending;                     /* batches not completed yet */
    bool recv_pending, status_done, ended;
    /* A message of several events (WatchEvent.events) being handed out one by one. */
    Stratus__V1__WatchEvent *batch;
    size_t batch_next;
    size_t messages;
    int end_error;
    rpc_status end_status;
    atomic_bool cancelled;
};

static int options_fill(const rpc_client_options *in, rpc_client_options *o)
{
    *o = in ? *in : (rpc_client_options){0};
    if (o->max_receive_bytes == 0)
        o->max_receive_bytes = RPC_MESSAGE_SIZE_MAX;
    if (o->keepalive == 0)
        o->keepalive = 30 * USEC_PER_SEC;
    if (o->max_reconnect_backoff == 0)
        o->max_reconnect_backoff = 5 * USEC_PER_SEC;
    if (o->max_receive_bytes > RPC_MESSAGE_SIZE_MAX || o->keepalive < 10 * USEC_PER_SEC ||
        o->keepalive > 24 * 3600 * USEC_PER_SEC || o->max_reconnect_backoff < 100 * USEC_PER_MSEC ||
        o->max_reconnect_backoff > 3600 * USEC_PER_SEC)
        return -EINVAL;
    return 0;
}

int rpc_client_new(const char *target, const rpc_client_options *opts, rpc_client **ret)
{
    rpc_client_options o;
    if (!target || !*target || options_fill(opts, &o) < 0)
        return -EINVAL;
    int backoff_ms = (int)(o.max_reconnect_backoff / USEC_PER_MSEC);
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = (int)o.max_receive_bytes},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_KEEPALIVE_TIME_MS,
         .value.integer = (int)(o.keepalive / USEC_PER_MSEC)},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .value.integer = 20000},
        /* Keep pinging a quiet watch stream (the default stops after 2 pings without data). */
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA,
         .value.integer = 0},
        /* gRPC's default backs off up to 120 s: an apiserver restart would look like an outage. */
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
         .value.integer = backoff_ms},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
         .value.integer = MIN(backoff_ms, 1000)},
        {.type = GRPC_ARG_STRING,
         .key = GRPC_ARG_PRIMARY_USER_AGENT_STRING,
         .value.string = "stratus/" STRATUS_VERSION},
    };
    grpc_channel_args channel_args = {.num_args = ELEMENTSOF(args), .args = args};

    rpc_grpc_init();
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *channel = grpc_channel_create(target, creds, &channel_args);
    grpc_channel_credentials_release(creds);
    if (!channel) {
        grpc_shutdown();
        return -EINVAL;
    }
    rpc_client *c = xnew(rpc_client, 1);
    c->channel = channel;
    for (rpc_method m = 0; m < _RPC_METHOD_MAX; m++)
        c->registered[m] = grpc_channel_register_call(channel, rpc_method_path(m), NULL, NULL);
    *ret = c;
    return 0;
}

rpc_client *rpc_client_free(rpc_client *c)
{
    if (!c)
        return NULL;
    grpc_channel_destroy(c->channel);
    free(c);
    grpc_shutdown();
    return NULL;
}

static void status_from_grpc(rpc_status *status, grpc_status_code code, grpc_slice details)
{
    rpc_code rc = (unsigned)code < _RPC_CODE_MAX ? (rpc_code)code : RPC_CODE_UNKNOWN;
    if (GRPC_SLICE_LENGTH(details) > 0)
        rpc_status_set(status, rc, (const char *)GRPC_SLICE_START_PTR(details),
                       GRPC_SLICE_LENGTH(details));
    else {
        const char *name = rpc_code_to_string(rc);
        rpc_status_set(status, rc, name, strlen(name));
    }
}

static int fail(rpc_status *status, int error, rpc_code code, const char *message)
{
    rpc_status_set(status, code, message, strlen(message));
    return error;
}

static void cq_drain_and_destroy(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

int rpc_client_call(rpc_client *c, rpc_method m, const ProtobufCMessage *request, usec_t timeout,
                    ProtobufCMessage **ret_reply, rpc_status *status)
{
    const rpc_method_info *info = rpc_method_info_get(m);
    if (!info || info->streaming || !request || request->descriptor != info->request)
        return fail(status, -EINVAL, RPC_CODE_INVALID_ARGUMENT,
                    "not a unary method, or a request of the wrong type");
    grpc_byte_buffer *send;
    if (rpc_byte_buffer_encode(request, &send) < 0)
        return fail(status, -EMSGSIZE, RPC_CODE_RESOURCE_EXHAUSTED, "request too large");

    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_call *call =
        grpc_channel_create_registered_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                            c->registered[m], rpc_deadline_after(timeout), NULL);
    grpc_metadata_array initial_metadata, trailing_metadata;
    grpc_metadata_array_init(&initial_metadata);
    grpc_metadata_array_init(&trailing_metadata);
    grpc_byte_buffer *recv = NULL;
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();

    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA; /* flags 0: fail fast, no wait-for-ready */
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_metadata;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_metadata;
    ops[5].data.recv_status_on_client.status = &code;
    ops[5].data.recv_status_on_client.status_details = &details;

    int r;
    if (grpc_call_start_batch(call, ops, ELEMENTSOF(ops), &code, NULL) != GRPC_CALL_OK)
        r = fail(status, -EIO, RPC_CODE_INTERNAL, "could not start the call");
    else {
        /* The call's deadline bounds this wait. */
        grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        ProtobufCMessage *reply = NULL;
        if (code != GRPC_STATUS_OK) {
            status_from_grpc(status, code, details);
            r = rpc_code_to_errno((unsigned)code < _RPC_CODE_MAX ? (rpc_code)code
                                                                 : RPC_CODE_UNKNOWN);
        } else if (rpc_byte_buffer_decode(recv, info->reply, &reply) < 0)
            r = fail(status, -EBADMSG, RPC_CODE_INTERNAL, "malformed reply from the server");
        else {
            rpc_status_set(status, RPC_CODE_OK, "", 0);
            *ret_reply = reply;
            r = 0;
        }
    }

    grpc_call_unref(call);
    cq_drain_and_destroy(cq);
    grpc_byte_buffer_destroy(send);
    if (recv)
        grpc_byte_buffer_destroy(recv);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial_metadata);
    grpc_metadata_array_destroy(&trailing_metadata);
    return r;
}

/* ---- Watch ---- */

int rpc_client_watch(rpc_client *c, const Stratus__V1__WatchRequest *request, rpc_watch **ret)
{
    if (!request || request->base.descriptor != &stratus__v1__watch_request__descriptor)
        return -EINVAL;
    rpc_watch *w = xnew(rpc_watch, 1);
    /* rpc_watch_next hands out the events of a batch one by one: every client can take them. */
    Stratus__V1__WatchRequest batched = *request;
    batched.batch = true;
    if (rpc_byte_buffer_encode(&batched.base, &w->send) < 0) {
        free(w);
        return -EMSGSIZE;
    }
    w->cq = grpc_completion_queue_create_for_next(NULL);
    w->call = grpc_channel_create_registered_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, w->cq,
                                                  c->registered[RPC_METHOD_WATCH],
                                                  gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    grpc_metadata_array_init(&w->initial_metadata);
    grpc_metadata_array_init(&w->trailing_metadata);
    w->details = grpc_empty_slice();
    atomic_init(&w->cancelled, false);

    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = w->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &w->initial_metadata;
    if (grpc_call_start_batch(w->call, ops, ELEMENTSOF(ops), &w->tag_start, NULL) != GRPC_CALL_OK) {
        rpc_watch_free(w);
        return -EIO;
    }
    w->pending++;
    grpc_op status_op = {.op = GRPC_OP_RECV_STATUS_ON_CLIENT};
    status_op.data.recv_status_on_client.trailing_metadata = &w->trailing_metadata;
    status_op.data.recv_status_on_client.status = &w->code;
    status_op.data.recv_status_on_client.status_details = &w->details;
    if (grpc_call_start_batch(w->call, &status_op, 1, &w->tag_status, NULL) != GRPC_CALL_OK) {
        rpc_watch_free(w);
        return -EIO;
    }
    w->pending++;
    *ret = w;
    return 0;
}

/* Records how the stream ended; every later rpc_watch_next returns the same. */
static int watch_end(rpc_watch *w, int error, rpc_status *status)
{
    w->ended = true;
    w->end_error = error;
    if (status)
        *status = w->end_status;
    return error;
}

static int watch_end_from_status(rpc_watch *w, rpc_status *status)
{
    if (atomic_load(&w->cancelled)) {
        fail(&w->end_status, 0, RPC_CODE_CANCELLED, "watch cancelled");
        return watch_end(w, -ECANCELED, status);
    }
    status_from_grpc(&w->end_status, w->code, w->details);
    if (w->code == GRPC_STATUS_OK)
        return watch_end(w, -EPIPE, status);
    return watch_end(w, rpc_code_to_errno(w->end_status.code), status);
}

/* A message is one event, or a batch of events (none itself a batch) and nothing else. */
static bool batch_well_formed(const Stratus__V1__WatchEvent *we)
{
    if (we->n_events == 0)
        return true;
    if (we->type || (we->object_json && *we->object_json) ||
        (we->resource_version && *we->resource_version) || we->code ||
        (we->message && *we->message))
        return false;
    for (size_t i = 0; i < we->n_events; i++)
        if (!we->events[i] || we->events[i]->n_events > 0)
            return false;
    return true;
}

/* Frees the events of the batch not handed out yet. */
static void batch_drop(rpc_watch *w)
{
    Stratus__V1__WatchEvent *b = w->batch;
    if (!b)
        return;
    size_t left = 0;
    for (size_t i = w->batch_next; i < b->n_events; i++)
        if (b->events[i])
            b->events[left++] = b->events[i];
    b->n_events = left;
    rpc_message_free(b);
    w->batch = NULL;
}

/* The next event of the batch being handed out, taken out of it (the caller frees it alone), or
 * NULL when there is none left. */
static Stratus__V1__WatchEvent *batch_take(rpc_watch *w)
{
    Stratus__V1__WatchEvent *b = w->batch;
    while (b && w->batch_next < b->n_events) {
        Stratus__V1__WatchEvent *ev = b->events[w->batch_next];
        b->events[w->batch_next++] = NULL;
        if (ev)
            return ev;
    }
    if (b) {
        b->n_events = 0; /* each was taken (or was NULL) */
        rpc_message_free(b);
        w->batch = NULL;
    }
    return NULL;
}

int rpc_watch_next(rpc_watch *w, usec_t timeout, Stratus__V1__WatchEvent **ret_event,
                   rpc_status *status)
{
    /* After rpc_watch_cancel, what a batch still holds is not handed out. */
    if (atomic_load(&w->cancelled))
        batch_drop(w);
    Stratus__V1__WatchEvent *taken = batch_take(w);
    if (taken) {
        *ret_event = taken;
        return 0;
    }
    if (w->ended) {
        if (status)
            *status = w->end_status;
        return w->end_error;
    }
    if (!w->recv_pending) {
        grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
        op.data.recv_message.recv_message = &w->recv;
        if (grpc_call_start_batch(w->call, &op, 1, &w->tag_recv, NULL) != GRPC_CALL_OK) {
            fail(&w->end_status, 0, RPC_CODE_INTERNAL, "could not read from the watch");
            return watch_end(w, -EIO, status);
        }
        w->recv_pending = true;
        w->pending++;
    }

    gpr_timespec deadline = timeout == USEC_INFINITY ? gpr_inf_future(GPR_CLOCK_MONOTONIC)
                                                     : rpc_deadline_after(timeout);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(w->cq, deadline, NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT)
            return -ETIMEDOUT;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        w->pending--;
        if (ev.tag == &w->tag_status)
            w->status_done = true;
        if (ev.tag != &w->tag_recv)
            continue;

        w->recv_pending = false;
        grpc_byte_buffer *bb = w->recv;
        w->recv = NULL;
        if (bb) {
            ProtobufCMessage *msg;
            int r = rpc_byte_buffer_decode(bb, &stratus__v1__watch_event__descriptor, &msg);
            grpc_byte_buffer_destroy(bb);
            if (r < 0) {
                grpc_call_cancel(w->call, NULL);
                fail(&w->end_status, 0, RPC_CODE_INTERNAL, "malformed WatchEvent from the server");
                return watch_end(w, -EBADMSG, status);
            }
            Stratus__V1__WatchEvent *we = (Stratus__V1__WatchEvent *)msg;
            w->messages++;
            if (!batch_well_formed(we)) {
                rpc_message_free(we);
                grpc_call_cancel(w->call, NULL);
                fail(&w->end_status, 0, RPC_CODE_INTERNAL, "malformed WatchEvent from the server");
                return watch_end(w, -EBADMSG, status);
            }
            if (!atomic_load(&w->cancelled)) {
                if (we->n_events == 0) {
                    *ret_event = we;
                    return 0;
                }
                w->batch = we;
                w->batch_next = 0;
                if ((*ret_event = batch_take(w)))
                    return 0;
                return rpc_watch_next(w, timeout, ret_event, status); /* a batch of nothing */
            }
            rpc_message_free(we); /* came after rpc_watch_cancel: the caller gets the end */
        }
        /* No message (or one after the cancel): the stream is over and its status is on its way
         * (it cannot be late). */
        while (!w->status_done) {
            ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
            if (ev.type != GRPC_OP_COMPLETE)
                continue;
            w->pending--;
            if (ev.tag == &w->tag_status)
                w->status_done = true;
        }
        return watch_end_from_status(w, status);
    }
}

size_t rpc_watch_messages(const rpc_watch *w)
{
    return w->messages;
}

size_t rpc_watch_buffered(const rpc_watch *w)
{
    size_t n = 0;
    for (size_t i = w->batch_next; w->batch && i < w->batch->n_events; i++)
        n += w->batch->events[i] != NULL;
    return n;
}

void rpc_watch_cancel(rpc_watch *w)
{
    atomic_store(&w->cancelled, true);
    grpc_call_cancel(w->call, NULL);
}

rpc_watch *rpc_watch_free(rpc_watch *w)
{
    if (!w)
        return NULL;
    if (w->call) {
        grpc_call_cancel(w->call, NULL);
        while (w->pending > 0) {
            grpc_event ev =
                grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
            if (ev.type == GRPC_OP_COMPLETE)
                w->pending--;
        }
        grpc_call_unref(w->call);
    }
    cq_drain_and_destroy(w->cq);
    if (w->send)
        grpc_byte_buffer_destroy(w->send);
    if (w->recv)
        grpc_byte_buffer_destroy(w->recv);
    batch_drop(w);
    grpc_slice_unref(w->details);
    grpc_metadata_array_destroy(&w->initial_metadata);
    grpc_metadata_array_destroy(&w->trailing_metadata);
    free(w);
    return NULL;
}
