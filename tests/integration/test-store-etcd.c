/* Integration tests for pkg/store against a real etcd started by the fixture (free loopback
 * ports, temporary data, always stopped). Each case uses its own key prefix. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "check.h"
#include "etcd-fixture.h"
#include "store/store.h"

static etcd_fixture *etcd;
static struct ev_loop *loop;

/* The shared member, started or running again: a case that failed after stopping or killing it
 * leaves it down, and the next case must not meet it so. Each case using it calls this first
 * (connect_store does). */
static void etcd_up(void)
{
    if (!etcd)
        etcd = etcd_fixture_start();
    etcd_fixture_resume(etcd);
}

static store *connect_store(const char *const *endpoints, size_t n, size_t max_response)
{
    etcd_up();
    if (!loop)
        loop = ev_loop_new(EVFLAG_AUTO);
    store_options o = {
        .n_endpoints = n, .max_response = max_response, .request_timeout = 10 * USEC_PER_SEC};
    for (size_t i = 0; i < n; i++)
        o.endpoints[i] = endpoints[i];
    store *s = NULL;
    if (store_new(loop, &o, &s) < 0)
        abort();
    return s;
}

static store *connect_default(void)
{
    etcd_up();
    const char *ep[] = {etcd_fixture_endpoint(etcd)};
    return connect_store(ep, 1, 0);
}

/* ---- blocking helpers: one request, the loop runs until it is done */

static int put(store *s, const char *k, const char *v, int64_t lease, store_result **ret)
{
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_put(s, k, v, strlen(v), lease, STORE_PREV_KV, store_sync_done, &y));
    return store_wait(s, &y, ret);
}

static int get(store *s, const char *k, store_result **ret)
{
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_get(s, k, store_sync_done, &y));
    return store_wait(s, &y, ret);
}

static int64_t put_rev(store *s, const char *k, const char *v)
{
    _cleanup_(store_result_freep) store_result *r = NULL;
    int e = put(s, k, v, 0, &r);
    if (e < 0) {
        fprintf(stderr, "  put %s: %s\n", k, r && r->message ? r->message : store_strerror(e));
        etcd_fixture_describe(etcd);
    }
    CHECK_OK(e);
    return r->revision;
}

static void ev_loop_destroyp(struct ev_loop **l)
{
    if (*l)
        ev_loop_destroy(*l);
}

static void wake(struct ev_loop *l, ev_timer *t, int revents) {}

static void run_for(double seconds)
{
    ev_tstamp end = ev_time() + seconds;
    while (ev_time() < end) {
        ev_timer t;
        ev_timer_init(&t, wake, end - ev_time(), 0);
        ev_timer_start(loop, &t);
        ev_run(loop, EVRUN_ONCE);
        ev_timer_stop(loop, &t);
    }
}

static bool run_until(bool (*done)(void *), void *arg, double timeout)
{
    ev_tstamp end = ev_time() + timeout;
    while (!done(arg) && ev_time() < end) {
        ev_timer t;
        ev_timer_init(&t, wake, 0.05, 0);
        ev_timer_start(loop, &t);
        ev_run(loop, EVRUN_ONCE);
        ev_timer_stop(loop, &t);
    }
    return done(arg);
}

/* ---- cases */

static void put_get_delete(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_OK(put(s, "/t/pgd/a", "hello", 0, &r));
    int64_t rev = r->revision;
    CHECK_INT(r->n_kvs, ==, 0); /* nothing was there before */
    r = (store_result_free(r), NULL);

    CHECK_OK(get(s, "/t/pgd/a", &r));
    CHECK_INT(r->n_kvs, ==, 1);
    CHECK_STR(r->kvs[0].value, "hello");
    CHECK_INT(r->kvs[0].mod_revision, ==, rev);
    CHECK_INT(r->kvs[0].create_revision, ==, rev);
    r = (store_result_free(r), NULL);

    CHECK_OK(put(s, "/t/pgd/a", "again", 0, &r));
    CHECK_INT(r->n_kvs, ==, 1); /* prev_kv */
    CHECK_STR(r->kvs[0].value, "hello");
    r = (store_result_free(r), NULL);

    CHECK_INT(get(s, "/t/pgd/missing", &r), ==, -ENOENT);
    r = (store_result_free(r), NULL);

    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_delete(s, "/t/pgd/a", 0, store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, NULL));
    y = STORE_SYNC_INIT;
    CHECK_OK(store_delete(s, "/t/pgd/a", 0, store_sync_done, &y));
    CHECK_INT(store_wait(s, &y, NULL), ==, -ENOENT);
    CHECK_INT(get(s, "/t/pgd/a", &r), ==, -ENOENT);
}

static void binary_values_round_trip(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    unsigned char v[300];
    for (size_t i = 0; i < sizeof(v); i++)
        v[i] = (unsigned char)(i * 7);
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_put(s, "/t/bin", v, sizeof(v), 0, 0, store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, NULL));
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_OK(get(s, "/t/bin", &r));
    CHECK_INT(r->kvs[0].value_len, ==, sizeof(v));
    CHECK(memcmp(r->kvs[0].value, v, sizeof(v)) == 0);
}

static void create_only(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_create(s, "/t/create/x", "first", 5, 0, store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, NULL));
    y = STORE_SYNC_INIT;
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_OK(store_create(s, "/t/create/x", "second", 6, 0, store_sync_done, &y));
    CHECK_INT(store_wait(s, &y, &r), ==, -EEXIST);
    CHECK_INT(r->n_kvs, ==, 1);
    CHECK_STR(r->kvs[0].value, "first"); /* the current value comes back */
    store_result_free(TAKE_PTR(r));
    CHECK_OK(get(s, "/t/create/x", &r));
    CHECK_STR(r->kvs[0].value, "first");
}

static void cas_update_and_delete(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    int64_t rev1 = put_rev(s, "/t/cas/k", "v1");
    int64_t rev2 = put_rev(s, "/t/cas/k", "v2");

    store_sync y = STORE_SYNC_INIT;
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_OK(store_update(s, "/t/cas/k", "v3", 2, rev1, 0, store_sync_done, &y));
    CHECK_INT(store_wait(s, &y, &r), ==, -ESTALE);
    CHECK_INT(r->n_kvs, ==, 1);
    CHECK_STR(r->kvs[0].value, "v2");
    CHECK_INT(r->kvs[0].mod_revision, ==, rev2);
    store_result_free(TAKE_PTR(r));

    y = STORE_SYNC_INIT;
    CHECK_OK(store_update(s, "/t/cas/k", "v3", 2, rev2, 0, store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, &r));
    int64_t rev3 = r->revision;
    CHECK_INT(rev3, >, rev2);
    store_result_free(TAKE_PTR(r));

    y = STORE_SYNC_INIT;
    CHECK_OK(store_update(s, "/t/cas/gone", "v", 1, rev2, 0, store_sync_done, &y));
    CHECK_INT(store_wait(s, &y, NULL), ==, -ENOENT);

    y = STORE_SYNC_INIT;
    CHECK_OK(store_delete(s, "/t/cas/k", rev2, store_sync_done, &y));
    CHECK_INT(store_wait(s, &y, &r), ==, -ESTALE);
    CHECK_STR(r->kvs[0].value, "v3");
    store_result_free(TAKE_PTR(r));

    y = STORE_SYNC_INIT;
    CHECK_OK(store_delete(s, "/t/cas/k", rev3, store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, NULL));
    CHECK_INT(get(s, "/t/cas/k", &r), ==, -ENOENT);
}

static void concurrent_cas_loses_no_update(void)
{
    /* 50 increments of one counter, 10 writers at a time, each a read-modify-CAS loop: a lost
     * update would leave the counter below 50. */
    _cleanup_(store_freep) store *s = connect_default();
    put_rev(s, "/t/counter", "0");
    int done = 0, conflicts = 0, sent = 0;
    while (done < 50) {
        int batch = MIN(10, 50 - done);
        sent += batch;
        _cleanup_(store_result_freep) store_result *cur = NULL;
        CHECK_OK(get(s, "/t/counter", &cur));
        int v = atoi(cur->kvs[0].value);
        store_sync ys[10];
        char next[16];
        snprintf(next, sizeof(next), "%d", v + 1);
        for (int i = 0; i < batch; i++) {
            ys[i] = STORE_SYNC_INIT;
            CHECK_OK(store_update(s, "/t/counter", next, strlen(next), cur->kvs[0].mod_revision, 0,
                                  store_sync_done, &ys[i]));
        }
        int won = 0;
        for (int i = 0; i < batch; i++) {
            int e = store_wait(s, &ys[i], NULL);
            CHECK(e == 0 || e == -ESTALE);
            if (e == 0)
                won++;
            else
                conflicts++;
        }
        CHECK_INT(won, ==, 1); /* exactly one writer of the same revision wins */
        done += won;
    }
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_OK(get(s, "/t/counter", &r));
    CHECK_STR(r->kvs[0].value, "50");
    CHECK_INT(conflicts, ==, sent - 50); /* every other attempt saw ESTALE */
}

static void range_pages_through_prefix(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    for (int i = 0; i < 25; i++) {
        char k[32], v[16];
        snprintf(k, sizeof(k), "/t/page/k%02d", i);
        snprintf(v, sizeof(v), "%d", i);
        put_rev(s, k, v);
    }
    put_rev(s, "/t/page0", "outside"); /* just past the prefix */
    _cleanup_free_ char *end = store_prefix_end("/t/page/");
    char last[64] = "";
    int64_t at = 0;
    int seen = 0, pages = 0;
    for (;;) {
        store_range_opts o = {.key = "/t/page/",
                              .range_end = end,
                              .limit = 10,
                              .revision = at,
                              .after = *last ? last : NULL};
        store_sync y = STORE_SYNC_INIT;
        _cleanup_(store_result_freep) store_result *r = NULL;
        CHECK_OK(store_range(s, &o, store_sync_done, &y));
        CHECK_OK(store_wait(s, &y, &r));
        if (!at)
            at = r->revision;
        pages++;
        if (pages == 1)
            CHECK_INT(r->count, ==, 25);
        for (size_t i = 0; i < r->n_kvs; i++) {
            char want[32];
            snprintf(want, sizeof(want), "/t/page/k%02d", seen);
            CHECK_STR(r->kvs[i].key, want);
            seen++;
        }
        if (!r->more)
            break;
        snprintf(last, sizeof(last), "%s", r->kvs[r->n_kvs - 1].key);
        /* writes after the first page do not show in a listing pinned to its revision */
        if (pages == 1)
            put_rev(s, "/t/page/k00a", "late");
    }
    CHECK_INT(pages, ==, 3);
    CHECK_INT(seen, ==, 25);
}

static void txn_is_all_or_nothing(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    int64_t rev = put_rev(s, "/t/txn/guard", "g");

    _cleanup_(store_txn_freep) store_txn *t = store_txn_new();
    store_txn_compare(t, "/t/txn/guard", STORE_CMP_MOD, STORE_CMP_EQUAL, rev + 1000);
    store_txn_put(t, STORE_ON_SUCCESS, "/t/txn/a", "1", 1, 0, 0);
    store_txn_put(t, STORE_ON_SUCCESS, "/t/txn/b", "2", 1, 0, 0);
    store_txn_get(t, STORE_ON_FAILURE, "/t/txn/guard", NULL);
    store_sync y = STORE_SYNC_INIT;
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_OK(store_txn_commit(s, t, store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, &r));
    CHECK(!r->succeeded);
    CHECK_INT(r->n_responses, ==, 1);
    CHECK_STR(r->responses[0].kvs[0].value, "g");
    store_result_free(TAKE_PTR(r));
    CHECK_INT(get(s, "/t/txn/a", &r), ==, -ENOENT);
    store_result_free(TAKE_PTR(r));
    CHECK_INT(get(s, "/t/txn/b", &r), ==, -ENOENT);
    store_result_free(TAKE_PTR(r));

    /* the same writes under a compare that holds all land at one revision */
    _cleanup_(store_txn_freep) store_txn *t2 = store_txn_new();
    store_txn_compare(t2, "/t/txn/guard", STORE_CMP_MOD, STORE_CMP_EQUAL, rev);
    store_txn_compare(t2, "/t/txn/a", STORE_CMP_CREATE, STORE_CMP_EQUAL, 0);
    store_txn_put(t2, STORE_ON_SUCCESS, "/t/txn/a", "1", 1, 0, 0);
    store_txn_put(t2, STORE_ON_SUCCESS, "/t/txn/b", "2", 1, 0, 0);
    store_txn_delete(t2, STORE_ON_SUCCESS, "/t/txn/guard", NULL, STORE_PREV_KV);
    y = STORE_SYNC_INIT;
    CHECK_OK(store_txn_commit(s, t2, store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, &r));
    CHECK(r->succeeded);
    CHECK_INT(r->n_responses, ==, 3);
    CHECK_INT(r->responses[2].deleted, ==, 1);
    int64_t at = r->revision;
    store_result_free(TAKE_PTR(r));
    CHECK_OK(get(s, "/t/txn/a", &r));
    CHECK_INT(r->kvs[0].mod_revision, ==, at);
    store_result_free(TAKE_PTR(r));
    CHECK_OK(get(s, "/t/txn/b", &r));
    CHECK_INT(r->kvs[0].mod_revision, ==, at);
    store_result_free(TAKE_PTR(r));
    CHECK_INT(get(s, "/t/txn/guard", &r), ==, -ENOENT);
}

static void txn_too_many_ops(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    _cleanup_(store_txn_freep) store_txn *t = store_txn_new();
    for (int i = 0; i < 200; i++) {
        char k[32];
        snprintf(k, sizeof(k), "/t/many/%d", i);
        store_txn_put(t, STORE_ON_SUCCESS, k, "x", 1, 0, 0);
    }
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_txn_commit(s, t, store_sync_done, &y));
    CHECK_INT(store_wait(s, &y, NULL), ==, -E2BIG);
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_INT(get(s, "/t/many/0", &r), ==, -ENOENT);
}

static void delete_prefix_spares_siblings(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    put_rev(s, "/t/dp/a/1", "x");
    put_rev(s, "/t/dp/a/2", "x");
    put_rev(s, "/t/dp/ab", "sibling");
    store_sync y = STORE_SYNC_INIT;
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_OK(store_delete_prefix(s, "/t/dp/a/", store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, &r));
    CHECK_INT(r->deleted, ==, 2);
    store_result_free(TAKE_PTR(r));
    CHECK_OK(get(s, "/t/dp/ab", &r));
    CHECK_INT(store_delete_prefix(s, "", store_sync_done, &y), ==, -EINVAL);
}

static void leases_expire_keys(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    store_sync y = STORE_SYNC_INIT;
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_OK(store_lease_grant(s, 1, store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, &r));
    int64_t short_lease = r->lease_id;
    CHECK_INT(r->ttl, >=, 1); /* etcd may raise a TTL to its minimum (2 s with default timings) */
    store_result_free(TAKE_PTR(r));

    y = STORE_SYNC_INIT;
    CHECK_OK(store_lease_grant(s, 30, store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, &r));
    int64_t long_lease = r->lease_id;
    store_result_free(TAKE_PTR(r));

    CHECK_OK(put(s, "/t/lease/short", "x", short_lease, &r));
    store_result_free(TAKE_PTR(r));
    CHECK_OK(put(s, "/t/lease/long", "x", long_lease, &r));
    store_result_free(TAKE_PTR(r));
    CHECK_OK(get(s, "/t/lease/short", &r));
    CHECK_INT(r->kvs[0].lease, ==, short_lease);
    store_result_free(TAKE_PTR(r));

    y = STORE_SYNC_INIT;
    CHECK_OK(store_lease_keepalive(s, long_lease, store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, &r));
    CHECK_INT(r->ttl, ==, 30);
    store_result_free(TAKE_PTR(r));

    /* The short lease is left to expire: etcd checks expiry every ~500 ms. */
    bool gone = false;
    for (int i = 0; i < 60 && !gone; i++) {
        run_for(0.1);
        gone = get(s, "/t/lease/short", &r) == -ENOENT;
        store_result_free(TAKE_PTR(r));
    }
    CHECK(gone);
    y = STORE_SYNC_INIT;
    CHECK_OK(store_lease_keepalive(s, short_lease, store_sync_done, &y));
    CHECK_INT(store_wait(s, &y, NULL), ==, -ETIME);
    y = STORE_SYNC_INIT;
    CHECK_OK(store_lease_ttl(s, short_lease, store_sync_done, &y));
    CHECK_INT(store_wait(s, &y, NULL), ==, -ETIME);

    y = STORE_SYNC_INIT;
    CHECK_OK(store_lease_ttl(s, long_lease, store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, &r));
    CHECK_INT(r->ttl, >, 20);
    store_result_free(TAKE_PTR(r));

    y = STORE_SYNC_INIT;
    CHECK_OK(store_lease_revoke(s, long_lease, store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, NULL));
    CHECK_INT(get(s, "/t/lease/long", &r), ==, -ENOENT);
    y = STORE_SYNC_INIT;
    CHECK_OK(store_lease_revoke(s, long_lease, store_sync_done, &y));
    CHECK_INT(store_wait(s, &y, NULL), ==, -ETIME);
}

/* ---- watches */

typedef struct watch_log {
    char keys[256][48];
    int64_t revs[256];
    store_event_type types[256];
    char prev[256][16];
    int n;
    int error;
    int64_t error_rev;
    int progress;
    bool free_on_error;
} watch_log;

static void log_events(store_watch *w, const store_event *ev, size_t n, int64_t rev, int error,
                       void *userdata)
{
    watch_log *l = userdata;
    if (error) {
        l->error = error;
        l->error_rev = rev;
        if (l->free_on_error)
            store_watch_free(w); /* freeing from inside the callback is allowed */
        return;
    }
    if (n == 0)
        l->progress++;
    for (size_t i = 0; i < n && l->n < 256; i++, l->n++) {
        snprintf(l->keys[l->n], sizeof(l->keys[0]), "%s", ev[i].kv.key);
        l->revs[l->n] = ev[i].kv.mod_revision;
        l->types[l->n] = ev[i].type;
        snprintf(l->prev[l->n], sizeof(l->prev[0]), "%s",
                 ev[i].prev_kv ? ev[i].prev_kv->value : "-");
    }
}

typedef struct count_goal {
    watch_log *log;
    int want;
} count_goal;

static bool log_has(void *arg)
{
    count_goal *g = arg;
    return g->log->n >= g->want || g->log->error;
}

static bool log_has_error(void *arg)
{
    return ((watch_log *)arg)->error != 0;
}

static void watch_sees_puts_and_deletes_in_order(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    int64_t start = put_rev(s, "/t/w1/before", "old") + 1;
    _cleanup_free_ char *end = store_prefix_end("/t/w1/");
    static watch_log l;
    memset(&l, 0, sizeof(l));
    _cleanup_(store_watch_freep) store_watch *w = NULL;
    CHECK_OK(store_watch_new(s, "/t/w1/", end, start, STORE_WATCH_PREV_KV, log_events, &l, &w));
    int64_t r1 = put_rev(s, "/t/w1/a", "1");
    int64_t r2 = put_rev(s, "/t/w1/b", "2");
    put_rev(s, "/t/w2/outside", "x");
    int64_t r3 = put_rev(s, "/t/w1/a", "3");
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_delete(s, "/t/w1/b", 0, store_sync_done, &y));
    _cleanup_(store_result_freep) store_result *dr = NULL;
    CHECK_OK(store_wait(s, &y, &dr));
    int64_t r4 = dr->revision;

    count_goal g = {&l, 4};
    CHECK(run_until(log_has, &g, 10));
    CHECK_INT(l.n, ==, 4);
    CHECK_STR(l.keys[0], "/t/w1/a");
    CHECK_INT(l.revs[0], ==, r1);
    CHECK_STR(l.keys[1], "/t/w1/b");
    CHECK_INT(l.revs[1], ==, r2);
    CHECK_INT(l.revs[2], ==, r3);
    CHECK_STR(l.prev[2], "1"); /* prev_kv of the overwrite */
    CHECK_INT(l.types[3], ==, STORE_EVENT_DELETE);
    CHECK_STR(l.keys[3], "/t/w1/b");
    CHECK_INT(l.revs[3], ==, r4);
    CHECK_STR(l.prev[3], "2");
}

static void watch_from_now_skips_history(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    put_rev(s, "/t/wnow/old", "x");
    static watch_log l;
    memset(&l, 0, sizeof(l));
    _cleanup_free_ char *end = store_prefix_end("/t/wnow/");
    _cleanup_(store_watch_freep) store_watch *w = NULL;
    CHECK_OK(store_watch_new(s, "/t/wnow/", end, 0, 0, log_events, &l, &w));
    run_for(0.3); /* let the stream be created before writing */
    put_rev(s, "/t/wnow/new", "y");
    count_goal g = {&l, 1};
    CHECK(run_until(log_has, &g, 10));
    run_for(0.2);
    CHECK_INT(l.n, ==, 1);
    CHECK_STR(l.keys[0], "/t/wnow/new");
}

static void watch_survives_etcd_restart(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    static watch_log l;
    memset(&l, 0, sizeof(l));
    _cleanup_free_ char *end = store_prefix_end("/t/wr/");
    int64_t start = put_rev(s, "/t/wr-start", "x") + 1;
    _cleanup_(store_watch_freep) store_watch *w = NULL;
    CHECK_OK(store_watch_new(s, "/t/wr/", end, start, 0, log_events, &l, &w));
    for (int i = 0; i < 5; i++) {
        char k[32];
        snprintf(k, sizeof(k), "/t/wr/%d", i);
        put_rev(s, k, "before");
    }
    count_goal g = {&l, 5};
    CHECK(run_until(log_has, &g, 10));

    etcd_fixture_pause(etcd);
    run_for(0.5); /* the watch notices and retries against a dead port */
    etcd_fixture_resume(etcd);
    for (int i = 5; i < 10; i++) {
        char k[32];
        snprintf(k, sizeof(k), "/t/wr/%d", i);
        _cleanup_(store_result_freep) store_result *r = NULL;
        /* the request pool's connections died with etcd: the first writes may need a retry */
        int e = -1;
        for (int tries = 0; tries < 50 && e < 0; tries++) {
            e = put(s, k, "after", 0, &r);
            r = (store_result_free(r), NULL);
            if (e < 0)
                run_for(0.1);
        }
        CHECK_OK(e);
    }
    g.want = 10;
    CHECK(run_until(log_has, &g, 15));
    run_for(0.3);
    CHECK_INT(l.error, ==, 0);
    CHECK_INT(l.n, ==, 10); /* no loss, no duplicates */
    for (int i = 0; i < 10; i++) {
        char want[32];
        snprintf(want, sizeof(want), "/t/wr/%d", i);
        CHECK_STR(l.keys[i], want);
        if (i)
            CHECK_INT(l.revs[i], >, l.revs[i - 1]);
    }
    CHECK_INT(store_watch_reconnects(w), >=, 1);
}

/* A watch callback may run the loop (store_wait): here its own stream ends meanwhile (etcd is
 * killed from inside the callback), and the watch must carry on afterwards. Run under ASan. */
typedef struct nested_watch {
    watch_log log;
    store *s;
    int calls;
    int nested_get;
} nested_watch;

static void nested_cb(store_watch *w, const store_event *ev, size_t n, int64_t rev, int error,
                      void *userdata)
{
    nested_watch *nw = userdata;
    log_events(w, ev, n, rev, error, &nw->log);
    if (nw->calls++ > 0 || n == 0)
        return;
    etcd_fixture_kill(etcd, SIGKILL); /* this very watch's stream ends */
    usleep(200 * 1000);
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_get(nw->s, "/t/nested/a", store_sync_done, &y));
    nw->nested_get = store_wait(nw->s, &y, NULL);
    run_for(0.3);
}

static bool nested_called(void *arg)
{
    return ((nested_watch *)arg)->calls > 0;
}

static void watch_callback_may_run_the_loop(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    static nested_watch nw;
    memset(&nw, 0, sizeof(nw));
    nw.s = s;
    int64_t start = put_rev(s, "/t/nested-start", "x") + 1;
    _cleanup_free_ char *end = store_prefix_end("/t/nested/");
    _cleanup_(store_watch_freep) store_watch *w = NULL;
    CHECK_OK(store_watch_new(s, "/t/nested/", end, start, 0, nested_cb, &nw, &w));
    {
        /* Written on a loop of its own: on the watch's loop, the event could reach the callback
         * (which kills etcd) before the put's reply, and the put would fail. */
        _cleanup_(ev_loop_destroyp) struct ev_loop *own = ev_loop_new(EVFLAG_AUTO);
        store_options o = {.n_endpoints = 1,
                           .endpoints = {etcd_fixture_endpoint(etcd)},
                           .request_timeout = 10 * USEC_PER_SEC};
        _cleanup_(store_freep) store *writer = NULL;
        CHECK_OK(store_new(own, &o, &writer));
        put_rev(writer, "/t/nested/a", "1");
    }
    CHECK(run_until(nested_called, &nw, 10));
    CHECK(nw.nested_get < 0); /* etcd was down */
    etcd_fixture_pause(etcd);
    etcd_fixture_resume(etcd);
    int e = -1;
    for (int tries = 0; tries < 50 && e < 0; tries++) {
        _cleanup_(store_result_freep) store_result *r = NULL;
        e = put(s, "/t/nested/b", "2", 0, &r);
        if (e < 0)
            run_for(0.1);
    }
    CHECK_OK(e);
    count_goal g = {&nw.log, 2};
    CHECK(run_until(log_has, &g, 15));
    run_for(0.2);
    CHECK_INT(nw.log.error, ==, 0);
    CHECK_INT(nw.log.n, ==, 2); /* no loss, no duplicate */
    CHECK_STR(nw.log.keys[0], "/t/nested/a");
    CHECK_STR(nw.log.keys[1], "/t/nested/b");
}

/* A watch from an old revision gets the backlog in one response (etcd batches up to 1000
 * revisions for a watcher catching up) that is larger than max_event_line though every event is
 * small: etcd sends it in fragments, and the watch delivers every event. */
static void watch_catches_up_over_a_large_backlog(void)
{
    etcd_up();
    if (!loop)
        loop = ev_loop_new(EVFLAG_AUTO);
    store_options o = {.n_endpoints = 1,
                       .endpoints = {etcd_fixture_endpoint(etcd)},
                       .request_timeout = 10 * USEC_PER_SEC,
                       .max_event_line = 4 << 20};
    _cleanup_(store_freep) store *s = NULL;
    CHECK_OK(store_new(loop, &o, &s));
    size_t len = 512 * 1024;
    _cleanup_free_ char *v = xmalloc(len);
    memset(v, 'b', len);
    int64_t start = put_rev(s, "/t/backlog-start", "x") + 1;
    for (int i = 0; i < 20; i++) {
        char k[32];
        snprintf(k, sizeof(k), "/t/backlog/%02d", i);
        store_sync y = STORE_SYNC_INIT;
        CHECK_OK(store_put(s, k, v, len, 0, 0, store_sync_done, &y));
        CHECK_OK(store_wait(s, &y, NULL));
    }
    static watch_log l;
    memset(&l, 0, sizeof(l));
    _cleanup_free_ char *end = store_prefix_end("/t/backlog/");
    _cleanup_(store_watch_freep) store_watch *w = NULL;
    CHECK_OK(store_watch_new(s, "/t/backlog/", end, start, 0, log_events, &l, &w));
    count_goal g = {&l, 20};
    CHECK(run_until(log_has, &g, 20));
    run_for(0.2);
    CHECK_INT(l.error, ==, 0);
    CHECK_INT(l.n, ==, 20);
    for (int i = 0; i < 20; i++) {
        char want[32];
        snprintf(want, sizeof(want), "/t/backlog/%02d", i);
        CHECK_STR(l.keys[i], want);
    }
}

/* Writes a key the store API refuses (it has an embedded NUL) through the gateway directly. */
static void put_raw_key_b64(const char *key_b64)
{
    char url[256], body[256];
    snprintf(url, sizeof(url), "%s/v3/kv/put", etcd_fixture_endpoint(etcd));
    snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"eA==\"}", key_b64);
    CURL *c = curl_easy_init();
    CHECK(c != NULL);
    FILE *sink = fopen("/dev/null", "we");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
    CHECK_INT(curl_easy_perform(c), ==, CURLE_OK);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    CHECK_INT(status, ==, 200);
    curl_easy_cleanup(c);
    fclose(sink);
}

/* An event the watch cannot hand out (a key with an embedded NUL) comes again on every
 * reconnect: the watch must fail with -EBADMSG instead of reconnecting for ever in silence. */
static void malformed_event_ends_the_watch(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    int64_t start = put_rev(s, "/t/nulw-start", "x") + 1;
    static watch_log l;
    memset(&l, 0, sizeof(l));
    _cleanup_free_ char *end = store_prefix_end("/t/nulw/");
    _cleanup_(store_watch_freep) store_watch *w = NULL;
    CHECK_OK(store_watch_new(s, "/t/nulw/", end, start, 0, log_events, &l, &w));
    put_raw_key_b64("L3QvbnVsdy9hAGI="); /* "/t/nulw/a\0b" */
    put_rev(s, "/t/nulw/z", "y");
    CHECK(run_until(log_has_error, &l, 10));
    CHECK_INT(l.error, ==, -EBADMSG);
    CHECK_INT(l.n, ==, 0);
    CHECK(store_watch_message(w) != NULL);
    run_for(0.3); /* dead: nothing more arrives */
    CHECK_INT(l.n, ==, 0);
}

/* A watch etcd refuses when it is created (an empty range) fails with -EINVAL and etcd's reason,
 * instead of being opened again for ever. */
static void refused_watch_fails_with_the_reason(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    static watch_log l;
    memset(&l, 0, sizeof(l));
    _cleanup_(store_watch_freep) store_watch *w = NULL;
    CHECK_OK(store_watch_new(s, "/t/b", "/t/a", 0, 0, log_events, &l, &w));
    CHECK(run_until(log_has_error, &l, 10));
    CHECK_INT(l.error, ==, -EINVAL);
    CHECK(store_watch_message(w) != NULL);
    fprintf(stderr, "  refused: %s\n", store_watch_message(w));
    CHECK_INT(store_watch_reconnects(w), ==, 0);
}

static void compaction_expires_old_revisions(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    int64_t old = put_rev(s, "/t/compact/k", "1");
    put_rev(s, "/t/compact/k", "2");
    int64_t now = put_rev(s, "/t/compact/k", "3");

    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_compact(s, now, true, store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, NULL));
    y = STORE_SYNC_INIT;
    CHECK_OK(store_compact(s, now, false, store_sync_done, &y));
    CHECK_INT(store_wait(s, &y, NULL), ==, -ERANGE);

    store_range_opts o = {.key = "/t/compact/k", .revision = old};
    y = STORE_SYNC_INIT;
    CHECK_OK(store_range(s, &o, store_sync_done, &y));
    CHECK_INT(store_wait(s, &y, NULL), ==, -ERANGE);

    static watch_log l;
    memset(&l, 0, sizeof(l));
    l.free_on_error = true;
    store_watch *w = NULL;
    CHECK_OK(store_watch_new(s, "/t/compact/", NULL, old, 0, log_events, &l, &w));
    CHECK(run_until(log_has_error, &l, 10));
    CHECK_INT(l.error, ==, -ERANGE);
    CHECK_INT(l.error_rev, ==, now);
    CHECK_INT(l.n, ==, 0);
    run_for(0.2); /* the watch freed itself from its callback; nothing more may arrive */
}

static void large_values_near_the_limit(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    size_t ok_len = 1400 * 1024, big_len = 2 * 1024 * 1024;
    _cleanup_free_ char *v = xmalloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        v[i] = (char)('a' + i % 26);
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_put(s, "/t/large/ok", v, ok_len, 0, 0, store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, NULL));
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_OK(get(s, "/t/large/ok", &r));
    CHECK_INT(r->kvs[0].value_len, ==, ok_len);
    CHECK(memcmp(r->kvs[0].value, v, ok_len) == 0);
    store_result_free(TAKE_PTR(r));

    y = STORE_SYNC_INIT;
    CHECK_OK(store_put(s, "/t/large/big", v, big_len, 0, 0, store_sync_done, &y));
    CHECK_INT(store_wait(s, &y, &r), ==, -EMSGSIZE);
    CHECK(r->message != NULL); /* etcd: "request is too large" or gRPC's "larger than max" */
}

static void response_cap_is_enforced(void)
{
    etcd_up();
    const char *ep[] = {etcd_fixture_endpoint(etcd)};
    _cleanup_(store_freep) store *s = connect_store(ep, 1, 4096);
    char v[2048];
    memset(v, 'x', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    put_rev(s, "/t/cap/1", v);
    put_rev(s, "/t/cap/2", v);
    _cleanup_free_ char *end = store_prefix_end("/t/cap/");
    store_range_opts o = {.key = "/t/cap/", .range_end = end};
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_range(s, &o, store_sync_done, &y));
    CHECK_INT(store_wait(s, &y, NULL), ==, -EMSGSIZE);
    /* the store still works after a refused response */
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_OK(get(s, "/t/cap/1", &r));
}

static void failover_to_a_live_member(void)
{
    etcd_up();
    char dead[64];
    snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", test_free_port());
    const char *ep[] = {dead, etcd_fixture_endpoint(etcd)};
    _cleanup_(store_freep) store *s = connect_store(ep, 2, 0);
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_OK(put(s, "/t/failover", "x", 0, &r));
    store_result_free(TAKE_PTR(r));
    CHECK_OK(get(s, "/t/failover", &r));

    const char *none[] = {dead};
    _cleanup_(store_freep) store *s2 = connect_store(none, 1, 0);
    usec_t t0 = now_monotonic();
    store_result_free(TAKE_PTR(r));
    CHECK_INT(get(s2, "/t/failover", &r), ==, -EHOSTDOWN);
    CHECK(store_error_is_unavailable(r->error));
    CHECK(now_monotonic() - t0 < 5 * USEC_PER_SEC); /* refused at once, not after the timeout */
}

typedef struct inflight {
    int done, failed;
} inflight;

static void count_done(store_result *r, void *userdata)
{
    inflight *f = userdata;
    f->done++;
    if (r->error)
        f->failed++;
    store_result_free(r);
}

static bool all_done(void *arg)
{
    return ((inflight *)arg)->done >= 300;
}

static void many_requests_in_flight(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    inflight f = {0};
    for (int i = 0; i < 300; i++) {
        char k[32];
        snprintf(k, sizeof(k), "/t/flight/%03d", i);
        CHECK_OK(store_put(s, k, "v", 1, 0, 0, count_done, &f));
    }
    CHECK(run_until(all_done, &f, 30));
    CHECK_INT(f.failed, ==, 0);
    _cleanup_free_ char *end = store_prefix_end("/t/flight/");
    store_range_opts o = {.key = "/t/flight/", .range_end = end, .count_only = true};
    store_sync y = STORE_SYNC_INIT;
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_OK(store_range(s, &o, store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, &r));
    CHECK_INT(r->count, ==, 300);
}

/* A member that accepts connections and never answers: requests reach it, outcomes stay unknown. */
static int blackhole_listen(int *ret_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        abort();
    *ret_port = ntohs(a.sin_port);
    return fd;
}

static void unknown_outcome_writes_are_not_retried(void)
{
    etcd_up();
    if (!loop)
        loop = ev_loop_new(EVFLAG_AUTO);
    int port;
    int hole = blackhole_listen(&port);
    char silent[64];
    snprintf(silent, sizeof(silent), "http://127.0.0.1:%d", port);
    store_options o = {.n_endpoints = 2,
                       .endpoints = {silent, etcd_fixture_endpoint(etcd)},
                       .request_timeout = 1 * USEC_PER_SEC};
    _cleanup_(store_freep) store *s = NULL;
    CHECK_OK(store_new(loop, &o, &s));
    /* The write may have been applied by the silent member: it reports -ETIMEDOUT and does not
     * go to the live one, or it would be applied twice. */
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_INT(put(s, "/t/unknown/w", "x", 0, &r), ==, -ETIMEDOUT);
    store_result_free(TAKE_PTR(r));
    _cleanup_(store_freep) store *direct = connect_default();
    CHECK_INT(get(direct, "/t/unknown/w", &r), ==, -ENOENT);
    store_result_free(TAKE_PTR(r));
    put_rev(direct, "/t/unknown/r", "x");

    /* A read is harmless to repeat, but request_timeout bounds the whole request and the silent
     * member took all of it: -ETIMEDOUT, within the timeout. The store then starts requests on
     * the next member, which answers the next read. */
    _cleanup_(store_freep) store *s2 = NULL;
    CHECK_OK(store_new(loop, &o, &s2));
    usec_t t0 = now_monotonic();
    CHECK_INT(get(s2, "/t/unknown/r", &r), ==, -ETIMEDOUT);
    CHECK(now_monotonic() - t0 < 1500 * USEC_PER_MSEC);
    store_result_free(TAKE_PTR(r));
    CHECK_OK(get(s2, "/t/unknown/r", &r));
    CHECK_STR(r->kvs[0].value, "x");
    close(hole);
}

/* request_timeout bounds the whole request, failover included: two members that never answer
 * cost one timeout, not two. */
static void request_timeout_bounds_the_whole_request(void)
{
    if (!loop)
        loop = ev_loop_new(EVFLAG_AUTO);
    int port1, port2;
    int hole1 = blackhole_listen(&port1), hole2 = blackhole_listen(&port2);
    char silent1[64], silent2[64];
    snprintf(silent1, sizeof(silent1), "http://127.0.0.1:%d", port1);
    snprintf(silent2, sizeof(silent2), "http://127.0.0.1:%d", port2);
    store_options o = {
        .n_endpoints = 2, .endpoints = {silent1, silent2}, .request_timeout = 1 * USEC_PER_SEC};
    _cleanup_(store_freep) store *s = NULL;
    CHECK_OK(store_new(loop, &o, &s));
    usec_t t0 = now_monotonic();
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_INT(get(s, "/t/deadline", &r), ==, -ETIMEDOUT);
    usec_t took = now_monotonic() - t0;
    fprintf(stderr, "  two silent members: -ETIMEDOUT after %.2f s\n", (double)took / USEC_PER_SEC);
    CHECK(took < 1500 * USEC_PER_MSEC);
    close(hole1);
    close(hole2);
}

static bool flight_done(void *arg)
{
    return ((inflight *)arg)->done >= 100;
}

typedef struct kill_log {
    inflight f;
    int bad; /* results that are neither 0 nor an unavailable error */
    int failed_by[256];
} kill_log;

static void record_kill(store_result *r, void *userdata)
{
    kill_log *k = userdata;
    if (r->error && !store_error_is_unavailable(r->error)) {
        k->bad++;
        fprintf(stderr, "  unexpected: %s (%s)\n", store_strerror(r->error),
                r->message ? r->message : "");
    }
    if (r->error)
        k->failed_by[-r->error < 256 ? -r->error : 0]++;
    count_done(r, &k->f);
}

static void etcd_killed_mid_request_fails_fast(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    put_rev(s, "/t/kill/warm", "x"); /* connected */
    size_t len = 1024 * 1024;
    _cleanup_free_ char *v = xmalloc(len);
    memset(v, 'k', len);
    kill_log k = {0};
    usec_t t0 = 0;
    for (int i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof(key), "/t/kill/%03d", i);
        CHECK_OK(store_put(s, key, v, len, 0, 0, record_kill, &k));
        if (i == 30) {
            /* gRPC's thread sends at once (the gateway only once the loop runs): some are
             * answered, some are on the wire, and the rest go to a dead member. */
            run_for(0.005);
            t0 = now_monotonic();
            etcd_fixture_kill(etcd, SIGKILL); /* no graceful end of in-flight requests */
            etcd_fixture_pause(etcd);
        }
    }
    CHECK(run_until(flight_done, &k.f, 15));
    CHECK(now_monotonic() - t0 < 12 * USEC_PER_SEC); /* within the request timeout, no hang */
    CHECK_INT(k.bad, ==, 0);
    CHECK_INT(k.f.failed, >, 0); /* the kill did land mid-request */
    fprintf(stderr, "  of 100: %d ok, %d connection reset, %d timed out, %d unavailable\n",
            100 - k.f.failed, k.failed_by[ECONNRESET], k.failed_by[ETIMEDOUT],
            k.failed_by[EHOSTDOWN]);
    etcd_fixture_resume(etcd);
    /* and the same store works again once the member is back */
    int e = -1;
    for (int tries = 0; tries < 50 && e < 0; tries++) {
        _cleanup_(store_result_freep) store_result *r = NULL;
        e = get(s, "/t/kill/warm", &r);
        if (e < 0)
            run_for(0.1);
    }
    CHECK_OK(e);
}

static void status_reports_revision(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    int64_t rev = put_rev(s, "/t/status", "x");
    store_sync y = STORE_SYNC_INIT;
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_OK(store_status(s, store_sync_done, &y));
    CHECK_OK(store_wait(s, &y, &r));
    CHECK_INT(r->revision, >=, rev);
}

static void tls_with_client_certificates(void)
{
    etcd_fixture *tls = etcd_fixture_start_tls();
    if (!loop)
        loop = ev_loop_new(EVFLAG_AUTO);
    store_options o = {.n_endpoints = 1,
                       .endpoints = {etcd_fixture_endpoint(tls)},
                       .ca_file = etcd_fixture_ca(tls),
                       .cert_file = etcd_fixture_client_cert(tls),
                       .key_file = etcd_fixture_client_key(tls),
                       .connect_timeout = 5 * USEC_PER_SEC,
                       .request_timeout = 10 * USEC_PER_SEC};
    _cleanup_(store_freep) store *s = NULL;
    CHECK_OK(store_new(loop, &o, &s));
    _cleanup_(store_result_freep) store_result *r = NULL;
    CHECK_OK(put(s, "/t/tls", "secret", 0, &r));
    store_result_free(TAKE_PTR(r));
    CHECK_OK(get(s, "/t/tls", &r));
    CHECK_STR(r->kvs[0].value, "secret");
    store_result_free(TAKE_PTR(r));

    /* the watch stream goes over TLS too */
    static watch_log l;
    memset(&l, 0, sizeof(l));
    _cleanup_(store_watch_freep) store_watch *w = NULL;
    CHECK_OK(store_watch_new(s, "/t/tls", NULL, 0, 0, log_events, &l, &w));
    run_for(0.3);
    CHECK_OK(put(s, "/t/tls", "again", 0, &r));
    count_goal g = {&l, 1};
    CHECK(run_until(log_has, &g, 10));
    CHECK_STR(l.keys[0], "/t/tls");

    /* without a client certificate the member refuses the handshake: unavailable */
    store_options anon = o;
    anon.cert_file = anon.key_file = NULL;
    _cleanup_(store_freep) store *s2 = NULL;
    CHECK_OK(store_new(loop, &anon, &s2));
    store_result_free(TAKE_PTR(r));
    CHECK(get(s2, "/t/tls", &r) < 0);
    CHECK(store_error_is_unavailable(r->error) || r->error == -EPROTO);
    etcd_fixture_stop(tls);
}

static void bad_arguments_are_refused(void)
{
    _cleanup_(store_freep) store *s = connect_default();
    store_sync y = STORE_SYNC_INIT;
    CHECK_INT(store_update(s, "/t/x", "v", 1, 0, 0, store_sync_done, &y), ==, -EINVAL);
    CHECK_INT(store_lease_grant(s, 0, store_sync_done, &y), ==, -EINVAL);
    CHECK_INT(store_compact(s, -1, false, store_sync_done, &y), ==, -EINVAL);
    store_options o = {.n_endpoints = 1, .endpoints = {"ftp://127.0.0.1:1"}};
    store *bad = NULL;
    CHECK_INT(store_new(loop, &o, &bad), ==, -EINVAL);
    store_options none = {0};
    CHECK_INT(store_new(loop, &none, &bad), ==, -EINVAL);
}

CHECK_MAIN(CASE(put_get_delete), CASE(binary_values_round_trip), CASE(create_only),
           CASE(cas_update_and_delete), CASE(concurrent_cas_loses_no_update),
           CASE(range_pages_through_prefix), CASE(txn_is_all_or_nothing), CASE(txn_too_many_ops),
           CASE(delete_prefix_spares_siblings), CASE(leases_expire_keys),
           CASE(watch_sees_puts_and_deletes_in_order), CASE(watch_from_now_skips_history),
           CASE(watch_survives_etcd_restart), CASE(watch_callback_may_run_the_loop),
           CASE(watch_catches_up_over_a_large_backlog), CASE(malformed_event_ends_the_watch),
           CASE(refused_watch_fails_with_the_reason), CASE(compaction_expires_old_revisions),
           CASE(large_values_near_the_limit), CASE(response_cap_is_enforced),
           CASE(failover_to_a_live_member), CASE(unknown_outcome_writes_are_not_retried),
           CASE(request_timeout_bounds_the_whole_request), CASE(many_requests_in_flight),
           CASE(etcd_killed_mid_request_fails_fast), CASE(status_reports_revision),
           CASE(tls_with_client_certificates), CASE(bad_arguments_are_refused))
