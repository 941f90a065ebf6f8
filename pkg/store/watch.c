/* Watches: the bookkeeping both engines share, and the gateway's transport for it.
 *
 * A watch remembers the next revision it owes the caller (`next_rev`): after a created message
 * with no start revision, the created header's revision + 1; after events, the last event's
 * revision + 1; after a progress notification, its revision + 1. Whenever a stream ends for any
 * reason but a terminal one, the engine reopens it (next endpoint, capped exponential backoff)
 * from `next_rev`, so nothing is lost and nothing is delivered twice. A cancel carrying
 * compact_revision is the terminal -ERANGE; one in the created message itself (etcd refused the
 * watch) the terminal -EINVAL.
 *
 * Gateway transport: one long-lived POST /v3/watch per watch, on the store's watch multi handle,
 * newline-delimited JSON framed as it arrives. etcd's answer to a compacted start revision keeps
 * the HTTP stream open, so the transfer is aborted here. The gRPC transport is in grpc.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/list.h"
#include "engine.h"

#define WATCH_BACKOFF_MIN (50 * USEC_PER_MSEC)
#define WATCH_BACKOFF_MAX (2 * USEC_PER_SEC)
#define WATCH_HEALTHY     (5 * USEC_PER_SEC) /* a stream that lived this long was fine */

static void watch_link(store *s, store_watch *w)
{
    LIST_PREPEND(s->watch_list, w);
}

static void watch_unlink(store *s, store_watch *w)
{
    LIST_REMOVE(s->watch_list, w);
}

static size_t event_bytes(const store_event *ev)
{
    size_t n = sizeof(*ev) + ev->kv.key_len + ev->kv.value_len;
    if (ev->prev_kv)
        n += sizeof(*ev->prev_kv) + ev->prev_kv->key_len + ev->prev_kv->value_len;
    return n;
}

static void watch_drop_held(store_watch *w)
{
    for (size_t i = 0; i < w->n_held; i++)
        store_event_clear(&w->held[i]);
    free(w->held);
    w->held = NULL;
    w->n_held = w->held_bytes = 0;
}

void store_watch_destroy(store_watch *w)
{
    store *s = w->s;
    watch_drop_held(w);
    ev_timer_stop(s->loop, &w->retry);
    s->engine->watch_disconnect(w);
    watch_unlink(s, w);
    buf_done(&w->line);
    free(w->message);
    free(w->body);
    free(w->key);
    free(w->range_end);
    free(w);
}

/* Calls the user; returns false when the watch must stop delivering (freed or dead). A callback
 * may run the loop (store_wait), so a call may come while another is still running: in_callback
 * is restored, not cleared. */
static bool watch_deliver(store_watch *w, const store_event *ev, size_t n, int64_t rev, int error)
{
    bool outer = w->in_callback;
    w->in_callback = true;
    w->cb(w, ev, n, rev, error, w->userdata);
    w->in_callback = outer;
    return !w->free_requested && !w->dead;
}

void store_watch_fail(store_watch *w, int error, int64_t rev, const char *message)
{
    if (w->dead || w->free_requested)
        return; /* already failed (or freed) from a callback further up */
    w->dead = true;
    free(w->message);
    w->message = message && *message ? xstrdup(message) : NULL;
    watch_deliver(w, NULL, 0, rev, error);
}

void store_watch_fail_malformed(store_watch *w)
{
    /* Reopening the stream would bring the same message again, and skipping it would break the
     * promise of every event: the watch ends, and says so. */
    _cleanup_free_ char *msg =
        xasprintf("%s: watch response that cannot be read (malformed, or a key with an embedded "
                  "NUL)",
                  w->s->opts.endpoints[w->endpoint]);
    store_watch_fail(w, -EBADMSG, 0, msg);
}

const char *store_watch_message(const store_watch *w)
{
    return w->message;
}

/* A response over etcd's request size limit comes in fragments, each with whole events, but a
 * revision's events (a transaction's) may be split between two. Everything before the last
 * revision of a fragment is complete and delivered at once; the events of that last revision
 * wait for the next fragment. So a catch-up over a backlog of any size works with a
 * max_event_line that holds one fragment, and what waits is bounded by max_event_line too. */
static int watch_on_events(store_watch *w, store_watch_msg *m)
{
    store_event *all = m->events;
    size_t n = m->n_events;
    if (w->n_held) {
        all = xrealloc(w->held, (w->n_held + n) * sizeof(*all));
        if (n)
            memcpy(all + w->n_held, m->events, n * sizeof(*all));
        free(m->events);
        n += w->n_held;
        w->held = NULL;
        w->n_held = w->held_bytes = 0;
    }
    m->events = NULL;
    m->n_events = 0;

    size_t complete = n;
    if (m->fragment)
        while (complete > 0 && all[complete - 1].kv.mod_revision == all[n - 1].kv.mod_revision)
            complete--;
    /* Drop anything already delivered (cannot happen when etcd honours start_revision, but the
     * promise of no duplicates should not rest on that). */
    size_t first = 0;
    while (first < complete && all[first].kv.mod_revision < w->next_rev)
        first++;
    bool go_on = true;
    if (first < complete) {
        w->next_rev = all[complete - 1].kv.mod_revision + 1;
        go_on = watch_deliver(w, all + first, complete - first, m->revision, 0);
    }
    for (size_t i = 0; i < complete; i++)
        store_event_clear(&all[i]);
    if (!go_on || complete == n) {
        for (size_t i = complete; i < n; i++)
            store_event_clear(&all[i]);
        free(all);
        return go_on ? 0 : -ECANCELED;
    }
    memmove(all, all + complete, (n - complete) * sizeof(*all));
    w->held = all;
    w->n_held = n - complete;
    for (size_t i = 0; i < w->n_held; i++)
        w->held_bytes += event_bytes(&w->held[i]);
    if (w->s->opts.max_event_line && w->held_bytes > w->s->opts.max_event_line) {
        watch_drop_held(w);
        store_watch_fail(w, -EMSGSIZE, 0, "the events of one revision pass max_event_line");
        return -EMSGSIZE;
    }
    return 0;
}

int store_watch_on_msg(store_watch *w, store_watch_msg *m)
{
    if (m->error) {
        if (m->error == -ERANGE)
            store_watch_fail(w, -ERANGE, m->revision, NULL);
        return -EPIPE;
    }
    if (m->canceled) {
        if (m->compact_revision > 0)
            store_watch_fail(w, -ERANGE, m->compact_revision, m->cancel_reason);
        else if (m->created)
            /* Refused at creation ("mvcc: watcher range is empty", permission denied): the
             * same request would be refused again. */
            store_watch_fail(w, -EINVAL, 0,
                             m->cancel_reason ? m->cancel_reason : "etcd refused the watch");
        return -EPIPE;
    }
    if (m->created) {
        if (w->next_rev == 0)
            w->next_rev = m->revision + 1;
        w->created_at = now_monotonic();
        return 0;
    }
    if (m->n_events > 0)
        return watch_on_events(w, m);
    if (m->revision > 0) {
        /* Progress notification: every event up to m->revision has been sent. */
        if (m->revision + 1 > w->next_rev)
            w->next_rev = m->revision + 1;
        if (w->flags & STORE_WATCH_PROGRESS)
            if (!watch_deliver(w, NULL, 0, m->revision, 0))
                return -ECANCELED;
    }
    return 0;
}

store_watch_req store_watch_request(const store_watch *w)
{
    return (store_watch_req){
        .key = {.data = w->key, .len = strlen(w->key)},
        .range_end = store_range_end(w->range_end),
        .start_revision = w->next_rev,
        .prev_kv = (w->flags & STORE_WATCH_PREV_KV) != 0,
        .progress_notify = (w->flags & STORE_WATCH_PROGRESS) != 0,
        .fragment = true,
    };
}

static void watch_retry_fired(struct ev_loop *loop, ev_timer *t, int revents)
{
    store_watch *w = t->data;
    w->reconnects++;
    w->s->engine->watch_connect(w);
}

void store_watch_stream_ended(store_watch *w, bool failed)
{
    watch_drop_held(w); /* the next stream starts again at their revision */
    if (failed)
        w->endpoint = (w->endpoint + 1) % w->s->opts.n_endpoints;
    /* A stream that lived a while starts the backoff over; one that a member created and ended
     * at once (without saying it was compacted) keeps doubling it instead of retrying every
     * WATCH_BACKOFF_MIN for ever. */
    if (w->created_at && now_monotonic() - w->created_at >= WATCH_HEALTHY)
        w->backoff = 0;
    w->created_at = 0;
    w->backoff = w->backoff ? MIN(w->backoff * 2, WATCH_BACKOFF_MAX) : WATCH_BACKOFF_MIN;
    ev_timer_set(&w->retry, (double)w->backoff / USEC_PER_SEC, 0.0);
    ev_timer_start(w->s->loop, &w->retry);
}

int store_watch_new(store *s, const char *key, const char *range_end, int64_t start_revision,
                    unsigned flags, store_watch_cb cb, void *userdata, store_watch **ret)
{
    if (!key || !cb || start_revision < 0 || !ret)
        return -EINVAL;
    store_watch *w = xnew(store_watch, 1);
    w->s = s;
    w->key = xstrdup(key);
    w->range_end = range_end ? xstrdup(range_end) : NULL;
    w->flags = flags;
    w->next_rev = start_revision;
    w->line = BUF_INIT(s->opts.max_event_line);
    w->endpoint = s->endpoint;
    w->cb = cb;
    w->userdata = userdata;
    ev_init(&w->retry, watch_retry_fired);
    w->retry.data = w;
    watch_link(s, w);
    s->engine->watch_connect(w);
    *ret = w;
    return 0;
}

store_watch *store_watch_free(store_watch *w)
{
    if (!w)
        return NULL;
    if (w->in_callback) {
        /* The engine is inside a delivery: it finishes the watch when that returns. */
        w->free_requested = true;
        ev_timer_stop(w->s->loop, &w->retry);
        return NULL;
    }
    store_watch_destroy(w);
    return NULL;
}

void store_watch_free_all(store *s)
{
    while (s->watch_list)
        store_watch_destroy(s->watch_list);
}

unsigned store_watch_reconnects(const store_watch *w)
{
    return w->reconnects;
}

/* ---- gateway transport */

static int gateway_watch_line(const char *line, size_t len, void *userdata)
{
    store_watch *w = userdata;
    store_watch_msg m;
    if (store_parse_watch_msg(line, len, &m) < 0) {
        store_watch_fail_malformed(w);
        w->abort_stream = true;
        return -EBADMSG;
    }
    int r = store_watch_on_msg(w, &m);
    if (r < 0)
        w->abort_stream = true;
    store_watch_msg_clear(&m);
    return r;
}

static size_t gateway_watch_write(char *data, size_t size, size_t nmemb, void *userdata)
{
    store_watch *w = userdata;
    if (w->free_requested || w->dead || w->abort_stream)
        return 0;
    int r = store_frame_lines(&w->line, data, nmemb, gateway_watch_line, w);
    if (r == -EMSGSIZE && !w->dead)
        store_watch_fail(w, -EMSGSIZE, 0, "a watch message passes max_event_line");
    if (r < 0 || w->abort_stream || w->dead)
        return 0; /* ends the transfer; the done handler decides what follows */
    return nmemb;
}

void store_gateway_watch_connect(store_watch *w)
{
    store *s = w->s;
    store_watch_req create = store_watch_request(w);
    json_t *req = store_gateway_watch_request(&create);
    free(w->body);
    w->body = json_dumps(req, JSON_COMPACT);
    json_decref(req);

    buf_reset(&w->line);
    w->abort_stream = false;
    w->easy = curl_easy_init();
    if (!w->easy)
        alloc_oom(0);
    store_easy_setup(s, w->easy, w->endpoint, "/v3/watch", w->body, strlen(w->body));
    curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, gateway_watch_write);
    curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(w->easy, CURLOPT_PRIVATE, w);
    /* A member that vanishes without a FIN must still be noticed. */
    curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPIDLE, 10L);
    curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPINTVL, 5L);
    curl_easy_setopt(w->easy, CURLOPT_FORBID_REUSE, 1L);
    curl_multi_add_handle(s->watches.multi, w->easy);
}

void store_gateway_watch_disconnect(store_watch *w)
{
    if (w->easy) {
        curl_multi_remove_handle(w->s->watches.multi, w->easy);
        curl_easy_cleanup(w->easy);
        w->easy = NULL;
    }
}

void store_watch_transfer_done(store_multi *mu, CURL *easy, CURLcode code)
{
    store_watch *w = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&w);
    curl_easy_cleanup(easy);
    w->easy = NULL;
    if (w->free_requested) {
        store_watch_destroy(w);
        return;
    }
    if (w->dead)
        return;
    /* Any end but a terminal one: reopen from next_rev, on the next member if this one failed. */
    store_watch_stream_ended(w, code != CURLE_OK || w->abort_stream);
}
