/* Benchmark of stratus-apiserver: what a call costs, how fast a change reaches many watchers,
 * and how much memory the server holds with many objects. It starts the real stratus-apiserver
 * binary (the one built next to this program, or --apiserver PATH / STRATUS_APISERVER) against
 * throwaway etcds of its own, so client and server are separate processes as in production and
 * the server's RSS is its own. Prints "name: value unit" lines; never fails on a time. What each
 * figure means, and the figures of this kind of machine: docs/performance.md.
 *
 *   1. latency: Get, Apply of a changed object (configured) and of an unchanged one, one call at
 *      a time from one client, then from 32 threads sharing one rpc_client (one HTTP/2
 *      connection, as a multi-threaded controller would hold). Reference in the same run: the
 *      etcd round trips the apiserver makes for the same call, made sequentially through
 *      pkg/store on the same etcd and key shape (get; get + compare-and-swap update).
 *   2. fan-out: W watchers of one kind (one reader thread each, blocked in rpc_watch_next, in
 *      groups of 250 per connection), then M changes applied back to back and P more at a light
 *      pace: events/s delivered across all watchers, and delivery latency from each Apply's
 *      reply to each watcher's receipt (one process, one monotonic clock; events are matched to
 *      changes by resourceVersion).
 *   3. RSS: VmRSS of the apiserver process empty, after N small objects (Events) were written
 *      straight into etcd through pkg/store (100 puts per transaction, the canonical JSON the
 *      apiserver itself stores) and reached its watch cache, after a paged List of all of them
 *      through the API, after one watcher replayed the watch cache, and with W watchers open.
 *
 *   apiserver-bench [--quick] [--ops N] [--watchers N] [--changes N] [--objects N[,N...]]
 *                   [--only latency|fanout|rss] [--apiserver PATH]
 *
 * Default: 1000 calls per sequential phase, 32 threads x 100 calls, 1000 watchers, 200 changes
 * back to back + 50 at 10/s, 10k and 100k objects. --quick: 300 calls, 32 x 30, 200 watchers,
 * 100 + 25 changes, 10k objects. --ops N also sets N/10 calls per thread; --changes M also sets
 * M/4 paced changes. Takes 1-1.5 min on 2 cores (--quick: 25 s). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/object.h"
#include "base/alloc.h"
#include "etcd-fixture.h"
#include "rpc/client.h"
#include "store/store.h"
#include "stats.h"

#define CALL_TIMEOUT      (10 * USEC_PER_SEC)
#define SIZES_MAX         4
#define WATCH_CACHE       20000 /* passed to the apiserver; its default too */
#define TXN_PUTS          100
#define READER_STACK      (512 * 1024)
#define WATCHERS_PER_CONN 250 /* the server allows 1000 streams per HTTP/2 connection */

static struct config {
    int ops;        /* calls per sequential phase */
    int threads;    /* concurrent client threads */
    int per_thread; /* calls per thread */
    int watchers;
    int changes; /* applied back to back */
    int paced;   /* applied at paced_rate per second */
    int paced_rate;
    long sizes[SIZES_MAX];
    int n_sizes;
    const char *only;
    const char *apiserver;
} cfg = {
    .ops = 1000,
    .threads = 32,
    .per_thread = 100,
    .watchers = 1000,
    .changes = 200,
    .paced = 50,
    .paced_rate = 10,
    .sizes = {10000, 100000},
    .n_sizes = 2,
};

static double secs(usec_t d)
{
    return (double)d / 1e6;
}

static double ms(usec_t d)
{
    return (double)d / 1e3;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* "10k" for 10000, else the number. */
static const char *count_name(long n, char buf[static 24])
{
    if (n % 1000 == 0)
        snprintf(buf, 24, "%ldk", n / 1000);
    else
        snprintf(buf, 24, "%ld", n);
    return buf;
}

/* ---- one timed series of calls */

typedef struct stats {
    double rate; /* calls per second over the wall time */
    usec_t p50, p99, max;
    size_t n;
    int errors;
} stats;

static stats summarize(usec_t *lat, size_t n, usec_t wall, int errors)
{
    qsort(lat, n, sizeof(usec_t), bench_cmp_usec);
    return (stats){.rate = wall ? (double)n / secs(wall) : 0,
                   .p50 = bench_quantile(lat, n, 0.50),
                   .p99 = bench_quantile(lat, n, 0.99),
                   .max = n ? lat[n - 1] : 0,
                   .n = n,
                   .errors = errors};
}

static void print_stats(const char *name, const stats *s, const char *unit)
{
    printf("%s: %.0f %s\n", name, s->rate, unit);
    printf("%s_p50: %.3f ms\n", name, ms(s->p50));
    printf("%s_p99: %.3f ms\n", name, ms(s->p99));
    if (s->errors)
        printf("%s_errors: %d\n", name, s->errors);
}

/* Ours, the reference, and ours as a share of the reference's throughput. */
static void print_vs_ref(const char *name, const stats *ours, const stats *ref)
{
    char n[128];
    print_stats(name, ours, "calls/s");
    snprintf(n, sizeof(n), "%s_store_ref", name);
    print_stats(n, ref, "ops/s");
    printf("%s_ratio: %.1f %%\n", name, ref->rate > 0 ? 100.0 * ours->rate / ref->rate : 0.0);
}

/* ---- the apiserver process */

typedef struct apiproc {
    pid_t pid;
    char dir[256];
    char target[64];
} apiproc;

static apiproc *procs[4];

static void procs_kill(void)
{
    for (size_t i = 0; i < ELEMENTSOF(procs); i++)
        if (procs[i] && procs[i]->pid > 0) {
            kill(procs[i]->pid, SIGKILL);
            waitpid(procs[i]->pid, NULL, 0);
        }
}

static void print_log_tail(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "tail -n 20 '%s/apiserver.log' >&2", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log in %s)\n", dir);
}

/* Starts stratus-apiserver on a free loopback port against etcd and waits until it listens.
 * Exits the benchmark when it cannot start. */
static apiproc *apiproc_start(const char *etcd)
{
    static bool registered;
    if (!registered) {
        atexit(procs_kill); /* after the first etcd fixture: runs before etcd is stopped */
        registered = true;
    }
    apiproc *p = xnew(apiproc, 1);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(p->dir, sizeof(p->dir), "%s/stratus-apibench-XXXXXX", tmp);
    if (!mkdtemp(p->dir)) {
        perror("mkdtemp");
        exit(1);
    }
    char port_file[300], log_file[300], cache[24];
    snprintf(port_file, sizeof(port_file), "%s/port", p->dir);
    snprintf(log_file, sizeof(log_file), "%s/apiserver.log", p->dir);
    snprintf(cache, sizeof(cache), "%d", WATCH_CACHE);
    pid_t parent = getpid();
    p->pid = fork();
    if (p->pid < 0) {
        perror("fork");
        exit(1);
    }
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        int fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execl(cfg.apiserver, "stratus-apiserver", "--listen", "127.0.0.1:0", "--etcd", etcd,
              "--port-file", port_file, "--watch-cache", cache, "--log-level", "warning",
              (char *)NULL);
        _exit(127);
    }
    for (size_t i = 0; i < ELEMENTSOF(procs); i++)
        if (!procs[i]) {
            procs[i] = p;
            break;
        }
    usec_t deadline = now_monotonic() + 20 * USEC_PER_SEC;
    while (now_monotonic() < deadline) {
        if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
            p->pid = 0;
            fprintf(stderr, "stratus-apiserver exited during start-up:\n");
            print_log_tail(p->dir);
            exit(1);
        }
        FILE *f = fopen(port_file, "r");
        char line[32] = "";
        if (f) {
            if (!fgets(line, sizeof(line), f))
                line[0] = '\0';
            fclose(f);
        }
        int port;
        if (strchr(line, '\n') && sscanf(line, "%d", &port) == 1 && port > 0) {
            snprintf(p->target, sizeof(p->target), "127.0.0.1:%d", port);
            return p;
        }
        usleep(20000);
    }
    fprintf(stderr, "stratus-apiserver did not listen within 20 s\n");
    print_log_tail(p->dir);
    exit(1);
}

/* SIGTERM, then SIGKILL after 10 s; removes its folder. */
static void apiproc_stop(apiproc *p)
{
    if (!p)
        return;
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        bool gone = false;
        for (int i = 0; i < 1000 && !gone; i++) {
            gone = waitpid(p->pid, NULL, WNOHANG) == p->pid;
            if (!gone)
                usleep(10000);
        }
        if (!gone) {
            fprintf(stderr, "stratus-apiserver did not stop within 10 s of SIGTERM; killing it\n");
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
        }
        p->pid = 0;
    }
    for (size_t i = 0; i < ELEMENTSOF(procs); i++)
        if (procs[i] == p)
            procs[i] = NULL;
    char path[300];
    snprintf(path, sizeof(path), "%s/port", p->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/apiserver.log", p->dir);
    unlink(path);
    rmdir(p->dir);
    free(p);
}

static void print_rss(const char *name, const apiproc *p)
{
    printf("%s: %.1f MiB\n", name, (double)bench_proc_kib(p->pid, "VmRSS") / 1024.0);
}

/* ---- clients */

/* gRPC shares one connection between channels created with equal arguments. A different receive
 * limit per `conn` gives each group of watchers a connection of its own, as separate processes
 * would have; conn 0 is the default client. */
static rpc_client *client_new(const char *target, int conn)
{
    rpc_client_options o = {.max_receive_bytes = RPC_MESSAGE_SIZE_MAX - (size_t)conn};
    rpc_client *c = NULL;
    if (rpc_client_new(target, &o, &c) < 0) {
        fprintf(stderr, "cannot create a client for %s\n", target);
        exit(1);
    }
    return c;
}

static char *flavor_doc(const char *name, long seq)
{
    return xasprintf("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":"
                     "\"%s\",\"labels\":{\"family\":\"bench\"},\"annotations\":{\"bench/seq\":"
                     "\"%ld\"}},\"spec\":{\"vcpus\":2,\"memoryMiB\":4096,\"rootDiskGiB\":20}}",
                     name, seq);
}

static char *event_doc(long i)
{
    return xasprintf("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Event\",\"metadata\":{\"name\":"
                     "\"web-%06ld.started\",\"namespace\":\"default\"},\"spec\":{"
                     "\"involvedObject\":{\"kind\":\"Instance\",\"namespace\":\"default\","
                     "\"name\":\"web-%06ld\"},\"reason\":\"Started\",\"message\":\"instance "
                     "web-%06ld started on node-%04ld\",\"type\":\"Normal\",\"count\":1,"
                     "\"firstTimestamp\":\"2026-11-22T03:00:00Z\",\"lastTimestamp\":"
                     "\"2026-11-22T03:00:00Z\",\"source\":{\"component\":\"stratus-node-agent\","
                     "\"host\":\"node-%04ld\"}}}",
                     i, i, i, i % 1000, i % 1000);
}

/* What the apiserver stores for a new object: prepared (validated, defaulted), with the
 * metadata a create adds (uid, creationTimestamp, generation), canonical JSON. */
static char *stored_text(const char *doc, long serial)
{
    json_t *o = NULL;
    api_error ae = {0};
    if (api_json_load(doc, strlen(doc), &o, &ae) < 0 || api_object_prepare(o, &ae) < 0) {
        _cleanup_free_ char *s = api_error_to_string(&ae);
        fprintf(stderr, "benchmark object is not valid: %s\n", s);
        exit(1);
    }
    json_t *md = json_object_get(o, "metadata");
    char uid[40];
    snprintf(uid, sizeof(uid), "00000000-0000-4000-8000-%012ld", serial);
    json_object_set_new(md, "uid", json_string(uid));
    json_object_set_new(md, "creationTimestamp", json_string("2026-11-22T03:00:00Z"));
    json_object_set_new(md, "generation", json_integer(1));
    char *text = api_json_canonical(o);
    json_decref(o);
    return text;
}

static int rv_of(const char *object_json, int64_t *ret)
{
    json_t *o = json_loads(object_json, 0, NULL);
    int r = o ? api_object_resource_version(o, ret) : -EINVAL;
    json_decref(o);
    return r;
}

/* Applies doc; the call alone is timed into *ret_lat. Returns 0 with the result (1 created,
 * 2 configured, 3 unchanged) and, when asked, the stored resourceVersion; or -errno. */
static int apply_doc(rpc_client *c, const char *doc, usec_t *ret_lat, int *ret_result,
                     int64_t *ret_rv)
{
    Stratus__V1__ApplyRequest req = STRATUS__V1__APPLY_REQUEST__INIT;
    req.object_json = (char *)doc;
    req.field_manager = "apiserver-bench";
    Stratus__V1__ApplyResponse *rep = NULL;
    rpc_status st;
    usec_t a = now_monotonic();
    int r = rpc_client_apply(c, &req, CALL_TIMEOUT, &rep, &st);
    if (ret_lat)
        *ret_lat = now_monotonic() - a;
    if (r < 0) {
        fprintf(stderr, "apply: %s\n", st.message);
        return r;
    }
    if (ret_result)
        *ret_result = rep->result;
    if (ret_rv)
        r = rv_of(rep->object_json, ret_rv);
    rpc_message_free(rep);
    return r;
}

static int get_obj(rpc_client *c, const char *kind, const char *ns, const char *name,
                   usec_t *ret_lat, int64_t *ret_rv)
{
    Stratus__V1__GetRequest req = STRATUS__V1__GET_REQUEST__INIT;
    req.kind = (char *)kind;
    req.namespace_ = (char *)ns;
    req.name = (char *)name;
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status st;
    usec_t a = now_monotonic();
    int r = rpc_client_get(c, &req, CALL_TIMEOUT, &rep, &st);
    if (ret_lat)
        *ret_lat = now_monotonic() - a;
    if (r < 0) {
        fprintf(stderr, "get: %s\n", st.message);
        return r;
    }
    if (ret_rv)
        r = rv_of(rep->object_json, ret_rv);
    rpc_message_free(rep);
    return r;
}

static rpc_watch *watch_open(rpc_client *c, const char *kind, const char *ns, int64_t from)
{
    char rv[24];
    snprintf(rv, sizeof(rv), "%lld", (long long)from);
    Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
    req.kind = (char *)kind;
    req.namespace_ = (char *)ns;
    req.resource_version = rv;
    rpc_watch *w = NULL;
    if (rpc_client_watch(c, &req, &w) < 0) {
        fprintf(stderr, "cannot start a watch\n");
        exit(1);
    }
    return w;
}

/* ---- 1. latency of Get and Apply */

typedef enum bench_op {
    OP_GET,
    OP_APPLY_CONFIGURED,
    OP_APPLY_UNCHANGED,
    _OP_MAX,
} bench_op;

static const char *const op_name[_OP_MAX] = {
    [OP_GET] = "get",
    [OP_APPLY_CONFIGURED] = "apply_configured",
    [OP_APPLY_UNCHANGED] = "apply_unchanged",
};

static void result_mismatch(int *errors, int got, int want)
{
    if ((*errors)++ == 0)
        fprintf(stderr, "apply answered result %d, expected %d\n", got, want);
}

/* One call of op on the flavor `name`; *seq makes every configured apply a change. Returns 0 or
 * -1 (counted as an error). */
static int run_op(rpc_client *c, bench_op op, const char *name, long *seq, usec_t *ret_lat,
                  int *errors)
{
    if (op == OP_GET)
        return get_obj(c, "Flavor", "", name, ret_lat, NULL) < 0 ? (++*errors, -1) : 0;
    _cleanup_free_ char *doc = flavor_doc(name, op == OP_APPLY_CONFIGURED ? ++*seq : 0);
    int result = 0;
    if (apply_doc(c, doc, ret_lat, &result, NULL) < 0)
        return ++*errors, -1;
    int want = op == OP_APPLY_CONFIGURED ? STRATUS__V1__APPLY_RESPONSE__RESULT__CONFIGURED
                                         : STRATUS__V1__APPLY_RESPONSE__RESULT__UNCHANGED;
    if (result != want) {
        result_mismatch(errors, result, want);
        return -1;
    }
    return 0;
}

/* Puts the flavor in the state op expects: existing, with annotation seq 0 for "unchanged". */
static void op_setup(rpc_client *c, const char *name)
{
    _cleanup_free_ char *doc = flavor_doc(name, 0);
    if (apply_doc(c, doc, NULL, NULL, NULL) < 0)
        exit(1);
}

static stats run_sequential(rpc_client *c, bench_op op, usec_t *lat)
{
    static long seq;
    int errors = 0;
    size_t n = 0;
    op_setup(c, "bench-seq");
    usec_t t0 = now_monotonic();
    for (int i = 0; i < cfg.ops; i++)
        if (run_op(c, op, "bench-seq", &seq, &lat[n], &errors) == 0)
            n++;
    return summarize(lat, n, now_monotonic() - t0, errors);
}

typedef struct client_thread {
    pthread_t thread;
    rpc_client *c;
    bench_op op;
    int id;
    usec_t *lat;
    size_t n;
    int errors;
    pthread_barrier_t *start;
} client_thread;

static void *client_thread_main(void *arg)
{
    client_thread *t = arg;
    char name[32];
    snprintf(name, sizeof(name), "bench-c-%d", t->id);
    long seq = 0;
    op_setup(t->c, name);
    pthread_barrier_wait(t->start);
    for (int i = 0; i < cfg.per_thread; i++)
        if (run_op(t->c, t->op, name, &seq, &t->lat[t->n], &t->errors) == 0)
            t->n++;
    return NULL;
}

static stats run_concurrent(rpc_client *c, bench_op op)
{
    client_thread *t = xnew(client_thread, (size_t)cfg.threads);
    usec_t *all = xnew(usec_t, (size_t)cfg.threads * (size_t)cfg.per_thread);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)cfg.threads + 1);
    for (int i = 0; i < cfg.threads; i++) {
        t[i] = (client_thread){.c = c,
                               .op = op,
                               .id = i,
                               .start = &start,
                               .lat = all + (size_t)i * (size_t)cfg.per_thread};
        pthread_create(&t[i].thread, NULL, client_thread_main, &t[i]);
    }
    pthread_barrier_wait(&start);
    usec_t t0 = now_monotonic();
    int errors = 0;
    for (int i = 0; i < cfg.threads; i++) {
        pthread_join(t[i].thread, NULL);
        errors += t[i].errors;
    }
    usec_t wall = now_monotonic() - t0;
    /* gather the samples of every thread at the front of `all` */
    size_t n = 0;
    for (int i = 0; i < cfg.threads; i++) {
        memmove(all + n, t[i].lat, t[i].n * sizeof(usec_t));
        n += t[i].n;
    }
    stats s = summarize(all, n, wall, errors);
    pthread_barrier_destroy(&start);
    free(all);
    free(t);
    return s;
}

/* The reference: the etcd round trips the apiserver makes for op, through pkg/store, one at a
 * time. Get and unchanged Apply read the key; a configured Apply reads it, then updates it with
 * a compare on the mod_revision read (the stored text changes every time). */
static stats run_store_ref(store *st, bench_op op, usec_t *lat)
{
    static long seq;
    const char *key = "/stratus/v1/flavors/bench-ref";
    int errors = 0;
    size_t n = 0;
    usec_t t0 = now_monotonic();
    for (int i = 0; i < cfg.ops; i++) {
        _cleanup_free_ char *doc = flavor_doc("bench-ref", ++seq);
        _cleanup_free_ char *text = stored_text(doc, 1);
        usec_t a = now_monotonic();
        store_sync y = STORE_SYNC_INIT;
        _cleanup_(store_result_freep) store_result *r = NULL;
        int e = store_get(st, key, store_sync_done, &y);
        if (e >= 0)
            e = store_wait(st, &y, &r);
        if (e >= 0 && op == OP_APPLY_CONFIGURED) {
            int64_t rev = r->kvs[0].mod_revision;
            store_result_free(TAKE_PTR(r));
            y = STORE_SYNC_INIT;
            e = store_update(st, key, text, strlen(text), rev, 0, store_sync_done, &y);
            if (e >= 0)
                e = store_wait(st, &y, &r);
        }
        if (e < 0) {
            if (errors++ == 0)
                fprintf(stderr, "store reference: %s\n", store_strerror(e));
            continue;
        }
        lat[n++] = now_monotonic() - a;
    }
    return summarize(lat, n, now_monotonic() - t0, errors);
}

/* The bare compare-and-swap write (store_update) of the same key shape, sequentially. */
static stats run_store_update(store *st, usec_t *lat)
{
    const char *key = "/stratus/v1/flavors/bench-ref";
    int errors = 0;
    size_t n = 0;
    store_sync y = STORE_SYNC_INIT;
    _cleanup_(store_result_freep) store_result *r = NULL;
    store_get(st, key, store_sync_done, &y);
    if (store_wait(st, &y, &r) < 0) {
        fprintf(stderr, "store reference: no key %s\n", key);
        exit(1);
    }
    int64_t rev = r->kvs[0].mod_revision;
    usec_t t0 = now_monotonic();
    for (int i = 0; i < cfg.ops; i++) {
        _cleanup_free_ char *doc = flavor_doc("bench-ref", 1000000 + i);
        _cleanup_free_ char *text = stored_text(doc, 1);
        store_result_free(TAKE_PTR(r));
        y = STORE_SYNC_INIT;
        usec_t a = now_monotonic();
        int e = store_update(st, key, text, strlen(text), rev, 0, store_sync_done, &y);
        if (e >= 0)
            e = store_wait(st, &y, &r);
        if (e < 0) {
            if (errors++ == 0)
                fprintf(stderr, "store reference: %s\n", store_strerror(e));
            continue;
        }
        lat[n++] = now_monotonic() - a;
        rev = r->revision;
    }
    return summarize(lat, n, now_monotonic() - t0, errors);
}

static void bench_latency(etcd_fixture *etcd, apiproc *p)
{
    rpc_client *c = client_new(p->target, 0);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    store *st = NULL;
    store_options so = {.n_endpoints = 1, .endpoints = {etcd_fixture_endpoint(etcd)}};
    if (store_new(loop, &so, &st) < 0)
        exit(1);
    usec_t *lat = xnew(usec_t, (size_t)cfg.ops);

    printf("# 1. latency: %d calls one at a time; %d threads x %d calls sharing one client\n",
           cfg.ops, cfg.threads, cfg.per_thread);
    /* warm-up: connections, the server's workers, etcd's first writes */
    int saved = cfg.ops;
    cfg.ops = MIN(saved, 200);
    run_sequential(c, OP_APPLY_CONFIGURED, lat);
    run_sequential(c, OP_GET, lat);
    {
        _cleanup_free_ char *doc = flavor_doc("bench-ref", 0);
        _cleanup_free_ char *text = stored_text(doc, 1);
        store_sync y = STORE_SYNC_INIT;
        store_put(st, "/stratus/v1/flavors/bench-ref", text, strlen(text), 0, 0, store_sync_done,
                  &y);
        if (store_wait(st, &y, NULL) < 0)
            exit(1);
        run_store_ref(st, OP_APPLY_CONFIGURED, lat);
    }
    cfg.ops = saved;

    /* reference, ours, reference: the better reference counts, so drift cannot flatter us */
    for (bench_op op = 0; op < _OP_MAX; op++) {
        stats ref1 = run_store_ref(st, op, lat);
        stats ours = run_sequential(c, op, lat);
        stats ref2 = run_store_ref(st, op, lat);
        char name[64];
        snprintf(name, sizeof(name), "apiserver_%s_seq", op_name[op]);
        print_vs_ref(name, &ours, ref1.rate >= ref2.rate ? &ref1 : &ref2);
    }
    stats upd = run_store_update(st, lat);
    print_stats("store_update_seq", &upd, "ops/s");

    for (bench_op op = 0; op < _OP_MAX; op++) {
        stats s = run_concurrent(c, op);
        char name[64];
        snprintf(name, sizeof(name), "apiserver_%s_%d_clients", op_name[op], cfg.threads);
        print_stats(name, &s, "calls/s");
    }
    free(lat);
    store_free(st);
    ev_loop_destroy(loop);
    rpc_client_free(c);
}

/* ---- 2. watch fan-out */

typedef struct reader {
    pthread_t thread;
    rpc_watch *w;
    int64_t *rv; /* resourceVersion of each MODIFIED event received */
    usec_t *at;  /* when it was received */
    int n, cap;
    int end; /* the error that ended the stream early, else 0 */
    char why[160];
} reader;

static atomic_long fan_events; /* events received by all readers */
static atomic_int fan_ready;   /* readers that received their first event */
static atomic_bool fan_stop;

static void *reader_main(void *arg)
{
    reader *r = arg;
    while (!atomic_load(&fan_stop) && r->n < r->cap) {
        Stratus__V1__WatchEvent *ev = NULL;
        rpc_status st;
        int e = rpc_watch_next(r->w, 100 * USEC_PER_MSEC, &ev, &st);
        if (e == -ETIMEDOUT)
            continue;
        if (e < 0) {
            r->end = e;
            snprintf(r->why, sizeof(r->why), "%.150s", st.message);
            break;
        }
        usec_t now = now_monotonic();
        if (ev->type == STRATUS__V1__WATCH_EVENT__TYPE__MODIFIED) {
            r->rv[r->n] = strtoll(ev->resource_version, NULL, 10);
            r->at[r->n] = now;
            if (r->n++ == 0)
                atomic_fetch_add(&fan_ready, 1);
            atomic_fetch_add(&fan_events, 1);
        }
        rpc_message_free(ev);
    }
    r->w = rpc_watch_free(r->w);
    return NULL;
}

/* Waits until *counter reaches target or timeout passes. Returns the time it took. */
static usec_t wait_for(atomic_long *counter, long target, usec_t timeout)
{
    usec_t t0 = now_monotonic();
    while (atomic_load(counter) < target && now_monotonic() - t0 < timeout)
        usleep(1000);
    return now_monotonic() - t0;
}

typedef struct change {
    int64_t rv;
    usec_t sent, replied;
} change;

static int change_find(const change *ch, int n, int64_t rv)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (ch[mid].rv == rv)
            return mid;
        if (ch[mid].rv < rv)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static void apply_change(rpc_client *c, change *ch, usec_t *lat)
{
    static long seq;
    _cleanup_free_ char *doc = flavor_doc("bench-fan", ++seq);
    ch->sent = now_monotonic();
    if (apply_doc(c, doc, lat, NULL, &ch->rv) < 0)
        exit(1);
    ch->replied = now_monotonic();
}

/* W watchers, then M changes back to back (none when M is 0), then P at cfg.paced_rate; the
 * figures are printed as <prefix>_…. */
static void run_fanout(apiproc *p, rpc_client *c, int W, int M, int P, const char *prefix)
{
    int n_changes = 1 + M + P;
    int n_conns = (W + WATCHERS_PER_CONN - 1) / WATCHERS_PER_CONN;
    rpc_client **conns = xnew(rpc_client *, (size_t)n_conns);
    for (int i = 0; i < n_conns; i++)
        conns[i] = client_new(p->target, 1 + i);
    int64_t rv0 = 0;
    if (get_obj(c, "Flavor", "", "bench-fan", NULL, &rv0) < 0)
        exit(1);

    reader *rd = xnew(reader, (size_t)W);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, READER_STACK);
    atomic_store(&fan_events, 0);
    atomic_store(&fan_ready, 0);
    atomic_store(&fan_stop, false);
    usec_t t_open = now_monotonic();
    for (int i = 0; i < W; i++) {
        rd[i].cap = n_changes;
        rd[i].rv = xnew(int64_t, (size_t)n_changes);
        rd[i].at = xnew(usec_t, (size_t)n_changes);
        /* from rv0: a watch the server registers late still gets every change, replayed */
        rd[i].w = watch_open(conns[i / WATCHERS_PER_CONN], "Flavor", "", rv0);
        if (pthread_create(&rd[i].thread, &attr, reader_main, &rd[i]) != 0) {
            fprintf(stderr, "cannot start reader thread %d\n", i);
            exit(1);
        }
    }
    pthread_attr_destroy(&attr);

    change *ch = xnew(change, (size_t)n_changes);
    usec_t *apply_lat = xnew(usec_t, (size_t)n_changes);
    /* change 0 makes sure every watch is open and delivering before anything is timed */
    apply_change(c, &ch[0], &apply_lat[0]);
    while (atomic_load(&fan_ready) < W && now_monotonic() - t_open < 60 * USEC_PER_SEC)
        usleep(1000);
    if (W > 1) {
        printf("%s_watchers_ready: %d of %d after %.2f s\n", prefix, atomic_load(&fan_ready), W,
               secs(now_monotonic() - t_open));
    }

    double cpu_srv = bench_proc_cpu(p->pid), cpu_self = bench_proc_cpu(0);
    for (int i = 1; i <= M; i++)
        apply_change(c, &ch[i], &apply_lat[i]);
    wait_for(&fan_events, (long)W * (1 + M), 120 * USEC_PER_SEC);
    cpu_srv = bench_proc_cpu(p->pid) - cpu_srv;
    cpu_self = bench_proc_cpu(0) - cpu_self;

    usec_t interval = USEC_PER_SEC / (usec_t)cfg.paced_rate, t_pace = now_monotonic();
    for (int i = 1 + M; i < n_changes; i++) {
        usec_t due = t_pace + (usec_t)(i - M - 1) * interval, now = now_monotonic();
        if (due > now)
            usleep((useconds_t)(due - now));
        apply_change(c, &ch[i], &apply_lat[i]);
    }
    wait_for(&fan_events, (long)W * n_changes, 60 * USEC_PER_SEC);
    atomic_store(&fan_stop, true);
    int ended = 0;
    const char *why = NULL;
    for (int i = 0; i < W; i++) {
        pthread_join(rd[i].thread, NULL);
        if (rd[i].end) {
            ended++;
            why = rd[i].why;
        }
    }

    /* Match every receipt to its change. Latency: from the Apply's reply to the receipt; an
     * event that arrived before the reply reached the applier counts as 0. */
    size_t per_phase[2] = {(size_t)W * (size_t)M, (size_t)W * (size_t)P};
    usec_t *dl[2] = {xnew(usec_t, per_phase[0] + 1), xnew(usec_t, per_phase[1] + 1)};
    size_t got[2] = {0, 0};
    long early = 0, unmatched = 0;
    usec_t last_burst = 0;
    for (int i = 0; i < W; i++)
        for (int j = 0; j < rd[i].n; j++) {
            int k = change_find(ch, n_changes, rd[i].rv[j]);
            if (k < 0) {
                unmatched++;
                continue;
            }
            if (k == 0)
                continue;
            int ph = k <= M ? 0 : 1;
            usec_t at = rd[i].at[j];
            early += at < ch[k].replied;
            dl[ph][got[ph]++] = at > ch[k].replied ? at - ch[k].replied : 0;
            if (ph == 0 && at > last_burst)
                last_burst = at;
        }
    if (M > 0) {
        stats burst =
            summarize(dl[0], got[0], last_burst > ch[1].sent ? last_burst - ch[1].sent : 0, 0);
        stats apply = summarize(apply_lat + 1, (size_t)M, ch[M].replied - ch[1].sent, 0);
        printf("%s_burst_changes_per_sec: %.0f changes/s\n", prefix, apply.rate);
        printf("%s_burst_apply_p50: %.3f ms\n", prefix, ms(apply.p50));
        printf("%s_burst_apply_p99: %.3f ms\n", prefix, ms(apply.p99));
        printf("%s_burst_events_per_sec: %.0f events/s\n", prefix, burst.rate);
        printf("%s_burst_delivery_p50: %.3f ms\n", prefix, ms(burst.p50));
        printf("%s_burst_delivery_p99: %.3f ms\n", prefix, ms(burst.p99));
        printf("%s_burst_delivery_max: %.3f ms\n", prefix, ms(burst.max));
        printf("%s_burst_cpu_apiserver: %.2f s (%.1f us per event delivered)\n", prefix, cpu_srv,
               got[0] ? cpu_srv * 1e6 / (double)got[0] : 0.0);
        printf("%s_burst_cpu_watchers: %.2f s (%.1f us per event received)\n", prefix, cpu_self,
               got[0] ? cpu_self * 1e6 / (double)got[0] : 0.0);
    }
    stats paced = summarize(dl[1], got[1], 1, 0);
    stats paced_apply = summarize(apply_lat + 1 + M, (size_t)P, 1, 0);
    printf("%s_paced_apply_p99: %.3f ms\n", prefix, ms(paced_apply.p99));
    printf("%s_paced_delivery_p50: %.3f ms\n", prefix, ms(paced.p50));
    printf("%s_paced_delivery_p99: %.3f ms\n", prefix, ms(paced.p99));
    printf("%s_paced_delivery_max: %.3f ms\n", prefix, ms(paced.max));
    size_t missing = per_phase[0] + per_phase[1] - got[0] - got[1];
    if (missing || W > 1)
        printf("%s_events_missing: %zu of %zu\n", prefix, missing, per_phase[0] + per_phase[1]);
    if (early)
        printf("%s_events_before_reply: %ld\n", prefix, early);
    if (unmatched)
        printf("%s_events_unmatched: %ld\n", prefix, unmatched);
    if (ended)
        printf("%s_watches_ended_early: %d (%s)\n", prefix, ended, why);

    for (int i = 0; i < W; i++) {
        free(rd[i].rv);
        free(rd[i].at);
    }
    free(rd);
    free(dl[0]);
    free(dl[1]);
    free(ch);
    free(apply_lat);
    for (int i = 0; i < n_conns; i++)
        rpc_client_free(conns[i]);
    free(conns);
}

static long drain(rpc_watch *w, long want, int *ret_end, rpc_status *st);

static void bench_fanout(apiproc *p)
{
    printf("# 2. fan-out: %d watchers of kind Flavor (%d per connection, one reader thread "
           "each); %d changes back to back, then %d at %d/s; reference: the same paced changes "
           "to one watcher\n",
           cfg.watchers, WATCHERS_PER_CONN, cfg.changes, cfg.paced, cfg.paced_rate);
    rpc_client *c = client_new(p->target, 0);
    _cleanup_free_ char *doc0 = flavor_doc("bench-fan", 0);
    if (apply_doc(c, doc0, NULL, NULL, NULL) < 0)
        exit(1);

    /* A new watcher replaying every Flavor event the cache holds (the earlier phases wrote
     * thousands, one per revision), read as fast as this thread can. */
    rpc_watch *w = watch_open(c, "Flavor", "", 1);
    int end = 0;
    rpc_status st;
    usec_t t0 = now_monotonic();
    long n = drain(w, LONG_MAX, &end, &st);
    usec_t took = now_monotonic() - t0 - (end ? 0 : 2 * USEC_PER_SEC); /* drain's idle wait */
    printf("watch_replay_events: %ld in %.3f s%s%.200s\n", n, secs(took),
           end ? ", then the stream ended: " : "", end ? st.message : "");
    rpc_watch_free(w);

    run_fanout(p, c, 1, 0, cfg.paced, "fanout_1");
    run_fanout(p, c, cfg.watchers, cfg.changes, cfg.paced, "fanout");
    rpc_client_free(c);
}

/* ---- 3. RSS with many objects */

typedef struct loader {
    store *st;
    long n, next;
    int64_t *revs; /* the revision of each transaction, in completion order */
    size_t n_revs;
    int inflight, failed;
} loader;

/* The stored text of Event i, built by hand in the canonical order (checked against
 * stored_text() before use) because going through jansson 100,000 times is slow. */
static char *event_text(long i)
{
    return xasprintf("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Event\",\"metadata\":{"
                     "\"creationTimestamp\":\"2026-11-22T03:00:00Z\",\"generation\":1,\"name\":"
                     "\"web-%06ld.started\",\"namespace\":\"default\",\"uid\":"
                     "\"00000000-0000-4000-8000-%012ld\"},\"spec\":{\"count\":1,"
                     "\"firstTimestamp\":\"2026-11-22T03:00:00Z\",\"involvedObject\":{\"kind\":"
                     "\"Instance\",\"name\":\"web-%06ld\",\"namespace\":\"default\"},"
                     "\"lastTimestamp\":\"2026-11-22T03:00:00Z\",\"message\":\"instance "
                     "web-%06ld started on node-%04ld\",\"reason\":\"Started\",\"source\":{"
                     "\"component\":\"stratus-node-agent\",\"host\":\"node-%04ld\"},\"type\":"
                     "\"Normal\"}}",
                     i, i, i, i, i % 1000, i % 1000);
}

static void load_submit(loader *l);

static void load_done(store_result *r, void *userdata)
{
    loader *l = userdata;
    l->inflight--;
    if (r->error || !r->succeeded) {
        if (l->failed++ == 0)
            fprintf(stderr, "loading objects: %s\n", store_strerror(r->error));
    } else
        l->revs[l->n_revs++] = r->revision;
    store_result_free(r);
    if (l->next < l->n)
        load_submit(l);
}

static void load_submit(loader *l)
{
    _cleanup_(store_txn_freep) store_txn *t = store_txn_new();
    for (int j = 0; j < TXN_PUTS && l->next < l->n; j++, l->next++) {
        char key[128];
        snprintf(key, sizeof(key), "/stratus/v1/events/default/web-%06ld.started", l->next);
        _cleanup_free_ char *text = event_text(l->next);
        store_txn_put(t, STORE_ON_SUCCESS, key, text, strlen(text), 0, 0);
    }
    l->inflight++;
    if (store_txn_commit(l->st, t, load_done, l) < 0) {
        fprintf(stderr, "cannot submit a transaction\n");
        exit(1);
    }
}

/* Writes n Events straight into etcd, 100 per transaction, 8 transactions in flight. Returns
 * the sorted revisions of the transactions in *ret (n / 100 of them). */
static size_t load_events(const char *endpoint, long n, int64_t **ret)
{
    for (long i = 0; i < n; i += n - 1) {
        _cleanup_free_ char *doc = event_doc(i);
        _cleanup_free_ char *want = stored_text(doc, i);
        _cleanup_free_ char *got = event_text(i);
        if (!streq(want, got)) {
            fprintf(stderr, "event_text() is not the canonical stored form:\n%s\n%s\n", want, got);
            exit(1);
        }
        if (n == 1)
            break;
    }
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    loader l = {.n = n, .revs = xnew(int64_t, (size_t)(n / TXN_PUTS + 1))};
    store_options so = {
        .n_endpoints = 1, .endpoints = {endpoint}, .request_timeout = 60 * USEC_PER_SEC};
    if (store_new(loop, &so, &l.st) < 0)
        exit(1);
    for (int i = 0; i < 8 && l.next < n; i++)
        load_submit(&l);
    while (l.inflight > 0)
        ev_run(loop, EVRUN_ONCE);
    store_free(l.st);
    ev_loop_destroy(loop);
    if (l.failed) {
        fprintf(stderr, "%d transactions failed\n", l.failed);
        exit(1);
    }
    qsort(l.revs, l.n_revs, sizeof(int64_t), cmp_i64);
    *ret = l.revs;
    return l.n_revs;
}

/* Lists every Event in "default" through the API, 500 a page (the server's default). Returns
 * how many and the list's resourceVersion. */
static long list_all(rpc_client *c, int64_t *ret_rv, int *ret_pages)
{
    long items = 0;
    int pages = 0;
    _cleanup_free_ char *token = NULL;
    do {
        Stratus__V1__ListRequest req = STRATUS__V1__LIST_REQUEST__INIT;
        req.kind = "Event";
        req.namespace_ = "default";
        req.continue_token = token ? token : "";
        Stratus__V1__ListResponse *rep = NULL;
        rpc_status st;
        if (rpc_client_list(c, &req, 60 * USEC_PER_SEC, &rep, &st) < 0) {
            fprintf(stderr, "list: %s\n", st.message);
            return -1;
        }
        items += (long)rep->n_items_json;
        pages++;
        *ret_rv = strtoll(rep->resource_version, NULL, 10);
        free(token);
        token = rep->continue_token && *rep->continue_token ? xstrdup(rep->continue_token) : NULL;
        rpc_message_free(rep);
    } while (token);
    *ret_pages = pages;
    return items;
}

/* Reads events as fast as it can until `want` came, the stream ended, or 2 s passed without
 * one. Returns how many; *ret_end gets the stream's end status (0 while it is open). */
static long drain(rpc_watch *w, long want, int *ret_end, rpc_status *st)
{
    long n = 0;
    *ret_end = 0;
    while (n < want) {
        Stratus__V1__WatchEvent *ev = NULL;
        int e = rpc_watch_next(w, 2 * USEC_PER_SEC, &ev, st);
        if (e < 0) {
            if (e != -ETIMEDOUT)
                *ret_end = e;
            break;
        }
        n += ev->type != STRATUS__V1__WATCH_EVENT__TYPE__BOOKMARK;
        rpc_message_free(ev);
    }
    return n;
}

static void bench_rss(long n)
{
    char cn[24], name[96];
    count_name(n, cn);
    int W = cfg.watchers;
    printf("# 3. apiserver RSS with %ld Events (watch cache %d events, %d watchers)\n", n,
           WATCH_CACHE, W);
    etcd_fixture *etcd = etcd_fixture_start();
    apiproc *p = apiproc_start(etcd_fixture_endpoint(etcd));
    rpc_client *c = client_new(p->target, 0);
    Stratus__V1__HealthRequest hq = STRATUS__V1__HEALTH_REQUEST__INIT;
    Stratus__V1__HealthResponse *hr = NULL;
    rpc_status st;
    if (rpc_client_health(c, &hq, CALL_TIMEOUT, &hr, &st) < 0) {
        fprintf(stderr, "health: %s\n", st.message);
        exit(1);
    }
    rpc_message_free(hr);
    usleep(200000);
    snprintf(name, sizeof(name), "rss_%s_empty", cn);
    print_rss(name, p);

    /* load, then wait until the watch cache has the last transaction */
    usec_t t0 = now_monotonic();
    int64_t *revs = NULL;
    size_t n_txn = load_events(etcd_fixture_endpoint(etcd), n, &revs);
    usec_t t_load = now_monotonic() - t0;
    rpc_watch *sync = watch_open(c, "Event", "default", revs[n_txn - 1] - 1);
    int end = 0;
    if (drain(sync, 1, &end, &st) != 1) {
        fprintf(stderr, "the watch cache did not catch up: %s\n", end ? st.message : "timeout");
        exit(1);
    }
    usec_t t_cached = now_monotonic() - t0;
    rpc_watch_free(sync);
    snprintf(name, sizeof(name), "load_%s_seconds", cn);
    printf("%s: %.2f s (in the watch cache after %.2f s)\n", name, secs(t_load), secs(t_cached));
    usleep(500000);
    snprintf(name, sizeof(name), "rss_%s_loaded", cn);
    print_rss(name, p);

    int64_t list_rv = 0;
    int pages = 0;
    t0 = now_monotonic();
    long items = list_all(c, &list_rv, &pages);
    usec_t t_list = now_monotonic() - t0;
    snprintf(name, sizeof(name), "list_%s_seconds", cn);
    printf("%s: %.2f s (%ld items in %d pages, %.0f items/s)\n", name, secs(t_list), items, pages,
           (double)items / secs(t_list));
    if (items != n)
        printf("list_%s_items_wrong: %ld of %ld\n", cn, items, n);
    snprintf(name, sizeof(name), "rss_%s_listed", cn);
    print_rss(name, p);

    /* one watcher replays what the cache holds: every event after its base */
    long cached = MIN(n, (long)WATCH_CACHE);
    size_t kept_txn = (size_t)cached / TXN_PUTS;
    int64_t from = kept_txn < n_txn ? revs[n_txn - kept_txn - 1] : revs[0] - 1;
    rpc_watch *rw = watch_open(c, "Event", "default", from);
    t0 = now_monotonic();
    long replayed = drain(rw, cached, &end, &st);
    snprintf(name, sizeof(name), "replay_%s_events", cn);
    printf("%s: %ld of %ld in %.2f s%s%s\n", name, replayed, cached, secs(now_monotonic() - t0),
           end ? ", stream ended: " : "", end ? st.message : "");
    rpc_watch_free(rw);
    snprintf(name, sizeof(name), "rss_%s_replayed", cn);
    print_rss(name, p);

    /* W idle watchers from the list's revision, as informers do; one change proves each open */
    int n_conns = (W + WATCHERS_PER_CONN - 1) / WATCHERS_PER_CONN;
    rpc_client **conns = xnew(rpc_client *, (size_t)n_conns);
    for (int i = 0; i < n_conns; i++)
        conns[i] = client_new(p->target, 1 + i);
    rpc_watch **ws = xnew(rpc_watch *, (size_t)W);
    for (int i = 0; i < W; i++)
        ws[i] = watch_open(conns[i / WATCHERS_PER_CONN], "Event", "default", list_rv);
    _cleanup_free_ char *probe = event_doc(n);
    if (apply_doc(c, probe, NULL, NULL, NULL) < 0)
        exit(1);
    int n_open = 0;
    for (int i = 0; i < W; i++)
        n_open += drain(ws[i], 1, &end, &st) == 1;
    snprintf(name, sizeof(name), "rss_%s_%d_watchers", cn, W);
    print_rss(name, p);
    if (n_open != W)
        printf("rss_%s_watchers_open: %d of %d\n", cn, n_open, W);
    snprintf(name, sizeof(name), "rss_%s_peak", cn);
    printf("%s: %.1f MiB\n", name, (double)bench_proc_kib(p->pid, "VmHWM") / 1024.0);

    for (int i = 0; i < W; i++)
        rpc_watch_free(ws[i]);
    free(ws);
    for (int i = 0; i < n_conns; i++)
        rpc_client_free(conns[i]);
    free(conns);
    rpc_client_free(c);
    free(revs);
    apiproc_stop(p);
    etcd_fixture_stop(etcd);
}

/* ---- main */

static int parse_int(const char *flag, const char *v, int min)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < min || n > INT_MAX) {
        fprintf(stderr, "%s: \"%s\" is not a number >= %d\n", flag, v, min);
        exit(2);
    }
    return (int)n;
}

static void parse_sizes(const char *v)
{
    _cleanup_free_ char *copy = xstrdup(v);
    cfg.n_sizes = 0;
    for (char *save = NULL, *s = strtok_r(copy, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        if (cfg.n_sizes == SIZES_MAX) {
            fprintf(stderr, "--objects: at most %d sizes\n", SIZES_MAX);
            exit(2);
        }
        cfg.sizes[cfg.n_sizes++] = parse_int("--objects", s, TXN_PUTS);
    }
}

/* The stratus-apiserver next to this program (both land in build/bin). */
static const char *default_apiserver(void)
{
    static char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 32);
    if (n <= 0)
        return "stratus-apiserver";
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    strcpy(slash ? slash + 1 : path, "stratus-apiserver");
    return path;
}

static bool phase(const char *name)
{
    return !cfg.only || streq(cfg.only, name);
}

int main(int argc, char **argv)
{
    enum { O_QUICK = 256, O_OPS, O_WATCHERS, O_CHANGES, O_OBJECTS, O_ONLY, O_APISERVER };
    static const struct option opts[] = {
        {"quick", no_argument, 0, O_QUICK},
        {"ops", required_argument, 0, O_OPS},
        {"watchers", required_argument, 0, O_WATCHERS},
        {"changes", required_argument, 0, O_CHANGES},
        {"objects", required_argument, 0, O_OBJECTS},
        {"only", required_argument, 0, O_ONLY},
        {"apiserver", required_argument, 0, O_APISERVER},
        {0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_QUICK:
            cfg.ops = 300;
            cfg.per_thread = 30;
            cfg.watchers = 200;
            cfg.changes = 100;
            cfg.paced = 25;
            cfg.sizes[0] = 10000;
            cfg.n_sizes = 1;
            break;
        case O_OPS:
            cfg.ops = parse_int("--ops", optarg, 1);
            cfg.per_thread = MAX(1, cfg.ops / 10);
            break;
        case O_WATCHERS:
            cfg.watchers = parse_int("--watchers", optarg, 1);
            break;
        case O_CHANGES:
            cfg.changes = parse_int("--changes", optarg, 1);
            cfg.paced = MAX(1, cfg.changes / 4);
            break;
        case O_OBJECTS:
            parse_sizes(optarg);
            break;
        case O_ONLY:
            if (!streq(optarg, "latency") && !streq(optarg, "fanout") && !streq(optarg, "rss")) {
                fprintf(stderr, "--only: latency, fanout or rss\n");
                return 2;
            }
            cfg.only = optarg;
            break;
        case O_APISERVER:
            cfg.apiserver = optarg;
            break;
        default:
            fprintf(stderr, "usage: apiserver-bench [--quick] [--ops N] [--watchers N] "
                            "[--changes N] [--objects N[,N...]] [--only latency|fanout|rss] "
                            "[--apiserver PATH]\n");
            return 2;
        }
    }
    if (!cfg.apiserver)
        cfg.apiserver = getenv("STRATUS_APISERVER");
    if (!cfg.apiserver)
        cfg.apiserver = default_apiserver();
    if (access(cfg.apiserver, X_OK) < 0) {
        fprintf(stderr,
                "no stratus-apiserver at %s: build it (target stratus-apiserver) or pass "
                "--apiserver PATH\n",
                cfg.apiserver);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    usec_t t0 = now_monotonic();
    char load[64] = "";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(load, sizeof(load), f))
            load[0] = '\0';
        fclose(f);
    }
    printf("# apiserver-bench: %s, load average at start %.14s\n", cfg.apiserver, load);

    if (phase("latency") || phase("fanout")) {
        etcd_fixture *etcd = etcd_fixture_start();
        apiproc *p = apiproc_start(etcd_fixture_endpoint(etcd));
        if (phase("latency"))
            bench_latency(etcd, p);
        fflush(stdout);
        if (phase("fanout"))
            bench_fanout(p);
        fflush(stdout);
        apiproc_stop(p);
        etcd_fixture_stop(etcd);
    }
    if (phase("rss"))
        for (int i = 0; i < cfg.n_sizes; i++) {
            bench_rss(cfg.sizes[i]);
            fflush(stdout);
        }
    printf("bench_seconds: %.1f s\n", secs(now_monotonic() - t0));
    return 0;
}
