/* The backend wrappers: one place that says "unsupported" for a NULL function, the per-thread
 * error text, and the test-driver node description. The implementations live in
 * backend-<name>.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/backend.h"
#include "base/alloc.h"

static __thread char last_error[BACKEND_ERROR_MAX];

const char *backend_last_error(void)
{
    return last_error;
}

int backend_set_error(int error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return error;
}

static const char *const state_names[_BACKEND_DOMAIN_STATE_MAX] = {
    [BACKEND_DOMAIN_RUNNING] = "running",   [BACKEND_DOMAIN_PAUSED] = "paused",
    [BACKEND_DOMAIN_STOPPING] = "stopping", [BACKEND_DOMAIN_SHUTOFF] = "shutoff",
    [BACKEND_DOMAIN_CRASHED] = "crashed",   [BACKEND_DOMAIN_OTHER] = "other",
};

const char *backend_domain_state_to_string(backend_domain_state s)
{
    return s < _BACKEND_DOMAIN_STATE_MAX ? state_names[s] : "other";
}

static const char *const format_names[_BACKEND_DISK_FORMAT_MAX] = {
    [BACKEND_DISK_QCOW2] = "qcow2",
    [BACKEND_DISK_RAW] = "raw",
};

const char *backend_disk_format_to_string(backend_disk_format f)
{
    return f < _BACKEND_DISK_FORMAT_MAX ? format_names[f] : "raw";
}

void backend_domains_free(backend_domain *d, size_t n)
{
    for (size_t i = 0; d && i < n; i++) {
        free(d[i].name);
        free(d[i].uid);
        free(d[i].namespace_);
        free(d[i].instance);
        free(d[i].node);
    }
    free(d);
}

void backend_names_free(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

int backend_open_with(const backend_ops *ops, const backend_config *cfg, backend **ret)
{
    if (!ops || !ops->open)
        return backend_set_error(-EOPNOTSUPP, "backend cannot be opened");
    backend *b = NULL;
    int r = ops->open(cfg, &b);
    if (r < 0)
        return r;
    b->ops = ops;
    *ret = b;
    return 0;
}

int backend_open(const backend_config *cfg, backend **ret)
{
    if (!cfg || !cfg->uri)
        return backend_set_error(-EINVAL, "no backend URI");
    if (strneq(cfg->uri, "test:", 5) || strneq(cfg->uri, "qemu", 4))
        return backend_open_with(&backend_libvirt_ops, cfg, ret);
    return backend_set_error(-EINVAL, "unsupported backend URI \"%s\" (test:///… or qemu:///…)",
                             cfg->uri);
}

backend *backend_free(backend *b)
{
    if (b && b->ops->close)
        b->ops->close(b);
    return NULL;
}

const char *backend_name(const backend *b)
{
    return b ? b->ops->name : "none";
}

#define UNSUPPORTED(b, op)                                                                         \
    backend_set_error(-EOPNOTSUPP, "backend %s does not support %s", (b)->ops->name, op)

/* Each wrapper: NULL function → -EOPNOTSUPP; otherwise clear the error text and call. */
#define CALL(b, fn, ...)                                                                           \
    do {                                                                                           \
        if (!(b)->ops->fn)                                                                         \
            return UNSUPPORTED(b, #fn);                                                            \
        last_error[0] = 0;                                                                         \
        return (b)->ops->fn((b), __VA_ARGS__);                                                     \
    } while (0)

int backend_host_info_get(backend *b, backend_host_info *ret)
{
    CALL(b, host_info, ret);
}
int backend_domain_define(backend *b, const char *xml, char ret_uuid[BACKEND_UUID_MAX])
{
    CALL(b, domain_define, xml, ret_uuid);
}
int backend_domain_start(backend *b, const char *name)
{
    CALL(b, domain_start, name);
}
int backend_domain_start_with(backend *b, const char *name, backend_beside_fn fn, void *userdata,
                              int *ret_fn)
{
    if (b->ops->domain_start_with) {
        last_error[0] = 0;
        return b->ops->domain_start_with(b, name, fn, userdata, ret_fn);
    }
    int r = backend_domain_start(b, name);
    char start_error[BACKEND_ERROR_MAX];
    memcpy(start_error, last_error, sizeof(start_error));
    *ret_fn = fn(userdata);
    memcpy(last_error, start_error, sizeof(last_error)); /* the start's, as documented */
    return r;
}
int backend_domain_shutdown(backend *b, const char *name)
{
    CALL(b, domain_shutdown, name);
}
int backend_domain_destroy(backend *b, const char *name)
{
    CALL(b, domain_destroy, name);
}
int backend_domain_undefine(backend *b, const char *name)
{
    CALL(b, domain_undefine, name);
}
int backend_domain_state_get(backend *b, const char *name, backend_domain_state *ret_state,
                             char ret_uuid[BACKEND_UUID_MAX])
{
    CALL(b, domain_state, name, ret_state, ret_uuid);
}
int backend_domain_list(backend *b, backend_domain **ret, size_t *ret_n)
{
    CALL(b, domain_list, ret, ret_n);
}
int backend_disk_create(backend *b, const backend_disk_request *d, char **ret_path)
{
    CALL(b, disk_create, d, ret_path);
}
int backend_disk_delete(backend *b, const char *name)
{
    CALL(b, disk_delete, name);
}
int backend_disk_list(backend *b, char ***ret_names, size_t *ret_n)
{
    CALL(b, disk_list, ret_names, ret_n);
}
int backend_network_ensure(backend *b, const backend_network_request *n)
{
    CALL(b, network_ensure, n);
}
int backend_network_host_add(backend *b, const char *network, const char *mac, const char *ip)
{
    CALL(b, network_host_add, network, mac, ip);
}
int backend_network_host_remove(backend *b, const char *network, const char *mac, const char *ip)
{
    CALL(b, network_host_remove, network, mac, ip);
}
int backend_console_log_path(backend *b, const char *name, char **ret)
{
    CALL(b, console_log_path, name, ret);
}
int backend_events_subscribe(backend *b, backend_event_fn fn, void *userdata)
{
    CALL(b, events_subscribe, fn, userdata);
}
int backend_events_unsubscribe(backend *b)
{
    if (!b->ops->events_unsubscribe)
        return UNSUPPORTED(b, "events_unsubscribe");
    last_error[0] = 0;
    return b->ops->events_unsubscribe(b);
}

bool backend_connected(backend *b)
{
    return !b->ops->connected || b->ops->connected(b);
}

int backend_reconnect(backend *b)
{
    if (!b->ops->reconnect)
        return UNSUPPORTED(b, "reconnect");
    last_error[0] = 0;
    return b->ops->reconnect(b);
}

int backend_test_node_xml_write(const char *path, int64_t vcpus, int64_t memory_mib,
                                int64_t disk_gib, const char *pool_name, const char *pool_dir)
{
    if (vcpus <= 0 || memory_mib <= 0 || disk_gib < 0 || !pool_dir)
        return -EINVAL;
    _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (!f)
        return -errno;
    /* XML-safe: pool_dir comes from the agent's own flags; reject what would need escaping. */
    if (strpbrk(pool_dir, "<>&'\"") || (pool_name && strpbrk(pool_name, "<>&'\""))) {
        fclose(f);
        unlink(tmp);
        return -EINVAL;
    }
    fprintf(f,
            "<node>\n"
            "  <cpu>\n"
            "    <mhz>2000</mhz>\n"
            "    <model>x86_64</model>\n"
            "    <nodes>1</nodes>\n"
            "    <sockets>1</sockets>\n"
            "    <cores>%lld</cores>\n"
            "    <threads>1</threads>\n"
            "    <active>%lld</active>\n"
            "  </cpu>\n"
            "  <memory>%lld</memory>\n"
            "  <pool type='dir'>\n"
            "    <name>%s</name>\n"
            "    <target><path>%s</path></target>\n"
            "    <capacity unit='GiB'>%lld</capacity>\n"
            "    <allocation unit='GiB'>0</allocation>\n"
            "    <available unit='GiB'>%lld</available>\n"
            "  </pool>\n"
            "</node>\n",
            (long long)vcpus, (long long)vcpus, (long long)memory_mib * 1024,
            pool_name ? pool_name : "stratus", pool_dir, (long long)disk_gib, (long long)disk_gib);
    if (fclose(f) != 0 || rename(tmp, path) < 0) {
        int r = -errno;
        unlink(tmp);
        return r;
    }
    return 0;
}
