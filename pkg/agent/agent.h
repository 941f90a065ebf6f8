/* pkg/agent: the node agent — one host's (or many hollow hosts') reconcile loops. For each node
 * identity it registers the Node (capacity from the backend, overridable), keeps its lease alive,
 * watches the instances bound to it (field selector spec.nodeName=<node>, through pkg/reconcile's
 * informer) and converges the backend's domains to them with the step machine of steps.h.
 * docs/agent.md has the design; this header is the surface cmd/node-agent and the tests use.
 *
 * Threads an agent runs (all its own; the caller only creates and frees it):
 *   - a loop thread with the agent's libev loop: the informers' handlers and the resync timer,
 *     which only add keys to the work queue;
 *   - `workers` reconcile threads pulling keys ("<node index>/<namespace>/<name>") from one
 *     work queue: every blocking call (libvirt, downloads, apiserver writes) happens there;
 *   - a heartbeat thread: lease renewal, Node status, registration retries, self-fencing;
 *   - libvirt's event thread (process-wide, backend-libvirt.c), whose lifecycle callbacks add
 *     the domain's instance key to the work queue (and whose close callback, when libvirtd goes
 *     away, the node's reconnect key: hypervisor.c).
 *
 * The library does not log: notable things go to options.log when set. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/backend.h"
#include "base/macro.h"
#include "base/timeutil.h"
#include "rpc/client.h"

typedef struct agent agent;

typedef enum agent_log_level {
    AGENT_LOG_ERROR,
    AGENT_LOG_WARNING,
    AGENT_LOG_INFO,
    AGENT_LOG_DEBUG,
} agent_log_level;

typedef void (*agent_log_fn)(void *userdata, agent_log_level level, const char *node,
                             const char *message);

#define AGENT_DEFAULT_WORKERS          4 /* per node identity, up to AGENT_WORKERS_MAX */
#define AGENT_WORKERS_MAX              32
#define AGENT_DEFAULT_LEASE_TTL        (10 * USEC_PER_SEC)
#define AGENT_DEFAULT_RESYNC           (30 * USEC_PER_SEC)
#define AGENT_DEFAULT_ORPHAN_GRACE     (60 * USEC_PER_SEC)
#define AGENT_DEFAULT_SHUTDOWN_TIMEOUT (30 * USEC_PER_SEC)
#define AGENT_DEFAULT_START_TIMEOUT    (10 * USEC_PER_SEC)
#define AGENT_DEFAULT_NODE_STATUS      (60 * USEC_PER_SEC)
#define AGENT_DEFAULT_BUILD_RETRIES    3
#define AGENT_DEFAULT_CONSOLE_LOG_MAX  (8 * 1024)
#define AGENT_HOLLOW_NODES_MAX         10000

/* Zero fields take the defaults. Strings are copied. */
typedef struct agent_options {
    /* The apiserver: a client the caller keeps (borrowed), or a target to connect to. */
    rpc_client *client;
    const char *apiserver;
    /* Node identities: one node called node_name, or hollow_nodes nodes called
     * <name_prefix><0..N-1> (test driver only). */
    const char *node_name;
    unsigned hollow_nodes;
    const char *name_prefix;
    /* The backend: "test" (a test:/// host generated from the capacity below, the default),
     * "qemu:///system", or any libvirt URI. `backend` (borrowed; one node only) overrides it:
     * the tests keep a test driver across agent restarts that way. */
    const char *uri;
    backend *backend;
    const char *state_dir; /* required: images/, nodes/<node>/{instances,disks}/ */
    /* The libvirt storage pool holding the disks (its folder is <state>/nodes/<node>/disks);
     * NULL: "stratus". Agents that share one libvirtd (tests, benchmarks) need one each. */
    const char *pool_name;
    /* Domains: "test" for test:///, "qemu" (TCG) otherwise, unless set. */
    const char *domain_type;
    const char *machine; /* NULL: "q35" for qemu/kvm */
    /* Capacity: 0 = what the backend reports (test:///: 8 vcpus, 16 GiB, and the
     * test driver's fixed 100 GiB pool; a flag wins over it). The Node's
     * spec.capacity overrides both. */
    int64_t vcpus;
    int64_t memory_mib;
    int64_t disk_gib;
    double cpu_ratio, memory_ratio, disk_ratio; /* 0: keep what the Node has (default 1.0) */
    const char *zone;                           /* label topology.stratus.io/zone */
    unsigned workers;
    usec_t lease_ttl;
    usec_t fencing_timeout; /* 0 → 3 × lease_ttl */
    usec_t resync_interval;
    usec_t orphan_grace;
    usec_t shutdown_timeout;
    usec_t start_timeout;
    usec_t node_status_interval;
    unsigned build_retries;
    bool console_log_status; /* copy the serial console tail into status.consoleLog */
    size_t console_log_max;
    agent_log_fn log;
    void *log_userdata;
    /* Tests only: stop every reconcile that gets past this point (one of AGENT_PAUSE_POINTS in
     * steps.h) until the process is killed, after writing "<point> <ns>/<name>" to
     * <state_dir>/debug-paused. stratus-node-agent takes it from $STRATUS_AGENT_PAUSE_AFTER. */
    const char *debug_pause_after;
} agent_options;

typedef struct agent_stats {
    uint64_t reconciles;        /* reconciles run */
    uint64_t status_writes;     /* UpdateStatus calls that succeeded */
    uint64_t conflicts;         /* status writes refused as stale (retried) */
    uint64_t unbinds;           /* instances given back */
    uint64_t finalized;         /* finalizers removed after a delete */
    uint64_t events;            /* Events created */
    uint64_t orphans;           /* orphan domains and disks removed */
    uint64_t fencings;          /* times a node stopped its domains for lack of a lease */
    uint64_t lease_failures;    /* failed lease renewals */
    uint64_t hypervisor_losses; /* times the connection to the hypervisor was found lost */
    uint64_t reconnects;        /* times it was opened again */
} agent_stats;

/* Starts an agent: opens the backends, registers the nodes (retried by the heartbeat when the
 * apiserver cannot be reached yet), starts the threads. Returns 0 and the agent in *ret; -EINVAL
 * for bad options; -errno when a backend cannot be opened (backend_last_error() says why) or a
 * thread cannot start. Blocks SIGINT/SIGTERM/SIGPIPE in its threads. Any thread. */
int agent_new(const agent_options *o, agent **ret);
/* Stops every thread (a reconcile in progress finishes first), closes what it opened. Accepts
 * NULL; returns NULL. Not from the agent's own threads or callbacks. */
agent *agent_free(agent *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(agent *, agent_free);

size_t agent_node_count(const agent *a);
const char *agent_node_name(const agent *a, size_t i);
/* The backend of node i (borrowed): tests use it to change the world behind the agent's back. */
backend *agent_node_backend(const agent *a, size_t i);
/* Whether node i's informer has listed its instances once. */
bool agent_node_synced(const agent *a, size_t i);
/* Whether node i is fenced (no lease for fencing_timeout; its domains were stopped). */
bool agent_node_fenced(const agent *a, size_t i);
/* Whether node i has lost its connection to the hypervisor and not reopened it yet. */
bool agent_node_hypervisor_down(const agent *a, size_t i);
/* Enqueues every instance of every node and their housekeeping now. Any thread. */
void agent_resync(agent *a);
void agent_stats_read(agent *a, agent_stats *ret);
