/* Integration tests for the scheduler: a real etcd, the real apiserver and real schedulers (each
 * on its own loop thread), no agents — nodes are plain Node objects whose leases a heartbeat
 * thread here renews. */
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/object.h"
#include "api/resources.h"
#include "apiserver-fixture.h"
#include "base/alloc.h"
#include "check.h"
#include "sched/scheduler.h"

static apiserver_fixture *fx;

/* ---- schedulers on their own threads */

typedef struct sched_thread {
    pthread_t thread;
    struct ev_loop *loop;
    ev_async stop;
    scheduler_options o;
    scheduler *s;
    scheduler_stats stats;
} sched_thread;

static void stop_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void *sched_main(void *arg)
{
    sched_thread *t = arg;
    if (scheduler_new(t->loop, &t->o, &t->s) < 0)
        abort();
    ev_run(t->loop, 0);
    /* the placement cache, kept change by change (assumptions and refused binds included),
     * against one built from scratch out of the same informers */
    scheduler_audit(t->s);
    scheduler_stats_read(t->s, &t->stats);
    scheduler_free(t->s);
    return NULL;
}

static sched_thread *sched_start(const scheduler_options *o)
{
    sched_thread *t = xnew(sched_thread, 1);
    t->o = *o;
    t->o.server = fx->target;
    t->loop = ev_loop_new(EVFLAG_AUTO);
    ev_async_init(&t->stop, stop_cb);
    ev_async_start(t->loop, &t->stop);
    pthread_create(&t->thread, NULL, sched_main, t);
    return t;
}

/* Stops the scheduler; returns its last stats. */
static scheduler_stats sched_stop(sched_thread *t)
{
    ev_async_send(t->loop, &t->stop);
    pthread_join(t->thread, NULL);
    fprintf(
        stderr,
        "  scheduler: bound %zu, conflicts %zu, unschedulable %zu, failed %zu, rescheduled %zu\n",
        t->stats.bound, t->stats.conflicts, t->stats.unschedulable, t->stats.failed,
        t->stats.rescheduled);
    scheduler_stats stats = t->stats;
    ev_loop_destroy(t->loop);
    free(t);
    CHECK_INT(stats.cache_repairs, ==, 0);
    return stats;
}

/* ---- heartbeats: a thread renews the leases of the nodes listed alive */

#define NODES_MAX 128
static char alive[NODES_MAX][64];
static int64_t lease_ids[NODES_MAX];
static pthread_mutex_t alive_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool beating;
static pthread_t beat_thread;

static void *beat_main(void *arg)
{
    rpc_client *c = NULL;
    if (rpc_client_new(fx->target, NULL, &c) < 0)
        abort();
    while (atomic_load(&beating)) {
        for (int i = 0; i < NODES_MAX; i++) {
            char name[64];
            pthread_mutex_lock(&alive_lock);
            memcpy(name, alive[i], sizeof(name));
            int64_t id = lease_ids[i];
            pthread_mutex_unlock(&alive_lock);
            if (!*name)
                continue;
            Stratus__V1__RenewLeaseRequest req = STRATUS__V1__RENEW_LEASE_REQUEST__INIT;
            req.node = name;
            req.ttl_seconds = 2;
            req.lease_id = id;
            Stratus__V1__RenewLeaseResponse *rep = NULL;
            rpc_status st;
            if (rpc_client_renew_lease(c, &req, 5 * USEC_PER_SEC, &rep, &st) == 0) {
                pthread_mutex_lock(&alive_lock);
                if (streq(alive[i], name))
                    lease_ids[i] = rep->lease_id;
                pthread_mutex_unlock(&alive_lock);
                rpc_message_free(rep);
            }
        }
        usleep(300000);
    }
    rpc_client_free(c);
    return NULL;
}

/* Starts or stops renewing node's lease. */
static void heartbeat(const char *node, bool on)
{
    pthread_mutex_lock(&alive_lock);
    int slot = -1, free_slot = -1;
    for (int i = 0; i < NODES_MAX; i++) {
        if (streq(alive[i], node))
            slot = i;
        else if (!*alive[i] && free_slot < 0)
            free_slot = i;
    }
    if (on && slot < 0 && free_slot >= 0)
        snprintf(alive[free_slot], sizeof(alive[0]), "%s", node);
    bool full = on && slot < 0 && free_slot < 0;
    if (!on && slot >= 0) {
        alive[slot][0] = '\0';
        lease_ids[slot] = 0;
    }
    pthread_mutex_unlock(&alive_lock);
    /* A node past the table would silently go NotReady and take a case's capacity with it. */
    if (full)
        check_fail(__FILE__, __LINE__, "heartbeat: more than %d nodes; raise NODES_MAX", NODES_MAX);
}

static void revoke_lease(const char *node)
{
    /* stop renewing and let etcd expire it (TTL 2 s) */
    heartbeat(node, false);
}

/* ---- cluster objects */

static void apply_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void apply_ok(const char *fmt, ...)
{
    char doc[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(doc, sizeof(doc), fmt, ap);
    va_end(ap);
    rpc_status st;
    if (fx_apply(fx, doc, NULL, NULL, &st) < 0)
        check_fail(__FILE__, __LINE__, "apply: %s\n  %s", st.message, doc);
}

static void add_node(const char *name, const char *zone, int vcpus, int mem)
{
    apply_ok("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"%s\","
             "\"labels\":{\"topology.stratus.io/zone\":\"%s\"}},\"spec\":{}}",
             name, zone);
    char status[512];
    snprintf(status, sizeof(status),
             "{\"capacity\":{\"vcpus\":%d,\"memoryMiB\":%d,\"diskGiB\":1000},\"allocatable\":"
             "{\"vcpus\":%d,\"memoryMiB\":%d,\"diskGiB\":1000},\"conditions\":[{\"type\":\"Ready\","
             "\"status\":\"True\",\"reason\":\"AgentReady\",\"message\":\"ready\"}]}",
             vcpus, mem, vcpus, mem);
    Stratus__V1__UpdateStatusRequest req = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
    req.kind = "Node";
    req.name = (char *)name;
    req.status_json = status;
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status st;
    CHECK_OK(rpc_client_update_status(fx->client, &req, 10 * USEC_PER_SEC, &rep, &st));
    rpc_message_free(rep);
    heartbeat(name, true);
}

static void add_instance(const char *ns, const char *name, const char *flavor, const char *extra)
{
    apply_ok("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"%s\","
             "\"namespace\":\"%s\"},\"spec\":{\"flavor\":\"%s\",\"image\":\"img\"%s}}",
             name, ns, flavor, extra);
}

static json_t *get_instance(const char *ns, const char *name)
{
    json_t *o = NULL;
    rpc_status st;
    if (fx_get(fx, "instance", ns, name, &o, &st) < 0)
        return NULL;
    return o;
}

static const char *str_at(const json_t *o, const char *path)
{
    return json_string_value(api_json_lookup(o, path));
}

/* Waits until the instance's status.phase is `phase` (and, when node is set, it is on it). */
static json_t *wait_phase(const char *ns, const char *name, const char *phase, double timeout)
{
    usec_t end = now_monotonic() + (usec_t)(timeout * 1e6);
    while (now_monotonic() < end) {
        json_t *o = get_instance(ns, name);
        const char *p = str_at(o, "status.phase");
        if (p && streq(p, phase))
            return o;
        json_decref(o);
        usleep(50000);
    }
    return NULL;
}

/* Waits until the Scheduled condition's message contains `text`. */
static bool wait_message(const char *ns, const char *name, const char *text, double timeout)
{
    usec_t end = now_monotonic() + (usec_t)(timeout * 1e6);
    for (;;) { /* checks at least once, even with no time to wait */
        json_t *o = get_instance(ns, name);
        size_t i;
        json_t *c;
        bool found = false;
        json_array_foreach (api_json_lookup(o, "status.conditions"), i, c) {
            const char *m = str_at(c, "message");
            if (streq(str_at(c, "type") ? str_at(c, "type") : "", "Scheduled") && m &&
                strstr(m, text))
                found = true;
        }
        json_decref(o);
        if (found)
            return true;
        if (now_monotonic() >= end)
            return false;
        usleep(50000);
    }
}

static void setup(void)
{
    if (fx)
        return;
    fx = apiserver_fixture_start(NULL);
    atomic_store(&beating, true);
    pthread_create(&beat_thread, NULL, beat_main, NULL);
    apply_ok("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":\"small\"},"
             "\"spec\":{\"vcpus\":1,\"memoryMiB\":512,\"rootDiskGiB\":1}}");
    apply_ok("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":\"huge\"},"
             "\"spec\":{\"vcpus\":64,\"memoryMiB\":512,\"rootDiskGiB\":1}}");
    apply_ok(
        "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Image\",\"metadata\":{\"name\":\"img\"},"
        "\"spec\":{\"source\":{\"url\":\"file:///x\",\"sha256\":\"%064d\",\"format\":\"qcow2\"}}}",
        0);
}

static void teardown(void)
{
    if (atomic_exchange(&beating, false))
        pthread_join(beat_thread, NULL);
}

/* ---- cases (each in its own namespace; nodes are shared, named per case) */

static void fits_and_does_not_fit(void)
{
    setup();
    add_node("fit-1", "az1", 4, 4096);
    scheduler_options o = {.retry_interval = USEC_PER_SEC};
    sched_thread *t = sched_start(&o);
    add_instance("fit", "ok", "small", ",\"availabilityZone\":\"az1\"");
    add_instance("fit", "too-big", "huge", ",\"availabilityZone\":\"az1\"");
    json_t *o1 = wait_phase("fit", "ok", "Scheduled", 15);
    CHECK(o1 != NULL);
    CHECK_STR(str_at(o1, "spec.nodeName"), "fit-1");
    json_decref(o1);
    /* the only az1 node is too small: Pending, and the message counts the reason */
    CHECK(wait_message("fit", "too-big", "insufficient vcpus", 15));
    json_t *o2 = get_instance("fit", "too-big");
    CHECK_STR(str_at(o2, "status.phase"), "Pending");
    json_decref(o2);
    /* an Event says it too */
    json_t *ev = NULL;
    rpc_status st;
    CHECK_OK(fx_get(fx, "event", "fit", "too-big.failedscheduling", &ev, &st));
    CHECK(strstr(str_at(ev, "spec.message"), "insufficient vcpus") != NULL);
    json_decref(ev);

    /* a node that fits joins az1: the parked instance is placed, without a busy retry loop */
    add_node("fit-big", "az1", 128, 8192);
    json_t *o3 = wait_phase("fit", "too-big", "Scheduled", 15);
    CHECK(o3 != NULL);
    CHECK_STR(str_at(o3, "spec.nodeName"), "fit-big");
    json_decref(o3);
    sched_stop(t);
}

/* An instance its agent failed for good stays on its node and keeps its claim in the ledger until
 * it is deleted: the scheduler counts it, so an instance that only fits by that claim waits with
 * the reason instead of being sent to Bind (and refused) over and over. */
static void failed_instance_keeps_its_claim(void)
{
    setup();
    add_node("keep-1", "az9", 2, 1024); /* room for 2 small */
    scheduler_options o = {.retry_interval = USEC_PER_SEC};
    sched_thread *t = sched_start(&o);
    add_instance("keep", "a", "small", ",\"availabilityZone\":\"az9\"");
    json_t *x = wait_phase("keep", "a", "Scheduled", 15);
    CHECK(x != NULL);
    CHECK_STR(str_at(x, "spec.nodeName"), "keep-1");
    /* as the agent does when it gives up on an instance (a bad image, say): its status as it
     * was (status.nodeName, the conditions), phase Failed */
    json_t *failed = json_deep_copy(json_object_get(x, "status"));
    json_decref(x);
    json_object_set_new(failed, "phase", json_string("Failed"));
    _cleanup_free_ char *failed_text = json_dumps(failed, JSON_COMPACT);
    json_decref(failed);
    Stratus__V1__UpdateStatusRequest req = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
    req.kind = "Instance";
    req.namespace_ = "keep";
    req.name = "a";
    req.status_json = failed_text;
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status st;
    CHECK_OK(rpc_client_update_status(fx->client, &req, 10 * USEC_PER_SEC, &rep, &st));
    rpc_message_free(rep);
    add_instance("keep", "b", "small", ",\"availabilityZone\":\"az9\"");
    x = wait_phase("keep", "b", "Scheduled", 15);
    CHECK(x != NULL);
    json_decref(x);
    add_instance("keep", "c", "small", ",\"availabilityZone\":\"az9\"");
    CHECK(wait_message("keep", "c", "insufficient", 15));
    x = get_instance("keep", "c");
    CHECK_STR(str_at(x, "status.phase"), "Pending");
    json_decref(x);
    /* and no Bind was refused on the way: the scheduler never picked the full node */
    CHECK_INT(sched_stop(t).conflicts, ==, 0);
}

/* A flavor may be deleted while instances of it are bound (Nova allows it too); the ledger keeps
 * their claims, and so does the scheduler: the node they fill stays full for a new instance, and
 * no Bind is refused for it. (A new instance of a deleted flavor is refused by Apply.) */
static void deleted_flavor_keeps_its_claims(void)
{
    setup();
    apply_ok("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":"
             "\"gone-soon\"},\"spec\":{\"vcpus\":1,\"memoryMiB\":512,\"rootDiskGiB\":1}}");
    add_node("gone-1", "az8", 2, 1024); /* room for 2 of either flavor */
    scheduler_options o = {.retry_interval = USEC_PER_SEC};
    sched_thread *t = sched_start(&o);
    add_instance("gone", "a", "gone-soon", ",\"availabilityZone\":\"az8\"");
    add_instance("gone", "b", "gone-soon", ",\"availabilityZone\":\"az8\"");
    const char *bound[] = {"a", "b"};
    for (size_t i = 0; i < ELEMENTSOF(bound); i++) {
        json_t *x = wait_phase("gone", bound[i], "Scheduled", 15);
        CHECK(x != NULL);
        CHECK_STR(str_at(x, "spec.nodeName"), "gone-1");
        json_decref(x);
    }
    rpc_status st;
    CHECK_OK(fx_delete(fx, "flavor", NULL, "gone-soon", NULL, &st));
    add_instance("gone", "c", "small", ",\"availabilityZone\":\"az8\"");
    CHECK(wait_message("gone", "c", "insufficient", 15));
    json_t *x = get_instance("gone", "c");
    CHECK_STR(str_at(x, "status.phase"), "Pending");
    json_decref(x);
    CHECK_INT(sched_stop(t).conflicts, ==, 0);

    /* A scheduler that never saw the flavor counts what Bind recorded in the instances: it
     * does not send d to the full node either (there the Bind would be refused: a conflict). */
    t = sched_start(&o);
    add_instance("gone", "d", "small", ",\"availabilityZone\":\"az8\"");
    CHECK(wait_message("gone", "d", "insufficient", 15));
    x = get_instance("gone", "d");
    CHECK_STR(str_at(x, "status.phase"), "Pending");
    json_decref(x);
    CHECK_INT(sched_stop(t).conflicts, ==, 0);
}

static void zones_and_forced_nodes(void)
{
    setup();
    add_node("zone-a", "za", 8, 8192);
    add_node("zone-b", "zb", 8, 8192);
    scheduler_options o = {.retry_interval = USEC_PER_SEC};
    sched_thread *t = sched_start(&o);
    for (int i = 0; i < 4; i++) {
        char n[16];
        snprintf(n, sizeof(n), "in-b-%d", i);
        add_instance("zones", n, "small", ",\"availabilityZone\":\"zb\"");
    }
    for (int i = 0; i < 4; i++) {
        char n[16];
        snprintf(n, sizeof(n), "in-b-%d", i);
        json_t *x = wait_phase("zones", n, "Scheduled", 15);
        CHECK(x != NULL);
        CHECK_STR(str_at(x, "spec.nodeName"), "zone-b");
        json_decref(x);
    }
    /* forced onto a node that cannot hold it: stays Pending with the reason, never elsewhere */
    add_instance("zones", "forced", "huge", ",\"nodeName\":\"zone-a\"");
    CHECK(wait_message("zones", "forced", "insufficient vcpus", 15));
    CHECK(wait_message("zones", "forced", "not the requested node", 1));
    json_t *x = get_instance("zones", "forced");
    CHECK_STR(str_at(x, "status.phase"), "Pending");
    json_decref(x);
    add_instance("zones", "forced-ok", "small", ",\"nodeName\":\"zone-a\"");
    x = wait_phase("zones", "forced-ok", "Scheduled", 15);
    CHECK(x != NULL);
    CHECK_STR(str_at(x, "spec.nodeName"), "zone-a");
    json_decref(x);
    sched_stop(t);
}

static void volume_on(const char *ns, const char *name, const char *node)
{
    char status[256];
    snprintf(status, sizeof(status), "{\"phase\":\"Available\",\"nodeName\":\"%s\"}", node);
    Stratus__V1__UpdateStatusRequest req = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
    req.kind = "Volume";
    req.namespace_ = (char *)ns;
    req.name = (char *)name;
    req.status_json = status;
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status st;
    CHECK_OK(rpc_client_update_status(fx->client, &req, 10 * USEC_PER_SEC, &rep, &st));
    rpc_message_free(rep);
}

/* A Volume is a disk in one node's pool: an instance using it goes to that node, however much
 * emptier another is; with its Volumes on two nodes it stays Pending and says why, until they
 * are on one. A Volume with no disk yet constrains nothing. */
static void instances_follow_their_volumes(void)
{
    setup();
    add_node("vol-a", "zv", 8, 8192);
    add_node("vol-b", "zv", 8, 8192);
    for (int i = 1; i <= 4; i++)
        apply_ok("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Volume\",\"metadata\":{\"name\":"
                 "\"data-%d\",\"namespace\":\"vols\"},\"spec\":{\"sizeGiB\":1}}",
                 i);
    volume_on("vols", "data-1", "vol-b");
    volume_on("vols", "data-2", "vol-a");
    volume_on("vols", "data-3", "vol-b");
    scheduler_options o = {.retry_interval = USEC_PER_SEC};
    sched_thread *t = sched_start(&o);
    /* vol-b holds more than vol-a, so spread alone would pick vol-a */
    for (int i = 0; i < 3; i++) {
        char n[16];
        snprintf(n, sizeof(n), "filler-%d", i);
        add_instance("vols", n, "small", ",\"nodeName\":\"vol-b\"");
    }
    for (int i = 0; i < 5; i++) {
        char n[16];
        snprintf(n, sizeof(n), "one-%d", i);
        /* spec.nodeName unset: the scheduler chooses */
        add_instance("vols", n, "small",
                     i == 0 ? ",\"blockDevices\":[{\"name\":\"d1\",\"volume\":\"data-1\"}]" : "");
    }
    json_t *x = wait_phase("vols", "one-0", "Scheduled", 15);
    CHECK(x != NULL);
    CHECK_STR(str_at(x, "spec.nodeName"), "vol-b");
    json_decref(x);

    add_instance("vols", "apart", "small",
                 ",\"blockDevices\":[{\"name\":\"d2\",\"volume\":\"data-2\"},{\"name\":\"d3\","
                 "\"volume\":\"data-3\"}]");
    CHECK(wait_message("vols", "apart", "not where its volumes are", 15));
    x = get_instance("vols", "apart");
    CHECK_STR(str_at(x, "status.phase"), "Pending");
    json_decref(x);

    add_instance("vols", "anywhere", "small",
                 ",\"blockDevices\":[{\"name\":\"d4\",\"volume\":\"data-4\"}]");
    x = wait_phase("vols", "anywhere", "Scheduled", 15);
    CHECK(x != NULL);
    json_decref(x);

    /* both on vol-a now (say, restored there): the parked instance follows */
    volume_on("vols", "data-3", "vol-a");
    x = wait_phase("vols", "apart", "Scheduled", 15);
    CHECK(x != NULL);
    CHECK_STR(str_at(x, "spec.nodeName"), "vol-a");
    json_decref(x);
    sched_stop(t);
}

static void anti_affinity_five_over_three(void)
{
    setup();
    for (int i = 0; i < 3; i++) {
        char n[16];
        snprintf(n, sizeof(n), "aa-%d", i);
        add_node(n, "aa", 16, 16384);
    }
    apply_ok(
        "{\"apiVersion\":\"stratus/v1\",\"kind\":\"ServerGroup\",\"metadata\":{\"name\":\"web\","
        "\"namespace\":\"aa\"},\"spec\":{\"policy\":\"anti-affinity\"}}");
    scheduler_options o = {.retry_interval = USEC_PER_SEC};
    sched_thread *t = sched_start(&o);
    for (int i = 0; i < 5; i++) {
        char n[16];
        snprintf(n, sizeof(n), "w%d", i);
        add_instance("aa", n, "small", ",\"serverGroup\":\"web\",\"availabilityZone\":\"aa\"");
    }
    usec_t end = now_monotonic() + 20 * USEC_PER_SEC;
    int bound = 0, pending_with_reason = 0;
    while (now_monotonic() < end) {
        bound = pending_with_reason = 0;
        char used[3][16] = {"", "", ""};
        for (int i = 0; i < 5; i++) {
            char n[16];
            snprintf(n, sizeof(n), "w%d", i);
            json_t *x = get_instance("aa", n);
            const char *node = str_at(x, "spec.nodeName");
            if (node && streq(str_at(x, "status.phase"), "Scheduled")) {
                for (int k = 0; k < bound; k++)
                    CHECK(!streq(used[k], node)); /* never two on one node */
                snprintf(used[bound++], 16, "%s", node);
            }
            json_decref(x);
            if (!node && wait_message("aa", n, "anti-affinity", 0))
                pending_with_reason++;
        }
        if (bound == 3 && pending_with_reason == 2)
            break;
        usleep(100000);
    }
    CHECK_INT(bound, ==, 3);
    CHECK_INT(pending_with_reason, ==, 2);
    sched_stop(t);
}

static void unbind_reschedules_then_fails(void)
{
    setup();
    for (int i = 0; i < 3; i++) {
        char n[16];
        snprintf(n, sizeof(n), "rb-%d", i);
        add_node(n, "rb", 8, 8192);
    }
    scheduler_options o = {.retry_interval = USEC_PER_SEC, .max_attempts = 3};
    sched_thread *t = sched_start(&o);
    add_instance("rb", "flaky", "small", ",\"availabilityZone\":\"rb\"");
    char seen[3][16];
    for (int round = 0; round < 3; round++) {
        json_t *x = wait_phase("rb", "flaky", "Scheduled", 15);
        CHECK(x != NULL);
        const char *node = str_at(x, "spec.nodeName");
        for (int k = 0; k < round; k++)
            CHECK(!streq(seen[k], node)); /* never back to a node that gave it up */
        snprintf(seen[round], 16, "%s", node);
        /* the "agent" of that node cannot build it */
        Stratus__V1__UnbindRequest req = STRATUS__V1__UNBIND_REQUEST__INIT;
        req.namespace_ = "rb";
        req.name = "flaky";
        req.uid = (char *)api_object_uid(x);
        req.node = seen[round];
        req.reason = "BuildFailed";
        req.message = "disk image corrupt";
        Stratus__V1__ObjectResponse *rep = NULL;
        rpc_status st;
        CHECK_OK(rpc_client_call(fx->client, RPC_METHOD_UNBIND, &req.base, 10 * USEC_PER_SEC,
                                 (ProtobufCMessage **)&rep, &st));
        rpc_message_free(rep);
        json_decref(x);
    }
    json_t *x = wait_phase("rb", "flaky", "Failed", 15);
    CHECK(x != NULL);
    CHECK_INT(json_array_size(api_json_lookup(x, "status.attempts")), ==, 3);
    CHECK(wait_message("rb", "flaky", "gave up after 3 attempts", 1));
    for (int k = 0; k < 3; k++)
        CHECK(wait_message("rb", "flaky", seen[k], 1)); /* every attempt is listed */
    json_decref(x);
    sched_stop(t);
}

static void lost_node_instances_move(void)
{
    setup();
    add_node("lost-a", "lost", 8, 8192);
    add_node("lost-b", "lost", 8, 8192);
    scheduler_options o = {
        .retry_interval = USEC_PER_SEC, .fencing_margin = 2 * USEC_PER_SEC, .pack = true};
    sched_thread *t = sched_start(&o);
    /* pack: both go to the same node */
    add_instance("lost", "v1", "small", ",\"availabilityZone\":\"lost\"");
    json_t *x = wait_phase("lost", "v1", "Scheduled", 15);
    CHECK(x != NULL);
    char first[16];
    snprintf(first, sizeof(first), "%s", str_at(x, "spec.nodeName"));
    json_decref(x);
    add_instance("lost", "v2", "small", ",\"availabilityZone\":\"lost\"");
    x = wait_phase("lost", "v2", "Scheduled", 15);
    CHECK(x && streq(str_at(x, "spec.nodeName"), first));
    json_decref(x);

    revoke_lease(first);
    /* the node is marked not ready once its lease expires ... */
    usec_t end = now_monotonic() + 15 * USEC_PER_SEC;
    bool not_ready = false;
    while (!not_ready && now_monotonic() < end) {
        json_t *n = NULL;
        rpc_status st;
        if (fx_get(fx, "node", NULL, first, &n, &st) == 0) {
            size_t i;
            json_t *c;
            json_array_foreach (api_json_lookup(n, "status.conditions"), i, c)
                if (streq(str_at(c, "type"), "Ready") && streq(str_at(c, "status"), "False"))
                    not_ready = true;
            json_decref(n);
        }
        usleep(100000);
    }
    CHECK(not_ready);
    /* ... and after the fencing margin its instances run elsewhere */
    const char *other = streq(first, "lost-a") ? "lost-b" : "lost-a";
    for (int i = 1; i <= 2; i++) {
        char n[8];
        snprintf(n, sizeof(n), "v%d", i);
        usec_t e2 = now_monotonic() + 20 * USEC_PER_SEC;
        bool moved = false;
        while (!moved && now_monotonic() < e2) {
            json_t *y = get_instance("lost", n);
            moved = str_at(y, "spec.nodeName") && streq(str_at(y, "spec.nodeName"), other) &&
                    streq(str_at(y, "status.phase"), "Scheduled");
            if (moved)
                CHECK(wait_message("lost", n, "", 0));
            json_decref(y);
            usleep(100000);
        }
        CHECK(moved);
    }
    sched_stop(t);
}

/* ---- three schedulers, 2,000 instances, 50 nodes */

typedef struct creator {
    pthread_t t;
    int from, to;
    int failed;
} creator;

/* The schedulers' presence Leases now in the apiserver. */
static int presence_leases(void)
{
    Stratus__V1__ListRequest req = STRATUS__V1__LIST_REQUEST__INIT;
    req.kind = "leases";
    Stratus__V1__ListResponse *rep = NULL;
    rpc_status st;
    CHECK_OK(rpc_client_list(fx->client, &req, 30 * USEC_PER_SEC, &rep, &st));
    int n = 0;
    for (size_t i = 0; i < rep->n_items_json; i++)
        n += strstr(rep->items_json[i], "\"stratus-scheduler.") != NULL;
    rpc_message_free(rep);
    return n;
}

static void *create_range(void *arg)
{
    creator *c = arg;
    rpc_client *cl = NULL;
    rpc_client_new(fx->target, NULL, &cl);
    for (int i = c->from; i < c->to; i++) {
        char doc[512];
        snprintf(
            doc, sizeof(doc),
            "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"r%04d\","
            "\"namespace\":\"race\"},\"spec\":{\"flavor\":\"small\",\"image\":\"img\","
            "\"serverGroup\":\"%s\",\"availabilityZone\":\"race\"}}",
            i, i % 100 == 0 ? "spread" : "free");
        /* every 100th instance is in a hard anti-affinity group: at most one per node */
        if (i % 100 != 0) {
            char *p = strstr(doc, ",\"serverGroup\":\"free\"");
            memmove(p, p + strlen(",\"serverGroup\":\"free\""),
                    strlen(p + strlen(",\"serverGroup\":\"free\"")) + 1);
        }
        Stratus__V1__ApplyRequest req = STRATUS__V1__APPLY_REQUEST__INIT;
        req.object_json = doc;
        Stratus__V1__ApplyResponse *rep = NULL;
        rpc_status st;
        if (rpc_client_apply(cl, &req, 30 * USEC_PER_SEC, &rep, &st) < 0)
            c->failed++;
        rpc_message_free(rep);
    }
    rpc_client_free(cl);
    return NULL;
}

static void three_schedulers_never_overcommit(void)
{
    setup();
    const int nodes = 50, instances = 2000;
    for (int i = 0; i < nodes; i++) {
        char n[16];
        snprintf(n, sizeof(n), "race-%02d", i);
        add_node(n, "race", 36, 36 * 512); /* room for 36 small: 1,800 in all, 200 stay Pending */
    }
    apply_ok(
        "{\"apiVersion\":\"stratus/v1\",\"kind\":\"ServerGroup\",\"metadata\":{\"name\":\"spread\","
        "\"namespace\":\"race\"},\"spec\":{\"policy\":\"anti-affinity\"}}");
    scheduler_options o = {.retry_interval = 2 * USEC_PER_SEC, .batch_size = 100};
    sched_thread *t[3];
    for (int i = 0; i < 3; i++) {
        o.seed = (unsigned)(i + 1);
        t[i] = sched_start(&o);
    }
    creator c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (creator){.from = i * instances / 4, .to = (i + 1) * instances / 4};
        pthread_create(&c[i].t, NULL, create_range, &c[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(c[i].t, NULL);
        CHECK_INT(c[i].failed, ==, 0);
    }
    /* wait until 1,800 are bound */
    int bound = 0;
    usec_t end = now_monotonic() + 120 * USEC_PER_SEC;
    int per_node[64];
    int group_per_node[64];
    while (now_monotonic() < end) {
        memset(per_node, 0, sizeof(per_node));
        memset(group_per_node, 0, sizeof(group_per_node));
        bound = 0;
        char token[4096] = "";
        do {
            Stratus__V1__ListRequest req = STRATUS__V1__LIST_REQUEST__INIT;
            req.kind = "instances";
            req.namespace_ = "race";
            req.limit = 1000;
            req.continue_token = token;
            Stratus__V1__ListResponse *rep = NULL;
            rpc_status st;
            CHECK_OK(rpc_client_list(fx->client, &req, 30 * USEC_PER_SEC, &rep, &st));
            for (size_t i = 0; i < rep->n_items_json; i++) {
                json_t *x = json_loads(rep->items_json[i], 0, NULL);
                const char *node = str_at(x, "spec.nodeName");
                if (node && streq(str_at(x, "status.phase"), "Scheduled")) {
                    int ni = atoi(node + 5);
                    per_node[ni]++;
                    if (str_at(x, "spec.serverGroup"))
                        group_per_node[ni]++;
                    bound++;
                }
                json_decref(x);
            }
            snprintf(token, sizeof(token), "%s", rep->continue_token);
            rpc_message_free(rep);
        } while (*token);
        if (bound >= 1800)
            break;
        usleep(500000);
    }
    /* stop the schedulers before judging, so a failure leaves none running */
    for (int i = 0; i < 3; i++)
        sched_stop(t[i]);
    /* each said it stopped: no presence left for the others to wait out */
    CHECK_INT(presence_leases(), ==, 0);
    if (bound != 1800) {
        struct ev_loop *dl = ev_loop_new(EVFLAG_AUTO);
        store_options dso = {.n_endpoints = 1, .endpoints = {etcd_fixture_endpoint(fx->etcd)}};
        store *ds = NULL;
        store_new(dl, &dso, &ds);
        for (int i = 0; i < nodes; i++) {
            char key[64];
            snprintf(key, sizeof(key), "/stratus/v1/allocations/race-%02d", i);
            store_sync y = STORE_SYNC_INIT;
            store_result *r = NULL;
            store_get(ds, key, store_sync_done, &y);
            size_t n = 0;
            if (store_wait(ds, &y, &r) == 0) {
                json_t *l = json_loadb(r->kvs[0].value, r->kvs[0].value_len, 0, NULL);
                n = json_object_size(json_object_get(l, "instances"));
                json_decref(l);
            }
            store_result_free(r);
            if (n != (size_t)per_node[i])
                fprintf(stderr, "  race-%02d: ledger %zu, instances %d\n", i, n, per_node[i]);
        }
        store_free(ds);
        ev_loop_destroy(dl);
        /* say what the stragglers were told, and where room was left */
        for (int i = 0; i < nodes; i++)
            if (per_node[i] < 36)
                fprintf(stderr, "  race-%02d has %d of 36\n", i, per_node[i]);
        int shown = 0;
        for (int i = 0; i < instances && shown < 5; i++) {
            char n[16];
            snprintf(n, sizeof(n), "r%04d", i);
            json_t *x = get_instance("race", n);
            if (x && !str_at(x, "spec.nodeName")) {
                char *d = json_dumps(json_object_get(x, "status"), JSON_COMPACT);
                fprintf(stderr, "  %s: %s\n", n, d);
                free(d);
                shown++;
            }
            json_decref(x);
        }
    }
    CHECK_INT(bound, ==, 1800);
    for (int i = 0; i < nodes; i++) {
        CHECK_INT(per_node[i], <=, 36);      /* never above capacity */
        CHECK_INT(group_per_node[i], <=, 1); /* never two of the anti-affinity group */
    }
    /* the ledgers agree with the instances, key by key */
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    store_options so = {.n_endpoints = 1, .endpoints = {etcd_fixture_endpoint(fx->etcd)}};
    store *s = NULL;
    CHECK_OK(store_new(loop, &so, &s));
    for (int i = 0; i < nodes; i++) {
        char key[64];
        snprintf(key, sizeof(key), "/stratus/v1/allocations/race-%02d", i);
        store_sync y = STORE_SYNC_INIT;
        store_result *r = NULL;
        store_get(s, key, store_sync_done, &y);
        int e = store_wait(s, &y, &r);
        size_t n = 0;
        if (e == 0) {
            json_t *l = json_loadb(r->kvs[0].value, r->kvs[0].value_len, 0, NULL);
            n = json_object_size(json_object_get(l, "instances"));
            json_decref(l);
        }
        store_result_free(r);
        CHECK_INT(n, ==, per_node[i]);
    }
    store_free(s);
    ev_loop_destroy(loop);
}

CHECK_MAIN(CASE(fits_and_does_not_fit), CASE(failed_instance_keeps_its_claim),
           CASE(deleted_flavor_keeps_its_claims), CASE(zones_and_forced_nodes),
           CASE(instances_follow_their_volumes), CASE(anti_affinity_five_over_three),
           CASE(unbind_reschedules_then_fails), CASE(lost_node_instances_move),
           CASE(three_schedulers_never_overcommit), CASE(teardown))
