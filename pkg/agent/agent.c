/* The agent's lifecycle and threads: options, node identities and their backends, the loop
 * thread (informers and the resync timer), the reconcile workers and the heartbeat thread. What a
 * reconcile does is in reconcile.c; registration, lease and fencing in node.c. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/agent-internal.h"
#include "agent/files.h"
#include "api/object.h"
#include "base/alloc.h"

void agent_log(agent *a, agent_log_level level, const char *node, const char *fmt, ...)
{
    if (!a->o.log)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    a->o.log(a->o.log_userdata, level, node, msg);
}

char *agent_node_key(const agent_node *n, const char *rest)
{
    return xasprintf("%zu/%s", n->index, rest);
}

int agent_enqueue(agent_node *n, const char *rest)
{
    _cleanup_free_ char *k = agent_node_key(n, rest);
    return workqueue_add(n->a->q, k);
}

/* ---- loop thread: informer handlers, resync ---- */

static void on_add(informer *inf, const char *key, json_t *obj, void *userdata)
{
    agent_enqueue(userdata, key);
}

static void on_update(informer *inf, const char *key, json_t *old_obj, json_t *new_obj,
                      void *userdata)
{
    agent_enqueue(userdata, key);
}

static void on_delete(informer *inf, const char *key, json_t *obj, void *userdata)
{
    agent_enqueue(userdata, key);
}

void agent_node_resync(agent_node *n)
{
    json_t **items = NULL;
    size_t count = 0;
    if (n->inf && informer_list(n->inf, &items, &count) == 0) {
        for (size_t i = 0; i < count; i++) {
            _cleanup_free_ char *k = NULL;
            if (informer_object_key(items[i], &k) == 0)
                agent_enqueue(n, k);
        }
        informer_items_free(items, count);
    }
    agent_enqueue(n, AGENT_HOUSEKEEPING);
}

void agent_resync(agent *a)
{
    for (size_t i = 0; i < a->n_nodes; i++)
        agent_node_resync(a->nodes[i]);
}

static void on_resync_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    agent_resync(w->data);
}

static void on_stop(struct ev_loop *loop, ev_async *w, int revents)
{
    agent *a = w->data;
    for (size_t i = 0; i < a->n_nodes; i++)
        a->nodes[i]->inf = informer_free(a->nodes[i]->inf);
    ev_timer_stop(loop, &a->resync_timer);
    ev_async_stop(loop, &a->stop_async);
    ev_break(loop, EVBREAK_ALL);
}

static void *loop_main(void *arg)
{
    agent *a = arg;
    ev_run(a->loop, 0);
    return NULL;
}

/* ---- workers and heartbeat ---- */

static void *worker_main(void *arg)
{
    agent *a = arg;
    char *key;
    while (workqueue_get(a->q, USEC_INFINITY, &key) == 0) {
        agent_process_key(a, key);
        workqueue_done(a->q, key);
        free(key);
    }
    return NULL;
}

void agent_heartbeat_kick(agent *a)
{
    pthread_mutex_lock(&a->hb_lock);
    a->hb_kick = true;
    pthread_cond_broadcast(&a->hb_cond);
    pthread_mutex_unlock(&a->hb_lock);
}

static void *heartbeat_main(void *arg)
{
    agent *a = arg;
    usec_t period = MAX(a->o.lease_ttl / 3, 100 * USEC_PER_MSEC);
    pthread_mutex_lock(&a->hb_lock);
    while (!a->hb_stop) {
        a->hb_kick = false;
        pthread_mutex_unlock(&a->hb_lock);
        bool unreachable = false; /* found by one identity: the others of this beat skip */
        for (size_t i = 0; i < a->n_nodes; i++)
            agent_node_heartbeat(a->nodes[i], now_monotonic(), &unreachable);
        pthread_mutex_lock(&a->hb_lock);
        if (a->hb_stop)
            break;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + (period % USEC_PER_SEC) * 1000;
        until.tv_sec += (time_t)(period / USEC_PER_SEC + ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        if (!a->hb_kick)
            pthread_cond_timedwait(&a->hb_cond, &a->hb_lock, &until);
    }
    pthread_mutex_unlock(&a->hb_lock);
    return NULL;
}

/* ---- nodes ---- */

static void on_backend_event(const char *domain_name, void *userdata)
{
    agent_node *n = userdata;
    if (!domain_name) {
        agent_hypervisor_suspect(n); /* the connection was lost */
        return;
    }
    _cleanup_free_ char *key = NULL;
    if (agent_domain_name_to_key(domain_name, &key) == 0)
        agent_enqueue(n, key);
}

static agent_node *node_free(agent_node *n)
{
    if (!n)
        return NULL;
    if (n->be) {
        if (n->events_subscribed)
            backend_events_unsubscribe(n->be);
        if (n->be_owned)
            backend_free(n->be);
    }
    informer_free(n->inf);
    json_decref(n->shutdowns);
    json_decref(n->orphans);
    json_decref(n->claiming);
    pthread_mutex_destroy(&n->lock);
    pthread_mutex_destroy(&n->claim_lock);
    free(n->name);
    free(n->dir);
    free(n->pool_dir);
    free(n->instance_dir);
    free(n);
    return NULL;
}

static int node_new(agent *a, size_t index, const char *name, agent_node **ret)
{
    agent_node *n = xnew(agent_node, 1);
    n->a = a;
    n->index = index;
    n->name = xstrdup(name);
    pthread_mutex_init(&n->lock, NULL);
    pthread_mutex_init(&n->claim_lock, NULL);
    n->claiming = json_object();
    n->shutdowns = json_object();
    n->orphans = json_object();
    n->dir = xasprintf("%s/nodes/%s", a->o.state_dir, name);
    n->pool_dir = xasprintf("%s/disks", n->dir);
    n->instance_dir = xasprintf("%s/instances", n->dir);
    int r = fs_mkdir_p(n->instance_dir, 0711);
    if (r < 0) {
        node_free(n);
        return backend_set_error(r, "cannot create %s: %s", n->dir, strerror(-r));
    }
    bool test = a->o.backend ? false : streq(a->o.uri, "test");
    if (a->o.backend) {
        n->be = a->o.backend;
    } else {
        _cleanup_free_ char *uri = NULL;
        if (test) {
            _cleanup_free_ char *xml = xasprintf("%s/node.xml", n->dir);
            r = backend_test_node_xml_write(
                xml, a->o.vcpus ? a->o.vcpus : 8, a->o.memory_mib ? a->o.memory_mib : 16384,
                a->o.disk_gib ? a->o.disk_gib : 100, a->o.pool_name, n->pool_dir);
            if (r < 0) {
                node_free(n);
                return backend_set_error(r, "cannot write %s: %s", xml, strerror(-r));
            }
            uri = xasprintf("test://%s", xml);
        } else
            uri = xstrdup(a->o.uri);
        backend_config cfg = {.uri = uri, .pool_name = a->o.pool_name, .pool_dir = n->pool_dir};
        r = backend_open(&cfg, &n->be);
        if (r < 0) {
            node_free(n);
            return r;
        }
        n->be_owned = true;
    }
    r = backend_host_info_get(n->be, &n->host);
    if (r < 0) {
        node_free(n);
        return r;
    }
    n->settings = (agent_settings){
        .node_name = n->name,
        .domain_type = a->o.domain_type,
        .arch = "x86_64",
        .machine = streq(a->o.domain_type, "test") ? NULL : a->o.machine,
        .pool_dir = n->pool_dir,
        .image_dir = image_cache_dir(a->images),
        .instance_dir = n->instance_dir,
    };
    n->env = (agent_node_env){
        .settings = &n->settings,
        .be = n->be,
        .images = a->images,
        .shutdown_timeout = a->o.shutdown_timeout,
        .start_timeout = a->o.start_timeout,
        .build_retries = a->o.build_retries,
        .console_log_status = a->o.console_log_status,
        .console_log_max = a->o.console_log_max,
        .pause_after = a->o.debug_pause_after,
        .pause_file = a->pause_file,
    };
    n->last_renew_ok = now_monotonic();
    *ret = n;
    return 0;
}

static int node_start_informer(agent_node *n)
{
    _cleanup_free_ char *sel = xasprintf("spec.nodeName=%s", n->name);
    informer_options io = {
        .kind = "Instance",
        .all_namespaces = true,
        .field_selector = sel,
    };
    informer_handlers h = {
        .on_add = on_add, .on_update = on_update, .on_delete = on_delete, .userdata = n};
    int r = informer_new(n->a->client, n->a->loop, &io, &h, &n->inf);
    if (r < 0)
        return r;
    return informer_start(n->inf);
}

/* ---- lifecycle ---- */

static char *dup_or(const char *s, const char *dflt)
{
    return s ? xstrdup(s) : dflt ? xstrdup(dflt) : NULL;
}

static int options_fill(agent *a, const agent_options *o)
{
    a->o = *o;
    if (!o->state_dir || (!o->client && !o->apiserver))
        return -EINVAL;
    if (o->hollow_nodes > AGENT_HOLLOW_NODES_MAX || (o->hollow_nodes && o->backend))
        return -EINVAL;
    if (!o->hollow_nodes && !o->node_name)
        return -EINVAL;
    a->o.apiserver = a->s_apiserver = dup_or(o->apiserver, NULL);
    a->o.node_name = a->s_node_name = dup_or(o->node_name, NULL);
    a->o.name_prefix = a->s_prefix = dup_or(o->name_prefix, "hollow-");
    a->o.uri = a->s_uri = dup_or(o->uri, "test");
    a->o.state_dir = a->s_state = xstrdup(o->state_dir);
    if (o->hollow_nodes && !streq(a->o.uri, "test"))
        return -EINVAL;
    const char *dt = o->domain_type;
    if (!dt) /* a borrowed backend is the tests' test driver unless they say otherwise */
        dt = o->backend || strneq(a->o.uri, "test", 4) ? "test" : "qemu";
    a->o.domain_type = a->s_domain_type = xstrdup(dt);
    a->o.machine = a->s_machine = dup_or(o->machine, "q35");
    a->o.zone = a->s_zone = dup_or(o->zone, NULL);
    a->o.pool_name = a->s_pool = dup_or(o->pool_name, "stratus");
    if (o->debug_pause_after && !agent_pause_point_valid(o->debug_pause_after))
        return -EINVAL;
    a->o.debug_pause_after = a->s_pause = dup_or(o->debug_pause_after, NULL);
    a->pause_file = xasprintf("%s/debug-paused", a->o.state_dir);
    /* Each hollow identity stands for a host that would run its own workers: a process with
     * many of them gets more (a build mostly waits on the apiserver), within a bound. */
    if (!a->o.workers)
        a->o.workers = MIN(AGENT_DEFAULT_WORKERS * MAX(a->o.hollow_nodes, 1u), AGENT_WORKERS_MAX);
    if (!a->o.lease_ttl)
        a->o.lease_ttl = AGENT_DEFAULT_LEASE_TTL;
    if (a->o.lease_ttl < USEC_PER_SEC)
        return -EINVAL;
    if (!a->o.fencing_timeout)
        a->o.fencing_timeout = 3 * a->o.lease_ttl;
    if (!a->o.resync_interval)
        a->o.resync_interval = AGENT_DEFAULT_RESYNC;
    if (!a->o.orphan_grace)
        a->o.orphan_grace = AGENT_DEFAULT_ORPHAN_GRACE;
    if (!a->o.shutdown_timeout)
        a->o.shutdown_timeout = AGENT_DEFAULT_SHUTDOWN_TIMEOUT;
    if (!a->o.start_timeout)
        a->o.start_timeout = AGENT_DEFAULT_START_TIMEOUT;
    if (!a->o.node_status_interval)
        a->o.node_status_interval = AGENT_DEFAULT_NODE_STATUS;
    if (!a->o.build_retries)
        a->o.build_retries = AGENT_DEFAULT_BUILD_RETRIES;
    if (!a->o.console_log_max)
        a->o.console_log_max = AGENT_DEFAULT_CONSOLE_LOG_MAX;
    return 0;
}

int agent_new(const agent_options *o, agent **ret)
{
    _cleanup_(agent_freep) agent *a = xnew(agent, 1);
    pthread_mutex_init(&a->hb_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* heartbeat_main's deadlines */
    pthread_cond_init(&a->hb_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&a->cache_lock, NULL);
    a->objcache = json_object();
    int r = options_fill(a, o);
    if (r < 0)
        return backend_set_error(r, "bad agent options");
    r = fs_mkdir_p(a->o.state_dir, 0711);
    if (r < 0)
        return backend_set_error(r, "cannot create %s: %s", a->o.state_dir, strerror(-r));
    _cleanup_free_ char *images = xasprintf("%s/images", a->o.state_dir);
    r = image_cache_new(images, 0, &a->images);
    if (r < 0)
        return backend_set_error(r, "cannot create %s: %s", images, strerror(-r));

    /* Threads started from here on (ours, gRPC's, libvirt's) must not take the program's
     * signals: it waits for them itself. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);

    if (o->client)
        a->client = o->client;
    else {
        r = rpc_client_new(a->o.apiserver, NULL, &a->client);
        if (r < 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            return backend_set_error(r, "bad apiserver address \"%s\"", a->o.apiserver);
        }
        a->client_owned = true;
    }
    workqueue_options qo = {.backoff_base = 100 * USEC_PER_MSEC};
    r = workqueue_new(&qo, &a->q);
    size_t n = a->o.hollow_nodes ? a->o.hollow_nodes : 1;
    a->nodes = xnew(agent_node *, n);
    for (size_t i = 0; r >= 0 && i < n; i++) {
        _cleanup_free_ char *name =
            a->o.hollow_nodes ? xasprintf("%s%zu", a->o.name_prefix, i) : xstrdup(a->o.node_name);
        r = node_new(a, i, name, &a->nodes[i]);
        if (r == 0)
            a->n_nodes++;
    }
    if (r < 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return r;
    }
    for (size_t i = 0; i < a->n_nodes; i++) {
        agent_node *nd = a->nodes[i];
        if (agent_node_register(nd) < 0)
            agent_log(a, AGENT_LOG_WARNING, nd->name,
                      "cannot register the node yet; retrying in the background");
        r = backend_events_subscribe(nd->be, on_backend_event, nd);
        nd->events_subscribed = r == 0;
        if (r < 0 && r != -EOPNOTSUPP)
            agent_log(a, AGENT_LOG_WARNING, nd->name, "no domain events (%s); relying on resync",
                      backend_last_error());
        r = 0;
    }

    a->loop = ev_loop_new(EVFLAG_AUTO);
    ev_async_init(&a->stop_async, on_stop);
    a->stop_async.data = a;
    ev_async_start(a->loop, &a->stop_async);
    double every = (double)a->o.resync_interval / USEC_PER_SEC;
    ev_timer_init(&a->resync_timer, on_resync_timer, every, every);
    a->resync_timer.data = a;
    ev_timer_start(a->loop, &a->resync_timer);
    for (size_t i = 0; r >= 0 && i < a->n_nodes; i++)
        r = node_start_informer(a->nodes[i]);
    if (r < 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return backend_set_error(r, "cannot start the instance informer");
    }
    r = -pthread_create(&a->loop_thread, NULL, loop_main, a);
    if (r == 0) {
        a->loop_started = true;
        r = -pthread_create(&a->heartbeat, NULL, heartbeat_main, a);
        a->heartbeat_started = r == 0;
    }
    a->workers = xnew(pthread_t, a->o.workers);
    for (size_t i = 0; r == 0 && i < a->o.workers; i++) {
        r = -pthread_create(&a->workers[i], NULL, worker_main, a);
        if (r == 0)
            a->n_workers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r < 0)
        return backend_set_error(r, "cannot start threads: %s", strerror(-r));
    /* Housekeeping at once: adopt what runs, and start the orphan grace clock. */
    for (size_t i = 0; i < a->n_nodes; i++)
        agent_enqueue(a->nodes[i], AGENT_HOUSEKEEPING);
    *ret = TAKE_PTR(a);
    return 0;
}

agent *agent_free(agent *a)
{
    if (!a)
        return NULL;
    if (a->q)
        workqueue_shutdown(a->q);
    for (size_t i = 0; i < a->n_workers; i++)
        pthread_join(a->workers[i], NULL);
    free(a->workers);
    if (a->heartbeat_started) {
        pthread_mutex_lock(&a->hb_lock);
        a->hb_stop = true;
        pthread_cond_broadcast(&a->hb_cond);
        pthread_mutex_unlock(&a->hb_lock);
        pthread_join(a->heartbeat, NULL);
    }
    if (a->loop_started) {
        ev_async_send(a->loop, &a->stop_async);
        pthread_join(a->loop_thread, NULL);
    } else if (a->loop) {
        for (size_t i = 0; i < a->n_nodes; i++)
            a->nodes[i]->inf = informer_free(a->nodes[i]->inf);
    }
    for (size_t i = 0; i < a->n_nodes; i++)
        node_free(a->nodes[i]);
    free(a->nodes);
    if (a->loop)
        ev_loop_destroy(a->loop);
    workqueue_free(a->q);
    image_cache_free(a->images);
    if (a->client_owned)
        rpc_client_free(a->client);
    json_decref(a->objcache);
    pthread_mutex_destroy(&a->hb_lock);
    pthread_cond_destroy(&a->hb_cond);
    pthread_mutex_destroy(&a->cache_lock);
    free(a->s_apiserver);
    free(a->s_node_name);
    free(a->s_prefix);
    free(a->s_uri);
    free(a->s_state);
    free(a->s_domain_type);
    free(a->s_machine);
    free(a->s_zone);
    free(a->s_pause);
    free(a->s_pool);
    free(a->pause_file);
    free(a);
    return NULL;
}

size_t agent_node_count(const agent *a)
{
    return a->n_nodes;
}

const char *agent_node_name(const agent *a, size_t i)
{
    return i < a->n_nodes ? a->nodes[i]->name : NULL;
}

backend *agent_node_backend(const agent *a, size_t i)
{
    return i < a->n_nodes ? a->nodes[i]->be : NULL;
}

bool agent_node_synced(const agent *a, size_t i)
{
    return i < a->n_nodes && a->nodes[i]->inf && informer_has_synced(a->nodes[i]->inf);
}

bool agent_node_fenced(const agent *a, size_t i)
{
    return i < a->n_nodes && atomic_load(&a->nodes[i]->fenced);
}

bool agent_node_hypervisor_down(const agent *a, size_t i)
{
    return i < a->n_nodes && atomic_load(&a->nodes[i]->hv_down);
}

void agent_stats_read(agent *a, agent_stats *ret)
{
    *ret = (agent_stats){
        .reconciles = atomic_load(&a->reconciles),
        .status_writes = atomic_load(&a->status_writes),
        .conflicts = atomic_load(&a->conflicts),
        .unbinds = atomic_load(&a->unbinds),
        .finalized = atomic_load(&a->finalized),
        .events = atomic_load(&a->events),
        .orphans = atomic_load(&a->orphans),
        .fencings = atomic_load(&a->fencings),
        .lease_failures = atomic_load(&a->lease_failures),
        .hypervisor_losses = atomic_load(&a->hypervisor_losses),
        .reconnects = atomic_load(&a->reconnects),
    };
}
