/* Unit tests for pkg/reconcile's work queue. The rules (dedup, dirty-while-processing, add_after
 * ordering, backoff doubling and cap, forget, token-bucket spacing, key caps, shutdown) are a
 * table of scenarios run on a fake clock, so delays are checked exactly and never by waiting.
 * Real threads hammer one queue to check that a key is never processed twice at once and that
 * the last add of every key is always followed by a run; others check that blocked getters wake
 * (add, delay, shutdown) and that the libev-driven mode delivers. Nothing asserts wall-clock
 * durations. The informer has its own program (test-reconcile-informer.c). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/macro.h"
#include "check.h"
#include "reconcile/workqueue.h"

#define MS (USEC_PER_MSEC)

static _Atomic usec_t fake_now;

static usec_t fake_clock(void)
{
    return atomic_load(&fake_now);
}

static void sleep_usec(usec_t u)
{
    struct timespec ts = {.tv_sec = (time_t)(u / USEC_PER_SEC),
                          .tv_nsec = (long)(u % USEC_PER_SEC) * 1000};
    nanosleep(&ts, NULL);
}

/* ---- the rules, as scenarios on a fake clock ---- */

typedef enum op {
    OP_END,
    OP_ADD,      /* workqueue_add(key) == ret */
    OP_AFTER,    /* workqueue_add_after(key, n) == ret */
    OP_RL,       /* workqueue_add_rate_limited(key) == 0, and its delay == n */
    OP_GET,      /* workqueue_get(0) == ret, and the key when ret == 0 */
    OP_DONE,     /* workqueue_done(key) == ret */
    OP_FORGET,   /* workqueue_forget(key) */
    OP_ADVANCE,  /* the fake clock moves n µs */
    OP_REQUEUES, /* workqueue_num_requeues(key) == n */
    OP_DEPTH,    /* stats.depth == n */
    OP_DELAYED,  /* stats.delayed == n */
    OP_KEYS,     /* stats.keys == n */
    OP_ADDS,     /* stats.adds == n */
    OP_RETRIES,  /* stats.retries == n */
    OP_SHUTDOWN, /* workqueue_shutdown */
} op;

typedef struct step {
    op op;
    const char *key;
    usec_t n;
    int ret;
} step;

/* clang-format off */
#define ADD(k)           {OP_ADD, k, 0, 0}
#define ADD_R(k, r)      {OP_ADD, k, 0, r}
#define AFTER(k, d)      {OP_AFTER, k, d, 0}
#define AFTER_R(k, d, r) {OP_AFTER, k, d, r}
#define RL(k, d)         {OP_RL, k, d, 0}
#define GET(k)           {OP_GET, k, 0, 0}
#define NONE             {OP_GET, NULL, 0, -ETIMEDOUT}
#define GET_R(r)         {OP_GET, NULL, 0, r}
#define DONE(k)          {OP_DONE, k, 0, 0}
#define DONE_R(k, r)     {OP_DONE, k, 0, r}
#define FORGET(k)        {OP_FORGET, k, 0, 0}
#define ADVANCE(d)       {OP_ADVANCE, NULL, d, 0}
#define REQUEUES(k, n)   {OP_REQUEUES, k, n, 0}
#define DEPTH(n)         {OP_DEPTH, NULL, n, 0}
#define DELAYED(n)       {OP_DELAYED, NULL, n, 0}
#define KEYS(n)          {OP_KEYS, NULL, n, 0}
#define ADDS(n)          {OP_ADDS, NULL, n, 0}
#define RETRIES(n)       {OP_RETRIES, NULL, n, 0}
#define SHUTDOWN         {OP_SHUTDOWN, NULL, 0, 0}
/* clang-format on */

/* Stands for a key one byte over WORKQUEUE_KEY_MAX, made at run time. */
static const char LONG_KEY[] = "<long key>";

typedef struct scenario {
    const char *name;
    workqueue_options opts; /* the clock is always the fake one */
    step steps[48];
} scenario;

/* Per-key backoff only (no bucket) unless a scenario says otherwise. */
#define NO_BUCKET .qps = -1

/* clang-format off */
static const scenario scenarios[] = {
    {"adding a waiting key is a no-op", {NO_BUCKET},
     {ADD("a"), ADD("a"), ADD("b"), ADD("a"), DEPTH(2), ADDS(2),
      GET("a"), GET("b"), NONE, DONE("a"), DONE("b"), KEYS(0)}},

    {"a key added while processing runs again after done, once", {NO_BUCKET},
     {ADD("a"), GET("a"), ADD("a"), ADD("a"), ADD("a"), DEPTH(0), NONE,
      ADD("b"), GET("b"),
      DONE("a"), DEPTH(1), GET("a"), NONE, DONE("a"), NONE, DONE("b"), KEYS(0)}},

    {"done needs a key being processed", {NO_BUCKET},
     {DONE_R("a", -ENOENT), ADD("a"), DONE_R("a", -ENOENT), GET("a"), DONE("a"),
      DONE_R("a", -ENOENT)}},

    {"add_after hands keys out by deadline, then by insertion", {NO_BUCKET},
     {AFTER("c", 30 * MS), AFTER("a", 10 * MS), AFTER("b", 20 * MS), AFTER("d", 20 * MS),
      DELAYED(4), DEPTH(0), NONE,
      ADVANCE(10 * MS - 1), NONE,
      ADVANCE(1), GET("a"), NONE,
      ADVANCE(10 * MS), GET("b"), GET("d"), NONE,
      ADVANCE(10 * MS), GET("c"), NONE, DELAYED(0)}},

    {"add_after keeps the earlier deadline", {NO_BUCKET},
     {AFTER("e", 50 * MS), AFTER("e", 5 * MS), DELAYED(1), ADVANCE(5 * MS), GET("e"), DONE("e"),
      AFTER("f", 5 * MS), AFTER("f", 50 * MS), ADVANCE(5 * MS), GET("f"), DONE("f"),
      DELAYED(0), KEYS(0)}},

    {"add_after of a waiting key does not duplicate it", {NO_BUCKET},
     {ADD("g"), AFTER("g", 1 * MS), ADVANCE(1 * MS), DEPTH(1), GET("g"), NONE,
      AFTER("g", 0), DEPTH(0), DONE("g"), GET("g"), DONE("g")}},

    {"backoff doubles from the base to the cap",
     {.backoff_base = 5 * MS, .backoff_max = 40 * MS, NO_BUCKET},
     {RL("a", 5 * MS), REQUEUES("a", 1), NONE,
      ADVANCE(5 * MS - 1), NONE, ADVANCE(1), GET("a"),
      RL("a", 10 * MS), DONE("a"), NONE,
      ADVANCE(10 * MS - 1), NONE, ADVANCE(1), GET("a"), DONE("a"),
      RL("a", 20 * MS), RL("a", 40 * MS), RL("a", 40 * MS), RL("a", 40 * MS),
      REQUEUES("a", 6), RETRIES(6), DELAYED(1) /* the earliest deadline stands */,
      ADVANCE(20 * MS), GET("a"), NONE, DONE("a"),
      KEYS(1) /* its failures are remembered until forget */}},

    {"forget resets one key's backoff",
     {.backoff_base = 5 * MS, .backoff_max = 40 * MS, NO_BUCKET},
     {RL("a", 5 * MS), RL("a", 10 * MS), RL("a", 20 * MS), RL("b", 5 * MS),
      FORGET("a"), REQUEUES("a", 0), REQUEUES("b", 1), DELAYED(2) /* still queued */,
      RL("a", 5 * MS), ADVANCE(5 * MS), GET("a"), GET("b"), DONE("a"), DONE("b"),
      KEYS(2), FORGET("a"), FORGET("b"), KEYS(0)}},

    {"the token bucket spaces retries across keys",
     {.backoff_base = 1 * MS, .backoff_max = 1 * USEC_PER_SEC, .qps = 10, .burst = 2},
     {RL("a", 1 * MS), RL("b", 1 * MS) /* the burst */,
      RL("c", 100 * MS), RL("d", 200 * MS), RL("e", 300 * MS) /* then one per 1/qps */,
      ADD("x"), ADD("y"), ADD("z"), DEPTH(3) /* plain adds are not limited */,
      GET("x"), GET("y"), GET("z"),
      ADVANCE(1 * MS), GET("a"), GET("b"), NONE,
      ADVANCE(99 * MS - 1), NONE, ADVANCE(1), GET("c"), NONE,
      ADVANCE(100 * MS), GET("d"), NONE,
      ADVANCE(100 * MS), GET("e"), NONE,
      ADVANCE(10 * USEC_PER_SEC) /* refills up to the burst, no more */,
      RL("f", 1 * MS), RL("g", 1 * MS), RL("h", 100 * MS)}},

    {"max_keys caps distinct keys", {.max_keys = 2, NO_BUCKET},
     {ADD("a"), ADD("b"), ADD_R("c", -ENOSPC), AFTER_R("c", 5 * MS, -ENOSPC),
      ADD("a") /* known keys still dedup */, KEYS(2),
      GET("a"), DONE("a"), KEYS(1), ADD("c"), KEYS(2)}},

    {"keys must be non-empty and short", {NO_BUCKET},
     {ADD_R("", -EINVAL), ADD_R(LONG_KEY, -EINVAL), KEYS(0)}},

    {"shutdown stops getters and adders", {NO_BUCKET},
     {ADD("a"), ADD("b"), GET("a"), SHUTDOWN, GET_R(-ESHUTDOWN), ADD_R("c", -ESHUTDOWN),
      DONE("a") /* a run in progress may still end */}},
};
/* clang-format on */

static bool run_scenario(const scenario *s)
{
    atomic_store(&fake_now, 1000 * USEC_PER_SEC);
    workqueue_options o = s->opts;
    o.clock = fake_clock;
    _cleanup_(workqueue_freep) workqueue *q = NULL;
    if (workqueue_new(&o, &q) < 0) {
        fprintf(stderr, "  %s: workqueue_new failed\n", s->name);
        return false;
    }
    char long_key[WORKQUEUE_KEY_MAX + 2];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';

    for (size_t i = 0; s->steps[i].op != OP_END; i++) {
        const step *st = &s->steps[i];
        const char *key = st->key == LONG_KEY ? long_key : st->key;
        long long got = 0, want = st->ret;
        _cleanup_free_ char *got_key = NULL;
        workqueue_stats stats;
        workqueue_stats_read(q, &stats);
        switch (st->op) {
        case OP_ADD:
            got = workqueue_add(q, key);
            break;
        case OP_AFTER:
            got = workqueue_add_after(q, key, st->n);
            break;
        case OP_RL: {
            usec_t d = 0;
            got = workqueue_add_rate_limited(q, key, &d);
            if (got == 0) {
                got = (long long)d;
                want = (long long)st->n;
            }
            break;
        }
        case OP_GET:
            got = workqueue_get(q, 0, &got_key);
            if (got == 0 && (!key || !streq(got_key, key))) {
                fprintf(stderr, "  %s: step %zu: got key \"%s\", wanted \"%s\"\n", s->name, i,
                        got_key, key ? key : "(none)");
                return false;
            }
            break;
        case OP_DONE:
            got = workqueue_done(q, key);
            break;
        case OP_FORGET:
            workqueue_forget(q, key);
            break;
        case OP_ADVANCE:
            atomic_fetch_add(&fake_now, st->n);
            break;
        case OP_REQUEUES:
            got = workqueue_num_requeues(q, key), want = (long long)st->n;
            break;
        case OP_DEPTH:
            got = (long long)stats.depth, want = (long long)st->n;
            break;
        case OP_DELAYED:
            got = (long long)stats.delayed, want = (long long)st->n;
            break;
        case OP_KEYS:
            got = (long long)stats.keys, want = (long long)st->n;
            break;
        case OP_ADDS:
            got = (long long)stats.adds, want = (long long)st->n;
            break;
        case OP_RETRIES:
            got = (long long)stats.retries, want = (long long)st->n;
            break;
        case OP_SHUTDOWN:
            workqueue_shutdown(q);
            break;
        case OP_END:
            break;
        }
        if (got != want) {
            fprintf(stderr, "  %s: step %zu (op %d, key %s): got %lld, wanted %lld\n", s->name, i,
                    st->op, key ? key : "-", got, want);
            return false;
        }
    }
    return true;
}

static void queue_rules(void)
{
    size_t failed = 0;
    for (size_t i = 0; i < ELEMENTSOF(scenarios); i++)
        if (!run_scenario(&scenarios[i]))
            failed++;
    CHECK_INT(failed, ==, 0);
}

static void bad_options(void)
{
    workqueue *q = NULL;
    workqueue_options o = {.backoff_base = 2 * USEC_PER_SEC, .backoff_max = USEC_PER_SEC};
    CHECK_INT(workqueue_new(&o, &q), ==, -EINVAL);
    CHECK(q == NULL);
    CHECK_OK(workqueue_new(NULL, &q));
    workqueue_stats s;
    workqueue_stats_read(q, &s);
    CHECK_INT(s.keys, ==, 0);
    q = workqueue_free(q);
    CHECK(workqueue_free(NULL) == NULL);
}

/* ---- real threads ---- */

#define HAMMER_KEYS    8
#define HAMMER_WORKERS 4
#define HAMMER_ADDERS  2
#define HAMMER_ADDS    20000

static struct {
    workqueue *q;
    atomic_int in_flight[HAMMER_KEYS];
    atomic_uint added[HAMMER_KEYS]; /* adds started, bumped before each workqueue_add */
    atomic_uint seen[HAMMER_KEYS];  /* `added` as read when the key's latest run began */
    atomic_int overlaps;            /* runs that found another run of the same key */
    atomic_long runs;
} H;

static int hammer_index(const char *key)
{
    return key[1] - '0';
}

static void *hammer_worker(void *arg)
{
    char *key;
    while (workqueue_get(H.q, USEC_INFINITY, &key) == 0) {
        int i = hammer_index(key);
        if (atomic_fetch_add(&H.in_flight[i], 1) != 0)
            atomic_fetch_add(&H.overlaps, 1);
        atomic_store(&H.seen[i], atomic_load(&H.added[i]));
        long n = atomic_fetch_add(&H.runs, 1);
        if (n % 7 == 0)
            sched_yield(); /* widen the window in which a second run would overlap */
        if (n % 13 == 0) {
            /* a reconcile that asks for itself again */
            atomic_fetch_add(&H.added[i], 1);
            workqueue_add(H.q, key);
        }
        atomic_fetch_sub(&H.in_flight[i], 1);
        workqueue_done(H.q, key);
        free(key);
    }
    return NULL;
}

static void *hammer_adder(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char key[3] = {'k', '0', '\0'};
    for (int n = 0; n < HAMMER_ADDS; n++) {
        int i = (int)(rand_r(&seed) % HAMMER_KEYS);
        key[1] = (char)('0' + i);
        atomic_fetch_add(&H.added[i], 1);
        if (workqueue_add(H.q, key) < 0)
            abort();
    }
    return NULL;
}

static bool wait_idle(workqueue *q)
{
    usec_t give_up = now_monotonic() + 60 * USEC_PER_SEC; /* a hang guard, not a timing check */
    for (;;) {
        workqueue_stats s;
        workqueue_stats_read(q, &s);
        if (s.depth == 0 && s.processing == 0 && s.delayed == 0)
            return true;
        if (now_monotonic() > give_up)
            return false;
        sleep_usec(1 * MS);
    }
}

static void never_concurrent_and_last_add_runs(void)
{
    CHECK_OK(workqueue_new(NULL, &H.q));
    pthread_t workers[HAMMER_WORKERS], adders[HAMMER_ADDERS];
    for (int i = 0; i < HAMMER_WORKERS; i++)
        CHECK_INT(pthread_create(&workers[i], NULL, hammer_worker, NULL), ==, 0);
    for (int i = 0; i < HAMMER_ADDERS; i++)
        CHECK_INT(pthread_create(&adders[i], NULL, hammer_adder, (void *)(uintptr_t)(i + 1)), ==,
                  0);
    for (int i = 0; i < HAMMER_ADDERS; i++)
        pthread_join(adders[i], NULL);
    CHECK(wait_idle(H.q));
    workqueue_shutdown(H.q);
    for (int i = 0; i < HAMMER_WORKERS; i++)
        pthread_join(workers[i], NULL);

    CHECK_INT(atomic_load(&H.overlaps), ==, 0);
    for (int i = 0; i < HAMMER_KEYS; i++)
        CHECK_INT(atomic_load(&H.seen[i]), ==, atomic_load(&H.added[i]));
    /* dedup: far fewer runs than adds, but at least one per key */
    CHECK_INT(atomic_load(&H.runs), >=, HAMMER_KEYS);
    workqueue_stats s;
    workqueue_stats_read(H.q, &s);
    CHECK_INT(s.keys, ==, 0);
    H.q = workqueue_free(H.q);
}

typedef struct getter {
    pthread_t thread;
    workqueue *q;
    int result;
    char *key;
} getter;

static void *getter_main(void *arg)
{
    getter *g = arg;
    g->result = workqueue_get(g->q, USEC_INFINITY, &g->key);
    return NULL;
}

static void getter_start(getter *g, workqueue *q)
{
    *g = (getter){.q = q};
    CHECK_INT(pthread_create(&g->thread, NULL, getter_main, g), ==, 0);
}

static void shutdown_wakes_getters(void)
{
    _cleanup_(workqueue_freep) workqueue *q = NULL;
    CHECK_OK(workqueue_new(NULL, &q));
    getter g[3];
    for (size_t i = 0; i < ELEMENTSOF(g); i++)
        getter_start(&g[i], q);
    sleep_usec(20 * MS); /* most likely all blocked by now; the outcome is the same if not */
    workqueue_shutdown(q);
    CHECK(workqueue_is_shutdown(q));
    for (size_t i = 0; i < ELEMENTSOF(g); i++) {
        pthread_join(g[i].thread, NULL);
        CHECK_INT(g[i].result, ==, -ESHUTDOWN);
    }
}

static void blocked_getter_wakes_for_add_and_delay(void)
{
    _cleanup_(workqueue_freep) workqueue *q = NULL;
    CHECK_OK(workqueue_new(NULL, &q));
    getter g;
    getter_start(&g, q);
    CHECK_OK(workqueue_add(q, "ns/a"));
    pthread_join(g.thread, NULL);
    CHECK_INT(g.result, ==, 0);
    CHECK_STR(g.key, "ns/a");
    CHECK_OK(workqueue_done(q, g.key));
    free(g.key);

    /* a delayed key on the real clock wakes a getter that was already asleep */
    getter_start(&g, q);
    CHECK_OK(workqueue_add_after(q, "ns/b", 20 * MS));
    pthread_join(g.thread, NULL);
    CHECK_INT(g.result, ==, 0);
    CHECK_STR(g.key, "ns/b");
    free(g.key);

    char *key = NULL;
    CHECK_INT(workqueue_get(q, 1 * MS, &key), ==, -ETIMEDOUT);
    CHECK(key == NULL);
}

static void wakeup_follows_a_fake_clock(void)
{
    atomic_store(&fake_now, 5000 * USEC_PER_SEC);
    workqueue_options o = {.clock = fake_clock};
    _cleanup_(workqueue_freep) workqueue *q = NULL;
    CHECK_OK(workqueue_new(&o, &q));
    CHECK_OK(workqueue_add_after(q, "ns/a", 3600 * USEC_PER_SEC));
    getter g;
    getter_start(&g, q); /* would sleep an hour of real time */
    sleep_usec(10 * MS);
    atomic_fetch_add(&fake_now, 3600 * USEC_PER_SEC);
    workqueue_wakeup(q);
    pthread_join(g.thread, NULL);
    CHECK_INT(g.result, ==, 0);
    CHECK_STR(g.key, "ns/a");
    free(g.key);
}

/* ---- loop mode ---- */

typedef struct loop_ctx {
    int calls;
    char got[16][32];
    size_t n_got;
} loop_ctx;

static void on_ready(workqueue *q, void *userdata)
{
    loop_ctx *c = userdata;
    c->calls++;
    char *key;
    while (workqueue_get(q, 0, &key) == 0) {
        if (c->n_got < ELEMENTSOF(c->got))
            snprintf(c->got[c->n_got++], sizeof(c->got[0]), "%s", key);
        workqueue_done(q, key);
        free(key);
    }
}

static void tick(struct ev_loop *loop, ev_timer *w, int revents) {}

/* Runs the loop until the context has n keys (a hang guard of 10 s, not a timing check). */
static bool run_until_keys(struct ev_loop *loop, loop_ctx *c, size_t n)
{
    usec_t give_up = now_monotonic() + 10 * USEC_PER_SEC;
    ev_timer t;
    ev_timer_init(&t, tick, 0.005, 0.005);
    ev_timer_start(loop, &t);
    while (c->n_got < n && now_monotonic() < give_up)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &t);
    return c->n_got >= n;
}

static void *add_two(void *arg)
{
    workqueue_add(arg, "ns/x");
    workqueue_add(arg, "ns/y");
    return NULL;
}

static void loop_mode_delivers(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    loop_ctx c = {0};
    atomic_store(&fake_now, 7000 * USEC_PER_SEC);
    workqueue_options o = {.clock = fake_clock};
    workqueue *q = NULL;
    CHECK_OK(workqueue_new(&o, &q));
    CHECK_OK(workqueue_add(q, "ns/early")); /* before attaching: delivered too */
    CHECK_OK(workqueue_attach(q, loop, on_ready, &c));
    CHECK_INT(workqueue_attach(q, loop, on_ready, &c), ==, -EALREADY);
    CHECK(run_until_keys(loop, &c, 1));
    CHECK_STR(c.got[0], "ns/early");

    /* adds from another thread reach the loop through the ev_async */
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, add_two, q), ==, 0);
    pthread_join(t, NULL);
    CHECK(run_until_keys(loop, &c, 3));
    CHECK_STR(c.got[1], "ns/x");
    CHECK_STR(c.got[2], "ns/y");

    /* a delayed key waits for its (fake) time */
    CHECK_OK(workqueue_add_after(q, "ns/later", 30 * USEC_PER_SEC));
    for (int i = 0; i < 5; i++)
        ev_run(loop, EVRUN_NOWAIT);
    CHECK_INT(c.n_got, ==, 3);
    atomic_fetch_add(&fake_now, 30 * USEC_PER_SEC);
    workqueue_wakeup(q);
    CHECK(run_until_keys(loop, &c, 4));
    CHECK_STR(c.got[3], "ns/later");
    q = workqueue_free(q);

    /* on the real clock the queue's own ev_timer fires for a delayed key */
    loop_ctx c2 = {0};
    CHECK_OK(workqueue_new(NULL, &q));
    CHECK_OK(workqueue_attach(q, loop, on_ready, &c2));
    CHECK_OK(workqueue_add_after(q, "ns/timer", 10 * MS));
    CHECK(run_until_keys(loop, &c2, 1));
    CHECK_STR(c2.got[0], "ns/timer");

    /* after shutdown the callback is not called */
    int calls = c2.calls;
    workqueue_shutdown(q);
    CHECK_INT(workqueue_add(q, "ns/z"), ==, -ESHUTDOWN);
    for (int i = 0; i < 5; i++)
        ev_run(loop, EVRUN_NOWAIT);
    CHECK_INT(c2.calls, ==, calls);
    q = workqueue_free(q);
    ev_loop_destroy(loop);
}

CHECK_MAIN(CASE(queue_rules), CASE(bad_options), CASE(never_concurrent_and_last_add_runs),
           CASE(shutdown_wakes_getters), CASE(blocked_getter_wakes_for_add_and_delay),
           CASE(wakeup_follows_a_fake_clock), CASE(loop_mode_delivers))
