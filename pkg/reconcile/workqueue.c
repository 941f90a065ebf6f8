/* The work queue: one mutex over a map of key states, a FIFO of ready keys, a min-heap of delayed
 * keys, and a token bucket (GCRA form, integer microseconds, so a fake clock gives exact delays).
 * Blocking getters wait on a condition variable bound to CLOCK_MONOTONIC; a loop consumer gets an
 * ev_async + ev_timer pair. See workqueue.h for the rules and docs/reconcile.md for why. */
#include "reconcile/workqueue.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "reconcile/keymap.h"

#define NOT_DELAYED SIZE_MAX
/* The loop's timer never sleeps longer than this; it re-reads the clock and sleeps again. */
#define LOOP_TIMER_MAX (3600 * USEC_PER_SEC)

typedef struct wq_item {
    char *key;            /* owned; also the keymap's key */
    bool dirty;           /* must be processed (again): on the ready list, or requeued at done */
    bool processing;      /* handed out by workqueue_get, not done yet */
    size_t heap_index;    /* position in the delay heap, or NOT_DELAYED */
    usec_t ready_at;      /* while delayed, on the queue's clock */
    uint64_t seq;         /* insertion order, to break ties between equal deadlines */
    unsigned failures;    /* add_rate_limited calls since the last forget */
    struct wq_item *next; /* ready list link */
} wq_item;

struct workqueue {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* on CLOCK_MONOTONIC */

    keymap items; /* key → wq_item */
    wq_item *ready_head, *ready_tail;
    size_t n_ready;
    wq_item **heap;
    size_t n_heap, heap_allocated;
    uint64_t seq;
    size_t n_processing;
    bool shutdown;

    size_t max_keys;
    usec_t backoff_base, backoff_max;
    bool unlimited;   /* no token bucket */
    usec_t interval;  /* token bucket: one token per interval ... */
    usec_t tolerance; /* ... and (burst - 1) × interval of credit */
    usec_t tat;       /* GCRA's theoretical arrival time */
    workqueue_clock_fn clock;

    uint64_t adds, retries;

    struct ev_loop *loop; /* when attached */
    ev_async async;
    ev_timer timer;
    workqueue_ready_fn ready_fn;
    void *ready_userdata;
};

static usec_t add_sat(usec_t a, usec_t b)
{
    return a > USEC_INFINITY - b ? USEC_INFINITY : a + b;
}

static bool key_valid(const char *key)
{
    if (!key)
        return false;
    size_t n = strnlen(key, WORKQUEUE_KEY_MAX + 1);
    return n > 0 && n <= WORKQUEUE_KEY_MAX;
}

/* ---- the delay heap, ordered by (ready_at, seq) ---- */

static bool heap_less(const wq_item *a, const wq_item *b)
{
    return a->ready_at < b->ready_at || (a->ready_at == b->ready_at && a->seq < b->seq);
}

static void heap_set(workqueue *q, size_t i, wq_item *it)
{
    q->heap[i] = it;
    it->heap_index = i;
}

static void heap_up(workqueue *q, size_t i)
{
    wq_item *it = q->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(it, q->heap[parent]))
            break;
        heap_set(q, i, q->heap[parent]);
        i = parent;
    }
    heap_set(q, i, it);
}

static void heap_down(workqueue *q, size_t i)
{
    wq_item *it = q->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const wq_item *best = it;
        if (l < q->n_heap && heap_less(q->heap[l], best))
            m = l, best = q->heap[l];
        if (r < q->n_heap && heap_less(q->heap[r], best))
            m = r;
        if (m == i)
            break;
        heap_set(q, i, q->heap[m]);
        i = m;
    }
    heap_set(q, i, it);
}

static void heap_push(workqueue *q, wq_item *it)
{
    q->heap = xgrow(q->heap, &q->heap_allocated, q->n_heap + 1, sizeof(wq_item *));
    heap_set(q, q->n_heap++, it);
    heap_up(q, it->heap_index);
}

static wq_item *heap_pop(workqueue *q)
{
    wq_item *top = q->heap[0];
    top->heap_index = NOT_DELAYED;
    if (--q->n_heap > 0) {
        heap_set(q, 0, q->heap[q->n_heap]);
        heap_down(q, 0);
    }
    return top;
}

/* ---- key states ---- */

static void notify_loop(workqueue *q)
{
    if (q->loop)
        ev_async_send(q->loop, &q->async);
}

static int item_get_or_new(workqueue *q, const char *key, wq_item **ret)
{
    wq_item *it = keymap_get(&q->items, key);
    if (!it) {
        if (q->items.size >= q->max_keys)
            return -ENOSPC;
        it = xnew(wq_item, 1);
        it->key = xstrdup(key);
        it->heap_index = NOT_DELAYED;
        keymap_put(&q->items, it->key, it);
    }
    *ret = it;
    return 0;
}

/* Drops a key the queue no longer has any reason to remember. */
static void item_release_if_idle(workqueue *q, wq_item *it)
{
    if (it->dirty || it->processing || it->heap_index != NOT_DELAYED || it->failures > 0)
        return;
    keymap_remove(&q->items, it->key);
    free(it->key);
    free(it);
}

static void ready_push(workqueue *q, wq_item *it)
{
    it->next = NULL;
    if (q->ready_tail)
        q->ready_tail->next = it;
    else
        q->ready_head = it;
    q->ready_tail = it;
    q->n_ready++;
    pthread_cond_signal(&q->cond);
    notify_loop(q);
}

static wq_item *ready_pop(workqueue *q)
{
    wq_item *it = q->ready_head;
    q->ready_head = it->next;
    if (!q->ready_head)
        q->ready_tail = NULL;
    it->next = NULL;
    q->n_ready--;
    return it;
}

static void add_locked(workqueue *q, wq_item *it)
{
    if (it->dirty)
        return; /* already waiting, or already due again after the current run */
    it->dirty = true;
    q->adds++;
    if (!it->processing)
        ready_push(q, it);
}

/* Makes it ready at `at`, or keeps its earlier deadline. */
static void delay_locked(workqueue *q, wq_item *it, usec_t at)
{
    if (it->heap_index != NOT_DELAYED) {
        if (at >= it->ready_at)
            return;
        it->ready_at = at;
        heap_up(q, it->heap_index);
    } else {
        it->ready_at = at;
        it->seq = q->seq++;
        heap_push(q, it);
    }
    if (it->heap_index == 0) {
        /* a new earliest deadline: sleepers must recompute how long to wait */
        pthread_cond_broadcast(&q->cond);
        notify_loop(q);
    }
}

static void promote_due(workqueue *q, usec_t now)
{
    while (q->n_heap > 0 && q->heap[0]->ready_at <= now)
        add_locked(q, heap_pop(q));
}

static usec_t backoff_for(const workqueue *q, unsigned failures)
{
    usec_t d = q->backoff_base;
    for (unsigned i = 0; i < failures && d < q->backoff_max; i++)
        d = d > q->backoff_max / 2 ? q->backoff_max : d * 2;
    return MIN(d, q->backoff_max);
}

/* Takes one token; returns how long the caller must wait for it. */
static usec_t bucket_reserve(workqueue *q, usec_t now)
{
    if (q->unlimited)
        return 0;
    usec_t start = q->tat > add_sat(now, q->tolerance) ? q->tat - q->tolerance : now;
    q->tat = add_sat(MAX(q->tat, now), q->interval);
    return start - now;
}

/* ---- API ---- */

int workqueue_new(const workqueue_options *opts, workqueue **ret)
{
    workqueue_options o = opts ? *opts : (workqueue_options){0};
    if (o.max_keys == 0)
        o.max_keys = WORKQUEUE_DEFAULT_MAX_KEYS;
    if (o.backoff_base == 0)
        o.backoff_base = WORKQUEUE_DEFAULT_BACKOFF;
    if (o.backoff_max == 0)
        o.backoff_max = WORKQUEUE_DEFAULT_BACKOFF_MAX;
    if (o.qps == 0)
        o.qps = WORKQUEUE_DEFAULT_QPS;
    if (o.burst == 0)
        o.burst = WORKQUEUE_DEFAULT_BURST;
    if (!o.clock)
        o.clock = now_monotonic;
    if (o.backoff_base > o.backoff_max)
        return -EINVAL;

    workqueue *q = xnew(workqueue, 1);
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &ca);
    pthread_condattr_destroy(&ca);
    q->max_keys = o.max_keys;
    q->backoff_base = o.backoff_base;
    q->backoff_max = o.backoff_max;
    q->unlimited = o.qps < 0;
    if (!q->unlimited) {
        double interval = (double)USEC_PER_SEC / o.qps + 0.5;
        q->interval = interval >= (double)USEC_INFINITY ? USEC_INFINITY : (usec_t)interval;
        q->tolerance = q->interval == USEC_INFINITY ? 0 : (usec_t)(o.burst - 1) * q->interval;
        q->unlimited = q->interval == 0;
    }
    q->clock = o.clock;
    *ret = q;
    return 0;
}

workqueue *workqueue_free(workqueue *q)
{
    if (!q)
        return NULL;
    if (q->loop) {
        ev_async_stop(q->loop, &q->async);
        ev_timer_stop(q->loop, &q->timer);
    }
    keymap_iter iter = {0};
    void *v;
    while (keymap_next(&q->items, &iter, NULL, &v)) {
        wq_item *it = v;
        free(it->key);
        free(it);
    }
    keymap_done(&q->items);
    free(q->heap);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    free(q);
    return NULL;
}

/* Validates, locks, finds or creates the key's state; on success the lock is held. */
static int lock_item(workqueue *q, const char *key, wq_item **ret)
{
    if (!key_valid(key))
        return -EINVAL;
    pthread_mutex_lock(&q->lock);
    int r = q->shutdown ? -ESHUTDOWN : item_get_or_new(q, key, ret);
    if (r < 0)
        pthread_mutex_unlock(&q->lock);
    return r;
}

int workqueue_add(workqueue *q, const char *key)
{
    wq_item *it;
    int r = lock_item(q, key, &it);
    if (r < 0)
        return r;
    add_locked(q, it);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

int workqueue_add_after(workqueue *q, const char *key, usec_t delay)
{
    if (delay == 0)
        return workqueue_add(q, key);
    wq_item *it;
    int r = lock_item(q, key, &it);
    if (r < 0)
        return r;
    delay_locked(q, it, add_sat(q->clock(), delay));
    pthread_mutex_unlock(&q->lock);
    return 0;
}

int workqueue_add_rate_limited(workqueue *q, const char *key, usec_t *ret_delay)
{
    wq_item *it;
    int r = lock_item(q, key, &it);
    if (r < 0)
        return r;
    usec_t now = q->clock();
    /* both limiters are consulted (the bucket's token is spent either way), as client-go's MaxOf */
    usec_t backoff = backoff_for(q, it->failures);
    usec_t bucket = bucket_reserve(q, now);
    usec_t delay = MAX(backoff, bucket);
    if (it->failures < UINT32_MAX)
        it->failures++;
    q->retries++;
    if (delay == 0)
        add_locked(q, it);
    else
        delay_locked(q, it, add_sat(now, delay));
    pthread_mutex_unlock(&q->lock);
    if (ret_delay)
        *ret_delay = delay;
    return 0;
}

void workqueue_forget(workqueue *q, const char *key)
{
    if (!key_valid(key))
        return;
    pthread_mutex_lock(&q->lock);
    wq_item *it = keymap_get(&q->items, key);
    if (it) {
        it->failures = 0;
        item_release_if_idle(q, it);
    }
    pthread_mutex_unlock(&q->lock);
}

unsigned workqueue_num_requeues(workqueue *q, const char *key)
{
    if (!key_valid(key))
        return 0;
    pthread_mutex_lock(&q->lock);
    wq_item *it = keymap_get(&q->items, key);
    unsigned n = it ? it->failures : 0;
    pthread_mutex_unlock(&q->lock);
    return n;
}

static void cond_wait_until(workqueue *q, usec_t wake)
{
    if (wake == USEC_INFINITY) {
        pthread_cond_wait(&q->cond, &q->lock);
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)(wake / USEC_PER_SEC),
                          .tv_nsec = (long)(wake % USEC_PER_SEC) * 1000};
    pthread_cond_timedwait(&q->cond, &q->lock, &ts);
}

int workqueue_get(workqueue *q, usec_t timeout, char **ret_key)
{
    /* The caller's timeout is on the real clock; delays are on the queue's (maybe fake) clock. */
    usec_t deadline = timeout == USEC_INFINITY ? USEC_INFINITY : add_sat(now_monotonic(), timeout);
    int r;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        if (q->shutdown) {
            r = -ESHUTDOWN;
            break;
        }
        promote_due(q, q->clock());
        if (q->ready_head) {
            wq_item *it = ready_pop(q);
            it->dirty = false;
            it->processing = true;
            q->n_processing++;
            *ret_key = xstrdup(it->key);
            r = 0;
            break;
        }
        usec_t real_now = now_monotonic();
        if (real_now >= deadline) {
            r = -ETIMEDOUT;
            break;
        }
        usec_t wake = deadline;
        if (q->n_heap > 0) {
            usec_t now = q->clock(), due = q->heap[0]->ready_at;
            wake = MIN(wake, add_sat(real_now, due > now ? due - now : 0));
        }
        cond_wait_until(q, wake);
    }
    pthread_mutex_unlock(&q->lock);
    return r;
}

int workqueue_done(workqueue *q, const char *key)
{
    if (!key_valid(key))
        return -ENOENT;
    pthread_mutex_lock(&q->lock);
    wq_item *it = keymap_get(&q->items, key);
    if (!it || !it->processing) {
        pthread_mutex_unlock(&q->lock);
        return -ENOENT;
    }
    it->processing = false;
    q->n_processing--;
    if (it->dirty)
        ready_push(q, it);
    else
        item_release_if_idle(q, it);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

void workqueue_shutdown(workqueue *q)
{
    pthread_mutex_lock(&q->lock);
    q->shutdown = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

bool workqueue_is_shutdown(workqueue *q)
{
    pthread_mutex_lock(&q->lock);
    bool s = q->shutdown;
    pthread_mutex_unlock(&q->lock);
    return s;
}

void workqueue_wakeup(workqueue *q)
{
    pthread_mutex_lock(&q->lock);
    promote_due(q, q->clock());
    pthread_cond_broadcast(&q->cond);
    notify_loop(q);
    pthread_mutex_unlock(&q->lock);
}

void workqueue_stats_read(workqueue *q, workqueue_stats *ret)
{
    pthread_mutex_lock(&q->lock);
    *ret = (workqueue_stats){
        .depth = q->n_ready,
        .delayed = q->n_heap,
        .processing = q->n_processing,
        .keys = q->items.size,
        .adds = q->adds,
        .retries = q->retries,
    };
    pthread_mutex_unlock(&q->lock);
}

/* ---- loop mode ---- */

/* On the loop: promote what is due, re-arm the timer for the next deadline, tell the owner. */
static void loop_wake(struct ev_loop *loop, workqueue *q)
{
    bool ready = false;
    usec_t next_in = USEC_INFINITY;
    pthread_mutex_lock(&q->lock);
    if (!q->shutdown) {
        usec_t now = q->clock();
        promote_due(q, now);
        ready = q->n_ready > 0;
        if (q->n_heap > 0)
            next_in = MIN(q->heap[0]->ready_at - now, LOOP_TIMER_MAX);
    }
    pthread_mutex_unlock(&q->lock);
    ev_timer_stop(loop, &q->timer);
    if (next_in != USEC_INFINITY) {
        ev_timer_set(&q->timer, (double)next_in / (double)USEC_PER_SEC, 0.);
        ev_timer_start(loop, &q->timer);
    }
    if (ready)
        q->ready_fn(q, q->ready_userdata);
}

static void on_async(struct ev_loop *loop, ev_async *w, int revents)
{
    loop_wake(loop, w->data);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    loop_wake(loop, w->data);
}

int workqueue_attach(workqueue *q, struct ev_loop *loop, workqueue_ready_fn fn, void *userdata)
{
    pthread_mutex_lock(&q->lock);
    if (q->loop) {
        pthread_mutex_unlock(&q->lock);
        return -EALREADY;
    }
    q->ready_fn = fn;
    q->ready_userdata = userdata;
    ev_async_init(&q->async, on_async);
    q->async.data = q;
    ev_timer_init(&q->timer, on_timer, 0., 0.);
    q->timer.data = q;
    ev_async_start(loop, &q->async);
    q->loop = loop;
    /* keys added before attaching are ready too */
    notify_loop(q);
    pthread_mutex_unlock(&q->lock);
    return 0;
}
