/* Footprints: the resident memory (VmRSS now, VmHWM = the peak so far, from /proc/<pid>/status)
 * of the real Stratus programs, each its own process started by the cluster harness (cluster.h):
 *
 *   apiserver  empty, then with 10,000 and 100,000 Instances stored (applied through the API by
 *              32 client threads, then listed once in pages of 2,000, as an informer starting up
 *              would); etcd's RSS beside it for scale
 *   scheduler  synced with 1,000 Ready nodes (with leases), then after placing 10,000 instances
 *   node agent one identity on libvirt's test driver: with 0, then 100 instances Running
 *
 * Goal (issue 8): a node agent with 100 instances ≤ 15 MB (kubelet's CI ceiling: 300 MB at 100
 * pods). Nothing here fails on a size.
 *
 *   footprint-bench [--quick] [--only apiserver|scheduler|agent] [--objects N[,N...]]
 *                   [--nodes N] [--instances N] [--agent-instances N] [--agent-dump DIR]
 * Defaults: objects 10000,100000; 1,000 nodes, 10,000 instances; 100 agent instances.
 * --quick: objects 10000; 1,000 nodes, 1,000 instances.
 * --agent-dump DIR: at each of the agent's two points, copy its /proc smaps, status and the
 * names of its threads to DIR/agent-<N>.{smaps,status,threads}, to see where the figure goes
 * (tools/smaps-summary.py reads them). */
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

#define OBJECTS_MAX 8

static struct {
    long objects[OBJECTS_MAX];
    int n_objects;
    int nodes, instances, agent_instances;
    const char *only;
    const char *agent_dump;
} cfg = {
    .objects = {10000, 100000},
    .n_objects = 2,
    .nodes = 1000,
    .instances = 10000,
    .agent_instances = 100,
};

static bench_cluster *cl;

static void print_mem(const char *name, pid_t pid)
{
    printf("%s: %.1f MiB (VmHWM %.1f MiB)\n", name, bench_proc_kib(pid, "VmRSS") / 1024.0,
           bench_proc_kib(pid, "VmHWM") / 1024.0);
}

/* The same after IDLE_SECONDS with nothing to do: the apiserver and the scheduler link jemalloc,
 * which gives freed pages back to the kernel only once they have stayed unused for its decay time
 * (10 s by default); what a burst of work leaves resident shows in the first figure, what the
 * program keeps in this one. */
#define IDLE_SECONDS 11
static void print_idle_mem(const char *name, pid_t pid)
{
    sleep(IDLE_SECONDS);
    char idle[96];
    snprintf(idle, sizeof(idle), "%s_idle_%ds", name, IDLE_SECONDS);
    print_mem(idle, pid);
}

static const char *count_name(long n, char buf[static 24])
{
    if (n % 1000 == 0)
        snprintf(buf, 24, "%ldk", n / 1000);
    else
        snprintf(buf, 24, "%ld", n);
    return buf;
}

/* Copies /proc/<pid>/{smaps,status} and the thread names to <--agent-dump>/agent-<n>.*. */
static void dump_agent(pid_t pid, int n)
{
    if (!cfg.agent_dump)
        return;
    _cleanup_free_ char *cmd = xasprintf(
        "cp /proc/%d/smaps %s/agent-%d.smaps && cp /proc/%d/status %s/agent-%d.status && "
        "cat /proc/%d/task/*/comm | sort | uniq -c > %s/agent-%d.threads",
        (int)pid, cfg.agent_dump, n, (int)pid, cfg.agent_dump, n, (int)pid, cfg.agent_dump, n);
    if (system(cmd) != 0)
        fprintf(stderr, "footprint-bench: --agent-dump: could not copy to %s\n", cfg.agent_dump);
}

/* ---- parallel writes through the API */

typedef enum load_kind { LOAD_INSTANCES, LOAD_NODES } load_kind;

typedef struct load_job {
    pthread_t t;
    rpc_client *c;
    load_kind kind;
    const char *ns;
    long from, to;
} load_job;

static void die(const char *what, const rpc_status *st)
{
    fprintf(stderr, "footprint-bench: %s: %s\n", what, st ? st->message : "");
    exit(1);
}

static void node_up(rpc_client *c, long i)
{
    char name[24], doc[256];
    snprintf(name, sizeof(name), "n%04ld", i);
    snprintf(doc, sizeof(doc),
             "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"%s\"},"
             "\"spec\":{}}",
             name);
    rpc_status st;
    if (bench_apply(c, doc, 30 * USEC_PER_SEC, NULL, &st) < 0)
        die("apply node", &st);
    Stratus__V1__UpdateStatusRequest ur = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
    ur.kind = "Node";
    ur.name = name;
    ur.status_json = "{\"allocatable\":{\"vcpus\":64,\"memoryMiB\":262144,\"diskGiB\":4000},"
                     "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":"
                     "\"Bench\",\"message\":\"ready\"}]}";
    Stratus__V1__ObjectResponse *orep = NULL;
    if (rpc_client_update_status(c, &ur, 30 * USEC_PER_SEC, &orep, &st) < 0)
        die("node status", &st);
    rpc_message_free(orep);
    Stratus__V1__RenewLeaseRequest lr = STRATUS__V1__RENEW_LEASE_REQUEST__INIT;
    lr.node = name;
    lr.ttl_seconds = 600; /* outlives the run: no heartbeat needed */
    Stratus__V1__RenewLeaseResponse *lrep = NULL;
    if (rpc_client_renew_lease(c, &lr, 30 * USEC_PER_SEC, &lrep, &st) < 0)
        die("lease", &st);
    rpc_message_free(lrep);
}

static void *load_main(void *arg)
{
    load_job *j = arg;
    for (long i = j->from; i < j->to; i++) {
        if (j->kind == LOAD_NODES) {
            node_up(j->c, i);
            continue;
        }
        char name[24];
        snprintf(name, sizeof(name), "i%06ld", i);
        _cleanup_free_ char *doc = bench_instance_doc(j->ns, name);
        rpc_status st;
        if (bench_apply(j->c, doc, 30 * USEC_PER_SEC, NULL, &st) < 0)
            die("apply instance", &st);
    }
    return NULL;
}

/* Writes objects [from, to) with `threads` threads over 4 connections; returns the seconds. */
static double load(load_kind kind, const char *ns, long from, long to, int threads)
{
    rpc_client *conns[4];
    for (int i = 0; i < 4; i++)
        conns[i] = bench_client_new(cl->target, 1 + i);
    load_job *jobs = xnew(load_job, (size_t)threads);
    usec_t t0 = now_monotonic();
    long n = to - from;
    for (int i = 0; i < threads; i++) {
        jobs[i] = (load_job){.c = conns[i % 4],
                             .kind = kind,
                             .ns = ns,
                             .from = from + n * i / threads,
                             .to = from + n * (i + 1) / threads};
        pthread_create(&jobs[i].t, NULL, load_main, &jobs[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(jobs[i].t, NULL);
    double s = (double)(now_monotonic() - t0) / 1e6;
    free(jobs);
    for (int i = 0; i < 4; i++)
        rpc_client_free(conns[i]);
    return s;
}

/* Lists every instance in ns (pages of 2,000); returns how many and the revision. */
static long list_all(const char *ns, char **ret_rv)
{
    long n = 0;
    _cleanup_free_ char *cont = NULL;
    *ret_rv = NULL;
    do {
        Stratus__V1__ListRequest req = STRATUS__V1__LIST_REQUEST__INIT;
        req.kind = "instances";
        req.namespace_ = (char *)ns;
        req.limit = 2000;
        req.continue_token = cont ? cont : "";
        Stratus__V1__ListResponse *rep = NULL;
        rpc_status st;
        if (rpc_client_list(cl->client, &req, 60 * USEC_PER_SEC, &rep, &st) < 0)
            die("list", &st);
        n += (long)rep->n_items_json;
        if (!*ret_rv)
            *ret_rv = xstrdup(rep->resource_version);
        free(cont);
        cont = rep->continue_token && *rep->continue_token ? xstrdup(rep->continue_token) : NULL;
        rpc_message_free(rep);
    } while (cont);
    return n;
}

/* Waits until a watch on ns (from rv) has seen `want` instances in `phase`; returns false when
 * nothing moved for 60 s. */
static bool wait_phase(const char *ns, const char *rv, const char *phase, long want)
{
    Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
    req.kind = "instances";
    req.namespace_ = (char *)ns;
    req.resource_version = (char *)rv;
    rpc_watch *w = NULL;
    if (rpc_client_watch(cl->client, &req, &w) < 0)
        die("watch", NULL);
    json_t *seen = json_object();
    bool ok = true;
    while ((long)json_object_size(seen) < want) {
        Stratus__V1__WatchEvent *ev = NULL;
        rpc_status st;
        int r = rpc_watch_next(w, 60 * USEC_PER_SEC, &ev, &st);
        if (r < 0) {
            fprintf(stderr, "footprint-bench: waiting for %s: %s (%zu of %ld)\n", phase,
                    r == -ETIMEDOUT ? "nothing for 60 s" : st.message, json_object_size(seen),
                    want);
            ok = false;
            break;
        }
        json_t *o = json_loads(ev->object_json ? ev->object_json : "", 0, NULL);
        const char *p = json_string_value(api_json_lookup(o, "status.phase"));
        if (p && streq(p, phase) && api_object_name(o))
            json_object_set_new(seen, api_object_name(o), json_true());
        json_decref(o);
        rpc_message_free(ev);
    }
    json_decref(seen);
    rpc_watch_free(w);
    return ok;
}

/* ---- the three programs */

static void bench_apiserver(void)
{
    printf("# apiserver: Instances applied through the API (32 threads), then listed once; "
           "load %.2f\n",
           bench_loadavg());
    cl = bench_cluster_start(NULL);
    bench_apply_basics(cl);
    usleep(500000);
    print_mem("apiserver_rss_empty", cl->apiserver->pid);
    long have = 0;
    for (int k = 0; k < cfg.n_objects; k++) {
        long n = cfg.objects[k];
        if (n <= have)
            continue;
        char cn[24];
        count_name(n, cn);
        double s = load(LOAD_INSTANCES, "fp", have, n, 32);
        printf("apiserver_load_%s_seconds: %.1f s (%.0f applies/s)\n", cn, s, (n - have) / s);
        have = n;
        _cleanup_free_ char *rv = NULL;
        usec_t t0 = now_monotonic();
        long listed = list_all("fp", &rv);
        printf("apiserver_list_%s_seconds: %.2f s (%ld items)\n", cn,
               (double)(now_monotonic() - t0) / 1e6, listed);
        usleep(500000);
        char name[64];
        snprintf(name, sizeof(name), "apiserver_rss_%s_objects", cn);
        print_mem(name, cl->apiserver->pid);
        print_idle_mem(name, cl->apiserver->pid);
        pid_t etcd = bench_child_by_comm("etcd");
        if (etcd) {
            snprintf(name, sizeof(name), "etcd_rss_%s_objects", cn);
            print_mem(name, etcd);
        }
    }
    bench_cluster_stop(cl);
    cl = NULL;
}

static void bench_scheduler(void)
{
    printf("# scheduler: %d Ready nodes with leases, then %d instances placed; load %.2f\n",
           cfg.nodes, cfg.instances, bench_loadavg());
    cl = bench_cluster_start(NULL);
    bench_apply_basics(cl);
    double s = load(LOAD_NODES, NULL, 0, cfg.nodes, 8);
    printf("scheduler_setup_%d_nodes: %.1f s\n", cfg.nodes, s);
    bench_cluster_start_scheduler(cl, NULL);
    /* one instance placed proves the scheduler has listed every node */
    _cleanup_free_ char *rv0 = NULL;
    list_all("probe", &rv0);
    load(LOAD_INSTANCES, "probe", 0, 1, 1);
    if (!wait_phase("probe", rv0, "Scheduled", 1))
        die("the scheduler placed nothing", NULL);
    usleep(1000000);
    char name[64];
    snprintf(name, sizeof(name), "scheduler_rss_%d_nodes", cfg.nodes);
    print_mem(name, cl->scheduler->pid);
    _cleanup_free_ char *rv = NULL;
    list_all("fp", &rv);
    s = load(LOAD_INSTANCES, "fp", 0, cfg.instances, 16);
    printf("scheduler_applied_%d_instances: %.1f s\n", cfg.instances, s);
    if (wait_phase("fp", rv, "Scheduled", cfg.instances)) {
        usleep(1000000);
        snprintf(name, sizeof(name), "scheduler_rss_%d_nodes_%d_instances", cfg.nodes,
                 cfg.instances);
        print_mem(name, cl->scheduler->pid);
        print_idle_mem(name, cl->scheduler->pid);
    }
    bench_cluster_stop(cl);
    cl = NULL;
}

static void bench_agent(void)
{
    int n = cfg.agent_instances;
    printf("# node agent: one node on libvirt's test driver, 0 then %d instances Running; "
           "load %.2f\n",
           n, bench_loadavg());
    cl = bench_cluster_start(NULL);
    bench_apply_basics(cl);
    bench_cluster_start_scheduler(cl, NULL);
    const char *flags[] = {"--node-name",  "bench-node", "--backend",  "test",   "--vcpus", "1000",
                           "--memory-mib", "1000000",    "--disk-gib", "100000", NULL};
    bench_cluster_start_agent(cl, flags, 1);
    usleep(2000000); /* settled: informers synced, first heartbeat done */
    print_mem("agent_rss_0_instances", cl->agent->pid);
    dump_agent(cl->agent->pid, 0);
    _cleanup_free_ char *rv = NULL;
    list_all("fp", &rv);
    load(LOAD_INSTANCES, "fp", 0, n, 4);
    if (wait_phase("fp", rv, "Running", n)) {
        usleep(2000000);
        char name[64];
        snprintf(name, sizeof(name), "agent_rss_%d_instances", n);
        print_mem(name, cl->agent->pid);
        dump_agent(cl->agent->pid, n);
        printf("agent_goal: <= 15 MB at 100 instances (kubelet CI ceiling: 300 MB at 100 pods)\n");
    }
    bench_cluster_stop(cl);
    cl = NULL;
}

static void parse_objects(const char *v)
{
    _cleanup_free_ char *copy = xstrdup(v);
    cfg.n_objects = 0;
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (cfg.n_objects == OBJECTS_MAX) {
            fprintf(stderr, "--objects: at most %d sizes\n", OBJECTS_MAX);
            exit(2);
        }
        cfg.objects[cfg.n_objects++] = bench_parse_count("--objects", t, 1, 10000000);
    }
}

int main(int argc, char **argv)
{
    enum { O_ONLY = 256, O_QUICK, O_OBJECTS, O_NODES, O_INST, O_AINST, O_ADUMP };
    static const struct option opts[] = {
        {"only", required_argument, 0, O_ONLY},
        {"quick", no_argument, 0, O_QUICK},
        {"objects", required_argument, 0, O_OBJECTS},
        {"nodes", required_argument, 0, O_NODES},
        {"instances", required_argument, 0, O_INST},
        {"agent-instances", required_argument, 0, O_AINST},
        {"agent-dump", required_argument, 0, O_ADUMP},
        {0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_ONLY:
            if (!streq(optarg, "apiserver") && !streq(optarg, "scheduler") &&
                !streq(optarg, "agent")) {
                fprintf(stderr, "--only: apiserver, scheduler or agent\n");
                return 2;
            }
            cfg.only = optarg;
            break;
        case O_QUICK:
            cfg.n_objects = 1;
            cfg.instances = 1000;
            break;
        case O_OBJECTS:
            parse_objects(optarg);
            break;
        case O_NODES:
            cfg.nodes = (int)bench_parse_count("--nodes", optarg, 1, 9999);
            break;
        case O_INST:
            cfg.instances = (int)bench_parse_count("--instances", optarg, 1, 999999);
            break;
        case O_AINST:
            cfg.agent_instances = (int)bench_parse_count("--agent-instances", optarg, 1, 1000);
            break;
        case O_ADUMP:
            cfg.agent_dump = optarg;
            break;
        default:
            fprintf(stderr, "usage: footprint-bench [--quick] [--only apiserver|scheduler|agent] "
                            "[--objects N[,N...]] [--nodes N] [--instances N] "
                            "[--agent-instances N] [--agent-dump DIR]\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "footprint-bench: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!cfg.only || streq(cfg.only, "apiserver"))
        bench_apiserver();
    if (!cfg.only || streq(cfg.only, "scheduler"))
        bench_scheduler();
    if (!cfg.only || streq(cfg.only, "agent"))
        bench_agent();
    return 0;
}
