/* The module's string-keyed hash map; see keymap.h. */
#include "reconcile/keymap.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/macro.h"

static uint64_t hash_key(const char *key)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static keymap_node **slot_of(const keymap *m, const char *key, uint64_t h)
{
    keymap_node **slot = &m->buckets[h & (m->n_buckets - 1)];
    while (*slot && ((*slot)->hash != h || !streq((*slot)->key, key)))
        slot = &(*slot)->next;
    return slot;
}

void *keymap_get(const keymap *m, const char *key)
{
    if (m->n_buckets == 0)
        return NULL;
    keymap_node *n = *slot_of(m, key, hash_key(key));
    return n ? n->value : NULL;
}

static void grow(keymap *m)
{
    size_t n = m->n_buckets ? m->n_buckets * 2 : 16;
    keymap_node **b = xnew(keymap_node *, n);
    for (size_t i = 0; i < m->n_buckets; i++) {
        keymap_node *node = m->buckets[i];
        while (node) {
            keymap_node *next = node->next;
            keymap_node **head = &b[node->hash & (n - 1)];
            node->next = *head;
            *head = node;
            node = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = n;
}

int keymap_put(keymap *m, const char *key, void *value)
{
    if (m->size >= m->n_buckets)
        grow(m);
    uint64_t h = hash_key(key);
    keymap_node **slot = slot_of(m, key, h);
    if (*slot)
        return -EEXIST;
    keymap_node *n = xnew(keymap_node, 1);
    *n = (keymap_node){.key = key, .value = value, .hash = h};
    *slot = n;
    m->size++;
    return 0;
}

void *keymap_remove(keymap *m, const char *key)
{
    if (m->n_buckets == 0)
        return NULL;
    keymap_node **slot = slot_of(m, key, hash_key(key));
    keymap_node *n = *slot;
    if (!n)
        return NULL;
    *slot = n->next;
    void *v = n->value;
    free(n);
    m->size--;
    return v;
}

bool keymap_next(const keymap *m, keymap_iter *iter, const char **ret_key, void **ret_value)
{
    keymap_node *n = iter->node ? iter->node->next : NULL;
    while (!n && iter->bucket < m->n_buckets)
        n = m->buckets[iter->bucket++];
    iter->node = n;
    if (!n)
        return false;
    if (ret_key)
        *ret_key = n->key;
    if (ret_value)
        *ret_value = n->value;
    return true;
}

void keymap_done(keymap *m)
{
    for (size_t i = 0; i < m->n_buckets; i++) {
        keymap_node *n = m->buckets[i];
        while (n) {
            keymap_node *next = n->next;
            free(n);
            n = next;
        }
    }
    free(m->buckets);
    *m = KEYMAP_INIT;
}
