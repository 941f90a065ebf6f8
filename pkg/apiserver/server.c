/* The apiserver's frame: gRPC handlers hand unary calls to a bounded queue served by worker
 * threads (each with its own store on a private loop) and Watch calls to the watch cache; a cron
 * thread compacts etcd's history and keeps the health flag fresh. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "api/conditions.h"
#include "api/parse.h"
#include "base/alloc.h"
#include "internal.h"
#include "stratus/v1/stratus.pb-c.h"

typedef void (*handler_fn)(worker *w, rpc_call *call, const ProtobufCMessage *req);

static const handler_fn handlers[_RPC_METHOD_MAX] = {
    [RPC_METHOD_APPLY] = handle_apply,
    [RPC_METHOD_GET] = handle_get,
    [RPC_METHOD_LIST] = handle_list,
    [RPC_METHOD_DELETE] = handle_delete,
    [RPC_METHOD_UPDATE_STATUS] = handle_update_status,
    [RPC_METHOD_BIND] = handle_bind,
    [RPC_METHOD_UNBIND] = handle_unbind,
    [RPC_METHOD_RENEW_LEASE] = handle_renew_lease,
    [RPC_METHOD_HEALTH] = handle_health,
};

/* ---- errors */

int apierr_set(apierr *e, rpc_code code, const char *fmt, ...)
{
    va_list ap;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -1;
}

int apierr_store(apierr *e, int error, const char *what)
{
    switch (error) {
    case -ENOENT:
        return apierr_set(e, RPC_CODE_NOT_FOUND, "%s not found", what);
    case -EEXIST:
        return apierr_set(e, RPC_CODE_ALREADY_EXISTS, "%s already exists", what);
    case -ESTALE:
        return apierr_set(e, RPC_CODE_ABORTED,
                          "%s was changed by someone else; read it again and retry", what);
    case -ERANGE:
        return apierr_set(e, RPC_CODE_RELIST, "the requested revision was compacted; relist");
    case -EMSGSIZE:
        return apierr_set(e, RPC_CODE_RESOURCE_EXHAUSTED, "%s: too large for etcd", what);
    default:
        if (store_error_is_unavailable(error))
            return apierr_set(e, RPC_CODE_UNAVAILABLE, "etcd is unavailable (%s); retry later",
                              store_strerror(error));
        return apierr_set(e, RPC_CODE_INTERNAL, "etcd: %s", store_strerror(error));
    }
}

int apierr_invalid(apierr *e, const api_error *ae)
{
    _cleanup_free_ char *s = api_error_to_string(ae);
    return apierr_set(e, RPC_CODE_INVALID_ARGUMENT, "%s", s);
}

void reply_error(rpc_call *call, const apierr *e)
{
    rpc_call_reply(call, e->code, e->message, NULL);
}

/* ---- blocking store calls on the worker's loop */

#define SX(w, ret, call)                                                                           \
    ({                                                                                             \
        store_sync _y_ = STORE_SYNC_INIT;                                                          \
        int _r_ = (call);                                                                          \
        _r_ < 0 ? _r_ : store_wait((w)->st, &_y_, (ret));                                          \
    })
#define SYNC_ARGS store_sync_done, &_y_

int sx_get(worker *w, const char *key, store_result **ret)
{
    return SX(w, ret, store_get(w->st, key, SYNC_ARGS));
}

int sx_range(worker *w, const store_range_opts *o, store_result **ret)
{
    return SX(w, ret, store_range(w->st, o, SYNC_ARGS));
}

int sx_txn(worker *w, const store_txn *t, store_result **ret)
{
    return SX(w, ret, store_txn_commit(w->st, t, SYNC_ARGS));
}

int sx_update(worker *w, const char *key, const char *value, int64_t mod_revision,
              store_result **ret)
{
    return SX(w, ret, store_update(w->st, key, value, strlen(value), mod_revision, 0, SYNC_ARGS));
}

int sx_create(worker *w, const char *key, const char *value, store_result **ret)
{
    return SX(w, ret, store_create(w->st, key, value, strlen(value), 0, SYNC_ARGS));
}

int sx_delete(worker *w, const char *key, int64_t mod_revision, store_result **ret)
{
    return SX(w, ret, store_delete(w->st, key, mod_revision, SYNC_ARGS));
}

/* ---- object helpers */

json_t *object_from_kv(const store_kv *kv)
{
    json_t *o = api_json_loadb(kv->value, kv->value_len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    api_object_set_resource_version(o, kv->mod_revision);
    return o;
}

char *object_to_store(const json_t *obj)
{
    /* Shallow copies of the object and its metadata are enough to leave resourceVersion out:
     * everything else is only read (a deep copy was a third of this function's time). */
    const json_t *md = json_object_get(obj, "metadata");
    if (!json_object_get(md, "resourceVersion"))
        return api_json_canonical(obj);
    json_t *copy = json_copy((json_t *)obj), *md_copy = json_copy((json_t *)md);
    json_object_del(md_copy, "resourceVersion");
    json_object_set_new(copy, "metadata", md_copy);
    char *s = api_json_canonical(copy);
    json_decref(copy);
    return s;
}

/* Canonical text is compact: a value starts right where the one before ends. These return the
 * position after the string, or the value, at p; NULL when the text ends first. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\') {
            if (++p == end) /* the escaped character */
                break;
        } else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

static const char *skip_value(const char *p, const char *end)
{
    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p != '{' && *p != '[') {
        while (p < end && *p != ',' && *p != '}' && *p != ']')
            p++;
        return p;
    }
    int depth = 0;
    while (p < end) {
        if (*p == '"') {
            if (!(p = skip_string(p, end)))
                return NULL;
            continue;
        }
        if (*p == '{' || *p == '[')
            depth++;
        else if ((*p == '}' || *p == ']') && --depth == 0)
            return p + 1;
        p++;
    }
    return NULL;
}

char *object_text_with_resource_version(const char *text, size_t len, int64_t rev)
{
    static const char rv_key[] = "resourceVersion";
    const char *p = text, *end = text + len;
    if (p >= end || *p++ != '{')
        return NULL;
    /* The top level's members up to "metadata". */
    for (;;) {
        if (p >= end || *p != '"')
            return NULL;
        const char *key = p + 1, *after = skip_string(p, end);
        if (!after || after >= end || *after != ':')
            return NULL;
        p = after + 1;
        if (after - key - 1 == 8 && memcmp(key, "metadata", 8) == 0)
            break;
        if (!(p = skip_value(p, end)) || p >= end || *p != ',')
            return NULL;
        p++;
    }
    if (p >= end || *p++ != '{')
        return NULL;
    /* Its members, sorted by their bytes (jansson's JSON_SORT_KEYS compares them as memcmp, the
     * shorter first on a tie): resourceVersion goes before the first greater key, or last. A key
     * with an escape would compare as its escaped text: left to the dump, as is a text that holds
     * a resourceVersion already. */
    const char *at = NULL;
    bool empty = p < end && *p == '}';
    while (!at && !empty) {
        if (p >= end || *p != '"')
            return NULL;
        const char *key = p + 1, *after = skip_string(p, end);
        if (!after || after >= end || *after != ':')
            return NULL;
        size_t klen = (size_t)(after - key - 1);
        if (memchr(key, '\\', klen))
            return NULL;
        int cmp = memcmp(key, rv_key, MIN(klen, sizeof(rv_key) - 1));
        if (cmp == 0 && klen == sizeof(rv_key) - 1)
            return NULL;
        if (cmp > 0 || (cmp == 0 && klen > sizeof(rv_key) - 1)) {
            at = p;
            break;
        }
        if (!(p = skip_value(after + 1, end)) || p >= end)
            return NULL;
        if (*p == '}')
            break;
        if (*p++ != ',')
            return NULL;
    }
    char member[64];
    if (at)
        snprintf(member, sizeof(member), "\"%s\":\"%lld\",", rv_key, (long long)rev);
    else {
        if (p >= end || *p != '}')
            return NULL;
        at = p;
        snprintf(member, sizeof(member), "%s\"%s\":\"%lld\"", empty ? "" : ",", rv_key,
                 (long long)rev);
    }
    size_t head = (size_t)(at - text), mlen = strlen(member);
    char *out = xmalloc(len + mlen + 1);
    memcpy(out, text, head);
    memcpy(out + head, member, mlen);
    memcpy(out + head + mlen, at, len - head);
    out[len + mlen] = 0;
    return out;
}

void object_describe(const api_kind_info *k, const char *ns, const char *name, char *out,
                     size_t size)
{
    if (k->namespaced)
        snprintf(out, size, "%s \"%s/%s\"", k->plural, ns && *ns ? ns : "default", name);
    else
        snprintf(out, size, "%s \"%s\"", k->plural, name);
}

int object_read(worker *w, const char *key, json_t **ret, int64_t *ret_rev, apierr *e)
{
    _cleanup_(store_result_freep) store_result *r = NULL;
    int err = sx_get(w, key, &r);
    if (err < 0) {
        if (err != -ENOENT)
            apierr_store(e, err, key);
        return err;
    }
    json_t *o = object_from_kv(&r->kvs[0]);
    if (!o) {
        apierr_set(e, RPC_CODE_DATA_LOSS, "%s: the stored object is not JSON", key);
        return -EBADMSG;
    }
    *ret = o;
    if (ret_rev)
        *ret_rev = r->kvs[0].mod_revision;
    return 0;
}

static int read_guess(worker *w, const char *key, bool absent_unless_known, json_t **ret,
                      int64_t *ret_rev, bool *ret_guessed, apierr *e)
{
    store_kv kv = {.key = (char *)key};
    if (w->guess_ok) {
        json_t *parsed = NULL;
        int r = recent_get_parsed(w->srv->recent, key, &kv.value, &kv.value_len, &kv.mod_revision,
                                  &parsed);
        /* The caller changes what it gets: a copy of the shared parse (cheaper than parsing). */
        json_t *o = parsed ? json_deep_copy(parsed) : r == 0 ? object_from_kv(&kv) : NULL;
        json_decref(parsed);
        free(kv.value);
        if (o || (absent_unless_known && r == -ENOENT)) {
            *ret = o;
            *ret_rev = o ? kv.mod_revision : 0;
            *ret_guessed = true;
            return o ? 0 : -ENOENT;
        }
    }
    *ret_guessed = false;
    return object_read(w, key, ret, ret_rev, e);
}

int read_for_update(worker *w, const char *key, json_t **ret, int64_t *ret_rev, bool *ret_guessed,
                    apierr *e)
{
    return read_guess(w, key, false, ret, ret_rev, ret_guessed, e);
}

int read_for_apply(worker *w, const char *key, json_t **ret, int64_t *ret_rev, bool *ret_guessed,
                   apierr *e)
{
    return read_guess(w, key, true, ret, ret_rev, ret_guessed, e);
}

int ledger_read(worker *w, const char *key, store_kv **ret, store_result **ret_owner,
                json_t **ret_parsed, apierr *e)
{
    *ret = NULL;
    *ret_owner = NULL;
    *ret_parsed = NULL;
    if (w->guess_ok) {
        store_result *r = xnew(store_result, 1);
        r->kvs = xnew(store_kv, 1);
        r->n_kvs = 1;
        if (recent_get_parsed(w->srv->recent, key, &r->kvs[0].value, &r->kvs[0].value_len,
                              &r->kvs[0].mod_revision, ret_parsed) == 0) {
            r->kvs[0].key = xstrdup(key);
            r->kvs[0].key_len = strlen(key);
            *ret = &r->kvs[0];
            *ret_owner = r;
            return 1;
        }
        store_result_free(r);
    }
    store_result *r = NULL;
    int err = sx_get(w, key, &r);
    if (err < 0) {
        store_result_free(r);
        return err == -ENOENT ? 0 : apierr_store(e, err, key);
    }
    *ret = &r->kvs[0];
    *ret_owner = r;
    return 0;
}

void recent_note(worker *w, const char *key, const char *value, int64_t rev)
{
    recent_put(w->srv->recent, key, value, value ? strlen(value) : 0, rev);
}

void recent_note_object(worker *w, const char *key, const char *text, json_t *obj, int64_t rev)
{
    api_object_set_resource_version(obj, rev);
    recent_put_written(w->srv->recent, key, text, strlen(text), rev, obj);
}

void recent_note_writes(worker *w, const json_t *writes, int64_t rev)
{
    size_t i;
    json_t *kt;
    json_array_foreach (writes, i, kt) {
        const char *key = json_string_value(json_array_get(kt, 0));
        const char *text = json_string_value(json_array_get(kt, 1));
        json_t *parsed = json_array_get(kt, 2);
        if (text && json_is_object(parsed) && json_is_true(json_array_get(kt, 3)))
            recent_note_object(w, key, text, parsed, rev);
        else if (text && json_is_object(parsed))
            recent_put_parsed(w->srv->recent, key, text, strlen(text), rev, parsed);
        else
            recent_note(w, key, text, rev);
    }
}

void recent_note_stale(worker *w, const char *key, const store_result *r)
{
    if (r && r->error == -ENOENT && r->revision > 0)
        recent_put(w->srv->recent, key, NULL, 0, r->revision); /* gone */
    else if (r && r->n_kvs == 1 && r->kvs[0].key && streq(r->kvs[0].key, key))
        recent_put(w->srv->recent, key, r->kvs[0].value, r->kvs[0].value_len,
                   r->kvs[0].mod_revision);
    else
        guess_refused(w);
}

int request_key(const char *kind, const char *ns, const char *name, const api_kind_info **ret_kind,
                char **ret_key, apierr *e)
{
    const api_kind_info *k = api_kind_lookup(kind ? kind : "");
    if (!k)
        return apierr_set(e, RPC_CODE_INVALID_ARGUMENT, "kind: unknown kind \"%.64s\"",
                          kind ? kind : "");
    if (!name || !*name)
        return apierr_set(e, RPC_CODE_INVALID_ARGUMENT, "name: required");
    if (k->namespaced && (!ns || !*ns))
        ns = "default";
    if (!k->namespaced && ns && *ns)
        return apierr_set(e, RPC_CODE_INVALID_ARGUMENT,
                          "namespace: %s are cluster-scoped; leave the namespace empty", k->plural);
    if (api_key_build(k, k->namespaced ? ns : NULL, name, ret_key) < 0)
        return apierr_set(e, RPC_CODE_INVALID_ARGUMENT, "name: \"%.64s\" is not a valid name",
                          name);
    *ret_kind = k;
    return 0;
}

void json_set_timestamp(json_t *o, const char *field)
{
    char ts[TIMESTAMP_MAX];
    json_object_set_new(o, field, json_string(timestamp_format(now_realtime(), ts)));
}

void object_set_condition(json_t *obj, const char *type, const char *status, const char *reason,
                          const char *message)
{
    json_t *st = json_object_get(obj, "status");
    if (!json_is_object(st)) {
        st = json_object();
        json_object_set_new(obj, "status", st);
    }
    api_status_set_condition(st, type, status, reason, message, now_realtime());
}

void uuid_random(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof(b), 0) != sizeof(b))
        abort();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

int parse_revision(const char *text, const char *field, int64_t *ret, apierr *e)
{
    if (!text || !*text) {
        *ret = 0;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || v < 0 || end == text)
        return apierr_set(e, RPC_CODE_INVALID_ARGUMENT, "%s: \"%.32s\" is not a resource version",
                          field, text);
    *ret = v;
    return 0;
}

bool json_strv_contains(const json_t *arr, const char *s)
{
    size_t i;
    json_t *it;
    json_array_foreach (arr, i, it) {
        const char *v = json_string_value(it);
        if (v && streq(v, s))
            return true;
    }
    return false;
}

/* ---- health */

void handle_health(worker *w, rpc_call *call, const ProtobufCMessage *req)
{
    store_sync y = STORE_SYNC_INIT;
    int e = store_status(w->st, store_sync_done, &y);
    if (e >= 0)
        e = store_wait(w->st, &y, NULL);
    Stratus__V1__HealthResponse rep = STRATUS__V1__HEALTH_RESPONSE__INIT;
    char status[256];
    if (e < 0)
        snprintf(status, sizeof(status), "etcd: %s", store_strerror(e));
    else
        snprintf(status, sizeof(status), "ok");
    rep.status = status;
    rep.etcd_ok = e >= 0;
    rep.version = (char *)STRATUS_VERSION;
    rpc_call_reply(call, RPC_CODE_OK, NULL, &rep.base);
}

/* ---- the worker pool */

static void *worker_main(void *arg)
{
    worker *w = arg;
    apiserver *s = w->srv;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->cond, &s->lock);
        job *j = s->head;
        if (j) {
            s->head = j->next;
            if (!s->head)
                s->tail = NULL;
            s->queued--;
        }
        pthread_mutex_unlock(&s->lock);
        if (!j)
            return NULL;
        if (rpc_call_is_cancelled(j->call))
            rpc_call_reply(j->call, RPC_CODE_CANCELLED, "cancelled before it was served", NULL);
        else {
            w->guess_ok = true;
            handlers[j->method](w, j->call, j->request);
        }
        free(j);
    }
}

static void on_unary(rpc_call *call, const ProtobufCMessage *request, void *userdata)
{
    apiserver *s = userdata;
    job *j = xnew(job, 1);
    j->call = call;
    j->method = rpc_call_method(call);
    j->request = request;
    pthread_mutex_lock(&s->lock);
    if (s->stopping || s->queued >= s->opts.queue_max) {
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        free(j);
        rpc_call_reply(call, stopping ? RPC_CODE_UNAVAILABLE : RPC_CODE_RESOURCE_EXHAUSTED,
                       stopping ? "the apiserver is shutting down"
                                : "the apiserver is overloaded; retry with backoff",
                       NULL);
        return;
    }
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    s->queued++;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void on_watch(rpc_call *call, const ProtobufCMessage *request, void *userdata)
{
    apiserver *s = userdata;
    watchcache_submit(s->wc, call, request);
}

/* ---- cron: compaction. At each tick, history older than the previous tick is compacted, so
 * etcd keeps between one and two intervals of it (watchers resuming within that window need no
 * relist). */

static void *cron_main(void *arg)
{
    apiserver *s = arg;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    store *st = NULL;
    if (store_new(loop, &s->opts.etcd, &st) < 0) {
        ev_loop_destroy(loop);
        return NULL;
    }
    int64_t previous = 0, compacted = 0;
    pthread_mutex_lock(&s->cron_lock);
    while (!s->cron_stop) {
        pthread_mutex_unlock(&s->cron_lock);
        store_sync y = STORE_SYNC_INIT;
        store_result *r = NULL;
        int e = store_status(st, store_sync_done, &y);
        if (e >= 0)
            e = store_wait(st, &y, &r);
        int64_t now_rev = e >= 0 ? r->revision : 0;
        store_result_free(r);
        /* A quiet cluster is compacted too: the revision seen one tick ago is old enough. */
        if (previous > compacted) {
            y = STORE_SYNC_INIT;
            if (store_compact(st, previous, false, store_sync_done, &y) >= 0)
                store_wait(st, &y, NULL); /* -ERANGE: someone compacted further already */
            compacted = previous;
        }
        if (now_rev)
            previous = now_rev;

        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        usec_t until =
            (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / 1000 + s->opts.compact_interval;
        ts.tv_sec = (time_t)(until / USEC_PER_SEC);
        ts.tv_nsec = (long)(until % USEC_PER_SEC) * 1000;
        pthread_mutex_lock(&s->cron_lock);
        if (!s->cron_stop)
            pthread_cond_timedwait(&s->cron_cond, &s->cron_lock, &ts);
    }
    pthread_mutex_unlock(&s->cron_lock);
    store_free(st);
    ev_loop_destroy(loop);
    return NULL;
}

/* ---- life cycle */

int apiserver_new(const apiserver_options *opts, apiserver **ret)
{
    apiserver *s = xnew(apiserver, 1);
    s->opts = *opts;
    if (!s->opts.workers)
        s->opts.workers = 8;
    if (!s->opts.queue_max)
        s->opts.queue_max = 10000;
    if (!s->opts.watch_cache)
        s->opts.watch_cache = 20000;
    if (!s->opts.watchers_max)
        s->opts.watchers_max = 10000;
    if (!s->opts.bookmark_interval)
        s->opts.bookmark_interval = 5 * USEC_PER_SEC;
    if (!s->opts.compact_interval)
        s->opts.compact_interval = 300 * USEC_PER_SEC;
    if (!s->opts.max_request)
        s->opts.max_request = 4 << 20;
    if (!s->opts.recent_bytes)
        s->opts.recent_bytes = 16 << 20;
    s->recent = recent_new(s->opts.recent_bytes);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_mutex_init(&s->cron_lock, NULL);
    pthread_cond_init(&s->cron_cond, NULL);
    pthread_mutex_init(&s->holds_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* bind.c's round_hold waits by it */
    pthread_cond_init(&s->holds_cond, &ca);
    pthread_condattr_destroy(&ca);
    s->holds = json_object();

    int e = watchcache_new(s, &s->wc);
    if (e < 0) {
        recent_free(s->recent);
        json_decref(s->holds);
        free(s);
        return e;
    }
    s->n_workers = s->opts.workers;
    s->workers = xnew(worker, s->n_workers);
    for (size_t i = 0; i < s->n_workers; i++) {
        worker *w = &s->workers[i];
        w->srv = s;
        w->loop = ev_loop_new(EVFLAG_AUTO);
        if (store_new(w->loop, &s->opts.etcd, &w->st) < 0)
            abort(); /* the watch cache already accepted these options */
        pthread_create(&w->thread, NULL, worker_main, w);
    }
    pthread_create(&s->cron, NULL, cron_main, s);

    rpc_handler h[_RPC_METHOD_MAX] = {0};
    for (int m = 0; m < _RPC_METHOD_MAX; m++)
        h[m] = (rpc_handler){.fn = m == RPC_METHOD_WATCH ? on_watch : on_unary, .userdata = s};
    rpc_server_options ro = {.max_receive_bytes = s->opts.max_request,
                             .max_calls =
                                 (unsigned)(s->opts.queue_max + s->opts.watchers_max + 64)};
    e = rpc_server_new(s->opts.listen, &ro, h, &s->rpc);
    if (e < 0) {
        apiserver_free(s, 0);
        return e;
    }
    *ret = s;
    return 0;
}

int apiserver_port(const apiserver *s)
{
    return rpc_server_port(s->rpc);
}

apiserver *apiserver_free(apiserver *s, usec_t grace)
{
    if (!s)
        return NULL;
    /* The rpc server stops first: after `grace` it ends open calls (watches included, whose
     * cancel callbacks still reach the watch cache), and no new call can reach a freed part. */
    if (s->rpc)
        rpc_server_shutdown(s->rpc, grace);
    s->wc = watchcache_free(s->wc);
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_lock(&s->cron_lock);
    s->cron_stop = true;
    pthread_cond_broadcast(&s->cron_cond);
    pthread_mutex_unlock(&s->cron_lock);
    for (size_t i = 0; i < s->n_workers; i++) {
        pthread_join(s->workers[i].thread, NULL);
        store_free(s->workers[i].st);
        ev_loop_destroy(s->workers[i].loop);
    }
    pthread_join(s->cron, NULL);
    /* Calls still queued were ended by the rpc shutdown; their jobs are only freed here. */
    while (s->head) {
        job *j = s->head;
        s->head = j->next;
        rpc_call_reply(j->call, RPC_CODE_UNAVAILABLE, "the apiserver is shutting down", NULL);
        free(j);
    }
    s->rpc = rpc_server_free(s->rpc);
    free(s->workers);
    recent_free(s->recent);
    json_decref(s->holds);
    free(s);
    return NULL;
}
