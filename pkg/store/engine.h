/* The engines inside pkg/store. Everything above this table is shared: ops.c describes each
 * request (store_request: raw bytes, compares, branches), parse.c shapes results and
 * maps etcd's errors, watch.c keeps a watch's revision bookkeeping and backoff. Below it, an
 * engine moves requests and watch streams: gateway.c + the transfer half of watch.c over
 * libcurl, grpc.c over gRPC core. Not for other modules. */
#pragma once

#include <curl/curl.h>
#include <jansson.h>

#include "store-internal.h"

typedef struct store_engine {
    const char *name;
    /* Sets up the engine's part of a freshly filled store; 0 or -errno. */
    int (*init)(store *s);
    /* Cancels every request without calling back and frees the engine's part. Watches are
     * already gone. */
    void (*done)(store *s);
    /* Encodes the request `req` describes (borrowed: encoded before this returns) and sends it;
     * the result is shaped and passed to cb on the loop. 0 or -EINVAL. */
    int (*submit)(store *s, const store_request *req, store_shape shape, store_cb cb,
                  void *userdata);
    /* Opens a watch stream on w->endpoint from w->next_rev (0 = from now). Messages go to
     * store_watch_on_msg(), the end of the stream to store_watch_stream_ended(). */
    void (*watch_connect)(store_watch *w);
    /* Drops the watch's stream, if any, without calling back. */
    void (*watch_disconnect)(store_watch *w);
} store_engine;

extern const store_engine store_engine_gateway;
extern const store_engine store_engine_grpc;

/* One libcurl multi handle bound to the store's libev loop. Requests and watches use separate
 * ones, so long-lived watch connections never take a slot of the request pool. */
typedef struct store_multi {
    CURLM *multi;
    ev_timer timer;
    store *s;
    /* Called for each finished transfer, after it was removed from the multi handle. */
    void (*done)(struct store_multi *mu, CURL *easy, CURLcode code);
} store_multi;

struct store {
    struct ev_loop *loop;
    store_options opts; /* strings owned by the store */
    const store_engine *engine;
    size_t endpoint; /* the member to use first; moves on failure */
    struct store_watch *watch_list;

    /* gateway engine */
    store_multi requests;
    store_multi watches;
    struct store_req *reqs; /* in flight, to cancel on free */
    CURL **idle;            /* easy handles kept for reuse */
    size_t n_idle;

    /* gRPC engine (grpc.c) */
    struct store_grpc *grpc;
};

struct store_watch {
    store *s;
    struct store_watch *prev, *next;
    char *key, *range_end;
    unsigned flags;
    int64_t next_rev; /* 0 until the first created message when watching "from now" */
    size_t endpoint;
    usec_t backoff;
    usec_t created_at; /* monotonic: when etcd last confirmed the stream; 0 none */
    /* Events of the revision the last fragment ended on: the rest of that revision may be in
     * the next fragment, so they wait for it (held_bytes ≤ max_event_line). */
    store_event *held;
    size_t n_held, held_bytes;
    ev_timer retry;
    unsigned reconnects;
    bool in_callback;
    bool free_requested; /* freed from its own callback: the engine finishes it afterwards */
    bool dead;           /* a terminal error was delivered */
    char *message;       /* etcd's words on that error, or ours; NULL when none */
    store_watch_cb cb;
    void *userdata;

    /* gateway engine: one POST /v3/watch */
    CURL *easy; /* non-NULL while a transfer is in the multi handle */
    char *body;
    buf line;
    bool abort_stream; /* the write callback asks curl to drop the transfer */

    /* gRPC engine: the current Watch call */
    struct store_gwatch *stream;
};

/* Submits the request `req` describes (borrowed) to the store's engine. */
int store_submit(store *s, const store_request *req, store_shape shape, store_cb cb,
                 void *userdata);

/* ---- shared by both engines (watch.c) */

/* Applies one message of the stream: bookkeeping of next_rev, events below it dropped, fragments
 * joined at revision boundaries, delivery, compaction as the terminal -ERANGE. Takes m's events
 * (the caller still clears m). Returns 0 to go on reading, or < 0 when this stream must end:
 * w->dead after a terminal error, w->free_requested when the callback freed the watch, otherwise
 * the engine reconnects through store_watch_stream_ended(). */
int store_watch_on_msg(store_watch *w, store_watch_msg *m);
/* Delivers a terminal error; the watch is dead afterwards. `message` (copied; may be NULL) is
 * what store_watch_message() returns from then on. */
void store_watch_fail(store_watch *w, int error, int64_t rev, const char *message);
/* The terminal -EBADMSG for a message of the stream that cannot be read or handed out. */
void store_watch_fail_malformed(store_watch *w);
/* The stream ended (not terminally): schedule a reconnect with backoff, on the next member when
 * `failed`. */
void store_watch_stream_ended(store_watch *w, bool failed);
/* Frees a watch whose free was deferred (free_requested), after the engine let go of it. */
void store_watch_destroy(store_watch *w);
void store_watch_free_all(store *s);

/* ---- gateway engine helpers shared by engine.c and watch.c */

/* Sets what every transfer shares: URL, POST body, timeouts, TLS, no signals. */
void store_easy_setup(store *s, CURL *easy, size_t endpoint, const char *path, const char *body,
                      size_t body_len);
/* Whether a transfer failed before the request reached a member (safe to send elsewhere). */
bool store_curl_not_sent(CURLcode code);
/* The watch multi handle's `done`: reconnects, or finishes a watch that ended. */
void store_watch_transfer_done(store_multi *mu, CURL *easy, CURLcode code);
void store_gateway_watch_connect(store_watch *w);
void store_gateway_watch_disconnect(store_watch *w);
