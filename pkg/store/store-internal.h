/* Internals of pkg/store shared by its files: the response kinds, the pure parsers (unit-tested
 * and fuzzed without a network), and the request engine's entry point. Not for other modules. */
#pragma once

#include <jansson.h>

#include "base/buf.h"
#include "store.h"

/* What a gateway path answers, which decides how its 200 body is parsed. */
typedef enum store_kind {
    STORE_KIND_RANGE,
    STORE_KIND_PUT,
    STORE_KIND_DELETE,
    STORE_KIND_TXN,
    STORE_KIND_COMPACT,
    STORE_KIND_LEASE_GRANT,
    STORE_KIND_LEASE_KEEPALIVE,
    STORE_KIND_LEASE_REVOKE,
    STORE_KIND_LEASE_TTL,
    STORE_KIND_STATUS,
    _STORE_KIND_MAX,
} store_kind;

/* How a finished transaction is turned into the caller's result (create/update/delete are
 * transactions underneath, whose failure branch reads the key's current value). */
typedef enum store_shape {
    STORE_SHAPE_PLAIN,  /* the result as etcd sent it */
    STORE_SHAPE_GET,    /* a range of one key: -ENOENT when empty */
    STORE_SHAPE_CREATE, /* txn: failed compare → -EEXIST + current kv */
    STORE_SHAPE_CAS,    /* txn: failed compare → -ESTALE + current kv, or -ENOENT */
    STORE_SHAPE_DELETE, /* delete: nothing deleted → -ENOENT; via txn like CAS when conditional */
} store_shape;

const char *store_kind_path(store_kind k);
/* Whether repeating the request after an unknown outcome is harmless. */
bool store_kind_idempotent(store_kind k);

/* Whether a failed attempt (the `tries`-th) goes to the next of n endpoints: at once when it never
 * reached a member or etcd answered "unavailable" (nothing applied); after an unknown outcome
 * (-ETIMEDOUT, -ECONNRESET) only when repeating it is harmless. Each member is tried once. */
bool store_should_retry(store_kind k, int error, bool not_sent, unsigned tries, size_t n);
/* After an attempt on `*endpoint` failed with `error`: moves the store's first choice on when the
 * member looks unavailable, and says whether to try again, on the next member (written to
 * *endpoint). A timed-out attempt used the request's time, and one without `time_left` has
 * none: neither goes elsewhere. Both engines decide here. */
bool store_failover(store *s, size_t *endpoint, store_kind k, int error, bool not_sent,
                    unsigned tries, bool time_left);
/* Empties a result that failed half-way (it must not reach the caller half-filled), keeping its
 * revision, and sets its error. Returns error. */
int store_result_fail(store_result *r, int error);

/* Parses a 200 response body of kind `k` into r (which must be zeroed). Returns 0 or -EBADMSG
 * (r->error set to the same), or the lease errors for keepalive/timetolive. */
int store_parse_response(store_kind k, const char *body, size_t len, store_result *r);
/* Parses a non-200 gateway answer ({"error","code","message"}) and maps it to an error code,
 * also stored in r->error with etcd's message in r->message. */
int store_parse_error(long http_status, const char *body, size_t len, store_result *r);
/* Maps an etcd/gRPC status code and message to one of store.h's codes. */
int store_error_from_etcd(int grpc_code, const char *message);
/* Applies the shape's rules to a parsed result (e.g. failed create → -EEXIST). */
void store_result_shape(store_result *r, store_shape shape);

/* JSON helpers of the gateway's parsers. */
int store_json_int64(json_t *v, int64_t *ret); /* accepts "12" and 12; missing → 0 */
int store_parse_kv(json_t *o, store_kv *ret);

/* ---- requests, described once for both engines (ops.c builds them, each engine encodes them:
 * gateway-request.c to JSON, grpc-convert.c to protobuf). A description borrows its bytes from
 * its caller; an engine encodes it before store_submit() returns. */

/* Raw bytes. An empty field (len 0) is not sent: etcd reads it as absent. */
typedef struct store_bytes {
    const void *data;
    size_t len;
} store_bytes;

typedef struct store_range_req {
    store_bytes key;
    store_bytes range_end; /* empty: the one key */
    int64_t limit, revision;
    bool keys_only, count_only, serializable;
} store_range_req;

typedef struct store_put_req {
    store_bytes key, value;
    int64_t lease;
    bool prev_kv, ignore_lease;
} store_put_req;

typedef struct store_delete_req {
    store_bytes key, range_end;
    bool prev_kv;
} store_delete_req;

typedef struct store_compare {
    store_bytes key;
    store_cmp_target target;
    store_cmp_op op;
    int64_t number;    /* version, create or mod revision, lease */
    store_bytes value; /* STORE_CMP_VALUE */
} store_compare;

/* One operation of a transaction's branch: kind is RANGE, PUT or DELETE. */
typedef struct store_op {
    store_kind kind;
    union {
        store_range_req range;
        store_put_req put;
        store_delete_req del;
    };
} store_op;

typedef struct store_txn_req {
    const store_compare *compare;
    size_t n_compare;
    const store_op *success;
    size_t n_success;
    const store_op *failure;
    size_t n_failure;
} store_txn_req;

typedef struct store_request {
    store_kind kind;
    union {
        store_range_req range;
        store_put_req put;
        store_delete_req del;
        store_txn_req txn;
        struct {
            int64_t revision;
            bool physical;
        } compact;
        int64_t ttl;      /* lease grant */
        int64_t lease_id; /* keepalive, revoke, time-to-live */
    };
} store_request;

/* A watch stream's create request. */
typedef struct store_watch_req {
    store_bytes key, range_end;
    int64_t start_revision; /* 0: from now */
    bool prev_kv, progress_notify;
    bool fragment; /* etcd may split a response over its request size limit into fragments */
} store_watch_req;

/* A range end as etcd reads it: "" means "to the end of the keyspace", sent as one 0 byte. */
store_bytes store_range_end(const char *range_end);
/* What store_range() sends for `o` (paging included); borrows o's strings. */
store_range_req store_range_request(const store_range_opts *o);
/* A transaction's description; borrows t's arrays. */
store_txn_req store_txn_request(const store_txn *t);
/* The create request of w's next stream (from w->next_rev); borrows w's strings. */
store_watch_req store_watch_request(const store_watch *w);

/* The gateway's JSON bodies (gateway-request.c): bytes as base64, 64-bit numbers as strings,
 * zero fields left out. The caller owns the object; NULL for a kind the gateway has no body for. */
json_t *store_gateway_request(const store_request *r);
json_t *store_gateway_watch_request(const store_watch_req *w);

/* ---- watch stream framing: the gateway sends one JSON document per line. */
typedef struct store_watch_msg {
    bool created;
    bool canceled;
    bool fragment; /* more of the same response follows */
    int64_t compact_revision;
    int64_t revision; /* header revision */
    char *cancel_reason;
    int error; /* an in-stream {"error":…} */
    store_event *events;
    size_t n_events;
} store_watch_msg;

void store_watch_msg_clear(store_watch_msg *m);
void store_event_clear(store_event *ev);
/* Parses one line. Returns 0 or -EBADMSG. */
int store_parse_watch_msg(const char *line, size_t len, store_watch_msg *ret);

/* Splits a byte stream into lines: appends `data` to `b`, then calls `line` for every complete
 * line (without the '\n'); the unfinished rest stays in `b`. Stops early and returns the first
 * negative value `line` returns; -EMSGSIZE when an unfinished line passes b->max. */
int store_frame_lines(buf *b, const char *data, size_t len,
                      int (*line)(const char *l, size_t n, void *userdata), void *userdata);
