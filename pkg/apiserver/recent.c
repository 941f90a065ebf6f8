/* Recent values: the last value the apiserver saw of each recently written key, so that a
 * read-modify-write can start from it instead of reading etcd first (docs/apiserver.md,
 * "Reads before writes").
 *
 * Fed by the watch cache's one etcd watch (every put and delete under /stratus/v1/ except
 * Events), by the workers' own successful writes, and by the current value a failed
 * compare-and-swap returns. Only ever a guess: a value taken from here may only lead to a write
 * guarded by the revision it carries (internal.h, read_for_update).
 *
 * A hash table of entries on a least-recently-used list, bounded in bytes; a deletion is kept as
 * a tombstone so an older value arriving late cannot bring the key back. One mutex: every
 * operation is a lookup and a copy.
 *
 * An entry may also hold its value parsed (docs/apiserver.md, "What is parsed when"): the json_t
 * the apiserver made of exactly that value at exactly that revision — an object Bind or Apply
 * wrote, or one the watch cache parsed. It is shared between threads, so nobody changes it once
 * it is here (jansson's reference counts are atomic; reading is safe). It goes with its value:
 * a newer revision or a deletion drops it, so a value someone else wrote is never answered with
 * an older parse. Parsed copies are about twelve times the size of their text: they have a bound
 * of their own (PARSED_SHARE times the text's, estimated from the text's length) and their own LRU
 * list; dropping one keeps its text. Most of them are the very objects the watch cache's ring
 * holds, so the bound overstates what they add. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/list.h"
#include "internal.h"

typedef struct entry {
    struct entry *hnext;       /* hash chain */
    struct entry *prev, *next; /* LRU list: head is the most recently used */
    uint64_t hash;
    int64_t rev;
    char *value; /* NULL: deleted at rev, or too big to keep (big) */
    size_t len;
    bool big;
    size_t bytes;                /* what it counts against the bound */
    json_t *parsed;              /* value parsed, shared and never changed; NULL: none */
    bool written;                /* value is object_to_store(parsed): the apiserver wrote it */
    struct entry *pprev, *pnext; /* LRU list of the entries with parsed */
    char key[];
} entry;

struct recent {
    pthread_mutex_t lock;
    entry **buckets;
    size_t n_buckets, n, bytes, max_bytes;
    entry *head, *tail;
    entry *phead, *ptail; /* entries with parsed, most recently used first */
    size_t n_parsed, parsed_bytes, max_parsed_bytes;
    uint64_t hits, misses, parsed_hits;
};

#define ENTRY_OVERHEAD (sizeof(entry) + 32) /* malloc headers, the bucket slot */
/* What a parsed value costs, from its text's length: jansson's nodes and hash tables measured
 * 12-15× the compact text of an instance or a ledger (malloc_usable_size). */
#define PARSED_FACTOR 12
/* The parsed copies' bound, in multiples of the text's. At 1× a default apiserver (16 MiB) kept
 * ~2,600 parsed instances, and in `scheduler-bench --instances 2000` Bind found 2,723 of 4,000
 * instances parsed (the rest had been applied too long before); at 4× it found all 4,000. */
#define PARSED_SHARE 4

static uint64_t hash_key(const char *k)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ULL;
    return h;
}

recent *recent_new(size_t max_bytes)
{
    recent *r = xnew(recent, 1);
    pthread_mutex_init(&r->lock, NULL);
    r->n_buckets = 1024;
    r->buckets = xnew(entry *, r->n_buckets);
    r->max_bytes = max_bytes;
    r->max_parsed_bytes = PARSED_SHARE * max_bytes;
    return r;
}

recent *recent_free(recent *r)
{
    if (!r)
        return NULL;
    for (entry *e = r->head, *next; e; e = next) {
        next = e->next;
        json_decref(e->parsed);
        free(e->value);
        free(e);
    }
    free(r->buckets);
    pthread_mutex_destroy(&r->lock);
    free(r);
    return NULL;
}

static entry **slot(recent *r, const char *key, uint64_t h)
{
    entry **p = &r->buckets[h & (r->n_buckets - 1)];
    while (*p && ((*p)->hash != h || strcmp((*p)->key, key) != 0))
        p = &(*p)->hnext;
    return p;
}

static void lru_unlink(recent *r, entry *e)
{
    LIST_REMOVE_TAIL(prev, next, r->head, r->tail, e);
}

static void lru_push(recent *r, entry *e)
{
    LIST_PREPEND_TAIL(prev, next, r->head, r->tail, e);
}

static size_t parsed_cost(const entry *e)
{
    return PARSED_FACTOR * e->len + 64;
}

static void parsed_unlink(recent *r, entry *e)
{
    LIST_REMOVE_TAIL(pprev, pnext, r->phead, r->ptail, e);
}

static void parsed_push(recent *r, entry *e)
{
    LIST_PREPEND_TAIL(pprev, pnext, r->phead, r->ptail, e);
}

/* Forgets e's parsed value (its text stays). */
static void parsed_drop(recent *r, entry *e)
{
    if (!e->parsed)
        return;
    parsed_unlink(r, e);
    r->parsed_bytes -= parsed_cost(e);
    r->n_parsed--;
    json_decref(e->parsed);
    e->parsed = NULL;
}

/* Gives e (holding a value at its revision) that value parsed: takes a new reference. */
static void parsed_attach(recent *r, entry *e, json_t *parsed, bool written)
{
    if (!parsed || e->parsed || !e->value || parsed_cost(e) > r->max_parsed_bytes / 4)
        return;
    e->parsed = json_incref(parsed);
    e->written = written;
    r->parsed_bytes += parsed_cost(e);
    r->n_parsed++;
    parsed_push(r, e);
    while (r->parsed_bytes > r->max_parsed_bytes && r->ptail && r->ptail != e)
        parsed_drop(r, r->ptail);
}

static void drop(recent *r, entry *e)
{
    *slot(r, e->key, e->hash) = e->hnext;
    lru_unlink(r, e);
    parsed_drop(r, e);
    r->bytes -= e->bytes;
    r->n--;
    free(e->value);
    free(e);
}

static void grow(recent *r)
{
    size_t n = r->n_buckets * 2;
    entry **b = xnew(entry *, n);
    for (size_t i = 0; i < r->n_buckets; i++)
        for (entry *e = r->buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(r->buckets);
    r->buckets = b;
    r->n_buckets = n;
}

void recent_put(recent *r, const char *key, const char *value, size_t len, int64_t rev)
{
    recent_put_parsed(r, key, value, len, rev, NULL);
}

static void put(recent *r, const char *key, const char *value, size_t len, int64_t rev,
                json_t *parsed, bool written);

void recent_put_parsed(recent *r, const char *key, const char *value, size_t len, int64_t rev,
                       json_t *parsed)
{
    put(r, key, value, len, rev, parsed, false);
}

void recent_put_written(recent *r, const char *key, const char *value, size_t len, int64_t rev,
                        json_t *obj)
{
    put(r, key, value, len, rev, obj, true);
}

static void put(recent *r, const char *key, const char *value, size_t len, int64_t rev,
                json_t *parsed, bool written)
{
    if (!r || !key || rev <= 0)
        return;
    size_t klen = strlen(key);
    size_t bytes = ENTRY_OVERHEAD + klen + 1 + (value ? len + 1 : 0);
    bool big = bytes > r->max_bytes / 4; /* known to exist, not worth keeping */
    if (big)
        value = NULL, len = 0, bytes = ENTRY_OVERHEAD + klen + 1;
    char *copy = NULL;
    if (value) {
        copy = xmalloc(len + 1);
        memcpy(copy, value, len);
        copy[len] = 0;
    }
    uint64_t h = hash_key(key);
    pthread_mutex_lock(&r->lock);
    entry **p = slot(r, key, h);
    entry *e = *p;
    if (e && e->rev >= rev) {
        /* What is known is as new or newer. The same revision is the same value (etcd writes a
         * key once per revision): it may still lack its parsed form. */
        if (e->rev == rev)
            parsed_attach(r, e, parsed, written);
        pthread_mutex_unlock(&r->lock);
        free(copy);
        return;
    }
    if (e) {
        lru_unlink(r, e);
        parsed_drop(r, e);
        r->bytes -= e->bytes;
        free(e->value);
    } else {
        e = xmalloc(sizeof(entry) + klen + 1);
        memcpy(e->key, key, klen + 1);
        e->hash = h;
        e->hnext = NULL;
        e->prev = e->next = NULL;
        e->parsed = NULL;
        e->pprev = e->pnext = NULL;
        *p = e;
        r->n++;
    }
    e->rev = rev;
    e->value = copy;
    e->len = copy ? len : 0;
    e->big = big;
    e->bytes = bytes;
    r->bytes += bytes;
    lru_push(r, e);
    while (r->bytes > r->max_bytes && r->tail && r->tail != e)
        drop(r, r->tail);
    parsed_attach(r, e, parsed, written);
    if (r->n > r->n_buckets)
        grow(r);
    pthread_mutex_unlock(&r->lock);
}

int recent_get(recent *r, const char *key, char **ret_value, size_t *ret_len, int64_t *ret_rev)
{
    return recent_get_parsed(r, key, ret_value, ret_len, ret_rev, NULL);
}

int recent_get_parsed(recent *r, const char *key, char **ret_value, size_t *ret_len,
                      int64_t *ret_rev, json_t **ret_parsed)
{
    if (ret_parsed)
        *ret_parsed = NULL;
    if (!r || !key)
        return -ENOENT;
    uint64_t h = hash_key(key);
    pthread_mutex_lock(&r->lock);
    entry *e = *slot(r, key, h);
    if (!e || !e->value) {
        r->misses++;
        int ret = e && e->big ? -EFBIG : -ENOENT;
        pthread_mutex_unlock(&r->lock);
        return ret;
    }
    r->hits++;
    lru_unlink(r, e);
    lru_push(r, e);
    char *copy = xmalloc(e->len + 1);
    memcpy(copy, e->value, e->len + 1);
    *ret_len = e->len;
    *ret_rev = e->rev;
    if (ret_parsed && e->parsed) {
        r->parsed_hits++;
        parsed_unlink(r, e);
        parsed_push(r, e);
        *ret_parsed = json_incref(e->parsed);
    }
    pthread_mutex_unlock(&r->lock);
    *ret_value = copy;
    return 0;
}

void recent_attach(recent *r, const char *key, int64_t rev, json_t *parsed)
{
    if (!r || !key || !parsed)
        return;
    uint64_t h = hash_key(key);
    pthread_mutex_lock(&r->lock);
    entry *e = *slot(r, key, h);
    if (e && e->rev == rev)
        parsed_attach(r, e, parsed, false);
    pthread_mutex_unlock(&r->lock);
}

json_t *recent_parsed_at(recent *r, const char *key, int64_t rev, bool *ret_written)
{
    if (ret_written)
        *ret_written = false;
    if (!r || !key)
        return NULL;
    uint64_t h = hash_key(key);
    json_t *o = NULL;
    pthread_mutex_lock(&r->lock);
    entry *e = *slot(r, key, h);
    if (e && e->rev == rev && e->parsed) {
        r->parsed_hits++;
        o = json_incref(e->parsed);
        if (ret_written)
            *ret_written = e->written;
    }
    pthread_mutex_unlock(&r->lock);
    return o;
}

void recent_clear(recent *r)
{
    pthread_mutex_lock(&r->lock);
    for (entry *e = r->head, *next; e; e = next) {
        next = e->next;
        json_decref(e->parsed);
        free(e->value);
        free(e);
    }
    memset(r->buckets, 0, r->n_buckets * sizeof(*r->buckets));
    r->head = r->tail = NULL;
    r->phead = r->ptail = NULL;
    r->n = r->bytes = 0;
    r->n_parsed = r->parsed_bytes = 0;
    pthread_mutex_unlock(&r->lock);
}

void recent_stats(recent *r, recent_counts *ret)
{
    pthread_mutex_lock(&r->lock);
    *ret = (recent_counts){.keys = r->n,
                           .bytes = r->bytes,
                           .hits = r->hits,
                           .misses = r->misses,
                           .parsed = r->n_parsed,
                           .parsed_bytes = r->parsed_bytes,
                           .parsed_hits = r->parsed_hits};
    pthread_mutex_unlock(&r->lock);
}
