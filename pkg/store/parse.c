/* Pure parsers for the etcd JSON gateway: responses, errors, watch messages and line framing.
 * Nothing here touches the network, so all of it is unit-tested and fuzzed. Nothing from the
 * network is trusted: every field is type-checked, 64-bit numbers may come as strings (they do)
 * or numbers, zero values may be absent (they are), and anything else is -EBADMSG. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/b64.h"
#include "store-internal.h"

static const char *const store_kind_paths[_STORE_KIND_MAX] = {
    [STORE_KIND_RANGE] = "/v3/kv/range",
    [STORE_KIND_PUT] = "/v3/kv/put",
    [STORE_KIND_DELETE] = "/v3/kv/deleterange",
    [STORE_KIND_TXN] = "/v3/kv/txn",
    [STORE_KIND_COMPACT] = "/v3/kv/compaction",
    [STORE_KIND_LEASE_GRANT] = "/v3/lease/grant",
    [STORE_KIND_LEASE_KEEPALIVE] = "/v3/lease/keepalive",
    [STORE_KIND_LEASE_REVOKE] = "/v3/lease/revoke",
    [STORE_KIND_LEASE_TTL] = "/v3/lease/timetolive",
    [STORE_KIND_STATUS] = "/v3/maintenance/status",
};

const char *store_kind_path(store_kind k)
{
    return k < _STORE_KIND_MAX ? store_kind_paths[k] : NULL;
}

bool store_kind_idempotent(store_kind k)
{
    switch (k) {
    case STORE_KIND_RANGE:
    case STORE_KIND_LEASE_KEEPALIVE:
    case STORE_KIND_LEASE_TTL:
    case STORE_KIND_STATUS:
        return true;
    default:
        return false;
    }
}

bool store_should_retry(store_kind k, int error, bool not_sent, unsigned tries, size_t n)
{
    if (tries >= n)
        return false;
    if (not_sent || error == -EHOSTDOWN)
        return true;
    return (error == -ETIMEDOUT || error == -ECONNRESET) && store_kind_idempotent(k) && n > 1;
}

int store_result_fail(store_result *r, int error)
{
    int64_t rev = r->revision;
    store_result_clear(r);
    r->revision = rev;
    r->error = error;
    if (error == -ETIME)
        r->message = xstrdup("lease expired or not found");
    return error;
}

void store_kv_clear(store_kv *kv)
{
    if (!kv)
        return;
    free(kv->key);
    free(kv->value);
    *kv = (store_kv){0};
}

void store_result_clear(store_result *r)
{
    if (!r)
        return;
    free(r->message);
    for (size_t i = 0; i < r->n_kvs; i++)
        store_kv_clear(&r->kvs[i]);
    free(r->kvs);
    for (size_t i = 0; i < r->n_responses; i++)
        store_result_clear(&r->responses[i]);
    free(r->responses);
    *r = (store_result){0};
}

void store_result_free(store_result *r)
{
    store_result_clear(r);
    free(r);
}

int store_json_int64(json_t *v, int64_t *ret)
{
    if (!v) {
        *ret = 0;
        return 0;
    }
    if (json_is_integer(v)) {
        *ret = json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return -EBADMSG;
    const char *s = json_string_value(v);
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -EBADMSG;
    *ret = n;
    return 0;
}

static int json_bool_field(json_t *o, const char *name, bool *ret)
{
    json_t *v = json_object_get(o, name);
    if (!v) {
        *ret = false;
        return 0;
    }
    if (!json_is_boolean(v))
        return -EBADMSG;
    *ret = json_is_true(v);
    return 0;
}

static int json_b64_field(json_t *o, const char *name, char **ret, size_t *ret_len)
{
    json_t *v = json_object_get(o, name);
    if (!v) {
        *ret = xstrdup("");
        *ret_len = 0;
        return 0;
    }
    if (!json_is_string(v))
        return -EBADMSG;
    return b64_decode(json_string_value(v), json_string_length(v), ret, ret_len) < 0 ? -EBADMSG : 0;
}

int store_parse_kv(json_t *o, store_kv *ret)
{
    if (!json_is_object(o))
        return -EBADMSG;
    store_kv kv = {0};
    if (!json_object_get(o, "key") || json_b64_field(o, "key", &kv.key, &kv.key_len) < 0 ||
        json_b64_field(o, "value", &kv.value, &kv.value_len) < 0 ||
        store_json_int64(json_object_get(o, "create_revision"), &kv.create_revision) < 0 ||
        store_json_int64(json_object_get(o, "mod_revision"), &kv.mod_revision) < 0 ||
        store_json_int64(json_object_get(o, "version"), &kv.version) < 0 ||
        store_json_int64(json_object_get(o, "lease"), &kv.lease) < 0) {
        store_kv_clear(&kv);
        return -EBADMSG;
    }
    /* Keys are handed out as C strings; an embedded NUL would silently truncate one. */
    if (strlen(kv.key) != kv.key_len) {
        store_kv_clear(&kv);
        return -EBADMSG;
    }
    *ret = kv;
    return 0;
}

static int parse_kv_array(json_t *arr, store_result *r)
{
    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return -EBADMSG;
    size_t n = json_array_size(arr);
    r->kvs = xnew(store_kv, n);
    for (size_t i = 0; i < n; i++) {
        if (store_parse_kv(json_array_get(arr, i), &r->kvs[i]) < 0)
            return -EBADMSG;
        r->n_kvs = i + 1;
    }
    return 0;
}

static int parse_header(json_t *root, store_result *r)
{
    json_t *h = json_object_get(root, "header");
    if (!json_is_object(h))
        return -EBADMSG;
    return store_json_int64(json_object_get(h, "revision"), &r->revision);
}

static int parse_range_body(json_t *o, store_result *r)
{
    if (parse_kv_array(json_object_get(o, "kvs"), r) < 0 ||
        json_bool_field(o, "more", &r->more) < 0 ||
        store_json_int64(json_object_get(o, "count"), &r->count) < 0)
        return -EBADMSG;
    return 0;
}

static int parse_put_body(json_t *o, store_result *r)
{
    json_t *prev = json_object_get(o, "prev_kv");
    if (!prev)
        return 0;
    r->kvs = xnew(store_kv, 1);
    if (store_parse_kv(prev, &r->kvs[0]) < 0)
        return -EBADMSG;
    r->n_kvs = 1;
    return 0;
}

static int parse_delete_body(json_t *o, store_result *r)
{
    if (store_json_int64(json_object_get(o, "deleted"), &r->deleted) < 0 || r->deleted < 0 ||
        parse_kv_array(json_object_get(o, "prev_kvs"), r) < 0)
        return -EBADMSG;
    return 0;
}

static int parse_txn_body(json_t *o, store_result *r)
{
    if (json_bool_field(o, "succeeded", &r->succeeded) < 0)
        return -EBADMSG;
    json_t *arr = json_object_get(o, "responses");
    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return -EBADMSG;
    size_t n = json_array_size(arr);
    r->responses = xnew(store_result, n);
    for (size_t i = 0; i < n; i++) {
        json_t *op = json_array_get(arr, i), *body;
        store_result *sub = &r->responses[i];
        r->n_responses = i + 1;
        sub->revision = r->revision;
        if (!json_is_object(op))
            return -EBADMSG;
        if ((body = json_object_get(op, "response_range"))) {
            if (!json_is_object(body) || parse_range_body(body, sub) < 0)
                return -EBADMSG;
        } else if ((body = json_object_get(op, "response_put"))) {
            if (!json_is_object(body) || parse_put_body(body, sub) < 0)
                return -EBADMSG;
        } else if ((body = json_object_get(op, "response_delete_range"))) {
            if (!json_is_object(body) || parse_delete_body(body, sub) < 0)
                return -EBADMSG;
        } else
            return -EBADMSG;
    }
    return 0;
}

static int parse_lease_body(store_kind k, json_t *o, store_result *r)
{
    json_t *ttl = json_object_get(o, "TTL");
    if (store_json_int64(json_object_get(o, "ID"), &r->lease_id) < 0 ||
        store_json_int64(ttl, &r->ttl) < 0)
        return -EBADMSG;
    /* An expired lease: keepalive answers 200 without a TTL, timetolive with TTL -1. */
    if ((k == STORE_KIND_LEASE_KEEPALIVE && (!ttl || r->ttl <= 0)) ||
        (k == STORE_KIND_LEASE_TTL && r->ttl < 0))
        return -ETIME;
    return 0;
}

static int parse_response_root(store_kind k, json_t *root, store_result *r)
{
    if (!json_is_object(root))
        return -EBADMSG;
    /* The keepalive stream endpoint wraps its answer in "result". */
    if (k == STORE_KIND_LEASE_KEEPALIVE) {
        json_t *inner = json_object_get(root, "result");
        if (!json_is_object(inner))
            return -EBADMSG;
        root = inner;
    }
    if (parse_header(root, r) < 0)
        return -EBADMSG;
    switch (k) {
    case STORE_KIND_RANGE:
        return parse_range_body(root, r);
    case STORE_KIND_PUT:
        return parse_put_body(root, r);
    case STORE_KIND_DELETE:
        return parse_delete_body(root, r);
    case STORE_KIND_TXN:
        return parse_txn_body(root, r);
    case STORE_KIND_LEASE_GRANT:
    case STORE_KIND_LEASE_KEEPALIVE:
    case STORE_KIND_LEASE_TTL:
        return parse_lease_body(k, root, r);
    case STORE_KIND_COMPACT:
    case STORE_KIND_LEASE_REVOKE:
    case STORE_KIND_STATUS:
        return 0;
    default:
        return -EBADMSG;
    }
}

int store_parse_response(store_kind k, const char *body, size_t len, store_result *r)
{
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    int e = root ? parse_response_root(k, root, r) : -EBADMSG;
    json_decref(root);
    return e < 0 ? store_result_fail(r, e) : e;
}

int store_error_from_etcd(int grpc_code, const char *message)
{
    static const struct {
        const char *needle;
        int error;
    } by_message[] = {
        {"required revision has been compacted", -ERANGE},
        {"requested lease not found", -ETIME},
        {"request is too large", -EMSGSIZE},
        {"too many operations in txn request", -E2BIG},
        /* Refused before proposing (apply lags commit): nothing applied, try later. */
        {"too many requests", -EHOSTDOWN},
        /* Returned after the proposal went to raft: it may still commit. */
        {"server stopped", -ECONNRESET},
        {"no leader", -EHOSTDOWN},
        {"leader changed", -EHOSTDOWN},
        {"not capable", -EHOSTDOWN},
        {"request timed out", -ETIMEDOUT},
    };
    for (size_t i = 0; message && i < ELEMENTSOF(by_message); i++)
        if (strstr(message, by_message[i].needle))
            return by_message[i].error;
    switch (grpc_code) {
    case 3:  /* INVALID_ARGUMENT */
    case 9:  /* FAILED_PRECONDITION */
    case 11: /* OUT_OF_RANGE (a future revision) */
        return -EINVAL;
    case 4: /* DEADLINE_EXCEEDED */
        return -ETIMEDOUT;
    case 5: /* NOT_FOUND */
        return -ENOENT;
    case 8: /* RESOURCE_EXHAUSTED */
        return -EMSGSIZE;
    case 14: /* UNAVAILABLE */
        return -EHOSTDOWN;
    default:
        return -EPROTO;
    }
}

int store_parse_error(long http_status, const char *body, size_t len, store_result *r)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *code = json_object_get(root, "code");
    json_t *msg = json_object_get(root, "message");
    if (!json_is_string(msg))
        msg = json_object_get(root, "error");
    int e;
    if (json_is_integer(code) && json_is_string(msg)) {
        e = store_error_from_etcd((int)json_integer_value(code), json_string_value(msg));
        r->message = xstrdup(json_string_value(msg));
    } else {
        /* Not the gateway's error shape: a proxy, or a member still starting. */
        e = http_status >= 500 ? -EHOSTDOWN : -EPROTO;
        r->message = xasprintf("HTTP %ld from etcd gateway", http_status);
    }
    json_decref(root);
    r->error = e;
    return e;
}

void store_result_shape(store_result *r, store_shape shape)
{
    if (r->error)
        return;
    switch (shape) {
    case STORE_SHAPE_PLAIN:
        return;
    case STORE_SHAPE_GET:
        if (r->n_kvs == 0)
            r->error = -ENOENT;
        return;
    case STORE_SHAPE_DELETE:
        if (!r->responses) {
            if (r->deleted == 0)
                r->error = -ENOENT;
            return;
        }
        /* A conditional delete is a CAS transaction. */
        _fallthrough_;
    case STORE_SHAPE_CREATE:
    case STORE_SHAPE_CAS: {
        /* The failure branch holds one range of the key: hand its kvs to the caller. */
        store_result *sub = r->n_responses > 0 ? &r->responses[0] : NULL;
        if (r->succeeded) {
            if (shape == STORE_SHAPE_DELETE && sub && sub->deleted == 0)
                r->error = -ENOENT;
            return;
        }
        if (sub && sub->n_kvs) {
            r->kvs = TAKE_PTR(sub->kvs);
            r->n_kvs = sub->n_kvs;
            sub->n_kvs = 0;
        }
        r->error = shape == STORE_SHAPE_CREATE ? -EEXIST : r->n_kvs ? -ESTALE : -ENOENT;
        return;
    }
    }
}

void store_event_clear(store_event *ev)
{
    store_kv_clear(&ev->kv);
    if (ev->prev_kv) {
        store_kv_clear(ev->prev_kv);
        free(ev->prev_kv);
    }
    *ev = (store_event){0};
}

void store_watch_msg_clear(store_watch_msg *m)
{
    for (size_t i = 0; i < m->n_events; i++)
        store_event_clear(&m->events[i]);
    free(m->events);
    free(m->cancel_reason);
    *m = (store_watch_msg){0};
}

static int parse_event(json_t *e, store_event *ret)
{
    if (!json_is_object(e))
        return -EBADMSG;
    json_t *type = json_object_get(e, "type");
    store_event ev = {.type = STORE_EVENT_PUT};
    if (type) {
        if (!json_is_string(type))
            return -EBADMSG;
        if (streq(json_string_value(type), "DELETE"))
            ev.type = STORE_EVENT_DELETE;
        else if (!streq(json_string_value(type), "PUT"))
            return -EBADMSG;
    }
    if (store_parse_kv(json_object_get(e, "kv"), &ev.kv) < 0)
        return -EBADMSG;
    json_t *prev = json_object_get(e, "prev_kv");
    if (prev) {
        ev.prev_kv = xnew(store_kv, 1);
        if (store_parse_kv(prev, ev.prev_kv) < 0) {
            store_kv_clear(&ev.kv);
            free(ev.prev_kv);
            return -EBADMSG;
        }
    }
    *ret = ev;
    return 0;
}

static int parse_watch_root(json_t *root, store_watch_msg *m)
{
    if (!json_is_object(root))
        return -EBADMSG;
    json_t *err = json_object_get(root, "error");
    if (err) {
        /* grpc-gateway reports a failed stream in-band: {"error":{"grpc_code":…,"message":…}} */
        json_t *code = json_object_get(err, "grpc_code");
        json_t *msg = json_object_get(err, "message");
        m->error = store_error_from_etcd(json_is_integer(code) ? (int)json_integer_value(code) : 2,
                                         json_is_string(msg) ? json_string_value(msg) : NULL);
        return 0;
    }
    json_t *res = json_object_get(root, "result");
    if (!json_is_object(res))
        return -EBADMSG;
    json_t *h = json_object_get(res, "header");
    if (h &&
        (!json_is_object(h) || store_json_int64(json_object_get(h, "revision"), &m->revision) < 0))
        return -EBADMSG;
    if (json_bool_field(res, "created", &m->created) < 0 ||
        json_bool_field(res, "canceled", &m->canceled) < 0 ||
        json_bool_field(res, "fragment", &m->fragment) < 0 ||
        store_json_int64(json_object_get(res, "compact_revision"), &m->compact_revision) < 0)
        return -EBADMSG;
    json_t *reason = json_object_get(res, "cancel_reason");
    if (reason) {
        if (!json_is_string(reason))
            return -EBADMSG;
        m->cancel_reason = xstrdup(json_string_value(reason));
    }
    json_t *events = json_object_get(res, "events");
    if (!events)
        return 0;
    if (!json_is_array(events))
        return -EBADMSG;
    size_t n = json_array_size(events);
    m->events = xnew(store_event, n);
    int64_t last = 0;
    for (size_t i = 0; i < n; i++) {
        if (parse_event(json_array_get(events, i), &m->events[i]) < 0)
            return -EBADMSG;
        m->n_events = i + 1;
        /* Revision order is what the callers rely on; a peer that breaks it is broken. */
        if (m->events[i].kv.mod_revision < last)
            return -EBADMSG;
        last = m->events[i].kv.mod_revision;
    }
    return 0;
}

int store_parse_watch_msg(const char *line, size_t len, store_watch_msg *ret)
{
    store_watch_msg m = {0};
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    int e = root ? parse_watch_root(root, &m) : -EBADMSG;
    json_decref(root);
    if (e < 0) {
        store_watch_msg_clear(&m);
        return e;
    }
    *ret = m;
    return 0;
}

int store_frame_lines(buf *b, const char *data, size_t len,
                      int (*line)(const char *l, size_t n, void *userdata), void *userdata)
{
    /* Only the unfinished tail is ever copied: complete lines are handed over in place. */
    size_t start = 0;
    if (b->len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        int r = buf_append(b, data, take);
        if (r < 0)
            return r;
        if (!nl)
            return 0;
        r = line(b->data, b->len, userdata);
        buf_reset(b);
        if (r < 0)
            return r;
        start = take + 1;
    }
    while (start < len) {
        const char *nl = memchr(data + start, '\n', len - start);
        if (!nl)
            return buf_append(b, data + start, len - start);
        size_t n = (size_t)(nl - (data + start));
        if (b->max && n > b->max)
            return -EMSGSIZE;
        if (n > 0) {
            int r = line(data + start, n, userdata);
            if (r < 0)
                return r;
        }
        start += n + 1;
    }
    return 0;
}
