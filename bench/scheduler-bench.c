/* Scheduler throughput: 1,000 Node objects (with leases), then 10,000 Pending instances placed
 * and bound by 1 and by 3 schedulers, against a real etcd and apiserver in this process. The
 * reference, in the same run: the raw etcd transaction rate through pkg/store (64 in flight,
 * each a compare plus two puts, the smallest a binding can be). Prints "name: value unit".
 *
 *   scheduler-bench [--nodes N] [--instances N]      (defaults 1000, 10000) */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/object.h"
#include "apiserver-fixture.h"
#include "base/alloc.h"
#include "sched/scheduler.h"
#include "stats.h"

static apiserver_fixture *fx;

static int n_nodes = 1000, n_instances = 10000, batch = 500;

static void die(const char *what, const rpc_status *st)
{
    fprintf(stderr, "scheduler-bench: %s: %s\n", what, st ? st->message : "");
    exit(1);
}

/* ---- parallel setup through the API */

typedef struct job {
    pthread_t t;
    int from, to;
    const char *ns; /* instances into this namespace; NULL: nodes */
} job;

static void *setup_range(void *arg)
{
    job *j = arg;
    rpc_client *c = NULL;
    if (rpc_client_new(fx->target, NULL, &c) < 0)
        die("client", NULL);
    for (int i = j->from; i < j->to; i++) {
        char doc[512];
        rpc_status st;
        if (j->ns)
            snprintf(doc, sizeof(doc),
                     "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":"
                     "\"i%05d\",\"namespace\":\"%s\"},\"spec\":{\"flavor\":\"small\",\"image\":"
                     "\"img\"}}",
                     i, j->ns);
        else
            snprintf(doc, sizeof(doc),
                     "{\"apiVersion\":\"stratus/"
                     "v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"n%04d\"},"
                     "\"spec\":{}}",
                     i);
        Stratus__V1__ApplyRequest ar = STRATUS__V1__APPLY_REQUEST__INIT;
        ar.object_json = doc;
        Stratus__V1__ApplyResponse *arep = NULL;
        if (rpc_client_apply(c, &ar, 30 * USEC_PER_SEC, &arep, &st) < 0)
            die("apply", &st);
        rpc_message_free(arep);
        if (j->ns)
            continue;
        char name[16];
        snprintf(name, sizeof(name), "n%04d", i);
        Stratus__V1__UpdateStatusRequest ur = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
        ur.kind = "Node";
        ur.name = name;
        ur.status_json =
            "{\"allocatable\":{\"vcpus\":64,\"memoryMiB\":262144,\"diskGiB\":4000},"
            "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"Bench\","
            "\"message\":\"ready\"}]}";
        Stratus__V1__ObjectResponse *orep = NULL;
        if (rpc_client_update_status(c, &ur, 30 * USEC_PER_SEC, &orep, &st) < 0)
            die("node status", &st);
        rpc_message_free(orep);
        Stratus__V1__RenewLeaseRequest lr = STRATUS__V1__RENEW_LEASE_REQUEST__INIT;
        lr.node = name;
        lr.ttl_seconds = 300; /* outlives the run: no heartbeat thread needed */
        Stratus__V1__RenewLeaseResponse *lrep = NULL;
        if (rpc_client_renew_lease(c, &lr, 30 * USEC_PER_SEC, &lrep, &st) < 0)
            die("lease", &st);
        rpc_message_free(lrep);
    }
    rpc_client_free(c);
    return NULL;
}

static double run_parallel(int n, const char *ns, int threads)
{
    job *j = xnew(job, (size_t)threads);
    usec_t t0 = now_monotonic();
    for (int i = 0; i < threads; i++) {
        j[i] = (job){.from = i * n / threads, .to = (i + 1) * n / threads, .ns = ns};
        pthread_create(&j[i].t, NULL, setup_range, &j[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(j[i].t, NULL);
    free(j);
    return (double)(now_monotonic() - t0) / 1e6;
}

/* ---- schedulers on their own loop threads */

typedef struct sched_thread {
    pthread_t thread;
    struct ev_loop *loop;
    ev_async stop;
    scheduler_options o;
    scheduler_stats stats;
} sched_thread;

static void stop_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void *sched_main(void *arg)
{
    sched_thread *t = arg;
    scheduler *s = NULL;
    if (scheduler_new(t->loop, &t->o, &s) < 0)
        die("scheduler", NULL);
    ev_run(t->loop, 0);
    scheduler_stats_read(s, &t->stats);
    scheduler_free(s);
    return NULL;
}

/* Starts `count` schedulers and returns the seconds until every instance in ns is Scheduled,
 * counted from a watch that was open before the first scheduler started. */
static double place_all(const char *ns, int count, scheduler_stats *ret_stats)
{
    Stratus__V1__ListRequest lr = STRATUS__V1__LIST_REQUEST__INIT;
    lr.kind = "instances";
    lr.namespace_ = (char *)ns;
    lr.limit = 1;
    Stratus__V1__ListResponse *lrep = NULL;
    rpc_status st;
    if (rpc_client_list(fx->client, &lr, 30 * USEC_PER_SEC, &lrep, &st) < 0)
        die("list", &st);
    Stratus__V1__WatchRequest wr = STRATUS__V1__WATCH_REQUEST__INIT;
    wr.kind = "instances";
    wr.namespace_ = (char *)ns;
    wr.resource_version = lrep->resource_version;
    /* Only Scheduled ones: an instance becoming Scheduled arrives as ADDED (one that stopped
     * being so would be DELETED), so counting needs no parse; the watcher is not what is
     * measured, and parsing every event was ~4 % of this process's CPU. */
    wr.field_selector = "status.phase=Scheduled";
    rpc_watch *w = NULL;
    if (rpc_client_watch(fx->client, &wr, &w) < 0)
        die("watch", NULL);
    rpc_message_free(lrep);

    sched_thread *t = xnew(sched_thread, (size_t)count);
    double cpu_self = bench_proc_cpu(0), cpu_etcd = bench_proc_cpu(etcd_fixture_pid(fx->etcd));
    usec_t t0 = now_monotonic();
    for (int i = 0; i < count; i++) {
        t[i].o = (scheduler_options){
            .server = fx->target, .seed = (unsigned)(i + 1), .batch_size = (size_t)batch};
        t[i].loop = ev_loop_new(EVFLAG_AUTO);
        ev_async_init(&t[i].stop, stop_cb);
        ev_async_start(t[i].loop, &t[i].stop);
        pthread_create(&t[i].thread, NULL, sched_main, &t[i]);
    }
    long scheduled = 0;
    usec_t last = t0, first = 0;
    while (scheduled < n_instances) {
        Stratus__V1__WatchEvent *ev = NULL;
        if (rpc_watch_next(w, 60 * USEC_PER_SEC, &ev, &st) < 0)
            die("watch ended", &st);
        if (ev->type == STRATUS__V1__WATCH_EVENT__TYPE__ADDED) {
            scheduled++;
            last = now_monotonic();
            if (!first)
                first = last;
        } else if (ev->type == STRATUS__V1__WATCH_EVENT__TYPE__DELETED)
            scheduled--;
        rpc_message_free(ev);
    }
    double secs = (double)(last - t0) / 1e6;
    /* From start: the scheduler's list of every instance and node comes first (a cold start).
     * From the first binding seen to the last: the rate once it runs. */
    printf("scheduler_first_binding_after_start_%d: %.0f ms\n", count, (double)(first - t0) / 1e3);
    if (last > first && scheduled > 1)
        printf("scheduler_bound_per_sec_running_%d: %.0f instances/s (first binding seen to the "
               "last)\n",
               count, (double)(scheduled - 1) * 1e6 / (double)(last - first));
    /* CPU per instance does not depend on what else the machine runs, unlike the rate. */
    printf("cpu_per_instance_%d: %.0f us stratus (apiserver, schedulers, this watch), %.0f us "
           "etcd\n",
           count, (bench_proc_cpu(0) - cpu_self) * 1e6 / n_instances,
           (bench_proc_cpu(etcd_fixture_pid(fx->etcd)) - cpu_etcd) * 1e6 / n_instances);
    scheduler_stats sum = {0};
    for (int i = 0; i < count; i++) {
        ev_async_send(t[i].loop, &t[i].stop);
        pthread_join(t[i].thread, NULL);
        ev_loop_destroy(t[i].loop);
        sum.conflicts += t[i].stats.conflicts;
        sum.bound += t[i].stats.bound;
        sum.batches += t[i].stats.batches;
        sum.snapshot_usec += t[i].stats.snapshot_usec;
        sum.select_usec += t[i].stats.select_usec;
        sum.bind_usec += t[i].stats.bind_usec;
        sum.relists += t[i].stats.relists;
    }
    free(t);
    rpc_watch_free(w);
    *ret_stats = sum;
    return secs;
}

/* How evenly the instances of ns landed: the most and fewest on one node (spread is asked). */
static void print_spread(const char *ns, int count)
{
    json_t *per_node = json_object();
    char *token = NULL;
    do {
        Stratus__V1__ListRequest lr = STRATUS__V1__LIST_REQUEST__INIT;
        lr.kind = "instances";
        lr.namespace_ = (char *)ns;
        lr.limit = 5000;
        lr.continue_token = token;
        Stratus__V1__ListResponse *rep = NULL;
        rpc_status st;
        if (rpc_client_list(fx->client, &lr, 60 * USEC_PER_SEC, &rep, &st) < 0)
            die("list", &st);
        for (size_t i = 0; i < rep->n_items_json; i++) {
            json_t *o = json_loads(rep->items_json[i], 0, NULL);
            const char *node = json_string_value(api_json_lookup(o, "spec.nodeName"));
            if (node)
                json_object_set_new(
                    per_node, node,
                    json_integer(json_integer_value(json_object_get(per_node, node)) + 1));
            json_decref(o);
        }
        free(token);
        token = rep->continue_token && *rep->continue_token ? strdup(rep->continue_token) : NULL;
        rpc_message_free(rep);
    } while (token);
    json_int_t most = 0, fewest = -1;
    const char *k;
    json_t *v;
    json_object_foreach (per_node, k, v) {
        most = MAX(most, json_integer_value(v));
        fewest = fewest < 0 ? json_integer_value(v) : MIN(fewest, json_integer_value(v));
    }
    printf("scheduler_spread_%d: %lld to %lld instances per node over %zu nodes\n", count,
           (long long)MAX(fewest, 0), (long long)most, json_object_size(per_node));
    json_decref(per_node);
}

/* ---- the reference: binding-shaped transactions straight into etcd */

typedef struct raw_run {
    store *s;
    int next, done, n, failed;
} raw_run;

static void raw_submit(raw_run *r);

static void raw_done(store_result *res, void *ud)
{
    raw_run *r = ud;
    r->done++;
    r->failed += res->error != 0 || !res->succeeded;
    store_result_free(res);
    if (r->next < r->n)
        raw_submit(r);
}

static void raw_submit(raw_run *r)
{
    char ledger[64], inst[64];
    int i = r->next++;
    snprintf(ledger, sizeof(ledger), "/bench/ledger/%d", i);
    snprintf(inst, sizeof(inst), "/bench/instance/%d", i);
    store_txn *t = store_txn_new();
    store_txn_compare(t, ledger, STORE_CMP_CREATE, STORE_CMP_EQUAL, 0);
    store_txn_put(t, STORE_ON_SUCCESS, ledger, "{\"instances\":{\"x\":1}}", 21, 0, 0);
    store_txn_put(t, STORE_ON_SUCCESS, inst, "{\"spec\":{\"nodeName\":\"n\"}}", 26, 0, 0);
    store_txn_commit(r->s, t, raw_done, r);
    store_txn_free(t);
}

static double raw_txn_rate(int n)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    store_options o = {.n_endpoints = 1, .endpoints = {etcd_fixture_endpoint(fx->etcd)}};
    raw_run r = {.n = n};
    if (store_new(loop, &o, &r.s) < 0)
        die("store", NULL);
    double cpu_etcd = bench_proc_cpu(etcd_fixture_pid(fx->etcd));
    usec_t t0 = now_monotonic();
    for (int i = 0; i < 64 && r.next < n; i++)
        raw_submit(&r);
    while (r.done < n)
        ev_run(loop, EVRUN_ONCE);
    double rate = n / ((double)(now_monotonic() - t0) / 1e6);
    printf("etcd_cpu_per_raw_txn: %.0f us\n",
           (bench_proc_cpu(etcd_fixture_pid(fx->etcd)) - cpu_etcd) * 1e6 / n);
    if (r.failed)
        fprintf(stderr, "scheduler-bench: %d raw transactions failed\n", r.failed);
    store_free(r.s);
    ev_loop_destroy(loop);
    return rate;
}

int main(int argc, char **argv)
{
    bool bad = false;
    for (int i = 1; i < argc && !bad; i += 2) {
        if (i + 1 < argc && strcmp(argv[i], "--nodes") == 0)
            n_nodes = atoi(argv[i + 1]);
        else if (i + 1 < argc && strcmp(argv[i], "--instances") == 0)
            n_instances = atoi(argv[i + 1]);
        else if (i + 1 < argc && strcmp(argv[i], "--batch") == 0)
            batch = atoi(argv[i + 1]);
        else
            bad = true; /* --help, a typo, or a flag without its value */
    }
    if (bad || n_nodes <= 0 || n_instances <= 0 || n_nodes > 9999 || n_instances > 99999 ||
        batch <= 0 || batch > 10000) {
        fprintf(stderr, "usage: scheduler-bench [--nodes 1..9999] [--instances 1..99999] "
                        "[--batch 1..10000]\n");
        return 2;
    }
    apiserver_options ao = {.workers = 16};
    fx = apiserver_fixture_start(&ao);
    rpc_status st;
    if (fx_apply(
            fx,
            "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":\"small\"},"
            "\"spec\":{\"vcpus\":1,\"memoryMiB\":512,\"rootDiskGiB\":1}}",
            NULL, NULL, &st) < 0 ||
        fx_apply(
            fx,
            "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Image\",\"metadata\":{\"name\":\"img\"},"
            "\"spec\":{\"source\":{\"url\":\"file:///"
            "x\",\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\","
            "\"format\":\"qcow2\"}}}",
            NULL, NULL, &st) < 0)
        die("setup", &st);
    printf("# scheduler-bench: %d nodes, %d instances per run, batches of %d\n", n_nodes,
           n_instances, batch);
    double s = run_parallel(n_nodes, NULL, 8);
    printf("setup_nodes: %.1f s\n", s);

    double rates[4] = {0};
    for (int count = 1; count <= 3; count += 2) {
        const char *ns = count == 1 ? "one" : "three";
        s = run_parallel(n_instances, ns, 8);
        printf("setup_instances_%d: %.1f s (%.0f applies/s)\n", count, s, n_instances / s);
        scheduler_stats ss = {0};
        s = place_all(ns, count, &ss);
        rates[count] = n_instances / s;
        printf("scheduler_bound_per_sec_%d_scheduler%s: %.0f instances/s\n", count,
               count > 1 ? "s" : "", rates[count]);
        printf("scheduler_conflicts_%d: %zu\n", count, ss.conflicts);
        printf("scheduler_relists_%d: %zu (informer Lists after the first: a watch fell behind)\n",
               count, ss.relists);
        print_spread(ns, count);
        /* Per instance bound, summed over the schedulers: where a scheduler's time goes. */
        double per = ss.bound ? (double)ss.bound : 1;
        printf("scheduler_snapshot_per_instance_%d: %.1f us\n", count, ss.snapshot_usec / per);
        printf("scheduler_select_per_instance_%d: %.1f us\n", count, ss.select_usec / per);
        printf("scheduler_bind_calls_per_instance_%d: %.1f us (the Bind calls' durations summed: "
               "up to 4 run at once, beside placing; batches: %zu)\n",
               count, ss.bind_usec / per, ss.batches);
    }
    double raw = raw_txn_rate(n_instances);
    printf("etcd_raw_txn_per_sec_64_inflight: %.0f txn/s (reference)\n", raw);
    for (int count = 1; count <= 3; count += 2)
        printf("scheduler_vs_raw_txn_ratio_%d: %.1f %%\n", count, 100.0 * rates[count] / raw);
    apiserver_fixture_stop(fx);
    return 0;
}
