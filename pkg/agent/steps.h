/* The node agent's reconcile of one instance: a level-triggered step machine that looks at the
 * instance (desired) and the backend (actual) and does the next thing — Nova's
 * _build_and_run_instance as steps that are each safe to run again:
 *
 *   Claim → BlockDevices → Network → ConfigDrive → Domain      (domain absent: build)
 *   start / graceful shutdown, then destroy after a timeout      (domain present: power state)
 *   shutdown → destroy → undefine → disks → files → finalizer    (metadata.deletionTimestamp)
 *
 * Each build step is a timeline entry ({step, startTime, endTime, result}) and, except the
 * config drive, a condition (ResourcesClaimed, BlockDevicesReady, NetworkReady, DomainRunning).
 * The DHCP host entries (timeline entry "DHCP") are made beside the domain's start, on another
 * thread, and NetworkReady turns True only once they are in place; an instance is reported
 * Running (Ready=True) only then. A domain found running or off without NetworkReady=True gets
 * its recorded entries made first.
 * A failed step leaves its condition False with a reason, produces a Warning event and asks for a
 * retry with backoff; after `build_retries` failed attempts in a row the partial build is removed
 * and the instance is given back (Unbind, reason BuildFailed) so the scheduler can try another
 * node. Two failures are final (phase Failed): an image whose sha256 does not match, and a config
 * drive that cannot be made on a real host.
 *
 * What it does not do: talk to the apiserver. The caller (agent.c) looks up the referenced
 * objects, runs this on a worker thread, then writes ctx->status (UpdateStatus), calls Unbind, or
 * drops the finalizer, and applies the events — so the unit tests run it against a fake backend.
 *
 * Threads: any worker thread; one reconcile per instance at a time (the work queue's rule). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/backend.h"
#include "agent/image.h"
#include "agent/plan.h"
#include "api/limits.h"
#include "base/timeutil.h"

#define AGENT_FINALIZER "stratus.io/node-agent"

typedef struct agent_resources {
    int64_t vcpus;
    int64_t memory_mib;
    int64_t disk_gib;
} agent_resources;

/* What an instance of this flavor takes: vcpus, memory, root + ephemeral + swap (rounded up to
 * GiB), as the apiserver's ledger counts it. */
agent_resources agent_flavor_resources(const json_t *flavor);
/* What a bound instance claims as Bind recorded it (status.claim, api_instance_claim): 0, or
 * -ENOENT when it has no record (bound before Bind kept one: its flavor says). */
int agent_instance_claim(const json_t *inst, agent_resources *ret);

/* Whether want fits next to used within cap; when not, why (API_MESSAGE_MAX bytes) names the
 * first resource short ("insufficient memory: requested 2048 MiB, 1024 MiB free of 4096 MiB"). */
bool agent_resources_fit(const agent_resources *cap, const agent_resources *used,
                         const agent_resources *want, char *why);

typedef enum agent_outcome {
    AGENT_OUTCOME_DONE,    /* converged (or failed for good): wait for the next change */
    AGENT_OUTCOME_REQUEUE, /* converging (a shutdown in progress): look again after requeue_after */
    AGENT_OUTCOME_RETRY,   /* a step failed: retry with backoff */
    AGENT_OUTCOME_UNBIND,  /* give the instance back: Unbind with reason and message */
    AGENT_OUTCOME_FINALIZE, /* deleted and cleaned up: remove the agent's finalizer */
    _AGENT_OUTCOME_MAX,
} agent_outcome;
const char *agent_outcome_to_string(agent_outcome o);

typedef struct agent_event {
    bool warning;
    char reason[API_REASON_MAX + 1];
    char message[API_MESSAGE_MAX + 1];
} agent_event;

#define AGENT_EVENTS_MAX 8

/* The node, as the step machine sees it. Shared by all reconciles; read-only during them. */
typedef struct agent_node_env {
    const agent_settings *settings;
    backend *be;
    image_cache *images;
    usec_t shutdown_timeout; /* graceful shutdown, then destroy */
    usec_t start_timeout;    /* how long to wait for a started domain to be running */
    unsigned build_retries;  /* failed attempts in a row before giving the instance back */
    bool console_log_status; /* put the console tail in status.consoleLog (needs API support) */
    size_t console_log_max;
    /* Tests only (docs/agent.md, "Killing the agent on purpose"): when set, the reconcile that
     * gets past this point (a name of AGENT_PAUSE_POINTS) writes "<point> <ns>/<name>\n" to
     * pause_file and then sleeps until the process is killed. */
    const char *pause_after;
    const char *pause_file;
} agent_node_env;

/* Where a reconcile can be made to stop (pause_after), in the order a build and a delete pass
 * them: after the claim was written; after the disks, the networks (and the record of the DHCP
 * entries), the config drive; after the domain was defined; when the DHCP entries are about to
 * be made (beside the domain's start: it may be starting or running; only for instances with
 * entries); after it was started with its entries made (its status not yet written); after a
 * delete removed everything (the finalizer not yet dropped). */
#define AGENT_PAUSE_POINTS "Claim BlockDevices Network ConfigDrive Define DHCP Start Delete"
bool agent_pause_point_valid(const char *point);

typedef struct agent_reconcile_ctx agent_reconcile_ctx;

/* How the caller takes part. NULL functions: claim checks ctx->capacity with nothing else on the
 * node and persists nothing. */
typedef struct agent_step_hooks {
    /* The claim: check that `want` fits next to what the node already holds and, if so, persist
     * ctx->status (which already says ResourcesClaimed=True) before anyone else may claim —
     * under one lock per node. Returns 0 when claimed; -ENOSPC when it does not fit (why, of
     * API_MESSAGE_MAX bytes, says what is short); another -errno to retry. */
    int (*claim)(void *userdata, agent_reconcile_ctx *ctx, const agent_resources *want, char *why);
    /* A Volume is about to be attached (its disk made, or found, before the domain uses it):
     * record it as in use by this instance on this node (Volume status phase InUse, attachedTo,
     * nodeName). Returns 0; -EBUSY when another instance still holds it (why, of
     * API_MESSAGE_MAX bytes, names it); another -errno to retry. */
    int (*volume_attach)(void *userdata, agent_reconcile_ctx *ctx, const char *volume, char *why);
    /* The instance no longer uses the Volume (its domain is gone): phase Available, attachedTo
     * cleared, unless another instance holds it by now. Returns 0 or -errno to retry. */
    int (*volume_release)(void *userdata, agent_reconcile_ctx *ctx, const char *volume);
    /* Right before a domain starts: 0 to go on, -ECANCELED when it must not (the node is fenced,
     * or, shortly after an unfencing, the apiserver no longer has the instance bound here: the
     * cache may still say so), another -errno when that cannot be told now. NULL: always go. */
    int (*may_start)(void *userdata, agent_reconcile_ctx *ctx);
    void *userdata;
} agent_step_hooks;

struct agent_reconcile_ctx {
    /* Inputs. */
    const agent_node_env *env;
    const json_t *instance; /* borrowed, not modified */
    agent_refs refs;        /* the objects it refers to, looked up by the caller */
    agent_resources capacity;
    bool fenced;           /* the node lost its lease: start nothing */
    unsigned failures;     /* failed reconciles of this instance in a row */
    usec_t now;            /* realtime, for timestamps */
    usec_t now_mono;       /* monotonic, for timeouts */
    usec_t shutdown_since; /* in/out: monotonic time a graceful shutdown began; 0: none */
    agent_step_hooks hooks;

    /* Outputs. */
    json_t *status; /* the status to write: the instance's, changed */
    agent_outcome outcome;
    usec_t requeue_after;
    char reason[API_REASON_MAX + 1]; /* UNBIND and RETRY: why */
    char message[API_MESSAGE_MAX + 1];
    agent_event events[AGENT_EVENTS_MAX];
    size_t n_events;
    char domain_uuid[BACKEND_UUID_MAX];
};

/* Prepares ctx for one reconcile of instance (status: a deep copy of its status). */
void agent_reconcile_ctx_init(agent_reconcile_ctx *ctx, const agent_node_env *env,
                              const json_t *instance);
void agent_reconcile_ctx_clear(agent_reconcile_ctx *ctx);
/* Whether ctx->status differs from the instance's status. */
bool agent_reconcile_status_changed(const agent_reconcile_ctx *ctx);

/* Runs the step machine once. Returns 0 with ctx->outcome set (failures of steps are outcomes,
 * not errors); never fails otherwise. */
int agent_reconcile_instance(agent_reconcile_ctx *ctx);

/* Removes everything the agent made for the instance with this uid: its domain (destroyed, not
 * shut down), its disks ("<uid>-*" in the pool; kept block devices and Volumes stay), its DHCP
 * host entries and its folder. Idempotent. Returns 0 or the first -errno (with
 * backend_last_error()). */
int agent_instance_cleanup(const agent_node_env *env, const char *domain_name, const char *uid);
/* The last part of that: the DHCP host entries recorded in the instance's folder, then the
 * folder. For folders whose instance and domain are gone. Returns 0 or -errno. */
int agent_instance_files_remove(const agent_node_env *env, const char *uid);

/* Whether the instance is bound (not merely forced to a node by its user): the apiserver's
 * finalizer, or Scheduled=True, or status.nodeName set. */
bool agent_instance_is_bound(const json_t *instance, const char *node);

/* Whether a listed domain is this node's to adopt or remove: made by Stratus (it has instance
 * metadata) and named for `node` — or named for no node at all, as domains defined by agents
 * before the metadata carried the node are. Other nodes' domains on a shared libvirtd are not. */
bool agent_domain_is_ours(const backend_domain *d, const char *node);
