/* Boot storm and steady churn on hollow nodes: the whole real system — etcd, stratus-apiserver,
 * stratus-scheduler and one stratus-node-agent process running N hollow nodes on libvirt's test
 * driver (bench/cluster.h) — driven through the API by this process, which times each instance
 * from its Apply's reply to the watch showing it Running.
 *
 *   storm: I instances applied at once (16 threads, 4 connections) over N hollow nodes: time
 *          from the first Apply sent to the last instance Running, and apply→Running p50/90/99.
 *          Goal (issue 8): all Running ≤ 5 s, p99 ≤ 1 s at 1,000 instances over 100 nodes.
 *   churn: R instances/s created, each deleted L seconds after it was created, for D seconds:
 *          apply→Running p50/p99 (goal p50 ≤ 20 ms, p99 ≤ 100 ms at 100/s) and delete→gone.
 *
 * Both print where the time went, per instance, on the watcher's clock: apply→Scheduled seen
 * (scheduler: its watch, queue, placement, Bind), Scheduled→Claim started (agent: watch, work
 * queue, lookups; from the status timeline), Claim→Domain step ended (the build steps), and
 * Domain ended→Running seen (the last status write and its delivery); the CPU each process
 * used; what etcd did meanwhile (revisions written, range reads, fsyncs, from its /metrics); and,
 * after the phase with the scheduler stopped, what one Bind costs on that cluster (200
 * instances over every node, as the scheduler batches them; and one instance). Nothing here
 * fails on a time.
 *
 *   hollow-bench [--only storm|churn] [--quick] [--nodes N] [--instances N] [--rate R]
 *                [--duration D] [--lifetime L] [--agent-workers W] [--apiserver-workers W]
 * Defaults: 100 nodes, 1,000 instances, 100/s for 60 s, lifetime 5 s. --quick: churn for 10 s.
 * The worker flags pass --workers to the agent / apiserver (default: the programs' defaults),
 * to see how a stage responds; the figures in docs/performance.md use the defaults. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/object.h"
#include "base/alloc.h"
#include "cluster.h"

static struct {
    int nodes, instances, rate, agent_workers, apiserver_workers;
    usec_t duration, lifetime;
    const char *only;
} cfg = {
    .nodes = 100,
    .instances = 1000,
    .rate = 100,
    .duration = 60 * USEC_PER_SEC,
    .lifetime = 5 * USEC_PER_SEC,
};

/* ---- what happened to each instance, by index (names are i<index>) */

typedef struct track {
    usec_t sent, applied;            /* Apply sent, reply received (monotonic) */
    usec_t scheduled, running, gone; /* first seen by the watch (monotonic) */
    usec_t scheduled_rt, running_rt; /* the same, realtime */
    usec_t claim_rt, domain_rt;      /* timeline: Claim started, Domain ended */
    usec_t delete_sent, deleted;     /* Delete sent, reply received */
    int events;                      /* watch events about it */
    bool late;                       /* Running learned from a relist */
    bool settled;                    /* Running or gone, whichever came first */
} track;

static track *tr;
static int n_tracks;
static const char *ns;
static bench_cluster *cl;

static int index_of(const char *name)
{
    if (!name || name[0] != 'i')
        return -1;
    char *end;
    long i = strtol(name + 1, &end, 10);
    return *end || i < 0 || i >= n_tracks ? -1 : (int)i;
}

static usec_t timeline_time(const json_t *obj, const char *step, const char *field, bool last)
{
    size_t i;
    json_t *e;
    usec_t t = 0;
    json_array_foreach (api_json_lookup(obj, "status.timeline"), i, e) {
        const char *s = json_string_value(json_object_get(e, "step"));
        const char *v = json_string_value(json_object_get(e, field));
        usec_t x;
        if (s && v && streq(s, step) && timestamp_parse(v, &x) == 0 && (last || !t))
            t = x;
    }
    return t;
}

/* ---- the watcher */

static atomic_bool watch_stop;
static atomic_int n_running, n_gone, n_settled;
static int relists;
static pthread_t watch_thread;

static void observe(const json_t *o, bool deleted, bool from_list, usec_t now, usec_t now_rt)
{
    int i = index_of(api_object_name(o));
    if (i < 0)
        return;
    track *t = &tr[i];
    t->events += !from_list;
    if (deleted) {
        if (!t->gone) {
            t->gone = now;
            atomic_fetch_add(&n_gone, 1);
        }
        if (!t->settled) {
            t->settled = true;
            atomic_fetch_add(&n_settled, 1);
        }
        return;
    }
    const char *phase = json_string_value(api_json_lookup(o, "status.phase"));
    if (!phase)
        return;
    if (streq(phase, "Scheduled") && !t->scheduled) {
        t->scheduled = now;
        t->scheduled_rt = now_rt;
    }
    if (streq(phase, "Running") && !t->running) {
        t->running = now;
        t->running_rt = now_rt;
        t->claim_rt = timeline_time(o, "Claim", "startTime", false);
        t->domain_rt = timeline_time(o, "Domain", "endTime", true);
        t->late = from_list;
        atomic_fetch_add(&n_running, 1);
        if (!t->settled) {
            t->settled = true;
            atomic_fetch_add(&n_settled, 1);
        }
    }
}

/* Lists the namespace (recording what it shows as late) and returns its revision. */
static char *relist(bool record)
{
    char *rv = NULL;
    _cleanup_free_ char *cont = NULL;
    do {
        Stratus__V1__ListRequest req = STRATUS__V1__LIST_REQUEST__INIT;
        req.kind = "instances";
        req.namespace_ = (char *)ns;
        req.limit = 500;
        req.continue_token = cont ? cont : "";
        Stratus__V1__ListResponse *rep = NULL;
        rpc_status st;
        if (rpc_client_list(cl->client, &req, 30 * USEC_PER_SEC, &rep, &st) < 0) {
            fprintf(stderr, "hollow-bench: list: %s\n", st.message);
            exit(1);
        }
        usec_t now = now_monotonic(), now_rt = now_realtime();
        for (size_t i = 0; record && i < rep->n_items_json; i++) {
            json_t *o = json_loads(rep->items_json[i], 0, NULL);
            observe(o, false, true, now, now_rt);
            json_decref(o);
        }
        if (!rv)
            rv = xstrdup(rep->resource_version);
        free(cont);
        cont = rep->continue_token && *rep->continue_token ? xstrdup(rep->continue_token) : NULL;
        rpc_message_free(rep);
    } while (cont);
    return rv;
}

static rpc_watch *watch_from(const char *rv)
{
    Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
    req.kind = "instances";
    req.namespace_ = (char *)ns;
    req.resource_version = (char *)rv;
    rpc_watch *w = NULL;
    if (rpc_client_watch(cl->client, &req, &w) < 0) {
        fprintf(stderr, "hollow-bench: cannot watch\n");
        exit(1);
    }
    return w;
}

static void *watch_main(void *arg)
{
    rpc_watch *w = arg;
    while (!atomic_load(&watch_stop)) {
        Stratus__V1__WatchEvent *ev = NULL;
        rpc_status st;
        int r = rpc_watch_next(w, 100 * USEC_PER_MSEC, &ev, &st);
        if (r == -ETIMEDOUT)
            continue;
        if (r < 0) {
            /* fell behind or ended: List again, then watch from the list's revision */
            rpc_watch_free(w);
            relists++;
            _cleanup_free_ char *rv = relist(true);
            w = watch_from(rv);
            continue;
        }
        usec_t now = now_monotonic(), now_rt = now_realtime();
        if (ev->type == STRATUS__V1__WATCH_EVENT__TYPE__ADDED ||
            ev->type == STRATUS__V1__WATCH_EVENT__TYPE__MODIFIED ||
            ev->type == STRATUS__V1__WATCH_EVENT__TYPE__DELETED) {
            json_t *o = json_loads(ev->object_json, 0, NULL);
            observe(o, ev->type == STRATUS__V1__WATCH_EVENT__TYPE__DELETED, false, now, now_rt);
            json_decref(o);
        }
        rpc_message_free(ev);
    }
    rpc_watch_free(w);
    return NULL;
}

static void watch_start(void)
{
    atomic_store(&watch_stop, false);
    atomic_store(&n_running, 0);
    atomic_store(&n_gone, 0);
    atomic_store(&n_settled, 0);
    relists = 0;
    _cleanup_free_ char *rv = relist(false);
    pthread_create(&watch_thread, NULL, watch_main, watch_from(rv));
}

static void watch_end(void)
{
    atomic_store(&watch_stop, true);
    pthread_join(watch_thread, NULL);
}

/* Waits until `count` reaches want, or nothing moved for `idle`. Returns whether it did. */
static bool wait_count(atomic_int *count, int want, usec_t idle)
{
    int last = -1;
    usec_t since = now_monotonic();
    while (atomic_load(count) < want) {
        int now = atomic_load(count);
        if (now != last) {
            last = now;
            since = now_monotonic();
        } else if (now_monotonic() - since > idle)
            return false;
        usleep(2000);
    }
    return true;
}

/* ---- figures */

typedef struct series {
    usec_t *v;
    size_t n;
} series;

static void series_add(series *s, usec_t v)
{
    s->v[s->n++] = v;
}

static void print_quantiles(const char *prefix, const char *what, series *s, bool p90)
{
    qsort(s->v, s->n, sizeof(usec_t), bench_cmp_usec);
    printf("%s_%s_p50: %.1f ms\n", prefix, what, bench_ms(bench_quantile(s->v, s->n, 0.50)));
    if (p90)
        printf("%s_%s_p90: %.1f ms\n", prefix, what, bench_ms(bench_quantile(s->v, s->n, 0.90)));
    printf("%s_%s_p99: %.1f ms\n", prefix, what, bench_ms(bench_quantile(s->v, s->n, 0.99)));
    printf("%s_%s_max: %.1f ms\n", prefix, what, bench_ms(s->n ? s->v[s->n - 1] : 0));
}

static usec_t diff(usec_t later, usec_t earlier)
{
    return later > earlier ? later - earlier : 0;
}

/* apply→Running and its stages over instances [from, to). */
static void print_latencies(const char *prefix, int from, int to, const char *goal)
{
    size_t cap = (size_t)(to - from) + 1;
    series total = {xnew(usec_t, cap)}, sched = {xnew(usec_t, cap)}, pickup = {xnew(usec_t, cap)},
           build = {xnew(usec_t, cap)}, report = {xnew(usec_t, cap)};
    int late = 0, missing = 0, deleted_first = 0;
    long events = 0;
    usec_t claim_first = 0, claim_last = 0;
    for (int i = from; i < to; i++) {
        track *t = &tr[i];
        if (!t->applied)
            continue;
        events += t->events;
        if (!t->running) {
            if (t->gone)
                deleted_first++;
            else
                missing++;
            continue;
        }
        late += t->late;
        series_add(&total, diff(t->running, t->applied));
        if (t->claim_rt && (!claim_first || t->claim_rt < claim_first))
            claim_first = t->claim_rt;
        if (t->claim_rt > claim_last)
            claim_last = t->claim_rt;
        if (t->late || !t->scheduled || !t->claim_rt || !t->domain_rt)
            continue;
        series_add(&sched, diff(t->scheduled, t->applied));
        series_add(&pickup, diff(t->claim_rt, t->scheduled_rt));
        series_add(&build, diff(t->domain_rt, t->claim_rt));
        series_add(&report, diff(t->running_rt, t->domain_rt));
    }
    print_quantiles(prefix, "apply_to_running", &total, true);
    if (goal)
        printf("%s_goal: %s\n", prefix, goal);
    if (missing)
        printf("%s_never_running: %d\n", prefix, missing);
    if (deleted_first)
        printf("%s_deleted_before_running: %d (not in the latencies)\n", prefix, deleted_first);
    if (late)
        printf("%s_running_seen_only_by_relist: %d (their time is when the relist saw them)\n",
               prefix, late);
    printf("# where the time went (%zu instances with every stage seen)\n", sched.n);
    print_quantiles(prefix, "stage_apply_to_scheduled", &sched, false);
    print_quantiles(prefix, "stage_scheduled_to_claim", &pickup, false);
    print_quantiles(prefix, "stage_claim_to_domain_started", &build, false);
    print_quantiles(prefix, "stage_domain_started_to_running_seen", &report, false);
    if (total.n > 1 && claim_last > claim_first)
        printf("%s_agent_claims_per_sec: %.0f (builds started, first to last)\n", prefix,
               (double)(total.n - 1) / ((double)(claim_last - claim_first) / 1e6));
    printf("%s_watch_events_per_instance: %.1f\n", prefix, (double)events / (double)(to - from));
    free(total.v);
    free(sched.v);
    free(pickup.v);
    free(build.v);
    free(report.v);
}

/* Event objects in ns (what the agent and scheduler reported about the instances). */
static long count_events(void)
{
    long n = 0;
    _cleanup_free_ char *cont = NULL;
    do {
        Stratus__V1__ListRequest req = STRATUS__V1__LIST_REQUEST__INIT;
        req.kind = "events";
        req.namespace_ = (char *)ns;
        req.limit = 500;
        req.continue_token = cont ? cont : "";
        Stratus__V1__ListResponse *rep = NULL;
        rpc_status st;
        if (rpc_client_list(cl->client, &req, 30 * USEC_PER_SEC, &rep, &st) < 0)
            return -1;
        n += (long)rep->n_items_json;
        free(cont);
        cont = rep->continue_token && *rep->continue_token ? xstrdup(rep->continue_token) : NULL;
        rpc_message_free(rep);
    } while (cont);
    return n;
}

static void print_rss(const char *prefix)
{
    printf("%s_rss: apiserver %.1f MiB, scheduler %.1f MiB, node-agent (%d hollow nodes) %.1f "
           "MiB\n",
           prefix, bench_proc_kib(cl->apiserver->pid, "VmRSS") / 1024.0,
           bench_proc_kib(cl->scheduler->pid, "VmRSS") / 1024.0, cfg.nodes,
           bench_proc_kib(cl->agent->pid, "VmRSS") / 1024.0);
}

typedef struct cpu_mark {
    double apiserver, scheduler, agent, etcd, self;
    usec_t at;
} cpu_mark;

static cpu_mark cpu_now(void)
{
    pid_t etcd = bench_child_by_comm("etcd");
    return (cpu_mark){
        .apiserver = bench_proc_cpu(cl->apiserver->pid),
        .scheduler = bench_proc_cpu(cl->scheduler->pid),
        .agent = bench_proc_cpu(cl->agent->pid),
        .etcd = etcd ? bench_proc_cpu(etcd) : 0,
        .self = bench_proc_cpu(0),
        .at = now_monotonic(),
    };
}

static void print_cpu(const char *prefix, cpu_mark a, cpu_mark b)
{
    double wall = (double)(b.at - a.at) / 1e6;
    printf("%s_cpu_seconds: apiserver %.2f, scheduler %.2f, node-agent %.2f, etcd %.2f, "
           "benchmark %.2f (of %.2f available: 2 cores x %.2f s wall)\n",
           prefix, b.apiserver - a.apiserver, b.scheduler - a.scheduler, b.agent - a.agent,
           b.etcd - a.etcd, b.self - a.self, 2 * wall, wall);
}

/* ---- the cluster for one phase */

static void cluster_up(const char *phase_ns, int tracks)
{
    char api_workers[16];
    snprintf(api_workers, sizeof(api_workers), "%d", cfg.apiserver_workers);
    const char *api_flags[] = {cfg.apiserver_workers ? "--workers" : NULL, api_workers, NULL};
    cl = bench_cluster_start(api_flags);
    bench_apply_basics(cl);
    bench_cluster_start_scheduler(cl, NULL);
    char nodes[16], workers[16];
    snprintf(nodes, sizeof(nodes), "%d", cfg.nodes);
    snprintf(workers, sizeof(workers), "%d", cfg.agent_workers);
    const char *flags[] = {"--hollow-nodes",
                           nodes,
                           "--vcpus",
                           "64",
                           "--memory-mib",
                           "262144",
                           "--disk-gib",
                           "10000",
                           cfg.agent_workers ? "--workers" : NULL,
                           workers,
                           NULL};
    usec_t t0 = now_monotonic();
    bench_cluster_start_agent(cl, flags, cfg.nodes);
    printf("cluster_up_%d_hollow_nodes_ready: %.1f s\n", cfg.nodes,
           (double)(now_monotonic() - t0) / 1e6);
    if (cfg.agent_workers || cfg.apiserver_workers)
        printf("# not the defaults: agent --workers %d, apiserver --workers %d (0 = default)\n",
               cfg.agent_workers, cfg.apiserver_workers);
    ns = phase_ns;
    n_tracks = tracks;
    tr = xnew(track, (size_t)tracks);
}

static void cluster_down(void)
{
    bench_cluster_stop(cl);
    cl = NULL;
    free(tr);
    tr = NULL;
}

static void apply_one(rpc_client *c, int i)
{
    char name[16];
    snprintf(name, sizeof(name), "i%06d", i);
    _cleanup_free_ char *doc = bench_instance_doc(ns, name);
    rpc_status st;
    tr[i].sent = now_monotonic();
    if (bench_apply(c, doc, 30 * USEC_PER_SEC, NULL, &st) < 0) {
        fprintf(stderr, "hollow-bench: apply %s: %s\n", name, st.message);
        exit(1);
    }
    tr[i].applied = now_monotonic();
}

static void delete_one(rpc_client *c, int i)
{
    char name[16];
    snprintf(name, sizeof(name), "i%06d", i);
    rpc_status st;
    tr[i].delete_sent = now_monotonic();
    int r = bench_delete(c, "Instance", ns, name, 30 * USEC_PER_SEC, &st);
    if (r < 0 && r != -ENOENT) {
        fprintf(stderr, "hollow-bench: delete %s: %s\n", name, st.message);
        exit(1);
    }
    tr[i].deleted = now_monotonic();
}

/* ---- what one Bind costs */

/* Binds instances [from, to) of ns "probe" (created here) in one call, spread over the hollow
 * nodes as the scheduler spreads them; returns the call's duration. */
static usec_t bind_call(int from, int to)
{
    int n = to - from;
    Stratus__V1__Binding *b = xnew(Stratus__V1__Binding, (size_t)n);
    Stratus__V1__Binding **bp = xnew(Stratus__V1__Binding *, (size_t)n);
    char **names = xnew(char *, (size_t)n), **nodes = xnew(char *, (size_t)n);
    json_t **objs = xnew(json_t *, (size_t)n);
    for (int i = 0; i < n; i++) {
        names[i] = xasprintf("p%05d", from + i);
        nodes[i] = xasprintf("hollow-%d", (from + i) % cfg.nodes);
        _cleanup_free_ char *doc = bench_instance_doc("probe", names[i]);
        rpc_status st;
        if (bench_apply(cl->client, doc, 30 * USEC_PER_SEC, &objs[i], &st) < 0) {
            fprintf(stderr, "hollow-bench: apply %s: %s\n", names[i], st.message);
            exit(1);
        }
        stratus__v1__binding__init(&b[i]);
        b[i].namespace_ = "probe";
        b[i].name = names[i];
        b[i].uid = (char *)api_object_uid(objs[i]);
        b[i].node = nodes[i];
        bp[i] = &b[i];
    }
    Stratus__V1__BindRequest req = STRATUS__V1__BIND_REQUEST__INIT;
    req.n_bindings = (size_t)n;
    req.bindings = bp;
    Stratus__V1__BindResponse *rep = NULL;
    rpc_status st;
    usec_t t0 = now_monotonic();
    int r = rpc_client_bind(cl->client, &req, 120 * USEC_PER_SEC, &rep, &st);
    usec_t took = now_monotonic() - t0;
    size_t ok = 0;
    for (size_t i = 0; r == 0 && i < rep->n_results; i++)
        ok += rep->results[i]->ok;
    if (r < 0 || ok != (size_t)n)
        fprintf(stderr, "hollow-bench: bind probe: %zu of %d bound (%s)\n", ok, n,
                r < 0 ? st.message : "refused");
    rpc_message_free(rep);
    for (int i = 0; i < n; i++) {
        free(names[i]);
        free(nodes[i]);
        json_decref(objs[i]);
    }
    free(names);
    free(nodes);
    free(objs);
    free(bp);
    free(b);
    return took;
}

/* With the scheduler stopped and the cluster as the phase left it: one Bind of 200 instances
 * over every node (the scheduler's default batch), and single Binds one at a time. */
static void bind_probe(const char *prefix)
{
    cl->scheduler = bench_proc_stop(cl->scheduler, 10 * USEC_PER_SEC);
    usec_t batch = bind_call(0, 200);
    printf("%s_bind_probe_200: %.1f ms for one Bind of 200 instances over %d nodes (%.2f ms "
           "per node touched)\n",
           prefix, bench_ms(batch), cfg.nodes,
           bench_ms(batch) / (cfg.nodes < 200 ? cfg.nodes : 200));
    series one = {xnew(usec_t, 20)};
    for (int i = 0; i < 20; i++)
        series_add(&one, bind_call(200 + i, 201 + i));
    qsort(one.v, one.n, sizeof(usec_t), bench_cmp_usec);
    printf("%s_bind_probe_1_p50: %.2f ms (one instance per Bind, 20 calls)\n", prefix,
           bench_ms(bench_quantile(one.v, one.n, 0.5)));
    free(one.v);
}

/* ---- storm */

#define STORM_THREADS 16
#define STORM_CONNS   4

typedef struct storm_job {
    pthread_t t;
    rpc_client *c;
    int first, step;
} storm_job;

static void *storm_main(void *arg)
{
    storm_job *j = arg;
    for (int i = j->first; i < n_tracks; i += j->step)
        apply_one(j->c, i);
    return NULL;
}

static void run_storm(void)
{
    printf("# storm: %d instances applied at once (%d threads, %d connections) over %d hollow "
           "nodes; load %.2f\n",
           cfg.instances, STORM_THREADS, STORM_CONNS, cfg.nodes, bench_loadavg());
    cluster_up("storm", cfg.instances);
    rpc_client *conns[STORM_CONNS];
    for (int i = 0; i < STORM_CONNS; i++)
        conns[i] = bench_client_new(cl->target, 1 + i);
    watch_start();
    storm_job jobs[STORM_THREADS];
    bench_etcd_stats e0 = {0}, e1 = {0};
    bench_etcd_stats_read(cl, &e0);
    cpu_mark c0 = cpu_now();
    usec_t t0 = now_monotonic();
    for (int i = 0; i < STORM_THREADS; i++) {
        jobs[i] = (storm_job){.c = conns[i % STORM_CONNS], .first = i, .step = STORM_THREADS};
        pthread_create(&jobs[i].t, NULL, storm_main, &jobs[i]);
    }
    for (int i = 0; i < STORM_THREADS; i++)
        pthread_join(jobs[i].t, NULL);
    usec_t t_applied = now_monotonic();
    bool all = wait_count(&n_running, cfg.instances, 30 * USEC_PER_SEC);
    cpu_mark c1 = cpu_now();
    bench_etcd_stats_read(cl, &e1);
    watch_end();
    usec_t last = 0;
    series call = {xnew(usec_t, (size_t)cfg.instances)};
    for (int i = 0; i < cfg.instances; i++) {
        if (tr[i].running > last)
            last = tr[i].running;
        series_add(&call, diff(tr[i].applied, tr[i].sent));
    }
    printf("storm_applies_done: %.2f s (%.0f applies/s)\n", (double)(t_applied - t0) / 1e6,
           cfg.instances / ((double)(t_applied - t0) / 1e6));
    print_quantiles("storm", "apply_call", &call, false);
    free(call.v);
    printf("storm_all_running: %.2f s%s (goal <= 5 s)\n", (double)diff(last, t0) / 1e6,
           all ? "" : " (NOT all: see storm_never_running)");
    print_latencies("storm", 0, cfg.instances, "p99 <= 1000 ms");
    print_cpu("storm", c0, c1);
    bench_etcd_stats_print("storm", &e0, &e1, (double)(c1.at - c0.at) / 1e6, cfg.instances);
    printf("storm_event_objects: %ld\n", count_events());
    print_rss("storm");
    if (relists)
        printf("storm_watch_relists: %d\n", relists);
    for (int i = 0; i < STORM_CONNS; i++)
        rpc_client_free(conns[i]);
    bind_probe("storm");
    cluster_down();
}

/* ---- churn */

#define CHURN_THREADS 8

typedef struct churn_job {
    pthread_t t;
    rpc_client *c;
    int first, ticks;
    usec_t t0, interval, max_lag;
} churn_job;

/* Tick k (due at t0 + k × interval) creates instance k (while k < n_tracks) and deletes the one
 * created `lifetime` earlier. Open loop: a slow call delays this thread, not the schedule. */
static void *churn_main(void *arg)
{
    churn_job *j = arg;
    int lag_ticks = (int)(cfg.lifetime / j->interval);
    for (int k = j->first; k < j->ticks; k += CHURN_THREADS) {
        usec_t due = j->t0 + (usec_t)k * j->interval, now = now_monotonic();
        if (due > now)
            usleep((useconds_t)(due - now));
        else if (now - due > j->max_lag)
            j->max_lag = now - due;
        if (k < n_tracks)
            apply_one(j->c, k);
        if (k - lag_ticks >= 0 && k - lag_ticks < n_tracks)
            delete_one(j->c, k - lag_ticks);
    }
    return NULL;
}

static void run_churn(void)
{
    int creates = (int)((usec_t)cfg.rate * cfg.duration / USEC_PER_SEC);
    printf("# churn: %d instances/s created for %.0f s, each deleted %.1f s after its creation "
           "(about %.0f alive at a time) over %d hollow nodes; load %.2f\n",
           cfg.rate, (double)cfg.duration / 1e6, (double)cfg.lifetime / 1e6,
           cfg.rate * (double)cfg.lifetime / 1e6, cfg.nodes, bench_loadavg());
    cluster_up("churn", creates);
    watch_start();
    usec_t interval = USEC_PER_SEC / (usec_t)cfg.rate;
    int ticks = creates + (int)(cfg.lifetime / interval);
    churn_job jobs[CHURN_THREADS];
    rpc_client *conns[CHURN_THREADS];
    bench_etcd_stats e0 = {0}, e1 = {0};
    bench_etcd_stats_read(cl, &e0);
    cpu_mark c0 = cpu_now();
    usec_t t0 = now_monotonic() + 100 * USEC_PER_MSEC;
    for (int i = 0; i < CHURN_THREADS; i++) {
        conns[i] = bench_client_new(cl->target, 1 + i % 4);
        jobs[i] =
            (churn_job){.c = conns[i], .first = i, .ticks = ticks, .t0 = t0, .interval = interval};
        pthread_create(&jobs[i].t, NULL, churn_main, &jobs[i]);
    }
    usec_t lag = 0;
    for (int i = 0; i < CHURN_THREADS; i++) {
        pthread_join(jobs[i].t, NULL);
        lag = jobs[i].max_lag > lag ? jobs[i].max_lag : lag;
        rpc_client_free(conns[i]);
    }
    bool settled = wait_count(&n_settled, creates, 30 * USEC_PER_SEC);
    bool gone = wait_count(&n_gone, creates, 30 * USEC_PER_SEC);
    cpu_mark c1 = cpu_now();
    bench_etcd_stats_read(cl, &e1);
    watch_end();

    series call = {xnew(usec_t, (size_t)creates)}, del = {xnew(usec_t, (size_t)creates)},
           dcall = {xnew(usec_t, (size_t)creates)};
    for (int i = 0; i < creates; i++) {
        series_add(&call, diff(tr[i].applied, tr[i].sent));
        if (tr[i].deleted)
            series_add(&dcall, diff(tr[i].deleted, tr[i].delete_sent));
        if (tr[i].deleted && tr[i].gone)
            series_add(&del, diff(tr[i].gone, tr[i].deleted));
    }
    double span = (double)(tr[creates - 1].sent - tr[0].sent) / 1e6;
    printf("churn_created: %d in %.1f s (%.1f/s; the generator was at most %.1f ms late)\n",
           creates, span, span > 0 ? (creates - 1) / span : 0, bench_ms(lag));
    print_quantiles("churn", "apply_call", &call, false);
    print_quantiles("churn", "delete_call", &dcall, false);
    print_latencies("churn", 0, creates, "p50 <= 20 ms, p99 <= 100 ms");
    printf("# deletes: from the Delete's reply to the watch's DELETED (the agent removed the "
           "domain, disks and its finalizer)\n");
    print_quantiles("churn", "delete_to_gone", &del, false);
    if (!settled || !gone)
        printf("churn_incomplete: %d of %d Running, %d of %d gone\n", atomic_load(&n_running),
               creates, atomic_load(&n_gone), creates);
    print_cpu("churn", c0, c1);
    bench_etcd_stats_print("churn", &e0, &e1, (double)(c1.at - c0.at) / 1e6, creates);
    if (relists)
        printf("churn_watch_relists: %d\n", relists);
    free(call.v);
    free(del.v);
    free(dcall.v);
    bind_probe("churn");
    cluster_down();
}

int main(int argc, char **argv)
{
    enum { O_ONLY = 256, O_QUICK, O_NODES, O_INST, O_RATE, O_DUR, O_LIFE, O_WORKERS, O_AWORKERS };
    static const struct option opts[] = {
        {"only", required_argument, 0, O_ONLY},
        {"quick", no_argument, 0, O_QUICK},
        {"nodes", required_argument, 0, O_NODES},
        {"instances", required_argument, 0, O_INST},
        {"rate", required_argument, 0, O_RATE},
        {"duration", required_argument, 0, O_DUR},
        {"lifetime", required_argument, 0, O_LIFE},
        {"agent-workers", required_argument, 0, O_WORKERS},
        {"apiserver-workers", required_argument, 0, O_AWORKERS},
        {0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_ONLY:
            if (!streq(optarg, "storm") && !streq(optarg, "churn")) {
                fprintf(stderr, "--only: storm or churn\n");
                return 2;
            }
            cfg.only = optarg;
            break;
        case O_QUICK:
            cfg.duration = 10 * USEC_PER_SEC;
            break;
        case O_NODES:
            cfg.nodes = (int)bench_parse_count("--nodes", optarg, 1, 10000);
            break;
        case O_INST:
            cfg.instances = (int)bench_parse_count("--instances", optarg, 1, 100000);
            break;
        case O_RATE:
            cfg.rate = (int)bench_parse_count("--rate", optarg, 1, 10000);
            break;
        case O_DUR:
            cfg.duration = bench_parse_duration("--duration", optarg);
            break;
        case O_LIFE:
            cfg.lifetime = bench_parse_duration("--lifetime", optarg);
            break;
        case O_WORKERS:
            cfg.agent_workers = (int)bench_parse_count("--agent-workers", optarg, 1, 256);
            break;
        case O_AWORKERS:
            cfg.apiserver_workers = (int)bench_parse_count("--apiserver-workers", optarg, 1, 256);
            break;
        default:
            fprintf(stderr, "usage: hollow-bench [--only storm|churn] [--quick] [--nodes N] "
                            "[--instances N] [--rate R] [--duration D] [--lifetime L] "
                            "[--agent-workers W] [--apiserver-workers W]\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hollow-bench: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!cfg.only || streq(cfg.only, "storm"))
        run_storm();
    if (!cfg.only || streq(cfg.only, "churn"))
        run_churn();
    return 0;
}
