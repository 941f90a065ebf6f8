/* Losing and regaining the connection to the hypervisor. libvirtd can restart under a running
 * agent (an upgrade, a crash, an operator); libvirt then fails every call on the old connection
 * and never reopens it. The agent notices three ways — the backend's close callback (an event with
 * no domain), a reconcile whose failure came with a dead connection, the heartbeat's cheap
 * backend_connected() check every beat — and each only enqueues the node's AGENT_HYPERVISOR key.
 * That key, on a worker (reconnecting blocks), marks the node down, reconnects with the work
 * queue's per-key backoff (100 ms doubling to 30 s), and once connected marks it up and resyncs
 * every instance: events missed meanwhile are made up for by looking at everything.
 *
 * While down, instance keys are set aside (reconcile.c: nothing to learn from a backend that
 * cannot answer, and failures would count towards giving instances back), housekeeping waits,
 * and the Node reports Ready=False, reason HypervisorUnreachable (node.c). The lease is still
 * renewed: guests keep running under qemu while libvirtd is away, so nothing is rescheduled. */
#include <stdio.h>

#include "agent/agent-internal.h"

void agent_hypervisor_suspect(agent_node *n)
{
    /* Once down, the key reschedules itself with backoff; adding it now would cut that short. */
    if (!atomic_load(&n->hv_down))
        agent_enqueue(n, AGENT_HYPERVISOR);
}

static void set_error(agent_node *n, const char *text)
{
    pthread_mutex_lock(&n->lock);
    snprintf(n->hv_error, sizeof(n->hv_error), "%s", text);
    pthread_mutex_unlock(&n->lock);
}

void agent_hypervisor_check(agent_node *n, const char *qkey)
{
    agent *a = n->a;
    bool down = atomic_load(&n->hv_down);
    if (!down && backend_connected(n->be)) {
        workqueue_forget(a->q, qkey); /* a call failed for another reason */
        return;
    }
    if (!down) {
        pthread_mutex_lock(&n->lock);
        n->hv_down_since = now_monotonic();
        snprintf(n->hv_error, sizeof(n->hv_error), "the connection to %s %s was closed",
                 backend_name(n->be), a->o.uri);
        pthread_mutex_unlock(&n->lock);
        atomic_store(&n->hv_down, true);
        atomic_fetch_add(&a->hypervisor_losses, 1);
        atomic_store(&n->status_dirty, true);
        agent_heartbeat_kick(a);
        agent_log(a, AGENT_LOG_ERROR, n->name,
                  "lost the connection to the hypervisor: reconciles wait until it is back");
    }
    int r = backend_reconnect(n->be);
    if (r < 0) {
        unsigned tries = workqueue_num_requeues(a->q, qkey);
        set_error(n, backend_last_error());
        if (tries == 0) {
            atomic_store(&n->status_dirty, true); /* the Node's message gets libvirt's reason */
            agent_heartbeat_kick(a);
        }
        if (tries % 10 == 0)
            agent_log(a, AGENT_LOG_WARNING, n->name, "cannot reconnect to the hypervisor: %s",
                      backend_last_error());
        workqueue_add_rate_limited(a->q, qkey, NULL);
        return;
    }
    backend_host_info h;
    bool fresh = backend_host_info_get(n->be, &h) == 0;
    pthread_mutex_lock(&n->lock);
    if (fresh)
        n->host = h; /* libvirtd may have been upgraded */
    usec_t since = n->hv_down_since;
    n->hv_error[0] = 0;
    pthread_mutex_unlock(&n->lock);
    atomic_store(&n->hv_down, false);
    atomic_fetch_add(&a->reconnects, 1);
    workqueue_forget(a->q, qkey);
    atomic_store(&n->status_dirty, true);
    agent_heartbeat_kick(a);
    agent_log(a, AGENT_LOG_WARNING, n->name,
              "reconnected to the hypervisor after %.1f s: resyncing every instance",
              (double)(now_monotonic() - since) / USEC_PER_SEC);
    agent_node_resync(n);
}
