/* pkg/reconcile informer: a list + watch cache of one kind of object, kept current through the
 * Stratus API (rpc/client.h), with handlers called for every change — client-go's reflector,
 * store and shared informer in one. It is what the scheduler and node agents read instead of
 * asking the apiserver; it is not a write path and does not reconcile anything itself (handlers
 * usually just add the key to a workqueue).
 *
 * How it keeps current: List (paged, continue_token) → Watch from the list's resourceVersion →
 * apply ADDED / MODIFIED / DELETED, follow BOOKMARKs. When the watch ends with OUT_OF_RANGE
 * (RPC_CODE_RELIST, or an ERROR event carrying it) it lists again and diffs the new list against
 * the cache, calling on_add / on_update / on_delete for what differs. When it ends any other way
 * (apiserver gone, stream closed) it watches again from the last resourceVersion it saw, with
 * capped exponential backoff between failed attempts; if that version is gone, the watch ends
 * with OUT_OF_RANGE and it relists.
 *
 * Threads (docs/reconcile.md has the picture):
 *   - one reader thread per informer does the blocking List and rpc_watch_next calls and parses
 *     the JSON; it hands batches to the owner's libev loop through a bounded locked queue and an
 *     ev_async;
 *   - the loop thread applies them to the cache and calls the handlers, in order;
 *   - the cache is read from any thread (informer_get, informer_list) under a mutex. Cached
 *     objects are immutable, shared jansson values: readers get their own reference and must
 *     never modify them (jansson's reference counts are atomic, so a reference may be dropped
 *     on any thread).
 *
 * Keys are "namespace/name", or "name" for cluster-scoped objects (an empty namespace). The
 * library does not log; informer_stats_read() counts what went wrong. */
#pragma once

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/macro.h"
#include "base/timeutil.h"
#include "rpc/client.h"

typedef struct informer informer;

#define INFORMER_DEFAULT_PAGE_SIZE    2000
#define INFORMER_DEFAULT_LIST_TIMEOUT (30 * USEC_PER_SEC)
#define INFORMER_DEFAULT_BACKOFF      (200 * USEC_PER_MSEC)
#define INFORMER_DEFAULT_BACKOFF_MAX  (30 * USEC_PER_SEC)
#define INFORMER_DEFAULT_MAX_ITEMS    1000000
#define INFORMER_DEFAULT_MAX_PENDING  10000
/* Longest key: namespace and name are capped far below this by the API. */
#define INFORMER_KEY_MAX 512

/* Handlers run on the loop thread, in the order the changes happened. Objects are borrowed for
 * the call (json_incref to keep one) and must not be modified. A handler may call any informer_*
 * function except informer_stop/informer_free. NULL handlers are skipped. */
typedef struct informer_handlers {
    /* An object appeared: in a List (the first, or a relist) or an ADDED/MODIFIED event for a
     * key the cache did not have. */
    void (*on_add)(informer *inf, const char *key, json_t *obj, void *userdata);
    /* An object changed. A relist calls it only for objects whose resourceVersion (or, lacking
     * one, content) differs from the cache. */
    void (*on_update)(informer *inf, const char *key, json_t *old_obj, json_t *new_obj,
                      void *userdata);
    /* An object went away: a DELETED event (obj is its last state) or missing from a relist (obj
     * is the last state the cache had). */
    void (*on_delete)(informer *inf, const char *key, json_t *obj, void *userdata);
    void *userdata;
} informer_handlers;

/* Zero fields take the defaults above. Strings are copied. */
typedef struct informer_options {
    const char *kind;           /* "Instance", "Node", ...: required */
    const char *namespace_;     /* NULL or "": cluster-scoped kinds, or with all_namespaces */
    bool all_namespaces;        /* every namespace of a namespaced kind */
    const char *label_selector; /* passed to List and Watch as is; NULL: everything */
    const char *field_selector; /* likewise, e.g. "spec.nodeName=node-1" */
    int64_t page_size;          /* List page size asked for; 0 → 2,000 */
    usec_t list_timeout;        /* deadline of each List page; 0 → 30 s */
    usec_t backoff_initial;     /* wait after a second failure in a row; 0 → 200 ms */
    usec_t backoff_max;         /* cap on the doubling wait; 0 → 30 s */
    size_t max_items;           /* cache cap: a longer List is an error (-E2BIG, retried),
                                   adds beyond it are dropped and counted; 0 → 1,000,000 */
    size_t max_pending;         /* batches queued for the loop before the reader waits for it
                                   (back-pressure onto the stream); 0 → 10,000 */
} informer_options;

typedef struct informer_stats {
    uint64_t lists;           /* complete Lists (all pages) applied or in flight to the loop */
    uint64_t watches;         /* Watch streams opened */
    uint64_t relists;         /* Lists after the first, forced by OUT_OF_RANGE */
    uint64_t errors;          /* failed List pages and watch ends other than OUT_OF_RANGE/cancel */
    uint64_t events;          /* ADDED/MODIFIED/DELETED applied */
    uint64_t bookmarks;       /* BOOKMARKs seen */
    uint64_t bad_objects;     /* items or events whose JSON or metadata was unusable: skipped */
    uint64_t dropped;         /* adds refused because the cache held max_items */
    int64_t resource_version; /* the last revision applied to the cache */
    size_t items;             /* keys in the cache (assumed-only ones included) */
    size_t assumed;           /* keys showing an assumed object */
} informer_stats;

/* Creates an informer on `loop` (an ev_async is started on it) using `client`, which must
 * outlive it. h may be NULL. Nothing is sent until informer_start. Returns 0 and the informer in
 * *ret; -EINVAL without a kind or with bad options. The loop's thread. */
int informer_new(rpc_client *client, struct ev_loop *loop, const informer_options *opts,
                 const informer_handlers *h, informer **ret);
/* Starts the reader thread (List, then Watch). Returns 0; -EALREADY when started before; -errno
 * from pthread_create. The loop's thread. */
int informer_start(informer *inf);
/* Stops the reader: cancels the watch and joins the thread (which may take until the List page
 * in flight ends, at most list_timeout). Changes not yet applied are dropped; the cache stays
 * readable. Idempotent. The loop's thread, not from a handler. */
void informer_stop(informer *inf);
/* Stops and frees the informer and its cache (references held by readers stay valid). Accepts
 * NULL; returns NULL. The loop's thread, not from a handler; no other thread may be inside an
 * informer_* call on it. */
informer *informer_free(informer *inf);
DEFINE_TRIVIAL_CLEANUP_FUNC(informer *, informer_free);

/* Whether the first complete List has been applied to the cache (its handlers have run). Stays
 * true through relists. Any thread. */
bool informer_has_synced(informer *inf);
/* The cached object for key (an assumed one if present), as a new reference the caller drops
 * with json_decref; NULL when absent. Any thread. */
json_t *informer_get(informer *inf, const char *key);
/* A snapshot of every cached object (assumed ones where present), in no particular order: 0 and
 * an array of new references in *ret_items (free with informer_items_free) and its length in
 * *ret_n. Any thread. */
int informer_list(informer *inf, json_t ***ret_items, size_t *ret_n);
/* Drops the references of an informer_list snapshot and frees it. Accepts NULL. */
void informer_items_free(json_t **items, size_t n);
/* Keys in the cache. Any thread. */
size_t informer_size(informer *inf);

/* Puts a locally predicted object into the cache under key (the scheduler's view of an instance
 * it just bound), shown by informer_get/informer_list until the server delivers a version of it
 * at least as new: an event or a List item whose metadata.resourceVersion is >= obj's (a
 * deletion counts by its event's revision). Handlers are not called for assumptions; they keep
 * reporting the server's objects. obj gets one more reference (the caller keeps its own) and must
 * not be modified afterwards. Returns 0; -EINVAL for a bad key or an obj without a numeric
 * metadata.resourceVersion; -ESTALE when the cache already holds a newer version of key; -ENOSPC
 * when key is new and the cache holds max_items. Any thread. */
int informer_assume(informer *inf, const char *key, json_t *obj);
/* Drops an assumption (the bind it predicted failed): the cache shows the server's object again,
 * or nothing. Returns 0, or -ENOENT when key has no assumed object. Any thread. */
int informer_unassume(informer *inf, const char *key);

/* Fills *ret. Any thread. */
void informer_stats_read(informer *inf, informer_stats *ret);

/* The cache key of an object ("namespace/name" or "name"): 0 and a new string in *ret; -EINVAL
 * when metadata.name is missing or empty, or the key would pass INFORMER_KEY_MAX. Any thread. */
int informer_object_key(const json_t *obj, char **ret);
/* metadata.resourceVersion as a number: 0 and the value in *ret; -EINVAL when it is missing or
 * not a decimal int64 string. Any thread. */
int informer_object_resource_version(const json_t *obj, int64_t *ret);
