/* SIGKILL at any point of a build or a delete, then restart: the real stratus-node-agent program
 * (a child process) against a real etcd and apiserver (in this process). For each pause point of
 * a build (STRATUS_AGENT_PAUSE_AFTER, docs/agent.md) an instance is bound, the agent stops its
 * reconcile right after that point, the test kills it with SIGKILL, starts a new one without
 * the pause, and checks that the instance is Running with exactly one domain, exactly its planned
 * disks, only the expected files in its folder, no partial image, its Volume InUse and its DHCP
 * entry; then deletes it and checks that nothing of it is left. Last, a delete is killed after
 * its cleanup and before the finalizer is dropped, and must still finish.
 *
 * Two programs from this file:
 *   - test-agent-kill (KILL_QEMU unset): backend test:///. The test driver lives inside the
 *     agent process, so SIGKILL takes its domains and disks with it: what this proves is that the
 *     API side (the claim written before the kill, the Building status, the Volume and the state
 *     folder) converges, not that nothing is duplicated on a host.
 *   - test-agent-kill-qemu (KILL_QEMU=1): backend qemu:///system. Domains, overlay files, the
 *     network and its DHCP entries live in libvirtd and survive the kill: this is the test of
 *     "no duplicate domain and no leaked disk". It starts virtlogd and libvirtd when they are not
 *     running (and stops the ones it started), removes the network and pool the agent defined,
 *     and is skipped (exit 77) when not root or when libvirtd, qemu, qemu-img, iptables, dnsmasq
 *     or an ISO tool is missing. The guests are qemu (TCG) domains with a blank disk: they run
 *     firmware, which is all "running" needs here. Killed at DHCP (beside the domain's start),
 *     the domain exists and its DHCP entry does not yet: the restarted agent must make it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/backend.h"
#include "agent/files.h"
#include "agent/image.h"
#include "api/object.h"
#include "apiserver-fixture.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "check.h"
#include "libvirtd-fixture.h"

#define NODE    "kill-node"
#define NS      "kill"
#define NETWORK "stratus-" NS "-lan"
#define RPC_T   (10 * USEC_PER_SEC)

extern char **environ;

#ifdef KILL_QEMU
static const bool qemu = true;
#define TIMEOUT (300 * USEC_PER_SEC) /* libvirtd probes qemu at its first define */
#else
static const bool qemu = false;
#define TIMEOUT (30 * USEC_PER_SEC)
#endif

static apiserver_fixture *fx;
static char *state_dir; /* the test's folder */
static char *agent_dir; /* the agent's --state-dir, inside it */
static char *agent_bin;
static pid_t agent_pid;
static int agent_runs;
static backend *host; /* qemu: the test's own connection to libvirtd, to look */
static bool iso_tool;
/* Its own storage pool: libvirtd may be shared with other agents (tests, benchmarks, a local
 * cluster), and the pool is where an agent's orphan sweep looks. */
static char *pool_name;

static char *fmt(const char *f, ...) _printf_(1, 2);
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = xvasprintf(f, ap);
    va_end(ap);
    return s;
}

/* ---- the agent process ---- */

static void agent_stop(int sig)
{
    if (agent_pid <= 0)
        return;
    kill(agent_pid, sig);
    for (int i = 0; i < 200; i++) {
        if (waitpid(agent_pid, NULL, WNOHANG) == agent_pid) {
            agent_pid = 0;
            return;
        }
        usleep(50000);
    }
    kill(agent_pid, SIGKILL);
    waitpid(agent_pid, NULL, 0);
    agent_pid = 0;
}

static void teardown(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    agent_stop(SIGKILL);
    host = backend_free(host);
    if (qemu && pool_name) {
        /* Only what this test made: its network and its pool (the Volumes' files go with the
         * state folder). */
        _cleanup_free_ char *cmd =
            fmt("virsh -q -c qemu:///system net-destroy " NETWORK " >/dev/null 2>&1; "
                "virsh -q -c qemu:///system net-undefine " NETWORK " >/dev/null 2>&1; "
                "virsh -q -c qemu:///system pool-destroy %s >/dev/null 2>&1; "
                "virsh -q -c qemu:///system pool-undefine %s >/dev/null 2>&1",
                pool_name, pool_name);
        if (system(cmd) < 0)
            fprintf(stderr, "cleanup: virsh failed\n");
    }
    libvirtd_fixture_down();
    if (state_dir && !getenv("STRATUS_TEST_KEEP"))
        fs_rm_rf(state_dir);
}

/* Starts stratus-node-agent, its output in <state>/agent-<n>.log; pause: the pause point, or
 * NULL. posix_spawn with a ready environment: nothing but exec happens in the child of this
 * multi-threaded process. */
static void agent_start(const char *pause)
{
    _cleanup_free_ char *log = fmt("%s/agent-%d.log", state_dir, ++agent_runs);
    size_t n = 0;
    while (environ[n])
        n++;
    _cleanup_free_ char **envp = xnew(char *, n + 2);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!strneq(environ[i], "STRATUS_AGENT_PAUSE_AFTER=", 26))
            envp[k++] = environ[i];
    _cleanup_free_ char *pause_env = pause ? fmt("STRATUS_AGENT_PAUSE_AFTER=%s", pause) : NULL;
    if (pause_env)
        envp[k++] = pause_env;
    envp[k] = NULL;
    /* A long orphan grace: on a shared libvirtd the domains of other agents look like orphans
     * to this one (their instances are not bound here), and a test must not touch them. */
    const char *argv[] = {agent_bin,
                          "--server",
                          fx->target,
                          "--node-name",
                          NODE,
                          "--backend",
                          qemu ? "qemu:///system" : "test",
                          "--state-dir",
                          agent_dir,
                          "--pool",
                          pool_name,
                          "--workers",
                          "2",
                          "--lease-ttl",
                          "2s",
                          "--resync-interval",
                          "2s",
                          "--orphan-grace",
                          "1h",
                          "--shutdown-timeout",
                          "2s",
                          "--vcpus",
                          "8",
                          "--memory-mib",
                          "8192",
                          "--disk-gib",
                          "100",
                          "--log-level",
                          "debug",
                          NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int r = posix_spawn(&agent_pid, agent_bin, &fa, NULL, (char **)argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0)
        check_fail(__FILE__, __LINE__, "cannot start %s: %s", agent_bin, strerror(r));
}

static void agent_died(void)
{
    _cleanup_free_ char *log = fmt("%s/agent-%d.log", state_dir, agent_runs);
    _cleanup_free_ char *text = NULL;
    fs_read_tail(log, 4096, &text);
    check_fail(__FILE__, __LINE__, "the agent exited; %s ends with:\n%s", log,
               text ? text : "(nothing)");
}

/* Waits until the agent says it stopped at point for this instance. */
static void wait_paused(const char *point, const char *name)
{
    _cleanup_free_ char *file = fmt("%s/debug-paused", agent_dir);
    _cleanup_free_ char *want = fmt("%s " NS "/%s\n", point, name);
    usec_t deadline = now_monotonic() + TIMEOUT;
    while (now_monotonic() < deadline) {
        _cleanup_free_ char *text = NULL;
        if (fs_read_tail(file, 1024, &text) == 0 && streq(text, want)) {
            unlink(file);
            return;
        }
        if (waitpid(agent_pid, NULL, WNOHANG) == agent_pid) {
            agent_pid = 0;
            agent_died();
        }
        usleep(50000);
    }
    check_fail(__FILE__, __LINE__, "the agent did not stop after %s for %s", point, name);
}

/* ---- the API ---- */

static void apply_ok(const char *json)
{
    rpc_status st;
    if (fx_apply(fx, json, NULL, NULL, &st) < 0)
        check_fail(__FILE__, __LINE__, "apply %s: %s", json, st.message);
}

static const char *str(const json_t *o, const char *path)
{
    return json_string_value(api_json_lookup(o, path));
}

static json_t *get(const char *kind, const char *name, int *ret_err)
{
    json_t *o = NULL;
    rpc_status st;
    int r = fx_get(fx, kind, NS, name, &o, &st);
    if (ret_err)
        *ret_err = r;
    return r == 0 ? o : NULL;
}

/* Polls until the instance's phase is `phase` (NULL: until it is gone). */
static json_t *wait_phase(const char *name, const char *phase)
{
    usec_t deadline = now_monotonic() + TIMEOUT;
    json_t *o = NULL;
    for (;;) {
        int err = 0;
        json_decref(o);
        o = get("Instance", name, &err);
        if (!phase && err == -ENOENT)
            return NULL;
        if (o && phase && streq(str(o, "status.phase") ?: "", phase))
            return o;
        if (agent_pid > 0 && waitpid(agent_pid, NULL, WNOHANG) == agent_pid) {
            agent_pid = 0;
            agent_died();
        }
        if (now_monotonic() > deadline)
            break;
        usleep(100000);
    }
    _cleanup_free_ char *dump = o ? json_dumps(json_object_get(o, "status"), JSON_COMPACT) : NULL;
    json_decref(o);
    check_fail(__FILE__, __LINE__, "%s: wanted %s; status %s", name, phase ? phase : "(deleted)",
               dump ? dump : "-");
    return NULL;
}

/* Waits until the agent has registered the node (with its capacity): Bind needs it. */
static void wait_node(void)
{
    usec_t deadline = now_monotonic() + TIMEOUT;
    while (now_monotonic() < deadline) {
        json_t *n = NULL;
        rpc_status st;
        bool ok = fx_get(fx, "Node", NULL, NODE, &n, &st) == 0 &&
                  api_json_lookup(n, "status.allocatable");
        json_decref(n);
        if (ok)
            return;
        if (waitpid(agent_pid, NULL, WNOHANG) == agent_pid) {
            agent_pid = 0;
            agent_died();
        }
        usleep(50000);
    }
    check_fail(__FILE__, __LINE__, "node " NODE " was not registered");
}

/* Creates Volume v-<name> and the instance (flavor tiny: root + ephemeral disk; the network with
 * DHCP; the volume; a config drive) and binds it here. Returns its uid. */
static char *create_bound(const char *name)
{
    _cleanup_free_ char *vol =
        fmt("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Volume\",\"metadata\":{\"name\":\"v-%s\","
            "\"namespace\":\"" NS "\"},\"spec\":{\"sizeGiB\":1}}",
            name);
    apply_ok(vol);
    _cleanup_free_ char *j =
        fmt("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"%s\","
            "\"namespace\":\"" NS "\"},\"spec\":{\"flavor\":\"tiny\",\"image\":\"blank\","
            "\"networks\":[{\"network\":\"lan\"}],\"configDrive\":true,\"blockDevices\":[{\"name\":"
            "\"data\",\"volume\":\"v-%s\"}]}}",
            name, name);
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
    b.node = NODE;
    Stratus__V1__BindRequest req = STRATUS__V1__BIND_REQUEST__INIT;
    req.n_bindings = 1;
    req.bindings = &pb;
    Stratus__V1__BindResponse *rep = NULL;
    int r = rpc_client_bind(fx->client, &req, RPC_T, &rep, &st);
    bool ok = r == 0 && rep->n_results == 1 && rep->results[0]->ok;
    _cleanup_free_ char *msg = xstrdup(r < 0            ? st.message
                                       : rep->n_results ? rep->results[0]->message
                                                        : "?");
    rpc_message_free(rep);
    if (!ok)
        check_fail(__FILE__, __LINE__, "bind %s: %s", name, msg);
    return uid;
}

static void delete_instance(const char *name)
{
    json_t *o = NULL;
    rpc_status st;
    CHECK_OK(fx_delete(fx, "Instance", NS, name, &o, &st));
    json_decref(o);
}

/* ---- what is on the node ---- */

/* Entries of a folder (none when it does not exist), as one "a b c " string. */
static char *listing(const char *dir)
{
    buf b = BUF_INIT(0);
    buf_append_str(&b, "");
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!streq(e->d_name, ".") && !streq(e->d_name, ".."))
            buf_printf(&b, "%s ", e->d_name);
    if (d)
        closedir(d);
    return buf_steal(&b, NULL);
}

static bool listed(const char *list, const char *name)
{
    _cleanup_free_ char *w = fmt("%s ", name);
    for (const char *p = list; (p = strstr(p, w)); p++)
        if (p == list || p[-1] == ' ')
            return true;
    return false;
}

static size_t words(const char *list)
{
    size_t n = 0;
    for (const char *p = list; *p; p++)
        n += *p == ' ';
    return n;
}

/* The domains made for this uid (qemu: libvirtd keeps them across agent processes). */
static size_t domains_of(const char *uid, char uuid[BACKEND_UUID_MAX], backend_domain_state *st)
{
    backend_domain *d = NULL;
    size_t n = 0, k = 0;
    CHECK_OK(backend_domain_list(host, &d, &n));
    for (size_t i = 0; i < n; i++)
        if (d[i].uid && streq(d[i].uid, uid)) {
            k++;
            if (uuid)
                snprintf(uuid, BACKEND_UUID_MAX, "%s", d[i].uuid);
            if (st)
                *st = d[i].state;
        }
    backend_domains_free(d, n);
    return k;
}

static char *network_xml(void)
{
    FILE *p = popen("virsh -q -c qemu:///system net-dumpxml " NETWORK " 2>/dev/null", "r");
    buf b = BUF_INIT(1 << 20);
    buf_append_str(&b, "");
    char line[512];
    while (p && fgets(line, sizeof(line), p))
        buf_append_str(&b, line);
    if (p)
        pclose(p);
    return buf_steal(&b, NULL);
}

/* The instance is Running on one domain with its planned disks and files, and nothing else of
 * it exists. */
static void check_converged(const char *name, const char *uid)
{
    json_t *o = wait_phase(name, "Running");
    const char *dom_uuid = str(o, "status.domainUUID");
    CHECK(dom_uuid && *dom_uuid);
    json_t *addr = json_array_get(api_json_lookup(o, "status.addresses"), 0);
    _cleanup_free_ char *mac = xstrdup(json_string_value(json_object_get(addr, "mac")) ?: "");
    _cleanup_free_ char *ip = xstrdup(json_string_value(json_object_get(addr, "ip")) ?: "");
    if (qemu) {
        char uuid[BACKEND_UUID_MAX] = "";
        backend_domain_state st = BACKEND_DOMAIN_OTHER;
        CHECK_INT(domains_of(uid, uuid, &st), ==, 1);
        CHECK_INT(st, ==, BACKEND_DOMAIN_RUNNING);
        CHECK_STR(uuid, dom_uuid);
        /* Exactly the planned disks, in libvirt's pool and as files. */
        char **names = NULL;
        size_t n = 0, mine = 0;
        CHECK_OK(backend_disk_list(host, &names, &n));
        for (size_t i = 0; i < n; i++)
            mine += strstr(names[i], uid) != NULL;
        backend_names_free(names, n);
        CHECK_INT(mine, ==, 2);
        _cleanup_free_ char *pool = fmt("%s/nodes/" NODE "/disks", agent_dir);
        _cleanup_free_ char *files = listing(pool);
        _cleanup_free_ char *root = fmt("%s-root.qcow2", uid);
        _cleanup_free_ char *eph = fmt("%s-ephemeral0.qcow2", uid);
        _cleanup_free_ char *vol = fmt("vol-" NS "-v-%s.qcow2", name);
        CHECK(listed(files, root) && listed(files, eph) && listed(files, vol));
        size_t of_uid = 0;
        for (const char *p = files; (p = strstr(p, uid)); p++)
            of_uid++;
        CHECK_INT(of_uid, ==, 2);
        /* Its DHCP entry, in libvirt's network and in dnsmasq's hosts file. */
        _cleanup_free_ char *xml = network_xml();
        _cleanup_free_ char *entry = fmt("<host mac='%s' ip='%s'/>", mac, ip);
        if (!strstr(xml, entry))
            check_fail(__FILE__, __LINE__, "no %s in %s:\n%s", entry, NETWORK, xml);
        _cleanup_free_ char *hosts = NULL;
        CHECK_OK(fs_read_tail("/var/lib/libvirt/dnsmasq/" NETWORK ".hostsfile", 65536, &hosts));
        _cleanup_free_ char *line = fmt("%s,%s", mac, ip);
        if (!strstr(hosts, line))
            check_fail(__FILE__, __LINE__, "dnsmasq's hosts file has no %s:\n%s", line, hosts);
    }
    json_decref(o);
    /* Its folder holds what a build writes and nothing half-written. */
    _cleanup_free_ char *dir = fmt("%s/nodes/" NODE "/instances/%s", agent_dir, uid);
    _cleanup_free_ char *files = listing(dir);
    static const char *const allowed[] = {"config", "config.iso", "console.log", "dhcp-hosts"};
    size_t known = 0;
    for (size_t i = 0; i < ELEMENTSOF(allowed); i++)
        known += listed(files, allowed[i]);
    if (known != words(files) || !listed(files, "config") || !listed(files, "dhcp-hosts") ||
        (iso_tool && !listed(files, "config.iso")))
        check_fail(__FILE__, __LINE__, "%s holds: %s", dir, files);
    _cleanup_free_ char *images = fmt("%s/images", agent_dir);
    _cleanup_free_ char *cached = listing(images);
    CHECK(!strstr(cached, ".part"));
    CHECK_INT(words(cached), ==, 1);
    /* The Volume says where it is in use. */
    _cleanup_free_ char *vname = fmt("v-%s", name);
    json_t *v = get("Volume", vname, NULL);
    CHECK_STR(str(v, "status.phase") ?: "-", "InUse");
    CHECK_STR(str(v, "status.attachedTo") ?: "-", name);
    CHECK_STR(str(v, "status.nodeName") ?: "-", NODE);
    json_decref(v);
}

/* The instance is gone and so is everything of it but its Volume (Available, on this node). */
static void check_removed(const char *name, const char *uid, const char *mac)
{
    wait_phase(name, NULL);
    _cleanup_free_ char *dir = fmt("%s/nodes/" NODE "/instances/%s", agent_dir, uid);
    CHECK(access(dir, F_OK) != 0);
    _cleanup_free_ char *vname = fmt("v-%s", name);
    json_t *v = get("Volume", vname, NULL);
    CHECK_STR(str(v, "status.phase") ?: "-", "Available");
    CHECK(!str(v, "status.attachedTo"));
    CHECK_STR(str(v, "status.nodeName") ?: "-", NODE);
    json_decref(v);
    if (!qemu)
        return;
    CHECK_INT(domains_of(uid, NULL, NULL), ==, 0);
    _cleanup_free_ char *pool = fmt("%s/nodes/" NODE "/disks", agent_dir);
    _cleanup_free_ char *files = listing(pool);
    CHECK(!strstr(files, uid));
    _cleanup_free_ char *vol = fmt("vol-" NS "-v-%s.qcow2", name);
    CHECK(listed(files, vol)); /* the Volume's disk stays */
    _cleanup_free_ char *xml = network_xml();
    CHECK(!strstr(xml, mac));
}

static char *mac_of(const char *name)
{
    json_t *o = get("Instance", name, NULL);
    json_t *addr = json_array_get(api_json_lookup(o, "status.addresses"), 0);
    char *mac = xstrdup(json_string_value(json_object_get(addr, "mac")) ?: "?");
    json_decref(o);
    return mac;
}

/* ---- setup ---- */

static void prerequisites(void)
{
    iso_tool = system("(command -v genisoimage || command -v xorrisofs || command -v mkisofs) "
                      ">/dev/null") == 0;
    if (!qemu)
        return;
    static const char *const programs[] = {"/usr/sbin/libvirtd", "/usr/bin/qemu-system-x86_64",
                                           "/usr/bin/qemu-img",  "/usr/sbin/iptables",
                                           "/usr/sbin/dnsmasq",  NULL};
    if (geteuid() != 0)
        check_skip("needs root (libvirtd, qemu)");
    const char *missing = libvirtd_fixture_missing(programs);
    if (missing)
        check_skip("%s is not installed (make deps)", missing);
    if (!iso_tool)
        check_skip("no ISO tool (genisoimage, xorrisofs or mkisofs) for the config drive");
    const char *src = getenv("STRATUS_SOURCE_DIR") ? getenv("STRATUS_SOURCE_DIR") : ".";
    if (libvirtd_fixture_host_setup(src) < 0)
        check_skip("tools/libvirt-host-setup.sh failed");
}

static void setup(void)
{
    prerequisites();
    const char *build = getenv("STRATUS_BUILD_DIR") ? getenv("STRATUS_BUILD_DIR") : ".";
    agent_bin = fmt("%s/bin/stratus-node-agent", build);
    pool_name = fmt("stratus-kill-%d", (int)getpid());
    if (access(agent_bin, X_OK) < 0)
        check_fail(__FILE__, __LINE__, "%s: %s (build it first)", agent_bin, strerror(errno));
    /* Before the teardown is registered: the fixture's atexit handler, which stops the daemons
     * it started, then runs after the teardown, which still needs libvirtd. */
    if (qemu && libvirtd_fixture_up() < 0)
        check_skip("virtlogd or libvirtd did not start");
    if (qemu && !libvirtd_fixture_wait_answer(LIBVIRTD_FIXTURE_URI, 10 * USEC_PER_SEC))
        check_skip("libvirtd does not answer on " LIBVIRTD_FIXTURE_URI);
    if (qemu)
        libvirtd_fixture_sweep_pools(LIBVIRTD_FIXTURE_URI);
    fx = apiserver_fixture_start(NULL);
    /* After the fixture's own handler, so it runs first: the agent goes before etcd. */
    atexit(teardown);
    char t[] = "/tmp/stratus-agent-kill-XXXXXX";
    if (!mkdtemp(t))
        abort();
    state_dir = xstrdup(t);
    chmod(state_dir, 0755); /* qemu runs as libvirt-qemu and must reach disks and the console log */
    agent_dir = fmt("%s/agent", state_dir);
    CHECK_OK(fs_mkdir_p(agent_dir, 0755));
    if (qemu) {
        /* The test's own view of the host; the agent finds the pool defined. */
        _cleanup_free_ char *pool = fmt("%s/nodes/" NODE "/disks", agent_dir);
        CHECK_OK(fs_mkdir_p(pool, 0711));
        backend_config cfg = {.uri = "qemu:///system", .pool_name = pool_name, .pool_dir = pool};
        if (backend_open(&cfg, &host) < 0)
            check_fail(__FILE__, __LINE__, "qemu:///system: %s", backend_last_error());
    }
    /* The image: a real (blank) qcow2 for qemu; its header is enough for the test driver. */
    _cleanup_free_ char *img = fmt("%s/blank.qcow2", state_dir);
    if (qemu) {
        _cleanup_free_ char *cmd = fmt("qemu-img create -q -f qcow2 %s 64M", img);
        CHECK(system(cmd) == 0);
    } else {
        unsigned char h[4096] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 3};
        h[24 + 4] = 0x04; /* 64 MiB */
        CHECK_OK(fs_write_file(img, (const char *)h, sizeof(h)));
    }
    char sha[65];
    CHECK_OK(image_file_sha256(img, sha));
    _cleanup_free_ char *image =
        fmt("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Image\",\"metadata\":{\"name\":\"blank\"},"
            "\"spec\":{\"source\":{\"url\":\"file://%s\",\"sha256\":\"%s\"}}}",
            img, sha);
    apply_ok(image);
    apply_ok("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":\"tiny\"},"
             "\"spec\":{\"vcpus\":1,\"memoryMiB\":64,\"rootDiskGiB\":1,\"ephemeralGiB\":1}}");
    apply_ok("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Network\",\"metadata\":{\"name\":\"lan\","
             "\"namespace\":\"" NS "\"},\"spec\":{\"cidr\":\"10.213.47.0/24\"}}");
}

/* ---- the case ---- */

static void sigkill_anywhere_converges(void)
{
    setup();
    static const char *const points[] = {"Claim",  "BlockDevices", "Network", "ConfigDrive",
                                         "Define", "DHCP",         "Start"};
    for (size_t i = 0; i < ELEMENTSOF(points); i++) {
        _cleanup_free_ char *name = fmt("k%zu", i);
        printf("  kill after %s (instance %s)\n", points[i], name);
        fflush(stdout);
        agent_start(points[i]);
        wait_node();
        _cleanup_free_ char *uid = create_bound(name);
        wait_paused(points[i], name);
        agent_stop(SIGKILL);
        if (qemu && streq(points[i], "DHCP")) {
            /* Killed beside the start: the domain is there, its DHCP entry is not yet. */
            _cleanup_free_ char *m = mac_of(name);
            _cleanup_free_ char *xml = network_xml();
            CHECK_INT(domains_of(uid, NULL, NULL), ==, 1);
            CHECK(!strstr(xml, m));
        }
        agent_start(NULL);
        check_converged(name, uid);
        _cleanup_free_ char *mac = mac_of(name);
        delete_instance(name);
        check_removed(name, uid, mac);
        agent_stop(SIGTERM);
    }

    /* A delete killed after its cleanup, before the finalizer went. */
    printf("  kill after Delete\n");
    fflush(stdout);
    agent_start(NULL);
    wait_node();
    _cleanup_free_ char *uid = create_bound("kd");
    check_converged("kd", uid);
    _cleanup_free_ char *mac = mac_of("kd");
    agent_stop(SIGTERM);
    agent_start("Delete");
    delete_instance("kd");
    wait_paused("Delete", "kd");
    agent_stop(SIGKILL);
    json_t *o = get("Instance", "kd", NULL);
    CHECK(o); /* the finalizer kept it */
    json_decref(o);
    agent_start(NULL);
    check_removed("kd", uid, mac);

    /* Nothing of any of them is left on the node. */
    _cleanup_free_ char *instances = fmt("%s/nodes/" NODE "/instances", agent_dir);
    _cleanup_free_ char *left = listing(instances);
    CHECK_STR(left, "");
    if (qemu) {
        _cleanup_free_ char *xml = network_xml();
        CHECK(!strstr(xml, "<host "));
        backend_domain *d = NULL;
        size_t n = 0, ours = 0;
        CHECK_OK(backend_domain_list(host, &d, &n));
        for (size_t i = 0; i < n; i++)
            ours += d[i].namespace_ && streq(d[i].namespace_, NS);
        backend_domains_free(d, n);
        CHECK_INT(ours, ==, 0);
    }
    agent_stop(SIGTERM);
    teardown();
}

CHECK_MAIN(CASE(sigkill_anywhere_converges))
