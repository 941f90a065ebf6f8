/* pkg/sched: placement decisions, as kube-scheduler's framework and Nova's filters + weighers.
 *
 * Pure functions over a snapshot: filter plugins say whether an instance may go to a node and,
 * when not, why (one reason per plugin, counted across nodes for the "0/12 nodes available: 8
 * insufficient memory, 4 anti-affinity" message); score plugins rate the nodes that remain, 0..100
 * each, weighted. "Unschedulable" is an answer, not an error. Nothing here talks to the API:
 * scheduler.c builds the snapshot from its informers and binds through the apiserver, which checks
 * capacity and hard server-group policy again in the binding transaction. Any thread, as long as
 * the snapshot is not shared while being changed. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "api/resources.h"

/* A node as the filters see it. The facts taken from its object are read once per snapshot
 * (sched_node_init), not once per instance and node: at 1,000 nodes the filters run a million
 * times per thousand instances. */
typedef struct sched_node {
    const char *name;
    const json_t *obj;    /* the Node object */
    bool lease_alive;     /* its heartbeat, as the scheduler sees it */
    bool not_ready;       /* its Ready condition is False */
    bool unschedulable;   /* spec.unschedulable (cordoned) */
    const char *zone;     /* its zone label, or NULL */
    const json_t *taints; /* spec.taints, or NULL */
    const char *arch;     /* status.nodeInfo.architecture, or NULL */
    api_node_capacity cap;
    api_resources used; /* claims of instances bound here, assumed ones included */
    size_t n_instances;
    unsigned recent_failures; /* builds that failed here lately (Unbinds) */
    /* set per request by the caller: */
    size_t group_members; /* members of the request's server group placed here */
    bool image_here;      /* an instance of the request's image runs here (its cache is warm) */
    /* This scheduler's share of the nodes when several run (rendezvous hashing over their
     * presence leases): ties go to it first, so schedulers racing through the same list of
     * emptiest nodes do not all pick the same ones and lose to each other in the ledger. */
    bool preferred;
} sched_node;

typedef struct sched_request {
    const json_t *instance;
    api_resources need;
    const char *arch;        /* the image's architecture (sched_image_arch), or NULL */
    const char *forced_node; /* spec.nodeName the user set, or NULL */
    /* Where its Volumes' disks are (their status.nodeName): a Volume is a disk in one node's
     * pool, so the instance may only go there. volumes_apart: they are on different nodes. */
    const char *volume_node;
    bool volumes_apart;
    const char *zone; /* spec.availabilityZone, or NULL */
    const json_t *tolerations;
    const char *const *failed_nodes; /* nodes in status.attempts */
    size_t n_failed;
    const char *group_policy; /* the server group's policy, or NULL */
    int64_t max_per_node;     /* for anti-affinity; 0 = 1 */
    size_t group_placed;      /* members of the group placed anywhere */
} sched_request;

#define SCHED_ZONE_LABEL "topology.stratus.io/zone"

typedef struct sched_filter {
    const char *name;
    const char *reason; /* counted in the unschedulable message */
    bool (*fits)(const sched_request *r, const sched_node *n);
    /* NULL, or false when the request makes fits() true on every node (no zone asked, no
     * group...): sched_select then skips the filter. */
    bool (*applies)(const sched_request *r);
} sched_filter;

typedef struct sched_score {
    const char *name;
    unsigned weight;
    /* 0..100; `pack` turns the resource score around (most allocated first). */
    unsigned (*score)(const sched_request *r, const sched_node *n, bool pack);
    /* NULL, or false when the request scores every node the same (no soft server group):
     * sched_select then scores it once per request, not once per node. */
    bool (*varies)(const sched_request *r);
} sched_score;

extern const sched_filter sched_filters[];
extern const size_t sched_n_filters;
extern const sched_score sched_scores[];
extern const size_t sched_n_scores;

/* What sched_select worked out per node (the filter that rejects it, or its score), kept for
 * the next request that asks the same: in a batch, most requests are alike (one flavor, no
 * constraints) and only the node picked last changed, so the next request re-examines that one
 * node instead of filtering and scoring all of them again (~35 ns a node). The filters and scores
 * are pure functions of the request and the node, so the pick is the same as without it. Only
 * requests whose fields are all compared (sched_memo_holds) use it; a server group, forced node,
 * volumes, tolerations or failed attempts make a request examine every node. The caller says
 * when nodes change: sched_memo_reset when the array is filled again, sched_memo_forget(i) when
 * node i changes (an instance placed there). Zero-initialised is empty. */
typedef struct sched_memo {
    size_t n; /* nodes it has results for; 0: none */
    bool pack;
    api_resources need;
    char arch[64], zone[64]; /* "": none */
    int *verdict;            /* per node: the filter that rejects it (sched_filters index), or -1 */
    unsigned *score;         /* per node that fits */
    bool *known;             /* per node: verdict and score are current */
    size_t allocated;
} sched_memo;

void sched_memo_reset(sched_memo *m);
void sched_memo_forget(sched_memo *m, size_t i);
void sched_memo_done(sched_memo *m);

typedef struct sched_options {
    bool pack;        /* fill nodes before using new ones (default: spread) */
    unsigned seed;    /* tie-breaks among equal scores, so racing schedulers pick apart */
    sched_memo *memo; /* NULL, or where to keep per-node results between requests */
} sched_options;

/* Why each node was rejected: counts per filter, indexed like sched_filters. */
typedef struct sched_verdict {
    size_t rejected[32];
    size_t n_nodes;
} sched_verdict;

/* Fills n from a Node object (borrowed: it must outlive n). */
void sched_node_init(sched_node *n, const json_t *obj, bool lease_alive);
/* The architecture an Image object asks for (spec.properties.architecture), or NULL. */
const char *sched_image_arch(const json_t *image);

/* The first filter that rejects node n, or -1 when it fits. */
int sched_filter_node(const sched_request *r, const sched_node *n);
/* The weighted score of a node that fits, 0..100. */
unsigned sched_score_node(const sched_request *r, const sched_node *n, bool pack);
/* Picks the best node: returns its index, or -1 when none fits (verdict says why). Among nodes
 * with the best score, one where the image is cached wins; among those, a random one (seed). */
int sched_select(const sched_request *r, const sched_node *nodes, size_t n, const sched_options *o,
                 unsigned *seed, sched_verdict *ret);
/* "0/12 nodes available: 8 insufficient memory, 4 anti-affinity" into out. */
void sched_explain(const sched_verdict *v, char *out, size_t size);
