/* The request engine inside pkg/store: libcurl's multi-socket API driven by a libev loop, the
 * endpoint list with failover, and the shared curl settings (timeouts, TLS, keep-alive). The
 * operation files build JSON bodies and hand them here; watch.c uses the same glue for its own
 * long-lived transfers. Not for other modules. */
#pragma once

#include <curl/curl.h>
#include <jansson.h>

#include "store-internal.h"

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
    size_t endpoint;    /* the member to use first; moves on failure */
    store_multi requests;
    store_multi watches;
    struct store_req *reqs; /* in flight, to cancel on free */
    struct store_watch *watch_list;
    CURL **idle; /* easy handles kept for reuse */
    size_t n_idle;
};

/* Submits `body` (stolen) to the path of `kind`; the result is shaped, then passed to cb. */
int store_submit(store *s, store_kind kind, store_shape shape, json_t *body, store_cb cb,
                 void *userdata);

/* Sets what every transfer shares: URL, POST body, timeouts, TLS, no signals. */
void store_easy_setup(store *s, CURL *easy, size_t endpoint, const char *path, const char *body,
                      size_t body_len);
CURL *store_easy_get(store *s);
void store_easy_put(store *s, CURL *easy);
/* Whether a transfer failed before the request reached a member (safe to send elsewhere). */
bool store_curl_not_sent(CURLcode code);

/* Links/unlinks a watch to/from the store's list (watch.c owns the struct). */
void store_watch_link(store *s, struct store_watch *w);
void store_watch_unlink(store *s, struct store_watch *w);
void store_watch_free_all(store *s);
/* The watch multi handle's `done`: reconnects, or finishes a watch that ended. */
void store_watch_transfer_done(store_multi *mu, CURL *easy, CURLcode code);
