/* pkg/store: the etcd v3 client Stratus stands on. Two engines speak to etcd behind this one
 * header: etcd's native gRPC API (gRPC core + protobuf-c) and its JSON gateway (libcurl); they
 * give the same results and the same errors, and store_options.engine picks one.
 *
 * Everything is asynchronous on one libev loop: many requests are in flight at once and their
 * callbacks run on the loop (the gRPC engine has a thread of its own inside, which only hands
 * completions to the loop).
 * A store is NOT thread-safe: create it, submit to it and free it on its loop's thread only.
 * For programs without a loop of their own (tests, tools) store_wait() runs the loop until one
 * request is done.
 *
 * Errors (the same numbers in return values and store_result.error):
 *   -ENOENT     key not found (get, CAS update/delete of a key that is gone)
 *   -EEXIST     create-only put found the key already there (result holds the current value)
 *   -ESTALE     compare failed: mod_revision no longer matches (result holds the current value)
 *   -ERANGE     the revision asked for was compacted: relist ("expired")
 *   -ETIME      the lease has expired or never existed
 *   -EHOSTDOWN  unavailable: no endpoint could be reached, or etcd said it cannot serve now;
 *               nothing was applied
 *   -ETIMEDOUT  the request timed out; a write may or may not have been applied
 *   -ECONNRESET the connection broke mid-request; a write may or may not have been applied
 *   -EMSGSIZE   a request or response was larger than allowed (etcd's ~1.5 MiB request limit,
 *               or options.max_response)
 *   -E2BIG      too many operations in one transaction (etcd's --max-txn-ops, 128 by default)
 *   -EBADMSG    the response was malformed (bad JSON, bad base64, missing fields)
 *   -EINVAL     etcd rejected the request as invalid (message in store_result.message)
 *   -EPROTO     any other error etcd reported (message in store_result.message)
 * store_strerror() names them; store_error_is_unavailable() groups the last-resort ones.
 *
 * This library never logs; it returns errors and the caller decides. gRPC core's own log is
 * discarded too (process-wide, gpr_set_log_function, as pkg/rpc does) unless GRPC_VERBOSITY is
 * set. */
#pragma once

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/macro.h"
#include "base/timeutil.h"

typedef struct store store;
typedef struct store_txn store_txn;
typedef struct store_watch store_watch;

#define STORE_ENDPOINTS_MAX         16
#define STORE_DEFAULT_TIMEOUT       (5 * USEC_PER_SEC)
#define STORE_DEFAULT_CONNECT       (3 * USEC_PER_SEC)
#define STORE_DEFAULT_MAX_RESPONSE  ((size_t)64 << 20)
#define STORE_DEFAULT_MAX_EVENTLINE ((size_t)64 << 20)
#define STORE_DEFAULT_CONNECTIONS   64

typedef enum store_engine_kind {
    /* STORE_ENGINE_GRPC, unless the environment variable STRATUS_STORE_ENGINE says "gateway"
     * (or "grpc"): lets tests and benchmarks run every store of a program on either engine. */
    STORE_ENGINE_DEFAULT,
    STORE_ENGINE_GRPC,    /* etcd's gRPC API: etcdserverpb KV, Watch, Lease, Maintenance */
    STORE_ENGINE_GATEWAY, /* etcd's JSON gateway (/v3/...) over HTTP/1.1 */
    _STORE_ENGINE_MAX,
} store_engine_kind;

const char *store_engine_to_string(store_engine_kind k);
/* "grpc" / "gateway" → the engine; -EINVAL for anything else. */
int store_engine_from_string(const char *name, store_engine_kind *ret);
/* The engine a store's options resolved to ("grpc" or "gateway"): what to report when the
 * options left the choice to STORE_ENGINE_DEFAULT. */
const char *store_engine_used(const store *s);

typedef struct store_options {
    store_engine_kind engine;
    /* "http://127.0.0.1:2379" or "https://…"; tried in order, failing over to the next. */
    const char *endpoints[STORE_ENDPOINTS_MAX];
    size_t n_endpoints;
    /* The whole request, failover included: one deadline, each attempt gets what is left (a
     * member that swallows a request takes all of it: -ETIMEDOUT, and later requests start on
     * the next member). 0 = STORE_DEFAULT_TIMEOUT */
    usec_t request_timeout;
    usec_t connect_timeout; /* 0 = STORE_DEFAULT_CONNECT */
    size_t max_response;    /* bytes of one response body; 0 = STORE_DEFAULT_MAX_RESPONSE */
    size_t max_event_line;  /* bytes of one watch message; 0 = STORE_DEFAULT_MAX_EVENTLINE */
    size_t max_connections; /* gateway: keep-alive pool for requests (watches have their own);
                             * 0 = 64. gRPC multiplexes everything on one connection per member */
    /* TLS to etcd, for https endpoints: CA bundle, and client certificate + key (PEM). */
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
} store_options;

typedef struct store_kv {
    char *key; /* NUL-terminated (etcd keys used by Stratus are text) */
    size_t key_len;
    char *value; /* value_len bytes, plus a NUL so text values can be parsed in place */
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
} store_kv;

/* What a request produced. The callback owns it and frees it with store_result_free(). */
typedef struct store_result {
    int error;        /* 0 or one of the -errno codes above */
    char *message;    /* etcd's own error message, when it sent one */
    int64_t revision; /* the store revision the response was served at */

    /* range and get: the keys found; put/delete with prev_kv, and the failed compare of
     * create/update/delete: the key's current state. */
    store_kv *kvs;
    size_t n_kvs;
    bool more;     /* range: more keys beyond the limit */
    int64_t count; /* range: keys in the whole range */
    int64_t deleted;

    /* txn: which branch ran, and one result per operation of that branch. */
    bool succeeded;
    struct store_result *responses;
    size_t n_responses;

    /* leases */
    int64_t lease_id;
    int64_t ttl; /* remaining seconds (keepalive, timetolive) or granted TTL (grant) */
} store_result;

typedef void (*store_cb)(store_result *result, void *userdata);

void store_result_free(store_result *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(store_result *, store_result_free);
/* Frees the contents, not the struct (for results embedded in arrays or on the stack). */
void store_result_clear(store_result *r);
void store_kv_clear(store_kv *kv);

const char *store_strerror(int error);
bool store_error_is_unavailable(int error);

/* Creates a store on `loop`. Returns 0, or -EINVAL for bad options (no endpoints, a URL that is
 * not http/https, an unknown engine), or the error reading a TLS file (gRPC engine). The store
 * does not own the loop. */
int store_new(struct ev_loop *loop, const store_options *opts, store **ret);
/* Cancels every request (their callbacks are NOT called) and watch, then frees. Accepts NULL.
 * Not from inside a callback of this store (a request's or a watch's): the engine is still
 * using the store there. */
store *store_free(store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(store *, store_free);
struct ev_loop *store_loop(store *s);

/* store_prefix_end("a/") == "a0": the range_end that covers every key starting with the prefix.
 * The caller frees it. */
char *store_prefix_end(const char *prefix);

/* ---- single operations. Each returns 0 when submitted; the callback then gets the result.
 * They return -EINVAL at once for arguments that cannot be sent. */

typedef struct store_range_opts {
    const char *key;
    /* Paging: when set, the range starts just after this key (the last key of the previous
     * page) instead of at `key`. Page at a fixed `revision` for a consistent listing. */
    const char *after;
    const char *range_end; /* NULL: just `key`; store_prefix_end(p) for a prefix */
    int64_t limit;         /* 0 = no limit */
    int64_t revision;      /* 0 = latest; an older one gives -ERANGE once compacted */
    bool keys_only;
    bool count_only;
    bool serializable; /* served by the member without a quorum read */
} store_range_opts;

int store_range(store *s, const store_range_opts *o, store_cb cb, void *userdata);
/* A single key; -ENOENT when it does not exist. */
int store_get(store *s, const char *key, store_cb cb, void *userdata);

#define STORE_PREV_KV      (1u << 0) /* return the previous value of what was overwritten/deleted */
#define STORE_IGNORE_LEASE (1u << 1)

/* Unconditional put. lease = 0 for none. */
int store_put(store *s, const char *key, const void *value, size_t len, int64_t lease,
              unsigned flags, store_cb cb, void *userdata);
/* Put only if the key does not exist; -EEXIST with the current value otherwise. */
int store_create(store *s, const char *key, const void *value, size_t len, int64_t lease,
                 store_cb cb, void *userdata);
/* Put only if the key's mod_revision is still `mod_revision`; -ESTALE with the current value
 * (or -ENOENT if the key is gone) otherwise. */
int store_update(store *s, const char *key, const void *value, size_t len, int64_t mod_revision,
                 int64_t lease, store_cb cb, void *userdata);
/* Delete a key; when mod_revision > 0 only if it still matches (-ESTALE with the current value
 * otherwise). -ENOENT when there was nothing to delete. */
int store_delete(store *s, const char *key, int64_t mod_revision, store_cb cb, void *userdata);
/* Delete [key, range_end); result.deleted says how many. STORE_PREV_KV returns them. */
int store_delete_range(store *s, const char *key, const char *range_end, unsigned flags,
                       store_cb cb, void *userdata);
int store_delete_prefix(store *s, const char *prefix, store_cb cb, void *userdata);
/* Drops history before `revision`. -ERANGE if that was already compacted. */
int store_compact(store *s, int64_t revision, bool physical, store_cb cb, void *userdata);
/* The member's current revision (result.revision), for health checks. */
int store_status(store *s, store_cb cb, void *userdata);

/* ---- leases */
int store_lease_grant(store *s, int64_t ttl_seconds, store_cb cb, void *userdata);
/* One keep-alive; result.ttl is the renewed TTL, or -ETIME when the lease is gone. */
int store_lease_keepalive(store *s, int64_t lease_id, store_cb cb, void *userdata);
int store_lease_revoke(store *s, int64_t lease_id, store_cb cb, void *userdata);
/* result.ttl remaining seconds; -ETIME when expired. */
int store_lease_ttl(store *s, int64_t lease_id, store_cb cb, void *userdata);

/* ---- transactions: all-or-nothing. If every compare holds, the success operations run, else the
 * failure operations; result.succeeded says which and result.responses[i] holds operation i's
 * result of that branch. */
typedef enum store_cmp_target {
    STORE_CMP_VERSION,
    STORE_CMP_CREATE,
    STORE_CMP_MOD,
    STORE_CMP_VALUE,
    STORE_CMP_LEASE,
    _STORE_CMP_TARGET_MAX,
} store_cmp_target;

typedef enum store_cmp_op {
    STORE_CMP_EQUAL,
    STORE_CMP_NOT_EQUAL,
    STORE_CMP_LESS,
    STORE_CMP_GREATER,
    _STORE_CMP_OP_MAX,
} store_cmp_op;

typedef enum store_branch {
    STORE_ON_SUCCESS,
    STORE_ON_FAILURE,
} store_branch;

store_txn *store_txn_new(void);
store_txn *store_txn_free(store_txn *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(store_txn *, store_txn_free);
/* Compare a key's revision/version/lease number (not STORE_CMP_VALUE) with `value`. */
void store_txn_compare(store_txn *t, const char *key, store_cmp_target target, store_cmp_op op,
                       int64_t value);
void store_txn_compare_value(store_txn *t, const char *key, store_cmp_op op, const void *value,
                             size_t len);
void store_txn_put(store_txn *t, store_branch b, const char *key, const void *value, size_t len,
                   int64_t lease, unsigned flags);
void store_txn_get(store_txn *t, store_branch b, const char *key, const char *range_end);
void store_txn_delete(store_txn *t, store_branch b, const char *key, const char *range_end,
                      unsigned flags);
size_t store_txn_ops(const store_txn *t);
/* Submits the transaction; `t` stays the caller's (free it whenever). */
int store_txn_commit(store *s, const store_txn *t, store_cb cb, void *userdata);

/* ---- watch: every put and delete under [key, range_end) from `start_revision` (0 = from now),
 * in revision order, each with its revision. A dropped connection or restarted member is
 * reconnected by itself from the last revision delivered, without loss or duplicates.
 *
 * The callback gets batches of events (n > 0), or progress (n == 0, error == 0: everything up to
 * `revision` has been delivered — a bookmark), or a terminal error after which the watch is dead
 * and must be freed: -ERANGE when the revision to resume from has been compacted (relist, then
 * watch again from the list's revision), -EMSGSIZE when one event (or one revision's events)
 * does not fit max_event_line (a backlog larger than that is fine: etcd sends it in fragments),
 * -EBADMSG when a message cannot be read or handed out (a key with an embedded NUL): it would
 * come again on every reconnect, and skipping it would lose an event; -EINVAL when etcd refused
 * the watch at creation (an empty range: key >= range_end; no permission).
 * store_watch_message() then says more.
 * The callback may call store_watch_free() on its own watch, and may run the loop (store_wait):
 * the watch's own stream is then not ended or reopened until the callback has returned. */
typedef enum store_event_type {
    STORE_EVENT_PUT,
    STORE_EVENT_DELETE,
} store_event_type;

typedef struct store_event {
    store_event_type type;
    store_kv kv;       /* for deletes: key and mod_revision (= the delete's revision) */
    store_kv *prev_kv; /* with STORE_WATCH_PREV_KV, when etcd still had it; else NULL */
} store_event;

#define STORE_WATCH_PREV_KV  (1u << 0)
#define STORE_WATCH_PROGRESS (1u << 1) /* ask etcd for progress notifications (bookmarks) */

typedef void (*store_watch_cb)(store_watch *w, const store_event *events, size_t n,
                               int64_t revision, int error, void *userdata);

int store_watch_new(store *s, const char *key, const char *range_end, int64_t start_revision,
                    unsigned flags, store_watch_cb cb, void *userdata, store_watch **ret);
/* Stops the watch; its callback is not called again. Accepts NULL. */
store_watch *store_watch_free(store_watch *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(store_watch *, store_watch_free);
/* After a terminal error: etcd's words on it (a cancel reason, a stream status) or the library's,
 * or NULL. Owned by the watch, valid until it is freed. */
const char *store_watch_message(const store_watch *w);
/* How many times the watch reconnected (for tests and metrics). */
unsigned store_watch_reconnects(const store_watch *w);

/* ---- blocking use, for programs without their own loop (tests, tools, start-up):
 *
 *     store_sync sync = STORE_SYNC_INIT;
 *     store_put(s, "k", "v", 1, 0, 0, store_sync_done, &sync);
 *     _cleanup_(store_result_freep) store_result *r = NULL;
 *     int e = store_wait(s, &sync, &r);    // e == r->error
 *
 * store_wait runs the store's loop until that request is done, so other callbacks on the same
 * loop may run meanwhile. */
typedef struct store_sync {
    bool done;
    store_result *result;
} store_sync;
#define STORE_SYNC_INIT ((store_sync){.done = false, .result = NULL})
void store_sync_done(store_result *r, void *userdata);
int store_wait(store *s, store_sync *sync, store_result **ret);
