/* Node agent footprint and reconcile latency: the real stratus-node-agent binary (one hollow
 * node on libvirt's test driver) against a real etcd and apiserver in this process. Prints its
 * RSS with 0 and with N instances running, and the latency from each Bind's reply to the watch
 * showing the instance Running (p50/p99). Goal (issue 6): RSS <= 15 MB at 100 instances.
 *
 *   agent-bench [--instances N]   (default 100) */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/object.h"
#include "apiserver-fixture.h"
#include "base/alloc.h"
#include "stats.h"

static apiserver_fixture *fx;

static void die(const char *what, const rpc_status *st)
{
    fprintf(stderr, "agent-bench: %s: %s\n", what, st ? st->message : "");
    exit(1);
}

/* Reads the watch while the instances are bound, so that each Running is timed when it arrives,
 * not when the binding loop is done. */
typedef struct reader {
    rpc_watch *w;
    int n;
    usec_t *running_at; /* [n], 0 until seen Running */
    int running;
    bool failed;
} reader;

static void *read_events(void *arg)
{
    reader *r = arg;
    rpc_status st;
    while (r->running < r->n) {
        Stratus__V1__WatchEvent *ev = NULL;
        if (rpc_watch_next(r->w, 60 * USEC_PER_SEC, &ev, &st) < 0) {
            r->failed = true;
            return NULL;
        }
        json_t *o = json_loads(ev->object_json ? ev->object_json : "", 0, NULL);
        const char *phase = json_string_value(api_json_lookup(o, "status.phase"));
        const char *name = api_object_name(o);
        if (phase && name && strcmp(phase, "Running") == 0) {
            int i = atoi(name + 1);
            if (i >= 0 && i < r->n && r->running_at[i] == 0) {
                r->running_at[i] = now_monotonic();
                r->running++;
            }
        }
        json_decref(o);
        rpc_message_free(ev);
    }
    return NULL;
}

static bool node_ready(void)
{
    json_t *n = NULL;
    rpc_status st;
    if (fx_get(fx, "node", NULL, "bench-node", &n, &st) < 0)
        return false;
    bool ok = api_json_lookup(n, "status.allocatable") != NULL;
    json_decref(n);
    return ok;
}

int main(int argc, char **argv)
{
    int n = 100;
    bool bad = argc != 1 && !(argc == 3 && strcmp(argv[1], "--instances") == 0);
    if (argc == 3 && !bad)
        n = atoi(argv[2]);
    if (bad || n <= 0 || n > 1000) {
        fprintf(stderr, "usage: agent-bench [--instances 1..1000]\n");
        return 2;
    }
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0)
        return 1;
    self[len] = '\0';
    *strrchr(self, '/') = '\0';
    char *agent = xasprintf("%s/stratus-node-agent", self);

    fx = apiserver_fixture_start(NULL);
    char dir[] = "/tmp/stratus-agent-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char *cmd = xasprintf(
        "qemu-img create -q -f qcow2 %s/disk.qcow2 64M && sha256sum %s/disk.qcow2", dir, dir);
    FILE *p = popen(cmd, "r");
    char sum[65] = "";
    if (!p || fscanf(p, "%64s", sum) != 1)
        die("qemu-img/sha256sum", NULL);
    pclose(p);
    rpc_status st;
    char doc[1024];
    snprintf(doc, sizeof(doc),
             "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Image\",\"metadata\":{\"name\":\"disk\"},"
             "\"spec\":{\"source\":{\"url\":\"file://%s/disk.qcow2\",\"sha256\":\"%s\",\"format\":"
             "\"qcow2\"}}}",
             dir, sum);
    if (fx_apply(fx, doc, NULL, NULL, &st) < 0 ||
        fx_apply(fx,
                 "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":"
                 "\"tiny\"},\"spec\":{\"vcpus\":1,\"memoryMiB\":64,\"rootDiskGiB\":1}}",
                 NULL, NULL, &st) < 0)
        die("setup", &st);

    char *state = xasprintf("%s/agent", dir);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        execl(agent, agent, "--server", fx->target, "--node-name", "bench-node", "--backend",
              "test", "--vcpus", "2000", "--memory-mib", "1000000", "--disk-gib", "100000",
              "--state-dir", state, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && !node_ready(); i++)
        usleep(50000);
    if (!node_ready())
        die("the agent did not register its node", NULL);
    usleep(1000000); /* settled: informers synced, heartbeat running */
    long rss0 = bench_proc_kib(pid, "VmRSS");

    Stratus__V1__WatchRequest wr = STRATUS__V1__WATCH_REQUEST__INIT;
    wr.kind = "instances";
    wr.namespace_ = "bench";
    rpc_watch *w = NULL;
    if (rpc_client_watch(fx->client, &wr, &w) < 0)
        die("watch", NULL);
    usleep(200000);
    usec_t *bound_at = xnew(usec_t, (size_t)n), *lat = xnew(usec_t, (size_t)n);
    reader rd = {.w = w, .n = n, .running_at = xnew(usec_t, (size_t)n)};
    pthread_t reader_thread;
    pthread_create(&reader_thread, NULL, read_events, &rd);
    for (int i = 0; i < n; i++) {
        json_t *obj = NULL;
        snprintf(
            doc, sizeof(doc),
            "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":"
            "\"b%04d\",\"namespace\":\"bench\"},\"spec\":{\"flavor\":\"tiny\",\"image\":\"disk\"}}",
            i);
        if (fx_apply(fx, doc, NULL, &obj, &st) < 0)
            die("apply", &st);
        char name[16];
        snprintf(name, sizeof(name), "b%04d", i);
        Stratus__V1__Binding b = STRATUS__V1__BINDING__INIT, *bp = &b;
        b.namespace_ = "bench";
        b.name = name;
        b.uid = (char *)api_object_uid(obj);
        b.node = "bench-node";
        Stratus__V1__BindRequest br = STRATUS__V1__BIND_REQUEST__INIT;
        br.n_bindings = 1;
        br.bindings = &bp;
        Stratus__V1__BindResponse *rep = NULL;
        if (rpc_client_call(fx->client, RPC_METHOD_BIND, &br.base, 10 * USEC_PER_SEC,
                            (ProtobufCMessage **)&rep, &st) < 0 ||
            !rep->results[0]->ok)
            die("bind", &st);
        bound_at[i] = now_monotonic();
        rpc_message_free(rep);
        json_decref(obj);
    }
    pthread_join(reader_thread, NULL);
    if (rd.failed)
        die("instances did not all reach Running", NULL);
    /* A Running seen before the Bind's reply came back counts as 0. */
    for (int i = 0; i < n; i++)
        lat[i] = rd.running_at[i] > bound_at[i] ? rd.running_at[i] - bound_at[i] : 0;
    free(rd.running_at);
    usleep(1000000);
    long rss_n = bench_proc_kib(pid, "VmRSS");
    qsort(lat, (size_t)n, sizeof(usec_t), bench_cmp_usec);
    printf("# agent-bench: one hollow node (libvirt test driver), %d instances bound one by one\n",
           n);
    printf("agent_rss_0_instances: %.1f MiB\n", rss0 / 1024.0);
    printf("agent_rss_%d_instances: %.1f MiB\n", n, rss_n / 1024.0);
    printf("agent_bind_to_running_p50: %.1f ms\n", lat[n / 2] / 1000.0);
    printf("agent_bind_to_running_p99: %.1f ms\n",
           lat[(n * 99) / 100 >= n ? n - 1 : (n * 99) / 100] / 1000.0);

    rpc_watch_free(w);
    kill(pid, SIGTERM);
    for (int i = 0; i < 100 && waitpid(pid, NULL, WNOHANG) == 0; i++)
        usleep(50000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    char *rm = xasprintf("rm -rf %s", dir);
    (void)!system(rm);
    free(rm);
    apiserver_fixture_stop(fx);
    return 0;
}
