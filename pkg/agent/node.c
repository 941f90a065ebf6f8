/* A node identity's relation with the apiserver, on the heartbeat thread: register the Node
 * (create it, or merge the agent's labels and ratios into what people set), report its status
 * (capacity, allocatable, Ready, nodeInfo), renew its lease every ttl/3, and fence itself —
 * destroy every Stratus domain of this node — when the lease could not be renewed for the fencing
 * timeout, so an instance rescheduled elsewhere never runs twice. When renewals succeed again the
 * node unfences and resyncs: instances still bound here are started again, the others are
 * orphans. Ready is False while fenced, and while libvirt cannot be reached (hypervisor.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agent/agent-internal.h"
#include "agent/status.h"
#include "api/object.h"
#include "api/parse.h"
#include "api/resources.h"
#include "base/alloc.h"

static int64_t pick(const json_t *spec_capacity, const char *field, int64_t flag, int64_t detected)
{
    const json_t *v = json_object_get(spec_capacity, field);
    if (json_is_integer(v))
        return json_integer_value(v);
    return flag > 0 ? flag : detected;
}

/* capacity (spec.capacity > flags > backend), allocatable = capacity − reserved, and what claims
 * are checked against: allocatable × ratio, rounded as the apiserver's ledger rounds it. */
static void resources_compute(agent_node *n, const json_t *node)
{
    agent *a = n->a;
    const json_t *sc = api_json_lookup(node, "spec.capacity");
    const json_t *rs = api_json_lookup(node, "spec.reserved");
    pthread_mutex_lock(&n->lock);
    backend_host_info host = n->host;
    pthread_mutex_unlock(&n->lock);
    agent_resources cap = {
        .vcpus = pick(sc, "vcpus", a->o.vcpus, host.vcpus),
        .memory_mib = pick(sc, "memoryMiB", a->o.memory_mib, host.memory_mib),
        .disk_gib = pick(sc, "diskGiB", a->o.disk_gib, host.disk_gib),
    };
    agent_resources alloc = {
        .vcpus = MAX(cap.vcpus - json_integer_value(json_object_get(rs, "vcpus")), 0),
        .memory_mib = MAX(cap.memory_mib - json_integer_value(json_object_get(rs, "memoryMiB")), 0),
        .disk_gib = MAX(cap.disk_gib - json_integer_value(json_object_get(rs, "diskGiB")), 0),
    };
    json_t *probe =
        json_pack("{s:O?,s:{s:{s:I,s:I,s:I}}}", "spec", json_object_get(node, "spec"), "status",
                  "allocatable", "vcpus", (json_int_t)alloc.vcpus, "memoryMiB",
                  (json_int_t)alloc.memory_mib, "diskGiB", (json_int_t)alloc.disk_gib);
    api_node_capacity cp;
    api_node_capacity_of(probe, &cp);
    json_decref(probe);
    agent_resources sched = {
        .vcpus = cp.limit[API_RESOURCE_VCPUS],
        .memory_mib = cp.limit[API_RESOURCE_MEMORY],
        .disk_gib = cp.limit[API_RESOURCE_DISK],
    };
    pthread_mutex_lock(&n->lock);
    n->capacity = cap;
    n->allocatable = alloc;
    n->schedulable = sched;
    pthread_mutex_unlock(&n->lock);
}

static json_t *resources_json(const agent_resources *r)
{
    return json_pack("{s:I,s:I,s:I}", "vcpus", (json_int_t)r->vcpus, "memoryMiB",
                     (json_int_t)r->memory_mib, "diskGiB", (json_int_t)r->disk_gib);
}

static int apply(agent_node *n, json_t *doc, json_t **ret)
{
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT);
    Stratus__V1__ApplyRequest req = STRATUS__V1__APPLY_REQUEST__INIT;
    req.object_json = text;
    req.field_manager = AGENT_COMPONENT;
    Stratus__V1__ApplyResponse *rep = NULL;
    rpc_status st;
    int r = rpc_client_apply(n->a->client, &req, AGENT_RPC_TIMEOUT, &rep, &st);
    if (r < 0) {
        agent_log(n->a, AGENT_LOG_WARNING, n->name, "apply Node: %s", st.message);
        return r;
    }
    *ret = api_json_loads(rep->object_json, 0, NULL);
    rpc_message_free(rep);
    return *ret ? 0 : -EPROTO;
}

/* The Node as the agent wants it: what exists (people's spec and labels kept), plus the zone
 * label, the hollow label and the ratios given on the command line. */
static json_t *desired_node(agent_node *n, const json_t *cur)
{
    agent *a = n->a;
    json_t *labels = cur ? json_deep_copy(api_json_lookup(cur, "metadata.labels")) : NULL;
    if (!json_is_object(labels)) {
        json_decref(labels);
        labels = json_object();
    }
    if (a->o.zone)
        json_object_set_new(labels, AGENT_ZONE_LABEL, json_string(a->o.zone));
    if (a->o.hollow_nodes)
        json_object_set_new(labels, AGENT_HOLLOW_LABEL, json_string("true"));
    json_t *spec = cur ? json_deep_copy(json_object_get(cur, "spec")) : NULL;
    if (!json_is_object(spec)) {
        json_decref(spec);
        spec = json_object();
    }
    json_t *ratios = json_object_get(spec, "allocationRatios");
    if (!json_is_object(ratios)) {
        ratios = json_object();
        json_object_set_new(spec, "allocationRatios", ratios);
    }
    if (a->o.cpu_ratio > 0)
        json_object_set_new(ratios, "cpu", json_real(a->o.cpu_ratio));
    if (a->o.memory_ratio > 0)
        json_object_set_new(ratios, "memory", json_real(a->o.memory_ratio));
    if (a->o.disk_ratio > 0)
        json_object_set_new(ratios, "disk", json_real(a->o.disk_ratio));
    json_t *md = json_pack("{s:s,s:o}", "name", n->name, "labels", labels);
    json_t *ann = cur ? api_json_lookup(cur, "metadata.annotations") : NULL;
    if (json_is_object(ann))
        json_object_set(md, "annotations", ann);
    return json_pack("{s:s,s:s,s:o,s:o}", "apiVersion", "stratus/v1", "kind", "Node", "metadata",
                     md, "spec", spec);
}

/* Ready, as a kubelet says it: False with a reason when the node cannot run instances — its
 * lease is lost (fenced), or libvirt cannot be reached (HypervisorUnreachable, libvirt's own
 * words in the message) — so the scheduler's NodeReady filter sends new instances elsewhere. */
static void ready_condition(agent_node *n, json_t *st, const char *hv_error)
{
    usec_t now = now_realtime();
    if (atomic_load(&n->fenced))
        status_condition_set(st, "Ready", "False", "Fenced",
                             "the node lost its lease and stopped its domains", now);
    else if (atomic_load(&n->hv_down)) {
        _cleanup_free_ char *msg =
            xasprintf("cannot reach the hypervisor; running guests are left alone, nothing is "
                      "built, started or stopped until the agent reconnects: %s",
                      hv_error[0] ? hv_error : "connection lost");
        _cleanup_free_ char *safe = status_text(msg, API_MESSAGE_MAX);
        status_condition_set(st, "Ready", "False", "HypervisorUnreachable", safe, now);
    } else
        status_condition_set(st, "Ready", "True", "AgentReady", "stratus-node-agent is running",
                             now);
}

static json_t *node_status(agent_node *n, const json_t *node)
{
    const json_t *old = json_object_get(node, "status");
    json_t *st = json_is_object(old) ? json_deep_copy(old) : json_object();
    pthread_mutex_lock(&n->lock);
    json_object_set_new(st, "capacity", resources_json(&n->capacity));
    json_object_set_new(st, "allocatable", resources_json(&n->allocatable));
    backend_host_info host = n->host;
    char hv_error[BACKEND_ERROR_MAX];
    snprintf(hv_error, sizeof(hv_error), "%s", n->hv_error);
    pthread_mutex_unlock(&n->lock);
    ready_condition(n, st, hv_error);
    const char *hostname = n->a->o.hollow_nodes || !host.hostname[0] ? n->name : host.hostname;
    json_object_set_new(st, "addresses",
                        json_pack("[{s:s,s:s}]", "type", "Hostname", "address", hostname));
    struct utsname u;
    uname(&u);
    _cleanup_free_ char *be = xasprintf("libvirt-%s", n->settings.domain_type);
    json_t *info =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "hostname", hostname, "architecture",
                  n->settings.arch, "hypervisor", host.hypervisor, "hypervisorVersion",
                  host.hypervisor_version, "libvirtVersion", host.libvirt_version, "kernelVersion",
                  u.release, "osImage", u.sysname, "cpuModel", host.cpu_model, "agentVersion",
                  STRATUS_VERSION, "backend", be);
    json_object_set_new(st, "nodeInfo", info);
    json_object_set_new(st, "observedGeneration", json_integer(api_object_generation(node)));
    return st;
}

int agent_node_register(agent_node *n)
{
    agent *a = n->a;
    json_t *cur = NULL;
    int r = agent_object_get(a, "Node", NULL, n->name, &cur);
    if (r < 0 && r != -ENOENT)
        return r;
    /* The cache may be up to its TTL old: read the Node itself when it exists. */
    if (r == 0) {
        json_decref(cur);
        cur = NULL;
        Stratus__V1__GetRequest req = STRATUS__V1__GET_REQUEST__INIT;
        req.kind = "Node";
        req.namespace_ = "";
        req.name = n->name;
        Stratus__V1__ObjectResponse *rep = NULL;
        rpc_status st;
        r = rpc_client_get(a->client, &req, AGENT_RPC_TIMEOUT, &rep, &st);
        if (r == 0)
            cur = api_json_loads(rep->object_json, 0, NULL);
        rpc_message_free(rep);
        if (r < 0 && r != -ENOENT)
            return r;
    }
    json_t *want = desired_node(n, cur);
    if (!cur || !api_object_apply_equal(want, cur)) {
        json_t *applied = NULL;
        r = apply(n, want, &applied);
        if (r < 0) {
            json_decref(want);
            json_decref(cur);
            return r;
        }
        json_decref(cur);
        cur = applied;
    }
    json_decref(want);
    resources_compute(n, cur);
    json_t *st = node_status(n, cur);
    if (!json_equal(st, json_object_get(cur, "status"))) {
        _cleanup_free_ char *text = json_dumps(st, JSON_COMPACT);
        Stratus__V1__UpdateStatusRequest req = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
        req.kind = "Node";
        req.namespace_ = "";
        req.name = n->name;
        req.status_json = text;
        Stratus__V1__ObjectResponse *rep = NULL;
        rpc_status rs;
        r = rpc_client_update_status(a->client, &req, AGENT_RPC_TIMEOUT, &rep, &rs);
        rpc_message_free(rep);
        if (r < 0)
            agent_log(a, AGENT_LOG_WARNING, n->name, "Node status: %s", rs.message);
    }
    json_decref(st);
    json_decref(cur);
    if (r < 0)
        return r;
    pthread_mutex_lock(&n->lock);
    bool first = !n->registered;
    n->registered = true;
    pthread_mutex_unlock(&n->lock);
    if (first)
        agent_log(a, AGENT_LOG_INFO, n->name, "registered: %lld vcpus, %lld MiB, %lld GiB",
                  (long long)n->capacity.vcpus, (long long)n->capacity.memory_mib,
                  (long long)n->capacity.disk_gib);
    return 0;
}

/* Destroys every Stratus domain of this node (not undefined: they come back when unfenced);
 * another node identity's on the same libvirtd are not ours to stop. When libvirt cannot list
 * them (it is down too), the next beats try again: they must not keep running. */
static void fence(agent_node *n)
{
    agent *a = n->a;
    bool first = !atomic_load(&n->fenced);
    if (first) {
        atomic_store(&n->fenced, true);
        atomic_fetch_add(&a->fencings, 1);
    }
    backend_domain *doms = NULL;
    size_t nd = 0;
    size_t stopped = 0, failed = 0;
    int r = backend_domain_list(n->be, &doms, &nd);
    if (r == 0) {
        for (size_t i = 0; i < nd; i++) {
            if (!agent_domain_is_ours(&doms[i], n->name) || doms[i].state == BACKEND_DOMAIN_SHUTOFF)
                continue;
            int k = backend_domain_destroy(n->be, doms[i].name);
            if (k == 0)
                stopped++;
            else if (k != -ENOENT) /* gone meanwhile: stopped too */
                failed++;
        }
        backend_domains_free(doms, nd);
    }
    n->fence_pending = r < 0 || failed > 0;
    if (r < 0 && first)
        agent_log(a, AGENT_LOG_ERROR, n->name,
                  "no lease for %llu s: fenced, but the domains cannot be listed (%s); retrying",
                  (unsigned long long)(a->o.fencing_timeout / USEC_PER_SEC), backend_last_error());
    else if (r == 0 && (first || stopped > 0 || failed > 0))
        agent_log(a, AGENT_LOG_ERROR, n->name,
                  "no lease for %llu s: fenced, %zu domain(s) destroyed%s",
                  (unsigned long long)(a->o.fencing_timeout / USEC_PER_SEC), stopped,
                  failed ? ", some could not be: retrying" : "");
}

static int node_lease_renew(agent_node *n, bool *unreachable);

void agent_node_heartbeat(agent_node *n, usec_t now, bool *unreachable)
{
    agent *a = n->a;
    /* The close callback may not come (a borrowed backend's subscriber is someone else). */
    if (!atomic_load(&n->hv_down) && !backend_connected(n->be))
        agent_hypervisor_suspect(n);
    pthread_mutex_lock(&n->lock);
    bool registered = n->registered;
    pthread_mutex_unlock(&n->lock);
    bool dirty = atomic_exchange(&n->status_dirty, false);
    /* Until registered, the Node comes first (its lease follows). After that the lease does:
     * a status write against an apiserver that does not answer would hold the beat for its
     * whole timeout, and the fencing check with it (found in review: fencing then came later
     * than the scheduler's reschedule). */
    if (!registered && !*unreachable) {
        if (agent_node_register(n) == 0)
            n->next_status = now + a->o.node_status_interval;
        else if (dirty)
            atomic_store(&n->status_dirty, true);
        dirty = false;
    }
    if (node_lease_renew(n, unreachable) < 0) {
        if (dirty)
            atomic_store(&n->status_dirty, true);
        return;
    }
    if (registered && (dirty || now >= n->next_status)) {
        if (agent_node_register(n) == 0)
            n->next_status = now + a->o.node_status_interval;
        else if (dirty)
            atomic_store(&n->status_dirty, true);
    }
}

/* One renewal request; on success also unfences. 0, or -1 with *ret_code the failure's code. */
static int lease_try_renew(agent_node *n, rpc_code *ret_code)
{
    agent *a = n->a;
    Stratus__V1__RenewLeaseRequest req = STRATUS__V1__RENEW_LEASE_REQUEST__INIT;
    req.node = n->name;
    req.ttl_seconds = (int64_t)(a->o.lease_ttl / USEC_PER_SEC);
    req.lease_id = n->lease_id;
    Stratus__V1__RenewLeaseResponse *rep = NULL;
    rpc_status st;
    int r = rpc_client_renew_lease(a->client, &req, MIN(a->o.lease_ttl / 2, AGENT_RPC_TIMEOUT),
                                   &rep, &st);
    if (r < 0) {
        agent_log(a, AGENT_LOG_WARNING, n->name, "lease renewal failed: %s", st.message);
        *ret_code = st.code;
        return -1;
    }
    /* A new lease means the old one expired: the scheduler may have marked the node NotReady
     * meanwhile, so report Ready again now rather than at the next refresh. */
    if (n->lease_id != 0 && rep->lease_id != n->lease_id)
        n->next_status = 0;
    n->lease_id = rep->lease_id;
    n->last_renew_ok = now_monotonic();
    rpc_message_free(rep);
    if (atomic_load(&n->fenced)) {
        atomic_store(&n->unfenced_at, now_monotonic());
        atomic_store(&n->fenced, false);
        n->fence_pending = false;
        agent_log(a, AGENT_LOG_WARNING, n->name, "lease renewed: unfenced");
        n->next_status = 0; /* Ready=True again at the next beat */
        agent_node_resync(n);
    }
    return 0;
}

/* Renews the node's lease; fences once it has failed for the fencing timeout. Returns 0 when
 * renewed, -1 when not. When *unreachable (an earlier identity of this beat found the apiserver
 * unreachable or too slow) it does not try and counts as failed: one process with N hollow
 * identities would otherwise wait N request timeouts per beat, and fence its last identity
 * that much later than a real node (one identity) would. */
static int node_lease_renew(agent_node *n, bool *unreachable)
{
    agent *a = n->a;
    rpc_code code = RPC_CODE_OK;
    if (!*unreachable) {
        if (lease_try_renew(n, &code) == 0)
            return 0;
        if (code == RPC_CODE_UNAVAILABLE || code == RPC_CODE_DEADLINE_EXCEEDED)
            *unreachable = true;
    }
    atomic_fetch_add(&a->lease_failures, 1);
    /* On every beat while fenced, not once: a worker that was past its check when the fence came
     * may start a domain afterwards (the start itself checks too, agent_step_hooks.may_start). */
    if (now_monotonic() - n->last_renew_ok >= a->o.fencing_timeout)
        fence(n);
    return -1;
}
