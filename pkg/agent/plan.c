/* Planning an instance (disks, NICs, boot) and writing its libvirt domain XML: pure functions,
 * see plan.h. The XML is built by hand with escaping rather than through libxml2: it is one
 * small fixed shape, and the golden files show exactly what libvirt receives. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/plan.h"
#include "api/ipv4.h"
#include "api/object.h"
#include "base/alloc.h"
#include "base/buf.h"

#define GIB ((uint64_t)1 << 30)
#define MIB ((uint64_t)1 << 20)

static const char *const role_names[_PLAN_DISK_ROLE_MAX] = {
    [PLAN_DISK_ROOT] = "root",   [PLAN_DISK_EPHEMERAL] = "ephemeral", [PLAN_DISK_SWAP] = "swap",
    [PLAN_DISK_BLANK] = "blank", [PLAN_DISK_VOLUME] = "volume",       [PLAN_DISK_CONFIG] = "config",
};

const char *plan_disk_role_to_string(plan_disk_role r)
{
    return r < _PLAN_DISK_ROLE_MAX ? role_names[r] : "?";
}

static const char *str_at(const json_t *o, const char *path)
{
    return json_string_value(api_json_lookup(o, path));
}

static int64_t int_at(const json_t *o, const char *path)
{
    return json_integer_value(api_json_lookup(o, path));
}

static int fail(char *err, const char *fmt, ...) _printf_(2, 3);
static int fail(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, PLAN_ERROR_MAX, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

char *agent_domain_name(const json_t *instance)
{
    const char *ns = str_at(instance, "metadata.namespace");
    const char *name = str_at(instance, "metadata.name");
    const char *uid = str_at(instance, "metadata.uid");
    if (!ns || !name || !uid || !*ns || !*name || !*uid)
        return NULL;
    return xasprintf("%s.%s.%s", ns, name, uid);
}

int agent_domain_name_to_key(const char *domain_name, char **ret)
{
    /* Namespaces and instance names are DNS labels (no dots) and uids have none either. */
    const char *a = strchr(domain_name, '.');
    const char *b = a ? strchr(a + 1, '.') : NULL;
    if (!a || !b || a == domain_name || b == a + 1 || !b[1] || strchr(b + 1, '.'))
        return -EINVAL;
    char *k = xstrndup(domain_name, (size_t)(b - domain_name));
    k[a - domain_name] = '/';
    *ret = k;
    return 0;
}

char *agent_network_name(const char *ns, const char *network)
{
    return xasprintf("stratus-%s-%s", ns, network);
}

char *agent_bridge_name(const char *ns, const char *network)
{
    /* FNV-1a of "ns/network": IFNAMSIZ leaves no room for the names themselves. */
    uint32_t h = 2166136261u;
    for (const char *p = ns; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    h = (h ^ '/') * 16777619u;
    for (const char *p = network; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return xasprintf("stbr%08x", h);
}

static void disk_clear(plan_disk *d)
{
    free(d->name);
    free(d->path);
    free(d->backing_path);
    free(d->block_device);
    free(d->volume);
}

agent_plan *agent_plan_free(agent_plan *p)
{
    if (!p)
        return NULL;
    free(p->domain_name);
    free(p->uid);
    free(p->namespace_);
    free(p->name);
    free(p->hostname);
    for (size_t i = 0; i < p->n_disks; i++)
        disk_clear(&p->disks[i]);
    for (size_t i = 0; i < p->n_nics; i++) {
        plan_nic *n = &p->nics[i];
        free(n->network);
        free(n->net_name);
        free(n->bridge);
        free(n->mac);
        free(n->ip);
        free(n->gateway);
        free(n->netmask);
        json_decref(n->dns);
    }
    for (size_t i = 0; i < p->n_fetches; i++) {
        free(p->fetches[i].url);
        free(p->fetches[i].sha256);
        free(p->fetches[i].path);
        free(p->fetches[i].what);
    }
    free(p->kernel);
    free(p->initrd);
    free(p->cmdline);
    free(p->files_dir);
    free(p->console_log);
    free(p);
    return NULL;
}

void agent_plan_drop_config_drive(agent_plan *p)
{
    for (size_t i = 0; i < p->n_disks; i++)
        if (p->disks[i].role == PLAN_DISK_CONFIG) {
            disk_clear(&p->disks[i]);
            memmove(&p->disks[i], &p->disks[i + 1], (p->n_disks - i - 1) * sizeof(plan_disk));
            p->n_disks--;
            p->config_drive = false;
            return;
        }
}

static backend_disk_format format_of(const char *s)
{
    return s && streq(s, "raw") ? BACKEND_DISK_RAW : BACKEND_DISK_QCOW2;
}

/* Adds a file to fetch (once per sha256) and returns its cache path (borrowed from the plan). */
static const char *fetch_add(agent_plan *p, const agent_settings *s, const json_t *src,
                             const char *what)
{
    const char *url = str_at(src, "url"), *sha = str_at(src, "sha256");
    if (!url || !sha)
        return NULL;
    for (size_t i = 0; i < p->n_fetches; i++)
        if (streq(p->fetches[i].sha256, sha))
            return p->fetches[i].path;
    if (p->n_fetches >= PLAN_FETCHES_MAX)
        return NULL;
    plan_fetch *f = &p->fetches[p->n_fetches++];
    f->url = xstrdup(url);
    f->sha256 = xstrdup(sha);
    f->path = xasprintf("%s/%s", s->image_dir, sha);
    f->what = xstrdup(what);
    return f->path;
}

static plan_disk *disk_add(agent_plan *p, plan_disk_role role, const agent_settings *s,
                           const char *name)
{
    plan_disk *d = &p->disks[p->n_disks++];
    d->role = role;
    d->device = "disk";
    d->bus = "virtio";
    d->format = BACKEND_DISK_QCOW2;
    d->delete_on_termination = true;
    if (name) {
        d->name = xstrdup(name);
        d->path = xasprintf("%s/%s", s->pool_dir, name);
    }
    return d;
}

/* Guest device names per bus, in plan order: vda, vdb, ...; sda, ...; hda, ... */
static int assign_targets(agent_plan *p, char *err)
{
    int next_vd = 0, next_sd = 0, next_hd = 0;
    for (size_t i = 0; i < p->n_disks; i++) {
        plan_disk *d = &p->disks[i];
        int *counter = &next_vd;
        const char *prefix = "vd";
        if (streq(d->bus, "sata") || streq(d->bus, "scsi")) {
            counter = &next_sd;
            prefix = "sd";
        } else if (streq(d->bus, "ide")) {
            counter = &next_hd;
            prefix = "hd";
        }
        if (*counter >= 26)
            return fail(err, "too many disks on bus %s", d->bus);
        snprintf(d->target, sizeof(d->target), "%s%c", prefix, 'a' + (*counter)++);
    }
    return 0;
}

static int plan_disks(agent_plan *p, const json_t *inst, const agent_refs *refs,
                      const agent_settings *s, char *err)
{
    const json_t *flavor = refs->flavor;
    const char *uid = p->uid;
    const json_t *image = refs->image;
    const json_t *source = image ? api_json_lookup(image, "spec.source") : NULL;
    int64_t root_gib = int_at(flavor, "spec.rootDiskGiB");
    if (source) {
        _cleanup_free_ char *what = xasprintf("image \"%s\"", api_object_name(image));
        const char *base = fetch_add(p, s, source, what);
        if (!base)
            return fail(err, "%s has no usable source", what);
        _cleanup_free_ char *name = xasprintf("%s-root.qcow2", uid);
        plan_disk *d = disk_add(p, PLAN_DISK_ROOT, s, name);
        d->backing_path = xstrdup(base);
        d->backing_format = format_of(str_at(source, "format"));
        d->size_bytes = (uint64_t)root_gib * GIB;
        d->boot_order = 1;
    } else if (root_gib > 0) {
        /* A kernel-only image with a root disk size: a blank root disk for the initramfs. */
        _cleanup_free_ char *name = xasprintf("%s-root.qcow2", uid);
        plan_disk *d = disk_add(p, PLAN_DISK_ROOT, s, name);
        d->size_bytes = (uint64_t)root_gib * GIB;
    }
    int64_t eph = int_at(flavor, "spec.ephemeralGiB");
    if (eph > 0) {
        _cleanup_free_ char *name = xasprintf("%s-ephemeral0.qcow2", uid);
        disk_add(p, PLAN_DISK_EPHEMERAL, s, name)->size_bytes = (uint64_t)eph * GIB;
    }
    int64_t swap = int_at(flavor, "spec.swapMiB");
    if (swap > 0) {
        _cleanup_free_ char *name = xasprintf("%s-swap.qcow2", uid);
        disk_add(p, PLAN_DISK_SWAP, s, name)->size_bytes = (uint64_t)swap * MIB;
    }
    const json_t *bds = api_json_lookup(inst, "spec.blockDevices");
    for (size_t i = 0; i < json_array_size(bds) && i < API_INSTANCE_BLOCK_DEVICES_MAX; i++) {
        const json_t *bd = json_array_get(bds, i);
        const char *bdname = json_string_value(json_object_get(bd, "name"));
        const char *volname = json_string_value(json_object_get(bd, "volume"));
        const json_t *boot = json_object_get(bd, "bootIndex");
        const json_t *del = json_object_get(bd, "deleteOnTermination");
        if (!bdname)
            return fail(err, "spec.blockDevices[%zu] has no name", i);
        plan_disk *d;
        if (volname) {
            const json_t *vol = refs->volumes[i];
            if (!vol)
                return fail(err, "volume \"%s\" not found", volname);
            const char *fmt = str_at(vol, "spec.format");
            _cleanup_free_ char *name =
                xasprintf("vol-%s-%s.%s", p->namespace_, volname, fmt ? fmt : "qcow2");
            d = disk_add(p, PLAN_DISK_VOLUME, s, name);
            d->format = format_of(fmt);
            d->size_bytes = (uint64_t)int_at(vol, "spec.sizeGiB") * GIB;
            d->delete_on_termination = false;
            d->volume = xstrdup(volname);
            const char *vimg = str_at(vol, "spec.image");
            if (vimg) {
                const json_t *img = refs->volume_images[i];
                const json_t *src = img ? api_json_lookup(img, "spec.source") : NULL;
                _cleanup_free_ char *what =
                    xasprintf("image \"%s\" of volume \"%s\"", vimg, volname);
                const char *base = src ? fetch_add(p, s, src, what) : NULL;
                if (!base)
                    return fail(err, "%s not found or has no source", what);
                d->backing_path = xstrdup(base);
                d->backing_format = format_of(str_at(src, "format"));
            }
        } else {
            bool keep = json_is_false(del);
            _cleanup_free_ char *name =
                xasprintf("%s%s-bd-%s.qcow2", keep ? "keep-" : "", uid, bdname);
            d = disk_add(p, PLAN_DISK_BLANK, s, name);
            d->size_bytes = (uint64_t)json_integer_value(json_object_get(bd, "sizeGiB")) * GIB;
            d->delete_on_termination = !keep;
        }
        d->block_device = xstrdup(bdname);
        const char *type = json_string_value(json_object_get(bd, "type"));
        const char *bus = json_string_value(json_object_get(bd, "bus"));
        if (type && streq(type, "cdrom")) {
            d->device = "cdrom";
            d->readonly = true;
        }
        static const char *const buses[] = {"virtio", "sata", "scsi", "ide"};
        for (size_t b = 0; bus && b < ELEMENTSOF(buses); b++)
            if (streq(bus, buses[b]))
                d->bus = buses[b];
        if (json_is_integer(boot))
            d->boot_order = (int)json_integer_value(boot) + 1;
    }
    if (p->config_drive) {
        plan_disk *d = disk_add(p, PLAN_DISK_CONFIG, s, NULL);
        d->path = xasprintf("%s/config.iso", p->files_dir);
        d->format = BACKEND_DISK_RAW;
        d->device = "cdrom";
        d->bus = "sata";
        d->readonly = true;
    }
    return assign_targets(p, err);
}

/* The address IPAM gave the k-th NIC on `network`: status.addresses in order, matched by name. */
static const json_t *address_for(const json_t *inst, const char *network, size_t k)
{
    const json_t *addrs = api_json_lookup(inst, "status.addresses");
    size_t seen = 0;
    for (size_t i = 0; i < json_array_size(addrs); i++) {
        const json_t *a = json_array_get(addrs, i);
        const char *n = json_string_value(json_object_get(a, "network"));
        if (n && streq(n, network) && seen++ == k)
            return a;
    }
    return NULL;
}

static int plan_nics(agent_plan *p, const json_t *inst, const agent_refs *refs, char *err)
{
    const json_t *nets = api_json_lookup(inst, "spec.networks");
    for (size_t i = 0; i < json_array_size(nets) && i < API_INSTANCE_NETWORKS_MAX; i++) {
        const char *network =
            json_string_value(json_object_get(json_array_get(nets, i), "network"));
        const json_t *net = refs->networks[i];
        if (!network || !net)
            return fail(err, "network \"%s\" not found", network ? network : "");
        size_t k = 0;
        for (size_t j = 0; j < i; j++) {
            const char *o = json_string_value(json_object_get(json_array_get(nets, j), "network"));
            if (o && streq(o, network))
                k++;
        }
        const json_t *a = address_for(inst, network, k);
        const char *ip = json_string_value(json_object_get(a, "ip"));
        const char *mac = json_string_value(json_object_get(a, "mac"));
        if (!ip || !mac)
            return fail(err, "no address allocated on network \"%s\" (status.addresses)", network);
        api_ipv4_cidr cidr;
        if (api_ipv4_cidr_parse(str_at(net, "spec.cidr") ? str_at(net, "spec.cidr") : "", &cidr) <
            0)
            return fail(err, "network \"%s\" has no valid cidr", network);
        plan_nic *n = &p->nics[p->n_nics++];
        n->network = xstrdup(network);
        n->net_name = agent_network_name(p->namespace_, network);
        const char *bridge = str_at(net, "spec.bridge");
        n->bridge = bridge ? xstrdup(bridge) : agent_bridge_name(p->namespace_, network);
        n->mac = xstrdup(mac);
        n->ip = xstrdup(ip);
        const char *gw = str_at(net, "spec.gateway");
        char tmp[API_IPV4_STRLEN];
        if (!gw) {
            uint32_t g = 0;
            api_ipv4_cidr_nth_host(&cidr, 0, &g);
            gw = api_ipv4_format(g, tmp);
        }
        n->gateway = xstrdup(gw);
        n->prefix = (int)cidr.prefix;
        n->netmask = xstrdup(api_ipv4_format(api_ipv4_netmask(cidr.prefix), tmp));
        int64_t mtu = int_at(net, "spec.mtu");
        n->mtu = mtu > 0 ? (int)mtu : 1500;
        n->dhcp = !json_is_false(api_json_lookup(net, "spec.dhcp")); /* the API's default: on */
        const json_t *dns = api_json_lookup(net, "spec.dns");
        n->dns = json_is_array(dns) ? json_deep_copy(dns) : json_array();
    }
    return 0;
}

int agent_plan_build(const json_t *inst, const agent_refs *refs, const agent_settings *s,
                     agent_plan **ret, char *err)
{
    err[0] = 0;
    if (!refs->flavor)
        return fail(err, "flavor \"%s\" not found", str_at(inst, "spec.flavor") ?: "");
    const char *uid = str_at(inst, "metadata.uid");
    _cleanup_(agent_plan_freep) agent_plan *p = xnew(agent_plan, 1);
    p->domain_name = agent_domain_name(inst);
    if (!p->domain_name)
        return fail(err, "the instance has no namespace, name or uid");
    p->uid = xstrdup(uid);
    p->namespace_ = xstrdup(str_at(inst, "metadata.namespace"));
    p->name = xstrdup(str_at(inst, "metadata.name"));
    const char *hostname = str_at(inst, "spec.hostname");
    p->hostname = xstrdup(hostname ? hostname : p->name);
    p->generation = int_at(inst, "metadata.generation");
    p->vcpus = int_at(refs->flavor, "spec.vcpus");
    p->memory_mib = int_at(refs->flavor, "spec.memoryMiB");
    if (p->vcpus <= 0 || p->memory_mib <= 0)
        return fail(err, "flavor \"%s\" has no vcpus or memoryMiB", api_object_name(refs->flavor));
    p->files_dir = xasprintf("%s/%s", s->instance_dir, uid);
    p->console_log = xasprintf("%s/console.log", p->files_dir);
    p->config_drive = json_is_true(api_json_lookup(inst, "spec.configDrive"));
    const char *image_name = str_at(inst, "spec.image");
    if (image_name && !refs->image)
        return fail(err, "image \"%s\" not found", image_name);
    int r = plan_disks(p, inst, refs, s, err);
    if (r < 0)
        return r;
    r = plan_nics(p, inst, refs, err);
    if (r < 0)
        return r;
    const json_t *image = refs->image;
    const json_t *kernel = image ? api_json_lookup(image, "spec.kernel") : NULL;
    if (kernel) {
        _cleanup_free_ char *what = xasprintf("image \"%s\" kernel", api_object_name(image));
        const char *k = fetch_add(p, s, kernel, what);
        if (!k)
            return fail(err, "%s has no url or sha256", what);
        p->kernel = xstrdup(k);
        const json_t *initrd = api_json_lookup(image, "spec.initrd");
        if (initrd) {
            _cleanup_free_ char *w2 = xasprintf("image \"%s\" initrd", api_object_name(image));
            const char *i = fetch_add(p, s, initrd, w2);
            if (!i)
                return fail(err, "%s has no url or sha256", w2);
            p->initrd = xstrdup(i);
        }
        /* The kernel's own ip= syntax (Documentation/filesystems/nfs/nfsroot.rst), for guests
         * without cloud-init: our initramfs reads it too. */
        buf c = BUF_INIT(API_CMDLINE_MAX + 256);
        const char *cmdline = str_at(image, "spec.cmdline");
        if (cmdline)
            buf_append_str(&c, cmdline);
        if (p->n_nics > 0)
            buf_printf(&c, "%sip=%s::%s:%s:%s::off", c.len ? " " : "", p->nics[0].ip,
                       p->nics[0].gateway, p->nics[0].netmask, p->hostname);
        p->cmdline = buf_steal(&c, NULL);
    }
    *ret = TAKE_PTR(p);
    return 0;
}

/* ---- the domain XML ---- */

static void esc(buf *b, const char *s)
{
    for (; s && *s; s++)
        switch (*s) {
        case '&':
            buf_append_str(b, "&amp;");
            break;
        case '<':
            buf_append_str(b, "&lt;");
            break;
        case '>':
            buf_append_str(b, "&gt;");
            break;
        case '\'':
            buf_append_str(b, "&apos;");
            break;
        case '"':
            buf_append_str(b, "&quot;");
            break;
        default:
            buf_append(b, s, 1);
        }
}

/* Appends fmt where every %s argument is XML-escaped ("%s" and "%lld"/"%d" only). */
static void xml(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            buf_append(b, p, 1);
            continue;
        }
        p++;
        if (*p == 's')
            esc(b, va_arg(ap, const char *));
        else if (*p == 'd')
            buf_printf(b, "%d", va_arg(ap, int));
        else if (strneq(p, "lld", 3)) {
            buf_printf(b, "%lld", va_arg(ap, long long));
            p += 2;
        } else
            buf_append(b, p, 1);
    }
    va_end(ap);
}

int agent_domain_xml(const agent_plan *p, const agent_settings *s, char **ret)
{
    buf b = BUF_INIT(0); /* every input is capped; the total is checked at the end */
    bool test = streq(s->domain_type, "test");
    xml(&b, "<domain type='%s'>\n", s->domain_type);
    xml(&b, "  <name>%s</name>\n", p->domain_name);
    xml(&b,
        "  <metadata>\n    <stratus:instance xmlns:stratus='https://stratus.io/xmlns/instance/1'"
        " uid='%s' generation='%lld' namespace='%s' name='%s' node='%s'/>\n  </metadata>\n",
        p->uid, (long long)p->generation, p->namespace_, p->name, s->node_name);
    xml(&b, "  <memory unit='MiB'>%lld</memory>\n", (long long)p->memory_mib);
    xml(&b, "  <vcpu>%lld</vcpu>\n", (long long)p->vcpus);
    buf_append_str(&b, "  <os>\n");
    if (test)
        buf_append_str(&b, "    <type>hvm</type>\n");
    else if (s->machine)
        xml(&b, "    <type arch='%s' machine='%s'>hvm</type>\n", s->arch, s->machine);
    else
        xml(&b, "    <type arch='%s'>hvm</type>\n", s->arch);
    if (p->kernel) {
        xml(&b, "    <kernel>%s</kernel>\n", p->kernel);
        if (p->initrd)
            xml(&b, "    <initrd>%s</initrd>\n", p->initrd);
        if (p->cmdline && *p->cmdline)
            xml(&b, "    <cmdline>%s</cmdline>\n", p->cmdline);
    }
    buf_append_str(&b, "  </os>\n");
    if (!test)
        buf_append_str(&b, "  <features>\n    <acpi/>\n  </features>\n");
    buf_append_str(&b, "  <on_poweroff>destroy</on_poweroff>\n"
                       "  <on_reboot>restart</on_reboot>\n"
                       "  <on_crash>destroy</on_crash>\n"
                       "  <devices>\n");
    if (s->emulator)
        xml(&b, "    <emulator>%s</emulator>\n", s->emulator);
    for (size_t i = 0; i < p->n_disks; i++) {
        const plan_disk *d = &p->disks[i];
        xml(&b, "    <disk type='file' device='%s'>\n", d->device);
        xml(&b, "      <driver name='qemu' type='%s'/>\n",
            backend_disk_format_to_string(d->format));
        xml(&b, "      <source file='%s'/>\n", d->path);
        xml(&b, "      <target dev='%s' bus='%s'/>\n", d->target, d->bus);
        if (d->boot_order > 0)
            xml(&b, "      <boot order='%d'/>\n", d->boot_order);
        if (d->readonly)
            buf_append_str(&b, "      <readonly/>\n");
        if (d->role == PLAN_DISK_VOLUME || d->role == PLAN_DISK_BLANK)
            xml(&b, "      <alias name='ua-%s'/>\n", d->block_device);
        buf_append_str(&b, "    </disk>\n");
    }
    for (size_t i = 0; i < p->n_nics; i++) {
        const plan_nic *n = &p->nics[i];
        buf_append_str(&b, "    <interface type='network'>\n");
        xml(&b, "      <mac address='%s'/>\n", n->mac);
        xml(&b, "      <source network='%s'/>\n", n->net_name);
        buf_append_str(&b, "      <model type='virtio'/>\n");
        if (n->mtu > 0)
            xml(&b, "      <mtu size='%d'/>\n", n->mtu);
        buf_append_str(&b, "    </interface>\n");
    }
    /* The serial console: a pty for people, logged to a file for status and `stratusctl
     * console`. */
    buf_append_str(&b, "    <serial type='pty'>\n");
    xml(&b, "      <log file='%s' append='on'/>\n", p->console_log);
    buf_append_str(&b, "      <target port='0'/>\n    </serial>\n"
                       "    <console type='pty'>\n      <target type='serial' port='0'/>\n"
                       "    </console>\n");
    if (!test)
        buf_append_str(&b, "    <memballoon model='none'/>\n");
    buf_append_str(&b, "  </devices>\n</domain>\n");
    if (b.len > BACKEND_XML_MAX) {
        buf_done(&b);
        return -E2BIG;
    }
    *ret = buf_steal(&b, NULL);
    return 0;
}
