/* pkg/reconcile work queue: the keys ("namespace/name") a controller must reconcile, handed out
 * so that one key is never processed by two workers at once, in the manner of client-go's
 * rate-limited delaying queue. It holds keys, never objects: a worker reads the current state for
 * the key (level-triggered), so however many times a key was added, it runs once more.
 *
 * The rules:
 *   - adding a key that is already waiting is a no-op (dedup);
 *   - a key added while a worker processes it is marked dirty and handed out again after
 *     workqueue_done(), once, however many times it was added;
 *   - workqueue_add_after() makes a key ready after a delay; earlier deadline wins;
 *   - workqueue_add_rate_limited() is add_after with max(per-key exponential backoff, the
 *     queue-wide token bucket's delay); workqueue_forget() resets the key's backoff;
 *   - at most max_keys distinct keys are tracked (waiting, delayed, processing or with backoff
 *     state); a new key beyond that is refused with -ENOSPC;
 *   - after workqueue_shutdown() nothing is handed out and every waiting getter wakes up.
 *
 * Threads: every function may be called from any thread (one mutex inside), except
 * workqueue_attach() and workqueue_free(), see there. Two ways to consume it:
 *   - pull: N worker threads loop on workqueue_get(q, USEC_INFINITY, &key) ... workqueue_done()
 *     (the node agent, whose reconciles block in libvirt). Delayed keys wake blocked getters at
 *     their deadline; no loop is needed.
 *   - loop: workqueue_attach() binds the queue to a libev loop; a callback on that loop is told
 *     when keys are ready and pulls them with workqueue_get(q, 0, &key) (the scheduler, which
 *     owns its state on its loop). An ev_timer wakes it for delayed keys.
 * The library does not log. See docs/reconcile.md. */
#pragma once

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/macro.h"
#include "base/timeutil.h"

typedef struct workqueue workqueue;

/* Longest key accepted (bytes, without the NUL): namespace (63) + "/" + name (253) with room. */
#define WORKQUEUE_KEY_MAX             512
#define WORKQUEUE_DEFAULT_MAX_KEYS    100000
#define WORKQUEUE_DEFAULT_BACKOFF     (5 * USEC_PER_MSEC)
#define WORKQUEUE_DEFAULT_BACKOFF_MAX (30 * USEC_PER_SEC)
#define WORKQUEUE_DEFAULT_QPS         10.0
#define WORKQUEUE_DEFAULT_BURST       100

/* The clock every delay is measured on (monotonic microseconds). Injectable so that tests of
 * backoff and rate limits run on a fake clock; must be safe to call from any thread. */
typedef usec_t (*workqueue_clock_fn)(void);

/* Zero fields take the defaults above. */
typedef struct workqueue_options {
    size_t max_keys;     /* distinct keys tracked at once; 0 → WORKQUEUE_DEFAULT_MAX_KEYS */
    usec_t backoff_base; /* first retry delay of a key, doubling per failure; 0 → 5 ms */
    usec_t backoff_max;  /* cap on a key's retry delay; 0 → 30 s */
    double qps;     /* queue-wide retries per second (token bucket); 0 → 10; < 0 → no limit */
    unsigned burst; /* token bucket size; 0 → 100 */
    workqueue_clock_fn clock; /* NULL → now_monotonic */
} workqueue_options;

/* Counters for metrics. Gauges are the state at the time of the call. */
typedef struct workqueue_stats {
    size_t depth;      /* keys ready and waiting for a worker */
    size_t delayed;    /* keys waiting for their delay (add_after, backoff) */
    size_t processing; /* keys handed out and not done yet */
    size_t keys;       /* keys tracked, counted against max_keys */
    uint64_t adds;     /* adds that made a key ready (dedup'd adds are not counted) */
    uint64_t retries;  /* workqueue_add_rate_limited calls */
} workqueue_stats;

/* Creates a queue. opts may be NULL. Returns 0 and the queue in *ret, or -EINVAL when
 * backoff_base > backoff_max. Any thread. */
int workqueue_new(const workqueue_options *opts, workqueue **ret);
/* Frees the queue and every key in it; accepts NULL and returns NULL. No thread may be inside
 * a workqueue_* call on it (shut down and join the workers first); when attached to a loop, call
 * it on that loop's thread. */
workqueue *workqueue_free(workqueue *q);
DEFINE_TRIVIAL_CLEANUP_FUNC(workqueue *, workqueue_free);

/* Makes key ready now (or dirty, when it is being processed). Returns 0 (also when it was
 * already waiting: dedup); -EINVAL for an empty key or one longer than WORKQUEUE_KEY_MAX;
 * -ENOSPC when the key is new and max_keys keys are tracked; -ESHUTDOWN after shutdown. The
 * key is copied. Any thread. */
int workqueue_add(workqueue *q, const char *key);
/* Makes key ready after delay (0: now, as workqueue_add). A key already delayed keeps the earlier
 * of its two deadlines. Same returns as workqueue_add. Any thread. */
int workqueue_add_after(workqueue *q, const char *key, usec_t delay);
/* Requeues key after a failure: delay = max(backoff_base × 2^(failures so far), capped at
 * backoff_max; the token bucket's wait), then counts one more failure for the key. Same returns
 * as workqueue_add; the delay chosen goes to *ret_delay when it is not NULL. Any thread. */
int workqueue_add_rate_limited(workqueue *q, const char *key, usec_t *ret_delay);
/* Resets key's failure count (call after a successful reconcile). Does not remove the key from
 * the queue. Unknown keys are ignored. Any thread. */
void workqueue_forget(workqueue *q, const char *key);
/* How many times key went through workqueue_add_rate_limited since its last forget. Any thread. */
unsigned workqueue_num_requeues(workqueue *q, const char *key);

/* Takes the next ready key, waiting up to `timeout` (0: just poll; USEC_INFINITY: forever; the
 * wait is measured on the real monotonic clock). Returns 0 and the key in *ret_key (the caller
 * frees it, after passing it to workqueue_done); -ETIMEDOUT when none was ready in time;
 * -ESHUTDOWN after workqueue_shutdown (keys still waiting are not handed out). The key is
 * processing until workqueue_done: no other getter receives it meanwhile. Any thread. */
int workqueue_get(workqueue *q, usec_t timeout, char **ret_key);
/* Ends the processing of key. If it was added meanwhile it becomes ready again. Returns 0, or
 * -ENOENT when key was not being processed. Any thread. */
int workqueue_done(workqueue *q, const char *key);

/* Stops handing out keys: waiting and future workqueue_get calls return -ESHUTDOWN, adds return
 * -ESHUTDOWN, the loop callback is not called any more. Keys being processed may still be passed
 * to workqueue_done. Idempotent. Any thread. */
void workqueue_shutdown(workqueue *q);
bool workqueue_is_shutdown(workqueue *q);

/* Re-reads the clock: promotes delayed keys whose time has come and wakes getters and the loop.
 * Only needed when the clock jumps (a test's fake clock); the real one is followed by itself.
 * Any thread. */
void workqueue_wakeup(workqueue *q);

/* Fills *ret with the current counters. Any thread. */
void workqueue_stats_read(workqueue *q, workqueue_stats *ret);

/* Called on the loop's thread when keys are ready (after an add from any thread, a done that
 * requeued a dirty key, or a delay running out). A hint, not a count: it should take keys with
 * workqueue_get(q, 0, ...) until -ETIMEDOUT, or come back for the rest itself. */
typedef void (*workqueue_ready_fn)(workqueue *q, void *userdata);
/* Drives the queue from `loop`: an ev_async (woken by adds from any thread) and an ev_timer (for
 * the next delayed key) call fn when keys are ready. Once per queue. Returns 0, or -EALREADY.
 * Call on the loop's thread; the queue must then be freed on it too. */
int workqueue_attach(workqueue *q, struct ev_loop *loop, workqueue_ready_fn fn, void *userdata);
