/* A fake backend for the agent's unit tests, behind the same function table as libvirt: domains,
 * disks and networks in memory, and a switch that makes the Nth call (counting every call
 * through the table) fail, so the step machine can be shown to converge from a failure at any
 * point. Never linked into anything but tests. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/backend.h"
#include "base/alloc.h"
#include "test-agent-fake.h"

typedef struct fake_backend {
    backend base;
    pthread_mutex_t lock;
    unsigned calls;
    unsigned fail_at;    /* 1-based call number to fail; 0: none */
    bool fail_always;    /* every call from fail_at on */
    const char *fail_op; /* only calls of this op count for fail_at, when set */
    unsigned op_calls;
    int fail_error;
    bool stubborn; /* shutdown does nothing */
    unsigned next_uuid;
    json_t *domains;  /* name → {xml, state, uuid} */
    json_t *disks;    /* name → {path, backing} */
    json_t *networks; /* name → bridge */
    json_t *dhcp;     /* "<network> <mac>" → ip */
    char pool_dir[256];
} fake_backend;

static fake_backend *F(backend *b)
{
    return (fake_backend *)b;
}

/* Counts a call and says whether it must fail (with the error text set). */
static int enter(backend *b, const char *op)
{
    fake_backend *f = F(b);
    pthread_mutex_lock(&f->lock);
    f->calls++;
    bool counted = !f->fail_op || streq(f->fail_op, op);
    if (counted)
        f->op_calls++;
    unsigned n = f->fail_op ? f->op_calls : f->calls;
    if (counted && f->fail_at && (n == f->fail_at || (f->fail_always && n >= f->fail_at))) {
        int e = f->fail_error ? f->fail_error : -EIO;
        pthread_mutex_unlock(&f->lock);
        return backend_set_error(e, "fake: %s failed (call %u)", op, n);
    }
    return 0;
}

static void leave(backend *b)
{
    pthread_mutex_unlock(&F(b)->lock);
}

static int fk_open(const backend_config *cfg, backend **ret)
{
    fake_backend *f = xnew(fake_backend, 1);
    pthread_mutex_init(&f->lock, NULL);
    f->domains = json_object();
    f->disks = json_object();
    f->networks = json_object();
    f->dhcp = json_object();
    snprintf(f->pool_dir, sizeof(f->pool_dir), "%s",
             cfg && cfg->pool_dir ? cfg->pool_dir : "/pool");
    *ret = &f->base;
    return 0;
}

static void fk_close(backend *b)
{
    fake_backend *f = F(b);
    json_decref(f->domains);
    json_decref(f->disks);
    json_decref(f->networks);
    json_decref(f->dhcp);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static int fk_host_info(backend *b, backend_host_info *ret)
{
    int r = enter(b, "host_info");
    if (r < 0)
        return r;
    *ret = (backend_host_info){.vcpus = 8, .memory_mib = 16384, .disk_gib = 200};
    snprintf(ret->hypervisor, sizeof(ret->hypervisor), "FAKE");
    leave(b);
    return 0;
}

static char *between(const char *s, const char *a, char end)
{
    const char *p = strstr(s, a);
    if (!p)
        return NULL;
    p += strlen(a);
    const char *q = strchr(p, end);
    return q ? xstrndup(p, (size_t)(q - p)) : NULL;
}

static int fk_define(backend *b, const char *xml, char ret_uuid[BACKEND_UUID_MAX])
{
    int r = enter(b, "domain_define");
    if (r < 0)
        return r;
    fake_backend *f = F(b);
    _cleanup_free_ char *name = between(xml, "<name>", '<');
    json_t *d = json_object_get(f->domains, name);
    if (!d) {
        char uuid[BACKEND_UUID_MAX];
        snprintf(uuid, sizeof(uuid), "00000000-0000-0000-0000-%012u", ++f->next_uuid);
        d = json_pack("{s:s,s:i}", "uuid", uuid, "state", BACKEND_DOMAIN_SHUTOFF);
        json_object_set_new(f->domains, name, d);
    }
    json_object_set_new(d, "xml", json_string(xml));
    snprintf(ret_uuid, BACKEND_UUID_MAX, "%s", json_string_value(json_object_get(d, "uuid")));
    leave(b);
    return 0;
}

static int set_state(backend *b, const char *op, const char *name, int from_any_but, int to)
{
    int r = enter(b, op);
    if (r < 0)
        return r;
    fake_backend *f = F(b);
    json_t *d = json_object_get(f->domains, name);
    if (!d) {
        leave(b);
        return backend_set_error(-ENOENT, "fake: no domain %s", name);
    }
    if (json_integer_value(json_object_get(d, "state")) != from_any_but)
        json_object_set_new(d, "state", json_integer(to));
    leave(b);
    return 0;
}

static int fk_start(backend *b, const char *name)
{
    return set_state(b, "domain_start", name, BACKEND_DOMAIN_RUNNING, BACKEND_DOMAIN_RUNNING);
}

static int fk_shutdown(backend *b, const char *name)
{
    if (F(b)->stubborn) {
        int r = enter(b, "domain_shutdown");
        if (r == 0)
            leave(b);
        return r;
    }
    return set_state(b, "domain_shutdown", name, BACKEND_DOMAIN_SHUTOFF, BACKEND_DOMAIN_SHUTOFF);
}

static int fk_destroy(backend *b, const char *name)
{
    return set_state(b, "domain_destroy", name, BACKEND_DOMAIN_SHUTOFF, BACKEND_DOMAIN_SHUTOFF);
}

static int fk_undefine(backend *b, const char *name)
{
    int r = enter(b, "domain_undefine");
    if (r < 0)
        return r;
    json_object_del(F(b)->domains, name);
    leave(b);
    return 0;
}

static int fk_state(backend *b, const char *name, backend_domain_state *ret_state,
                    char ret_uuid[BACKEND_UUID_MAX])
{
    int r = enter(b, "domain_state");
    if (r < 0)
        return r;
    json_t *d = json_object_get(F(b)->domains, name);
    if (d) {
        *ret_state = (backend_domain_state)json_integer_value(json_object_get(d, "state"));
        if (ret_uuid)
            snprintf(ret_uuid, BACKEND_UUID_MAX, "%s",
                     json_string_value(json_object_get(d, "uuid")));
    }
    leave(b);
    return d ? 0 : backend_set_error(-ENOENT, "fake: no domain %s", name);
}

static int fk_list(backend *b, backend_domain **ret, size_t *ret_n)
{
    int r = enter(b, "domain_list");
    if (r < 0)
        return r;
    fake_backend *f = F(b);
    backend_domain *out = xnew(backend_domain, json_object_size(f->domains) + 1);
    size_t n = 0;
    const char *name;
    json_t *d;
    json_object_foreach (f->domains, name, d) {
        backend_domain *o = &out[n++];
        o->name = xstrdup(name);
        snprintf(o->uuid, sizeof(o->uuid), "%s", json_string_value(json_object_get(d, "uuid")));
        o->state = (backend_domain_state)json_integer_value(json_object_get(d, "state"));
        const char *xml = json_string_value(json_object_get(d, "xml"));
        o->uid = between(xml, " uid='", '\'');
        o->namespace_ = between(xml, " namespace='", '\'');
        o->instance = between(xml, " name='", '\'');
        o->node = between(xml, " node='", '\'');
        _cleanup_free_ char *gen = between(xml, " generation='", '\'');
        o->generation = gen ? atoll(gen) : 0;
    }
    leave(b);
    *ret = out;
    *ret_n = n;
    return 0;
}

static int fk_disk_create(backend *b, const backend_disk_request *d, char **ret_path)
{
    int r = enter(b, "disk_create");
    if (r < 0)
        return r;
    fake_backend *f = F(b);
    char *path = xasprintf("%s/%s", f->pool_dir, d->name);
    if (!json_object_get(f->disks, d->name))
        json_object_set_new(f->disks, d->name,
                            json_pack("{s:s,s:s?,s:I}", "path", path, "backing", d->backing_path,
                                      "size", (json_int_t)d->size_bytes));
    leave(b);
    *ret_path = path;
    return 0;
}

static int fk_disk_delete(backend *b, const char *name)
{
    int r = enter(b, "disk_delete");
    if (r < 0)
        return r;
    json_object_del(F(b)->disks, name);
    leave(b);
    return 0;
}

static int fk_disk_list(backend *b, char ***ret_names, size_t *ret_n)
{
    int r = enter(b, "disk_list");
    if (r < 0)
        return r;
    fake_backend *f = F(b);
    char **names = xnew(char *, json_object_size(f->disks) + 1);
    size_t n = 0;
    const char *name;
    json_t *v;
    json_object_foreach (f->disks, name, v)
        names[n++] = xstrdup(name);
    leave(b);
    *ret_names = names;
    *ret_n = n;
    return 0;
}

static int fk_network_ensure(backend *b, const backend_network_request *n)
{
    int r = enter(b, "network_ensure");
    if (r < 0)
        return r;
    json_object_set_new(F(b)->networks, n->name, json_string(n->bridge));
    leave(b);
    return 0;
}

static int fk_host_add(backend *b, const char *network, const char *mac, const char *ip)
{
    int r = enter(b, "network_host_add");
    if (r < 0)
        return r;
    fake_backend *f = F(b);
    if (!json_object_get(f->networks, network)) {
        leave(b);
        return backend_set_error(-ENOENT, "fake: no network %s", network);
    }
    /* Like libvirt's: an entry with the same ip (or mac) on the network is replaced. */
    size_t nlen = strlen(network);
    const char *k;
    json_t *v, *tmp;
    json_object_foreach_safe (f->dhcp, tmp, k, v)
        if (strneq(k, network, nlen) && k[nlen] == ' ' && streq(json_string_value(v), ip))
            json_object_del(f->dhcp, k);
    _cleanup_free_ char *key = xasprintf("%s %s", network, mac);
    json_object_set_new(f->dhcp, key, json_string(ip));
    leave(b);
    return 0;
}

static int fk_host_remove(backend *b, const char *network, const char *mac, const char *ip)
{
    int r = enter(b, "network_host_remove");
    if (r < 0)
        return r;
    fake_backend *f = F(b);
    _cleanup_free_ char *key = xasprintf("%s %s", network, mac);
    const char *have = json_string_value(json_object_get(f->dhcp, key));
    if (have && streq(have, ip))
        json_object_del(f->dhcp, key);
    leave(b);
    return 0;
}

const backend_ops fake_backend_ops = {
    .name = "fake",
    .open = fk_open,
    .close = fk_close,
    .host_info = fk_host_info,
    .domain_define = fk_define,
    .domain_start = fk_start,
    .domain_shutdown = fk_shutdown,
    .domain_destroy = fk_destroy,
    .domain_undefine = fk_undefine,
    .domain_state = fk_state,
    .domain_list = fk_list,
    .disk_create = fk_disk_create,
    .disk_delete = fk_disk_delete,
    .disk_list = fk_disk_list,
    .network_ensure = fk_network_ensure,
    .network_host_add = fk_host_add,
    .network_host_remove = fk_host_remove,
    /* console_log_path, events: unsupported, as a backend may be */
};

backend *fake_backend_new(const char *pool_dir)
{
    backend *b = NULL;
    backend_config cfg = {.uri = "fake:", .pool_dir = pool_dir};
    if (backend_open_with(&fake_backend_ops, &cfg, &b) < 0)
        abort();
    return b;
}

void fake_fail(backend *b, unsigned nth, bool always, const char *op, int error)
{
    fake_backend *f = F(b);
    pthread_mutex_lock(&f->lock);
    f->fail_at = nth;
    f->fail_always = always;
    f->fail_op = op;
    f->op_calls = 0;
    f->calls = 0;
    f->fail_error = error;
    pthread_mutex_unlock(&f->lock);
}

unsigned fake_calls(backend *b)
{
    return F(b)->calls;
}

void fake_set_stubborn(backend *b, bool stubborn)
{
    F(b)->stubborn = stubborn;
}

static json_t *table(fake_backend *f, const char *what)
{
    return streq(what, "domains") ? f->domains
           : streq(what, "disks") ? f->disks
           : streq(what, "dhcp")  ? f->dhcp
                                  : f->networks;
}

size_t fake_count(backend *b, const char *what)
{
    return json_object_size(table(F(b), what));
}

bool fake_has(backend *b, const char *what, const char *name)
{
    return json_object_get(table(F(b), what), name) != NULL;
}

int fake_domain_state(backend *b, const char *name)
{
    json_t *d = json_object_get(F(b)->domains, name);
    return d ? (int)json_integer_value(json_object_get(d, "state")) : -1;
}

void fake_domain_set_state(backend *b, const char *name, int state)
{
    json_t *d = json_object_get(F(b)->domains, name);
    if (d)
        json_object_set_new(d, "state", json_integer(state));
}

const char *fake_domain_xml(backend *b, const char *name)
{
    return json_string_value(json_object_get(json_object_get(F(b)->domains, name), "xml"));
}
