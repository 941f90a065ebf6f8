/* The informer: a reader thread (List pages, Watch, parse, back off) feeding a bounded locked
 * queue; the loop thread drains it through an ev_async, applies each batch to the cache under the
 * cache lock and calls the handlers with the lock released. See informer.h for the contract and
 * docs/reconcile.md for the reasons. */
#include "reconcile/informer.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/parse.h"
#include "base/alloc.h"
#include "reconcile/keymap.h"

/* A watch that stayed open this long counts as healthy even without events: the next failure is
 * retried at once, as after one that delivered events. */
#define WATCH_HEALTHY (60 * USEC_PER_SEC)

typedef enum pending_type {
    PENDING_REPLACE, /* obj: array of every object of a complete List; rv: the list's */
    PENDING_ADDED,
    PENDING_MODIFIED,
    PENDING_DELETED,
    PENDING_BOOKMARK, /* obj: NULL */
} pending_type;

typedef struct pending {
    pending_type type;
    json_t *obj;
    int64_t rv;
    struct pending *next;
} pending;

typedef struct cache_entry {
    char *key;       /* owned; also the keymap's key */
    json_t *real;    /* the server's object; NULL when only assumed */
    json_t *assumed; /* a local prediction shown instead of real; NULL when none */
    int64_t assumed_rv;
} cache_entry;

typedef enum notif_type {
    NOTIF_ADD,
    NOTIF_UPDATE,
    NOTIF_DELETE,
} notif_type;

/* A handler call collected under the cache lock and made after it is released. Holds one
 * reference to each object. */
typedef struct notif {
    notif_type type;
    char *key;
    json_t *old_obj; /* update */
    json_t *obj;     /* add, update (new), delete */
} notif;

typedef struct notif_list {
    notif *items;
    size_t n, allocated;
} notif_list;

struct informer {
    rpc_client *client;
    struct ev_loop *loop;
    ev_async async;
    informer_handlers h;

    char *kind, *namespace_, *label_selector, *field_selector;
    bool all_namespaces;
    int64_t page_size;
    usec_t list_timeout, backoff_initial, backoff_max;
    size_t max_items, max_pending;

    /* Reader ↔ loop and reader lifecycle. cond (CLOCK_MONOTONIC) signals room in the queue and
     * stopping. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pending *head, *tail;
    size_t n_pending;
    bool started, joined, stopping;
    rpc_watch *watch; /* the open stream, so that informer_stop can cancel it */
    pthread_t thread;
    uint64_t lists, relists, watches, errors, reader_bad_objects;

    /* The cache. Written on the loop thread (and by assume/unassume from any thread), read from
     * any, always under cache_lock. */
    pthread_mutex_t cache_lock;
    keymap cache;
    size_t n_assumed;
    uint64_t events, bookmarks, bad_objects, dropped;
    int64_t rv;
    atomic_bool synced;
};

/* ---- objects ---- */

static int parse_int64(const char *s, int64_t *ret)
{
    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -EINVAL;
    *ret = v;
    return 0;
}

int informer_object_resource_version(const json_t *obj, int64_t *ret)
{
    const json_t *rv = json_object_get(json_object_get(obj, "metadata"), "resourceVersion");
    if (json_is_integer(rv) && json_integer_value(rv) >= 0) {
        *ret = json_integer_value(rv);
        return 0;
    }
    return parse_int64(json_string_value(rv), ret);
}

int informer_object_key(const json_t *obj, char **ret)
{
    const json_t *md = json_object_get(obj, "metadata");
    const char *name = json_string_value(json_object_get(md, "name"));
    const json_t *ns_value = json_object_get(md, "namespace");
    const char *ns = json_string_value(ns_value);
    if (!name || !*name || (ns_value && !json_is_null(ns_value) && !ns))
        return -EINVAL;
    char *key = ns && *ns ? xasprintf("%s/%s", ns, name) : xstrdup(name);
    if (strlen(key) > INFORMER_KEY_MAX) {
        free(key);
        return -EINVAL;
    }
    *ret = key;
    return 0;
}

/* The object's version for ordering, 0 when it has none. */
static int64_t object_rv(const json_t *obj)
{
    int64_t rv;
    return informer_object_resource_version(obj, &rv) < 0 ? 0 : rv;
}

static bool same_version(const json_t *a, const json_t *b)
{
    int64_t ra, rb;
    if (informer_object_resource_version(a, &ra) == 0 &&
        informer_object_resource_version(b, &rb) == 0)
        return ra == rb;
    return json_equal(a, b);
}

/* Parses one object of a List or an event: a JSON object with a usable key. */
static json_t *object_parse(const char *text)
{
    json_t *obj = api_json_loads(text ? text : "", JSON_REJECT_DUPLICATES, NULL);
    _cleanup_free_ char *key = NULL;
    if (!json_is_object(obj) || informer_object_key(obj, &key) < 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* ---- the reader thread ---- */

static bool reader_stopping(informer *inf)
{
    pthread_mutex_lock(&inf->lock);
    bool s = inf->stopping;
    pthread_mutex_unlock(&inf->lock);
    return s;
}

static void reader_count(informer *inf, uint64_t *counter, uint64_t n)
{
    pthread_mutex_lock(&inf->lock);
    *counter += n;
    pthread_mutex_unlock(&inf->lock);
}

/* Sleeps for delay or until informer_stop, whichever comes first. */
static void reader_sleep(informer *inf, usec_t delay)
{
    usec_t wake = now_monotonic() + delay;
    struct timespec ts = {.tv_sec = (time_t)(wake / USEC_PER_SEC),
                          .tv_nsec = (long)(wake % USEC_PER_SEC) * 1000};
    pthread_mutex_lock(&inf->lock);
    while (!inf->stopping && now_monotonic() < wake)
        pthread_cond_timedwait(&inf->cond, &inf->lock, &ts);
    pthread_mutex_unlock(&inf->lock);
}

/* Hands a batch to the loop, waiting while the queue is full. Takes obj. Returns 0, or
 * -ECANCELED when the informer is stopping (obj dropped). */
static int post(informer *inf, pending_type type, json_t *obj, int64_t rv)
{
    pthread_mutex_lock(&inf->lock);
    while (inf->n_pending >= inf->max_pending && !inf->stopping)
        pthread_cond_wait(&inf->cond, &inf->lock);
    if (inf->stopping) {
        pthread_mutex_unlock(&inf->lock);
        json_decref(obj);
        return -ECANCELED;
    }
    pending *p = xnew(pending, 1);
    *p = (pending){.type = type, .obj = obj, .rv = rv};
    if (inf->tail)
        inf->tail->next = p;
    else
        inf->head = p;
    inf->tail = p;
    inf->n_pending++;
    pthread_mutex_unlock(&inf->lock);
    ev_async_send(inf->loop, &inf->async);
    return 0;
}

static usec_t backoff_for(const informer *inf, unsigned failures)
{
    usec_t d = inf->backoff_initial;
    for (unsigned i = 0; i < failures && d < inf->backoff_max; i++)
        d = d > inf->backoff_max / 2 ? inf->backoff_max : d * 2;
    return MIN(d, inf->backoff_max);
}

/* ---- listing: a fetcher thread asks for page n+1 while the reader parses page n
 *
 * One page at a time, the server sat idle while the client parsed each page and the client while
 * the server read and encoded the next: a scheduler's cold start listed 10,000 instances in
 * ~300 ms, a third of it parsing. The pages still go one request after the other (each needs
 * the previous one's continue token); at most PAGES_AHEAD replies wait to be parsed. */
#define PAGES_AHEAD 2

typedef struct pager {
    informer *inf;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    Stratus__V1__ListResponse *ready[PAGES_AHEAD];
    size_t first, n;
    int err;   /* the fetcher's last call: < 0 ends the list */
    bool done; /* the fetcher has handed over its last page (or err) */
    bool stop; /* the reader wants no more */
} pager;

static void *pager_main(void *arg)
{
    pager *pg = arg;
    informer *inf = pg->inf;
    _cleanup_free_ char *cont = NULL;
    for (;;) {
        /* room for the reply first, so that a reader that gave up is not kept waiting for a
         * call nobody wants (up to list_timeout), and at most PAGES_AHEAD replies wait */
        pthread_mutex_lock(&pg->lock);
        while (pg->n == PAGES_AHEAD && !pg->stop)
            pthread_cond_wait(&pg->cond, &pg->lock);
        if (pg->stop) {
            pg->done = true;
            pthread_cond_broadcast(&pg->cond);
            pthread_mutex_unlock(&pg->lock);
            return NULL;
        }
        pthread_mutex_unlock(&pg->lock);
        int r = -ECANCELED;
        Stratus__V1__ListResponse *resp = NULL;
        if (!reader_stopping(inf)) {
            Stratus__V1__ListRequest req = STRATUS__V1__LIST_REQUEST__INIT;
            req.kind = inf->kind;
            req.namespace_ = inf->namespace_;
            req.all_namespaces = inf->all_namespaces;
            req.label_selector = inf->label_selector;
            req.field_selector = inf->field_selector;
            req.limit = inf->page_size;
            req.continue_token = cont ? cont : "";
            r = rpc_client_list(inf->client, &req, inf->list_timeout, &resp, NULL);
        }
        cont = mfree(cont);
        if (r == 0 && resp->continue_token[0] != '\0')
            cont = xstrdup(resp->continue_token);
        pthread_mutex_lock(&pg->lock); /* only this thread adds: the room is still there */
        bool stop = pg->stop;
        if (stop)
            rpc_message_free(resp);
        else if (r < 0)
            pg->err = r;
        else
            pg->ready[(pg->first + pg->n++) % PAGES_AHEAD] = resp;
        if (stop || r < 0 || !cont)
            pg->done = true;
        pthread_cond_broadcast(&pg->cond);
        pthread_mutex_unlock(&pg->lock);
        if (stop || r < 0 || !cont)
            return NULL;
    }
}

/* The next page in order; NULL at the end, with *ret_err the fetcher's error (0: none). */
static Stratus__V1__ListResponse *pager_next(pager *pg, int *ret_err)
{
    pthread_mutex_lock(&pg->lock);
    while (pg->n == 0 && !pg->done)
        pthread_cond_wait(&pg->cond, &pg->lock);
    Stratus__V1__ListResponse *resp = NULL;
    if (pg->n > 0) {
        resp = pg->ready[pg->first];
        pg->first = (pg->first + 1) % PAGES_AHEAD;
        pg->n--;
        pthread_cond_broadcast(&pg->cond);
    }
    *ret_err = pg->err;
    pthread_mutex_unlock(&pg->lock);
    return resp;
}

/* Lists every page. Returns 0 with the objects (a JSON array) and the list's revision; the
 * rpc status as a -errno; -EBADMSG for a reply without a usable revision or an empty page that
 * asks for more; -E2BIG past max_items; -ECANCELED when stopping; -EAGAIN when no thread could
 * be started. */
static int list_all(informer *inf, json_t **ret_items, int64_t *ret_rv)
{
    pager pg = {.inf = inf};
    pthread_mutex_init(&pg.lock, NULL);
    pthread_cond_init(&pg.cond, NULL);
    pthread_t fetcher;
    if (pthread_create(&fetcher, NULL, pager_main, &pg) != 0) {
        pthread_cond_destroy(&pg.cond);
        pthread_mutex_destroy(&pg.lock);
        return -EAGAIN;
    }
    json_t *items = json_array();
    int64_t rv = -1;
    uint64_t bad = 0;
    int r = 0;
    for (;;) {
        Stratus__V1__ListResponse *resp = pager_next(&pg, &r);
        if (!resp)
            break;
        /* every page is consistent at the first page's revision */
        if (rv < 0 && parse_int64(resp->resource_version, &rv) < 0)
            r = -EBADMSG;
        else if (resp->n_items_json == 0 && resp->continue_token[0] != '\0')
            r = -EBADMSG; /* a server that pages without progress would keep us here forever */
        for (size_t i = 0; r == 0 && i < resp->n_items_json; i++) {
            json_t *obj = object_parse(resp->items_json[i]);
            if (!obj)
                bad++;
            else if (json_array_size(items) >= inf->max_items) {
                json_decref(obj);
                r = -E2BIG;
            } else
                json_array_append_new(items, obj);
        }
        rpc_message_free(resp);
        if (r < 0)
            break;
    }
    /* the fetcher stops at its next hand-over; what it had waiting is freed here */
    pthread_mutex_lock(&pg.lock);
    pg.stop = true;
    pthread_cond_broadcast(&pg.cond);
    pthread_mutex_unlock(&pg.lock);
    pthread_join(fetcher, NULL);
    for (; pg.n > 0; pg.n--, pg.first = (pg.first + 1) % PAGES_AHEAD)
        rpc_message_free(pg.ready[pg.first]);
    pthread_cond_destroy(&pg.cond);
    pthread_mutex_destroy(&pg.lock);
    if (r == 0 && reader_stopping(inf))
        r = -ECANCELED;
    if (bad > 0)
        reader_count(inf, &inf->reader_bad_objects, bad);
    if (r < 0) {
        json_decref(items);
        return r;
    }
    *ret_items = items;
    *ret_rv = rv;
    return 0;
}

/* Handles one event of the stream, moving the resume point *rv and the newest revision seen
 * *seen. One etcd transaction is many events at one revision (a Bind writes up to 40 instances),
 * and a watch resumed from a revision gets only what is newer: so *rv moves to a revision only
 * once all of it has arrived — an event of a newer one, or a bookmark, says so — and a stream
 * broken in the middle of a revision is resumed from the one before, the repeats being no-ops.
 * Returns 0 to read on, or how the stream ends (an ERROR event's status as a -errno, -ECANCELED
 * when stopping). */
static int reader_event(informer *inf, const Stratus__V1__WatchEvent *ev, int64_t *rv,
                        int64_t *seen, bool *ret_progress)
{
    int64_t ev_rv = -1;
    bool has_rv = parse_int64(ev->resource_version, &ev_rv) == 0;
    switch (ev->type) {
    case STRATUS__V1__WATCH_EVENT__TYPE__ADDED:
    case STRATUS__V1__WATCH_EVENT__TYPE__MODIFIED:
    case STRATUS__V1__WATCH_EVENT__TYPE__DELETED: {
        *ret_progress = true;
        json_t *obj = object_parse(ev->object_json);
        if (!has_rv && obj)
            has_rv = informer_object_resource_version(obj, &ev_rv) == 0;
        if (has_rv && ev_rv > *seen) {
            if (*seen > *rv)
                *rv = *seen; /* that revision is complete */
            *seen = ev_rv;
        }
        if (!obj) {
            reader_count(inf, &inf->reader_bad_objects, 1);
            return 0;
        }
        pending_type t = ev->type == STRATUS__V1__WATCH_EVENT__TYPE__ADDED      ? PENDING_ADDED
                         : ev->type == STRATUS__V1__WATCH_EVENT__TYPE__MODIFIED ? PENDING_MODIFIED
                                                                                : PENDING_DELETED;
        return post(inf, t, obj, has_rv ? ev_rv : 0);
    }
    case STRATUS__V1__WATCH_EVENT__TYPE__BOOKMARK:
        *ret_progress = true;
        if (!has_rv)
            return 0;
        if (ev_rv > *rv)
            *rv = ev_rv;
        if (ev_rv > *seen)
            *seen = ev_rv;
        return post(inf, PENDING_BOOKMARK, NULL, ev_rv);
    case STRATUS__V1__WATCH_EVENT__TYPE__ERROR:
        if (ev->code == RPC_CODE_OK)
            return -EPIPE;
        return ev->code == RPC_CODE_RELIST ? -ERANGE : rpc_code_to_errno((rpc_code)ev->code);
    default:
        return 0; /* a type newer than this code: nothing to apply */
    }
}

/* Watches from *rv until the stream ends, advancing *rv. Returns how it ended: -ERANGE (relist),
 * -ECANCELED (stopping), -EPIPE (closed with OK), or another -errno. */
static int watch_once(informer *inf, int64_t *rv, bool *ret_progress)
{
    char rvs[24];
    snprintf(rvs, sizeof(rvs), "%" PRId64, *rv);
    Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
    req.kind = inf->kind;
    req.namespace_ = inf->namespace_;
    req.all_namespaces = inf->all_namespaces;
    req.label_selector = inf->label_selector;
    req.field_selector = inf->field_selector;
    req.resource_version = rvs;
    req.allow_bookmarks = true;

    rpc_watch *w;
    int r = rpc_client_watch(inf->client, &req, &w);
    if (r < 0)
        return r;
    pthread_mutex_lock(&inf->lock);
    inf->watches++;
    bool stopping = inf->stopping;
    if (!stopping)
        inf->watch = w;
    pthread_mutex_unlock(&inf->lock);
    if (stopping) {
        rpc_watch_free(w);
        return -ECANCELED;
    }

    int64_t seen = *rv;
    for (;;) {
        Stratus__V1__WatchEvent *ev = NULL;
        r = rpc_watch_next(w, USEC_INFINITY, &ev, NULL);
        if (r < 0)
            break;
        r = reader_event(inf, ev, rv, &seen, ret_progress);
        rpc_message_free(ev);
        if (r < 0)
            break;
    }

    /* after this, informer_stop can no longer reach the stream, so it may be freed */
    pthread_mutex_lock(&inf->lock);
    inf->watch = NULL;
    pthread_mutex_unlock(&inf->lock);
    rpc_watch_free(w);
    return r;
}

static void *reader_main(void *userdata)
{
    informer *inf = userdata;
    bool need_list = true, listed = false;
    unsigned failures = 0;
    int64_t rv = 0;

    while (!reader_stopping(inf)) {
        int r = 0;
        if (need_list) {
            json_t *items;
            int64_t list_rv;
            r = list_all(inf, &items, &list_rv);
            if (r == -ECANCELED)
                break;
            if (r == 0) {
                pthread_mutex_lock(&inf->lock);
                inf->lists++;
                inf->relists += listed;
                pthread_mutex_unlock(&inf->lock);
                listed = true;
                if (post(inf, PENDING_REPLACE, items, list_rv) < 0)
                    break;
                rv = list_rv;
                need_list = false;
            }
        }
        if (!need_list) {
            bool progress = false;
            usec_t opened = now_monotonic();
            r = watch_once(inf, &rv, &progress);
            if (r == -ECANCELED && reader_stopping(inf))
                break;
            if (progress || now_monotonic() - opened >= WATCH_HEALTHY)
                failures = 0;
            if (r == -ERANGE)
                need_list = true;
        }
        if (r != -ERANGE && r != -EPIPE)
            reader_count(inf, &inf->errors, 1);
        /* the first failure after a healthy stream is retried at once; then back off */
        usec_t delay = failures == 0 ? 0 : backoff_for(inf, failures - 1);
        if (failures < UINT32_MAX)
            failures++;
        if (delay > 0)
            reader_sleep(inf, delay);
    }
    return NULL;
}

/* ---- the loop side: applying batches to the cache ---- */

static void notif_push(notif_list *l, notif_type type, const char *key, json_t *old_obj,
                       json_t *obj)
{
    l->items = xgrow(l->items, &l->allocated, l->n + 1, sizeof(notif));
    l->items[l->n++] = (notif){.type = type, .key = xstrdup(key), .old_obj = old_obj, .obj = obj};
}

/* Calls the handlers, with no lock held, and drops the list. */
static void notif_fire(informer *inf, notif_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        notif *n = &l->items[i];
        switch (n->type) {
        case NOTIF_ADD:
            if (inf->h.on_add)
                inf->h.on_add(inf, n->key, n->obj, inf->h.userdata);
            break;
        case NOTIF_UPDATE:
            if (inf->h.on_update)
                inf->h.on_update(inf, n->key, n->old_obj, n->obj, inf->h.userdata);
            break;
        case NOTIF_DELETE:
            if (inf->h.on_delete)
                inf->h.on_delete(inf, n->key, n->obj, inf->h.userdata);
            break;
        }
        json_decref(n->old_obj);
        json_decref(n->obj);
        free(n->key);
    }
    free(l->items);
    *l = (notif_list){0};
}

static cache_entry *entry_new(informer *inf, const char *key)
{
    cache_entry *e = xnew(cache_entry, 1);
    e->key = xstrdup(key);
    keymap_put(&inf->cache, e->key, e);
    return e;
}

static void entry_drop_assumed(informer *inf, cache_entry *e)
{
    if (!e->assumed)
        return;
    e->assumed = (json_decref(e->assumed), NULL);
    inf->n_assumed--;
}

/* The server has caught up with an assumption once it shows a version at least as new. */
static void entry_supersede(informer *inf, cache_entry *e, int64_t rv)
{
    if (e->assumed && rv >= e->assumed_rv)
        entry_drop_assumed(inf, e);
}

static void entry_free(cache_entry *e)
{
    json_decref(e->real);
    json_decref(e->assumed);
    free(e->key);
    free(e);
}

static void entry_release_if_empty(informer *inf, cache_entry *e)
{
    if (e->real || e->assumed)
        return;
    keymap_remove(&inf->cache, e->key);
    entry_free(e);
}

/* Sets the server's object of key (an add or an update); takes obj. */
static void cache_set(informer *inf, const char *key, json_t *obj, notif_list *out)
{
    cache_entry *e = keymap_get(&inf->cache, key);
    if (!e) {
        if (inf->cache.size >= inf->max_items) {
            inf->dropped++;
            json_decref(obj);
            return;
        }
        e = entry_new(inf, key);
    }
    int64_t rv = object_rv(obj);
    if (!e->real) {
        e->real = obj;
        notif_push(out, NOTIF_ADD, key, NULL, json_incref(obj));
    } else if (same_version(e->real, obj)) {
        json_decref(obj); /* a relist brought what we have */
    } else {
        notif_push(out, NOTIF_UPDATE, key, e->real, json_incref(obj));
        e->real = obj;
    }
    entry_supersede(inf, e, rv);
}

/* Removes the server's object of key; last is what the handler sees (NULL: the cached one). */
static void cache_unset(informer *inf, cache_entry *e, json_t *last, int64_t rv, notif_list *out)
{
    if (e->real) {
        notif_push(out, NOTIF_DELETE, e->key, NULL, last ? json_incref(last) : e->real);
        if (last)
            json_decref(e->real);
        e->real = NULL;
    }
    entry_supersede(inf, e, rv);
    entry_release_if_empty(inf, e);
}

static void apply_replace(informer *inf, json_t *items, int64_t list_rv, notif_list *out)
{
    size_t n = json_array_size(items);
    _cleanup_free_ char **keys = xnew(char *, n);
    keymap fresh = KEYMAP_INIT;
    for (size_t i = 0; i < n; i++) {
        /* object_parse checked it has a key */
        informer_object_key(json_array_get(items, i), &keys[i]);
        if (keymap_put(&fresh, keys[i], &keys[i]) < 0)
            keys[i] = mfree(keys[i]); /* the same key twice in one list: keep the first */
    }

    pthread_mutex_lock(&inf->cache_lock);
    for (size_t i = 0; i < n; i++)
        inf->bad_objects += !keys[i];
    for (size_t i = 0; i < n; i++)
        if (keys[i])
            cache_set(inf, keys[i], json_incref(json_array_get(items, i)), out);
    /* what the cache has and the list has not, is gone */
    size_t n_gone = 0;
    _cleanup_free_ cache_entry **gone = xnew(cache_entry *, inf->cache.size + 1);
    keymap_iter iter = {0};
    const char *key;
    void *v;
    while (keymap_next(&inf->cache, &iter, &key, &v))
        if (!keymap_get(&fresh, key))
            gone[n_gone++] = v;
    for (size_t i = 0; i < n_gone; i++)
        cache_unset(inf, gone[i], NULL, list_rv, out);
    inf->rv = list_rv;
    pthread_mutex_unlock(&inf->cache_lock);

    keymap_done(&fresh);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
}

static void apply_event(informer *inf, pending *p, notif_list *out)
{
    _cleanup_free_ char *key = NULL;
    informer_object_key(p->obj, &key); /* checked by object_parse */
    pthread_mutex_lock(&inf->cache_lock);
    if (p->type == PENDING_DELETED) {
        cache_entry *e = keymap_get(&inf->cache, key);
        if (e)
            cache_unset(inf, e, p->obj, MAX(p->rv, object_rv(p->obj)), out);
    } else
        cache_set(inf, key, json_incref(p->obj), out);
    inf->events++;
    if (p->rv > inf->rv)
        inf->rv = p->rv;
    pthread_mutex_unlock(&inf->cache_lock);
}

static void apply(informer *inf, pending *p)
{
    notif_list out = {0};
    switch (p->type) {
    case PENDING_REPLACE:
        apply_replace(inf, p->obj, p->rv, &out);
        notif_fire(inf, &out);
        atomic_store(&inf->synced, true);
        return;
    case PENDING_ADDED:
    case PENDING_MODIFIED:
    case PENDING_DELETED:
        apply_event(inf, p, &out);
        break;
    case PENDING_BOOKMARK:
        pthread_mutex_lock(&inf->cache_lock);
        inf->bookmarks++;
        if (p->rv > inf->rv)
            inf->rv = p->rv;
        pthread_mutex_unlock(&inf->cache_lock);
        break;
    }
    notif_fire(inf, &out);
}

static void on_async(struct ev_loop *loop, ev_async *w, int revents)
{
    informer *inf = w->data;
    pthread_mutex_lock(&inf->lock);
    pending *p = inf->head;
    inf->head = inf->tail = NULL;
    inf->n_pending = 0;
    pthread_cond_broadcast(&inf->cond);
    pthread_mutex_unlock(&inf->lock);
    while (p) {
        pending *next = p->next;
        apply(inf, p);
        json_decref(p->obj);
        free(p);
        p = next;
    }
}

/* ---- API ---- */

int informer_new(rpc_client *client, struct ev_loop *loop, const informer_options *opts,
                 const informer_handlers *h, informer **ret)
{
    if (!client || !loop || !opts || !opts->kind || !opts->kind[0] || opts->page_size < 0)
        return -EINVAL;
    informer_options o = *opts;
    if (o.page_size == 0)
        o.page_size = INFORMER_DEFAULT_PAGE_SIZE;
    if (o.list_timeout == 0)
        o.list_timeout = INFORMER_DEFAULT_LIST_TIMEOUT;
    if (o.backoff_initial == 0)
        o.backoff_initial = INFORMER_DEFAULT_BACKOFF;
    if (o.backoff_max == 0)
        o.backoff_max = INFORMER_DEFAULT_BACKOFF_MAX;
    if (o.max_items == 0)
        o.max_items = INFORMER_DEFAULT_MAX_ITEMS;
    if (o.max_pending == 0)
        o.max_pending = INFORMER_DEFAULT_MAX_PENDING;
    if (o.backoff_initial > o.backoff_max)
        return -EINVAL;

    informer *inf = xnew(informer, 1);
    inf->client = client;
    inf->loop = loop;
    if (h)
        inf->h = *h;
    inf->kind = xstrdup(o.kind);
    inf->namespace_ = xstrdup(o.namespace_ ? o.namespace_ : "");
    inf->label_selector = xstrdup(o.label_selector ? o.label_selector : "");
    inf->field_selector = xstrdup(o.field_selector ? o.field_selector : "");
    inf->all_namespaces = o.all_namespaces;
    inf->page_size = o.page_size;
    inf->list_timeout = o.list_timeout;
    inf->backoff_initial = o.backoff_initial;
    inf->backoff_max = o.backoff_max;
    inf->max_items = o.max_items;
    inf->max_pending = o.max_pending;
    pthread_mutex_init(&inf->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&inf->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&inf->cache_lock, NULL);
    atomic_init(&inf->synced, false);
    ev_async_init(&inf->async, on_async);
    inf->async.data = inf;
    ev_async_start(loop, &inf->async);
    *ret = inf;
    return 0;
}

int informer_start(informer *inf)
{
    pthread_mutex_lock(&inf->lock);
    if (inf->started) {
        pthread_mutex_unlock(&inf->lock);
        return -EALREADY;
    }
    int r = -pthread_create(&inf->thread, NULL, reader_main, inf);
    if (r == 0)
        inf->started = true;
    pthread_mutex_unlock(&inf->lock);
    return r;
}

void informer_stop(informer *inf)
{
    pthread_mutex_lock(&inf->lock);
    inf->stopping = true;
    if (inf->watch)
        rpc_watch_cancel(inf->watch);
    pthread_cond_broadcast(&inf->cond);
    bool join = inf->started && !inf->joined;
    inf->joined = inf->started;
    pthread_mutex_unlock(&inf->lock);
    if (join)
        pthread_join(inf->thread, NULL);

    /* what the reader queued and the loop did not apply is dropped */
    pthread_mutex_lock(&inf->lock);
    pending *p = inf->head;
    inf->head = inf->tail = NULL;
    inf->n_pending = 0;
    pthread_mutex_unlock(&inf->lock);
    while (p) {
        pending *next = p->next;
        json_decref(p->obj);
        free(p);
        p = next;
    }
}

informer *informer_free(informer *inf)
{
    if (!inf)
        return NULL;
    informer_stop(inf);
    ev_async_stop(inf->loop, &inf->async);
    keymap_iter iter = {0};
    void *v;
    while (keymap_next(&inf->cache, &iter, NULL, &v))
        entry_free(v);
    keymap_done(&inf->cache);
    pthread_mutex_destroy(&inf->cache_lock);
    pthread_cond_destroy(&inf->cond);
    pthread_mutex_destroy(&inf->lock);
    free(inf->kind);
    free(inf->namespace_);
    free(inf->label_selector);
    free(inf->field_selector);
    free(inf);
    return NULL;
}

bool informer_has_synced(informer *inf)
{
    return atomic_load(&inf->synced);
}

static json_t *entry_visible(const cache_entry *e)
{
    return e->assumed ? e->assumed : e->real;
}

json_t *informer_get(informer *inf, const char *key)
{
    if (!key)
        return NULL;
    pthread_mutex_lock(&inf->cache_lock);
    cache_entry *e = keymap_get(&inf->cache, key);
    json_t *obj = e ? json_incref(entry_visible(e)) : NULL;
    pthread_mutex_unlock(&inf->cache_lock);
    return obj;
}

int informer_list(informer *inf, json_t ***ret_items, size_t *ret_n)
{
    pthread_mutex_lock(&inf->cache_lock);
    json_t **items = xnew(json_t *, inf->cache.size + 1);
    size_t n = 0;
    keymap_iter iter = {0};
    void *v;
    while (keymap_next(&inf->cache, &iter, NULL, &v))
        items[n++] = json_incref(entry_visible(v));
    pthread_mutex_unlock(&inf->cache_lock);
    *ret_items = items;
    *ret_n = n;
    return 0;
}

void informer_items_free(json_t **items, size_t n)
{
    if (!items)
        return;
    for (size_t i = 0; i < n; i++)
        json_decref(items[i]);
    free(items);
}

size_t informer_size(informer *inf)
{
    pthread_mutex_lock(&inf->cache_lock);
    size_t n = inf->cache.size;
    pthread_mutex_unlock(&inf->cache_lock);
    return n;
}

int informer_assume(informer *inf, const char *key, json_t *obj)
{
    int64_t rv;
    if (!key || !*key || strlen(key) > INFORMER_KEY_MAX || !json_is_object(obj) ||
        informer_object_resource_version(obj, &rv) < 0)
        return -EINVAL;
    pthread_mutex_lock(&inf->cache_lock);
    cache_entry *e = keymap_get(&inf->cache, key);
    int r = 0;
    if (!e && inf->cache.size >= inf->max_items)
        r = -ENOSPC;
    else if (e && ((e->real && object_rv(e->real) > rv) || (e->assumed && e->assumed_rv > rv)))
        r = -ESTALE;
    if (r == 0) {
        if (!e)
            e = entry_new(inf, key);
        entry_drop_assumed(inf, e);
        e->assumed = json_incref(obj);
        e->assumed_rv = rv;
        inf->n_assumed++;
    }
    pthread_mutex_unlock(&inf->cache_lock);
    return r;
}

int informer_unassume(informer *inf, const char *key)
{
    if (!key)
        return -ENOENT;
    pthread_mutex_lock(&inf->cache_lock);
    cache_entry *e = keymap_get(&inf->cache, key);
    int r = -ENOENT;
    if (e && e->assumed) {
        entry_drop_assumed(inf, e);
        entry_release_if_empty(inf, e);
        r = 0;
    }
    pthread_mutex_unlock(&inf->cache_lock);
    return r;
}

void informer_stats_read(informer *inf, informer_stats *ret)
{
    informer_stats s = {0};
    pthread_mutex_lock(&inf->lock);
    s.lists = inf->lists;
    s.relists = inf->relists;
    s.watches = inf->watches;
    s.errors = inf->errors;
    s.bad_objects = inf->reader_bad_objects;
    pthread_mutex_unlock(&inf->lock);
    pthread_mutex_lock(&inf->cache_lock);
    s.events = inf->events;
    s.bookmarks = inf->bookmarks;
    s.bad_objects += inf->bad_objects;
    s.dropped = inf->dropped;
    s.resource_version = inf->rv;
    s.items = inf->cache.size;
    s.assumed = inf->n_assumed;
    pthread_mutex_unlock(&inf->cache_lock);
    *ret = s;
}
