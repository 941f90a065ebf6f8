/* pkg/sched cache: what placing needs to know about the cluster, kept current one change at a
 * time — kube-scheduler's cache of NodeInfo. Per node: its sched_node (worked out once per Node
 * object or lease change), the claims of the instances counted on it, how many there are, which
 * images they run and how many members of each server group. The scheduler feeds it from its
 * informers' handlers and from its own assumptions and their reverts (sched_cache_set_claim with
 * what an instance counts now replaces what it counted before), so that a batch copies the
 * per-node facts (O(nodes)) instead of walking every instance of the cluster.
 *
 * It is not a second source of truth: every number is a function of the objects it was given,
 * and sched_cache_dump prints them so that a cache built one change at a time can be compared
 * with one built from scratch. Not thread-safe: one thread (the scheduler's loop) owns it. */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sched/sched.h"

typedef struct sched_cache sched_cache;

/* What one instance counts on a node. */
typedef struct sched_claim {
    const char *node;
    api_resources need;
    const char *image; /* NULL: none */
    const char *group; /* "<namespace>/<group>", NULL: none */
} sched_claim;

sched_cache *sched_cache_new(void);
/* NULL ok; returns NULL. */
sched_cache *sched_cache_free(sched_cache *c);

/* Sets what the instance key counts: claim, or nothing (NULL), replacing what it counted
 * before. Strings are copied. */
void sched_cache_set_claim(sched_cache *c, const char *key, const sched_claim *claim);
/* Sets the Node object of name (a reference is held while it is the node's), or NULL: the node
 * is gone (what is counted on it stays, for when it comes back). */
void sched_cache_set_node(sched_cache *c, const char *name, json_t *obj);
/* Whether the node's heartbeat lease exists. */
void sched_cache_set_lease(sched_cache *c, const char *name, bool alive);

/* A batch's copy of the nodes that have an object. */
typedef struct sched_view {
    sched_node *nodes;
    uint32_t *slots; /* the cache's slot of each node */
    size_t n, allocated;
} sched_view;

/* Fills v (its arrays are reused) with a copy of every node that has an object: facts, claims
 * and counts, lease. The sched_nodes borrow strings from the cache's Node objects: v is valid
 * until the next sched_cache_set_node. preferred, recent_failures and the per-request fields are
 * the caller's. */
void sched_cache_view(const sched_cache *c, sched_view *v);
/* Copies node i's claims and count again, after a sched_cache_set_claim on it. */
void sched_cache_view_refresh(const sched_cache *c, sched_view *v, size_t i);
/* Per request: sets each node's image_here (an instance of image is counted there) and
 * group_members (members of group counted there) and returns the members of group counted on
 * the nodes of v. image and group may be NULL. */
size_t sched_cache_view_for(const sched_cache *c, sched_view *v, const char *image,
                            const char *group);
/* The same for node i alone, after a sched_cache_set_claim on it. */
void sched_cache_view_for_node(const sched_cache *c, sched_view *v, size_t i, const char *image,
                               const char *group);
void sched_view_done(sched_view *v);

/* Everything the cache counts, by name, leaving out nodes with nothing to say: {"nodes": {name:
 * {"object": bool, "lease": bool, "used": [vcpus, memory, disk], "instances": n, "images":
 * {image: n}, "groups": {group: n}}}, "claims": {key: [node, vcpus, memory, disk, image, group]}}.
 * Two caches that counted the same objects dump equal. A new reference. */
json_t *sched_cache_dump(const sched_cache *c);
/* Whether a and b count the same: the same claims per key, and per node the same object (by
 * address), lease, claims, count and tallies. O(instances + nodes × (images + groups)). */
bool sched_cache_equal(const sched_cache *a, const sched_cache *b);
