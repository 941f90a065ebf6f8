/* Internals of pkg/apiserver shared by its files. Not for other modules.
 *
 * Threads: gRPC's completion-queue threads only hand calls over. Unary calls go to a pool of
 * worker threads, each owning a store on a private libev loop, so a handler is sequential code
 * (read, decide, compare-and-swap, retry on conflict) and blocks only its own worker. Watch
 * calls go to the watch cache's thread (watchcache.c), which owns the one etcd watch and every
 * watcher. What workers share is a cache and a courtesy, never the truth, which is in etcd: the
 * recent values (recent.c, what writes start from) and the set of nodes Bind rounds hold. */
#pragma once

#include <jansson.h>
#include <pthread.h>

#include "api/error.h"
#include "api/kind.h"
#include "api/object.h"
#include "apiserver/apiserver.h"
#include "rpc/server.h"
#include "store/store.h"

#define APISERVER_FINALIZER      "stratus.io/node-agent"
#define APISERVER_CAS_RETRIES    16
#define APISERVER_LIST_DEFAULT   500       /* items per List page when the client sets no limit */
#define APISERVER_LIST_MAX       10000     /* the most a client may ask for in one page */
#define APISERVER_BIND_BATCH_MAX 1000      /* bindings in one Bind call */
#define APISERVER_TXN_INSTANCES  40        /* a node's instances in one round of a Bind call */
#define APISERVER_TXN_OPS        128       /* etcd's --max-txn-ops default: compares, ops each */
#define APISERVER_TXN_BYTES      (1 << 20) /* values in one transaction; etcd takes ~1.5 MiB */

typedef struct watchcache watchcache;
typedef struct recent recent;

typedef struct worker {
    struct apiserver *srv;
    pthread_t thread;
    struct ev_loop *loop;
    store *st;
    /* This request may start a read-modify-write from the recent values (read_for_update);
     * cleared for the rest of the request once a guess proved stale or must be confirmed. */
    bool guess_ok;
} worker;

typedef struct job {
    struct job *next;
    rpc_call *call;
    rpc_method method;
    const ProtobufCMessage *request;
} job;

struct apiserver {
    apiserver_options opts;
    rpc_server *rpc;
    watchcache *wc;
    recent *recent;
    worker *workers;
    size_t n_workers;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    job *head, *tail;
    size_t queued;
    bool stopping;

    /* Nodes whose allocation ledger a Bind round of this process is deciding and writing (bind.c),
     * as a set of names. Another round leaves those nodes' bindings for later instead of racing
     * on the ledger's revision; correctness never depends on it (the transaction's compare does
     * that, and other apiservers are not in it). */
    pthread_mutex_t holds_lock;
    pthread_cond_t holds_cond;
    json_t *holds;

    /* compaction and health */
    pthread_t cron;
    pthread_mutex_t cron_lock;
    pthread_cond_t cron_cond;
    bool cron_stop; /* under cron_lock */
};

/* An error for the client: a gRPC code and a message a person can act on. */
typedef struct apierr {
    rpc_code code;
    char message[RPC_MESSAGE_MAX];
} apierr;

int apierr_set(apierr *e, rpc_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps a store error for the object `what` ("instances \"web\"") and returns -1. */
int apierr_store(apierr *e, int error, const char *what);
/* INVALID_ARGUMENT with "path: message". */
int apierr_invalid(apierr *e, const api_error *ae);
void reply_error(rpc_call *call, const apierr *e);

/* Blocking store calls on a worker's private loop. Same returns as the async ones. */
int sx_get(worker *w, const char *key, store_result **ret);
int sx_range(worker *w, const store_range_opts *o, store_result **ret);
int sx_txn(worker *w, const store_txn *t, store_result **ret);
int sx_update(worker *w, const char *key, const char *value, int64_t mod_revision,
              store_result **ret);
int sx_create(worker *w, const char *key, const char *value, store_result **ret);
int sx_delete(worker *w, const char *key, int64_t mod_revision, store_result **ret);

/* Parses a stored object and sets metadata.resourceVersion to its mod_revision. NULL when the
 * stored value is not a JSON object (it never is, but etcd is not trusted). */
json_t *object_from_kv(const store_kv *kv);
/* The text stored in etcd: canonical JSON without metadata.resourceVersion. malloc'd. */
char *object_to_store(const json_t *obj);
/* From text = object_to_store(obj), the canonical JSON of obj with metadata.resourceVersion rev,
 * without dumping obj again (resourceVersion spliced into metadata where the sort puts it).
 * malloc'd; NULL when text is not shaped as expected (no metadata object, a key with an escape):
 * dump the object then. Only for text the apiserver made itself: other text need not be
 * canonical. */
char *object_text_with_resource_version(const char *text, size_t len, int64_t rev);
/* Reads the object at key: 0 and *ret (with *ret_rev its mod_revision), or -ENOENT. */
int object_read(worker *w, const char *key, json_t **ret, int64_t *ret_rev, apierr *e);

/* Reads for a read-modify-write: from the recent values when they hold the key and the request
 * may still guess (w->guess_ok), else from etcd. *ret_guessed says which. A guessed object may
 * only lead to a write guarded by *ret_rev (a compare-and-swap): an error, or a reply without a
 * write, must be decided again on a fresh read — call guess_refused(w) and retry. -ENOENT is only
 * ever returned from etcd. */
int read_for_update(worker *w, const char *key, json_t **ret, int64_t *ret_rev, bool *ret_guessed,
                    apierr *e);
/* The same, except that a key the recent values do not hold is guessed absent (-ENOENT with
 * *ret_guessed): for Apply, whose create compares that the key does not exist. */
int read_for_apply(worker *w, const char *key, json_t **ret, int64_t *ret_rev, bool *ret_guessed,
                   apierr *e);
/* The same for a ledger (its compare in the write's transaction guards the guess): 1 when
 * guessed, 0 when read from etcd (*ret NULL: the key does not exist), or -1 with e filled.
 * *ret_owner holds *ret; free it with store_result_free. *ret_parsed: the guessed value parsed
 * when the recent values hold it (shared: ledger_parse_shared copies it), else NULL. */
int ledger_read(worker *w, const char *key, store_kv **ret, store_result **ret_owner,
                json_t **ret_parsed, apierr *e);
/* No more guesses in this request (a guess must be confirmed, or proved stale). */
static inline void guess_refused(worker *w)
{
    w->guess_ok = false;
}
/* After a write: what etcd now holds at key (value NULL: deleted), for the next guess. */
void recent_note(worker *w, const char *key, const char *value, int64_t rev);
/* The same for an object written as text (object_to_store(obj)): sets obj's
 * metadata.resourceVersion to rev and shares obj as the value parsed. obj's top level and
 * metadata must be the caller's own; after this, nobody may change obj or anything it holds. */
void recent_note_object(worker *w, const char *key, const char *text, json_t *obj, int64_t rev);
/* The same for every [key, text or null], [key, text, parsed] or [key, text, obj, true] of
 * `writes` (collected by ledger_commit and the callers of the *_release / ipam_allocate
 * functions, and by Bind and Unbind for instances), made by one transaction at rev: an API object
 * (marked by the fourth member, true) as recent_note_object, a ledger's document as it is. Not
 * told apart by their content: a ledger someone wrote with a "metadata" member is still a
 * ledger. What is shared is never changed after. */
void recent_note_writes(worker *w, const json_t *writes, int64_t rev);
/* After a compare-and-swap lost: the current value a guarded write read back (r->kvs), or, when
 * it did not, no more guesses in this request. */
void recent_note_stale(worker *w, const char *key, const store_result *r);

/* The recent values themselves (recent.c). Thread-safe. */
recent *recent_new(size_t max_bytes);
recent *recent_free(recent *r);
/* value NULL: deleted at rev. A revision older than the one known is ignored. */
void recent_put(recent *r, const char *key, const char *value, size_t len, int64_t rev);
/* The same, with the value parsed (may be NULL): for an object key what object_from_kv makes of
 * it (metadata.resourceVersion = rev), for a ledger the document. Takes a new reference: from now
 * on parsed is shared with other threads and nobody may change it, nor anything it holds. At the
 * revision already known, only adds the parsed form (the value is the same). */
void recent_put_parsed(recent *r, const char *key, const char *value, size_t len, int64_t rev,
                       json_t *parsed);
/* The same for an object the apiserver wrote: value is exactly object_to_store(obj), which lets
 * the watch cache make the event's text from it (object_text_with_resource_version). */
void recent_put_written(recent *r, const char *key, const char *value, size_t len, int64_t rev,
                        json_t *obj);
/* 0 with a malloc'd, NUL-terminated copy and its revision; -ENOENT when not known or deleted;
 * -EFBIG when it exists but was too big to keep (a quarter of the bound). */
int recent_get(recent *r, const char *key, char **ret_value, size_t *ret_len, int64_t *ret_rev);
/* The same, and when ret_parsed is not NULL, a new reference to the value parsed if it is held
 * (else NULL): shared, never to be changed; copy what you change. */
int recent_get_parsed(recent *r, const char *key, char **ret_value, size_t *ret_len,
                      int64_t *ret_rev, json_t **ret_parsed);
/* Gives the value held for key at exactly revision rev its parsed form (as recent_put_parsed),
 * when it lacks one; does nothing otherwise (what is noted as the newest value is unchanged). */
void recent_attach(recent *r, const char *key, int64_t rev, json_t *parsed);
/* A new reference to key's value parsed when it is held for exactly revision rev; else NULL.
 * Shared, never to be changed. *ret_written (may be NULL): it came with recent_put_written. */
json_t *recent_parsed_at(recent *r, const char *key, int64_t rev, bool *ret_written);
/* Forgets everything: after a gap in what fed it (the watch lost history). */
void recent_clear(recent *r);
typedef struct recent_counts {
    size_t keys, bytes;
    uint64_t hits, misses;
    size_t parsed, parsed_bytes; /* values held parsed too, and what they are counted as */
    uint64_t parsed_hits;
} recent_counts;
void recent_stats(recent *r, recent_counts *ret);
/* "instances \"default/web\"" for messages. */
void object_describe(const api_kind_info *k, const char *ns, const char *name, char *out,
                     size_t size);
/* Resolves kind/namespace/name from a request into a kind and key; namespaces default to
 * "default" for namespaced kinds. Returns 0, or -1 with e filled. */
int request_key(const char *kind, const char *ns, const char *name, const api_kind_info **ret_kind,
                char **ret_key, apierr *e);
void object_set_condition(json_t *obj, const char *type, const char *status, const char *reason,
                          const char *message);
void json_set_timestamp(json_t *o, const char *field);
/* A random UUID (version 4) as text. */
void uuid_random(char out[37]);
/* Parses "123" into *ret; "" means 0. Returns 0 or -1 with e filled (naming `field`). */
int parse_revision(const char *text, const char *field, int64_t *ret, apierr *e);
bool json_strv_contains(const json_t *arr, const char *s);

/* Handlers: each ends its call exactly once. */
void handle_apply(worker *w, rpc_call *call, const ProtobufCMessage *req);
void handle_get(worker *w, rpc_call *call, const ProtobufCMessage *req);
void handle_list(worker *w, rpc_call *call, const ProtobufCMessage *req);
void handle_delete(worker *w, rpc_call *call, const ProtobufCMessage *req);
void handle_update_status(worker *w, rpc_call *call, const ProtobufCMessage *req);
void handle_bind(worker *w, rpc_call *call, const ProtobufCMessage *req);
void handle_unbind(worker *w, rpc_call *call, const ProtobufCMessage *req);
void handle_renew_lease(worker *w, rpc_call *call, const ProtobufCMessage *req);
void handle_health(worker *w, rpc_call *call, const ProtobufCMessage *req);

/* Final deletion: removes the object and, for instances, releases its allocation, server-group
 * membership and IP addresses, all in one transaction guarded by the object's mod_revision.
 * Returns 0, -ESTALE when something changed meanwhile (re-read and retry), or another error. */
int object_finalize(worker *w, const api_kind_info *k, const char *key, const json_t *obj,
                    int64_t rev, apierr *e);

/* IPAM (ipam.c): allocate the addresses of a new instance into `t` (compares and puts on each
 * network's ledger) and record them in obj's status.addresses; release them into `t`. */
int ipam_allocate(worker *w, store_txn *t, json_t *obj, json_t *writes, apierr *e);
int ipam_release(worker *w, store_txn *t, const json_t *obj, json_t *writes, apierr *e);

/* Allocation ledger (bind.c): release an instance's claim on its node into `t`. */
int ledger_release(worker *w, store_txn *t, const json_t *obj, json_t *writes, apierr *e);

/* A ledger (bind.c; used by ipam.c too): a JSON document {"<member>": {...}} under one key that
 * only the apiserver writes, always in the transaction that changes what it records, guarded by
 * the mod_revision it was read at (create_revision == 0 when it did not exist). */
typedef struct ledger {
    char *key;
    json_t *doc;
    json_t *map;  /* doc's member, borrowed */
    int64_t rev;  /* 0: the key did not exist */
    bool changed; /* map was modified since it was read */
    bool guessed; /* read from the recent values: committed with its compare even unchanged */
} ledger;
/* Reads key; a missing key gives an empty map. Returns 0, or -1 with e filled. */
int ledger_load(worker *w, const char *key, const char *member, ledger *ret, apierr *e);
/* The same from the recent values when the request may guess (read_for_update): only for a
 * ledger the caller changes in a transaction guarded by it, and never to refuse something. */
int ledger_load_guess(worker *w, const char *key, const char *member, ledger *ret, apierr *e);
/* The same from a key-value already read (NULL: the key does not exist). */
int ledger_parse(const char *key, const store_kv *kv, const char *member, ledger *ret, apierr *e);
/* The same, taking kv's value parsed instead when `parsed` is not NULL (the recent values' shared
 * document, left unchanged: the ledger gets copies of the document and its map). */
int ledger_parse_shared(const char *key, const store_kv *kv, const json_t *parsed,
                        const char *member, ledger *ret, apierr *e);
/* When changed: adds to t the compare on the revision it was read at, and a put of the document
 * (a delete when the map is empty), noted in `writes` (when not NULL) as [key, text] or
 * [key, null] for recent_note_writes once the transaction succeeded. Unchanged: only the compare,
 * and only for a guessed one (what it lacks must really be absent). */
void ledger_commit(store_txn *t, const ledger *l, json_t *writes);
void ledger_clear(ledger *l);

/* The watch cache (watchcache.c). */
int watchcache_new(apiserver *srv, watchcache **ret);
watchcache *watchcache_free(watchcache *wc);
/* Called on a gRPC thread with a Watch call; takes it over. */
void watchcache_submit(watchcache *wc, rpc_call *call, const ProtobufCMessage *req);
