/* The node agent against a libvirtd of the test's own (qemu:///system, TCG guests), for what
 * only a real daemon shows: two agents (two node identities) on one libvirtd, and a libvirtd
 * restart under a running agent.
 *
 * Why its own libvirtd: the restart case kills and restarts the daemon, and the host's shared
 * libvirtd may be serving someone else at that moment (another build directory's tests, a local
 * cluster, a benchmark: CTest's resource lock only orders the tests of one ctest run). So the test
 * starts virtlogd and libvirtd in a private mount namespace (unshare(CLONE_NEWNS), in a child
 * that also reaps: see "the daemons' keeper") where /run/libvirt, /var/lib/libvirt,
 * /var/cache/libvirt, /var/log/libvirt and /etc/libvirt are folders of its own; the daemon's
 * socket is then <dir>/run/libvirt-sock outside, and the agents connect to
 * qemu:///system?socket=<that>. Guests are qemu processes in that namespace; no libvirt network
 * is defined (bridges and iptables are host-wide), so the guests have a disk and no NIC: an
 * empty qcow2 that SeaBIOS fails to boot from, which is a running domain all the same.
 *
 * Cases:
 *   two_agents_one_libvirtd — node-a and node-b, each with its own connection, sharing the
 *     default storage pool: each domain's metadata names its node; node-b removes a genuine
 *     orphan of its own; over many orphan graces neither removes the other's domains or disks,
 *     nor those of a node-c nobody runs.
 *   libvirtd_restart — an instance Running; libvirtd is stopped: the Node turns Ready=False
 *     (HypervisorUnreachable, with libvirt's reason); the guest's qemu is killed meanwhile;
 * libvirtd comes back: the agent reconnects, Ready=True, the resync finds the guest crashed and
 * starts it; a stop and a start converge; a guest destroyed behind its back is started again
 * through the lifecycle events registered on the new connection (the resync is 10 minutes away).
 *
 * Skipped (exit 77, saying why) when not root, or without libvirtd, virtlogd, qemu-system-x86_64,
 * qemu-img or virsh, or when it cannot make a mount namespace. Everything it starts is stopped at
 * exit, however it ends. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/files.h"
#include "agent/image.h"
#include "api/object.h"
#include "apiserver-fixture.h"
#include "base/alloc.h"
#include "check.h"
#include "libvirtd-fixture.h"

#define NS      "lvd"
#define TIMEOUT (300 * USEC_PER_SEC)
#define RPC_T   (10 * USEC_PER_SEC)

static apiserver_fixture *fx;
static char *dir;    /* everything: the daemons' folders, the agents' state, the image */
static char *uri;    /* qemu:///system?socket=<dir>/run/libvirt-sock */
static backend *be;  /* the test's own connection, to look behind the agents' backs */
static agent *ag[2]; /* node-a, node-b */
static bool daemons;

static char *fmt(const char *f, ...) _printf_(1, 2);
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = xvasprintf(f, ap);
    va_end(ap);
    return s;
}

static int sh(const char *f, ...) _printf_(1, 2);
static int sh(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    _cleanup_free_ char *cmd = xvasprintf(f, ap);
    va_end(ap);
    if (getenv("STRATUS_TEST_VERBOSE"))
        fprintf(stderr, "  $ %s\n", cmd);
    return system(cmd);
}

/* The pid in <dir>/<name>, a pid file of the test's daemons or of their guests. */
static pid_t pid_from(const char *name)
{
    _cleanup_free_ char *path = fmt("%s/%s", dir, name);
    return libvirtd_fixture_pid_read(path);
}

/* ---- the daemons' keeper ----
 *
 * A child of the test, forked before any thread exists, that makes the private mount namespace,
 * starts the daemons in it when asked (one command line per line on a pipe, its exit status byte
 * back on another), and reaps: it is a child subreaper, so the daemons (which fork away from
 * their parents) and every qemu they start (`-daemonize`, capability probes included) are its
 * descendants. Without it they would go to PID 1, which on some hosts (containers) never reaps:
 * libvirtd then waits seconds on every zombie probe it kills, and probes again. */

static pid_t keeper;
static int keeper_cmd = -1, keeper_ack = -1;

static void reap(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

_noreturn_ static void keeper_main(int cmd, int ack)
{
    static const char *const mounts[][2] = {{"run", "/run/libvirt"},
                                            {"lib", "/var/lib/libvirt"},
                                            {"cache", "/var/cache/libvirt"},
                                            {"log", "/var/log/libvirt"},
                                            {"etc", "/etc/libvirt"}};
    unsigned char ok = 0;
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0 || unshare(CLONE_NEWNS) < 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        ok = 1;
    for (size_t i = 0; ok == 0 && i < ELEMENTSOF(mounts); i++) {
        char src[PATH_MAX];
        snprintf(src, sizeof(src), "%s/%s", dir, mounts[i][0]);
        if (mkdir(mounts[i][1], 0755) < 0 && errno != EEXIST)
            ok = 1;
        else if (mount(src, mounts[i][1], NULL, MS_BIND, NULL) < 0)
            ok = 1;
    }
    if (write(ack, &ok, 1) != 1 || ok != 0)
        _exit(1);
    char line[4096];
    size_t len = 0;
    for (;;) {
        struct pollfd pfd = {.fd = cmd, .events = POLLIN};
        int n = poll(&pfd, 1, 100);
        reap();
        if (n <= 0)
            continue;
        ssize_t got = read(cmd, line + len, sizeof(line) - 1 - len);
        if (got <= 0)
            break; /* the test is gone */
        len += (size_t)got;
        char *nl;
        while ((nl = memchr(line, '\n', len))) {
            *nl = 0;
            int rc = system(line);
            unsigned char st = rc == 0 ? 0 : 1;
            if (write(ack, &st, 1) != 1)
                _exit(1);
            size_t used = (size_t)(nl - line) + 1;
            memmove(line, nl + 1, len - used);
            len -= used;
        }
    }
    /* Wait a little for what the teardown stopped, then leave the rest to init. */
    for (int i = 0; i < 50; i++) {
        reap();
        usleep(100000);
    }
    _exit(0);
}

/* Forks the keeper and has it set up the namespace: false when that fails. */
static bool keeper_start(void)
{
    int c[2], a[2];
    if (pipe2(c, O_CLOEXEC) < 0 || pipe2(a, O_CLOEXEC) < 0)
        return false;
    fflush(NULL);
    keeper = fork();
    if (keeper < 0)
        return false;
    if (keeper == 0) {
        close(c[1]);
        close(a[0]);
        keeper_main(c[0], a[1]);
    }
    close(c[0]);
    close(a[1]);
    keeper_cmd = c[1];
    keeper_ack = a[0];
    unsigned char ok = 1;
    return read(keeper_ack, &ok, 1) == 1 && ok == 0;
}

/* Runs a shell command line in the keeper (in the namespace): whether it exited 0. */
static bool keeper_run(const char *f, ...) _printf_(1, 2);
static bool keeper_run(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    _cleanup_free_ char *line = xvasprintf(f, ap);
    va_end(ap);
    _cleanup_free_ char *msg = fmt("%s\n", line);
    unsigned char st = 1;
    return keeper_cmd >= 0 && write(keeper_cmd, msg, strlen(msg)) == (ssize_t)strlen(msg) &&
           read(keeper_ack, &st, 1) == 1 && st == 0;
}

static void keeper_stop(void)
{
    if (keeper <= 0)
        return;
    close(keeper_cmd);
    keeper_cmd = -1;
    waitpid(keeper, NULL, 0);
    close(keeper_ack);
    keeper = 0;
}

/* Starts one of the test's daemons in the namespace, with its pid file in dir; true once the pid
 * file names it. */
static bool daemon_start(const char *name)
{
    _cleanup_free_ char *pidfile = fmt("%s/%s.pid", dir, name);
    pid_t pid;
    return keeper_run("%s -d -p %s", name, pidfile) &&
           libvirtd_fixture_wait_pid(pidfile, name, 10 * USEC_PER_SEC, &pid) == 0;
}

static bool libvirtd_start(void)
{
    return daemon_start("libvirtd") && libvirtd_fixture_wait_answer(uri, 15 * USEC_PER_SEC);
}

static void libvirtd_stop(void)
{
    libvirtd_fixture_stop_pid(pid_from("libvirtd.pid"), "libvirtd");
}

static void teardown(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    for (size_t i = 0; i < ELEMENTSOF(ag); i++)
        ag[i] = agent_free(ag[i]);
    be = backend_free(be);
    if (daemons) {
        if (!libvirtd_fixture_alive(pid_from("libvirtd.pid")))
            libvirtd_start();
        sh("for d in $(virsh -q -c '%s' list --all --name 2>/dev/null); do "
           "virsh -q -c '%s' destroy $d >/dev/null 2>&1; "
           "virsh -q -c '%s' undefine $d >/dev/null 2>&1; done; "
           "virsh -q -c '%s' pool-destroy stratus >/dev/null 2>&1; "
           "virsh -q -c '%s' pool-undefine stratus >/dev/null 2>&1",
           uri, uri, uri, uri, uri);
        libvirtd_stop();
        /* Guests that outlived their daemon (a failure half way through a restart). */
        sh("for p in %s/run/qemu/*.pid; do [ -f \"$p\" ] && kill -9 $(cat \"$p\") 2>/dev/null; "
           "done; true",
           dir);
        libvirtd_fixture_stop_pid(pid_from("virtlogd.pid"), "virtlogd");
    }
    keeper_stop();
    if (dir && !getenv("STRATUS_TEST_KEEP"))
        fs_rm_rf(dir);
}

static void on_log(void *userdata, agent_log_level level, const char *node, const char *msg)
{
    if (level <= AGENT_LOG_WARNING || getenv("STRATUS_TEST_VERBOSE"))
        fprintf(stderr, "  agent %s: %s\n", node, msg);
}

static void apply_ok(const char *json)
{
    rpc_status st;
    if (fx_apply(fx, json, NULL, NULL, &st) < 0)
        check_fail(__FILE__, __LINE__, "apply %s: %s", json, st.message);
}

static void setup(void)
{
    if (fx)
        return;
    static const char *const programs[] = {
        "/usr/sbin/libvirtd", "/usr/sbin/virtlogd", "/usr/bin/qemu-system-x86_64",
        "/usr/bin/qemu-img",  "/usr/bin/virsh",     NULL};
    if (geteuid() != 0)
        check_skip("needs root (a libvirtd of its own, qemu)");
    const char *missing = libvirtd_fixture_missing(programs);
    if (missing)
        check_skip("%s is not installed (make deps)", missing);
    const char *src = getenv("STRATUS_SOURCE_DIR") ? getenv("STRATUS_SOURCE_DIR") : ".";
    if (libvirtd_fixture_host_setup(src) < 0)
        check_skip("tools/libvirt-host-setup.sh failed");
    char t[] = "/tmp/stratus-agent-lvd-XXXXXX";
    if (!mkdtemp(t))
        abort();
    dir = xstrdup(t);
    chmod(dir, 0755); /* qemu runs as libvirt-qemu and must reach the disks and the image */
    uri = fmt("qemu:///system?socket=%s/run/libvirt-sock", dir);
    static const char *const folders[] = {"run", "lib", "cache", "log", "etc"};
    for (size_t i = 0; i < ELEMENTSOF(folders); i++) {
        _cleanup_free_ char *d = fmt("%s/%s", dir, folders[i]);
        CHECK_OK(fs_mkdir_p(d, 0755));
    }
    /* The daemons' settings, not the host daemon's domains, networks or pools. */
    sh("cp /etc/libvirt/*.conf %s/etc/ 2>/dev/null; true", dir);
    /* Before the apiserver fixture: the keeper is forked while no thread exists. */
    if (!keeper_start()) {
        keeper_stop();
        fs_rm_rf(dir);
        check_skip("cannot make a mount namespace for the test's libvirtd");
    }
    /* Registered after the apiserver fixture's own handler, so it runs first: the agents go
     * while their apiserver client still exists. */
    fx = apiserver_fixture_start(NULL);
    atexit(teardown);
    daemons = true;
    if (!daemon_start("virtlogd") || !libvirtd_start())
        check_skip("the test's virtlogd or libvirtd did not start");

    _cleanup_free_ char *pool = fmt("%s/pool", dir);
    backend_config cfg = {.uri = uri, .pool_name = "test-lvd", .pool_dir = pool};
    if (backend_open(&cfg, &be) < 0)
        check_fail(__FILE__, __LINE__, "%s: %s", uri, backend_last_error());

    _cleanup_free_ char *img = fmt("%s/empty.qcow2", dir);
    if (sh("qemu-img create -q -f qcow2 %s 64M", img) != 0)
        check_fail(__FILE__, __LINE__, "qemu-img create failed");
    char sha[65];
    CHECK_OK(image_file_sha256(img, sha));
    _cleanup_free_ char *image =
        fmt("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Image\",\"metadata\":{\"name\":\"empty\"},"
            "\"spec\":{\"source\":{\"url\":\"file://%s\",\"sha256\":\"%s\"}}}",
            img, sha);
    apply_ok(image);
    apply_ok("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":\"tiny\"},"
             "\"spec\":{\"vcpus\":1,\"memoryMiB\":128,\"rootDiskGiB\":1}}");
}

static agent *agent_start(const char *node, usec_t resync, usec_t orphan_grace)
{
    _cleanup_free_ char *state = fmt("%s/%s", dir, node);
    agent_options o = {
        .client = fx->client,
        .node_name = node,
        .uri = uri,
        .state_dir = state, /* the pool is the default "stratus", shared by both */
        .vcpus = 4,
        .memory_mib = 4096,
        .disk_gib = 20,
        .workers = 2,
        .lease_ttl = 3 * USEC_PER_SEC,
        .resync_interval = resync,
        .orphan_grace = orphan_grace,
        .shutdown_timeout = 2 * USEC_PER_SEC, /* SeaBIOS ignores ACPI: destroyed after this */
        .start_timeout = 30 * USEC_PER_SEC,
        .log = on_log,
    };
    agent *a = NULL;
    if (agent_new(&o, &a) < 0)
        check_fail(__FILE__, __LINE__, "agent_new %s: %s", node, backend_last_error());
    return a;
}

/* ---- helpers ---- */

static const char *str(const json_t *o, const char *path)
{
    return json_string_value(api_json_lookup(o, path));
}

static char *create_bound(const char *name, const char *node)
{
    _cleanup_free_ char *j =
        fmt("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"%s\","
            "\"namespace\":\"" NS "\"},\"spec\":{\"flavor\":\"tiny\",\"image\":\"empty\"}}",
            name);
    json_t *o = NULL;
    rpc_status st;
    if (fx_apply(fx, j, NULL, &o, &st) < 0)
        check_fail(__FILE__, __LINE__, "create %s: %s", name, st.message);
    char *uid = xstrdup(api_object_uid(o));
    json_decref(o);
    Stratus__V1__Binding b = STRATUS__V1__BINDING__INIT, *pb = &b;
    b.namespace_ = NS;
    b.name = (char *)name;
    b.uid = uid;
    b.node = (char *)node;
    Stratus__V1__BindRequest req = STRATUS__V1__BIND_REQUEST__INIT;
    req.n_bindings = 1;
    req.bindings = &pb;
    Stratus__V1__BindResponse *rep = NULL;
    int r = rpc_client_bind(fx->client, &req, RPC_T, &rep, &st);
    bool ok = r == 0 && rep->n_results == 1 && rep->results[0]->ok;
    rpc_message_free(rep);
    if (!ok)
        check_fail(__FILE__, __LINE__, "bind %s to %s failed", name, node);
    return uid;
}

static json_t *wait_phase(const char *name, const char *phase)
{
    usec_t deadline = now_monotonic() + TIMEOUT;
    json_t *o = NULL;
    for (;;) {
        json_decref(o);
        o = NULL;
        rpc_status st;
        int r = fx_get(fx, "Instance", NS, name, &o, &st);
        if (!phase && r == -ENOENT)
            return NULL;
        if (r == 0 && phase && streq(str(o, "status.phase") ?: "", phase))
            return o;
        if (now_monotonic() > deadline)
            break;
        usleep(200000);
    }
    _cleanup_free_ char *dump = o ? json_dumps(json_object_get(o, "status"), JSON_COMPACT) : NULL;
    json_decref(o);
    check_fail(__FILE__, __LINE__, "%s: wanted %s; status %s", name, phase ? phase : "(deleted)",
               dump ? dump : "-");
    return NULL;
}

static void set_power(const char *name, const char *state)
{
    _cleanup_free_ char *j =
        fmt("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"%s\","
            "\"namespace\":\"" NS "\"},\"spec\":{\"flavor\":\"tiny\",\"image\":\"empty\","
            "\"powerState\":\"%s\"}}",
            name, state);
    apply_ok(j);
}

static void delete_and_wait(const char *name)
{
    json_t *o = NULL;
    rpc_status st;
    CHECK_OK(fx_delete(fx, "Instance", NS, name, &o, &st));
    json_decref(o);
    wait_phase(name, NULL);
}

static int dom_state(const char *dom)
{
    backend_domain_state st;
    char uuid[BACKEND_UUID_MAX];
    int r = backend_domain_state_get(be, dom, &st, uuid);
    return r < 0 ? r : (int)st;
}

static bool wait_dom_state(const char *dom, int want, usec_t timeout)
{
    usec_t deadline = now_monotonic() + timeout;
    while (now_monotonic() < deadline) {
        if (dom_state(dom) == want)
            return true;
        usleep(100000);
    }
    return false;
}

static size_t count_disks(const char *uid)
{
    _cleanup_free_ char *cmd =
        fmt("virsh -q -c '%s' vol-list stratus 2>/dev/null | grep -c '%s'", uri, uid);
    FILE *p = popen(cmd, "r");
    if (!p)
        return (size_t)-1;
    unsigned long n = 0;
    if (fscanf(p, "%lu", &n) != 1)
        n = (unsigned long)-1;
    pclose(p);
    return n;
}

static char *domain_node(const char *dom)
{
    backend_domain *d = NULL;
    size_t n = 0;
    char *node = NULL;
    if (backend_domain_list(be, &d, &n) < 0)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (streq(d[i].name, dom))
            node = xstrdup(d[i].node ? d[i].node : "");
    backend_domains_free(d, n);
    return node;
}

static size_t events_about(const char *name, const char *reason)
{
    _cleanup_free_ char *sel = fmt("spec.involvedObject.name=%s,spec.reason=%s", name, reason);
    Stratus__V1__ListRequest req = STRATUS__V1__LIST_REQUEST__INIT;
    req.kind = "Event";
    req.namespace_ = NS;
    req.field_selector = sel;
    Stratus__V1__ListResponse *rep = NULL;
    rpc_status st;
    if (rpc_client_list(fx->client, &req, RPC_T, &rep, &st) < 0)
        return 0;
    size_t n = rep->n_items_json;
    rpc_message_free(rep);
    return n;
}

/* Polls until more than `more_than` Events about the instance have this reason (the agent
 * creates them after the status write that follows the change). */
static bool wait_events(const char *name, const char *reason, size_t more_than)
{
    usec_t deadline = now_monotonic() + TIMEOUT;
    while (now_monotonic() < deadline) {
        if (events_about(name, reason) > more_than)
            return true;
        usleep(200000);
    }
    return false;
}

/* A domain with Stratus metadata naming `node` (running when `start`), and a root disk in the
 * shared pool. */
static char *stratus_domain(const char *name, const char *uid, const char *node, bool start)
{
    char *dom = fmt(NS ".%s.%s", name, uid);
    _cleanup_free_ char *xml =
        fmt("<domain type='qemu'><name>%s</name><metadata><stratus:instance "
            "xmlns:stratus='https://stratus.io/xmlns/instance/1' uid='%s' generation='1' "
            "namespace='" NS "' name='%s' node='%s'/></metadata><memory unit='MiB'>64</memory>"
            "<vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os></domain>",
            dom, uid, name, node);
    /* The disk first: an agent may remove the domain, and its disks with it, at once. */
    if (sh("virsh -q -c '%s' vol-create-as stratus %s-root.qcow2 1M --format qcow2 >/dev/null", uri,
           uid) != 0)
        check_fail(__FILE__, __LINE__, "vol-create-as failed");
    char uuid[BACKEND_UUID_MAX];
    if (backend_domain_define(be, xml, uuid) < 0 || (start && backend_domain_start(be, dom) < 0))
        check_fail(__FILE__, __LINE__, "domain %s: %s", dom, backend_last_error());
    return dom;
}

/* The Node's Ready condition as "<status> <reason>: <message>". */
static char *node_ready(const char *node)
{
    json_t *n = NULL;
    rpc_status st;
    if (fx_get(fx, "Node", NULL, node, &n, &st) < 0)
        return xstrdup("-");
    const json_t *c = api_json_lookup(n, "status.conditions");
    char *out = NULL;
    for (size_t i = 0; i < json_array_size(c) && !out; i++) {
        const json_t *e = json_array_get(c, i);
        if (streq(str(e, "type") ?: "", "Ready"))
            out = fmt("%s %s: %s", str(e, "status") ?: "-", str(e, "reason") ?: "-",
                      str(e, "message") ?: "");
    }
    json_decref(n);
    return out ? out : xstrdup("-");
}

static void wait_node_ready(const char *node, const char *prefix, const char *text)
{
    usec_t deadline = now_monotonic() + TIMEOUT;
    _cleanup_free_ char *last = NULL;
    for (;;) {
        free(last);
        last = node_ready(node);
        if (strneq(last, prefix, strlen(prefix)) && (!text || strstr(last, text)))
            return;
        if (now_monotonic() > deadline)
            break;
        usleep(100000);
    }
    check_fail(__FILE__, __LINE__, "Node %s Ready: %s; wanted %s…", node, last, prefix);
}

/* ---- cases ---- */

static void two_agents_one_libvirtd(void)
{
    setup();
    ag[0] = agent_start("node-a", USEC_PER_SEC, USEC_PER_SEC);
    ag[1] = agent_start("node-b", USEC_PER_SEC, USEC_PER_SEC);
    _cleanup_free_ char *uid_a = create_bound("vm-a", "node-a");
    _cleanup_free_ char *uid_b = create_bound("vm-b", "node-b");
    json_decref(wait_phase("vm-a", "Running"));
    json_decref(wait_phase("vm-b", "Running"));
    _cleanup_free_ char *dom_a = fmt(NS ".vm-a.%s", uid_a);
    _cleanup_free_ char *dom_b = fmt(NS ".vm-b.%s", uid_b);
    _cleanup_free_ char *node_a = domain_node(dom_a);
    _cleanup_free_ char *node_b = domain_node(dom_b);
    CHECK_STR(node_a, "node-a");
    CHECK_STR(node_b, "node-b");

    /* node-b's orphan is defined, not started: node-b may remove it while it would start. */
    const char *uid_g = "44444444-5555-4666-8777-888888888888";
    const char *uid_c = "55555555-6666-4777-8888-999999999999";
    agent_stats sb0;
    agent_stats_read(ag[1], &sb0);
    _cleanup_free_ char *dom_g = stratus_domain("ghost-b", uid_g, "node-b", false);
    _cleanup_free_ char *dom_c = stratus_domain("other-c", uid_c, "node-c", true);
    agent_resync(ag[0]);
    agent_resync(ag[1]);
    CHECK(wait_dom_state(dom_g, -ENOENT, TIMEOUT));
    /* The domain goes first, then its disks; the count comes once all of it is gone. */
    agent_stats sb;
    usec_t deadline = now_monotonic() + TIMEOUT;
    do {
        agent_stats_read(ag[1], &sb);
        if (sb.orphans > sb0.orphans)
            break;
        usleep(50000);
    } while (now_monotonic() < deadline);
    CHECK_INT(sb.orphans, >, sb0.orphans);
    CHECK_INT(count_disks(uid_g), ==, 0);

    /* Many orphan graces and resyncs: nothing of the other's (or node-c's) goes. */
    usec_t until = now_monotonic() + 6 * USEC_PER_SEC;
    while (now_monotonic() < until) {
        CHECK_INT(dom_state(dom_a), ==, BACKEND_DOMAIN_RUNNING);
        CHECK_INT(dom_state(dom_b), ==, BACKEND_DOMAIN_RUNNING);
        CHECK_INT(dom_state(dom_c), ==, BACKEND_DOMAIN_RUNNING);
        CHECK_INT(count_disks(uid_a), ==, 1);
        CHECK_INT(count_disks(uid_b), ==, 1);
        CHECK_INT(count_disks(uid_c), ==, 1);
        usleep(250000);
    }
    CHECK_INT(events_about("vm-a", "OrphanRemoved"), ==, 0);
    CHECK_INT(events_about("vm-b", "OrphanRemoved"), ==, 0);
    CHECK_INT(events_about("other-c", "OrphanRemoved"), ==, 0);

    delete_and_wait("vm-a");
    delete_and_wait("vm-b");
    CHECK_INT(dom_state(dom_a), ==, -ENOENT);
    CHECK_INT(dom_state(dom_b), ==, -ENOENT);
    CHECK_INT(count_disks(uid_a) + count_disks(uid_b), ==, 0);
    CHECK_INT(dom_state(dom_c), ==, BACKEND_DOMAIN_RUNNING);
    for (size_t i = 0; i < ELEMENTSOF(ag); i++)
        ag[i] = agent_free(ag[i]);
    CHECK_OK(backend_domain_destroy(be, dom_c));
    CHECK_OK(backend_domain_undefine(be, dom_c));
    sh("virsh -q -c '%s' vol-delete --pool stratus %s-root.qcow2 >/dev/null 2>&1", uri, uid_c);
}

static void libvirtd_restart(void)
{
    setup();
    /* Resyncs 10 minutes apart: what converges below does so through the reconnect's resync
     * and libvirt's events, not the timer. */
    ag[0] = agent_start("node-r", 600 * USEC_PER_SEC, 0);
    _cleanup_free_ char *uid = create_bound("vm-r", "node-r");
    json_decref(wait_phase("vm-r", "Running"));
    _cleanup_free_ char *dom = fmt(NS ".vm-r.%s", uid);
    wait_node_ready("node-r", "True AgentReady", NULL);
    _cleanup_free_ char *qemu_pidfile = fmt("run/qemu/%s.pid", dom);
    pid_t guest = pid_from(qemu_pidfile);
    CHECK(libvirtd_fixture_alive(guest));

    libvirtd_stop();
    wait_node_ready("node-r", "False HypervisorUnreachable", "Failed to connect socket");
    CHECK(agent_node_hypervisor_down(ag[0], 0));
    /* The guest dies while nobody watches. */
    kill(guest, SIGKILL);
    for (int i = 0; i < 100 && libvirtd_fixture_alive(guest); i++)
        usleep(100000);
    CHECK(!libvirtd_fixture_alive(guest));

    CHECK(libvirtd_start());
    wait_node_ready("node-r", "True AgentReady", NULL);
    CHECK_OK(backend_reconnect(be));
    CHECK(wait_dom_state(dom, BACKEND_DOMAIN_RUNNING, TIMEOUT));
    CHECK(wait_events("vm-r", "DomainCrashed", 0)); /* libvirtd: shut off, reason crashed */
    agent_stats s;
    agent_stats_read(ag[0], &s);
    CHECK_INT(s.hypervisor_losses, >=, 1);
    CHECK_INT(s.reconnects, >=, 1);

    set_power("vm-r", "Stopped");
    json_decref(wait_phase("vm-r", "Stopped"));
    CHECK_INT(dom_state(dom), ==, BACKEND_DOMAIN_SHUTOFF);
    set_power("vm-r", "Running");
    json_decref(wait_phase("vm-r", "Running"));
    CHECK_INT(dom_state(dom), ==, BACKEND_DOMAIN_RUNNING);

    size_t before = events_about("vm-r", "DomainStoppedUnexpectedly");
    CHECK_OK(backend_domain_destroy(be, dom));
    CHECK(wait_dom_state(dom, BACKEND_DOMAIN_RUNNING, 60 * USEC_PER_SEC));
    CHECK(wait_events("vm-r", "DomainStoppedUnexpectedly", before));

    delete_and_wait("vm-r");
    CHECK_INT(dom_state(dom), ==, -ENOENT);
    CHECK_INT(count_disks(uid), ==, 0);
    ag[0] = agent_free(ag[0]);
}

CHECK_MAIN(CASE(two_agents_one_libvirtd), CASE(libvirtd_restart))
