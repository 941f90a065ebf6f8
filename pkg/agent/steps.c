/* The step machine of one instance; see steps.h for the shape. Every function here either finds
 * the world as wanted and moves on, or changes it one step; nothing remembers anything between
 * calls except what is in the instance's status and the backend (and shutdown_since). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "agent/configdrive.h"
#include "agent/files.h"
#include "agent/status.h"
#include "agent/steps.h"
#include "api/object.h"
#include "api/resources.h"
#include "base/alloc.h"
#include "base/buf.h"

#define GIB ((uint64_t)1 << 30)

/* The DHCP host entries an instance has on this node's networks, recorded in its folder before
 * they are made (one "<libvirt network> <mac> <ip>" per line), so that whoever removes the
 * instance — a delete, a give-back, the orphan sweep after a crash — can take them away. */
#define DHCP_RECORD     "dhcp-hosts"
#define DHCP_RECORD_MAX (64 * 1024)

static const char *const outcome_names[_AGENT_OUTCOME_MAX] = {
    [AGENT_OUTCOME_DONE] = "done",         [AGENT_OUTCOME_REQUEUE] = "requeue",
    [AGENT_OUTCOME_RETRY] = "retry",       [AGENT_OUTCOME_UNBIND] = "unbind",
    [AGENT_OUTCOME_FINALIZE] = "finalize",
};

const char *agent_outcome_to_string(agent_outcome o)
{
    return o < _AGENT_OUTCOME_MAX ? outcome_names[o] : "?";
}

static agent_resources resources_of(const api_resources *a)
{
    return (agent_resources){
        .vcpus = a->amount[API_RESOURCE_VCPUS],
        .memory_mib = a->amount[API_RESOURCE_MEMORY],
        .disk_gib = a->amount[API_RESOURCE_DISK],
    };
}

agent_resources agent_flavor_resources(const json_t *flavor)
{
    /* The ledger's own arithmetic, so the agent and Bind never disagree on a claim. */
    api_resources a;
    api_flavor_resources(flavor, &a);
    return resources_of(&a);
}

int agent_instance_claim(const json_t *inst, agent_resources *ret)
{
    api_resources a;
    if (api_instance_claim(inst, &a) < 0)
        return -ENOENT;
    *ret = resources_of(&a);
    return 0;
}

bool agent_instance_is_bound(const json_t *inst, const char *node)
{
    const char *spec_node = json_string_value(api_json_lookup(inst, "spec.nodeName"));
    if (!spec_node || !streq(spec_node, node))
        return false;
    const json_t *fin = api_json_lookup(inst, "metadata.finalizers");
    for (size_t i = 0; i < json_array_size(fin); i++) {
        const char *f = json_string_value(json_array_get(fin, i));
        if (f && streq(f, AGENT_FINALIZER))
            return true;
    }
    const json_t *status = json_object_get(inst, "status");
    const char *c = status_condition_get(status, "Scheduled");
    if (c && streq(c, "True"))
        return true;
    const char *sn = json_string_value(json_object_get(status, "nodeName"));
    return sn && streq(sn, node);
}

bool agent_domain_is_ours(const backend_domain *d, const char *node)
{
    if (!d->uid || !d->namespace_ || !d->instance)
        return false;
    return !d->node || streq(d->node, node);
}

void agent_reconcile_ctx_init(agent_reconcile_ctx *ctx, const agent_node_env *env,
                              const json_t *instance)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->env = env;
    ctx->instance = instance;
    const json_t *st = json_object_get(instance, "status");
    ctx->status = json_is_object(st) ? json_deep_copy(st) : json_object();
    ctx->now = now_realtime();
    ctx->now_mono = now_monotonic();
}

void agent_reconcile_ctx_clear(agent_reconcile_ctx *ctx)
{
    json_decref(ctx->status);
    ctx->status = NULL;
}

bool agent_reconcile_status_changed(const agent_reconcile_ctx *ctx)
{
    const json_t *st = json_object_get(ctx->instance, "status");
    if (!st)
        return json_object_size(ctx->status) > 0;
    return !json_equal((json_t *)st, ctx->status);
}

static void event_add(agent_reconcile_ctx *ctx, bool warning, const char *reason, const char *fmt,
                      ...) _printf_(4, 5);
static void event_add(agent_reconcile_ctx *ctx, bool warning, const char *reason, const char *fmt,
                      ...)
{
    if (ctx->n_events >= AGENT_EVENTS_MAX)
        return;
    agent_event *e = &ctx->events[ctx->n_events++];
    e->warning = warning;
    snprintf(e->reason, sizeof(e->reason), "%s", reason);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    status_text_sanitize(e->message);
}

static const char *spec_str(const agent_reconcile_ctx *ctx, const char *path)
{
    return json_string_value(api_json_lookup(ctx->instance, path));
}

static bool want_running(const agent_reconcile_ctx *ctx)
{
    const char *ps = spec_str(ctx, "spec.powerState");
    return !ps || !streq(ps, "Stopped");
}

bool agent_pause_point_valid(const char *point)
{
    if (!point || !*point || strchr(point, ' '))
        return false;
    static const char points[] = AGENT_PAUSE_POINTS;
    size_t n = strlen(point);
    for (const char *p = points; (p = strstr(p, point)); p += n)
        if ((p == points || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
            return true;
    return false;
}

/* The tests' deterministic kill point: says where it stopped, then sleeps until SIGKILL. */
static void debug_pause(const agent_reconcile_ctx *ctx, const char *point)
{
    const agent_node_env *env = ctx->env;
    if (!env->pause_after || !streq(env->pause_after, point))
        return;
    _cleanup_free_ char *what =
        xasprintf("%s %s/%s\n", point, spec_str(ctx, "metadata.namespace") ?: "",
                  spec_str(ctx, "metadata.name") ?: "");
    if (env->pause_file)
        (void)fs_write_file(env->pause_file, what, strlen(what));
    for (;;)
        sleep(60);
}

static void observed(agent_reconcile_ctx *ctx)
{
    json_object_set_new(ctx->status, "observedGeneration",
                        json_integer(api_object_generation(ctx->instance)));
}

/* A step failed in a way that may pass: condition False, timeline Failed, a Warning event, and a
 * retry with backoff. */
static void step_failed(agent_reconcile_ctx *ctx, const char *condition, const char *reason,
                        const char *fmt, ...) _printf_(4, 5);
static void step_failed(agent_reconcile_ctx *ctx, const char *condition, const char *reason,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->message, sizeof(ctx->message), fmt, ap);
    va_end(ap);
    status_text_sanitize(ctx->message);
    snprintf(ctx->reason, sizeof(ctx->reason), "%s", reason);
    if (condition)
        status_condition_set(ctx->status, condition, "False", reason, ctx->message, ctx->now);
    status_condition_set(ctx->status, "Ready", "False", reason, ctx->message, ctx->now);
    event_add(ctx, true, reason, "%s", ctx->message);
    ctx->outcome = AGENT_OUTCOME_RETRY;
}

/* A failure that retrying cannot fix: phase Failed, for good (until the spec changes). */
static void build_failed_for_good(agent_reconcile_ctx *ctx, const char *condition,
                                  const char *reason, const char *message)
{
    if (condition)
        status_condition_set(ctx->status, condition, "False", reason, message, ctx->now);
    status_condition_set(ctx->status, "Ready", "False", reason, message, ctx->now);
    status_phase_set(ctx->status, "Failed", reason, message);
    observed(ctx);
    event_add(ctx, true, reason, "%s", message);
    ctx->outcome = AGENT_OUTCOME_DONE;
}

/* ---- cleanup ---- */

int agent_instance_cleanup(const agent_node_env *env, const char *domain_name, const char *uid)
{
    backend *be = env->be;
    int r = backend_domain_destroy(be, domain_name);
    if (r < 0 && r != -ENOENT)
        return r;
    r = backend_domain_undefine(be, domain_name);
    if (r < 0 && r != -ENOENT)
        return r;
    char **names = NULL;
    size_t n = 0;
    r = backend_disk_list(be, &names, &n);
    if (r < 0)
        return r;
    size_t ulen = strlen(uid);
    for (size_t i = 0; i < n; i++)
        if (strneq(names[i], uid, ulen) && names[i][ulen] == '-') {
            int k = backend_disk_delete(be, names[i]);
            if (k < 0 && r == 0)
                r = k;
        }
    backend_names_free(names, n);
    if (r < 0)
        return r;
    return agent_instance_files_remove(env, uid);
}

/* One DHCP host entry, as a line of the record says it. */
typedef struct dhcp_entry {
    char net[BACKEND_NAME_MAX];
    char mac[32];
    char ip[32];
} dhcp_entry;

/* The entries recorded in the instance folder dir: 0 and a new array (NULL and 0 entries when
 * there is no record), or -errno with backend_last_error(). */
static int dhcp_record_read(const char *dir, dhcp_entry **ret, size_t *ret_n)
{
    _cleanup_free_ char *record = xasprintf("%s/" DHCP_RECORD, dir);
    _cleanup_free_ char *text = NULL;
    int r = fs_read_tail(record, DHCP_RECORD_MAX, &text);
    if (r < 0 && r != -ENOENT)
        return backend_set_error(r, "cannot read %s: %s", record, strerror(-r));
    dhcp_entry *e = NULL;
    size_t n = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        dhcp_entry d;
        if (sscanf(line, "%255s %31s %31s", d.net, d.mac, d.ip) != 3)
            continue;
        e = xrealloc(e, (n + 1) * sizeof(*e));
        e[n++] = d;
    }
    *ret = e;
    *ret_n = n;
    return 0;
}

static bool dhcp_entry_in(const dhcp_entry *d, const dhcp_entry *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (streq(d->net, set[i].net) && strcasecmp(d->mac, set[i].mac) == 0 &&
            streq(d->ip, set[i].ip))
            return true;
    return false;
}

int agent_instance_files_remove(const agent_node_env *env, const char *uid)
{
    _cleanup_free_ char *dir = xasprintf("%s/%s", env->settings->instance_dir, uid);
    _cleanup_free_ dhcp_entry *recorded = NULL;
    size_t n = 0;
    int r = dhcp_record_read(dir, &recorded, &n);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        r = backend_network_host_remove(env->be, recorded[i].net, recorded[i].mac, recorded[i].ip);
        if (r < 0 && r != -EOPNOTSUPP)
            return r;
    }
    r = fs_rm_rf(dir);
    if (r < 0)
        return backend_set_error(r, "cannot remove %s: %s", dir, strerror(-r));
    return 0;
}

/* Tells the hooks that the instance's Volumes are no longer attached (its domain is gone). */
static int volumes_release(agent_reconcile_ctx *ctx)
{
    if (!ctx->hooks.volume_release)
        return 0;
    const json_t *bds = api_json_lookup(ctx->instance, "spec.blockDevices");
    for (size_t i = 0; i < json_array_size(bds); i++) {
        const char *vol = json_string_value(json_object_get(json_array_get(bds, i), "volume"));
        if (!vol)
            continue;
        int r = ctx->hooks.volume_release(ctx->hooks.userdata, ctx, vol);
        if (r < 0)
            return backend_set_error(r, "releasing volume %s: %s", vol, strerror(-r));
    }
    return 0;
}

/* ---- DHCP entries ---- */

/* Making an instance's DHCP host entries, maybe beside its domain's start (on another thread:
 * dhcp_job_run touches nothing but the job, the backend and, read-only, ctx's instance and env).
 * On libvirt an entry costs a firewall reload (≈ 24 iptables runs, 200–500 ms) while holding
 * the network's lock, which is why it is not made before the start (docs/agent.md). */
typedef struct dhcp_job {
    const agent_reconcile_ctx *ctx;
    bool needed; /* NetworkReady is to be confirmed by this reconcile */
    dhcp_entry *want;
    size_t n;
    usec_t began, ended; /* realtime, for the timeline */
    char error[BACKEND_ERROR_MAX];
} dhcp_job;

static void dhcp_job_clear(dhcp_job *j)
{
    free(j->want);
    j->want = NULL;
    j->n = 0;
}

/* For a domain that exists: what is left to confirm. Nothing when a reconcile already saw the
 * entries in place (NetworkReady=True, written in the same status as the domain's state);
 * otherwise the entries the build recorded — a crash or a failure may have come between the
 * domain's start and the entries. Returns 0, or -errno with backend_last_error(). */
static int dhcp_job_pending(dhcp_job *j, agent_reconcile_ctx *ctx)
{
    *j = (dhcp_job){.ctx = ctx};
    const char *c = status_condition_get(ctx->status, "NetworkReady");
    if (c && streq(c, "True"))
        return 0;
    j->needed = true;
    const char *uid = spec_str(ctx, "metadata.uid");
    if (!uid)
        return 0;
    _cleanup_free_ char *dir = xasprintf("%s/%s", ctx->env->settings->instance_dir, uid);
    return dhcp_record_read(dir, &j->want, &j->n);
}

/* Makes (or finds) every entry of the job. A backend without DHCP entries (-EOPNOTSUPP) is fine:
 * addresses also reach guests by config drive and ip=. A backend_beside_fn. */
static int dhcp_job_run(void *userdata)
{
    dhcp_job *j = userdata;
    j->began = now_realtime();
    debug_pause(j->ctx, "DHCP");
    int r = 0;
    for (size_t i = 0; r == 0 && i < j->n; i++) {
        const dhcp_entry *d = &j->want[i];
        r = backend_network_host_add(j->ctx->env->be, d->net, d->mac, d->ip);
        if (r == -EOPNOTSUPP) {
            r = 0;
            break;
        }
        if (r < 0)
            snprintf(j->error, sizeof(j->error), "%s for %s on %s: %s", d->ip, d->mac, d->net,
                     backend_last_error());
    }
    j->ended = now_realtime();
    return r;
}

/* The job's outcome in the status: a "DHCP" timeline entry when it made entries, NetworkReady
 * (True only now: the networks and the entries are in place). Returns whether they are. */
static bool dhcp_job_report(agent_reconcile_ctx *ctx, const dhcp_job *j, int r)
{
    if (!j->needed)
        return true;
    if (j->n > 0) {
        size_t t = status_timeline_begin(ctx->status, "DHCP", j->began);
        status_timeline_end(ctx->status, t, r == 0, j->ended);
    }
    if (r < 0) {
        step_failed(ctx, "NetworkReady", "DHCPFailed", "DHCP entry: %s", j->error);
        return false;
    }
    status_condition_set(ctx->status, "NetworkReady", "True", "Attached", NULL, ctx->now);
    return true;
}

/* For a domain that exists and is not to be started now: confirms what dhcp_job_pending says is
 * left. Returns false (with the step failed) when it could not. */
static bool dhcp_settle(agent_reconcile_ctx *ctx)
{
    dhcp_job j;
    int r = dhcp_job_pending(&j, ctx);
    if (r < 0) {
        step_failed(ctx, "NetworkReady", "DHCPFailed", "DHCP entry: %s", backend_last_error());
        return false;
    }
    if (j.n > 0)
        r = dhcp_job_run(&j);
    bool ok = dhcp_job_report(ctx, &j, r);
    dhcp_job_clear(&j);
    return ok;
}

/* Starts the domain with the job's entries made beside the start (backend_domain_start_with
 * says when they begin), so that they do not delay qemu. Returns the start's result; the
 * entries' in *ret_dhcp. */
static int domain_start_dhcp(agent_reconcile_ctx *ctx, const char *name, dhcp_job *j, int *ret_dhcp)
{
    *ret_dhcp = 0;
    if (ctx->hooks.may_start) {
        int r = ctx->hooks.may_start(ctx->hooks.userdata, ctx);
        if (r < 0)
            return backend_set_error(r, "%s",
                                     r == -ECANCELED ? "not to be started here now"
                                                     : "cannot tell whether to start it");
    }
    if (j->n == 0)
        return backend_domain_start(ctx->env->be, name);
    return backend_domain_start_with(ctx->env->be, name, dhcp_job_run, j, ret_dhcp);
}

static void give_back(agent_reconcile_ctx *ctx, const char *domain);

/* ---- power ---- */

/* Waits (briefly, polling) for a started domain to report running. */
static int wait_running(agent_reconcile_ctx *ctx, const char *name, backend_domain_state *ret)
{
    usec_t deadline = now_monotonic() + ctx->env->start_timeout;
    backend_domain_state st = BACKEND_DOMAIN_OTHER;
    for (;;) {
        int r = backend_domain_state_get(ctx->env->be, name, &st, ctx->domain_uuid);
        if (r < 0)
            return r;
        if (st == BACKEND_DOMAIN_RUNNING || now_monotonic() >= deadline)
            break;
        usleep(20000);
    }
    *ret = st;
    return 0;
}

static void domain_running_set(agent_reconcile_ctx *ctx)
{
    _cleanup_free_ char *msg = xasprintf("domain %s is running", ctx->domain_uuid);
    status_condition_set(ctx->status, "DomainRunning", "True", "Running", msg, ctx->now);
    if (ctx->domain_uuid[0])
        json_object_set_new(ctx->status, "domainUUID", json_string(ctx->domain_uuid));
}

static void mark_running(agent_reconcile_ctx *ctx)
{
    /* After an adoption mid-build, the earlier steps are done too if the domain runs; every
     * caller has confirmed the DHCP entries (dhcp_settle, dhcp_job_report) before. */
    status_condition_set(ctx->status, "ResourcesClaimed", "True", "Claimed", NULL, ctx->now);
    status_condition_set(ctx->status, "BlockDevicesReady", "True", "Created", NULL, ctx->now);
    status_condition_set(ctx->status, "NetworkReady", "True", "Attached", NULL, ctx->now);
    domain_running_set(ctx);
    status_condition_set(ctx->status, "Ready", "True", "Running", NULL, ctx->now);
    status_phase_set(ctx->status, "Running", NULL, NULL);
    observed(ctx);
}

static void mark_stopped(agent_reconcile_ctx *ctx, bool crashed)
{
    const char *reason = crashed ? "Crashed" : "Stopped";
    _cleanup_free_ char *msg =
        xasprintf("domain %s is %s", ctx->domain_uuid, crashed ? "off after a crash" : "off");
    status_condition_set(ctx->status, "DomainRunning", "False", reason, msg, ctx->now);
    status_condition_set(ctx->status, "Ready", "False", reason, NULL, ctx->now);
    status_phase_set(ctx->status, "Stopped", NULL, NULL);
    if (ctx->domain_uuid[0])
        json_object_set_new(ctx->status, "domainUUID", json_string(ctx->domain_uuid));
    observed(ctx);
}

static void console_tail(agent_reconcile_ctx *ctx, const char *domain)
{
    if (!ctx->env->console_log_status)
        return;
    _cleanup_free_ char *path = NULL;
    if (backend_console_log_path(ctx->env->be, domain, &path) < 0)
        return;
    _cleanup_free_ char *tail = NULL;
    if (fs_read_tail(path, ctx->env->console_log_max, &tail) < 0)
        return;
    status_text_sanitize(tail);
    json_object_set_new(ctx->status, "consoleLog", json_string(tail));
}

static void power_converge(agent_reconcile_ctx *ctx, const char *name, backend_domain_state st)
{
    backend *be = ctx->env->be;
    int r;
    if (!want_running(ctx)) {
        switch (st) {
        case BACKEND_DOMAIN_SHUTOFF:
        case BACKEND_DOMAIN_CRASHED:
            ctx->shutdown_since = 0;
            if (!dhcp_settle(ctx))
                return;
            mark_stopped(ctx, st == BACKEND_DOMAIN_CRASHED);
            ctx->outcome = AGENT_OUTCOME_DONE;
            return;
        default:
            break;
        }
        status_condition_set(ctx->status, "Ready", "False", "Stopping",
                             "spec.powerState is Stopped", ctx->now);
        if (ctx->shutdown_since == 0) {
            r = backend_domain_shutdown(be, name);
            ctx->shutdown_since = ctx->now_mono;
        } else if (ctx->now_mono - ctx->shutdown_since >= ctx->env->shutdown_timeout) {
            event_add(ctx, true, "ShutdownTimedOut",
                      "the guest did not power off within %llu s; destroying domain %s",
                      (unsigned long long)(ctx->env->shutdown_timeout / USEC_PER_SEC), name);
            r = backend_domain_destroy(be, name);
        } else
            r = 0;
        if (r < 0) {
            step_failed(ctx, "DomainRunning", "StopFailed", "stopping domain %s: %s", name,
                        backend_last_error());
            return;
        }
        ctx->outcome = AGENT_OUTCOME_REQUEUE;
        ctx->requeue_after = MIN(USEC_PER_SEC, ctx->env->shutdown_timeout / 4 + 1);
        return;
    }

    ctx->shutdown_since = 0;
    switch (st) {
    case BACKEND_DOMAIN_RUNNING:
        if (!dhcp_settle(ctx))
            return;
        mark_running(ctx);
        console_tail(ctx, name);
        ctx->outcome = AGENT_OUTCOME_DONE;
        return;
    case BACKEND_DOMAIN_PAUSED:
        status_condition_set(ctx->status, "DomainRunning", "False", "Paused",
                             "the domain is paused; Stratus does not resume it", ctx->now);
        status_condition_set(ctx->status, "Ready", "False", "Paused", NULL, ctx->now);
        ctx->outcome = AGENT_OUTCOME_DONE;
        return;
    case BACKEND_DOMAIN_STOPPING:
    case BACKEND_DOMAIN_OTHER:
        ctx->outcome = AGENT_OUTCOME_REQUEUE;
        ctx->requeue_after = USEC_PER_SEC;
        return;
    case BACKEND_DOMAIN_SHUTOFF:
    case BACKEND_DOMAIN_CRASHED:
    default:
        break;
    }
    if (ctx->fenced) {
        ctx->outcome = AGENT_OUTCOME_REQUEUE;
        ctx->requeue_after = 5 * USEC_PER_SEC;
        return;
    }
    const char *phase = status_phase_get(ctx->status);
    if (st == BACKEND_DOMAIN_CRASHED)
        event_add(ctx, true, "DomainCrashed", "domain %s crashed; starting it again", name);
    else if (phase && streq(phase, "Running"))
        event_add(ctx, true, "DomainStoppedUnexpectedly",
                  "domain %s stopped behind the agent's back; starting it again", name);
    dhcp_job j;
    r = dhcp_job_pending(&j, ctx);
    if (r < 0) {
        step_failed(ctx, "NetworkReady", "DHCPFailed", "DHCP entry: %s", backend_last_error());
        return;
    }
    int dr = 0;
    r = domain_start_dhcp(ctx, name, &j, &dr);
    if (r == -ECANCELED || r == -EAGAIN) {
        dhcp_job_clear(&j);
        ctx->outcome = AGENT_OUTCOME_REQUEUE; /* fenced, or bound elsewhere: the cache will say */
        ctx->requeue_after = 5 * USEC_PER_SEC;
        return;
    }
    if (r == 0)
        r = wait_running(ctx, name, &st);
    bool dhcp_ok = dhcp_job_report(ctx, &j, dr);
    dhcp_job_clear(&j);
    if (r < 0 || st != BACKEND_DOMAIN_RUNNING) {
        if (r < 0)
            step_failed(ctx, "DomainRunning", "StartFailed", "starting domain %s: %s", name,
                        backend_last_error());
        else
            step_failed(ctx, "DomainRunning", "StartFailed", "domain %s is %s after start", name,
                        backend_domain_state_to_string(st));
        /* A domain defined by a build that never ran it: a failed build like any other, given
         * back after --build-retries, not retried here for ever. */
        bool ran = phase && (streq(phase, "Running") || streq(phase, "Stopped"));
        if (!ran && ctx->outcome == AGENT_OUTCOME_RETRY &&
            ctx->failures + 1 >= ctx->env->build_retries)
            give_back(ctx, name);
        return;
    }
    if (!dhcp_ok) {
        domain_running_set(ctx); /* and Ready=False, DHCPFailed: retried */
        return;
    }
    mark_running(ctx);
    ctx->outcome = AGENT_OUTCOME_DONE;
}

/* ---- build ---- */

bool agent_resources_fit(const agent_resources *cap, const agent_resources *used,
                         const agent_resources *want, char *why)
{
    struct {
        const char *what, *unit;
        int64_t cap, used, want;
    } r[] = {
        {"vcpus", "", cap->vcpus, used->vcpus, want->vcpus},
        {"memory", " MiB", cap->memory_mib, used->memory_mib, want->memory_mib},
        {"disk", " GiB", cap->disk_gib, used->disk_gib, want->disk_gib},
    };
    for (size_t i = 0; i < ELEMENTSOF(r); i++)
        if (r[i].used + r[i].want > r[i].cap) {
            snprintf(why, API_MESSAGE_MAX,
                     "insufficient %s: requested %lld%s, %lld%s free of %lld%s", r[i].what,
                     (long long)r[i].want, r[i].unit, (long long)MAX(r[i].cap - r[i].used, 0),
                     r[i].unit, (long long)r[i].cap, r[i].unit);
            return false;
        }
    return true;
}

static int step_claim(agent_reconcile_ctx *ctx)
{
    const char *claimed = status_condition_get(ctx->status, "ResourcesClaimed");
    if (claimed && streq(claimed, "True"))
        return 0;
    size_t t = status_timeline_begin(ctx->status, "Claim", now_realtime());
    /* What Bind recorded in the ledger; the flavor only for an instance bound before that. */
    agent_resources want;
    if (agent_instance_claim(ctx->instance, &want) < 0)
        want = agent_flavor_resources(ctx->refs.flavor);
    status_condition_set(ctx->status, "ResourcesClaimed", "True", "Claimed", NULL, ctx->now);
    status_phase_set(ctx->status, "Building", NULL, NULL);
    status_timeline_end(ctx->status, t, true, now_realtime());
    char why[API_MESSAGE_MAX] = "";
    int r;
    if (ctx->hooks.claim)
        r = ctx->hooks.claim(ctx->hooks.userdata, ctx, &want, why);
    else {
        agent_resources none = {0};
        r = agent_resources_fit(&ctx->capacity, &none, &want, why) ? 0 : -ENOSPC;
    }
    if (r == 0)
        return 0;
    status_timeline_end(ctx->status, t, false, now_realtime());
    if (r == -ENOSPC) {
        status_condition_set(ctx->status, "ResourcesClaimed", "False", "InsufficientResources", why,
                             ctx->now);
        snprintf(ctx->reason, sizeof(ctx->reason), "InsufficientResources");
        snprintf(ctx->message, sizeof(ctx->message), "node \"%.253s\": %.700s",
                 ctx->env->settings->node_name, why);
        event_add(ctx, true, "InsufficientResources", "%s", ctx->message);
        ctx->outcome = AGENT_OUTCOME_UNBIND;
        return -ENOSPC;
    }
    if (r == -ESTALE) {
        /* Someone wrote the instance since the cache's copy (the scheduler, a user): not a
         * failed build, just a claim to make again on the newer copy. */
        status_condition_set(ctx->status, "ResourcesClaimed", "False", "ClaimConflict",
                             "the instance changed meanwhile; claiming again", ctx->now);
        ctx->outcome = AGENT_OUTCOME_REQUEUE;
        ctx->requeue_after = 100 * USEC_PER_MSEC;
        return r;
    }
    step_failed(ctx, "ResourcesClaimed", "ClaimFailed", "claim: %s", strerror(-r));
    return r;
}

static int step_block_devices(agent_reconcile_ctx *ctx, agent_plan *p)
{
    size_t t = status_timeline_begin(ctx->status, "BlockDevices", now_realtime());
    for (size_t i = 0; i < p->n_fetches; i++) {
        char err[IMAGE_ERROR_MAX];
        int r = image_cache_ensure(ctx->env->images, p->fetches[i].url, p->fetches[i].sha256, err);
        if (r == 0)
            continue;
        status_timeline_end(ctx->status, t, false, now_realtime());
        char msg[API_MESSAGE_MAX];
        snprintf(msg, sizeof(msg), "%s: %s", p->fetches[i].what, err);
        if (r == -EBADMSG || r == -EINVAL || r == -EFBIG) {
            build_failed_for_good(ctx, "BlockDevicesReady",
                                  r == -EBADMSG ? "ImageChecksumMismatch" : "ImageUnusable", msg);
            return r;
        }
        step_failed(ctx, "BlockDevicesReady", "ImageDownloadFailed", "%s", msg);
        return r;
    }
    /* The instance folder comes before any disk: it is what tells this node's orphan sweep that
     * a "<uid>-…" disk is its own, in a pool another node identity may share. */
    int fr = fs_mkdir_p(p->files_dir, 0711);
    if (fr < 0) {
        status_timeline_end(ctx->status, t, false, now_realtime());
        step_failed(ctx, "BlockDevicesReady", "StateDirFailed", "cannot create %s: %s",
                    p->files_dir, strerror(-fr));
        return fr;
    }
    for (size_t i = 0; i < p->n_disks; i++) {
        plan_disk *d = &p->disks[i];
        if (d->role == PLAN_DISK_CONFIG)
            continue;
        if (d->size_bytes == 0 && d->backing_path) {
            uint64_t v = 0;
            int r = image_virtual_size(d->backing_path, d->backing_format, &v);
            if (r < 0) {
                status_timeline_end(ctx->status, t, false, now_realtime());
                char msg[API_MESSAGE_MAX];
                snprintf(msg, sizeof(msg), "cannot read the size of %s: %s", d->backing_path,
                         r == -EINVAL ? "not a qcow2 image" : strerror(-r));
                build_failed_for_good(ctx, "BlockDevicesReady", "ImageUnusable", msg);
                return r;
            }
            d->size_bytes = (v + GIB - 1) / GIB * GIB;
        }
        if (d->role == PLAN_DISK_VOLUME && ctx->hooks.volume_attach) {
            char why[API_MESSAGE_MAX] = "";
            int r = ctx->hooks.volume_attach(ctx->hooks.userdata, ctx, d->volume, why);
            if (r < 0) {
                status_timeline_end(ctx->status, t, false, now_realtime());
                if (r == -EBUSY)
                    step_failed(ctx, "BlockDevicesReady", "VolumeInUse", "%s", why);
                else
                    step_failed(ctx, "BlockDevicesReady", "VolumeAttachFailed", "volume %s: %s",
                                d->volume, why[0] ? why : strerror(-r));
                return r;
            }
        }
        backend_disk_request req = {
            .name = d->name,
            .format = d->format,
            .size_bytes = d->size_bytes,
            .backing_path = d->backing_path,
            .backing_format = d->backing_format,
        };
        _cleanup_free_ char *path = NULL;
        int r = backend_disk_create(ctx->env->be, &req, &path);
        if (r < 0) {
            status_timeline_end(ctx->status, t, false, now_realtime());
            step_failed(ctx, "BlockDevicesReady", "DiskCreateFailed", "%s disk %s: %s",
                        plan_disk_role_to_string(d->role), d->name, backend_last_error());
            return r;
        }
        if (path && !streq(path, d->path)) {
            free(d->path);
            d->path = TAKE_PTR(path);
        }
    }
    status_timeline_end(ctx->status, t, true, now_realtime());
    status_condition_set(ctx->status, "BlockDevicesReady", "True", "Created", NULL, ctx->now);
    return 0;
}

/* The record of the entries this build wants (a DHCP host entry mac → ip for each NIC on a
 * network with DHCP), written before any is made, so that a crash right after leaves nothing
 * nobody knows about. Entries an earlier build recorded and this one does not want are removed
 * first (they would be forgotten otherwise). The entries themselves come with the domain's
 * start (step_domain). Returns 0 and the job, or -errno with backend_last_error(). */
static int dhcp_record_update(agent_reconcile_ctx *ctx, const agent_plan *p, dhcp_job *ret)
{
    dhcp_job j = {.ctx = ctx, .needed = true};
    buf rec = BUF_INIT(DHCP_RECORD_MAX);
    for (size_t i = 0; i < p->n_nics; i++) {
        const plan_nic *n = &p->nics[i];
        if (!n->dhcp)
            continue;
        dhcp_entry d;
        if (snprintf(d.net, sizeof(d.net), "%s", n->net_name) >= (int)sizeof(d.net) ||
            snprintf(d.mac, sizeof(d.mac), "%s", n->mac) >= (int)sizeof(d.mac) ||
            snprintf(d.ip, sizeof(d.ip), "%s", n->ip) >= (int)sizeof(d.ip)) {
            buf_done(&rec);
            dhcp_job_clear(&j);
            return backend_set_error(-EINVAL, "NIC %zu: network name, MAC or address too long", i);
        }
        j.want = xrealloc(j.want, (j.n + 1) * sizeof(*j.want));
        j.want[j.n++] = d;
        buf_printf(&rec, "%s %s %s\n", d.net, d.mac, d.ip);
    }
    _cleanup_free_ dhcp_entry *old = NULL;
    size_t n_old = 0;
    int r = dhcp_record_read(p->files_dir, &old, &n_old);
    for (size_t i = 0; r == 0 && i < n_old; i++)
        if (!dhcp_entry_in(&old[i], j.want, j.n)) {
            r = backend_network_host_remove(ctx->env->be, old[i].net, old[i].mac, old[i].ip);
            if (r == -EOPNOTSUPP)
                r = 0;
        }
    _cleanup_free_ char *path = xasprintf("%s/" DHCP_RECORD, p->files_dir);
    if (r == 0 && rec.len > 0) {
        r = fs_mkdir_p(p->files_dir, 0711);
        if (r == 0)
            r = fs_write_file(path, rec.data, rec.len);
        if (r < 0)
            r = backend_set_error(r, "cannot write %s: %s", path, strerror(-r));
    } else if (r == 0 && n_old > 0 && unlink(path) < 0 && errno != ENOENT)
        r = backend_set_error(-errno, "cannot remove %s: %s", path, strerror(errno));
    buf_done(&rec);
    if (r < 0) {
        dhcp_job_clear(&j);
        return r;
    }
    *ret = j;
    return 0;
}

/* The networks, and the record of the DHCP entries to make (ret_dhcp, for step_domain). */
static int step_network(agent_reconcile_ctx *ctx, const agent_plan *p, dhcp_job *ret_dhcp)
{
    size_t t = status_timeline_begin(ctx->status, "Network", now_realtime());
    for (size_t i = 0; i < p->n_nics; i++) {
        const plan_nic *n = &p->nics[i];
        backend_network_request req = {
            .name = n->net_name,
            .bridge = n->bridge,
            .gateway = n->gateway,
            .prefix = n->prefix,
            .mtu = n->mtu,
            .dhcp = n->dhcp,
        };
        int r = backend_network_ensure(ctx->env->be, &req);
        if (r < 0) {
            status_timeline_end(ctx->status, t, false, now_realtime());
            step_failed(ctx, "NetworkReady", "NetworkFailed", "network %s (%s): %s", n->network,
                        n->net_name, backend_last_error());
            return r;
        }
    }
    int r = dhcp_record_update(ctx, p, ret_dhcp);
    status_timeline_end(ctx->status, t, r == 0, now_realtime());
    if (r < 0) {
        step_failed(ctx, "NetworkReady", "DHCPFailed", "DHCP entry: %s", backend_last_error());
        return r;
    }
    return 0;
}

static int step_config_drive(agent_reconcile_ctx *ctx, agent_plan *p)
{
    int r = fs_mkdir_p(p->files_dir, 0711);
    if (r < 0) {
        step_failed(ctx, NULL, "StateDirFailed", "cannot create %s: %s", p->files_dir,
                    strerror(-r));
        return r;
    }
    if (!p->config_drive)
        return 0;
    size_t t = status_timeline_begin(ctx->status, "ConfigDrive", now_realtime());
    plan_disk *cd = NULL;
    for (size_t i = 0; i < p->n_disks; i++)
        if (p->disks[i].role == PLAN_DISK_CONFIG)
            cd = &p->disks[i];
    char err[CONFIGDRIVE_ERROR_MAX];
    r = configdrive_write(p, ctx->instance, cd->path, err);
    if (r < 0) {
        status_timeline_end(ctx->status, t, false, now_realtime());
        step_failed(ctx, NULL, "ConfigDriveFailed", "config drive: %s", err);
        return r;
    }
    if (r == 0) {
        if (!streq(ctx->env->settings->domain_type, "test")) {
            status_timeline_end(ctx->status, t, false, now_realtime());
            build_failed_for_good(ctx, NULL, "ConfigDriveUnavailable",
                                  "spec.configDrive is true but this node has no ISO tool "
                                  "(genisoimage, xorrisofs or mkisofs)");
            return -ENOENT;
        }
        /* A hollow node: the seed files are written; there is no guest to read an ISO. */
        agent_plan_drop_config_drive(p);
    }
    status_timeline_end(ctx->status, t, true, now_realtime());
    return 0;
}

static int step_domain(agent_reconcile_ctx *ctx, const agent_plan *p, dhcp_job *dhcp)
{
    size_t t = status_timeline_begin(ctx->status, "Domain", now_realtime());
    _cleanup_free_ char *xml = NULL;
    int r = agent_domain_xml(p, ctx->env->settings, &xml);
    if (r < 0) {
        status_timeline_end(ctx->status, t, false, now_realtime());
        step_failed(ctx, "DomainRunning", "DomainXMLFailed", "domain XML: %s", strerror(-r));
        return r;
    }
    r = backend_domain_define(ctx->env->be, xml, ctx->domain_uuid);
    if (r < 0) {
        status_timeline_end(ctx->status, t, false, now_realtime());
        step_failed(ctx, "DomainRunning", "DefineFailed", "define domain %s: %s", p->domain_name,
                    backend_last_error());
        return r;
    }
    debug_pause(ctx, "Define");
    int dr = 0;
    if (!want_running(ctx)) {
        if (dhcp->n > 0)
            dr = dhcp_job_run(dhcp);
        status_timeline_end(ctx->status, t, true, now_realtime());
        if (!dhcp_job_report(ctx, dhcp, dr))
            return dr;
        mark_stopped(ctx, false);
        ctx->outcome = AGENT_OUTCOME_DONE;
        return 0;
    }
    backend_domain_state st = BACKEND_DOMAIN_OTHER;
    r = domain_start_dhcp(ctx, p->domain_name, dhcp, &dr);
    if (r == -ECANCELED || r == -EAGAIN) {
        status_timeline_end(ctx->status, t, false, now_realtime());
        ctx->outcome = AGENT_OUTCOME_REQUEUE; /* fenced, or bound elsewhere: the cache will say */
        ctx->requeue_after = 5 * USEC_PER_SEC;
        return 0;
    }
    if (r == 0)
        r = wait_running(ctx, p->domain_name, &st);
    if (r == 0 && st != BACKEND_DOMAIN_RUNNING)
        r = backend_set_error(-ETIMEDOUT, "domain is %s, not running, after %llu ms",
                              backend_domain_state_to_string(st),
                              (unsigned long long)(ctx->env->start_timeout / USEC_PER_MSEC));
    status_timeline_end(ctx->status, t, r == 0, now_realtime());
    bool dhcp_ok = dhcp_job_report(ctx, dhcp, dr);
    if (r < 0) {
        step_failed(ctx, "DomainRunning", "StartFailed", "start domain %s: %s", p->domain_name,
                    backend_last_error());
        return r;
    }
    if (!dhcp_ok) {
        domain_running_set(ctx); /* and Ready=False, DHCPFailed: the next reconcile retries */
        return dr;
    }
    debug_pause(ctx, "Start");
    mark_running(ctx);
    ctx->outcome = AGENT_OUTCOME_DONE;
    return 0;
}

/* Too many failed attempts: remove what was made and give the instance back. */
static void give_back(agent_reconcile_ctx *ctx, const char *domain)
{
    const char *uid = spec_str(ctx, "metadata.uid");
    int r = agent_instance_cleanup(ctx->env, domain, uid);
    if (r == 0)
        r = volumes_release(ctx);
    if (r < 0) {
        /* Keep retrying the cleanup: an Unbind now would leave the disks behind. */
        step_failed(ctx, NULL, "CleanupFailed", "removing the failed build: %s",
                    backend_last_error());
        return;
    }
    char last[API_MESSAGE_MAX + 1];
    snprintf(last, sizeof(last), "%s", ctx->message);
    snprintf(ctx->message, sizeof(ctx->message),
             "build failed %u times on node \"%.253s\"; last: %.700s", ctx->failures + 1,
             ctx->env->settings->node_name, last);
    status_text_sanitize(ctx->message);
    snprintf(ctx->reason, sizeof(ctx->reason), "BuildFailed");
    ctx->outcome = AGENT_OUTCOME_UNBIND;
}

static void build(agent_reconcile_ctx *ctx, const char *domain)
{
    const char *phase = status_phase_get(ctx->status);
    int64_t gen = api_object_generation(ctx->instance);
    int64_t seen = json_integer_value(json_object_get(ctx->status, "observedGeneration"));
    if (phase && streq(phase, "Failed") && seen == gen) {
        ctx->outcome = AGENT_OUTCOME_DONE; /* for good, until the spec changes */
        return;
    }
    if (ctx->fenced) {
        ctx->outcome = AGENT_OUTCOME_REQUEUE;
        ctx->requeue_after = 5 * USEC_PER_SEC;
        return;
    }
    if (phase && (streq(phase, "Running") || streq(phase, "Stopped")))
        event_add(ctx, true, "DomainMissing", "domain %s is gone from the node; building it again",
                  domain);
    char err[PLAN_ERROR_MAX];
    _cleanup_(agent_plan_freep) agent_plan *p = NULL;
    if (agent_plan_build(ctx->instance, &ctx->refs, ctx->env->settings, &p, err) < 0) {
        step_failed(ctx, NULL, "InvalidReferences", "%s", err);
        return;
    }
    if (step_claim(ctx) < 0)
        return;
    debug_pause(ctx, "Claim");
    dhcp_job dhcp = {0};
    int r = step_block_devices(ctx, p);
    if (r == 0) {
        debug_pause(ctx, "BlockDevices");
        r = step_network(ctx, p, &dhcp);
    }
    if (r == 0) {
        debug_pause(ctx, "Network");
        r = step_config_drive(ctx, p);
    }
    if (r == 0) {
        debug_pause(ctx, "ConfigDrive");
        r = step_domain(ctx, p, &dhcp);
    }
    dhcp_job_clear(&dhcp);
    /* Not once its domain runs (a DHCP entry that failed beside the start): retried as such. */
    const char *running = status_condition_get(ctx->status, "DomainRunning");
    if (r < 0 && ctx->outcome == AGENT_OUTCOME_RETRY &&
        ctx->failures + 1 >= ctx->env->build_retries && !(running && streq(running, "True")))
        give_back(ctx, domain);
}

/* ---- delete ---- */

static void teardown(agent_reconcile_ctx *ctx, const char *domain)
{
    backend_domain_state st;
    int r = backend_domain_state_get(ctx->env->be, domain, &st, ctx->domain_uuid);
    if (r < 0 && r != -ENOENT) {
        step_failed(ctx, NULL, "DeleteFailed", "domain %s: %s", domain, backend_last_error());
        return;
    }
    if (r == 0 && st != BACKEND_DOMAIN_SHUTOFF && st != BACKEND_DOMAIN_CRASHED) {
        if (ctx->shutdown_since == 0) {
            r = backend_domain_shutdown(ctx->env->be, domain);
            ctx->shutdown_since = ctx->now_mono;
            if (r == 0) {
                ctx->outcome = AGENT_OUTCOME_REQUEUE;
                ctx->requeue_after = MIN(USEC_PER_SEC, ctx->env->shutdown_timeout / 4 + 1);
                return;
            }
        } else if (ctx->now_mono - ctx->shutdown_since < ctx->env->shutdown_timeout) {
            ctx->outcome = AGENT_OUTCOME_REQUEUE;
            ctx->requeue_after = MIN(USEC_PER_SEC, ctx->env->shutdown_timeout / 4 + 1);
            return;
        }
        /* Shutdown refused or timed out: the cleanup destroys it. */
    }
    ctx->shutdown_since = 0;
    r = agent_instance_cleanup(ctx->env, domain, spec_str(ctx, "metadata.uid"));
    if (r == 0)
        r = volumes_release(ctx);
    if (r < 0) {
        step_failed(ctx, NULL, "DeleteFailed", "cleaning up %s: %s", domain, backend_last_error());
        return;
    }
    debug_pause(ctx, "Delete");
    ctx->outcome = AGENT_OUTCOME_FINALIZE;
}

int agent_reconcile_instance(agent_reconcile_ctx *ctx)
{
    ctx->outcome = AGENT_OUTCOME_DONE;
    _cleanup_free_ char *domain = agent_domain_name(ctx->instance);
    if (!domain) {
        snprintf(ctx->reason, sizeof(ctx->reason), "InvalidObject");
        return 0;
    }
    if (api_json_lookup(ctx->instance, "metadata.deletionTimestamp")) {
        teardown(ctx, domain);
        return 0;
    }
    backend_domain_state st;
    int r = backend_domain_state_get(ctx->env->be, domain, &st, ctx->domain_uuid);
    if (r == -ENOENT) {
        build(ctx, domain);
        return 0;
    }
    if (r < 0) {
        step_failed(ctx, NULL, "BackendFailed", "domain %s: %s", domain, backend_last_error());
        return 0;
    }
    power_converge(ctx, domain, st);
    return 0;
}
