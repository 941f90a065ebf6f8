/* A string-keyed hash map for pkg/reconcile's own use (the work queue's key states, the informer's
 * cache): chained buckets, FNV-1a, doubling at load 1. Internal to the module, not installed.
 *
 * The map does NOT copy keys: each key pointer must stay valid and unchanged while it is in the
 * map (callers store the key inside the value they insert). Not thread-safe: the owner locks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct keymap_node {
    const char *key;
    void *value;
    uint64_t hash;
    struct keymap_node *next;
} keymap_node;

typedef struct keymap {
    keymap_node **buckets;
    size_t n_buckets; /* 0 or a power of two */
    size_t size;
} keymap;

#define KEYMAP_INIT ((keymap){0})

/* The value stored under key, or NULL. */
void *keymap_get(const keymap *m, const char *key);
/* Inserts key → value. Returns 0, or -EEXIST (nothing changed) when key is already there. */
int keymap_put(keymap *m, const char *key, void *value);
/* Removes key and returns its value, or NULL when it was not there. */
void *keymap_remove(keymap *m, const char *key);
/* Visits every entry in no particular order. *iter starts at {0}; returns false at the end. The
 * map must not change during the walk (collect, then remove). */
typedef struct keymap_iter {
    size_t bucket;
    keymap_node *node;
} keymap_iter;
bool keymap_next(const keymap *m, keymap_iter *iter, const char **ret_key, void **ret_value);
/* Frees the map's storage (not keys or values); the map is empty and usable afterwards. */
void keymap_done(keymap *m);
