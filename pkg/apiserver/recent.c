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
 * operation is a lookup and a copy. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "internal.h"

typedef struct entry {
    struct entry *hnext;       /* hash chain */
    struct entry *prev, *next; /* LRU list: head is the most recently used */
    uint64_t hash;
    int64_t rev;
    char *value; /* NULL: deleted at rev, or too big to keep (big) */
    size_t len;
    bool big;
    size_t bytes; /* what it counts against the bound */
    char key[];
} entry;

struct recent {
    pthread_mutex_t lock;
    entry **buckets;
    size_t n_buckets, n, bytes, max_bytes;
    entry *head, *tail;
    uint64_t hits, misses;
};

#define ENTRY_OVERHEAD (sizeof(entry) + 32) /* malloc headers, the bucket slot */

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
    return r;
}

recent *recent_free(recent *r)
{
    if (!r)
        return NULL;
    for (entry *e = r->head, *next; e; e = next) {
        next = e->next;
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
    if (e->prev)
        e->prev->next = e->next;
    else
        r->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        r->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(recent *r, entry *e)
{
    e->next = r->head;
    if (r->head)
        r->head->prev = e;
    r->head = e;
    if (!r->tail)
        r->tail = e;
}

static void drop(recent *r, entry *e)
{
    *slot(r, e->key, e->hash) = e->hnext;
    lru_unlink(r, e);
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
        pthread_mutex_unlock(&r->lock);
        free(copy); /* what is known is as new or newer */
        return;
    }
    if (e) {
        lru_unlink(r, e);
        r->bytes -= e->bytes;
        free(e->value);
    } else {
        e = xmalloc(sizeof(entry) + klen + 1);
        memcpy(e->key, key, klen + 1);
        e->hash = h;
        e->hnext = NULL;
        e->prev = e->next = NULL;
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
    if (r->n > r->n_buckets)
        grow(r);
    pthread_mutex_unlock(&r->lock);
}

int recent_get(recent *r, const char *key, char **ret_value, size_t *ret_len, int64_t *ret_rev)
{
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
    pthread_mutex_unlock(&r->lock);
    *ret_value = copy;
    return 0;
}

void recent_clear(recent *r)
{
    pthread_mutex_lock(&r->lock);
    for (entry *e = r->head, *next; e; e = next) {
        next = e->next;
        free(e->value);
        free(e);
    }
    memset(r->buckets, 0, r->n_buckets * sizeof(*r->buckets));
    r->head = r->tail = NULL;
    r->n = r->bytes = 0;
    pthread_mutex_unlock(&r->lock);
}

void recent_stats(recent *r, recent_counts *ret)
{
    pthread_mutex_lock(&r->lock);
    *ret = (recent_counts){.keys = r->n, .bytes = r->bytes, .hits = r->hits, .misses = r->misses};
    pthread_mutex_unlock(&r->lock);
}
