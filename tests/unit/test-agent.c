/* Unit tests of pkg/agent without an apiserver or libvirt daemon: the plan (disks, NICs, names),
 * the domain XML against golden files (tests/unit/agent-data/; STRATUS_REGENERATE=1
 * rewrites them), the config drive documents, the image cache with file:// URLs, and the step
 * machine against the fake backend (test-agent-fake.c) — including a failure injected at every
 * backend call of a build, after which reconciling again must converge to exactly one running
 * domain with exactly the planned disks. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/configdrive.h"
#include "agent/files.h"
#include "agent/image.h"
#include "agent/plan.h"
#include "agent/status.h"
#include "agent/steps.h"
#include "api/object.h"
#include "base/alloc.h"
#include "check.h"
#include "test-agent-fake.h"

#define UID "0f8e2c3a-1b2c-4d5e-8f90-a1b2c3d4e5f6"

static char *tmpdir;
static char *image_path;
static char image_sha[65];

static char *fmt(const char *f, ...) _printf_(1, 2);
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = xvasprintf(f, ap);
    va_end(ap);
    return s;
}

static json_t *js(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) {
        fprintf(stderr, "bad test JSON: %s: %s\n", e.text, text);
        abort();
    }
    return j;
}

static void cleanup_tmp(void)
{
    if (tmpdir && !getenv("STRATUS_TEST_KEEP"))
        fs_rm_rf(tmpdir);
}

/* A tiny qcow2-looking image (header with a 1 GiB virtual size) in a fresh folder. */
static void setup(void)
{
    if (tmpdir)
        return;
    char t[] = "/tmp/stratus-agent-unit-XXXXXX";
    if (!mkdtemp(t))
        abort();
    tmpdir = xstrdup(t);
    atexit(cleanup_tmp);
    image_path = fmt("%s/base.qcow2", tmpdir);
    unsigned char h[512] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 3};
    h[24 + 4] = 0x40; /* 0x40000000 = 1 GiB, big-endian u64 at offset 24 */
    int fd = open(image_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, h, sizeof(h)) != (ssize_t)sizeof(h))
        abort();
    close(fd);
    if (image_file_sha256(image_path, image_sha) < 0)
        abort();
}

/* ---- fixtures ---- */

static json_t *flavor(int vcpus, int mem, int root, int eph, int swap)
{
    _cleanup_free_ char *t = fmt("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":"
                                 "{\"name\":\"m1\"},\"spec\":{\"vcpus\":%d,\"memoryMiB\":%d,"
                                 "\"rootDiskGiB\":%d,\"ephemeralGiB\":%d,\"swapMiB\":%d}}",
                                 vcpus, mem, root, eph, swap);
    return js(t);
}

static json_t *image(const char *sha, bool kernel)
{
    _cleanup_free_ char *t = fmt(
        "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Image\",\"metadata\":{\"name\":\"img\"},"
        "\"spec\":{\"source\":{\"url\":\"file://%s\",\"sha256\":\"%s\",\"format\":\"qcow2\"}%s}}",
        image_path, sha,
        kernel ? ",\"kernel\":{\"url\":\"file:///k/vmlinuz\",\"sha256\":\""
                 "1111111111111111111111111111111111111111111111111111111111111111\"},"
                 "\"initrd\":{\"url\":\"file:///k/initrd\",\"sha256\":"
                 "\"2222222222222222222222222222222222222222222222222222222222222222\"},"
                 "\"cmdline\":\"console=ttyS0 quiet\""
               : "");
    return js(t);
}

static json_t *network(const char *name, const char *cidr, const char *extra)
{
    _cleanup_free_ char *t = fmt("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Network\",\"metadata\":"
                                 "{\"name\":\"%s\",\"namespace\":\"default\"},\"spec\":{\"cidr\":"
                                 "\"%s\"%s}}",
                                 name, cidr, extra ? extra : "");
    return js(t);
}

static json_t *volume(const char *name, int size, const char *fmt_)
{
    _cleanup_free_ char *t =
        fmt("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Volume\",\"metadata\":"
            "{\"name\":\"%s\",\"namespace\":\"default\"},\"spec\":{\"sizeGiB\":"
            "%d,\"format\":\"%s\"}}",
            name, size, fmt_);
    return js(t);
}

/* A bound instance (as Bind leaves it) with spec extras and status extras. */
static json_t *instance(const char *spec_extra, const char *status_extra)
{
    _cleanup_free_ char *t = fmt(
        "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"web\","
        "\"namespace\":\"default\",\"uid\":\"" UID "\",\"generation\":2,\"resourceVersion\":\"10\","
        "\"finalizers\":[\"stratus.io/node-agent\"]},\"spec\":{\"flavor\":\"m1\",\"image\":\"img\","
        "\"nodeName\":\"n1\"%s},\"status\":{\"phase\":\"Scheduled\",\"nodeName\":\"n1\","
        "\"conditions\":[{\"type\":\"Scheduled\",\"status\":\"True\",\"reason\":\"Bound\"}],"
        "\"addresses\":[{\"network\":\"net1\",\"ip\":\"10.0.0.5\",\"mac\":\"52:54:00:00:00:05\"},"
        "{\"network\":\"net1\",\"ip\":\"10.0.0.6\",\"mac\":\"52:54:00:00:00:06\"},"
        "{\"network\":\"net2\",\"ip\":\"192.168.7.2\",\"mac\":\"52:54:00:a8:07:02\"}]%s}}",
        spec_extra ? spec_extra : "", status_extra ? status_extra : "");
    return js(t);
}

typedef struct world {
    json_t *inst, *flavor, *image, *nets[4], *vols[4];
    agent_refs refs;
} world;

static void world_clear(world *w)
{
    json_decref(w->inst);
    json_decref(w->flavor);
    json_decref(w->image);
    for (size_t i = 0; i < 4; i++) {
        json_decref(w->nets[i]);
        json_decref(w->vols[i]);
    }
}

static agent_settings settings(const char *type)
{
    return (agent_settings){
        .node_name = "n1",
        .domain_type = type,
        .arch = "x86_64",
        .machine = streq(type, "test") ? NULL : "q35",
        .pool_dir = "/var/lib/stratus/nodes/n1/disks",
        .image_dir = "/var/lib/stratus/images",
        .instance_dir = "/var/lib/stratus/nodes/n1/instances",
    };
}

/* ---- golden files ---- */

static void golden(const char *name, const char *got)
{
    const char *src = getenv("STRATUS_SOURCE_DIR");
    _cleanup_free_ char *path = fmt("%s/tests/unit/agent-data/%s", src ? src : ".", name);
    if (getenv("STRATUS_REGENERATE")) {
        CHECK_OK(fs_write_file(path, got, strlen(got)));
        return;
    }
    _cleanup_free_ char *want = NULL;
    int r = fs_read_tail(path, 1 << 20, &want);
    if (r < 0)
        check_fail(__FILE__, __LINE__, "%s: %s (STRATUS_REGENERATE=1 writes it)", path,
                   strerror(-r));
    if (!streq(want, got))
        check_fail(__FILE__, __LINE__, "%s differs; got:\n%s", name, got);
}

static char *xml_of(world *w, const char *type)
{
    agent_settings s = settings(type);
    char err[PLAN_ERROR_MAX];
    _cleanup_(agent_plan_freep) agent_plan *p = NULL;
    int r = agent_plan_build(w->inst, &w->refs, &s, &p, err);
    if (r < 0)
        check_fail(__FILE__, __LINE__, "plan: %s", err);
    char *xml = NULL;
    CHECK_OK(agent_domain_xml(p, &s, &xml));
    return xml;
}

static void golden_hollow_basic(void)
{
    setup();
    world w = {0};
    w.inst = instance(",\"networks\":[{\"network\":\"net1\"}]", NULL);
    w.refs.flavor = w.flavor = flavor(1, 512, 1, 0, 0);
    w.refs.image = w.image = image(image_sha, false);
    w.refs.networks[0] = w.nets[0] = network("net1", "10.0.0.0/24", NULL);
    _cleanup_free_ char *xml = xml_of(&w, "test");
    /* The image path is the test's temporary folder: not in the golden file. */
    golden("hollow-basic.xml", xml);
    world_clear(&w);
}

static void golden_qemu_full(void)
{
    setup();
    world w = {0};
    w.inst = instance(",\"networks\":[{\"network\":\"net1\"},{\"network\":\"net2\"},"
                      "{\"network\":\"net1\"}],\"configDrive\":true,\"hostname\":\"www\","
                      "\"blockDevices\":[{\"name\":\"data\",\"sizeGiB\":20,\"bus\":\"scsi\","
                      "\"deleteOnTermination\":true},{\"name\":\"keep\",\"sizeGiB\":5,"
                      "\"deleteOnTermination\":false},{\"name\":\"db\",\"volume\":\"pg\","
                      "\"bootIndex\":1}]",
                      NULL);
    w.refs.flavor = w.flavor = flavor(2, 2048, 10, 5, 512);
    w.refs.image = w.image = image(image_sha, true);
    w.refs.networks[0] = w.nets[0] = network("net1", "10.0.0.0/24", ",\"mtu\":9000");
    w.refs.networks[1] = w.nets[1] =
        network("net2", "192.168.7.0/24", ",\"bridge\":\"br-ext\",\"gateway\":\"192.168.7.254\"");
    w.refs.networks[2] = w.nets[0];
    w.refs.volumes[2] = w.vols[0] = volume("pg", 50, "raw");
    _cleanup_free_ char *xml = xml_of(&w, "qemu");
    golden("qemu-full.xml", xml);
    world_clear(&w);
}

static void golden_boot_from_volume(void)
{
    setup();
    world w = {0};
    _cleanup_free_ char *t = fmt(
        "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"vm\","
        "\"namespace\":\"prod\",\"uid\":\"" UID "\",\"generation\":1},\"spec\":{\"flavor\":\"m1\","
        "\"blockDevices\":[{\"name\":\"boot\",\"volume\":\"rootvol\",\"bootIndex\":0,"
        "\"bus\":\"virtio\"},{\"name\":\"iso\",\"volume\":\"tools\",\"type\":\"cdrom\","
        "\"bus\":\"sata\"}]}}");
    w.inst = js(t);
    w.refs.flavor = w.flavor = flavor(1, 256, 0, 0, 0);
    w.refs.volumes[0] = w.vols[0] = volume("rootvol", 10, "qcow2");
    w.refs.volumes[1] = w.vols[1] = volume("tools", 1, "raw");
    _cleanup_free_ char *xml = xml_of(&w, "kvm");
    golden("boot-from-volume.xml", xml);
    world_clear(&w);
}

/* ---- plans ---- */

static void plan_disks_and_nics(void)
{
    setup();
    world w = {0};
    w.inst = instance(",\"networks\":[{\"network\":\"net1\"},{\"network\":\"net2\"},"
                      "{\"network\":\"net1\"}],\"blockDevices\":[{\"name\":\"data\",\"sizeGiB\":20,"
                      "\"deleteOnTermination\":false}]",
                      NULL);
    w.refs.flavor = w.flavor = flavor(2, 2048, 0, 5, 1000);
    w.refs.image = w.image = image(image_sha, false);
    w.refs.networks[0] = w.refs.networks[2] = w.nets[0] = network("net1", "10.0.0.0/24", NULL);
    w.refs.networks[1] = w.nets[1] = network("net2", "192.168.7.0/24", NULL);
    agent_settings s = settings("test");
    char err[PLAN_ERROR_MAX];
    _cleanup_(agent_plan_freep) agent_plan *p = NULL;
    CHECK_OK(agent_plan_build(w.inst, &w.refs, &s, &p, err));
    CHECK_STR(p->domain_name, "default.web." UID);
    CHECK_INT(p->n_disks, ==, 4);
    CHECK_STR(p->disks[0].name, UID "-root.qcow2");
    CHECK_INT(p->disks[0].size_bytes, ==, 0); /* the image's size, found when building */
    CHECK_INT(p->disks[0].boot_order, ==, 1);
    CHECK_STR(p->disks[0].target, "vda");
    CHECK(p->disks[0].backing_path && strstr(p->disks[0].backing_path, image_sha));
    CHECK_STR(p->disks[1].name, UID "-ephemeral0.qcow2");
    CHECK_INT(p->disks[1].size_bytes, ==, 5ULL << 30);
    CHECK_STR(p->disks[2].name, UID "-swap.qcow2");
    CHECK_INT(p->disks[2].size_bytes, ==, 1000ULL << 20);
    CHECK_STR(p->disks[3].name, "keep-" UID "-bd-data.qcow2");
    CHECK(!p->disks[3].delete_on_termination);
    CHECK_STR(p->disks[3].target, "vdd");
    CHECK_INT(p->n_fetches, ==, 1);
    CHECK_INT(p->n_nics, ==, 3);
    /* The second NIC on net1 gets net1's second address. */
    CHECK_STR(p->nics[0].ip, "10.0.0.5");
    CHECK_STR(p->nics[1].ip, "192.168.7.2");
    CHECK_STR(p->nics[2].ip, "10.0.0.6");
    CHECK_STR(p->nics[2].mac, "52:54:00:00:00:06");
    CHECK_STR(p->nics[0].gateway, "10.0.0.1");
    CHECK_STR(p->nics[0].net_name, "stratus-default-net1");
    CHECK_INT(strlen(p->nics[0].bridge), <=, 15);
    CHECK_STR(p->nics[0].bridge, p->nics[2].bridge);
    CHECK(!streq(p->nics[0].bridge, p->nics[1].bridge));
    world_clear(&w);
}

static void plan_errors(void)
{
    setup();
    world w = {0};
    w.inst = instance(",\"networks\":[{\"network\":\"net3\"}]", NULL);
    w.refs.flavor = w.flavor = flavor(1, 512, 0, 0, 0);
    w.refs.image = w.image = image(image_sha, false);
    agent_settings s = settings("test");
    char err[PLAN_ERROR_MAX];
    agent_plan *p = NULL;
    CHECK_INT(agent_plan_build(w.inst, &w.refs, &s, &p, err), ==, -EINVAL);
    CHECK_STR(err, "network \"net3\" not found");
    w.refs.networks[0] = w.nets[0] = network("net3", "10.9.0.0/24", NULL);
    CHECK_INT(agent_plan_build(w.inst, &w.refs, &s, &p, err), ==, -EINVAL);
    CHECK_STR(err, "no address allocated on network \"net3\" (status.addresses)");
    w.refs.flavor = NULL;
    CHECK_INT(agent_plan_build(w.inst, &w.refs, &s, &p, err), ==, -EINVAL);
    CHECK_STR(err, "flavor \"m1\" not found");
    CHECK(!p);
    world_clear(&w);
}

static void names(void)
{
    char *k = NULL;
    CHECK_OK(agent_domain_name_to_key("default.web." UID, &k));
    CHECK_STR(k, "default/web");
    free(k);
    CHECK_INT(agent_domain_name_to_key("vm1", &k), ==, -EINVAL);
    CHECK_INT(agent_domain_name_to_key("a.b", &k), ==, -EINVAL);
    CHECK_INT(agent_domain_name_to_key("a.b.c.d", &k), ==, -EINVAL);
    _cleanup_free_ char *b1 = agent_bridge_name("default", "net1");
    _cleanup_free_ char *b2 = agent_bridge_name("other", "net1");
    CHECK_INT(strlen(b1), ==, 12);
    CHECK(!streq(b1, b2));
}

static void config_drive_documents(void)
{
    setup();
    world w = {0};
    w.inst = instance(",\"networks\":[{\"network\":\"net1\"}],\"sshKeys\":[\"ssh-ed25519 AAAA k\"],"
                      "\"userData\":\"#!/bin/sh\\necho hi\\n\",\"metadata\":{\"role\":\"web\"}",
                      NULL);
    w.refs.flavor = w.flavor = flavor(1, 512, 0, 0, 0);
    w.refs.image = w.image = image(image_sha, false);
    w.refs.networks[0] = w.nets[0] = network("net1", "10.0.0.0/24", ",\"dns\":[\"10.0.0.53\"]");
    agent_settings s = settings("test");
    char err[PLAN_ERROR_MAX];
    _cleanup_(agent_plan_freep) agent_plan *p = NULL;
    CHECK_OK(agent_plan_build(w.inst, &w.refs, &s, &p, err));
    _cleanup_free_ char *md = configdrive_meta_data(p, w.inst);
    json_t *m = js(md);
    CHECK_STR(json_string_value(json_object_get(m, "instance-id")), UID);
    CHECK_STR(json_string_value(json_object_get(m, "local-hostname")), "web");
    CHECK_STR(json_string_value(json_array_get(json_object_get(m, "public-keys"), 0)),
              "ssh-ed25519 AAAA k");
    CHECK_STR(json_string_value(api_json_lookup(m, "meta.role")), "web");
    json_decref(m);
    _cleanup_free_ char *nc = configdrive_network_config(p);
    json_t *n = js(nc);
    CHECK_INT(json_integer_value(json_object_get(n, "version")), ==, 2);
    json_t *eth0 = api_json_lookup(n, "ethernets.eth0");
    CHECK_STR(json_string_value(api_json_lookup(eth0, "match.macaddress")), "52:54:00:00:00:05");
    CHECK_STR(json_string_value(json_array_get(json_object_get(eth0, "addresses"), 0)),
              "10.0.0.5/24");
    CHECK_STR(json_string_value(json_object_get(eth0, "gateway4")), "10.0.0.1");
    CHECK_STR(json_string_value(json_array_get(api_json_lookup(eth0, "nameservers.addresses"), 0)),
              "10.0.0.53");
    json_decref(n);
    _cleanup_free_ char *ud = configdrive_user_data(w.inst);
    CHECK_STR(ud, "#!/bin/sh\necho hi\n");
    /* Written for real into a scratch folder: the files always, the ISO when a tool exists. */
    free(p->files_dir);
    p->files_dir = fmt("%s/cd", tmpdir);
    _cleanup_free_ char *iso = fmt("%s/config.iso", p->files_dir);
    char cerr[CONFIGDRIVE_ERROR_MAX];
    int r = configdrive_write(p, w.inst, iso, cerr);
    CHECK_INT(r, ==, configdrive_iso_tool() ? 1 : 0);
    _cleanup_free_ char *nc_path = fmt("%s/config/network-config", p->files_dir);
    CHECK(access(nc_path, F_OK) == 0);
    CHECK(access(iso, F_OK) == (r == 1 ? 0 : -1));
    world_clear(&w);
}

/* ---- image cache ---- */

static void image_cache_file_urls(void)
{
    setup();
    _cleanup_free_ char *dir = fmt("%s/cache", tmpdir);
    _cleanup_(image_cache_freep) image_cache *c = NULL;
    CHECK_OK(image_cache_new(dir, 0, &c));
    _cleanup_free_ char *url = fmt("file://%s", image_path);
    char err[IMAGE_ERROR_MAX];
    CHECK_OK(image_cache_ensure(c, url, image_sha, err));
    _cleanup_free_ char *cached = fmt("%s/%s", dir, image_sha);
    CHECK(access(cached, F_OK) == 0);
    CHECK_OK(image_cache_ensure(c, url, image_sha, err)); /* a hit */
    uint64_t size = 0;
    CHECK_OK(image_virtual_size(cached, BACKEND_DISK_QCOW2, &size));
    CHECK_INT(size, ==, 1ULL << 30);
    CHECK_INT(image_virtual_size(cached, BACKEND_DISK_RAW, &size), ==, 0);
    CHECK_INT(size, ==, 512);

    const char *wrong = "abababababababababababababababababababababababababababababababab";
    CHECK_INT(image_cache_ensure(c, url, wrong, err), ==, -EBADMSG);
    CHECK(strstr(err, "sha256 mismatch") && strstr(err, image_sha));
    _cleanup_free_ char *bad = fmt("%s/%s", dir, wrong);
    CHECK(access(bad, F_OK) != 0);
    CHECK_INT(image_cache_ensure(c, url, "ABC", err), ==, -EINVAL);
    _cleanup_free_ char *missing = fmt("file://%s/nope", tmpdir);
    CHECK_INT(image_cache_ensure(c, missing, wrong, err), ==, -ENOENT);
    CHECK_INT(image_cache_ensure(c, "gopher://x/y", wrong, err), ==, -EINVAL);
    /* Nothing partial is left behind by any of the failures. */
    _cleanup_free_ char *cmd = fmt("ls %s | grep -c part >/dev/null", dir);
    CHECK(system(cmd) != 0);
}

/* An http URL goes through libcurl (set up at this first download); a file URL with %-escapes
 * is read directly. The server: one thread, one connection, the image or a 404. */
typedef struct http_once {
    int listen_fd;
    bool not_found;
} http_once;

static void *http_serve(void *arg)
{
    http_once *h = arg;
    int c = accept(h->listen_fd, NULL, NULL);
    if (c < 0)
        return NULL;
    char req[4096];
    size_t got = 0;
    while (got < sizeof(req) - 1) {
        ssize_t n = read(c, req + got, sizeof(req) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        req[got] = 0;
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    size_t len = h->not_found ? 0 : 512; /* the image is 512 bytes, NULs included */
    char *data = h->not_found ? NULL : xnew(char, len);
    if (data) {
        int fd = open(image_path, O_RDONLY);
        if (fd < 0 || read(fd, data, len) != (ssize_t)len)
            abort();
        close(fd);
    }
    _cleanup_free_ char *head =
        fmt("HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
            h->not_found ? "404 Not Found" : "200 OK", len);
    if (write(c, head, strlen(head)) < 0 || (data && write(c, data, len) < 0))
        fprintf(stderr, "http_serve: write failed\n");
    free(data);
    close(c);
    return NULL;
}

static void image_cache_http(void)
{
    setup();
    _cleanup_free_ char *dir = fmt("%s/cache-http", tmpdir);
    _cleanup_(image_cache_freep) image_cache *c = NULL;
    CHECK_OK(image_cache_new(dir, 0, &c));
    char err[IMAGE_ERROR_MAX];
    for (int missing = 0; missing < 2; missing++) {
        http_once h = {.listen_fd = socket(AF_INET, SOCK_STREAM, 0), .not_found = missing};
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof(sa);
        CHECK(h.listen_fd >= 0);
        CHECK_OK(bind(h.listen_fd, (struct sockaddr *)&sa, sizeof(sa)));
        CHECK_OK(listen(h.listen_fd, 1));
        CHECK_OK(getsockname(h.listen_fd, (struct sockaddr *)&sa, &sl));
        pthread_t t;
        CHECK_OK(pthread_create(&t, NULL, http_serve, &h));
        _cleanup_free_ char *url = fmt("http://127.0.0.1:%d/base.qcow2", ntohs(sa.sin_port));
        int r = image_cache_ensure(c, url, image_sha, err);
        pthread_join(t, NULL);
        close(h.listen_fd);
        if (missing) {
            CHECK_INT(r, ==, -EIO);
            CHECK(strstr(err, "404"));
            continue;
        }
        if (r < 0)
            check_fail(__FILE__, __LINE__, "http download: %s", err);
        _cleanup_free_ char *cached = fmt("%s/%s", dir, image_sha);
        CHECK(access(cached, F_OK) == 0);
        CHECK_OK(unlink(cached));
    }
    /* file:// with an escaped path: "%62ase.qcow2" is "base.qcow2". */
    _cleanup_free_ char *escaped = fmt("file://%s/%%62ase.qcow2", tmpdir);
    CHECK_OK(image_cache_ensure(c, escaped, image_sha, err));
    CHECK_INT(image_cache_ensure(c, "file://relative/x", image_sha, err), ==, 0); /* cached */
    const char *other = "abababababababababababababababababababababababababababababababab";
    CHECK_INT(image_cache_ensure(c, "file://relative/x", other, err), ==, -EINVAL);
    _cleanup_free_ char *folder = fmt("file://%s", tmpdir);
    CHECK_INT(image_cache_ensure(c, folder, other, err), ==, -EINVAL);
    CHECK(strstr(err, "not a regular file"));
}

/* ---- the step machine ---- */

typedef struct rig {
    backend *be;
    image_cache *images;
    agent_settings s;
    agent_node_env env;
    char *pool, *files, *cache;
    world w;
    usec_t shutdown_since;
    unsigned failures;
    agent_reconcile_ctx last;
    bool fenced;
    agent_resources capacity;
    agent_step_hooks hooks;
} rig;

static void rig_init(rig *g, const char *spec_extra, const char *sha)
{
    setup();
    memset(g, 0, sizeof(*g));
    static unsigned seq;
    g->pool = fmt("%s/pool%u", tmpdir, seq);
    g->files = fmt("%s/files%u", tmpdir, seq);
    g->cache = fmt("%s/cache%u", tmpdir, seq++);
    g->be = fake_backend_new(g->pool);
    if (image_cache_new(g->cache, 0, &g->images) < 0)
        abort();
    g->s = settings("test");
    g->s.pool_dir = g->pool;
    g->s.image_dir = g->cache;
    g->s.instance_dir = g->files;
    g->env = (agent_node_env){.settings = &g->s,
                              .be = g->be,
                              .images = g->images,
                              .shutdown_timeout = 30 * USEC_PER_SEC,
                              .start_timeout = USEC_PER_SEC,
                              .build_retries = 100};
    g->capacity = (agent_resources){8, 16384, 200};
    g->w.inst = instance(spec_extra ? spec_extra : ",\"networks\":[{\"network\":\"net1\"}]", NULL);
    g->w.refs.flavor = g->w.flavor = flavor(2, 1024, 0, 1, 256);
    g->w.refs.image = g->w.image = image(sha ? sha : image_sha, false);
    g->w.refs.networks[0] = g->w.nets[0] = network("net1", "10.0.0.0/24", NULL);
}

static void rig_clear(rig *g)
{
    agent_reconcile_ctx_clear(&g->last);
    world_clear(&g->w);
    backend_free(g->be);
    image_cache_free(g->images);
    free(g->pool);
    free(g->files);
    free(g->cache);
}

/* One reconcile; its status is "written" back into the instance as the apiserver would. */
static agent_outcome step(rig *g)
{
    agent_reconcile_ctx_clear(&g->last);
    agent_reconcile_ctx *c = &g->last;
    agent_reconcile_ctx_init(c, &g->env, g->w.inst);
    c->refs = g->w.refs;
    c->capacity = g->capacity;
    c->fenced = g->fenced;
    c->failures = g->failures;
    c->shutdown_since = g->shutdown_since;
    c->hooks = g->hooks;
    CHECK_OK(agent_reconcile_instance(c));
    g->shutdown_since = c->shutdown_since;
    g->failures = c->outcome == AGENT_OUTCOME_RETRY ? g->failures + 1 : 0;
    if (c->outcome != AGENT_OUTCOME_UNBIND && c->outcome != AGENT_OUTCOME_FINALIZE)
        json_object_set(g->w.inst, "status", c->status);
    return c->outcome;
}

static const char *phase(rig *g)
{
    return json_string_value(api_json_lookup(g->w.inst, "status.phase"));
}

static const char *cond(rig *g, const char *type)
{
    return status_condition_get(json_object_get(g->w.inst, "status"), type);
}

static bool has_event(rig *g, const char *reason)
{
    for (size_t i = 0; i < g->last.n_events; i++)
        if (streq(g->last.events[i].reason, reason))
            return true;
    return false;
}

#define DOMAIN "default.web." UID

static void steps_build(void)
{
    rig g;
    rig_init(&g, NULL, NULL);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_STR(phase(&g), "Running");
    CHECK_STR(cond(&g, "ResourcesClaimed"), "True");
    CHECK_STR(cond(&g, "BlockDevicesReady"), "True");
    CHECK_STR(cond(&g, "NetworkReady"), "True");
    CHECK_STR(cond(&g, "DomainRunning"), "True");
    CHECK_STR(cond(&g, "Ready"), "True");
    CHECK_STR(cond(&g, "Scheduled"), "True"); /* the scheduler's, kept */
    CHECK_INT(json_integer_value(api_json_lookup(g.w.inst, "status.observedGeneration")), ==, 2);
    CHECK_INT(json_array_size(api_json_lookup(g.w.inst, "status.addresses")), ==, 3);
    json_t *tl = api_json_lookup(g.w.inst, "status.timeline");
    CHECK_INT(json_array_size(tl), ==, 5);
    static const char *const steps[] = {"Claim", "BlockDevices", "Network", "Domain", "DHCP"};
    for (size_t i = 0; i < 5; i++) {
        json_t *e = json_array_get(tl, i);
        CHECK_STR(json_string_value(json_object_get(e, "step")), steps[i]);
        CHECK_STR(json_string_value(json_object_get(e, "result")), "Succeeded");
        CHECK(json_object_get(e, "startTime") && json_object_get(e, "endTime"));
    }
    /* The DHCP entries are made during the Domain step (beside the start), not before it. */
    const char *domain_start =
        json_string_value(json_object_get(json_array_get(tl, 3), "startTime"));
    const char *domain_end = json_string_value(json_object_get(json_array_get(tl, 3), "endTime"));
    const char *dhcp_start = json_string_value(json_object_get(json_array_get(tl, 4), "startTime"));
    const char *dhcp_end = json_string_value(json_object_get(json_array_get(tl, 4), "endTime"));
    CHECK(strcmp(dhcp_start, domain_start) >= 0 && strcmp(dhcp_end, domain_end) <= 0);
    CHECK_INT(fake_domain_state(g.be, DOMAIN), ==, BACKEND_DOMAIN_RUNNING);
    CHECK(strstr(fake_domain_xml(g.be, DOMAIN), "uid='" UID "' generation='2'"));
    CHECK_INT(fake_count(g.be, "disks"), ==, 3);
    CHECK(fake_has(g.be, "disks", UID "-root.qcow2"));
    CHECK(fake_has(g.be, "networks", "stratus-default-net1"));
    /* The NIC's DHCP entry, recorded in the instance's folder for whoever removes it. */
    CHECK_INT(fake_count(g.be, "dhcp"), ==, 1);
    CHECK(fake_has(g.be, "dhcp", "stratus-default-net1 52:54:00:00:00:05"));
    _cleanup_free_ char *record = fmt("%s/%s/dhcp-hosts", g.files, UID);
    _cleanup_free_ char *text = NULL;
    CHECK_OK(fs_read_tail(record, 4096, &text));
    CHECK_STR(text, "stratus-default-net1 52:54:00:00:00:05 10.0.0.5\n");
    CHECK_STR(json_string_value(api_json_lookup(g.w.inst, "status.domainUUID")),
              "00000000-0000-0000-0000-000000000001");
    /* Converged: a second reconcile changes nothing, and asks the backend only for the domain's
     * state (NetworkReady=True: the DHCP entries are not looked at again). */
    unsigned calls = fake_calls(g.be);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK(!agent_reconcile_status_changed(&g.last));
    CHECK_INT(fake_calls(g.be), ==, calls + 1);
    CHECK_INT(fake_count(g.be, "domains"), ==, 1);
    rig_clear(&g);
}

/* Fails each backend call of a build in turn: the failed reconcile asks for a retry (with a
 * Warning event and a False condition), and reconciling again converges to one running domain
 * and exactly the planned disks. */
static void steps_fail_every_call(void)
{
    rig g;
    rig_init(&g, NULL, NULL);
    fake_fail(g.be, 0, false, NULL, 0);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    unsigned total = fake_calls(g.be);
    rig_clear(&g);
    CHECK_INT(total, >=, 7);
    for (unsigned n = 1; n <= total; n++) {
        rig_init(&g, NULL, NULL);
        fake_fail(g.be, n, false, NULL, -EIO);
        agent_outcome o = step(&g);
        if (o != AGENT_OUTCOME_RETRY)
            check_fail(__FILE__, __LINE__, "call %u: outcome %s", n, agent_outcome_to_string(o));
        CHECK(g.last.n_events >= 1 && g.last.events[0].warning);
        CHECK_STR(cond(&g, "Ready"), "False");
        int runs = 0;
        while (o != AGENT_OUTCOME_DONE && runs++ < 5)
            o = step(&g);
        if (o != AGENT_OUTCOME_DONE || !streq(phase(&g), "Running"))
            check_fail(__FILE__, __LINE__, "call %u: not converged (%s, %s)", n,
                       agent_outcome_to_string(o), phase(&g));
        CHECK_INT(fake_count(g.be, "domains"), ==, 1);
        CHECK_INT(fake_count(g.be, "disks"), ==, 3);
        CHECK_INT(fake_count(g.be, "dhcp"), ==, 1);
        CHECK_INT(fake_domain_state(g.be, DOMAIN), ==, BACKEND_DOMAIN_RUNNING);
        CHECK_STR(cond(&g, "Ready"), "True");
        rig_clear(&g);
    }
}

static void steps_give_back_after_retries(void)
{
    rig g;
    rig_init(&g, NULL, NULL);
    g.env.build_retries = 2;
    fake_fail(g.be, 1, true, "network_ensure", -EIO);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_RETRY);
    CHECK_STR(cond(&g, "NetworkReady"), "False");
    CHECK(fake_count(g.be, "disks") > 0);
    fake_fail(g.be, 1, true, "domain_define", -EIO); /* networks pass, the domain does not */
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_UNBIND);
    CHECK_STR(g.last.reason, "BuildFailed");
    CHECK_INT(fake_count(g.be, "dhcp"), ==, 0);
    CHECK(strstr(g.last.message, "build failed 2 times on node \"n1\""));
    CHECK_INT(fake_count(g.be, "disks"), ==, 0);
    CHECK_INT(fake_count(g.be, "domains"), ==, 0);
    rig_clear(&g);
}

/* A build that defined its domain but can never start it is given back like any failed build:
 * the reconciles after the define go through power convergence, which must count it too. */
static void steps_give_back_a_domain_that_never_starts(void)
{
    rig g;
    rig_init(&g, NULL, NULL);
    g.env.build_retries = 3;
    fake_fail(g.be, 1, true, "domain_start", -EIO);
    int unbinds = 0, retries = 0;
    for (int i = 0; i < 10 && !unbinds; i++) {
        agent_outcome o = step(&g);
        unbinds += o == AGENT_OUTCOME_UNBIND;
        retries += o == AGENT_OUTCOME_RETRY;
    }
    CHECK_INT(unbinds, ==, 1);
    CHECK_INT(retries, ==, 2);
    CHECK_STR(g.last.reason, "BuildFailed");
    CHECK_INT(fake_count(g.be, "domains"), ==, 0);
    CHECK_INT(fake_count(g.be, "disks"), ==, 0);
    rig_clear(&g);
}

static void steps_claim_fails(void)
{
    rig g;
    rig_init(&g, NULL, NULL);
    g.capacity = (agent_resources){1, 16384, 200};
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_UNBIND);
    CHECK_STR(g.last.reason, "InsufficientResources");
    CHECK_STR(g.last.message, "node \"n1\": insufficient vcpus: requested 2, 1 free of 1");
    CHECK(has_event(&g, "InsufficientResources"));
    CHECK_INT(fake_count(g.be, "disks"), ==, 0);
    CHECK_INT(fake_count(g.be, "domains"), ==, 0);
    rig_clear(&g);
}

static void steps_checksum_mismatch(void)
{
    rig g;
    rig_init(&g, NULL, "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd");
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_STR(phase(&g), "Failed");
    CHECK_STR(json_string_value(api_json_lookup(g.w.inst, "status.reason")),
              "ImageChecksumMismatch");
    CHECK(
        strstr(json_string_value(api_json_lookup(g.w.inst, "status.message")), "sha256 mismatch"));
    CHECK_STR(cond(&g, "BlockDevicesReady"), "False");
    CHECK(has_event(&g, "ImageChecksumMismatch"));
    CHECK_INT(fake_count(g.be, "disks"), ==, 0);
    CHECK_INT(fake_count(g.be, "domains"), ==, 0);
    _cleanup_free_ char *cmd = fmt("test -z \"$(ls -A %s)\"", g.cache);
    CHECK(system(cmd) == 0);
    /* Failed for good: reconciling again does nothing. */
    unsigned calls = fake_calls(g.be);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_INT(fake_calls(g.be), ==, calls + 1); /* only the domain state lookup */
    rig_clear(&g);
}

static void steps_fenced_starts_nothing(void)
{
    rig g;
    rig_init(&g, NULL, NULL);
    g.fenced = true;
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_REQUEUE);
    CHECK_INT(fake_count(g.be, "disks"), ==, 0);
    g.fenced = false;
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    fake_domain_set_state(g.be, DOMAIN, BACKEND_DOMAIN_SHUTOFF);
    g.fenced = true;
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_REQUEUE);
    CHECK_INT(fake_domain_state(g.be, DOMAIN), ==, BACKEND_DOMAIN_SHUTOFF);
    rig_clear(&g);
}

static void set_power(rig *g, const char *state, int generation)
{
    json_object_set_new(json_object_get(g->w.inst, "spec"), "powerState", json_string(state));
    json_object_set_new(json_object_get(g->w.inst, "metadata"), "generation",
                        json_integer(generation));
}

static void steps_power(void)
{
    rig g;
    rig_init(&g, NULL, NULL);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    set_power(&g, "Stopped", 3);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_REQUEUE); /* graceful shutdown asked */
    CHECK_STR(cond(&g, "Ready"), "False");
    CHECK(g.shutdown_since != 0);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_STR(phase(&g), "Stopped");
    CHECK_STR(cond(&g, "DomainRunning"), "False");
    CHECK_INT(json_integer_value(api_json_lookup(g.w.inst, "status.observedGeneration")), ==, 3);
    CHECK_INT(g.shutdown_since, ==, 0);
    /* Started again by the spec: no drift event. */
    set_power(&g, "Running", 4);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_STR(phase(&g), "Running");
    CHECK_INT(g.last.n_events, ==, 0);
    /* Stopped behind our back: started again, with an event. */
    fake_domain_set_state(g.be, DOMAIN, BACKEND_DOMAIN_SHUTOFF);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK(has_event(&g, "DomainStoppedUnexpectedly"));
    CHECK_INT(fake_domain_state(g.be, DOMAIN), ==, BACKEND_DOMAIN_RUNNING);
    fake_domain_set_state(g.be, DOMAIN, BACKEND_DOMAIN_CRASHED);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK(has_event(&g, "DomainCrashed"));
    CHECK_INT(fake_domain_state(g.be, DOMAIN), ==, BACKEND_DOMAIN_RUNNING);
    /* A guest that ignores the shutdown request is destroyed after the timeout. */
    fake_set_stubborn(g.be, true);
    g.env.shutdown_timeout = 1;
    set_power(&g, "Stopped", 5);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_REQUEUE);
    CHECK_INT(fake_domain_state(g.be, DOMAIN), ==, BACKEND_DOMAIN_RUNNING);
    usleep(1000);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_REQUEUE);
    CHECK(has_event(&g, "ShutdownTimedOut"));
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_STR(phase(&g), "Stopped");
    rig_clear(&g);
}

static void steps_build_stopped(void)
{
    rig g;
    rig_init(&g, ",\"networks\":[{\"network\":\"net1\"}],\"powerState\":\"Stopped\"", NULL);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_STR(phase(&g), "Stopped");
    CHECK_INT(fake_domain_state(g.be, DOMAIN), ==, BACKEND_DOMAIN_SHUTOFF);
    rig_clear(&g);
}

static void steps_delete(void)
{
    rig g;
    rig_init(&g,
             ",\"networks\":[{\"network\":\"net1\"}],\"blockDevices\":[{\"name\":\"k\","
             "\"sizeGiB\":1,\"deleteOnTermination\":false},{\"name\":\"v\",\"volume\":\"vol1\"}]",
             NULL);
    g.w.refs.volumes[1] = g.w.vols[0] = volume("vol1", 2, "qcow2");
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_INT(fake_count(g.be, "disks"), ==, 5);
    _cleanup_free_ char *files = fmt("%s/%s", g.files, UID);
    CHECK(access(files, F_OK) == 0);
    json_object_set_new(json_object_get(g.w.inst, "metadata"), "deletionTimestamp",
                        json_string("2026-01-01T00:00:00Z"));
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_REQUEUE); /* graceful shutdown first */
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_FINALIZE);
    CHECK_INT(fake_count(g.be, "domains"), ==, 0);
    CHECK_INT(fake_count(g.be, "disks"), ==, 2); /* the kept block device and the volume */
    CHECK(fake_has(g.be, "disks", "keep-" UID "-bd-k.qcow2"));
    CHECK(fake_has(g.be, "disks", "vol-default-vol1.qcow2"));
    CHECK(access(files, F_OK) != 0);
    CHECK_INT(fake_count(g.be, "dhcp"), ==, 0);
    /* Idempotent: a crash after the cleanup and before the finalizer went is harmless. */
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_FINALIZE);
    /* A failure during the cleanup is retried. */
    rig_clear(&g);
    rig_init(&g, NULL, NULL);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    json_object_set_new(json_object_get(g.w.inst, "metadata"), "deletionTimestamp",
                        json_string("2026-01-01T00:00:00Z"));
    fake_fail(g.be, 1, false, "disk_delete", -EIO);
    g.shutdown_since = 1; /* pretend the grace period is over */
    g.env.shutdown_timeout = 1;
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_RETRY);
    CHECK(has_event(&g, "DeleteFailed"));
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_FINALIZE);
    CHECK_INT(fake_count(g.be, "disks"), ==, 0);
    rig_clear(&g);
}

static void steps_adopt_mid_build(void)
{
    /* A domain that runs while the status still says Building (the agent died after starting
     * it): the reconcile only reports. */
    rig g;
    rig_init(&g, NULL, NULL);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    json_t *st = json_object_get(g.w.inst, "status");
    status_phase_set(st, "Building", NULL, NULL);
    status_condition_remove(st, "DomainRunning");
    unsigned disks = (unsigned)fake_count(g.be, "disks");
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_STR(phase(&g), "Running");
    CHECK_STR(cond(&g, "DomainRunning"), "True");
    CHECK_INT(fake_count(g.be, "domains"), ==, 1);
    CHECK_INT(fake_count(g.be, "disks"), ==, disks);
    rig_clear(&g);
}

static size_t timeline_count(rig *g, const char *step_name)
{
    size_t i, n = 0;
    json_t *e;
    json_array_foreach (api_json_lookup(g->w.inst, "status.timeline"), i, e)
        if (streq(json_string_value(json_object_get(e, "step")) ?: "", step_name))
            n++;
    return n;
}

/* The DHCP entries come with the domain's start, and the instance is Running only once they are
 * in place: an entry that fails after the start leaves the domain running, NetworkReady=False and
 * Ready=False, and the next reconcile makes it; the same for a domain found running or stopped
 * (an agent killed between the start and the entries) without NetworkReady=True. A start that
 * fails still gets its entries. */
static int hook_claim_stale(void *userdata, agent_reconcile_ctx *ctx, const agent_resources *want,
                            char *why)
{
    int *left = userdata;
    return (*left)-- > 0 ? -ESTALE : 0;
}

/* A claim that lost a race for the instance's status (someone wrote it since) is made again,
 * not counted as a failed build; a DHCP entry that fails beside a start that worked, on the last
 * attempt, leaves the running domain alone instead of giving the instance back. */
static void steps_failures_that_are_not_failed_builds(void)
{
    rig g;
    rig_init(&g, NULL, NULL);
    g.env.build_retries = 1;
    int stale = 3;
    g.hooks = (agent_step_hooks){.claim = hook_claim_stale, .userdata = &stale};
    for (int i = 0; i < 3; i++) {
        CHECK_INT(step(&g), ==, AGENT_OUTCOME_REQUEUE);
        CHECK_STR(cond(&g, "ResourcesClaimed"), "False"); /* not claimed: nothing says so */
        CHECK(g.last.requeue_after > 0);
    }
    g.hooks = (agent_step_hooks){0};
    fake_fail(g.be, 1, false, "network_host_add", -EIO);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_RETRY); /* a failure, on the last allowed attempt */
    CHECK_INT(fake_domain_state(g.be, DOMAIN), ==, BACKEND_DOMAIN_RUNNING);
    CHECK_STR(cond(&g, "NetworkReady"), "False");
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_STR(phase(&g), "Running");
    rig_clear(&g);
}

static void steps_dhcp_beside_start(void)
{
    rig g;
    rig_init(&g, NULL, NULL);
    fake_fail(g.be, 1, false, "network_host_add", -EIO);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_RETRY);
    CHECK_INT(fake_domain_state(g.be, DOMAIN), ==, BACKEND_DOMAIN_RUNNING);
    CHECK_INT(fake_count(g.be, "dhcp"), ==, 0);
    CHECK_STR(phase(&g), "Building");
    CHECK_STR(cond(&g, "DomainRunning"), "True");
    CHECK_STR(cond(&g, "NetworkReady"), "False");
    CHECK_STR(cond(&g, "Ready"), "False");
    CHECK(has_event(&g, "DHCPFailed"));
    CHECK(strstr(g.last.message, "10.0.0.5 for 52:54:00:00:00:05 on stratus-default-net1"));
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_STR(phase(&g), "Running");
    CHECK_STR(cond(&g, "NetworkReady"), "True");
    CHECK_STR(cond(&g, "Ready"), "True");
    CHECK(fake_has(g.be, "dhcp", "stratus-default-net1 52:54:00:00:00:05"));
    CHECK_INT(timeline_count(&g, "DHCP"), ==, 2); /* the failed attempt and the one that made it */
    rig_clear(&g);

    /* Killed after the start, before the entries: the status was not written. */
    rig_init(&g, NULL, NULL);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_OK(
        backend_network_host_remove(g.be, "stratus-default-net1", "52:54:00:00:00:05", "10.0.0.5"));
    json_t *st = json_object_get(g.w.inst, "status");
    status_phase_set(st, "Building", NULL, NULL);
    status_condition_remove(st, "NetworkReady");
    status_condition_remove(st, "DomainRunning");
    status_condition_set(st, "Ready", "False", "Building", NULL, 1000000);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_STR(phase(&g), "Running");
    CHECK_STR(cond(&g, "NetworkReady"), "True");
    CHECK(fake_has(g.be, "dhcp", "stratus-default-net1 52:54:00:00:00:05"));
    /* The same when the domain is off and the spec says Running: made beside the start. */
    CHECK_OK(
        backend_network_host_remove(g.be, "stratus-default-net1", "52:54:00:00:00:05", "10.0.0.5"));
    status_condition_remove(json_object_get(g.w.inst, "status"), "NetworkReady");
    fake_domain_set_state(g.be, DOMAIN, BACKEND_DOMAIN_SHUTOFF);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_INT(fake_domain_state(g.be, DOMAIN), ==, BACKEND_DOMAIN_RUNNING);
    CHECK(fake_has(g.be, "dhcp", "stratus-default-net1 52:54:00:00:00:05"));
    CHECK_STR(cond(&g, "NetworkReady"), "True");
    rig_clear(&g);

    /* A start that fails: the entries are made all the same, and stay confirmed. */
    rig_init(&g, NULL, NULL);
    fake_fail(g.be, 1, false, "domain_start", -EIO);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_RETRY);
    CHECK_STR(cond(&g, "DomainRunning"), "False");
    CHECK_STR(cond(&g, "NetworkReady"), "True");
    CHECK(strstr(g.last.message, "fake: domain_start failed"));
    CHECK_INT(fake_count(g.be, "dhcp"), ==, 1);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_STR(phase(&g), "Running");
    rig_clear(&g);

    /* powerState Stopped: no start; the entries after the define, retried when they fail. */
    rig_init(&g, ",\"networks\":[{\"network\":\"net1\"}],\"powerState\":\"Stopped\"", NULL);
    fake_fail(g.be, 1, false, "network_host_add", -EIO);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_RETRY);
    CHECK_INT(fake_domain_state(g.be, DOMAIN), ==, BACKEND_DOMAIN_SHUTOFF);
    CHECK_STR(cond(&g, "NetworkReady"), "False");
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_STR(phase(&g), "Stopped");
    CHECK_STR(cond(&g, "NetworkReady"), "True");
    CHECK_INT(fake_domain_state(g.be, DOMAIN), ==, BACKEND_DOMAIN_SHUTOFF);
    CHECK(fake_has(g.be, "dhcp", "stratus-default-net1 52:54:00:00:00:05"));
    rig_clear(&g);
}

/* A rebuild (the domain vanished) whose Network has DHCP off by now: the entry the first build
 * recorded is removed and so is the record, so nothing would re-make it or forget it. */
static void steps_dhcp_record_follows_build(void)
{
    rig g;
    rig_init(&g, NULL, NULL);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_INT(fake_count(g.be, "dhcp"), ==, 1);
    CHECK_OK(backend_domain_destroy(g.be, DOMAIN));
    CHECK_OK(backend_domain_undefine(g.be, DOMAIN));
    json_decref(g.w.nets[0]);
    g.w.refs.networks[0] = g.w.nets[0] = network("net1", "10.0.0.0/24", ",\"dhcp\":false");
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK(has_event(&g, "DomainMissing"));
    CHECK_STR(phase(&g), "Running");
    CHECK_INT(fake_count(g.be, "dhcp"), ==, 0);
    _cleanup_free_ char *record = fmt("%s/%s/dhcp-hosts", g.files, UID);
    CHECK(access(record, F_OK) != 0);
    rig_clear(&g);
}

/* DHCP entries: none for a Network with dhcp off; a stale entry for the same address (left by an
 * instance that went while the agent was down) is replaced; the orphan sweep's folder removal
 * takes the entries recorded there. */
static void steps_dhcp(void)
{
    rig g;
    rig_init(&g, NULL, NULL);
    json_decref(g.w.nets[0]);
    g.w.refs.networks[0] = g.w.nets[0] = network("net1", "10.0.0.0/24", ",\"dhcp\":false");
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_INT(fake_count(g.be, "dhcp"), ==, 0);
    _cleanup_free_ char *record = fmt("%s/%s/dhcp-hosts", g.files, UID);
    CHECK(access(record, F_OK) != 0);
    rig_clear(&g);

    rig_init(&g, NULL, NULL);
    backend_network_request net = {.name = "stratus-default-net1", .bridge = "b", .dhcp = true};
    CHECK_OK(backend_network_ensure(g.be, &net));
    CHECK_OK(
        backend_network_host_add(g.be, "stratus-default-net1", "52:54:00:99:99:99", "10.0.0.5"));
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_INT(fake_count(g.be, "dhcp"), ==, 1);
    CHECK(fake_has(g.be, "dhcp", "stratus-default-net1 52:54:00:00:00:05"));
    /* What the sweep does with a folder whose instance and domain are gone. */
    _cleanup_free_ char *dir = fmt("%s/%s", g.files, UID);
    CHECK_OK(agent_instance_files_remove(&g.env, UID));
    CHECK_INT(fake_count(g.be, "dhcp"), ==, 0);
    CHECK(access(dir, F_OK) != 0);
    CHECK_OK(agent_instance_files_remove(&g.env, UID)); /* idempotent */
    rig_clear(&g);
}

/* The Volume hooks as reconcile.c uses them: attach before the volume's disk is made, release
 * once the domain is gone; a volume held by another instance fails the build step (retried),
 * and a failed release keeps the finalizer (retried). */
typedef struct volume_log {
    char calls[256];
    int attach_error;
    int release_error;
} volume_log;

static int hook_attach(void *userdata, agent_reconcile_ctx *ctx, const char *volume, char *why)
{
    volume_log *l = userdata;
    size_t n = strlen(l->calls);
    snprintf(l->calls + n, sizeof(l->calls) - n, "attach %s disks=%zu;", volume,
             fake_count(ctx->env->be, "disks"));
    if (l->attach_error == -EBUSY)
        snprintf(why, API_MESSAGE_MAX, "volume \"%s\" is in use by instance \"other\"", volume);
    return l->attach_error;
}

static int hook_release(void *userdata, agent_reconcile_ctx *ctx, const char *volume)
{
    volume_log *l = userdata;
    size_t n = strlen(l->calls);
    snprintf(l->calls + n, sizeof(l->calls) - n, "release %s domains=%zu;", volume,
             fake_count(ctx->env->be, "domains"));
    return l->release_error;
}

static void steps_volume_hooks(void)
{
    rig g;
    volume_log l = {.attach_error = -EBUSY};
    rig_init(&g, ",\"blockDevices\":[{\"name\":\"v\",\"volume\":\"vol1\"}]", NULL);
    g.w.refs.volumes[0] = g.w.vols[0] = volume("vol1", 2, "qcow2");
    g.hooks = (agent_step_hooks){
        .volume_attach = hook_attach, .volume_release = hook_release, .userdata = &l};
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_RETRY);
    CHECK_STR(g.last.reason, "VolumeInUse");
    CHECK_STR(g.last.message, "volume \"vol1\" is in use by instance \"other\"");
    CHECK_STR(cond(&g, "BlockDevicesReady"), "False");
    CHECK(has_event(&g, "VolumeInUse"));
    CHECK(!fake_has(g.be, "disks", "vol-default-vol1.qcow2"));
    CHECK_INT(fake_count(g.be, "domains"), ==, 0);
    l = (volume_log){0};
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    CHECK_STR(phase(&g), "Running");
    /* Attached before its disk was made: root, ephemeral and swap exist, the volume not yet. */
    CHECK_STR(l.calls, "attach vol1 disks=3;");
    CHECK(fake_has(g.be, "disks", "vol-default-vol1.qcow2"));
    json_object_set_new(json_object_get(g.w.inst, "metadata"), "deletionTimestamp",
                        json_string("2026-01-01T00:00:00Z"));
    g.shutdown_since = 1;
    g.env.shutdown_timeout = 1;
    l = (volume_log){.release_error = -EHOSTDOWN};
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_RETRY);
    CHECK(has_event(&g, "DeleteFailed"));
    l = (volume_log){0};
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_FINALIZE);
    CHECK_STR(l.calls, "release vol1 domains=0;"); /* after the domain went */
    CHECK(fake_has(g.be, "disks", "vol-default-vol1.qcow2"));
    rig_clear(&g);
}

static void pause_points(void)
{
    static const char *const ok[] = {"Claim",  "BlockDevices", "Network", "ConfigDrive",
                                     "Define", "DHCP",         "Start",   "Delete"};
    for (size_t i = 0; i < ELEMENTSOF(ok); i++)
        CHECK(agent_pause_point_valid(ok[i]));
    CHECK(!agent_pause_point_valid(""));
    CHECK(!agent_pause_point_valid("Net"));
    CHECK(!agent_pause_point_valid("Claim Network"));
    CHECK(!agent_pause_point_valid("claim"));
    CHECK(!agent_pause_point_valid(NULL));
}

static void status_helpers(void)
{
    json_t *st = json_object();
    status_condition_set(st, "Ready", "False", "Building", "x\x01y\xc3\xa9", 1000000);
    const char *t1 = json_string_value(json_object_get(
        json_array_get(json_object_get(st, "conditions"), 0), "lastTransitionTime"));
    _cleanup_free_ char *keep = xstrdup(t1);
    status_condition_set(st, "Ready", "False", "Other", NULL, 5000000000ULL);
    json_t *c = json_array_get(json_object_get(st, "conditions"), 0);
    CHECK_STR(json_string_value(json_object_get(c, "lastTransitionTime")), keep);
    CHECK(!json_object_get(c, "message"));
    status_condition_set(st, "Ready", "True", "Running", "x\x01y\xc3\xa9", 5000000000ULL);
    CHECK(!streq(json_string_value(json_object_get(c, "lastTransitionTime")), keep));
    CHECK_STR(json_string_value(json_object_get(c, "message")), "x?y??");
    for (int i = 0; i < 70; i++)
        status_timeline_end(st, status_timeline_begin(st, "Claim", 1000000), true, 2000000);
    CHECK_INT(json_array_size(json_object_get(st, "timeline")), ==, API_TIMELINE_MAX);
    json_decref(st);
}

/* Which domains a node may adopt or remove: the metadata of a built domain names the node;
 * another node's are not ours, neither are domains without Stratus metadata; a domain from an
 * agent that did not write the node yet is taken as ours. */
static void domain_ownership(void)
{
    rig g;
    rig_init(&g, NULL, NULL);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_DONE);
    backend_domain *d = NULL;
    size_t n = 0;
    CHECK_OK(backend_domain_list(g.be, &d, &n));
    CHECK_INT(n, ==, 1);
    CHECK_STR(d[0].node, "n1");
    CHECK_STR(d[0].uid, UID);
    CHECK(agent_domain_is_ours(&d[0], "n1"));
    CHECK(!agent_domain_is_ours(&d[0], "n2"));
    free(d[0].node);
    d[0].node = NULL; /* written by an older agent */
    CHECK(agent_domain_is_ours(&d[0], "n2"));
    free(d[0].uid);
    d[0].uid = NULL; /* not made by Stratus */
    CHECK(!agent_domain_is_ours(&d[0], "n1"));
    backend_domains_free(d, n);
    rig_clear(&g);

    /* The instance folder is made before the first disk: it is what tells the node's orphan
     * sweep that a "<uid>-…" disk in a shared pool is its own. */
    rig_init(&g, NULL, NULL);
    fake_fail(g.be, 1, true, "disk_create", -EIO);
    CHECK_INT(step(&g), ==, AGENT_OUTCOME_RETRY);
    CHECK_INT(fake_count(g.be, "disks"), ==, 0);
    _cleanup_free_ char *folder = fmt("%s/%s", g.files, UID);
    CHECK(access(folder, F_OK) == 0);
    rig_clear(&g);
}

CHECK_MAIN(CASE(golden_hollow_basic), CASE(golden_qemu_full), CASE(golden_boot_from_volume),
           CASE(plan_disks_and_nics), CASE(plan_errors), CASE(names), CASE(config_drive_documents),
           CASE(image_cache_file_urls), CASE(steps_build), CASE(steps_fail_every_call),
           CASE(steps_give_back_after_retries), CASE(steps_give_back_a_domain_that_never_starts),
           CASE(steps_failures_that_are_not_failed_builds), CASE(steps_claim_fails),
           CASE(steps_checksum_mismatch), CASE(steps_fenced_starts_nothing), CASE(steps_power),
           CASE(steps_build_stopped), CASE(steps_delete), CASE(steps_adopt_mid_build),
           CASE(steps_dhcp), CASE(steps_dhcp_beside_start), CASE(steps_dhcp_record_follows_build),
           CASE(steps_volume_hooks), CASE(pause_points), CASE(image_cache_http),
           CASE(status_helpers), CASE(domain_ownership))
