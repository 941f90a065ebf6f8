/* The agent's internals shared by agent.c (lifecycle, loop and worker threads), reconcile.c (one
 * key: look up, run the step machine, write the result; housekeeping), node.c (registration,
 * lease, Node status, fencing) and hypervisor.c (losing and regaining the connection to
 * libvirt). Not a public header. */
#pragma once

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>

#include "agent/agent.h"
#include "agent/image.h"
#include "agent/plan.h"
#include "agent/steps.h"
#include "reconcile/informer.h"
#include "reconcile/workqueue.h"

#define AGENT_ZONE_LABEL   "topology.stratus.io/zone"
#define AGENT_HOLLOW_LABEL "stratus.io/hollow"
#define AGENT_COMPONENT    "stratus-node-agent"
#define AGENT_HOUSEKEEPING "#housekeeping"
#define AGENT_HYPERVISOR   "#hypervisor"
#define AGENT_RPC_TIMEOUT  (15 * USEC_PER_SEC)
#define AGENT_OBJCACHE_TTL (30 * USEC_PER_SEC)
#define AGENT_OBJCACHE_MAX 10000

typedef struct agent_node {
    agent *a;
    size_t index;
    char *name;
    backend *be;
    bool be_owned;
    bool events_subscribed; /* a borrowed backend may have its subscriber already */
    char *dir;              /* <state>/nodes/<name> */
    char *pool_dir;
    char *instance_dir;
    agent_settings settings;
    agent_node_env env;
    informer *inf;

    pthread_mutex_t lock; /* what follows, up to claim_lock */
    json_t *shutdowns;    /* instance key → monotonic usec a graceful shutdown began */
    json_t *orphans;      /* domain or disk name → monotonic usec first seen orphaned */
    agent_resources capacity, allocatable, schedulable;
    bool registered;
    backend_host_info host;           /* refreshed after a reconnect */
    char hv_error[BACKEND_ERROR_MAX]; /* why the hypervisor cannot be reached */
    usec_t hv_down_since;             /* monotonic */

    /* Claims being written: uid → [vcpus, memoryMiB, diskGiB], counted with the claimed
     * instances of the informer while their status write is on its way. A claim checks and
     * reserves under the lock, then writes without it, so claims on one node do not wait for
     * each other's round trips. */
    pthread_mutex_t claim_lock;
    json_t *claiming;

    /* Heartbeat thread only. */
    int64_t lease_id;
    usec_t last_renew_ok;
    usec_t next_status;
    bool fence_pending; /* fenced, but the domains could not be listed (libvirt down) */
    atomic_bool fenced;
    _Atomic usec_t unfenced_at; /* monotonic: the last unfencing; 0 never fenced */
    /* The connection to the hypervisor is lost: instance keys wait for the reconnect (workers,
     * AGENT_HYPERVISOR key), the Node says Ready=False (heartbeat). */
    atomic_bool hv_down;
    atomic_bool status_dirty; /* write the Node status at the next beat */
} agent_node;

struct agent {
    agent_options o; /* strings point into the copies below */
    char *s_apiserver, *s_node_name, *s_prefix, *s_uri, *s_state, *s_domain_type, *s_machine,
        *s_zone, *s_pause, *pause_file, *s_pool;
    rpc_client *client;
    bool client_owned;
    image_cache *images;
    workqueue *q;
    agent_node **nodes;
    size_t n_nodes;

    pthread_t *workers;
    size_t n_workers;

    pthread_t heartbeat;
    bool heartbeat_started;
    pthread_mutex_t hb_lock;
    pthread_cond_t hb_cond;
    bool hb_stop;
    bool hb_kick; /* beat now, not at the end of the period */

    struct ev_loop *loop;
    pthread_t loop_thread;
    bool loop_started;
    ev_async stop_async;
    ev_async resync_async;
    ev_timer resync_timer;

    pthread_mutex_t cache_lock;
    json_t *objcache; /* "Kind/ns/name" → [object, fetched at (monotonic usec)] */

    atomic_uint_fast64_t reconciles, status_writes, conflicts, unbinds, finalized, events, orphans,
        fencings, lease_failures, hypervisor_losses, reconnects;
    atomic_uint_fast64_t event_seq;
};

/* agent.c */
void agent_log(agent *a, agent_log_level level, const char *node, const char *fmt, ...)
    _printf_(4, 5);
/* "<index>/<rest>" */
char *agent_node_key(const agent_node *n, const char *rest);
int agent_enqueue(agent_node *n, const char *rest);
/* Enqueues every instance the node's informer holds, and its housekeeping. Any thread. */
void agent_node_resync(agent_node *n);
/* Makes the heartbeat thread beat now (a Node status to write). Any thread. */
void agent_heartbeat_kick(agent *a);

/* reconcile.c: processes one work queue key (worker thread). */
void agent_process_key(agent *a, const char *key);
/* An object by kind/namespace/name through the short-lived cache: 0 and a new reference;
 * -ENOENT; other -errno when the apiserver could not answer. */
int agent_object_get(agent *a, const char *kind, const char *ns, const char *name, json_t **ret);
/* The same, always asked of the apiserver (and put in the cache): for read-modify-write. */
int agent_object_fetch(agent *a, const char *kind, const char *ns, const char *name, json_t **ret);
/* Creates an Event about an object (best effort). */
void agent_event_emit(agent_node *n, const char *kind, const char *ns, const char *name,
                      const char *uid, bool warning, const char *reason, const char *message);

/* node.c (heartbeat thread, and agent_new once) */
int agent_node_register(agent_node *n);
void agent_node_heartbeat(agent_node *n, usec_t now, bool *unreachable);

/* hypervisor.c */
/* The connection to the hypervisor looks lost (an event, a failed call, the heartbeat's check):
 * has the AGENT_HYPERVISOR key looked at, unless it is already being handled. Any thread. */
void agent_hypervisor_suspect(agent_node *n);
/* The AGENT_HYPERVISOR key (worker thread): marks the node down, reconnects with backoff, and
 * once connected marks it up and resyncs. */
void agent_hypervisor_check(agent_node *n, const char *qkey);
