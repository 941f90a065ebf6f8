/* Unit tests for pkg/rpc: a real gRPC server on a loopback port with a small set of test
 * handlers, driven by the real client (and by raw gRPC calls where the client cannot go: unknown
 * methods). Servers are always shut down, also when a case fails (atexit). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "base/alloc.h"
#include "base/macro.h"
#include "check.h"
#include "etcd-fixture.h"
#include "rpc/client.h"
#include "rpc/server.h"

#define FLOOD_EVENT_BYTES (16 * 1024)
#define FLOOD_EVENTS_MAX  20000
#define QUEUE_MAX         8
#define RECEIVE_MAX       (64 * 1024)

/* What the handlers saw, for the cases to check. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int threads;      /* helper threads still running */
    int cancels;      /* cancel callbacks run */
    int slow_replied; /* "slow" replies done */
    int slow_reply_result;
    int bad_reply_result;
    int bad_replied;
    int flood_sent;
    int flood_result;
    int flood_done;
    usec_t last_deadline;
} T = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void state_bump(int *counter)
{
    pthread_mutex_lock(&T.lock);
    (*counter)++;
    pthread_cond_broadcast(&T.cond);
    pthread_mutex_unlock(&T.lock);
}

static int state_get(const int *counter)
{
    pthread_mutex_lock(&T.lock);
    int v = *counter;
    pthread_mutex_unlock(&T.lock);
    return v;
}

/* Waits up to 10 s for *counter to reach at least target. */
static bool state_wait(const int *counter, int target)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&T.lock);
    while (*counter < target)
        if (pthread_cond_timedwait(&T.cond, &T.lock, &ts) != 0)
            break;
    bool ok = *counter >= target;
    pthread_mutex_unlock(&T.lock);
    return ok;
}

static void sleep_usec(usec_t u)
{
    struct timespec ts = {.tv_sec = (time_t)(u / USEC_PER_SEC),
                          .tv_nsec = (long)(u % USEC_PER_SEC) * 1000};
    nanosleep(&ts, NULL);
}

/* ---- handlers ---- */

static char *object_json(const Stratus__V1__GetRequest *r)
{
    return xasprintf("{\"kind\":\"%s\",\"metadata\":{\"namespace\":\"%s\",\"name\":\"%s\"}}",
                     r->kind, r->namespace_, r->name);
}

static int reply_object(rpc_call *call, const Stratus__V1__GetRequest *r)
{
    _cleanup_free_ char *json = object_json(r);
    Stratus__V1__ObjectResponse reply = STRATUS__V1__OBJECT_RESPONSE__INIT;
    reply.object_json = json;
    return rpc_call_reply(call, RPC_CODE_OK, NULL, &reply.base);
}

typedef struct delayed {
    rpc_call *call;
    usec_t delay;
    bool slow;
} delayed;

static void *delayed_reply_thread(void *p)
{
    delayed *d = p;
    sleep_usec(d->delay);
    Stratus__V1__ObjectResponse reply = STRATUS__V1__OBJECT_RESPONSE__INIT;
    reply.object_json = "{\"async\":true}";
    int r = rpc_call_reply(d->call, RPC_CODE_OK, NULL, &reply.base);
    pthread_mutex_lock(&T.lock);
    if (d->slow) {
        T.slow_reply_result = r;
        T.slow_replied++;
    }
    T.threads--;
    pthread_cond_broadcast(&T.cond);
    pthread_mutex_unlock(&T.lock);
    free(d);
    return NULL;
}

static void start_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    pthread_mutex_lock(&T.lock);
    T.threads++;
    pthread_mutex_unlock(&T.lock);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, fn, arg) != 0)
        abort();
    pthread_attr_destroy(&a);
}

static void on_get(rpc_call *call, const ProtobufCMessage *request, void *userdata)
{
    const Stratus__V1__GetRequest *r = (const Stratus__V1__GetRequest *)request;
    if (streq(r->name, "missing")) {
        char msg[128];
        snprintf(msg, sizeof(msg), "instances \"%s\" not found", r->name);
        rpc_call_reply(call, RPC_CODE_NOT_FOUND, msg, NULL);
    } else if (streq(r->name, "async") || streq(r->name, "slow")) {
        delayed *d = xnew(delayed, 1);
        d->call = call;
        d->slow = streq(r->name, "slow");
        d->delay = d->slow ? USEC_PER_SEC : 20 * USEC_PER_MSEC;
        start_thread(delayed_reply_thread, d);
    } else if (streq(r->name, "bad")) {
        Stratus__V1__HealthResponse wrong = STRATUS__V1__HEALTH_RESPONSE__INIT;
        int rr = rpc_call_reply(call, RPC_CODE_OK, NULL, &wrong.base);
        pthread_mutex_lock(&T.lock);
        T.bad_reply_result = rr;
        T.bad_replied++;
        pthread_cond_broadcast(&T.cond);
        pthread_mutex_unlock(&T.lock);
    } else {
        pthread_mutex_lock(&T.lock);
        T.last_deadline = rpc_call_deadline(call);
        pthread_mutex_unlock(&T.lock);
        reply_object(call, r);
    }
}

static void on_health(rpc_call *call, const ProtobufCMessage *request, void *userdata)
{
    Stratus__V1__HealthResponse reply = STRATUS__V1__HEALTH_RESPONSE__INIT;
    reply.status = "ok";
    reply.etcd_ok = true;
    rpc_call_reply(call, RPC_CODE_OK, NULL, &reply.base);
}

static void on_apply(rpc_call *call, const ProtobufCMessage *request, void *userdata)
{
    const Stratus__V1__ApplyRequest *r = (const Stratus__V1__ApplyRequest *)request;
    Stratus__V1__ApplyResponse reply = STRATUS__V1__APPLY_RESPONSE__INIT;
    reply.result = r->dry_run ? STRATUS__V1__APPLY_RESPONSE__RESULT__UNCHANGED
                              : STRATUS__V1__APPLY_RESPONSE__RESULT__CREATED;
    reply.object_json = r->object_json;
    rpc_call_reply(call, RPC_CODE_OK, NULL, &reply.base);
}

static void on_watch_cancel(rpc_call *call, void *userdata)
{
    state_bump(&T.cancels);
    rpc_stream_finish(call, RPC_CODE_CANCELLED, NULL);
}

static int send_event(rpc_call *call, long rv, const char *json)
{
    char rvs[32];
    snprintf(rvs, sizeof(rvs), "%ld", rv);
    Stratus__V1__WatchEvent ev = STRATUS__V1__WATCH_EVENT__INIT;
    ev.type = STRATUS__V1__WATCH_EVENT__TYPE__ADDED;
    ev.resource_version = rvs;
    ev.object_json = (char *)json;
    return rpc_stream_send(call, &ev.base);
}

static void *flood(void *p)
{
    rpc_call *call = p;
    _cleanup_free_ char *big = xmalloc(FLOOD_EVENT_BYTES + 1);
    memset(big, 'x', FLOOD_EVENT_BYTES);
    big[FLOOD_EVENT_BYTES] = '\0';
    int r = 0, n = 0;
    while (n < FLOOD_EVENTS_MAX && (r = send_event(call, n + 1, big)) == 0)
        n++;
    rpc_stream_finish(call, RPC_CODE_OK, NULL);
    pthread_mutex_lock(&T.lock);
    T.flood_sent = n;
    T.flood_result = r;
    T.flood_done++;
    T.threads--;
    pthread_cond_broadcast(&T.cond);
    pthread_mutex_unlock(&T.lock);
    return NULL;
}

#define BURST_EVENTS 300

/* Sends BURST_EVENTS numbered events as fast as the stream takes them (waiting for room, as the
 * apiserver's watch cache does), then ends the stream with OK. */
static void *burst(void *p)
{
    rpc_call *call = p;
    for (int i = 1; i <= BURST_EVENTS; i++) {
        while (rpc_stream_room(call) == 0 && !rpc_call_is_cancelled(call))
            sleep_usec(200);
        char json[64];
        snprintf(json, sizeof(json), "{\"n\":%d}", i);
        if (send_event(call, i, json) < 0)
            break;
    }
    rpc_stream_finish(call, RPC_CODE_OK, NULL);
    pthread_mutex_lock(&T.lock);
    T.threads--;
    pthread_cond_broadcast(&T.cond);
    pthread_mutex_unlock(&T.lock);
    return NULL;
}

/* Modes by namespace: "burst" and "burst-plain" send BURST_EVENTS from a thread, the first
 * batching what waits when the client asked for it (WatchRequest.batch), the second never; "events"
 * sends 5 events after resource_version and stays open; "finish" sends 3 then ends with
 * OUT_OF_RANGE; "flood" sends big events from a thread until the queue overflows; "hold" sends one
 * and stays open; "held" sends 17 events in three held groups (watch_holds_until_flushed). Open
 * watches end from their cancel callback. */
static void on_watch(rpc_call *call, const ProtobufCMessage *request, void *userdata)
{
    const Stratus__V1__WatchRequest *r = (const Stratus__V1__WatchRequest *)request;
    long rv = strtol(r->resource_version, NULL, 10);
    if (streq(r->namespace_, "flood")) {
        start_thread(flood, call);
        return;
    }
    if (streq(r->namespace_, "burst") || streq(r->namespace_, "burst-plain")) {
        if (r->batch && streq(r->namespace_, "burst"))
            rpc_stream_coalesce(call, 6 /* WatchEvent.events */, 4096);
        start_thread(burst, call);
        return;
    }
    if (streq(r->namespace_, "held")) {
        /* Two groups of 6 held and flushed, then 5 held and the stream ended without a flush (a
         * group stays within QUEUE_MAX, as the watch cache's do within a stream's room). */
        if (r->batch)
            rpc_stream_coalesce(call, 6 /* WatchEvent.events */, 64 * 1024);
        int i = 0;
        for (int group = 0; group < 3; group++) {
            while (rpc_stream_room(call) < QUEUE_MAX && !rpc_call_is_cancelled(call))
                sleep_usec(200); /* the group before has left the queue */
            rpc_stream_hold(call);
            for (int k = 0; k < (group < 2 ? 6 : 5); k++) {
                char json[64];
                snprintf(json, sizeof(json), "{\"n\":%d}", ++i);
                send_event(call, i, json);
            }
            if (group < 2)
                rpc_stream_flush(call);
        }
        rpc_stream_finish(call, RPC_CODE_OK, NULL);
        return;
    }
    int n = streq(r->namespace_, "events") ? 5 : streq(r->namespace_, "finish") ? 3 : 1;
    for (int i = 1; i <= n; i++)
        send_event(call, rv + i, "{}");
    if (streq(r->namespace_, "finish")) {
        rpc_stream_finish(call, RPC_CODE_OUT_OF_RANGE, "resource version 7 is too old");
        return;
    }
    if (rpc_call_on_cancel(call, on_watch_cancel, NULL) < 0)
        on_watch_cancel(call, NULL);
}

static const rpc_handler handlers[_RPC_METHOD_MAX] = {
    [RPC_METHOD_GET] = {on_get, NULL},
    [RPC_METHOD_HEALTH] = {on_health, NULL},
    [RPC_METHOD_APPLY] = {on_apply, NULL},
    [RPC_METHOD_WATCH] = {on_watch, NULL},
    /* Bind has no handler: it must answer UNIMPLEMENTED. */
};

/* ---- fixture ---- */

static rpc_server *servers[3];
static rpc_client *shared_client;
static int shared_port;

static void stop_all(void)
{
    shared_client = rpc_client_free(shared_client);
    for (size_t i = 0; i < ELEMENTSOF(servers); i++)
        servers[i] = rpc_server_free(servers[i]);
    /* Helper threads may still hold calls of a server that is gone: they end them harmlessly. */
    pthread_mutex_lock(&T.lock);
    while (T.threads > 0)
        pthread_cond_wait(&T.cond, &T.lock);
    pthread_mutex_unlock(&T.lock);
}

/* Starts a server on a free loopback port; it is freed at exit if the case does not. */
static rpc_server *server_start_with(size_t index, unsigned max_calls, int *ret_port)
{
    static bool registered;
    if (!registered) {
        atexit(stop_all);
        registered = true;
    }
    rpc_server_options o = {
        .max_receive_bytes = RECEIVE_MAX,
        .stream_queue_max = QUEUE_MAX,
        .slots_per_method = 4,
        .max_calls = max_calls,
    };
    rpc_server *s;
    CHECK_OK(rpc_server_new("127.0.0.1:0", &o, handlers, &s));
    CHECK_INT(rpc_server_port(s), >, 0);
    servers[index] = s;
    *ret_port = rpc_server_port(s);
    return s;
}

static rpc_server *server_start(size_t index, int *ret_port)
{
    return server_start_with(index, 0, ret_port);
}

static rpc_client *client_for(int port)
{
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    rpc_client *c;
    CHECK_OK(rpc_client_new(target, NULL, &c));
    return c;
}

/* The long-lived server and client most cases share. */
static rpc_client *shared(void)
{
    if (!shared_client) {
        server_start(0, &shared_port);
        shared_client = client_for(shared_port);
    }
    return shared_client;
}

/* ---- cases ---- */

static void methods_match_proto(void)
{
    const ProtobufCServiceDescriptor *sd = &stratus__v1__stratus__descriptor;
    CHECK_INT(sd->n_methods, ==, _RPC_METHOD_MAX);
    for (rpc_method m = 0; m < _RPC_METHOD_MAX; m++) {
        CHECK_STR(rpc_method_to_string(m), sd->methods[m].name);
        CHECK(rpc_method_request_type(m) == sd->methods[m].input);
        CHECK(rpc_method_reply_type(m) == sd->methods[m].output);
        _cleanup_free_ char *path = xasprintf("/stratus.v1.Stratus/%s", sd->methods[m].name);
        CHECK_STR(rpc_method_path(m), path);
        CHECK(rpc_method_is_streaming(m) == (m == RPC_METHOD_WATCH));
    }
    CHECK(rpc_method_path(_RPC_METHOD_MAX) == NULL);
}

static void codes_map_errno(void)
{
    CHECK_INT(rpc_code_from_errno(0), ==, RPC_CODE_OK);
    CHECK_INT(rpc_code_from_errno(-EINVAL), ==, RPC_CODE_INVALID_ARGUMENT);
    CHECK_INT(rpc_code_from_errno(ENOENT), ==, RPC_CODE_NOT_FOUND);
    CHECK_INT(rpc_code_from_errno(-ESTALE), ==, RPC_CODE_ABORTED);
    CHECK_INT(rpc_code_from_errno(-ERANGE), ==, RPC_CODE_RELIST);
    CHECK_INT(rpc_code_from_errno(-EHOSTDOWN), ==, RPC_CODE_UNAVAILABLE);
    CHECK_INT(rpc_code_from_errno(-EMSGSIZE), ==, RPC_CODE_RESOURCE_EXHAUSTED);
    CHECK_INT(rpc_code_from_errno(-EBADMSG), ==, RPC_CODE_INTERNAL);
    CHECK_INT(rpc_code_from_errno(-ENOMEM), ==, RPC_CODE_INTERNAL); /* not in the table */
    for (rpc_code c = 0; c < _RPC_CODE_MAX; c++) {
        if (c == RPC_CODE_UNKNOWN)
            continue;
        CHECK_INT(rpc_code_from_errno(rpc_code_to_errno(c)), ==, c);
        CHECK(rpc_code_to_errno(c) <= 0);
    }
    CHECK_INT(rpc_code_to_errno(RPC_CODE_NOT_FOUND), ==, -ENOENT);
    CHECK_INT(rpc_code_to_errno(RPC_CODE_DEADLINE_EXCEEDED), ==, -ETIMEDOUT);
    CHECK_INT(rpc_code_to_errno(RPC_CODE_UNAVAILABLE), ==, -EHOSTDOWN);
    CHECK_INT(rpc_code_to_errno(99), ==, -EPROTO);
    CHECK_STR(rpc_code_to_string(RPC_CODE_FAILED_PRECONDITION), "FAILED_PRECONDITION");
    CHECK_STR(rpc_code_to_string(99), "UNKNOWN");
}

static void unary_roundtrip(void)
{
    rpc_client *c = shared();
    rpc_status st;
    Stratus__V1__GetRequest get = STRATUS__V1__GET_REQUEST__INIT;
    get.kind = "Instance";
    get.namespace_ = "default";
    get.name = "web-1";
    Stratus__V1__ObjectResponse *obj = NULL;
    usec_t before = now_monotonic();
    CHECK_OK(rpc_client_get(c, &get, 10 * USEC_PER_SEC, &obj, &st));
    CHECK_INT(st.code, ==, RPC_CODE_OK);
    CHECK_STR(
        obj->object_json,
        "{\"kind\":\"Instance\",\"metadata\":{\"namespace\":\"default\",\"name\":\"web-1\"}}");
    obj = rpc_message_free(obj);
    pthread_mutex_lock(&T.lock);
    usec_t deadline = T.last_deadline;
    pthread_mutex_unlock(&T.lock);
    /* gRPC sends the timeout rounded up to a coarser unit (its grpc-timeout header keeps few
     * digits), so the server's deadline may be a little past the client's. */
    CHECK(deadline > before && deadline <= now_monotonic() + 11 * USEC_PER_SEC);

    Stratus__V1__HealthRequest hreq = STRATUS__V1__HEALTH_REQUEST__INIT;
    Stratus__V1__HealthResponse *health = NULL;
    CHECK_OK(rpc_client_health(c, &hreq, 10 * USEC_PER_SEC, &health, NULL));
    CHECK_STR(health->status, "ok");
    CHECK(health->etcd_ok);
    rpc_message_free(health);

    Stratus__V1__ApplyRequest apply = STRATUS__V1__APPLY_REQUEST__INIT;
    apply.object_json = "{\"kind\":\"Flavor\"}";
    apply.dry_run = true;
    Stratus__V1__ApplyResponse *applied = NULL;
    CHECK_OK(rpc_client_apply(c, &apply, 10 * USEC_PER_SEC, &applied, &st));
    CHECK_INT(applied->result, ==, STRATUS__V1__APPLY_RESPONSE__RESULT__UNCHANGED);
    CHECK_STR(applied->object_json, "{\"kind\":\"Flavor\"}");
    rpc_message_free(applied);

    /* A request of the wrong type never leaves the client. */
    ProtobufCMessage *reply = NULL;
    CHECK_INT(rpc_client_call(c, RPC_METHOD_GET, &hreq.base, USEC_PER_SEC, &reply, &st), ==,
              -EINVAL);
    CHECK_INT(rpc_client_call(c, RPC_METHOD_WATCH, &hreq.base, USEC_PER_SEC, &reply, &st), ==,
              -EINVAL);
    CHECK(reply == NULL);
}

static void *hammer(void *p)
{
    rpc_client *c = p;
    intptr_t failures = 0;
    for (int i = 0; i < 50; i++) {
        Stratus__V1__GetRequest get = STRATUS__V1__GET_REQUEST__INIT;
        get.kind = "Instance";
        get.name = i % 3 == 0 ? "async" : "x";
        Stratus__V1__ObjectResponse *obj = NULL;
        if (rpc_client_get(c, &get, 10 * USEC_PER_SEC, &obj, NULL) < 0)
            failures++;
        rpc_message_free(obj);
    }
    return (void *)failures;
}

static void async_reply(void)
{
    rpc_client *c = shared();
    Stratus__V1__GetRequest get = STRATUS__V1__GET_REQUEST__INIT;
    get.kind = "Instance";
    get.name = "async";
    Stratus__V1__ObjectResponse *obj = NULL;
    CHECK_OK(rpc_client_get(c, &get, 10 * USEC_PER_SEC, &obj, NULL));
    CHECK_STR(obj->object_json, "{\"async\":true}");
    rpc_message_free(obj);

    /* Many callers on one client, sync and async replies mixed. */
    pthread_t t[4];
    for (size_t i = 0; i < ELEMENTSOF(t); i++)
        CHECK_INT(pthread_create(&t[i], NULL, hammer, c), ==, 0);
    intptr_t failures = 0;
    for (size_t i = 0; i < ELEMENTSOF(t); i++) {
        void *f;
        pthread_join(t[i], &f);
        failures += (intptr_t)f;
    }
    CHECK_INT(failures, ==, 0);
}

static void deadline_exceeded(void)
{
    rpc_client *c = shared();
    int before = state_get(&T.slow_replied);
    Stratus__V1__GetRequest get = STRATUS__V1__GET_REQUEST__INIT;
    get.name = "slow";
    Stratus__V1__ObjectResponse *obj = NULL;
    rpc_status st;
    CHECK_INT(rpc_client_get(c, &get, 200 * USEC_PER_MSEC, &obj, &st), ==, -ETIMEDOUT);
    CHECK_INT(st.code, ==, RPC_CODE_DEADLINE_EXCEEDED);
    CHECK(obj == NULL);
    /* The handler replies later anyway; the adapter drops it and says so. */
    CHECK(state_wait(&T.slow_replied, before + 1));
    CHECK_INT(state_get(&T.slow_reply_result), ==, -ECANCELED);
}

static void error_propagates(void)
{
    rpc_client *c = shared();
    Stratus__V1__GetRequest get = STRATUS__V1__GET_REQUEST__INIT;
    get.kind = "Instance";
    get.name = "missing";
    Stratus__V1__ObjectResponse *obj = NULL;
    rpc_status st;
    CHECK_INT(rpc_client_get(c, &get, 10 * USEC_PER_SEC, &obj, &st), ==, -ENOENT);
    CHECK_INT(st.code, ==, RPC_CODE_NOT_FOUND);
    CHECK_STR(st.message, "instances \"missing\" not found");

    int bad = state_get(&T.bad_replied);
    get.name = "bad"; /* the handler replies with the wrong message type */
    CHECK_INT(rpc_client_get(c, &get, 10 * USEC_PER_SEC, &obj, &st), ==, -EPROTO);
    CHECK_INT(st.code, ==, RPC_CODE_INTERNAL);
    CHECK(state_wait(&T.bad_replied, bad + 1));
    CHECK_INT(state_get(&T.bad_reply_result), ==, -EINVAL);
}

/* A raw gRPC call to path with an empty message; returns its status code. */
static grpc_status_code raw_call(int port, const char *path, const char *payload, char *details,
                                 size_t size)
{
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(target, creds, NULL);
    grpc_channel_credentials_release(creds);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_slice method = grpc_slice_from_static_string(path);
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_seconds(20, GPR_TIMESPAN));
    grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
                                               deadline, NULL);
    grpc_slice body = grpc_slice_from_static_string(payload);
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&body, 1);
    grpc_metadata_array md, trailing;
    grpc_metadata_array_init(&md);
    grpc_metadata_array_init(&trailing);
    grpc_byte_buffer *recv = NULL;
    grpc_status_code code = GRPC_STATUS_OK;
    grpc_slice det = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
    ops[5].data.recv_status_on_client.status = &code;
    ops[5].data.recv_status_on_client.status_details = &det;
    if (grpc_call_start_batch(call, ops, 6, &code, NULL) != GRPC_CALL_OK)
        abort();
    grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    size_t n = MIN(GRPC_SLICE_LENGTH(det), size - 1);
    memcpy(details, GRPC_SLICE_START_PTR(det), n);
    details[n] = '\0';
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    grpc_channel_destroy(ch);
    grpc_byte_buffer_destroy(send);
    if (recv)
        grpc_byte_buffer_destroy(recv);
    grpc_slice_unref(det);
    grpc_metadata_array_destroy(&md);
    grpc_metadata_array_destroy(&trailing);
    return code;
}

static void unknown_method_unimplemented(void)
{
    rpc_client *c = shared();
    char details[256];
    /* With a 20 s deadline, a hang would show as DEADLINE_EXCEEDED, not UNIMPLEMENTED. */
    CHECK_INT(raw_call(shared_port, "/stratus.v1.Stratus/Bogus", "", details, sizeof(details)), ==,
              GRPC_STATUS_UNIMPLEMENTED);
    CHECK(strstr(details, "/stratus.v1.Stratus/Bogus") != NULL);
    CHECK_INT(raw_call(shared_port, "/other.Service/Get", "", details, sizeof(details)), ==,
              GRPC_STATUS_UNIMPLEMENTED);
    /* A method of the service without a handler on this server. */
    Stratus__V1__BindRequest bind = STRATUS__V1__BIND_REQUEST__INIT;
    Stratus__V1__BindResponse *res = NULL;
    rpc_status st;
    CHECK_INT(rpc_client_bind(c, &bind, 20 * USEC_PER_SEC, &res, &st), ==, -EOPNOTSUPP);
    CHECK_INT(st.code, ==, RPC_CODE_UNIMPLEMENTED);
    /* A known method: an empty message is a valid GetRequest, a truncated one is not. */
    CHECK_INT(raw_call(shared_port, "/stratus.v1.Stratus/Get", "", details, sizeof(details)), ==,
              GRPC_STATUS_OK);
    CHECK_INT(
        raw_call(shared_port, "/stratus.v1.Stratus/Get", "\x0a\x7f", details, sizeof(details)), ==,
        GRPC_STATUS_INVALID_ARGUMENT);
    CHECK_STR(details, "request is not a valid stratus.v1.GetRequest");
}

static void oversize_request(void)
{
    rpc_client *c = shared();
    _cleanup_free_ char *big = xmalloc(RECEIVE_MAX + 1024);
    memset(big, 'a', RECEIVE_MAX + 1023);
    big[RECEIVE_MAX + 1023] = '\0';
    Stratus__V1__ApplyRequest apply = STRATUS__V1__APPLY_REQUEST__INIT;
    apply.object_json = big;
    Stratus__V1__ApplyResponse *applied = NULL;
    rpc_status st;
    CHECK_INT(rpc_client_apply(c, &apply, 10 * USEC_PER_SEC, &applied, &st), ==, -ENOSPC);
    CHECK_INT(st.code, ==, RPC_CODE_RESOURCE_EXHAUSTED);
    /* The server goes on serving. */
    Stratus__V1__HealthRequest hreq = STRATUS__V1__HEALTH_REQUEST__INIT;
    Stratus__V1__HealthResponse *health = NULL;
    CHECK_OK(rpc_client_health(c, &hreq, 10 * USEC_PER_SEC, &health, NULL));
    rpc_message_free(health);
}

static void watch_in_order_and_cancel(void)
{
    rpc_client *c = shared();
    int cancels = state_get(&T.cancels);
    Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
    req.kind = "Instance";
    req.namespace_ = "events";
    req.resource_version = "10";
    rpc_watch *w;
    CHECK_OK(rpc_client_watch(c, &req, &w));
    for (int i = 11; i <= 15; i++) {
        Stratus__V1__WatchEvent *ev = NULL;
        CHECK_OK(rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, NULL));
        CHECK_INT(ev->type, ==, STRATUS__V1__WATCH_EVENT__TYPE__ADDED);
        CHECK_INT(strtol(ev->resource_version, NULL, 10), ==, i);
        rpc_message_free(ev);
    }
    Stratus__V1__WatchEvent *ev = NULL;
    CHECK_INT(rpc_watch_next(w, 100 * USEC_PER_MSEC, &ev, NULL), ==, -ETIMEDOUT);
    CHECK_INT(rpc_watch_next(w, 0, &ev, NULL), ==, -ETIMEDOUT);
    rpc_watch_cancel(w);
    rpc_status st;
    CHECK_INT(rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, &st), ==, -ECANCELED);
    CHECK_INT(st.code, ==, RPC_CODE_CANCELLED);
    CHECK_INT(rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, &st), ==, -ECANCELED);
    rpc_watch_free(w);
    /* The server noticed the client went away, and told the handler. */
    CHECK(state_wait(&T.cancels, cancels + 1));

    /* Freeing an open watch without reading cancels it as well. */
    CHECK_OK(rpc_client_watch(c, &req, &w));
    CHECK_OK(rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, NULL));
    rpc_message_free(ev);
    rpc_watch_free(w);
    CHECK(state_wait(&T.cancels, cancels + 2));
}

static void watch_server_ends_stream(void)
{
    rpc_client *c = shared();
    Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
    req.namespace_ = "finish";
    req.resource_version = "0";
    rpc_watch *w;
    CHECK_OK(rpc_client_watch(c, &req, &w));
    /* Every event sent before the status arrives first, in order. */
    for (int i = 1; i <= 3; i++) {
        Stratus__V1__WatchEvent *ev = NULL;
        CHECK_OK(rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, NULL));
        CHECK_INT(strtol(ev->resource_version, NULL, 10), ==, i);
        rpc_message_free(ev);
    }
    Stratus__V1__WatchEvent *ev = NULL;
    rpc_status st;
    CHECK_INT(rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, &st), ==, -ERANGE);
    CHECK_INT(st.code, ==, RPC_CODE_RELIST);
    CHECK_STR(st.message, "resource version 7 is too old");
    rpc_watch_free(w);
}

static void watch_overflow_relists(void)
{
    rpc_client *c = shared();
    int done = state_get(&T.flood_done);
    Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
    req.namespace_ = "flood";
    rpc_watch *w;
    CHECK_OK(rpc_client_watch(c, &req, &w));
    sleep_usec(300 * USEC_PER_MSEC); /* a slow reader */
    long expect = 1;
    int r;
    Stratus__V1__WatchEvent *ev = NULL;
    rpc_status st;
    while ((r = rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, &st)) == 0) {
        CHECK_INT(strtol(ev->resource_version, NULL, 10), ==, expect);
        CHECK_INT(strlen(ev->object_json), ==, FLOOD_EVENT_BYTES);
        expect++;
        ev = rpc_message_free(ev);
    }
    CHECK_INT(r, ==, -ERANGE);
    CHECK_INT(st.code, ==, RPC_CODE_RELIST);
    CHECK(strstr(st.message, "list again") != NULL);
    rpc_watch_free(w);
    /* The sender was told, and nothing it queued after the overflow went out. */
    CHECK(state_wait(&T.flood_done, done + 1));
    CHECK_INT(state_get(&T.flood_result), ==, -ENOBUFS);
    CHECK_INT(expect - 1, <=, state_get(&T.flood_sent));
}

/* Events that wait behind the one being sent go out in one message when the client asked for
 * batches (the client library always does), and the client hands them out one by one, in order,
 * each its own to free; a server that does not batch sends one message per event. */
static void watch_batches_what_waits(void)
{
    rpc_client *c = shared();
    const char *modes[] = {"burst", "burst-plain"};
    for (size_t m = 0; m < ELEMENTSOF(modes); m++) {
        Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
        req.namespace_ = (char *)modes[m];
        rpc_watch *w;
        CHECK_OK(rpc_client_watch(c, &req, &w));
        sleep_usec(100 * USEC_PER_MSEC); /* a slow reader: the queue fills up */
        Stratus__V1__WatchEvent *ev = NULL;
        rpc_status st;
        int r, n = 0;
        while ((r = rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, &st)) == 0) {
            n++;
            char json[64];
            snprintf(json, sizeof(json), "{\"n\":%d}", n);
            CHECK_INT(strtol(ev->resource_version, NULL, 10), ==, n);
            CHECK_STR(ev->object_json, json);
            CHECK_INT(ev->n_events, ==, 0);
            ev = rpc_message_free(ev);
            if (n % 50 == 0)
                sleep_usec(20 * USEC_PER_MSEC);
        }
        CHECK_INT(r, ==, -EPIPE); /* ended with OK after the last event */
        CHECK_INT(n, ==, BURST_EVENTS);
        size_t messages = rpc_watch_messages(w);
        fprintf(stderr, "  %s: %d events in %zu messages\n", modes[m], n, messages);
        if (m == 0)
            CHECK_INT(messages, <, BURST_EVENTS / 2);
        else
            CHECK_INT(messages, ==, BURST_EVENTS);
        rpc_watch_free(w);
    }
    /* A watch cancelled and freed in the middle of a batch frees the events it did not hand
     * out. */
    Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
    req.namespace_ = "burst";
    rpc_watch *w;
    CHECK_OK(rpc_client_watch(c, &req, &w));
    sleep_usec(100 * USEC_PER_MSEC);
    Stratus__V1__WatchEvent *ev = NULL;
    for (int i = 0; i < BURST_EVENTS && rpc_watch_buffered(w) == 0; i++) {
        CHECK_OK(rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, NULL));
        ev = rpc_message_free(ev);
    }
    CHECK_INT(rpc_watch_buffered(w), >, 0);
    /* Once cancelled, what the batch still holds is not handed out. */
    rpc_watch_cancel(w);
    CHECK_INT(rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, NULL), ==, -ECANCELED);
    rpc_watch_free(w); /* under ASan: nothing leaks */
}

/* Events sent between rpc_stream_hold and rpc_stream_flush leave as one message, also the first
 * (sent as they came, it would go alone); ending a held stream sends what it holds, then the
 * status. */
static void watch_holds_until_flushed(void)
{
    rpc_client *c = shared();
    Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
    req.namespace_ = "held";
    rpc_watch *w;
    CHECK_OK(rpc_client_watch(c, &req, &w));
    Stratus__V1__WatchEvent *ev = NULL;
    rpc_status st;
    int r, n = 0;
    while ((r = rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, &st)) == 0) {
        n++;
        CHECK_INT(strtol(ev->resource_version, NULL, 10), ==, n);
        ev = rpc_message_free(ev);
    }
    CHECK_INT(r, ==, -EPIPE);
    CHECK_INT(n, ==, 17);
    CHECK_INT(rpc_watch_messages(w), ==, 3);
    rpc_watch_free(w);
}

static void shutdown_with_open_watch(void)
{
    int port;
    rpc_server *s = server_start(1, &port);
    rpc_client *c = client_for(port);
    int cancels = state_get(&T.cancels);
    Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
    req.namespace_ = "hold";
    rpc_watch *w;
    CHECK_OK(rpc_client_watch(c, &req, &w));
    Stratus__V1__WatchEvent *ev = NULL;
    CHECK_OK(rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, NULL));
    rpc_message_free(ev);

    rpc_server_shutdown(s, 100 * USEC_PER_MSEC);
    CHECK(state_wait(&T.cancels, cancels + 1));
    rpc_status st;
    CHECK_INT(rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, &st), ==, -EHOSTDOWN);
    CHECK_INT(st.code, ==, RPC_CODE_UNAVAILABLE);
    CHECK_STR(st.message, "server is shutting down");
    rpc_watch_free(w);
    rpc_server_shutdown(s, 0); /* idempotent */
    servers[1] = rpc_server_free(s);

    /* Calls to the stopped server fail fast. */
    Stratus__V1__HealthRequest hreq = STRATUS__V1__HEALTH_REQUEST__INIT;
    Stratus__V1__HealthResponse *health = NULL;
    CHECK_INT(rpc_client_health(c, &hreq, 10 * USEC_PER_SEC, &health, &st), ==, -EHOSTDOWN);
    rpc_client_free(c);
}

static void unreachable_server(void)
{
    rpc_client *c = client_for(test_free_port());
    Stratus__V1__HealthRequest hreq = STRATUS__V1__HEALTH_REQUEST__INIT;
    Stratus__V1__HealthResponse *health = NULL;
    rpc_status st;
    int r = rpc_client_health(c, &hreq, 5 * USEC_PER_SEC, &health, &st);
    CHECK(r == -EHOSTDOWN || r == -ETIMEDOUT);
    CHECK(st.code == RPC_CODE_UNAVAILABLE || st.code == RPC_CODE_DEADLINE_EXCEEDED);
    CHECK(st.message[0] != '\0');

    Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
    rpc_watch *w;
    CHECK_OK(rpc_client_watch(c, &req, &w));
    Stratus__V1__WatchEvent *ev = NULL;
    CHECK_INT(rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, &st), ==, -EHOSTDOWN);
    rpc_watch_free(w);
    rpc_client_free(c);
}

static void call_limit_enforced(void)
{
    int port;
    rpc_server *s = server_start_with(2, 1, &port);
    rpc_client *c = client_for(port);
    Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
    req.namespace_ = "hold";
    rpc_watch *w;
    CHECK_OK(rpc_client_watch(c, &req, &w));
    Stratus__V1__WatchEvent *ev = NULL;
    CHECK_OK(rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, NULL));
    rpc_message_free(ev);
    /* The watch holds the only call allowed. */
    Stratus__V1__HealthRequest hreq = STRATUS__V1__HEALTH_REQUEST__INIT;
    Stratus__V1__HealthResponse *health = NULL;
    rpc_status st;
    CHECK_INT(rpc_client_health(c, &hreq, 10 * USEC_PER_SEC, &health, &st), ==, -ENOSPC);
    CHECK_INT(st.code, ==, RPC_CODE_RESOURCE_EXHAUSTED);
    rpc_watch_free(w);
    servers[2] = rpc_server_free(s);
    rpc_client_free(c);
}

static void port_in_use_is_refused(void)
{
    shared();
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", shared_port);
    rpc_server *s = NULL;
    CHECK_INT(rpc_server_new(addr, NULL, handlers, &s), ==, -EADDRINUSE);
    CHECK(s == NULL);
    rpc_server_options bad = {.threads = 1000};
    CHECK_INT(rpc_server_new("127.0.0.1:0", &bad, handlers, &s), ==, -EINVAL);
}

CHECK_MAIN(CASE(methods_match_proto), CASE(codes_map_errno), CASE(unary_roundtrip),
           CASE(async_reply), CASE(deadline_exceeded), CASE(error_propagates),
           CASE(unknown_method_unimplemented), CASE(oversize_request),
           CASE(watch_in_order_and_cancel), CASE(watch_server_ends_stream),
           CASE(watch_overflow_relists), CASE(watch_batches_what_waits),
           CASE(watch_holds_until_flushed), CASE(shutdown_with_open_watch),
           CASE(unreachable_server), CASE(call_limit_enforced), CASE(port_in_use_is_refused))
