/* Real guest: how long from `Apply` to the guest's own marker on its serial console, through the
 * whole real system (etcd, stratus-apiserver, stratus-scheduler, stratus-node-agent on libvirt
 * qemu:///system, TCG), next to the same guest started bare — virDomainCreateXML, the call
 * `virsh create` makes, on an open connection — from an equivalent domain in the same run. The
 * difference is what Stratus adds (goal, issue 8: ≤ 50 ms).
 *
 * The guest is tools/build-guest-image.sh's kernel + busybox initramfs (tests/integration/
 * test-agent-qemu.c boots the same): it configures eth0 from ip= and prints STRATUS-GUEST-OK.
 * The bare domain is the XML the agent defined for the first instance, with its own name, MAC,
 * address, blank 1 GiB qcow2 root disk and console log; same kernel and initrd files, same
 * network, same devices. Round 0 is Stratus on a cold node (image download into the cache,
 * libvirt network and pool created) and is printed apart; then rounds alternate bare/Stratus
 * (order swapped every round), one guest at a time, each destroyed before the next.
 *
 * Runs only as root with libvirtd, qemu and iptables; otherwise prints
 * `real-guest: skipped (reason)` and exits 0 (a benchmark, not a test: no exit 77 for CTest). It
 * starts virtlogd/libvirtd when they are not running and stops only those (tests/lib/
 * libvirtd-fixture.h). It creates, and removes however it ends, only: its domains (named here),
 * the network stratus-<its namespace>-lan, and its agent's storage pool stratus-bench-<pid>
 * (--pool); it touches nothing else in libvirt.
 *
 * Host note: on these machines libvirt-qemu cannot open /dev/kvm, so libvirt probes qemu again
 * on every define/create/start (its capabilities cache never holds): seconds per call, minutes
 * on a busy machine, for both paths. The benchmark detects it, says so and runs one round;
 * --grant-kvm-access gives group libvirt-qemu rw on /dev/kvm for the run (put back at the end,
 * however it ends, unless SIGKILLed) so the figures measure Stratus, not the probe.
 *
 * The Network has DHCP on (the API's default): the agent then adds a static DHCP host entry per
 * NIC to the libvirt network before the domain starts. --no-dhcp measures without it (the guest
 * takes its address from ip= either way).
 *
 *   realguest-bench [--rounds N] [--guest DIR] [--grant-kvm-access] [--no-dhcp]
 *   (default 5 rounds; DIR: <build>/guest, built with tools/build-guest-image.sh if missing) */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/object.h"
#include "base/alloc.h"
#include "cluster.h"
#include "libvirtd-fixture.h"

#define MARKER "STRATUS-GUEST-OK"

static usec_t boot_timeout = 180 * USEC_PER_SEC;
static bool reprobing; /* libvirt probes qemu on every call here (see caps_lookup_time) */

static bench_cluster *cl;
static virConnectPtr conn;
static char ns[32], node[48], netname[64], poolname[64], cidr_prefix[16];
static char *domains[64]; /* every domain this run created, by name */
static int n_domains;
static bool kvm_changed; /* /dev/kvm's group and mode, to put back */
static struct stat kvm_was;

/* ---- skipping and cleaning up */

static _noreturn_ void skip(const char *why)
{
    printf("real-guest: skipped (%s)\n", why);
    fflush(stdout);
    exit(0);
}

static void quiet_error(void *ud, virErrorPtr e) {}

static void sh(const char *fmt, ...) _printf_(1, 2);
static void sh(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *cmd = xvasprintf(fmt, ap);
    va_end(ap);
    (void)!system(cmd);
}

/* libvirt's per-domain log of a domain this run made. */
static void remove_qemu_log(const char *domain)
{
    _cleanup_free_ char *path = xasprintf("/var/log/libvirt/qemu/%s.log", domain);
    unlink(path);
}

/* Destroys and undefines a domain this run made, through virsh (works with whichever libvirtd
 * answers, even when our own connection died with the daemon it used). */
static void destroy_domain(const char *name)
{
    sh("virsh -q -c qemu:///system destroy '%s' >/dev/null 2>&1; "
       "virsh -q -c qemu:///system undefine '%s' >/dev/null 2>&1",
       name, name);
}

/* Set when our libvirt connection died mid-run: the daemon was stopped under us. */
static bool libvirt_lost(void)
{
    return conn && virConnectIsAlive(conn) != 1;
}

/* What this run made in libvirt, and the daemons it started. Registered with atexit before the
 * cluster starts, so at exit it runs after the cluster's own handlers have killed the agent and
 * the rest (the agent cannot start a domain again meanwhile); on the normal path main stops the
 * cluster first and calls it. Never touches the cluster, nor anything in libvirt this run did
 * not make. If libvirtd went away meanwhile (another run that had started it stopped it), the
 * definitions this run made are still on disk: a libvirtd is started just to remove them. */
static void teardown(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    if (conn) {
        virConnectClose(conn);
        conn = NULL;
    }
    pid_t cleanup_daemon = 0;
    if ((n_domains || netname[0] || poolname[0]) &&
        !libvirtd_fixture_answers(LIBVIRTD_FIXTURE_URI)) {
        /* Not the fixture's: started here only to remove definitions, and stopped right after. */
        const char *pidfile = "/run/stratus-realguest-cleanup-libvirtd.pid";
        sh("libvirtd -d -p %s", pidfile);
        libvirtd_fixture_wait_answer(LIBVIRTD_FIXTURE_URI, 10 * USEC_PER_SEC);
        cleanup_daemon = libvirtd_fixture_daemon_pid(pidfile, "libvirtd");
    }
    for (int i = 0; i < n_domains; i++) {
        destroy_domain(domains[i]);
        remove_qemu_log(domains[i]);
    }
    if (netname[0])
        sh("virsh -q -c qemu:///system net-destroy %s >/dev/null 2>&1; "
           "virsh -q -c qemu:///system net-undefine %s >/dev/null 2>&1",
           netname, netname);
    if (poolname[0])
        sh("virsh -q -c qemu:///system pool-destroy %s >/dev/null 2>&1; "
           "virsh -q -c qemu:///system pool-undefine %s >/dev/null 2>&1",
           poolname, poolname);
    libvirtd_fixture_stop_pid(cleanup_daemon, "libvirtd");
    libvirtd_fixture_down();
    if (kvm_changed && (chown("/dev/kvm", kvm_was.st_uid, kvm_was.st_gid) < 0 ||
                        chmod("/dev/kvm", kvm_was.st_mode & 07777) < 0))
        fprintf(stderr, "realguest-bench: could not put /dev/kvm's owner and mode back: %s\n",
                strerror(errno));
}

/* The normal end: our domains, the cluster, then the rest of libvirt's side. */
static void finish(void)
{
    for (int i = 0; i < n_domains; i++)
        destroy_domain(domains[i]);
    bench_cluster_stop(cl);
    cl = NULL;
    teardown();
}

static void prerequisites(const char *guest)
{
    static const char *const programs[] = {"/usr/sbin/libvirtd", "/usr/bin/qemu-system-x86_64",
                                           "/usr/sbin/iptables", NULL};
    if (geteuid() != 0)
        skip("needs root for libvirtd and qemu");
    const char *missing = libvirtd_fixture_missing(programs);
    if (missing) {
        _cleanup_free_ char *why = xasprintf("%s is not installed (make deps)", missing);
        skip(why);
    }
    _cleanup_free_ char *kernel = xasprintf("%s/vmlinuz", guest);
    if (access(kernel, R_OK) < 0) {
        _cleanup_free_ char *cmd =
            xasprintf("%s/tools/build-guest-image.sh '%s' >/dev/null", STRATUS_SOURCE_DIR, guest);
        if (system(cmd) != 0)
            skip("tools/build-guest-image.sh failed (apt-get download needs package lists)");
    }
    if (libvirtd_fixture_host_setup(STRATUS_SOURCE_DIR) < 0)
        skip("tools/libvirt-host-setup.sh failed");
    /* The fixture's atexit handler (registered by its first call) stops the daemons it started
     * after teardown, registered next, has removed what this run made. */
    if (libvirtd_fixture_up() < 0)
        skip("virtlogd or libvirtd did not start");
    atexit(teardown);
    virSetErrorFunc(NULL, quiet_error);
    if (libvirtd_fixture_wait_answer(LIBVIRTD_FIXTURE_URI, 10 * USEC_PER_SEC))
        conn = virConnectOpen(LIBVIRTD_FIXTURE_URI);
    if (!conn)
        skip("libvirtd does not answer on qemu:///system");
}

/* ---- the host's libvirt: does it probe qemu again on every call? */

/* libvirt keeps qemu's capabilities in a cache, valid only while KVM is as usable for the qemu
 * user (libvirt-qemu) as it was when probed. Here the probe sees /dev/kvm but libvirt-qemu may
 * not open it (root-only), so every define/create/start probes qemu again (seconds each, far
 * more when the machine is busy), for Stratus and the bare reference alike. Returns the
 * duration of a capabilities lookup after a first one. */
static usec_t caps_lookup_time(void)
{
    char *x = virConnectGetDomainCapabilities(conn, NULL, NULL, NULL, "qemu", 0);
    free(x);
    usec_t t0 = now_monotonic();
    x = virConnectGetDomainCapabilities(conn, NULL, NULL, NULL, "qemu", 0);
    free(x);
    return now_monotonic() - t0;
}

/* Opt-in (--grant-kvm-access): /dev/kvm group libvirt-qemu, mode 0660, for this run only, so the
 * cache holds; guests stay TCG (<domain type='qemu'>). Put back by teardown(). */
static void grant_kvm_access(void)
{
    struct group *g = getgrnam("libvirt-qemu");
    if (!g || stat("/dev/kvm", &kvm_was) < 0) {
        printf("realguest_note: no /dev/kvm or no libvirt-qemu group: --grant-kvm-access "
               "ignored\n");
        return;
    }
    kvm_changed = true;
    if (chown("/dev/kvm", (uid_t)-1, g->gr_gid) < 0 || chmod("/dev/kvm", 0660) < 0)
        printf("realguest_note: could not change /dev/kvm: %s\n", strerror(errno));
}

/* ---- helpers */

static char *file_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap + 1);
    n = fread(buf, 1, cap, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static bool has_marker(const char *path)
{
    _cleanup_free_ char *t = file_text(path);
    return t && strstr(t, MARKER);
}

static char *sha256_of(const char *path)
{
    _cleanup_free_ char *cmd = xasprintf("sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    char sum[65] = "";
    if (!p || fscanf(p, "%64s", sum) != 1) {
        fprintf(stderr, "realguest-bench: sha256sum %s failed\n", path);
        exit(1);
    }
    pclose(p);
    return xstrdup(sum);
}

/* Replaces the first occurrence of `from` in *s by `to`; returns whether there was one. */
static bool replace(char **s, const char *from, const char *to)
{
    char *at = strstr(*s, from);
    if (!at)
        return false;
    char *out = xasprintf("%.*s%s%s", (int)(at - *s), *s, to, at + strlen(from));
    free(*s);
    *s = out;
    return true;
}

/* Removes from the first `open` to the end of the following `close`. */
static void cut(char **s, const char *open, const char *close)
{
    char *a = strstr(*s, open);
    char *b = a ? strstr(a, close) : NULL;
    if (!a || !b)
        return;
    memmove(a, b + strlen(close), strlen(b + strlen(close)) + 1);
}

/* The value of attribute `attr='…'` on the first line that contains `needle`. */
static char *attr_near(const char *xml, const char *needle, const char *attr)
{
    const char *n = strstr(xml, needle);
    if (!n)
        return NULL;
    const char *line = n;
    while (line > xml && line[-1] != '\n')
        line--;
    _cleanup_free_ char *key = xasprintf("%s='", attr);
    const char *a = strstr(line, key);
    if (!a)
        return NULL;
    a += strlen(key);
    const char *end = strchr(a, '\'');
    return end ? xstrndup(a, (size_t)(end - a)) : NULL;
}

/* ---- one guest through Stratus */

/* One boot, every time relative to its start: the Apply sent (Stratus) or the
 * virDomainCreateXML call (bare). */
typedef struct boot {
    usec_t started;  /* the Apply's reply / virDomainCreateXML returned */
    usec_t running;  /* Stratus: a Get (every 20 ms) showed phase Running */
    usec_t qemu;     /* libvirt started qemu (the "starting up" line of its log; ms) */
    usec_t marker;   /* the marker appeared in the console log (read every 2 ms) */
    char steps[256]; /* Stratus: when each build step started, from status.timeline */
    bool ok;
} boot;

/* "reconcile +12, Claim done +13, BlockDevices done +30, ..." from the Running object's
 * timeline, in ms after t0_rt (the Apply sent): the first step's start (the reconcile's), then
 * each step's end — and its start too when it began before the step listed before it ended
 * (the DHCP entries, made beside the domain's start: "DHCP +40..+300"). */
static void timeline_text(const json_t *o, usec_t t0_rt, char *out, size_t size)
{
    size_t i, used = 0;
    json_t *e;
    usec_t prev_end = 0;
    out[0] = '\0';
    json_array_foreach (api_json_lookup(o, "status.timeline"), i, e) {
        const char *step = json_string_value(json_object_get(e, "step"));
        const char *a = json_string_value(json_object_get(e, "startTime"));
        const char *z = json_string_value(json_object_get(e, "endTime"));
        usec_t ta, tz;
        if (!step || !a || !z || timestamp_parse(a, &ta) < 0 || timestamp_parse(z, &tz) < 0)
            continue;
        long long ms_a = ((long long)ta - (long long)t0_rt) / 1000;
        long long ms_z = ((long long)tz - (long long)t0_rt) / 1000;
        int n;
        if (!used)
            n = snprintf(out, size, "reconcile +%lld, %s done +%lld", ms_a, step, ms_z);
        else if (ta < prev_end)
            n = snprintf(out + used, size - used, ", %s +%lld..+%lld", step, ms_a, ms_z);
        else
            n = snprintf(out + used, size - used, ", %s done +%lld", step, ms_z);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
        prev_end = tz;
    }
}

/* When libvirt last started qemu for this domain: the "starting up" line of
 * /var/log/libvirt/qemu/<name>.log (millisecond timestamps, UTC), as realtime usec; 0 if none. */
static usec_t qemu_started(const char *domain)
{
    _cleanup_free_ char *path = xasprintf("/var/log/libvirt/qemu/%s.log", domain);
    FILE *f = fopen(path, "r");
    char line[512];
    usec_t t = 0;
    while (f && fgets(line, sizeof(line), f)) {
        struct tm tm = {0};
        int ms;
        if (!strstr(line, ": starting up") ||
            sscanf(line, "%d-%d-%d %d:%d:%d.%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec, &ms) != 7)
            continue;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        t = (usec_t)timegm(&tm) * USEC_PER_SEC + (usec_t)ms * USEC_PER_MSEC;
    }
    if (f)
        fclose(f);
    return t;
}

static json_t *get_instance(const char *name, int *ret_err)
{
    Stratus__V1__GetRequest req = STRATUS__V1__GET_REQUEST__INIT;
    req.kind = "Instance";
    req.namespace_ = ns;
    req.name = (char *)name;
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status st;
    *ret_err = rpc_client_get(cl->client, &req, 10 * USEC_PER_SEC, &rep, &st);
    if (*ret_err < 0)
        return NULL;
    json_t *o = json_loads(rep->object_json, 0, NULL);
    rpc_message_free(rep);
    return o;
}

static usec_t since(usec_t t, usec_t t0)
{
    return t > t0 ? t - t0 : 0;
}

/* Applies instance `name`, waits for the marker; fills *ret_ip, *ret_mac (optional) and
 * returns the boot. The domain's name goes into domains[]. */
static boot stratus_boot(const char *name, char **ret_ip, char **ret_mac)
{
    boot b = {0};
    _cleanup_free_ char *doc =
        xasprintf("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":"
                  "\"%s\",\"namespace\":\"%s\"},\"spec\":{\"flavor\":\"guest-tiny\",\"image\":"
                  "\"guest\",\"networks\":[{\"network\":\"lan\"}]}}",
                  name, ns);
    json_t *obj = NULL;
    rpc_status st;
    usec_t t0 = now_monotonic(), t0_rt = now_realtime();
    if (bench_apply(cl->client, doc, 30 * USEC_PER_SEC, &obj, &st) < 0) {
        fprintf(stderr, "realguest-bench: apply %s: %s\n", name, st.message);
        exit(1);
    }
    b.started = now_monotonic() - t0;
    _cleanup_free_ char *uid = xstrdup(api_object_uid(obj));
    json_t *addr = json_array_get(api_json_lookup(obj, "status.addresses"), 0);
    if (ret_ip)
        *ret_ip = xstrdup(json_string_value(json_object_get(addr, "ip")));
    if (ret_mac)
        *ret_mac = xstrdup(json_string_value(json_object_get(addr, "mac")));
    json_decref(obj);
    const char *domain = domains[n_domains++] = xasprintf("%s.%s.%s", ns, name, uid);
    _cleanup_free_ char *log =
        xasprintf("%s/agent/nodes/%s/instances/%s/console.log", cl->dir, node, uid);
    usec_t next_get = 0;
    while (now_monotonic() - t0 < boot_timeout) {
        usec_t now = now_monotonic();
        if (!b.running && now >= next_get) {
            int err;
            json_t *o = get_instance(name, &err);
            const char *phase = json_string_value(api_json_lookup(o, "status.phase"));
            if (phase && streq(phase, "Running")) {
                b.running = now_monotonic() - t0;
                timeline_text(o, t0_rt, b.steps, sizeof(b.steps));
            }
            if (phase && streq(phase, "Failed")) {
                _cleanup_free_ char *s = json_dumps(json_object_get(o, "status"), JSON_COMPACT);
                fprintf(stderr, "realguest-bench: %s Failed: %s\n", name, s);
                json_decref(o);
                break;
            }
            json_decref(o);
            next_get = now + 20 * USEC_PER_MSEC;
        }
        if (has_marker(log)) {
            b.marker = now_monotonic() - t0;
            b.ok = true;
            break;
        }
        if (libvirt_lost())
            break;
        usleep(2000);
    }
    b.qemu = since(qemu_started(domain), t0_rt);
    return b;
}

static void stratus_delete(const char *name)
{
    rpc_status st;
    if (bench_delete(cl->client, "Instance", ns, name, 30 * USEC_PER_SEC, &st) < 0)
        fprintf(stderr, "realguest-bench: delete %s: %s\n", name, st.message);
    usec_t t0 = now_monotonic();
    int err = 0;
    while (now_monotonic() - t0 < 60 * USEC_PER_SEC) {
        json_t *o = get_instance(name, &err);
        json_decref(o);
        if (err == -ENOENT)
            return;
        usleep(100000);
    }
    fprintf(stderr, "realguest-bench: %s was not gone within 60 s\n", name);
}

/* ---- the same guest, bare */

static boot bare_boot(const char *xml_template, int round)
{
    boot b = {0};
    _cleanup_free_ char *name = xasprintf("stratus-bench-bare-%d-%d", (int)getpid(), round);
    _cleanup_free_ char *disk = xasprintf("%s/bare-%d.qcow2", cl->dir, round);
    _cleanup_free_ char *log = xasprintf("%s/bare-%d.console.log", cl->dir, round);
    sh("qemu-img create -q -f qcow2 '%s' 1G && chmod 644 '%s'", disk, disk);
    _cleanup_free_ char *xml = xstrdup(xml_template);
    replace(&xml, "@NAME@", name);
    replace(&xml, "@DISK@", disk);
    replace(&xml, "@LOG@", log);
    domains[n_domains++] = xstrdup(name);
    usec_t t0 = now_monotonic(), t0_rt = now_realtime();
    virDomainPtr d = virDomainCreateXML(conn, xml, 0);
    if (!d) {
        virErrorPtr e = virGetLastError();
        fprintf(stderr, "realguest-bench: virDomainCreateXML: %s\n", e ? e->message : "?");
        return b;
    }
    b.started = b.running = now_monotonic() - t0;
    while (now_monotonic() - t0 < boot_timeout) {
        if (has_marker(log)) {
            b.marker = now_monotonic() - t0;
            b.ok = true;
            break;
        }
        if (libvirt_lost())
            break;
        usleep(2000);
    }
    b.qemu = since(qemu_started(name), t0_rt);
    virDomainDestroy(d);
    virDomainFree(d);
    return b;
}

/* The bare template from the agent's definition of a Stratus domain: same devices, kernel,
 * initrd, network; its own name, MAC, address, disk and log (placeholders), no uuid/metadata. */
static char *bare_template(const char *domain, const char *ip, const char *mac)
{
    virDomainPtr d = virDomainLookupByName(conn, domain);
    if (!d)
        return NULL;
    char *xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
    virDomainFree(d);
    if (!xml)
        return NULL;
    _cleanup_free_ char *root = attr_near(xml, "-root.qcow2", "file");
    _cleanup_free_ char *log = attr_near(xml, "console.log", "file");
    _cleanup_free_ char *name = xasprintf("<name>%s</name>", domain);
    _cleanup_free_ char *from_ip = xasprintf("ip=%s:", ip);
    _cleanup_free_ char *to_ip = xasprintf("ip=%s.200:", cidr_prefix);
    _cleanup_free_ char *from_mac = xasprintf("'%s'", mac);
    if (!root || !log || !replace(&xml, name, "<name>@NAME@</name>") ||
        !replace(&xml, root, "@DISK@") || !replace(&xml, log, "@LOG@") ||
        !replace(&xml, from_ip, to_ip) || !replace(&xml, from_mac, "'52:54:00:97:c8:c8'")) {
        fprintf(stderr, "realguest-bench: the agent's domain XML is not as expected:\n%s\n", xml);
        free(xml);
        return NULL;
    }
    cut(&xml, "<uuid>", "</uuid>");
    cut(&xml, "<metadata>", "</metadata>");
    return xml;
}

/* ---- main */

static usec_t median(usec_t *v, int n)
{
    qsort(v, (size_t)n, sizeof(usec_t), bench_cmp_usec);
    return n ? v[(n - 1) / 2] : 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"rounds", required_argument, 0, 'r'},
        {"guest", required_argument, 0, 'g'},
        {"grant-kvm-access", no_argument, 0, 'k'},
        {"no-dhcp", no_argument, 0, 'd'},
        {0},
    };
    int rounds = 5, c;
    bool grant = false, dhcp = true;
    const char *guest_arg = NULL;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'r')
            rounds = (int)bench_parse_count("--rounds", optarg, 1, 20);
        else if (c == 'g')
            guest_arg = optarg;
        else if (c == 'k')
            grant = true;
        else if (c == 'd')
            dhcp = false;
        else {
            fprintf(stderr, "usage: realguest-bench [--rounds N] [--guest DIR] "
                            "[--grant-kvm-access] [--no-dhcp]\n");
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    char self[1024];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[len > 0 ? len : 0] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    _cleanup_free_ char *guest = guest_arg ? xstrdup(guest_arg)
                                 : getenv("STRATUS_GUEST_DIR")
                                     ? xstrdup(getenv("STRATUS_GUEST_DIR"))
                                     : xasprintf("%s/../guest", self);
    prerequisites(guest);
    if (grant)
        grant_kvm_access();
    usec_t lookup = caps_lookup_time();
    if (lookup > USEC_PER_SEC) {
        printf("realguest_note: this host's libvirt probes qemu again on every call (%.1f s "
               "for a capabilities lookup): libvirt-qemu cannot open /dev/kvm, which the probe "
               "saw; every define/create/start pays a probe, Stratus and bare alike. "
               "--grant-kvm-access fixes that for the run; now 1 round, 10 min timeouts\n",
               (double)lookup / 1e6);
        rounds = 1;
        reprobing = true;
        boot_timeout = 600 * USEC_PER_SEC;
    } else
        printf("realguest_caps_lookup: %.1f ms (libvirt's qemu capabilities cache holds)\n",
               bench_ms(lookup));

    int id = (int)getpid();
    snprintf(ns, sizeof(ns), "rg%d", id);
    snprintf(node, sizeof(node), "bench-real-%d", id);
    snprintf(netname, sizeof(netname), "stratus-%s-lan", ns);
    snprintf(poolname, sizeof(poolname), "stratus-bench-%d", id);
    snprintf(cidr_prefix, sizeof(cidr_prefix), "10.97.%d", 20 + id % 200);
    printf("# real guest (network DHCP %s): apply -> serial marker through Stratus "
           "(qemu:///system, TCG) vs "
           "virDomainCreateXML of the same domain; %d rounds; load %.2f\n",
           dhcp ? "on" : "off", rounds, bench_loadavg());

    cl = bench_cluster_start(NULL);
    bench_cluster_start_scheduler(cl, NULL);
    const char *flags[] = {"--node-name",
                           node,
                           "--backend",
                           "qemu:///system",
                           "--vcpus",
                           "2",
                           "--memory-mib",
                           "2048",
                           "--disk-gib",
                           "20",
                           "--shutdown-timeout",
                           "2s",
                           "--orphan-grace",
                           "600s",
                           "--pool",
                           poolname,
                           NULL};
    bench_cluster_start_agent(cl, flags, 1);

    _cleanup_free_ char *kernel = xasprintf("%s/vmlinuz", guest);
    _cleanup_free_ char *initrd = xasprintf("%s/initrd.img", guest);
    _cleanup_free_ char *ksha = sha256_of(kernel), *isha = sha256_of(initrd);
    _cleanup_free_ char *image = xasprintf(
        "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Image\",\"metadata\":{\"name\":\"guest\"},"
        "\"spec\":{\"kernel\":{\"url\":\"file://%s\",\"sha256\":\"%s\"},\"initrd\":{\"url\":"
        "\"file://%s\",\"sha256\":\"%s\"},\"cmdline\":\"console=ttyS0 quiet\"}}",
        kernel, ksha, initrd, isha);
    _cleanup_free_ char *net = xasprintf(
        "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Network\",\"metadata\":{\"name\":\"lan\","
        "\"namespace\":\"%s\"},\"spec\":{\"cidr\":\"%s.0/24\",\"dhcp\":%s}}",
        ns, cidr_prefix, dhcp ? "true" : "false");
    rpc_status st;
    if (bench_apply(cl->client, image, 10 * USEC_PER_SEC, NULL, &st) < 0 ||
        bench_apply(cl->client, net, 10 * USEC_PER_SEC, NULL, &st) < 0 ||
        bench_apply(cl->client,
                    "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":"
                    "\"guest-tiny\"},\"spec\":{\"vcpus\":1,\"memoryMiB\":256,\"rootDiskGiB\":1}}",
                    10 * USEC_PER_SEC, NULL, &st) < 0) {
        fprintf(stderr, "realguest-bench: setup: %s\n", st.message);
        return 1;
    }

    /* round 0: a cold node */
    char *ip = NULL, *mac = NULL;
    boot cold = stratus_boot("vm-0", &ip, &mac);
    if (!cold.ok) {
        fprintf(stderr, "realguest-bench: the first guest did not print its marker\n");
        bench_proc_log_tail(cl->agent, 30);
        finish();
        return 1;
    }
    printf(
        "realguest_stratus_cold: apply to qemu started %.0f ms, to Running %.0f ms, to "
        "marker %.0f ms (image cache filled, network and pool created); ms after the apply: %s\n",
        bench_ms(cold.qemu), bench_ms(cold.running), bench_ms(cold.marker), cold.steps);
    _cleanup_free_ char *tmpl = bare_template(domains[0], ip, mac);
    free(ip);
    free(mac);
    stratus_delete("vm-0");
    if (!tmpl) {
        finish();
        return 1;
    }

    usec_t *sq = xnew(usec_t, (size_t)rounds), *sm = xnew(usec_t, (size_t)rounds);
    usec_t *sr = xnew(usec_t, (size_t)rounds), *bq = xnew(usec_t, (size_t)rounds);
    usec_t *bm = xnew(usec_t, (size_t)rounds), *bc = xnew(usec_t, (size_t)rounds);
    int n_s = 0, n_b = 0;
    for (int r = 1; r <= rounds; r++) {
        for (int k = 0; k < 2; k++) {
            if (libvirt_lost()) {
                printf("realguest: aborted (libvirtd went away during the run: another test that "
                       "had started it stopped it); no figures\n");
                finish();
                return 1;
            }
            if ((k == 0) == (r % 2 == 1)) {
                boot b = bare_boot(tmpl, r);
                if (!b.ok) {
                    printf("realguest_round_%d_bare: no marker\n", r);
                    continue;
                }
                printf("realguest_round_%d_bare: create to qemu started %.0f ms, create returned "
                       "%.0f ms, marker %.0f ms\n",
                       r, bench_ms(b.qemu), bench_ms(b.started), bench_ms(b.marker));
                bq[n_b] = b.qemu;
                bc[n_b] = b.started;
                bm[n_b++] = b.marker;
            } else {
                char name[16];
                snprintf(name, sizeof(name), "vm-%d", r);
                boot b = stratus_boot(name, NULL, NULL);
                if (b.ok) {
                    printf("realguest_round_%d_stratus: apply to qemu started %.0f ms, Running "
                           "seen %.0f ms, marker %.0f ms; ms after the apply: %s\n",
                           r, bench_ms(b.qemu), bench_ms(b.running), bench_ms(b.marker), b.steps);
                    sq[n_s] = b.qemu;
                    sr[n_s] = b.running;
                    sm[n_s++] = b.marker;
                } else
                    printf("realguest_round_%d_stratus: no marker\n", r);
                if (!libvirt_lost())
                    stratus_delete(name);
            }
        }
    }
    if (n_s && n_b) {
        usec_t s_q = median(sq, n_s), b_q = median(bq, n_b);
        usec_t s_m = median(sm, n_s), b_m = median(bm, n_b);
        printf("realguest_stratus_apply_to_marker: %.0f ms (median of %d; qemu started at %.0f "
               "ms, Running seen at %.0f ms)\n",
               bench_ms(s_m), n_s, bench_ms(s_q), bench_ms(median(sr, n_s)));
        printf("realguest_bare_create_to_marker: %.0f ms (reference, median of %d; qemu "
               "started at %.0f ms, create returned at %.0f ms)\n",
               bench_ms(b_m), n_b, bench_ms(b_q), bench_ms(median(bc, n_b)));
        const char *why = reprobing ? "; meaningless on this host: libvirt's qemu probes "
                                      "dominate both, see realguest_note"
                                    : "";
        printf("realguest_overhead_to_qemu_start: %+.0f ms (goal <= 50 ms; the part Stratus "
               "adds before the guest runs%s)\n",
               ((double)s_q - (double)b_q) / 1000.0, why);
        printf("realguest_overhead_to_marker: %+.0f ms (end to end; the guest's own boot "
               "varies by several 100 ms under TCG%s)\n",
               ((double)s_m - (double)b_m) / 1000.0, why);
    }
    finish();
    return 0;
}
