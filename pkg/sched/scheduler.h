/* The scheduler controller: watches the cluster through informers, places Pending instances
 * with the plugins in sched.h and binds them in batches through the apiserver, which re-checks
 * capacity and hard server-group policy in the binding transaction — so several schedulers may
 * run at once with no leader. It also reschedules what agents give back (up to an attempt
 * limit, then Failed) and runs the node lifecycle: a node whose Lease is gone is marked
 * Ready=False, and after a fencing margin its instances are handed back and placed elsewhere.
 * Everything runs on the caller's libev loop, except the Bind calls, which bind_calls threads make
 * while the loop places the next batch; the other RPCs it makes block that loop briefly. */
#pragma once

#include <stdint.h>

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/timeutil.h"

typedef struct scheduler scheduler;

typedef struct scheduler_options {
    const char *server;    /* apiserver address, host:port */
    const char *name;      /* who reports events; default "stratus-scheduler" */
    bool pack;             /* fill nodes first instead of spreading */
    unsigned max_attempts; /* placements before an instance is Failed; 0 → 3 */
    size_t batch_size;     /* bindings placed per batch; 0 → 200 */
    size_t bind_calls;     /* Bind calls a batch is split into, sent at once; 0 → 4 */
    usec_t fencing_margin; /* lease gone this long → reschedule the node's instances; 0 → 40 s */
    usec_t retry_interval; /* unschedulable instances are retried at least this often; 0 → 30 s */
    unsigned seed;         /* tie-breaks; 0 → from the clock */
} scheduler_options;

int scheduler_new(struct ev_loop *loop, const scheduler_options *o, scheduler **ret);
/* Frees on the loop's thread. NULL ok. */
scheduler *scheduler_free(scheduler *s);

typedef struct scheduler_stats {
    size_t bound;         /* bindings the apiserver accepted */
    size_t conflicts;     /* bindings refused because another scheduler got there first */
    size_t unschedulable; /* decisions that no node fits */
    size_t failed;        /* instances given up on after max_attempts */
    size_t rescheduled;   /* instances handed back from lost nodes */
    size_t cache_repairs; /* audits (scheduler_audit) that found the cache wrong */
    size_t relists;       /* Lists its informers made after their first (a watch fell behind) */
    /* Where the time of placing goes, summed over batches (microseconds). */
    size_t batches;
    uint64_t snapshot_usec; /* building the snapshot from the caches */
    uint64_t select_usec;   /* filters and scores */
    uint64_t bind_usec;     /* Bind calls' durations, summed (several run at once, and beside
                               placing: not a wait) */
} scheduler_stats;

void scheduler_stats_read(scheduler *s, scheduler_stats *ret);

/* Builds the placement cache (pkg/sched/cache.h) from scratch out of the informers and compares
 * it with the one kept current change by change: a difference is a change the handlers missed
 * (none is known), counted in cache_repairs, and the fresh cache is kept. Runs every 10
 * retry intervals; O(cluster). The loop's thread, not from a handler. */
void scheduler_audit(scheduler *s);
