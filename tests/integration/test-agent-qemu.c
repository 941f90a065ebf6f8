/* A real guest: the node agent on libvirt qemu:///system (TCG), against a real etcd and
 * apiserver. The guest is the kernel + busybox initramfs that tools/build-guest-image.sh builds
 * from Debian packages (into <build>/guest, once); it boots directly from kernel and initrd with
 * a blank root disk and one NIC, configures the address the agent passes on the kernel command
 * line, and prints a marker on its serial console, which the test reads from the console log the
 * agent set up. The instance is then deleted and everything must be gone.
 *
 * The test starts virtlogd and libvirtd when they are not running (after
 * tools/libvirt-host-setup.sh; tests/lib/libvirtd-fixture.h), stops the ones it started, and
 * removes the libvirt network and storage pool the agent defined, however it ends. It is skipped
 * (and says why) when not root, when libvirtd, qemu or iptables is not installed, or when the
 * guest cannot be built (no package lists). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/files.h"
#include "agent/image.h"
#include "api/object.h"
#include "apiserver-fixture.h"
#include "base/alloc.h"
#include "check.h"
#include "libvirtd-fixture.h"

#define NODE    "qemu-node"
#define NS      "guest"
#define TIMEOUT (300 * USEC_PER_SEC)

static apiserver_fixture *fx;
static agent *ag;
static char *state_dir;
/* Its own storage pool: libvirtd may be shared with other agents (another test, a benchmark, a
 * local cluster), and an agent's orphan sweep looks at every disk of its pool. */
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

static void teardown(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    ag = agent_free(ag);
    /* What the agent defined on the host and does not remove itself. */
    _cleanup_free_ char *cmd =
        pool_name
            ? fmt("virsh -q -c qemu:///system net-destroy stratus-" NS "-lan >/dev/null 2>&1; "
                  "virsh -q -c qemu:///system net-undefine stratus-" NS "-lan >/dev/null 2>&1; "
                  "virsh -q -c qemu:///system pool-destroy %s >/dev/null 2>&1; "
                  "virsh -q -c qemu:///system pool-undefine %s >/dev/null 2>&1",
                  pool_name, pool_name)
            : NULL;
    if (cmd && system(cmd) < 0)
        fprintf(stderr, "cleanup: virsh failed\n");
    libvirtd_fixture_down();
    if (state_dir && !getenv("STRATUS_TEST_KEEP"))
        fs_rm_rf(state_dir);
}

static void prerequisites(const char *guest)
{
    static const char *const programs[] = {"/usr/sbin/libvirtd", "/usr/bin/qemu-system-x86_64",
                                           "/usr/sbin/iptables", NULL};
    if (geteuid() != 0)
        check_skip("needs root (libvirtd, qemu)");
    const char *missing = libvirtd_fixture_missing(programs);
    if (missing)
        check_skip("%s is not installed (make deps)", missing);
    const char *src = getenv("STRATUS_SOURCE_DIR") ? getenv("STRATUS_SOURCE_DIR") : ".";
    _cleanup_free_ char *kernel = fmt("%s/vmlinuz", guest);
    if (access(kernel, F_OK) < 0) {
        _cleanup_free_ char *cmd = fmt("%s/tools/build-guest-image.sh %s >/dev/null", src, guest);
        if (system(cmd) != 0)
            check_skip("tools/build-guest-image.sh failed (apt-get download needs package lists)");
    }
    if (libvirtd_fixture_host_setup(src) < 0)
        check_skip("tools/libvirt-host-setup.sh failed");
    /* Before the teardown is registered: the fixture's atexit handler, which stops the daemons
     * it started, then runs after the teardown, which still needs libvirtd. */
    if (libvirtd_fixture_up() < 0)
        check_skip("virtlogd or libvirtd did not start");
    if (!libvirtd_fixture_wait_answer(LIBVIRTD_FIXTURE_URI, 10 * USEC_PER_SEC))
        check_skip("libvirtd does not answer on " LIBVIRTD_FIXTURE_URI);
    libvirtd_fixture_sweep_pools(LIBVIRTD_FIXTURE_URI);
    /* Registered after the apiserver fixture's own handler, so it runs before it: the agent
     * goes while its apiserver client still exists. */
    fx = apiserver_fixture_start(NULL);
    atexit(teardown);
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

static json_t *get_inst(int *ret_err)
{
    json_t *o = NULL;
    rpc_status st;
    *ret_err = fx_get(fx, "Instance", NS, "vm", &o, &st);
    return o;
}

static void real_guest_boots(void)
{
    const char *build = getenv("STRATUS_BUILD_DIR") ? getenv("STRATUS_BUILD_DIR") : ".";
    _cleanup_free_ char *guest = fmt("%s/guest", build);
    prerequisites(guest);
    char t[] = "/tmp/stratus-agent-qemu-XXXXXX";
    if (!mkdtemp(t))
        abort();
    state_dir = xstrdup(t);
    pool_name = fmt("stratus-qemu-%d", (int)getpid());
    chmod(state_dir, 0755); /* qemu runs as libvirt-qemu and must reach the disks and kernel */

    char ksha[65], isha[65];
    _cleanup_free_ char *kernel = fmt("%s/vmlinuz", guest);
    _cleanup_free_ char *initrd = fmt("%s/initrd.img", guest);
    CHECK_OK(image_file_sha256(kernel, ksha));
    CHECK_OK(image_file_sha256(initrd, isha));
    _cleanup_free_ char *image =
        fmt("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Image\",\"metadata\":{\"name\":\"busybox\"},"
            "\"spec\":{\"kernel\":{\"url\":\"file://%s\",\"sha256\":\"%s\"},\"initrd\":{\"url\":"
            "\"file://%s\",\"sha256\":\"%s\"},\"cmdline\":\"console=ttyS0 quiet\"}}",
            kernel, ksha, initrd, isha);
    apply_ok(image);
    apply_ok("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":\"tiny\"},"
             "\"spec\":{\"vcpus\":1,\"memoryMiB\":256,\"rootDiskGiB\":1}}");
    apply_ok("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Network\",\"metadata\":{\"name\":\"lan\","
             "\"namespace\":\"" NS "\"},\"spec\":{\"cidr\":\"10.98.7.0/24\"}}");
    json_t *inst = NULL;
    rpc_status st;
    CHECK_OK(fx_apply(fx,
                      "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":"
                      "\"vm\",\"namespace\":\"" NS "\"},\"spec\":{\"flavor\":\"tiny\",\"image\":"
                      "\"busybox\",\"networks\":[{\"network\":\"lan\"}]}}",
                      NULL, &inst, &st));
    _cleanup_free_ char *uid = xstrdup(api_object_uid(inst));
    json_t *addr = json_array_get(api_json_lookup(inst, "status.addresses"), 0);
    _cleanup_free_ char *ip = xstrdup(json_string_value(json_object_get(addr, "ip")));
    _cleanup_free_ char *mac = xstrdup(json_string_value(json_object_get(addr, "mac")));
    json_decref(inst);

    agent_options o = {
        .client = fx->client,
        .node_name = NODE,
        .uri = "qemu:///system",
        .state_dir = state_dir,
        .pool_name = pool_name,
        .vcpus = 2,
        .memory_mib = 2048,
        .disk_gib = 20,
        .workers = 2,
        .shutdown_timeout = 5 * USEC_PER_SEC,
        .start_timeout = 30 * USEC_PER_SEC,
        .log = on_log,
    };
    if (agent_new(&o, &ag) < 0)
        check_fail(__FILE__, __LINE__, "agent_new: %s", backend_last_error());

    Stratus__V1__Binding b = STRATUS__V1__BINDING__INIT, *pb = &b;
    b.namespace_ = NS;
    b.name = "vm";
    b.uid = uid;
    b.node = NODE;
    Stratus__V1__BindRequest req = STRATUS__V1__BIND_REQUEST__INIT;
    req.n_bindings = 1;
    req.bindings = &pb;
    Stratus__V1__BindResponse *rep = NULL;
    CHECK_OK(rpc_client_bind(fx->client, &req, 10 * USEC_PER_SEC, &rep, &st));
    CHECK(rep->n_results == 1 && rep->results[0]->ok);
    rpc_message_free(rep);

    usec_t deadline = now_monotonic() + TIMEOUT;
    bool running = false;
    json_t *o2 = NULL;
    int err = 0;
    while (now_monotonic() < deadline) {
        json_decref(o2);
        o2 = get_inst(&err);
        const char *phase = json_string_value(api_json_lookup(o2, "status.phase"));
        running = phase && streq(phase, "Running");
        if (running || (phase && streq(phase, "Failed")))
            break;
        usleep(200000);
    }
    _cleanup_free_ char *dump = json_dumps(json_object_get(o2, "status"), JSON_COMPACT);
    json_decref(o2);
    if (!running)
        check_fail(__FILE__, __LINE__, "instance not running: %s", dump ? dump : "-");

    /* The guest's own report, from the serial console log the agent set up. */
    _cleanup_free_ char *log = fmt("%s/nodes/" NODE "/instances/%s/console.log", state_dir, uid);
    _cleanup_free_ char *want = fmt("STRATUS-GUEST-OK hostname=vm ip=%s mac=%s disk=vda", ip, mac);
    _cleanup_free_ char *text = NULL;
    deadline = now_monotonic() + TIMEOUT;
    while (now_monotonic() < deadline) {
        free(text);
        text = NULL;
        if (fs_read_tail(log, 65536, &text) == 0 && strstr(text, "STRATUS-GUEST-OK"))
            break;
        usleep(200000);
    }
    if (!text || !strstr(text, want))
        check_fail(__FILE__, __LINE__, "console log %s has no \"%s\":\n%s", log, want,
                   text ? text : "(none)");

    json_t *gone = NULL;
    CHECK_OK(fx_delete(fx, "Instance", NS, "vm", &gone, &st));
    json_decref(gone);
    deadline = now_monotonic() + TIMEOUT;
    while (now_monotonic() < deadline) {
        json_t *x = get_inst(&err);
        json_decref(x);
        if (err == -ENOENT)
            break;
        usleep(200000);
    }
    CHECK_INT(err, ==, -ENOENT);
    _cleanup_free_ char *dom = fmt(NS ".vm.%s", uid);
    backend_domain_state ds;
    char uuid[BACKEND_UUID_MAX];
    CHECK_INT(backend_domain_state_get(agent_node_backend(ag, 0), dom, &ds, uuid), ==, -ENOENT);
    char **disks = NULL;
    size_t n = 0, mine = 0;
    CHECK_OK(backend_disk_list(agent_node_backend(ag, 0), &disks, &n));
    for (size_t i = 0; i < n; i++)
        mine += strstr(disks[i], uid) != NULL;
    backend_names_free(disks, n);
    CHECK_INT(mine, ==, 0);
    teardown();
}

CHECK_MAIN(CASE(real_guest_boots))
