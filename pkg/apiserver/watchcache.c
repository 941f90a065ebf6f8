/* The watch cache: every Watch call of every client is served from ONE etcd watch on
 * /stratus/v1/, on one thread with its own libev loop and store.
 *
 * Each etcd event on an object key becomes an entry in a ring of the most recent events (the
 * object's new state, or its last state for a delete, and its previous state), encoded at most
 * once per event type however many watchers get it. The etcd watch does not ask for previous
 * values (prev_kv): etcd 3.4 reads each one through a copy of its whole write buffer, which was
 * half of etcd's CPU under a stream of writes. A change's previous state is the newest state the
 * cache saw of the key — checked against etcd's version counter — and only when it has none
 * (the key's last change is older than the ring or the cache) is it read from etcd, at the
 * revision before the change, for all such events of a response at once. `base` is the revision
 * after which every event is in the ring (or still to come): a watcher asking for a resourceVersion
 * >= base gets the ring's later events replayed, then live ones; an older one is told to relist
 * (OUT_OF_RANGE), as is everyone if the cache's own etcd watch ever loses history.
 *
 * Selectors are applied per watcher, Kubernetes style: an object that starts matching arrives as
 * ADDED, one that stops matching as DELETED. Each watcher's stream has a bounded queue in
 * pkg/rpc; a watcher that falls behind it is ended with "relist" instead of growing memory.
 * Bookmarks tell watchers that asked for them how far they are up to date.
 *
 * gRPC threads only hand calls and cancellations over, through a locked inbox and ev_async. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/selector.h"
#include "base/alloc.h"
#include "base/log.h"
#include "internal.h"
#include "stratus/v1/stratus.pb-c.h"

/* Events are written once and never read back to be changed: not worth a recent value. */
#define EVENTS_PREFIX API_KEY_PREFIX "events/"

enum { WC_ADDED, WC_MODIFIED, WC_DELETED, _WC_TYPE_MAX };

static const Stratus__V1__WatchEvent__Type wc_proto_type[_WC_TYPE_MAX] = {
    [WC_ADDED] = STRATUS__V1__WATCH_EVENT__TYPE__ADDED,
    [WC_MODIFIED] = STRATUS__V1__WATCH_EVENT__TYPE__MODIFIED,
    [WC_DELETED] = STRATUS__V1__WATCH_EVENT__TYPE__DELETED,
};

typedef struct wc_event {
    int64_t rev;
    const api_kind_info *k;
    char *key;    /* the etcd key */
    char *ns;     /* "" for cluster-scoped kinds */
    json_t *obj;  /* new state, or the last state of a deleted object (resourceVersion = rev) */
    json_t *prev; /* the state before a modification; NULL for a creation or deletion */
    char *text;   /* obj's canonical JSON when made without a dump; NULL: dump obj */
    int64_t create_rev, version; /* etcd's, of the new state */
    bool deleted;
    rpc_encoded *enc[_WC_TYPE_MAX];
} wc_event;

typedef struct watcher {
    struct watcher *next;
    rpc_call *call;
    const api_kind_info *k;
    char *ns; /* NULL: every namespace */
    api_label_selector *ls;
    api_field_selector *fs;
    bool bookmarks;
    int64_t from_rev; /* as asked; 0 = from now */
    /* Events at or before this revision are the client's already (its List, or "from now").
     * It never moves with deliveries: one transaction is many events at one revision. */
    int64_t skip_until;
    int64_t bookmark_rev;
    uint64_t cursor; /* sequence number of the next ring event to offer */
    bool live;       /* caught up: gets events as they come; else catches up from the ring */
    bool cancelled;  /* set by gRPC's cancel callback; under wc->lock */
    struct watchcache *srv_wc;
} watcher;

struct watchcache {
    apiserver *srv;
    pthread_t thread;
    struct ev_loop *loop;
    store *st;
    store_watch *watch;
    ev_async wake;
    ev_timer bookmark_timer;
    ev_timer rewatch_timer;

    pthread_mutex_t lock; /* guards the inbox, `cancelled` flags, n_total and stop */
    watcher *inbox;
    bool cancels_pending;
    size_t n_total;
    bool stop;

    /* owned by the cache's thread */
    wc_event *ring;
    size_t cap, first, count;
    uint64_t first_seq; /* sequence number of ring[first]; events are numbered as they come */
    ev_timer catchup;   /* runs while some watcher is catching up */
    int64_t base, head;
    watcher *active;
    char *prefix_end;
    /* key → [object, create_revision, version]: the newest state the cache saw of the key, an
     * object of the ring (a reference to ring state), or null when that value was not a JSON
     * object. A change's previous state is that object when etcd's counters say so. */
    json_t *latest;
    /* Reads the previous states the cache does not hold, on a loop of their own: the watch's
     * loop would deliver the next events meanwhile, out of order. */
    struct ev_loop *fetch_loop;
    store *fetch_st;
};

static void event_clear(wc_event *ev)
{
    free(ev->key);
    free(ev->ns);
    free(ev->text);
    json_decref(ev->obj);
    json_decref(ev->prev);
    for (int i = 0; i < _WC_TYPE_MAX; i++)
        rpc_encoded_free(ev->enc[i]);
    *ev = (wc_event){0};
}

static watcher *watcher_free(watcher *w)
{
    if (!w)
        return NULL;
    free(w->ns);
    api_label_selector_free(w->ls);
    api_field_selector_free(w->fs);
    free(w);
    return NULL;
}

/* Ends a watcher's call and forgets it. Cache thread. */
static void watcher_end(watchcache *wc, watcher *w, rpc_code code, const char *message)
{
    rpc_stream_finish(w->call, code, message);
    pthread_mutex_lock(&wc->lock);
    wc->n_total--;
    pthread_mutex_unlock(&wc->lock);
    watcher_free(w);
}

static bool matches(const watcher *w, const json_t *obj)
{
    return api_label_selector_matches(w->ls, api_object_labels(obj)) &&
           api_field_selector_matches(w->fs, obj);
}

static int send_event(wc_event *ev, int type, watcher *w)
{
    if (!ev->enc[type]) {
        _cleanup_free_ char *dumped = ev->text ? NULL : api_json_canonical(ev->obj);
        const char *text = ev->text ? ev->text : dumped;
        char rv[24];
        snprintf(rv, sizeof(rv), "%lld", (long long)ev->rev);
        Stratus__V1__WatchEvent msg = STRATUS__V1__WATCH_EVENT__INIT;
        msg.type = wc_proto_type[type];
        msg.object_json = (char *)text;
        msg.resource_version = rv;
        if (rpc_encode(&msg.base, &ev->enc[type]) < 0)
            return -ENOMEM;
    }
    return rpc_stream_send_encoded(w->call, ev->enc[type]);
}

/* Offers one event to one watcher. Returns < 0 when the watcher must go. */
static int deliver(wc_event *ev, watcher *w)
{
    if (ev->rev <= w->skip_until)
        return 0;
    if (ev->k != w->k || (w->ns && !streq(w->ns, ev->ns)))
        return 0;
    int type;
    if (ev->deleted)
        type = matches(w, ev->obj) ? WC_DELETED : -1;
    else if (!ev->prev)
        type = matches(w, ev->obj) ? WC_ADDED : -1;
    else {
        bool was = matches(w, ev->prev), is = matches(w, ev->obj);
        type = was && is ? WC_MODIFIED : is ? WC_ADDED : was ? WC_DELETED : -1;
    }
    return type < 0 ? 0 : send_event(ev, type, w);
}

#define WATCH_BATCH_BYTES (256 * 1024) /* per message of several events, well under 4 MiB */

#define CATCHUP_MARGIN 64 /* leave room in a stream's queue for what comes live meanwhile */

static wc_event *ring_at(watchcache *wc, uint64_t seq)
{
    return &wc->ring[(wc->first + (size_t)(seq - wc->first_seq)) % wc->cap];
}

/* Offers a watcher the ring's events from its cursor on, as fast as its stream drains. Returns
 * < 0 when it must go; leaves it not live when its queue is full (the timer comes back). */
static int catch_up(watchcache *wc, watcher *w)
{
    uint64_t end = wc->first_seq + wc->count;
    while (w->cursor < end) {
        if (rpc_stream_room(w->call) < CATCHUP_MARGIN)
            return 0;
        if (deliver(ring_at(wc, w->cursor), w) < 0)
            return -1;
        w->cursor++;
    }
    w->live = true;
    return 0;
}

static void catchup_needed(watchcache *wc)
{
    if (!ev_is_active(&wc->catchup))
        ev_timer_again(wc->loop, &wc->catchup);
}

static void catchup_fired(struct ev_loop *loop, ev_timer *t, int revents)
{
    watchcache *wc = t->data;
    bool behind = false;
    watcher **pp = &wc->active;
    while (*pp) {
        watcher *w = *pp;
        if (!w->live && catch_up(wc, w) < 0) {
            *pp = w->next;
            watcher_end(wc, w, RPC_CODE_RELIST, "the watch fell behind; list again and re-watch");
            continue;
        }
        behind |= !w->live;
        pp = &w->next;
    }
    if (!behind)
        ev_timer_stop(loop, t);
}

/* A new event (the newest in the ring, numbered seq) to every live watcher. A watcher whose
 * queue is full is not dropped: it falls back to catching up from the ring, and is told to relist
 * only if the ring moves past it — so a slow client costs the shared ring, never its own copy. */
static void fan_out(watchcache *wc, wc_event *ev, uint64_t seq)
{
    watcher **pp = &wc->active;
    while (*pp) {
        watcher *w = *pp;
        if (w->live) {
            if (rpc_stream_room(w->call) == 0) {
                w->live = false;
                w->cursor = seq;
                catchup_needed(wc);
            } else if (deliver(ev, w) < 0) {
                *pp = w->next;
                watcher_end(wc, w, RPC_CODE_RELIST,
                            "the watch fell behind; list again and re-watch");
                continue;
            } else
                w->cursor = seq + 1;
        }
        pp = &w->next;
    }
}

static void relist_everyone(watchcache *wc, const char *why)
{
    while (wc->active) {
        watcher *w = wc->active;
        wc->active = w->next;
        watcher_end(wc, w, RPC_CODE_RELIST, why);
    }
}

/* "/stratus/v1/<plural>/[<ns>/]<name>" → kind and namespace; NULL for the ledgers and leases. */
static const api_kind_info *key_kind(const char *key, char **ret_ns)
{
    size_t plen = strlen(API_KEY_PREFIX);
    if (strncmp(key, API_KEY_PREFIX, plen) != 0)
        return NULL;
    const char *plural = key + plen;
    const char *slash = strchr(plural, '/');
    if (!slash)
        return NULL;
    char buf[64];
    size_t n = (size_t)(slash - plural);
    if (n >= sizeof(buf))
        return NULL;
    memcpy(buf, plural, n);
    buf[n] = '\0';
    const api_kind_info *k = api_kind_lookup(buf);
    if (!k || !streq(k->plural, buf))
        return NULL;
    const char *rest = slash + 1;
    if (k->namespaced) {
        const char *s2 = strchr(rest, '/');
        if (!s2)
            return NULL;
        *ret_ns = xstrndup(rest, (size_t)(s2 - rest));
    } else
        *ret_ns = xstrdup("");
    return k;
}

static json_t *latest_object(watchcache *wc, const char *key)
{
    return json_array_get(json_object_get(wc->latest, key), 0);
}

/* obj NULL: the key's newest value is not a JSON object. */
static void latest_set(watchcache *wc, const char *key, json_t *obj, int64_t create_rev,
                       int64_t version)
{
    json_object_set_new(wc->latest, key,
                        json_pack("[O?,I,I]", obj, (json_int_t)create_rev, (json_int_t)version));
}

static void ring_push(watchcache *wc, wc_event *ev)
{
    if (wc->count == wc->cap) {
        /* whoever still needs the oldest event can no longer be caught up */
        watcher **pp = &wc->active;
        while (*pp) {
            watcher *w = *pp;
            if (!w->live && w->cursor <= wc->first_seq) {
                *pp = w->next;
                watcher_end(
                    wc, w, RPC_CODE_RELIST,
                    "the watch fell behind the apiserver's watch cache; list again and re-watch");
                continue;
            }
            pp = &w->next;
        }
        wc_event *old = &wc->ring[wc->first];
        wc->base = old->rev; /* events after it stay complete */
        if (!old->deleted && latest_object(wc, old->key) == old->obj)
            json_object_del(wc->latest, old->key);
        event_clear(old);
        wc->first = (wc->first + 1) % wc->cap;
        wc->first_seq++;
        wc->count--;
    }
    size_t at = (wc->first + wc->count) % wc->cap;
    if (ev->deleted)
        json_object_del(wc->latest, ev->key);
    else
        latest_set(wc, ev->key, ev->obj, ev->create_rev, ev->version);
    wc->ring[at] = *ev;
    wc->count++;
    fan_out(wc, &wc->ring[at], wc->first_seq + wc->count - 1);
}

static void start_watch(watchcache *wc, int64_t from);

/* The ring can no longer promise completeness: everyone relists, and the cache starts over from
 * etcd's revision after a short pause. Until then (wc->watch == NULL) new watchers are told to
 * relist too: one accepted meanwhile would miss what is written before the cache watches again. */
static void lose_history(watchcache *wc, store_watch *sw)
{
    relist_everyone(wc, "the apiserver's watch cache lost history; list again and re-watch");
    /* What the workers guess from may have missed writes too: forget it. */
    recent_clear(wc->srv->recent);
    store_watch_free(sw);
    wc->watch = NULL;
    ev_timer_set(&wc->rewatch_timer, 0.1, 0.0);
    ev_timer_start(wc->loop, &wc->rewatch_timer);
}

/* Whether the newest state the cache saw of the key is the one right before event e (a change or
 * a delete of an object): etcd's counters say so for a change; a delete has none, but the cache
 * sees every event of its watch in order, so its newest state is the one. */
static bool previous_known(watchcache *wc, const store_event *e)
{
    json_t *l = json_object_get(wc->latest, e->kv.key);
    if (!l)
        return false;
    if (e->type == STORE_EVENT_DELETE)
        return true;
    return json_integer_value(json_array_get(l, 1)) == e->kv.create_revision &&
           json_integer_value(json_array_get(l, 2)) == e->kv.version - 1;
}

/* Where an event's previous state comes from, decided before any event of its response is
 * pushed into the ring (a push may evict, and forget, the cache's state of another key). */
typedef struct prev_source {
    bool in_response;      /* an earlier event of the response made it */
    json_t *known;         /* else the cache's state (a reference; NULL: not an object) */
    store_result *fetched; /* else read from etcd: the key at the revision before */
} prev_source;

static void prev_source_clear(prev_source *p)
{
    json_decref(p->known);
    store_result_free(p->fetched);
    *p = (prev_source){0};
}

/* The object as it was before event e, from its source: shared, never changed, or parsed.
 * NULL when that value was not a JSON object. made: the states made by this response so far. */
static json_t *previous_state(const prev_source *p, const json_t *made, const char *key)
{
    if (p->in_response) {
        json_t *o = json_object_get(made, key);
        return json_is_object(o) ? json_incref(o) : NULL;
    }
    if (p->fetched)
        return object_from_kv(&p->fetched->kvs[0]);
    return json_incref(p->known);
}

/* The object a put made: the recent values' parse of exactly this key and revision when they hold
 * it (what a worker wrote, or parsed, at that revision; shared and never changed), else parsed
 * from the event. Either way resourceVersion is rev. A value written by anyone else is at a
 * revision the recent values have no parse of, so it is parsed from its bytes. When a worker
 * wrote it, the value is the object's canonical text but for resourceVersion: *ret_text is the
 * event's text, made from it without a dump (else NULL). */
static json_t *new_state(watchcache *wc, const store_kv *kv, char **ret_text)
{
    bool written;
    json_t *o = recent_parsed_at(wc->srv->recent, kv->key, kv->mod_revision, &written);
    *ret_text = o && written
                    ? object_text_with_resource_version(kv->value, kv->value_len, kv->mod_revision)
                    : NULL;
    return o ? o : object_from_kv(kv);
}

/* The last state of a deleted object, with resourceVersion the deletion's revision: a copy of the
 * previous state's top level and metadata (that state may be shared; the reference is taken). */
static json_t *deleted_state(json_t *taken_prev, int64_t rev)
{
    _cleanup_(json_decrefp) json_t *prev = taken_prev;
    if (!prev)
        return NULL;
    json_t *o = json_copy(prev);
    json_t *md = json_object_get(prev, "metadata");
    if (json_is_object(md))
        json_object_set_new(o, "metadata", json_copy(md));
    api_object_set_resource_version(o, rev);
    return o;
}

#define FETCH_IN_FLIGHT 128
#define FETCH_TRIES     5

/* Reads from etcd the states at the revision before events[want[0..n)], into src[].fetched,
 * FETCH_IN_FLIGHT at a time. A member that refuses or drops the request (a leader change, a
 * restart) is tried again after 0.1, 0.2, 0.4, 0.8 s; any other failure (a timeout: the thread
 * waited the whole request timeout already), or running out of tries, is returned. */
static int fetch_states(watchcache *wc, const store_event *events, const size_t *want, size_t n,
                        prev_source *src)
{
    store_sync *syncs = xnew(store_sync, MIN(n, (size_t)FETCH_IN_FLIGHT));
    int err = 0;
    for (size_t from = 0; from < n && err == 0; from += FETCH_IN_FLIGHT) {
        size_t m = MIN(n - from, (size_t)FETCH_IN_FLIGHT);
        for (int tries = 1; err == 0; tries++) {
            size_t sent[FETCH_IN_FLIGHT], n_sent = 0;
            for (size_t j = 0; j < m && err == 0; j++) {
                const store_event *e = &events[want[from + j]];
                if (src[want[from + j]].fetched)
                    continue;
                store_range_opts o = {
                    .key = e->kv.key, .limit = 1, .revision = e->kv.mod_revision - 1};
                syncs[n_sent] = STORE_SYNC_INIT;
                err = store_range(wc->fetch_st, &o, store_sync_done, &syncs[n_sent]);
                if (err >= 0)
                    sent[n_sent++] = want[from + j];
            }
            bool again = false;
            for (size_t j = 0; j < n_sent; j++) {
                size_t i = sent[j];
                store_result *r = NULL;
                int e = store_wait(wc->fetch_st, &syncs[j], &r);
                if (e >= 0 && r->n_kvs != 1)
                    e = -ENOENT; /* etcd reported a change of a key it did not have */
                if (e >= 0) {
                    src[i].fetched = r;
                    continue;
                }
                store_result_free(r);
                /* Not after a timeout: the thread has waited long enough already. */
                if ((e == -EHOSTDOWN || e == -ECONNRESET) && tries < FETCH_TRIES) {
                    again = true;
                    continue;
                }
                if (err == 0) {
                    err = e;
                    log_warning("watch cache: reading the state of %s before revision %lld: %s",
                                events[i].kv.key, (long long)events[i].kv.mod_revision,
                                store_strerror(e));
                }
            }
            if (!again || err < 0)
                break;
            usleep(100000u << (tries - 1));
        }
    }
    free(syncs);
    return err;
}

/* Decides, for each event of a response that needs a previous state (a change or a delete of an
 * object), where it comes from: an earlier event of the response, the cache's newest state of
 * the key, or — when the cache holds none (the key's last change left the ring, or came before
 * the cache started) — etcd at the revision before, read here for all such events at once. This
 * blocks the cache's thread for the round trips. Returns < 0 when a state cannot be read
 * (compacted meanwhile: -ERANGE; etcd gone): history is lost. */
static int previous_sources(watchcache *wc, const store_event *events, size_t n,
                            const api_kind_info *const *kinds, prev_source *src)
{
    _cleanup_(json_decrefp) json_t *seen = json_object(); /* object keys earlier in the response */
    size_t *want = xnew(size_t, n), n_want = 0;
    for (size_t i = 0; i < n; i++) {
        const store_event *e = &events[i];
        if (!kinds[i])
            continue;
        bool change = e->type == STORE_EVENT_DELETE || e->kv.create_revision != e->kv.mod_revision;
        if (change) {
            if (json_object_get(seen, e->kv.key))
                src[i].in_response = true;
            else if (previous_known(wc, e))
                src[i].known = json_incref(latest_object(wc, e->kv.key));
            else
                want[n_want++] = i;
        }
        json_object_set_new(seen, e->kv.key, json_true());
    }
    int err = n_want ? fetch_states(wc, events, want, n_want, src) : 0;
    free(want);
    return err;
}

static void on_etcd_events(store_watch *sw, const store_event *events, size_t n, int64_t revision,
                           int error, void *userdata)
{
    watchcache *wc = userdata;
    if (error) {
        /* History we had not seen yet was compacted (-ERANGE) or a message was too large. */
        lose_history(wc, sw);
        return;
    }
    if (n == 0 && revision > wc->head)
        wc->head = revision;
    const api_kind_info **kinds = xnew(const api_kind_info *, n);
    char **nss = xnew(char *, n);
    prev_source *src = xnew(prev_source, n);
    for (size_t i = 0; i < n; i++)
        kinds[i] = key_kind(events[i].kv.key, &nss[i]);
    bool lost = previous_sources(wc, events, n, kinds, src) < 0;
    /* A response's events go to each watcher as one batch (rpc_stream_hold): sent as they came,
     * the first went alone and the rest behind it, ~5 events a message where a response held 40.
     * Held only from here: previous_sources may wait on etcd, and a held stream does not drain
     * what it queued before either. */
    for (watcher *w = wc->active; w; w = w->next)
        rpc_stream_hold(w->call);
    _cleanup_(json_decrefp) json_t *made = json_object(); /* key → this response's newest state */
    for (size_t i = 0; i < n && !lost; i++) {
        const store_event *e = &events[i];
        int64_t rev = e->kv.mod_revision;
        if (rev > wc->head)
            wc->head = rev;
        bool noted = strncmp(e->kv.key, EVENTS_PREFIX, sizeof(EVENTS_PREFIX) - 1) != 0;
        const api_kind_info *k = kinds[i];
        if (!k) {
            if (noted) /* a ledger or a lease: the workers parse what they take of it */
                recent_put(wc->srv->recent, e->kv.key,
                           e->type == STORE_EVENT_DELETE ? NULL : e->kv.value, e->kv.value_len,
                           rev);
            continue;
        }
        wc_event ev = {.rev = rev,
                       .k = k,
                       .key = xstrdup(e->kv.key),
                       .ns = TAKE_PTR(nss[i]),
                       .create_rev = e->kv.create_revision,
                       .version = e->kv.version,
                       .deleted = e->type == STORE_EVENT_DELETE};
        if (ev.deleted) {
            ev.obj = deleted_state(previous_state(&src[i], made, ev.key), rev);
        } else {
            ev.obj = new_state(wc, &e->kv, &ev.text);
            if (e->kv.create_revision != rev)
                ev.prev = previous_state(&src[i], made, ev.key);
        }
        json_object_set(made, ev.key, ev.obj && !ev.deleted ? ev.obj : json_null());
        /* From here on the objects are shared (the ring, its map of newest states, the recent
         * values) and never changed. */
        if (noted)
            recent_put_parsed(wc->srv->recent, e->kv.key, ev.deleted ? NULL : e->kv.value,
                              e->kv.value_len, rev, ev.deleted ? NULL : ev.obj);
        if (!ev.obj) {
            /* not a JSON object (etcd is not trusted): nothing to send, but the next change of
             * the key must not take an older state for its previous one */
            if (ev.deleted)
                json_object_del(wc->latest, ev.key);
            else
                latest_set(wc, ev.key, NULL, ev.create_rev, ev.version);
            event_clear(&ev);
            continue;
        }
        ring_push(wc, &ev);
    }
    for (size_t i = 0; i < n; i++) {
        prev_source_clear(&src[i]);
        free(nss[i]);
    }
    free(src);
    free(nss);
    free(kinds);
    for (watcher *w = wc->active; w; w = w->next) /* those still watching */
        rpc_stream_flush(w->call);
    if (lost)
        lose_history(wc, sw);
}

static void start_watch(watchcache *wc, int64_t from)
{
    wc->base = from - 1;
    if (wc->head < wc->base)
        wc->head = wc->base;
    if (store_watch_new(wc->st, API_KEY_PREFIX, wc->prefix_end, from, STORE_WATCH_PROGRESS,
                        on_etcd_events, wc, &wc->watch) < 0) {
        wc->watch = NULL;
        ev_timer_set(&wc->rewatch_timer, 1.0, 0.0);
        ev_timer_start(wc->loop, &wc->rewatch_timer);
    }
}

static bool stopping(watchcache *wc)
{
    pthread_mutex_lock(&wc->lock);
    bool stop = wc->stop;
    pthread_mutex_unlock(&wc->lock);
    return stop;
}

/* The revision etcd is at now: the cache starts right after it. */
static int current_revision(watchcache *wc, int64_t *ret)
{
    store_sync y = STORE_SYNC_INIT;
    store_result *r = NULL;
    int e = store_status(wc->st, store_sync_done, &y);
    if (e >= 0)
        e = store_wait(wc->st, &y, &r);
    if (e >= 0)
        *ret = r->revision;
    store_result_free(r);
    return e;
}

static void rewatch_fired(struct ev_loop *loop, ev_timer *t, int revents)
{
    watchcache *wc = t->data;
    int64_t rev;
    int e = current_revision(wc, &rev);
    /* That ran the loop nested: a stop handled meanwhile broke only the inner run. */
    if (stopping(wc)) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    if (e < 0) {
        ev_timer_set(&wc->rewatch_timer, 1.0, 0.0);
        ev_timer_start(loop, &wc->rewatch_timer);
        return;
    }
    /* Nobody may be left from before (new watchers were refused meanwhile; should one have come
     * in, it would miss the gap), and no cursor may point into the ring being emptied. */
    relist_everyone(wc, "the apiserver's watch cache lost history; list again and re-watch");
    json_object_clear(wc->latest);
    for (; wc->count > 0; wc->count--) {
        event_clear(&wc->ring[wc->first]);
        wc->first = (wc->first + 1) % wc->cap;
        wc->first_seq++;
    }
    start_watch(wc, rev + 1);
}

/* A new watcher: replay what it missed from the ring, or tell it to relist. */
static void watcher_start(watchcache *wc, watcher *w)
{
    if (!wc->watch) {
        watcher_end(wc, w, RPC_CODE_RELIST,
                    "the apiserver's watch cache is starting over; list again and re-watch");
        return;
    }
    if (w->from_rev == 0)
        w->skip_until = wc->head;
    else if (w->from_rev < wc->base) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "resourceVersion %lld is too old (the watch cache starts after %lld); list again "
                 "and watch from the list's resourceVersion",
                 (long long)w->from_rev, (long long)wc->base);
        watcher_end(wc, w, RPC_CODE_RELIST, msg);
        return;
    } else
        w->skip_until = w->from_rev;
    /* Replayed from the ring at the pace the client reads, then live. */
    w->cursor = wc->first_seq;
    w->live = false;
    if (catch_up(wc, w) < 0) {
        watcher_end(wc, w, RPC_CODE_RELIST, "the watch fell behind; list again and re-watch");
        return;
    }
    if (!w->live)
        catchup_needed(wc);
    w->next = wc->active;
    wc->active = w;
}

static void wake_fired(struct ev_loop *loop, ev_async *a, int revents)
{
    watchcache *wc = a->data;
    pthread_mutex_lock(&wc->lock);
    watcher *in = wc->inbox;
    wc->inbox = NULL;
    bool cancels = wc->cancels_pending;
    wc->cancels_pending = false;
    bool stop = wc->stop;
    pthread_mutex_unlock(&wc->lock);

    /* the inbox is newest first: start the oldest first */
    watcher *rev = NULL;
    while (in) {
        watcher *n = in->next;
        in->next = rev;
        rev = in;
        in = n;
    }
    while (rev) {
        watcher *n = rev->next;
        watcher_start(wc, rev);
        rev = n;
    }
    if (cancels || stop) {
        watcher **pp = &wc->active;
        while (*pp) {
            watcher *w = *pp;
            pthread_mutex_lock(&wc->lock);
            bool gone = w->cancelled;
            pthread_mutex_unlock(&wc->lock);
            if (gone || stop) {
                *pp = w->next;
                watcher_end(wc, w, stop ? RPC_CODE_UNAVAILABLE : RPC_CODE_CANCELLED,
                            stop ? "the apiserver is shutting down" : "cancelled");
                continue;
            }
            pp = &w->next;
        }
    }
    if (stop)
        ev_break(loop, EVBREAK_ALL);
}

static void bookmark_fired(struct ev_loop *loop, ev_timer *t, int revents)
{
    watchcache *wc = t->data;
    watcher **pp = &wc->active;
    while (*pp) {
        watcher *w = *pp;
        /* Every event up to head has been offered to every live watcher: a bookmark may say so.
         * Not to one still catching up from the ring: its bookmark would overtake the replayed
         * events it covers, and a client resuming from it would skip them. */
        int64_t at = MAX(wc->head, w->skip_until);
        /* And not into a full queue: that ends the stream ("fell behind"), where an event
         * would have made the watcher catch up from the ring instead; the next tick will do. */
        if (w->live && w->bookmarks && at > w->bookmark_rev && rpc_stream_room(w->call) > 0) {
            char rv[24];
            snprintf(rv, sizeof(rv), "%lld", (long long)at);
            Stratus__V1__WatchEvent msg = STRATUS__V1__WATCH_EVENT__INIT;
            msg.type = STRATUS__V1__WATCH_EVENT__TYPE__BOOKMARK;
            msg.resource_version = rv;
            if (rpc_stream_send(w->call, &msg.base) < 0) {
                *pp = w->next;
                watcher_end(wc, w, RPC_CODE_RELIST, "the watch fell behind; list again");
                continue;
            }
            w->bookmark_rev = at;
        }
        pp = &w->next;
    }
}

static void *watchcache_main(void *arg)
{
    watchcache *wc = arg;
    while (!stopping(wc))
        ev_run(wc->loop, 0);
    return NULL;
}

int watchcache_new(apiserver *srv, watchcache **ret)
{
    watchcache *wc = xnew(watchcache, 1);
    wc->srv = srv;
    wc->cap = srv->opts.watch_cache;
    wc->ring = xnew(wc_event, wc->cap);
    wc->latest = json_object();
    wc->prefix_end = store_prefix_end(API_KEY_PREFIX);
    wc->loop = ev_loop_new(EVFLAG_AUTO);
    pthread_mutex_init(&wc->lock, NULL);
    wc->fetch_loop = ev_loop_new(EVFLAG_AUTO);
    int e = store_new(wc->loop, &srv->opts.etcd, &wc->st);
    if (e >= 0)
        e = store_new(wc->fetch_loop, &srv->opts.etcd, &wc->fetch_st);
    int64_t rev = 0;
    if (e >= 0)
        e = current_revision(wc, &rev);
    if (e < 0) {
        store_free(wc->st);
        store_free(wc->fetch_st);
        ev_loop_destroy(wc->loop);
        ev_loop_destroy(wc->fetch_loop);
        free(wc->prefix_end);
        free(wc->ring);
        json_decref(wc->latest);
        free(wc);
        return e;
    }
    ev_async_init(&wc->wake, wake_fired);
    wc->wake.data = wc;
    ev_async_start(wc->loop, &wc->wake);
    double every = (double)srv->opts.bookmark_interval / USEC_PER_SEC;
    ev_timer_init(&wc->bookmark_timer, bookmark_fired, every, every);
    wc->bookmark_timer.data = wc;
    ev_timer_start(wc->loop, &wc->bookmark_timer);
    ev_init(&wc->catchup, catchup_fired);
    wc->catchup.repeat = 0.002;
    wc->catchup.data = wc;
    ev_init(&wc->rewatch_timer, rewatch_fired);
    wc->rewatch_timer.data = wc;
    start_watch(wc, rev + 1);
    pthread_create(&wc->thread, NULL, watchcache_main, wc);
    *ret = wc;
    return 0;
}

watchcache *watchcache_free(watchcache *wc)
{
    if (!wc)
        return NULL;
    pthread_mutex_lock(&wc->lock);
    wc->stop = true;
    pthread_mutex_unlock(&wc->lock);
    ev_async_send(wc->loop, &wc->wake);
    pthread_join(wc->thread, NULL);
    store_watch_free(wc->watch);
    store_free(wc->st);
    store_free(wc->fetch_st);
    ev_loop_destroy(wc->loop);
    ev_loop_destroy(wc->fetch_loop);
    for (size_t i = 0; i < wc->count; i++)
        event_clear(&wc->ring[(wc->first + i) % wc->cap]);
    free(wc->ring);
    json_decref(wc->latest);
    free(wc->prefix_end);
    pthread_mutex_destroy(&wc->lock);
    free(wc);
    return NULL;
}

static void on_cancel(rpc_call *call, void *userdata)
{
    watcher *w = userdata;
    watchcache *wc = w->srv_wc;
    pthread_mutex_lock(&wc->lock);
    w->cancelled = true;
    wc->cancels_pending = true;
    pthread_mutex_unlock(&wc->lock);
    ev_async_send(wc->loop, &wc->wake);
}

void watchcache_submit(watchcache *wc, rpc_call *call, const ProtobufCMessage *request)
{
    const Stratus__V1__WatchRequest *req = (const Stratus__V1__WatchRequest *)request;
    apierr e = {0};
    api_error ae = {0};
    const api_kind_info *k = api_kind_lookup(req->kind ? req->kind : "");
    if (!k) {
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "kind: unknown kind \"%.64s\"",
                   req->kind ? req->kind : "");
        reply_error(call, &e);
        return;
    }
    watcher *w = xnew(watcher, 1);
    w->call = call;
    w->k = k;
    w->srv_wc = wc;
    w->bookmarks = req->allow_bookmarks;
    if (k->namespaced && !req->all_namespaces)
        w->ns = xstrdup(req->namespace_ && *req->namespace_ ? req->namespace_ : "default");
    if (api_label_selector_parse(req->label_selector, &w->ls, &ae) < 0 ||
        api_field_selector_parse(req->field_selector, k, &w->fs, &ae) < 0 ||
        parse_revision(req->resource_version, "resourceVersion", &w->from_rev, &e) < 0) {
        if (ae.message[0])
            apierr_invalid(&e, &ae);
        watcher_free(w);
        reply_error(call, &e);
        return;
    }
    pthread_mutex_lock(&wc->lock);
    bool full = wc->n_total >= wc->srv->opts.watchers_max;
    bool stopping = wc->stop;
    if (!full && !stopping)
        wc->n_total++;
    pthread_mutex_unlock(&wc->lock);
    if (full || stopping) {
        watcher_free(w);
        rpc_call_reply(call, stopping ? RPC_CODE_UNAVAILABLE : RPC_CODE_RESOURCE_EXHAUSTED,
                       stopping ? "the apiserver is shutting down"
                                : "too many open watches on this apiserver",
                       NULL);
        return;
    }
    if (req->batch) {
        /* A watcher that is behind (a burst of binds, a replay) gets what waits for it in one
         * message rather than hundreds: gRPC's cost per message, on both ends, was a fifth of
         * the apiserver's and the scheduler's CPU under scheduler-bench. */
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
            &stratus__v1__watch_event__descriptor, "events");
        rpc_stream_coalesce(call, f->id, WATCH_BATCH_BYTES);
    }
    if (rpc_call_on_cancel(call, on_cancel, w) < 0)
        w->cancelled = true; /* already gone: the cache thread ends it */
    pthread_mutex_lock(&wc->lock);
    w->next = wc->inbox;
    wc->inbox = w;
    if (w->cancelled)
        wc->cancels_pending = true;
    pthread_mutex_unlock(&wc->lock);
    ev_async_send(wc->loop, &wc->wake);
}
