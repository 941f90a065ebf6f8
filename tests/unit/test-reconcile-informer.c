/* Unit tests for pkg/reconcile's informer, against a fake apiserver: the real rpc server of
 * pkg/rpc on a loopback port with List and Watch handlers over an in-memory map (a revision
 * counter, an event log for replays, "compaction", and switches to end or fail streams), driven by
 * the real rpc client inside the informer. The informer's loop runs on the test thread. Cases:
 * paged initial list with selectors, watch events into cache and handlers, relist on OUT_OF_RANGE
 * (stream end or ERROR event) synthesizing the right updates/adds/deletes, resuming after the
 * stream ends, relisting when the resume version was compacted, List failures retried, and the
 * assume API. Nothing asserts wall-clock durations; waits have a generous hang guard. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/macro.h"
#include "check.h"
#include "reconcile/informer.h"
#include "rpc/client.h"
#include "rpc/server.h"

#define WATCHERS_MAX 64
#define LOG_MAX      256
#define GIVE_UP      (20 * USEC_PER_SEC) /* hang guard for waits, never a timing check */

/* ---- the fake apiserver ---- */

typedef struct logged {
    int64_t rv;
    int type;
    char *json;
} logged;

static struct {
    pthread_mutex_t lock;
    json_t *objects; /* key → object */
    int64_t rev;
    int64_t compacted; /* a Watch from a revision below this ends with OUT_OF_RANGE */
    logged log[LOG_MAX];
    size_t n_log;
    rpc_call *watchers[WATCHERS_MAX];
    size_t n_watchers;
    int list_calls, watch_calls;
    int64_t watch_rvs[WATCHERS_MAX]; /* resource_version of each Watch, in order */
    int fail_lists;                  /* answer this many Lists with UNAVAILABLE */
    int fail_list_at;                /* answer the List call of this number so, once (0: none) */
    bool bad_item;                   /* add an object without a name to the first page */
    char list_label[64], list_field[64], watch_label[64], watch_field[64];
    int64_t list_limit;
    bool list_all_ns, watch_bookmarks;
    bool same_rev; /* the next change shares the last one's revision (one transaction) */
} F = {.lock = PTHREAD_MUTEX_INITIALIZER};

static rpc_server *server;
static rpc_client *client;

static char *object_json(const char *key, int64_t rv, int gen)
{
    const char *slash = strchr(key, '/');
    return xasprintf("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{"
                     "\"namespace\":\"%.*s\",\"name\":\"%s\",\"resourceVersion\":\"%" PRId64
                     "\"},\"spec\":{\"gen\":%d}}",
                     (int)(slash - key), key, slash + 1, rv, gen);
}

static void send_locked(int type, const char *json, int64_t rv, rpc_call **dead, size_t *n_dead)
{
    char rvs[24];
    snprintf(rvs, sizeof(rvs), "%" PRId64, rv);
    Stratus__V1__WatchEvent ev = STRATUS__V1__WATCH_EVENT__INIT;
    ev.type = type;
    ev.object_json = (char *)(json ? json : "");
    ev.resource_version = rvs;
    for (size_t i = 0; i < F.n_watchers;) {
        if (rpc_stream_send(F.watchers[i], &ev.base) == -ENOBUFS) {
            /* the stream was ended with RELIST; no cancel callback comes for it */
            dead[(*n_dead)++] = F.watchers[i];
            F.watchers[i] = F.watchers[--F.n_watchers];
        } else
            i++;
    }
}

static void finish_all(rpc_call **calls, size_t n, rpc_code code, const char *msg)
{
    for (size_t i = 0; i < n; i++)
        rpc_stream_finish(calls[i], code, msg);
}

/* Records and (unless silent) streams a change. deleted: remove the key. unsent: logged for
 * replays, but not streamed (a stream that broke before it). Returns its revision. */
static int64_t fake_change_as(const char *key, int gen, bool deleted, bool silent, bool unsent)
{
    rpc_call *dead[WATCHERS_MAX];
    size_t n_dead = 0;
    pthread_mutex_lock(&F.lock);
    int64_t rv = F.same_rev ? F.rev : ++F.rev;
    F.same_rev = false;
    bool existed = json_object_get(F.objects, key) != NULL;
    _cleanup_free_ char *json = object_json(key, rv, gen);
    int type = deleted   ? STRATUS__V1__WATCH_EVENT__TYPE__DELETED
               : existed ? STRATUS__V1__WATCH_EVENT__TYPE__MODIFIED
                         : STRATUS__V1__WATCH_EVENT__TYPE__ADDED;
    if (deleted)
        json_object_del(F.objects, key);
    else
        json_object_set_new(F.objects, key, json_loads(json, 0, NULL));
    if (!silent) {
        if (F.n_log < LOG_MAX)
            F.log[F.n_log++] = (logged){.rv = rv, .type = type, .json = xstrdup(json)};
        if (!unsent)
            send_locked(type, json, rv, dead, &n_dead);
    }
    pthread_mutex_unlock(&F.lock);
    finish_all(dead, n_dead, RPC_CODE_OUT_OF_RANGE, "fell behind");
    return rv;
}

static int64_t fake_change(const char *key, int gen, bool deleted, bool silent)
{
    return fake_change_as(key, gen, deleted, silent, false);
}

static int64_t fake_put(const char *key, int gen)
{
    return fake_change(key, gen, false, false);
}

static int64_t fake_put_silent(const char *key, int gen)
{
    return fake_change(key, gen, false, true);
}

static int64_t fake_delete(const char *key, bool silent)
{
    return fake_change(key, 0, true, silent);
}

/* Other kinds moved the revision on; a BOOKMARK tells watchers. */
static int64_t fake_bookmark(void)
{
    rpc_call *dead[WATCHERS_MAX];
    size_t n_dead = 0;
    pthread_mutex_lock(&F.lock);
    int64_t rv = (F.rev += 5);
    send_locked(STRATUS__V1__WATCH_EVENT__TYPE__BOOKMARK, NULL, rv, dead, &n_dead);
    pthread_mutex_unlock(&F.lock);
    finish_all(dead, n_dead, RPC_CODE_OUT_OF_RANGE, "fell behind");
    return rv;
}

/* Forgets the history: a watch from before now must relist. */
static void fake_compact(void)
{
    pthread_mutex_lock(&F.lock);
    F.compacted = F.rev;
    for (size_t i = 0; i < F.n_log; i++)
        free(F.log[i].json);
    F.n_log = 0;
    pthread_mutex_unlock(&F.lock);
}

/* Ends every open watch with a status; error_event first sends an ERROR event with it. */
static void fake_end_watches(rpc_code code, const char *msg, bool error_event)
{
    rpc_call *calls[WATCHERS_MAX];
    pthread_mutex_lock(&F.lock);
    size_t n = F.n_watchers;
    memcpy(calls, F.watchers, n * sizeof(rpc_call *));
    F.n_watchers = 0;
    pthread_mutex_unlock(&F.lock);
    for (size_t i = 0; i < n; i++) {
        if (error_event) {
            Stratus__V1__WatchEvent ev = STRATUS__V1__WATCH_EVENT__INIT;
            ev.type = STRATUS__V1__WATCH_EVENT__TYPE__ERROR;
            ev.code = (int32_t)code;
            ev.message = (char *)msg;
            rpc_stream_send(calls[i], &ev.base);
        }
        rpc_stream_finish(calls[i], code, msg);
    }
}

static void fake_reset(void)
{
    fake_end_watches(RPC_CODE_UNAVAILABLE, "reset", false);
    fake_compact();
    pthread_mutex_lock(&F.lock);
    json_decref(F.objects);
    F.objects = json_object();
    F.compacted = 0;
    F.list_calls = F.watch_calls = 0;
    F.fail_lists = 0;
    F.fail_list_at = 0;
    F.bad_item = false;
    pthread_mutex_unlock(&F.lock);
}

static int fake_get_int(const int *p)
{
    pthread_mutex_lock(&F.lock);
    int v = *p;
    pthread_mutex_unlock(&F.lock);
    return v;
}

static int64_t fake_watch_rv(int i)
{
    pthread_mutex_lock(&F.lock);
    int64_t v = F.watch_rvs[i];
    pthread_mutex_unlock(&F.lock);
    return v;
}

static int64_t fake_rev(void)
{
    pthread_mutex_lock(&F.lock);
    int64_t v = F.rev;
    pthread_mutex_unlock(&F.lock);
    return v;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Pages by key: the continue token is the last key sent. */
static void on_list(rpc_call *call, const ProtobufCMessage *request, void *userdata)
{
    const Stratus__V1__ListRequest *r = (const Stratus__V1__ListRequest *)request;
    pthread_mutex_lock(&F.lock);
    F.list_calls++;
    snprintf(F.list_label, sizeof(F.list_label), "%s", r->label_selector);
    snprintf(F.list_field, sizeof(F.list_field), "%s", r->field_selector);
    F.list_limit = r->limit;
    F.list_all_ns = r->all_namespaces;
    if (F.fail_lists > 0 || F.list_calls == F.fail_list_at) {
        if (F.list_calls == F.fail_list_at)
            F.fail_list_at = 0;
        else
            F.fail_lists--;
        pthread_mutex_unlock(&F.lock);
        rpc_call_reply(call, RPC_CODE_UNAVAILABLE, "etcd is unavailable", NULL);
        return;
    }
    size_t n = json_object_size(F.objects), n_keys = 0;
    const char **keys = xnew(const char *, n + 1);
    const char *key;
    json_t *v;
    json_object_foreach (F.objects, key, v) {
        if (!r->continue_token[0] || strcmp(key, r->continue_token) > 0)
            keys[n_keys++] = key;
    }
    qsort(keys, n_keys, sizeof(char *), cmp_str);
    size_t limit = r->limit > 0 ? (size_t)r->limit : 1000;
    size_t n_items = MIN(limit, n_keys);
    bool bad = F.bad_item && !r->continue_token[0];
    char **items = xnew(char *, n_items + 1);
    for (size_t i = 0; i < n_items; i++)
        items[i] = json_dumps(json_object_get(F.objects, keys[i]), JSON_COMPACT);
    if (bad)
        items[n_items] = xstrdup("{\"metadata\":{\"namespace\":\"ns\"}}");
    char rvs[24];
    snprintf(rvs, sizeof(rvs), "%" PRId64, F.rev);
    _cleanup_free_ char *cont = n_keys > n_items ? xstrdup(keys[n_items - 1]) : NULL;
    pthread_mutex_unlock(&F.lock);

    Stratus__V1__ListResponse reply = STRATUS__V1__LIST_RESPONSE__INIT;
    reply.items_json = items;
    reply.n_items_json = n_items + bad;
    reply.resource_version = rvs;
    reply.continue_token = cont ? cont : "";
    rpc_call_reply(call, RPC_CODE_OK, NULL, &reply.base);
    for (size_t i = 0; i < n_items + bad; i++)
        free(items[i]);
    free(items);
    free(keys);
}

static void on_watch_cancel(rpc_call *call, void *userdata)
{
    bool mine = false;
    pthread_mutex_lock(&F.lock);
    for (size_t i = 0; i < F.n_watchers; i++)
        if (F.watchers[i] == call) {
            F.watchers[i] = F.watchers[--F.n_watchers];
            mine = true;
            break;
        }
    pthread_mutex_unlock(&F.lock);
    /* whoever takes a call off the list ends it */
    if (mine)
        rpc_stream_finish(call, RPC_CODE_CANCELLED, NULL);
}

static void on_watch(rpc_call *call, const ProtobufCMessage *request, void *userdata)
{
    const Stratus__V1__WatchRequest *r = (const Stratus__V1__WatchRequest *)request;
    int64_t from = strtoll(r->resource_version, NULL, 10);
    /* before the call is published: once on the list, another thread may end it */
    if (rpc_call_on_cancel(call, on_watch_cancel, NULL) < 0) {
        rpc_stream_finish(call, RPC_CODE_CANCELLED, NULL);
        return;
    }
    pthread_mutex_lock(&F.lock);
    if (F.watch_calls < WATCHERS_MAX)
        F.watch_rvs[F.watch_calls] = from;
    F.watch_calls++;
    snprintf(F.watch_label, sizeof(F.watch_label), "%s", r->label_selector);
    snprintf(F.watch_field, sizeof(F.watch_field), "%s", r->field_selector);
    F.watch_bookmarks = r->allow_bookmarks;
    if (from < F.compacted || F.n_watchers == WATCHERS_MAX) {
        pthread_mutex_unlock(&F.lock);
        rpc_stream_finish(call, RPC_CODE_OUT_OF_RANGE, "resource version compacted: list again");
        return;
    }
    for (size_t i = 0; i < F.n_log; i++)
        if (F.log[i].rv > from) {
            char rvs[24];
            snprintf(rvs, sizeof(rvs), "%" PRId64, F.log[i].rv);
            Stratus__V1__WatchEvent ev = STRATUS__V1__WATCH_EVENT__INIT;
            ev.type = F.log[i].type;
            ev.object_json = F.log[i].json;
            ev.resource_version = rvs;
            rpc_stream_send(call, &ev.base);
        }
    F.watchers[F.n_watchers++] = call;
    pthread_mutex_unlock(&F.lock);
}

static const rpc_handler handlers[_RPC_METHOD_MAX] = {
    [RPC_METHOD_LIST] = {on_list, NULL},
    [RPC_METHOD_WATCH] = {on_watch, NULL},
};

static void stop_server(void)
{
    fake_end_watches(RPC_CODE_UNAVAILABLE, "bye", false);
    client = rpc_client_free(client);
    server = rpc_server_free(server);
    fake_compact();
    json_decref(F.objects);
}

typedef struct harness harness;
static void harness_free(harness *h);
/* The case's harness: a failed CHECK skips harness_free, so the next case frees it first thing
 * (otherwise its informer would keep watching the fake and disturb the cases after it). */
static harness *current;

static void fake_start(void)
{
    if (current)
        harness_free(current);
    if (!server) {
        CHECK_OK(rpc_server_new("127.0.0.1:0", NULL, handlers, &server));
        atexit(stop_server);
        char target[64];
        snprintf(target, sizeof(target), "127.0.0.1:%d", rpc_server_port(server));
        CHECK_OK(rpc_client_new(target, NULL, &client));
    }
    fake_reset();
}

/* ---- the informer side ---- */

struct harness {
    struct ev_loop *loop;
    informer *inf;
    char lines[LOG_MAX][128];
    size_t n_lines;
};

static int64_t rv_of(const json_t *obj)
{
    int64_t rv = -1;
    informer_object_resource_version(obj, &rv);
    return rv;
}

static int gen_of(const json_t *obj)
{
    return (int)json_integer_value(json_object_get(json_object_get(obj, "spec"), "gen"));
}

static void record(harness *h, const char *fmt, ...) _printf_(2, 3);
static void record(harness *h, const char *fmt, ...)
{
    if (h->n_lines >= LOG_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->lines[h->n_lines++], sizeof(h->lines[0]), fmt, ap);
    va_end(ap);
}

static void on_add(informer *inf, const char *key, json_t *obj, void *userdata)
{
    record(userdata, "add %s %" PRId64, key, rv_of(obj));
}

static void on_update(informer *inf, const char *key, json_t *old_obj, json_t *new_obj,
                      void *userdata)
{
    record(userdata, "update %s %" PRId64 "->%" PRId64, key, rv_of(old_obj), rv_of(new_obj));
}

static void on_delete(informer *inf, const char *key, json_t *obj, void *userdata)
{
    record(userdata, "delete %s", key);
}

static void tick(struct ev_loop *loop, ev_timer *w, int revents) {}

typedef bool (*pred_fn)(harness *h, long arg);

/* Runs the informer's loop until pred holds (false after the hang guard). */
static bool run_until(harness *h, pred_fn pred, long arg)
{
    usec_t give_up = now_monotonic() + GIVE_UP;
    ev_timer t;
    ev_timer_init(&t, tick, 0.005, 0.005);
    ev_timer_start(h->loop, &t);
    bool ok;
    while (!(ok = pred(h, arg)) && now_monotonic() < give_up)
        ev_run(h->loop, EVRUN_ONCE);
    ev_timer_stop(h->loop, &t);
    return ok;
}

static bool synced(harness *h, long arg)
{
    return informer_has_synced(h->inf);
}

static bool lines_at_least(harness *h, long n)
{
    return h->n_lines >= (size_t)n;
}

static bool watches_at_least(harness *h, long n)
{
    return fake_get_int(&F.watch_calls) >= n;
}

static bool rv_at_least(harness *h, long rv)
{
    informer_stats s;
    informer_stats_read(h->inf, &s);
    return s.resource_version >= rv;
}

static harness *harness_new(const informer_options *o)
{
    harness *h = xnew(harness, 1);
    current = h;
    h->loop = ev_loop_new(EVFLAG_AUTO);
    informer_handlers hs = {on_add, on_update, on_delete, h};
    CHECK_OK(informer_new(client, h->loop, o, &hs, &h->inf));
    return h;
}

static void harness_start_synced(harness *h)
{
    CHECK_OK(informer_start(h->inf));
    CHECK(run_until(h, synced, 0));
    CHECK(run_until(h, watches_at_least, 1));
}

static void harness_free(harness *h)
{
    if (h == current)
        current = NULL;
    h->inf = informer_free(h->inf);
    ev_loop_destroy(h->loop);
    free(h);
}

static const informer_options default_opts = {
    .kind = "Instance",
    .all_namespaces = true,
    .backoff_initial = 5 * USEC_PER_MSEC,
    .backoff_max = 50 * USEC_PER_MSEC,
};

#define CHECK_LINES(h, ...)                                                                        \
    do {                                                                                           \
        const char *_want_[] = {__VA_ARGS__};                                                      \
        for (size_t _i_ = 0; _i_ < (h)->n_lines || _i_ < ELEMENTSOF(_want_); _i_++)                \
            CHECK_STR(_i_ < (h)->n_lines ? (h)->lines[_i_] : "(none)",                             \
                      _i_ < ELEMENTSOF(_want_) ? _want_[_i_] : "(none)");                          \
    } while (0)

static char *fmt(const char *f, ...) _printf_(1, 2);
static char *fmt(const char *f, ...)
{
    static char bufs[8][128];
    static int next;
    char *b = bufs[next++ % 8];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof(bufs[0]), f, ap);
    va_end(ap);
    return b;
}

/* ---- cases ---- */

static void initial_list_is_paged(void)
{
    fake_start();
    const char *keys[] = {"ns/a", "ns/b", "ns/c", "ns/d", "ns/e", "ns/f", "other/g"};
    int64_t rvs[ELEMENTSOF(keys)];
    for (size_t i = 0; i < ELEMENTSOF(keys); i++)
        rvs[i] = fake_put(keys[i], (int)i);
    fake_compact(); /* the informer must not need history from before its list */
    pthread_mutex_lock(&F.lock);
    F.bad_item = true;
    pthread_mutex_unlock(&F.lock);

    informer_options o = default_opts;
    o.page_size = 3;
    o.label_selector = "app=web";
    o.field_selector = "spec.nodeName=node-1";
    harness *h = harness_new(&o);
    CHECK(!informer_has_synced(h->inf));
    harness_start_synced(h);

    CHECK_INT(fake_get_int(&F.list_calls), ==, 3); /* 7 objects, 3 a page */
    pthread_mutex_lock(&F.lock); /* the handlers are done with these: watches_at_least(1) */
    CHECK_INT(F.list_limit, ==, 3);
    CHECK(F.list_all_ns);
    CHECK_STR(F.list_label, "app=web");
    CHECK_STR(F.list_field, "spec.nodeName=node-1");
    CHECK_STR(F.watch_label, "app=web");
    CHECK_STR(F.watch_field, "spec.nodeName=node-1");
    CHECK(F.watch_bookmarks);
    pthread_mutex_unlock(&F.lock);
    CHECK_INT(fake_watch_rv(0), ==, fake_rev()); /* watching from the list's revision */

    CHECK_INT(h->n_lines, ==, ELEMENTSOF(keys));
    for (size_t i = 0; i < ELEMENTSOF(keys); i++)
        CHECK_STR(h->lines[i], fmt("add %s %" PRId64, keys[i], rvs[i]));
    CHECK_INT(informer_size(h->inf), ==, ELEMENTSOF(keys));
    json_t *c = informer_get(h->inf, "ns/c");
    CHECK(c != NULL);
    CHECK_INT(gen_of(c), ==, 2);
    json_decref(c);
    CHECK(informer_get(h->inf, "ns/zz") == NULL);
    json_t **items;
    size_t n;
    CHECK_OK(informer_list(h->inf, &items, &n));
    CHECK_INT(n, ==, ELEMENTSOF(keys));
    informer_items_free(items, n);

    informer_stats s;
    informer_stats_read(h->inf, &s);
    CHECK_INT(s.lists, ==, 1);
    CHECK_INT(s.relists, ==, 0);
    CHECK_INT(s.bad_objects, ==, 1);
    CHECK_INT(s.resource_version, ==, fake_rev());
    CHECK_INT(s.items, ==, ELEMENTSOF(keys));
    harness_free(h);
}

static void watch_events_reach_cache_and_handlers(void)
{
    fake_start();
    int64_t a1 = fake_put("ns/a", 1);
    fake_put("ns/b", 1);
    harness *h = harness_new(&default_opts);
    harness_start_synced(h);
    h->n_lines = 0;

    int64_t c1 = fake_put("ns/c", 1);
    int64_t a2 = fake_put("ns/a", 2);
    fake_delete("ns/b", false);
    int64_t bm = fake_bookmark();
    CHECK(run_until(h, lines_at_least, 3));
    CHECK(run_until(h, rv_at_least, (long)bm));
    CHECK_LINES(h, fmt("add ns/c %" PRId64, c1), fmt("update ns/a %" PRId64 "->%" PRId64, a1, a2),
                "delete ns/b");

    json_t *a = informer_get(h->inf, "ns/a");
    CHECK_INT(gen_of(a), ==, 2);
    json_decref(a);
    CHECK(informer_get(h->inf, "ns/b") == NULL);
    CHECK_INT(informer_size(h->inf), ==, 2);
    informer_stats s;
    informer_stats_read(h->inf, &s);
    CHECK_INT(s.events, ==, 3);
    CHECK_INT(s.bookmarks, ==, 1);
    CHECK_INT(s.resource_version, ==, bm);
    CHECK_INT(s.lists, ==, 1);
    harness_free(h);
}

/* Changes the watch never saw, then `end` forces a relist: the diff must come out as handlers. */
static void relist_case(void (*end)(void))
{
    fake_start();
    fake_put("ns/a", 1);
    int64_t b1 = fake_put("ns/b", 1);
    fake_put("ns/c", 1);
    harness *h = harness_new(&default_opts);
    harness_start_synced(h);
    h->n_lines = 0;

    int64_t b2 = fake_put_silent("ns/b", 2);
    fake_delete("ns/c", true);
    int64_t d1 = fake_put_silent("ns/d", 1);
    fake_compact();
    end();
    CHECK(run_until(h, lines_at_least, 3));
    /* the list's order (a unchanged: nothing), then what the list no longer has */
    CHECK_LINES(h, fmt("update ns/b %" PRId64 "->%" PRId64, b1, b2), fmt("add ns/d %" PRId64, d1),
                "delete ns/c");
    informer_stats s;
    informer_stats_read(h->inf, &s);
    CHECK_INT(s.lists, ==, 2);
    CHECK_INT(s.relists, ==, 1);
    CHECK_INT(informer_size(h->inf), ==, 3);
    json_t *b = informer_get(h->inf, "ns/b");
    CHECK_INT(gen_of(b), ==, 2);
    json_decref(b);

    /* and it watches on from the new list's revision */
    CHECK(run_until(h, watches_at_least, 2));
    int64_t e1 = fake_put("ns/e", 1);
    CHECK(run_until(h, lines_at_least, 4));
    CHECK_STR(h->lines[3], fmt("add ns/e %" PRId64, e1));
    CHECK_INT(fake_watch_rv(fake_get_int(&F.watch_calls) - 1), ==, d1);
    harness_free(h);
}

static void end_with_relist(void)
{
    fake_end_watches(RPC_CODE_RELIST, "watch fell behind: list again", false);
}

static void end_with_error_event(void)
{
    fake_end_watches(RPC_CODE_OUT_OF_RANGE, "resource version too old", true);
}

static void relist_on_out_of_range(void)
{
    relist_case(end_with_relist);
}

static void relist_on_error_event(void)
{
    relist_case(end_with_error_event);
}

static void resume_after_stream_ends(void)
{
    fake_start();
    fake_put("ns/a", 1);
    harness *h = harness_new(&default_opts);
    harness_start_synced(h);
    h->n_lines = 0;
    int64_t b1 = fake_put("ns/b", 1);
    CHECK(run_until(h, lines_at_least, 1));

    /* closed with OK: watch again, at once, without listing, from the last revision known to
     * be complete — b1's may have had more events (one transaction), so the one before; b1
     * comes again and changes nothing */
    fake_end_watches(RPC_CODE_OK, NULL, false);
    int64_t c1 = fake_put("ns/c", 1); /* replayed from history, or live: once either way */
    CHECK(run_until(h, watches_at_least, 2));
    CHECK(run_until(h, lines_at_least, 2));
    CHECK_INT(fake_watch_rv(1), ==, b1 - 1);

    /* the apiserver went away: the same, after backoff; c1 came after b1, so b1 is complete */
    fake_end_watches(RPC_CODE_UNAVAILABLE, "apiserver restarting", false);
    CHECK(run_until(h, watches_at_least, 3));
    int64_t d1 = fake_put("ns/d", 1);
    CHECK(run_until(h, lines_at_least, 3));
    CHECK_INT(fake_watch_rv(2), ==, b1);
    CHECK_LINES(h, fmt("add ns/b %" PRId64, b1), fmt("add ns/c %" PRId64, c1),
                fmt("add ns/d %" PRId64, d1));

    informer_stats s;
    informer_stats_read(h->inf, &s);
    CHECK_INT(s.lists, ==, 1);
    CHECK_INT(s.watches, ==, 3);
    CHECK_INT(s.errors, ==, 1); /* UNAVAILABLE; a close with OK is not an error */
    harness_free(h);
}

/* One transaction is many events at one revision. A stream that breaks after some of them is
 * resumed from the revision before, so the rest still come (the server sends only what is newer
 * than the resume point); a bookmark marks a revision complete. */
static void resume_mid_revision_gets_the_rest(void)
{
    fake_start();
    harness *h = harness_new(&default_opts);
    harness_start_synced(h);
    h->n_lines = 0;
    int64_t x = fake_put("ns/x", 1);
    F.same_rev = true;
    int64_t y = fake_change_as("ns/y", 1, false, false, true); /* the stream broke before it */
    CHECK_INT(y, ==, x);
    CHECK(run_until(h, lines_at_least, 1));
    fake_end_watches(RPC_CODE_UNAVAILABLE, "connection lost", false);
    CHECK(run_until(h, watches_at_least, 2));
    CHECK(run_until(h, lines_at_least, 2));
    CHECK_INT(fake_watch_rv(1), ==, x - 1);
    CHECK_LINES(h, fmt("add ns/x %" PRId64, x), fmt("add ns/y %" PRId64, y));

    /* a bookmark at x says it is complete: the next resume starts after it */
    int64_t b = fake_bookmark();
    CHECK(b > x);
    usleep(100000);
    fake_end_watches(RPC_CODE_OK, NULL, false);
    CHECK(run_until(h, watches_at_least, 3));
    CHECK_INT(fake_watch_rv(2), ==, b);
    harness_free(h);
}

static void resume_from_compacted_version_relists(void)
{
    fake_start();
    fake_put("ns/a", 1);
    int64_t b1 = fake_put("ns/b", 1);
    harness *h = harness_new(&default_opts);
    harness_start_synced(h);
    h->n_lines = 0;

    int64_t b2 = fake_put_silent("ns/b", 2);
    fake_compact();
    fake_end_watches(RPC_CODE_UNAVAILABLE, "apiserver restarting", false);
    CHECK(run_until(h, lines_at_least, 1));
    CHECK_LINES(h, fmt("update ns/b %" PRId64 "->%" PRId64, b1, b2));
    CHECK(run_until(h, watches_at_least, 3));
    CHECK_INT(fake_watch_rv(1), ==, b1); /* resumed, was told to relist */
    CHECK_INT(fake_watch_rv(2), ==, b2); /* watched from the new list */
    informer_stats s;
    informer_stats_read(h->inf, &s);
    CHECK_INT(s.lists, ==, 2);
    harness_free(h);
}

static void list_failures_are_retried(void)
{
    fake_start();
    fake_put("ns/a", 1);
    pthread_mutex_lock(&F.lock);
    F.fail_lists = 2;
    pthread_mutex_unlock(&F.lock);
    harness *h = harness_new(&default_opts);
    harness_start_synced(h);
    CHECK_INT(fake_get_int(&F.list_calls), ==, 3);
    CHECK_INT(h->n_lines, ==, 1);
    informer_stats s;
    informer_stats_read(h->inf, &s);
    CHECK_INT(s.errors, ==, 2);
    CHECK_INT(s.lists, ==, 1);
    harness_free(h);
}

/* A page that fails in the middle of a list (the next one already asked for) starts the list
 * over: nothing of the broken one reaches the cache twice or is lost. */
static void list_failure_mid_pages_starts_over(void)
{
    fake_start();
    const char *keys[] = {"ns/a", "ns/b", "ns/c", "ns/d", "ns/e", "ns/f", "ns/g"};
    for (size_t i = 0; i < ELEMENTSOF(keys); i++)
        fake_put(keys[i], (int)i);
    pthread_mutex_lock(&F.lock);
    F.fail_list_at = 2; /* the second page of the first list */
    pthread_mutex_unlock(&F.lock);
    informer_options o = default_opts;
    o.page_size = 2;
    harness *h = harness_new(&o);
    harness_start_synced(h);
    CHECK_INT(fake_get_int(&F.list_calls), ==, 2 + 4); /* 2 of the broken list, 4 pages of 2 */
    CHECK_INT(h->n_lines, ==, ELEMENTSOF(keys));
    for (size_t i = 0; i < ELEMENTSOF(keys); i++)
        CHECK(strncmp(h->lines[i], fmt("add %s ", keys[i]), strlen(keys[i]) + 5) == 0);
    informer_stats s;
    informer_stats_read(h->inf, &s);
    CHECK_INT(s.errors, ==, 1);
    CHECK_INT(s.lists, ==, 1);
    CHECK_INT(s.items, ==, ELEMENTSOF(keys));
    harness_free(h);
}

static json_t *with_node(json_t *obj, const char *node, int64_t rv)
{
    json_t *copy = json_deep_copy(obj);
    json_object_set_new(json_object_get(copy, "spec"), "nodeName", json_string(node));
    json_object_set_new(json_object_get(copy, "metadata"), "resourceVersion",
                        json_string(fmt("%" PRId64, rv)));
    return copy;
}

static const char *node_of(json_t *obj)
{
    return json_string_value(json_object_get(json_object_get(obj, "spec"), "nodeName"));
}

static void assume_until_the_watch_catches_up(void)
{
    fake_start();
    int64_t a1 = fake_put("ns/a", 1);
    fake_put("ns/c", 1);
    harness *h = harness_new(&default_opts);
    harness_start_synced(h);
    h->n_lines = 0;

    /* the scheduler binds ns/a and assumes the result at the version it saw */
    json_t *a = informer_get(h->inf, "ns/a");
    json_t *assumed = with_node(a, "node-1", a1);
    json_t *older = with_node(a, "node-2", a1 - 1);
    json_decref(a);
    CHECK_OK(informer_assume(h->inf, "ns/a", assumed));
    CHECK_INT(informer_assume(h->inf, "ns/a", older), ==, -ESTALE);
    json_decref(older);
    json_t *no_rv = json_pack("{s:{s:s}}", "metadata", "name", "a");
    CHECK_INT(informer_assume(h->inf, "ns/a", no_rv), ==, -EINVAL);
    json_decref(no_rv);
    json_t *got = informer_get(h->inf, "ns/a");
    CHECK_STR(node_of(got), "node-1");
    json_decref(got);
    informer_stats s;
    informer_stats_read(h->inf, &s);
    CHECK_INT(s.assumed, ==, 1);

    /* unrelated events leave it */
    int64_t b1 = fake_put("ns/b", 1);
    CHECK(run_until(h, lines_at_least, 1));
    got = informer_get(h->inf, "ns/a");
    CHECK_STR(node_of(got), "node-1");
    json_decref(got);

    /* an assumption ahead of the server outlives an older event of its own key */
    json_t *c = informer_get(h->inf, "ns/c");
    json_t *c_assumed = with_node(c, "node-3", fake_rev() + 2);
    json_decref(c);
    CHECK_OK(informer_assume(h->inf, "ns/c", c_assumed));
    json_decref(c_assumed);
    fake_put("ns/c", 2);
    CHECK(run_until(h, lines_at_least, 2));
    got = informer_get(h->inf, "ns/c");
    CHECK_STR(node_of(got), "node-3");
    json_decref(got);
    fake_put("ns/c", 3); /* now at the assumed version: the server's object wins */
    CHECK(run_until(h, lines_at_least, 3));
    got = informer_get(h->inf, "ns/c");
    CHECK(node_of(got) == NULL);
    CHECK_INT(gen_of(got), ==, 3);
    json_decref(got);

    /* the real update of ns/a supersedes its assumption */
    int64_t a2 = fake_put("ns/a", 2);
    CHECK(run_until(h, lines_at_least, 4));
    got = informer_get(h->inf, "ns/a");
    CHECK(node_of(got) == NULL);
    CHECK_INT(gen_of(got), ==, 2);
    json_decref(got);
    informer_stats_read(h->inf, &s);
    CHECK_INT(s.assumed, ==, 0);
    CHECK_INT(informer_unassume(h->inf, "ns/a"), ==, -ENOENT);
    /* handlers reported the server's objects only */
    CHECK_STR(h->lines[0], fmt("add ns/b %" PRId64, b1));
    CHECK_STR(h->lines[3], fmt("update ns/a %" PRId64 "->%" PRId64, a1, a2));

    /* the bind failed: unassume shows the server's object again */
    got = informer_get(h->inf, "ns/a");
    json_t *again = with_node(got, "node-9", a2);
    json_decref(got);
    CHECK_OK(informer_assume(h->inf, "ns/a", again));
    json_decref(again);
    CHECK_OK(informer_unassume(h->inf, "ns/a"));
    got = informer_get(h->inf, "ns/a");
    CHECK(node_of(got) == NULL);
    json_decref(got);

    /* a key the server has not shown yet */
    json_t *fresh = json_pack("{s:{s:s,s:s,s:s},s:{}}", "metadata", "namespace", "ns", "name",
                              "new", "resourceVersion", "1", "spec");
    size_t before = informer_size(h->inf);
    CHECK_OK(informer_assume(h->inf, "ns/new", fresh));
    json_decref(fresh);
    CHECK_INT(informer_size(h->inf), ==, before + 1);
    CHECK_OK(informer_unassume(h->inf, "ns/new"));
    CHECK_INT(informer_size(h->inf), ==, before);
    CHECK(informer_get(h->inf, "ns/new") == NULL);

    /* the assumed reference stays valid for its holder after the cache dropped it */
    CHECK_STR(node_of(assumed), "node-1");
    json_decref(assumed);
    harness_free(h);
}

static void lifecycle_and_helpers(void)
{
    fake_start();
    informer *inf;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    informer_options bad = {.kind = ""};
    CHECK_INT(informer_new(client, loop, &bad, NULL, &inf), ==, -EINVAL);
    informer_options o = default_opts;
    o.backoff_initial = 2 * USEC_PER_SEC;
    o.backoff_max = USEC_PER_SEC;
    CHECK_INT(informer_new(client, loop, &o, NULL, &inf), ==, -EINVAL);
    /* never started; stopped twice; no handlers */
    CHECK_OK(informer_new(client, loop, &default_opts, NULL, &inf));
    informer_stop(inf);
    informer_stop(inf);
    inf = informer_free(inf);
    CHECK(informer_free(NULL) == NULL);
    /* started without handlers, freed while watching */
    fake_put("ns/a", 1);
    CHECK_OK(informer_new(client, loop, &default_opts, NULL, &inf));
    CHECK_OK(informer_start(inf));
    CHECK_INT(informer_start(inf), ==, -EALREADY);
    harness hh = {.loop = loop, .inf = inf};
    CHECK(run_until(&hh, synced, 0));
    CHECK(run_until(&hh, watches_at_least, 1));
    inf = informer_free(inf);
    ev_loop_destroy(loop);

    json_t *obj = json_pack("{s:{s:s,s:s,s:s}}", "metadata", "namespace", "ns", "name", "x",
                            "resourceVersion", "42");
    char *key;
    CHECK_OK(informer_object_key(obj, &key));
    CHECK_STR(key, "ns/x");
    free(key);
    int64_t rv;
    CHECK_OK(informer_object_resource_version(obj, &rv));
    CHECK_INT(rv, ==, 42);
    json_decref(obj);
    obj = json_pack("{s:{s:s,s:s}}", "metadata", "name", "node-1", "resourceVersion", "x1");
    CHECK_OK(informer_object_key(obj, &key));
    CHECK_STR(key, "node-1");
    free(key);
    CHECK_INT(informer_object_resource_version(obj, &rv), ==, -EINVAL);
    json_decref(obj);
    obj = json_pack("{s:{s:s}}", "metadata", "namespace", "ns");
    CHECK_INT(informer_object_key(obj, &key), ==, -EINVAL);
    json_decref(obj);
}

CHECK_MAIN(CASE(initial_list_is_paged), CASE(watch_events_reach_cache_and_handlers),
           CASE(relist_on_out_of_range), CASE(relist_on_error_event),
           CASE(resume_after_stream_ends), CASE(resume_mid_revision_gets_the_rest),
           CASE(resume_from_compacted_version_relists), CASE(list_failures_are_retried),
           CASE(list_failure_mid_pages_starts_over), CASE(assume_until_the_watch_catches_up),
           CASE(lifecycle_and_helpers))
