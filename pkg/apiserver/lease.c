/* RenewLease: node heartbeats.
 *
 * A node is alive while /stratus/v1/leases/<node> exists: a Lease object (kind Lease, spec
 * {holder, renewTime, leaseDurationSeconds}, read-only through Get/List/Watch), attached to an
 * etcd lease that the node agent keeps alive through this call.
 * When the agent stops calling, etcd removes the key once the TTL runs out, and watchers (the
 * node-lifecycle loop) see it go. The apiserver keeps no state: the agent carries its lease id
 * from call to call, and a lease etcd no longer knows (expired, revoked, etcd restored from a
 * backup) is replaced by a new one within the same call.
 *
 * renewTime is when the key was last written (grant, or re-attaching it), not every renewal: a
 * write per heartbeat per node would cost etcd more than the heartbeat itself. A lease's TTL is
 * fixed when it is granted; ttl_seconds only matters then.
 *
 * Not here: deciding that a node is NotReady, fencing (scheduler and agent). */
#include <errno.h>
#include <string.h>

#include "api/names.h"
#include "base/alloc.h"
#include "internal.h"
#include "stratus/v1/stratus.pb-c.h"

#define LEASE_PREFIX      "/stratus/v1/leases/"
#define LEASE_TTL_DEFAULT 10
#define LEASE_TTL_MAX     300

static int sx_lease_grant(worker *w, int64_t ttl, store_result **ret)
{
    store_sync y = STORE_SYNC_INIT;
    int r = store_lease_grant(w->st, ttl, store_sync_done, &y);
    return r < 0 ? r : store_wait(w->st, &y, ret);
}

static int sx_lease_keepalive(worker *w, int64_t id, store_result **ret)
{
    store_sync y = STORE_SYNC_INIT;
    int r = store_lease_keepalive(w->st, id, store_sync_done, &y);
    return r < 0 ? r : store_wait(w->st, &y, ret);
}

static int lease_key_put(worker *w, const char *key, const char *node, int64_t id, int64_t ttl)
{
    json_t *v = json_pack("{s:s, s:s, s:{s:s}, s:{s:s, s:I}}", "apiVersion", API_VERSION, "kind",
                          "Lease", "metadata", "name", node, "spec", "holder", node,
                          "leaseDurationSeconds", (json_int_t)ttl);
    json_set_timestamp(json_object_get(v, "metadata"), "creationTimestamp");
    json_set_timestamp(json_object_get(v, "spec"), "renewTime");
    _cleanup_free_ char *text = api_json_canonical(v);
    json_decref(v);
    store_sync y = STORE_SYNC_INIT;
    int r = store_put(w->st, key, text, strlen(text), id, 0, store_sync_done, &y);
    return r < 0 ? r : store_wait(w->st, &y, NULL);
}

/* After a keepalive: the key must still be there on this lease (someone may have deleted it, or
 * a second agent with the same name attached it to its own lease). */
static int lease_key_check(worker *w, const char *key, const char *node, int64_t id, int64_t ttl)
{
    _cleanup_(store_result_freep) store_result *r = NULL;
    int err = sx_get(w, key, &r);
    if (err == 0 && r->kvs[0].lease == id)
        return 0;
    if (err < 0 && err != -ENOENT)
        return err;
    return lease_key_put(w, key, node, id, ttl);
}

void handle_renew_lease(worker *w, rpc_call *call, const ProtobufCMessage *request)
{
    const Stratus__V1__RenewLeaseRequest *req = (const Stratus__V1__RenewLeaseRequest *)request;
    apierr e = {0};
    const char *node = req->node ? req->node : "";
    const char *problem = NULL;
    if (!*node)
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "node: required");
    else if ((problem = api_dns_subdomain_problem(node)))
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "node: \"%.64s\" is not a valid node name: %s",
                   node, problem);
    else if (req->ttl_seconds < 0)
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "ttl_seconds: %lld is negative",
                   (long long)req->ttl_seconds);
    else if (req->lease_id < 0)
        apierr_set(&e, RPC_CODE_INVALID_ARGUMENT, "lease_id: %lld is not a lease",
                   (long long)req->lease_id);
    if (e.code) {
        reply_error(call, &e);
        return;
    }
    /* The proto promises clamping rather than refusal: an agent asking for too long a lease
     * still gets a heartbeat. */
    int64_t ttl = req->ttl_seconds == 0 ? LEASE_TTL_DEFAULT : MIN(req->ttl_seconds, LEASE_TTL_MAX);
    _cleanup_free_ char *key = xasprintf(LEASE_PREFIX "%s", node);
    int64_t id = req->lease_id, left = 0;
    int err = 0;

    if (id > 0) {
        _cleanup_(store_result_freep) store_result *r = NULL;
        err = sx_lease_keepalive(w, id, &r);
        if (err == 0) {
            left = r->ttl;
            err = lease_key_check(w, key, node, id, ttl);
        }
        if (err == -ETIME)
            id = 0; /* expired or unknown: a new one below */
    }
    if (id == 0) {
        _cleanup_(store_result_freep) store_result *r = NULL;
        err = sx_lease_grant(w, ttl, &r);
        if (err == 0) {
            id = r->lease_id;
            left = r->ttl;
            err = lease_key_put(w, key, node, id, ttl);
        }
    }
    if (err < 0) {
        apierr_store(&e, err, key);
        reply_error(call, &e);
        return;
    }
    Stratus__V1__RenewLeaseResponse rep = STRATUS__V1__RENEW_LEASE_RESPONSE__INIT;
    rep.lease_id = id;
    rep.ttl_seconds = left;
    rpc_call_reply(call, RPC_CODE_OK, NULL, &rep.base);
}
