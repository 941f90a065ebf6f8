/* The benchmarks' cluster harness: real etcd + the real stratus-* programs, all stopped at the
 * end however the benchmark ends. See cluster.h. */
#include "cluster.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/object.h"
#include "base/alloc.h"

#define PROCS_MAX    16
#define CLUSTERS_MAX 4

static bench_proc *procs[PROCS_MAX];
static bench_cluster *clusters[CLUSTERS_MAX];

/* ---- processes */

static void procs_kill_all(void)
{
    for (size_t i = 0; i < PROCS_MAX; i++)
        if (procs[i] && procs[i]->pid > 0)
            kill(procs[i]->pid, SIGKILL);
}

/* At exit: whatever is still running is killed, folders are removed; etcd is stopped by its
 * fixture's own handler, which was registered earlier and so runs after this one. */
static void at_exit(void)
{
    procs_kill_all();
    for (size_t i = 0; i < PROCS_MAX; i++)
        if (procs[i] && procs[i]->pid > 0) {
            waitpid(procs[i]->pid, NULL, 0);
            procs[i]->pid = 0;
        }
    for (size_t i = 0; i < CLUSTERS_MAX; i++)
        if (clusters[i] && clusters[i]->dir[0] && !getenv("STRATUS_BENCH_KEEP")) {
            char *cmd = xasprintf("rm -rf '%s'", clusters[i]->dir);
            (void)!system(cmd);
            free(cmd);
            clusters[i]->dir[0] = '\0';
        }
}

static void on_signal(int sig)
{
    procs_kill_all(); /* async-signal-safe: the children go first, whatever happens next */
    alarm(20);        /* should the exit handlers hang, SIGALRM ends the process */
    signal(SIGALRM, SIG_DFL);
    exit(128 + sig);
}

static void install_handlers(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    atexit(at_exit);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bench_proc *bench_proc_spawn(const char *dir, const char *name, char *const argv[])
{
    install_handlers();
    bench_proc *p = xnew(bench_proc, 1);
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->log, sizeof(p->log), "%s/%s.log", dir, name);
    size_t slot = PROCS_MAX;
    for (size_t i = 0; i < PROCS_MAX && slot == PROCS_MAX; i++)
        if (!procs[i])
            slot = i;
    if (slot == PROCS_MAX) {
        fprintf(stderr, "bench: too many processes\n");
        exit(1);
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        int in = open("/dev/null", O_RDONLY);
        int out = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in >= 0)
            dup2(in, STDIN_FILENO);
        if (out >= 0) {
            dup2(out, STDOUT_FILENO);
            dup2(out, STDERR_FILENO);
        }
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    procs[slot] = p;
    return p;
}

bool bench_proc_alive(bench_proc *p)
{
    if (!p || p->pid <= 0)
        return false;
    if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
        p->pid = 0;
        return false;
    }
    return true;
}

bench_proc *bench_proc_stop(bench_proc *p, usec_t grace)
{
    if (!p)
        return NULL;
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        usec_t deadline = now_monotonic() + grace;
        bool gone = false;
        while (!gone && now_monotonic() < deadline) {
            gone = waitpid(p->pid, NULL, WNOHANG) == p->pid;
            if (!gone)
                usleep(10000);
        }
        if (!gone) {
            fprintf(stderr, "bench: %s did not stop within %.0f s of SIGTERM; killing it\n",
                    p->name, (double)grace / 1e6);
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
        }
        p->pid = 0;
    }
    for (size_t i = 0; i < PROCS_MAX; i++)
        if (procs[i] == p)
            procs[i] = NULL;
    free(p);
    return NULL;
}

void bench_proc_log_tail(const bench_proc *p, int lines)
{
    char *cmd = xasprintf("tail -n %d '%s' >&2", lines, p->log);
    fprintf(stderr, "--- last lines of %s:\n", p->log);
    (void)!system(cmd);
    free(cmd);
}

pid_t bench_child_by_comm(const char *comm)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = 0, self = getpid();
    while (d && !found && (e = readdir(d))) {
        char path[300], buf[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        char *open = strchr(buf, '('), *close = strrchr(buf, ')');
        int ppid = 0;
        if (!open || !close || sscanf(close + 2, "%*c %d", &ppid) != 1 || ppid != self)
            continue;
        *close = '\0';
        if (streq(open + 1, comm))
            found = (pid_t)atoi(e->d_name);
    }
    if (d)
        closedir(d);
    return found;
}

/* ---- the cluster */

static void bin_dir(char out[static 1024])
{
    const char *env = getenv("STRATUS_BIN");
    if (env && *env) {
        snprintf(out, 1024, "%s", env);
        return;
    }
    ssize_t len = readlink("/proc/self/exe", out, 1023);
    if (len <= 0) {
        snprintf(out, 1024, ".");
        return;
    }
    out[len] = '\0';
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = '\0';
}

/* The programs' --log-level: warning, or $STRATUS_BENCH_LOG_LEVEL (info, debug) to debug a run;
 * their logs are <dir>/<program>.log (STRATUS_BENCH_KEEP=1 keeps the folder). */
static char *log_level(void)
{
    const char *l = getenv("STRATUS_BENCH_LOG_LEVEL");
    return (char *)(l && *l ? l : "warning");
}

static char *program(bench_cluster *c, const char *name)
{
    char *path = xasprintf("%s/%s", c->bin, name);
    if (access(path, X_OK) < 0) {
        fprintf(stderr, "bench: %s is missing: build it (cmake --build BUILD) or set STRATUS_BIN\n",
                path);
        exit(1);
    }
    return path;
}

/* argv = fixed..., then the NULL-terminated extra flags. */
static char **argv_join(char **fixed, size_t n_fixed, const char *const *extra)
{
    size_t n_extra = 0;
    while (extra && extra[n_extra])
        n_extra++;
    char **argv = xnew(char *, n_fixed + n_extra + 1);
    for (size_t i = 0; i < n_fixed; i++)
        argv[i] = fixed[i];
    for (size_t i = 0; i < n_extra; i++)
        argv[n_fixed + i] = (char *)extra[i];
    argv[n_fixed + n_extra] = NULL;
    return argv;
}

bench_cluster *bench_cluster_start(const char *const *apiserver_flags)
{
    bench_cluster *c = xnew(bench_cluster, 1);
    bin_dir(c->bin);
    _cleanup_free_ char *api = program(c, "stratus-apiserver");
    c->etcd = etcd_fixture_start();
    install_handlers(); /* after etcd's: runs before the fixture stops etcd */
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(c->dir, sizeof(c->dir), "%s/stratus-bench-XXXXXX", tmp);
    if (!mkdtemp(c->dir)) {
        perror("mkdtemp");
        exit(1);
    }
    chmod(c->dir, 0755); /* a real node's qemu (user libvirt-qemu) must reach disks and kernels */
    for (size_t i = 0; i < CLUSTERS_MAX; i++)
        if (!clusters[i]) {
            clusters[i] = c;
            break;
        }

    _cleanup_free_ char *port_file = xasprintf("%s/apiserver.port", c->dir);
    char *fixed[] = {api,
                     "--listen",
                     "127.0.0.1:0",
                     "--etcd",
                     (char *)etcd_fixture_endpoint(c->etcd),
                     "--port-file",
                     port_file,
                     "--log-level",
                     log_level()};
    _cleanup_free_ char **argv = argv_join(fixed, ELEMENTSOF(fixed), apiserver_flags);
    c->apiserver = bench_proc_spawn(c->dir, "apiserver", argv);
    usec_t deadline = now_monotonic() + 30 * USEC_PER_SEC;
    while (!c->target[0]) {
        if (!bench_proc_alive(c->apiserver) || now_monotonic() > deadline) {
            fprintf(stderr, "bench: stratus-apiserver did not start\n");
            bench_proc_log_tail(c->apiserver, 20);
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
        if (strchr(line, '\n') && sscanf(line, "%d", &port) == 1 && port > 0)
            snprintf(c->target, sizeof(c->target), "127.0.0.1:%d", port);
        else
            usleep(20000);
    }
    if (rpc_client_new(c->target, NULL, &c->client) < 0) {
        fprintf(stderr, "bench: no client for %s\n", c->target);
        exit(1);
    }
    return c;
}

void bench_cluster_start_scheduler(bench_cluster *c, const char *const *flags)
{
    _cleanup_free_ char *path = program(c, "stratus-scheduler");
    char *fixed[] = {path, "--server", c->target, "--log-level", log_level()};
    _cleanup_free_ char **argv = argv_join(fixed, ELEMENTSOF(fixed), flags);
    c->scheduler = bench_proc_spawn(c->dir, "scheduler", argv);
}

rpc_client *bench_client_new(const char *target, int conn)
{
    rpc_client_options o = {.max_receive_bytes = RPC_MESSAGE_SIZE_MAX - (size_t)conn};
    rpc_client *c = NULL;
    if (rpc_client_new(target, &o, &c) < 0) {
        fprintf(stderr, "bench: cannot create a client for %s\n", target);
        exit(1);
    }
    return c;
}

int bench_count_ready_nodes(rpc_client *client)
{
    int ready = 0;
    _cleanup_free_ char *cont = NULL;
    do {
        Stratus__V1__ListRequest req = STRATUS__V1__LIST_REQUEST__INIT;
        req.kind = "nodes";
        req.limit = 500;
        req.continue_token = cont ? cont : "";
        Stratus__V1__ListResponse *rep = NULL;
        rpc_status st;
        if (rpc_client_list(client, &req, 10 * USEC_PER_SEC, &rep, &st) < 0)
            return -1;
        for (size_t i = 0; i < rep->n_items_json; i++) {
            json_t *o = json_loads(rep->items_json[i], 0, NULL);
            size_t k;
            json_t *cond;
            json_array_foreach (api_json_lookup(o, "status.conditions"), k, cond) {
                const char *type = json_string_value(json_object_get(cond, "type"));
                const char *status = json_string_value(json_object_get(cond, "status"));
                if (type && status && streq(type, "Ready") && streq(status, "True"))
                    ready++;
            }
            json_decref(o);
        }
        free(cont);
        cont = rep->continue_token && *rep->continue_token ? xstrdup(rep->continue_token) : NULL;
        rpc_message_free(rep);
    } while (cont);
    return ready;
}

void bench_cluster_start_agent(bench_cluster *c, const char *const *flags, int nodes)
{
    _cleanup_free_ char *path = program(c, "stratus-node-agent");
    _cleanup_free_ char *state = xasprintf("%s/agent", c->dir);
    char *fixed[] = {path, "--server", c->target, "--state-dir", state, "--log-level", log_level()};
    _cleanup_free_ char **argv = argv_join(fixed, ELEMENTSOF(fixed), flags);
    c->agent = bench_proc_spawn(c->dir, "node-agent", argv);
    /* 90 s: a node the scheduler marked NotReady in the moment between its registration and
     * its first lease is reported Ready again only at the agent's next Node status refresh
     * (60 s): see docs/performance.md, "Found while measuring". */
    usec_t deadline = now_monotonic() + 90 * USEC_PER_SEC;
    int ready = 0;
    while ((ready = bench_count_ready_nodes(c->client)) < nodes) {
        if (!bench_proc_alive(c->agent) || now_monotonic() > deadline) {
            fprintf(stderr, "bench: the node agent registered %d of %d nodes\n", ready, nodes);
            bench_proc_log_tail(c->agent, 20);
            exit(1);
        }
        usleep(100000);
    }
}

void bench_cluster_stop(bench_cluster *c)
{
    if (!c)
        return;
    c->agent = bench_proc_stop(c->agent, 15 * USEC_PER_SEC);
    c->scheduler = bench_proc_stop(c->scheduler, 10 * USEC_PER_SEC);
    c->client = rpc_client_free(c->client);
    c->apiserver = bench_proc_stop(c->apiserver, 10 * USEC_PER_SEC);
    etcd_fixture_stop(c->etcd);
    c->etcd = NULL;
    if (c->dir[0] && !getenv("STRATUS_BENCH_KEEP")) {
        char *cmd = xasprintf("rm -rf '%s'", c->dir);
        (void)!system(cmd);
        free(cmd);
    } else if (c->dir[0])
        fprintf(stderr, "bench: kept %s\n", c->dir);
    for (size_t i = 0; i < CLUSTERS_MAX; i++)
        if (clusters[i] == c)
            clusters[i] = NULL;
    free(c);
}

/* ---- etcd's counters */

static size_t collect(char *data, size_t size, size_t n, void *userdata)
{
    char **buf = userdata;
    size_t have = *buf ? strlen(*buf) : 0, add = size * n;
    if (have + add > (16u << 20))
        return 0;
    *buf = xrealloc(*buf, have + add + 1);
    memcpy(*buf + have, data, add);
    (*buf)[have + add] = '\0';
    return add;
}

static double metric(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, name, n) == 0 && l[n] == ' ')
            return strtod(l + n + 1, NULL);
    return 0;
}

/* The sum of every `grpc_server_handled_total{...grpc_method="<method>"...}` line: the gRPC calls
 * etcd served by method, whatever their code (the JSON gateway's calls included). */
static double grpc_calls(const char *text, const char *method)
{
    static const char name[] = "grpc_server_handled_total{";
    _cleanup_free_ char *label = xasprintf("grpc_method=\"%s\"", method);
    double sum = 0;
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *end = strchr(l, '}'), *nl = strchr(l, '\n');
        if (strncmp(l, name, sizeof name - 1) != 0 || !end || (nl && end > nl))
            continue;
        const char *at = strstr(l, label);
        if (at && at < end)
            sum += strtod(end + 1, NULL);
    }
    return sum;
}

int bench_etcd_stats_read(bench_cluster *c, bench_etcd_stats *ret)
{
    CURL *h = curl_easy_init();
    if (!h)
        return -EIO;
    _cleanup_free_ char *url = xasprintf("%s/metrics", etcd_fixture_endpoint(c->etcd));
    char *text = NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &text);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK || !text) {
        free(text);
        return -EIO;
    }
    *ret = (bench_etcd_stats){
        .ranges = metric(text, "etcd_debugging_mvcc_range_total"),
        .txns = metric(text, "etcd_debugging_mvcc_txn_total"),
        .puts = metric(text, "etcd_debugging_mvcc_put_total"),
        .deletes = metric(text, "etcd_debugging_mvcc_delete_total"),
        .fsyncs = metric(text, "etcd_disk_wal_fsync_duration_seconds_count"),
        .fsync_seconds = metric(text, "etcd_disk_wal_fsync_duration_seconds_sum"),
        .commits = metric(text, "etcd_disk_backend_commit_duration_seconds_count"),
        .commit_seconds = metric(text, "etcd_disk_backend_commit_duration_seconds_sum"),
        .revision = metric(text, "etcd_debugging_mvcc_current_revision"),
        .rpc_range = grpc_calls(text, "Range"),
        .rpc_txn = grpc_calls(text, "Txn"),
        .rpc_put = grpc_calls(text, "Put"),
        .rpc_delete = grpc_calls(text, "DeleteRange"),
    };
    free(text);
    return 0;
}

void bench_etcd_stats_print(const char *prefix, const bench_etcd_stats *a,
                            const bench_etcd_stats *b, double seconds, long per)
{
    double revs = b->revision - a->revision, fs = b->fsyncs - a->fsyncs;
    printf("%s_etcd_writes: %.0f revisions (%.1f per instance, %.0f/s), %.0f MVCC ranges "
           "(reads, also inside transactions: %.1f per instance), %.0f txns\n",
           prefix, revs, per ? revs / (double)per : 0, seconds > 0 ? revs / seconds : 0,
           b->ranges - a->ranges, per ? (b->ranges - a->ranges) / (double)per : 0,
           b->txns - a->txns);
    printf("%s_etcd_fsyncs: %.0f (%.2f ms each on average, %.1f s in all; %.1f writes per "
           "fsync)\n",
           prefix, fs, fs > 0 ? (b->fsync_seconds - a->fsync_seconds) * 1e3 / fs : 0,
           b->fsync_seconds - a->fsync_seconds, fs > 0 ? revs / fs : 0);
    double calls[] = {b->rpc_range - a->rpc_range, b->rpc_txn - a->rpc_txn, b->rpc_put - a->rpc_put,
                      b->rpc_delete - a->rpc_delete};
    double d = per ? (double)per : 1;
    printf("%s_etcd_calls: %.0f Range (%.1f per instance), %.0f Txn (%.1f), %.0f Put (%.1f), "
           "%.0f DeleteRange (%.1f)\n",
           prefix, calls[0], calls[0] / d, calls[1], calls[1] / d, calls[2], calls[2] / d, calls[3],
           calls[3] / d);
}

/* ---- objects */

int bench_apply(rpc_client *c, const char *json, usec_t timeout, json_t **ret_obj, rpc_status *st)
{
    Stratus__V1__ApplyRequest req = STRATUS__V1__APPLY_REQUEST__INIT;
    req.object_json = (char *)json;
    Stratus__V1__ApplyResponse *rep = NULL;
    int r = rpc_client_apply(c, &req, timeout, &rep, st);
    if (r < 0)
        return r;
    if (ret_obj)
        *ret_obj = json_loads(rep->object_json, 0, NULL);
    rpc_message_free(rep);
    return 0;
}

int bench_delete(rpc_client *c, const char *kind, const char *ns, const char *name, usec_t timeout,
                 rpc_status *st)
{
    Stratus__V1__DeleteRequest req = STRATUS__V1__DELETE_REQUEST__INIT;
    req.kind = (char *)kind;
    req.namespace_ = (char *)(ns ? ns : "");
    req.name = (char *)name;
    Stratus__V1__ObjectResponse *rep = NULL;
    int r = rpc_client_delete(c, &req, timeout, &rep, st);
    rpc_message_free(rep);
    return r;
}

void bench_apply_basics(bench_cluster *c)
{
    _cleanup_free_ char *cmd = xasprintf(
        "qemu-img create -q -f qcow2 %s/disk.qcow2 64M && sha256sum %s/disk.qcow2", c->dir, c->dir);
    FILE *p = popen(cmd, "r");
    char sum[65] = "";
    if (!p || fscanf(p, "%64s", sum) != 1) {
        fprintf(stderr, "bench: qemu-img or sha256sum failed\n");
        exit(1);
    }
    pclose(p);
    _cleanup_free_ char *image =
        xasprintf("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Image\",\"metadata\":{\"name\":"
                  "\"bench-disk\"},\"spec\":{\"source\":{\"url\":\"file://%s/disk.qcow2\","
                  "\"sha256\":\"%s\",\"format\":\"qcow2\"}}}",
                  c->dir, sum);
    rpc_status st;
    if (bench_apply(c->client, image, 10 * USEC_PER_SEC, NULL, &st) < 0 ||
        bench_apply(c->client,
                    "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":"
                    "\"bench-tiny\"},\"spec\":{\"vcpus\":1,\"memoryMiB\":64,\"rootDiskGiB\":1}}",
                    10 * USEC_PER_SEC, NULL, &st) < 0) {
        fprintf(stderr, "bench: applying the flavor and image: %s\n", st.message);
        exit(1);
    }
}

char *bench_instance_doc(const char *ns, const char *name)
{
    return xasprintf("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{"
                     "\"name\":\"%s\",\"namespace\":\"%s\"},\"spec\":{\"flavor\":\"bench-tiny\","
                     "\"image\":\"bench-disk\"}}",
                     name, ns);
}

usec_t bench_parse_duration(const char *flag, const char *v)
{
    usec_t d;
    if (duration_parse(v, &d) < 0 || d == 0) {
        fprintf(stderr, "%s: \"%s\" is not a duration like 60s or 500ms\n", flag, v);
        exit(2);
    }
    return d;
}

long bench_parse_count(const char *flag, const char *v, long min, long max)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        fprintf(stderr, "%s: \"%s\" is not a number in %ld..%ld\n", flag, v, min, max);
        exit(2);
    }
    return n;
}

double bench_loadavg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}
