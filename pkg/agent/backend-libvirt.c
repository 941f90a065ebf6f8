/* The libvirt backend: one implementation for hollow nodes (`test:///<node.xml>`, libvirt's
 * in-memory test driver) and real ones (`qemu:///system`); the URI decides, and nothing here
 * branches on it except creating the storage pool, which the test driver's node.xml already has.
 *
 * Disks are volumes of one directory pool (overlays are volumes with a <backingStore>, which
 * libvirt creates with qemu-img on a real host); networks are libvirt networks; domains carry
 * <metadata><stratus:instance uid=… generation=… namespace=… name=… node=…/></metadata>, read
 * back by domain_list so a restarted agent can adopt them (and leave other nodes' alone).
 *
 * Events: libvirt needs an event loop registered before the first virConnectOpen and a thread
 * that runs it (PLATFORM.md). This file owns both, process-wide: the first open registers the
 * default implementation and starts one detached thread that runs it for the life of the process;
 * lifecycle callbacks run there and only hand the domain name to the subscriber. Errors are kept
 * off stderr (virSetErrorFunc) and turned into -errno plus backend_last_error().
 *
 * The connection can die (libvirtd restarted or killed: the remote driver sees EOF on its socket;
 * or stuck: keepalive, 5 s × 3 unanswered, closes it). libvirt never reopens it: every later call
 * fails. A close callback (virConnectRegisterCloseCallback, run on the event thread) tells the
 * subscriber with a NULL domain name; connected() asks virConnectIsAlive; reconnect() opens a new
 * connection, registers the lifecycle callback on it and swaps it in. Calls in flight hold their
 * own reference to the connection they started on (conn_get), so the swap never frees one under
 * them: they just fail on the dead one. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "agent/backend.h"
#include "base/alloc.h"
#include "base/buf.h"

#define METADATA_NS  "https://stratus.io/xmlns/instance/1"
#define METADATA_KEY "stratus"

typedef struct lv_backend {
    backend base;
    char *uri;
    char *pool_name;
    char *pool_dir;
    bool is_test;
    pthread_mutex_t conn_lock;      /* conn and event_id; held only to read or swap them */
    virConnectPtr conn;             /* never NULL once open; replaced by reconnect */
    int event_id;                   /* lifecycle callback on conn; -1: none */
    pthread_mutex_t reconnect_lock; /* one reconnect at a time */
    /* Set by events_subscribe (before any reconnect can run), cleared by unsubscribe. */
    backend_event_fn on_event;
    void *event_userdata;
    /* libvirt calls a registration's free function once no dispatch can use it any more; every
     * connection this backend had may hold one. Unsubscribing waits until none is left. */
    pthread_mutex_t event_lock;
    pthread_cond_t event_cond;
    unsigned event_regs;
} lv_backend;

/* ---- process-wide: error silencing and the event loop thread ---- */

static void silent_error(void *userdata, virErrorPtr err) {}

static void *event_thread(void *arg)
{
    for (;;)
        if (virEventRunDefaultImpl() < 0)
            break;
    return NULL;
}

static int event_setup_result;

static void event_setup(void)
{
    virSetErrorFunc(NULL, silent_error);
    if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
        event_setup_result = -EIO;
        return;
    }
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    event_setup_result = -pthread_create(&t, &a, event_thread, NULL);
    pthread_attr_destroy(&a);
}

/* The libvirt error of this thread as a -errno, with its text kept for backend_last_error(). */
static int lv_error(const char *what)
{
    virErrorPtr e = virGetLastError();
    int r = -EIO;
    if (e) {
        switch (e->code) {
        case VIR_ERR_NO_DOMAIN:
        case VIR_ERR_NO_STORAGE_VOL:
        case VIR_ERR_NO_STORAGE_POOL:
        case VIR_ERR_NO_NETWORK:
            r = -ENOENT;
            break;
        case VIR_ERR_OPERATION_INVALID:
            r = -EBUSY;
            break;
        case VIR_ERR_NO_SUPPORT:
            r = -EOPNOTSUPP;
            break;
        case VIR_ERR_SYSTEM_ERROR:
        case VIR_ERR_NO_CONNECT:
        case VIR_ERR_RPC:
            r = -EHOSTDOWN;
            break;
        case VIR_ERR_XML_ERROR:
        case VIR_ERR_XML_DETAIL:
        case VIR_ERR_INVALID_ARG:
            r = -EINVAL;
            break;
        default:
            break;
        }
    }
    backend_set_error(r, "%s: %s", what, e && e->message ? e->message : "libvirt error");
    virResetLastError();
    return r;
}

static lv_backend *LV(backend *b)
{
    return (lv_backend *)b;
}

/* The current connection with a reference of the caller's own (release with conn_put): a
 * reconnect may swap lb->conn at any time. */
static virConnectPtr conn_get(lv_backend *lb)
{
    pthread_mutex_lock(&lb->conn_lock);
    virConnectPtr c = lb->conn;
    virConnectRef(c);
    pthread_mutex_unlock(&lb->conn_lock);
    return c;
}

static void conn_putp(virConnectPtr *c)
{
    if (*c)
        virConnectClose(*c); /* drops one reference; the last one closes */
}
#define _cleanup_conn_ _cleanup_(conn_putp)

/* ---- connections ---- */

static void conn_closed(virConnectPtr conn, int reason, void *opaque)
{
    lv_backend *lb = opaque;
    pthread_mutex_lock(&lb->conn_lock);
    bool current = conn == lb->conn;
    pthread_mutex_unlock(&lb->conn_lock);
    /* libvirt holds the close callback's lock here: hand over, call nothing of libvirt's. Under
     * event_lock, so that once unsubscribe has cleared on_event the subscriber is not called. */
    pthread_mutex_lock(&lb->event_lock);
    if (current && lb->on_event)
        lb->on_event(NULL, lb->event_userdata);
    pthread_mutex_unlock(&lb->event_lock);
}

static int lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
    lv_backend *lb = opaque;
    const char *name = virDomainGetName(dom);
    if (name && lb->on_event)
        lb->on_event(name, lb->event_userdata);
    return 0;
}

static void lifecycle_released(void *opaque)
{
    lv_backend *lb = opaque;
    pthread_mutex_lock(&lb->event_lock);
    lb->event_regs--;
    pthread_cond_broadcast(&lb->event_cond);
    pthread_mutex_unlock(&lb->event_lock);
}

/* Registers the lifecycle callback on c: its id, or -errno. */
static int lifecycle_register(lv_backend *lb, virConnectPtr c)
{
    pthread_mutex_lock(&lb->event_lock);
    lb->event_regs++;
    pthread_mutex_unlock(&lb->event_lock);
    int id = virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                              VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb), lb,
                                              lifecycle_released);
    if (id < 0) {
        int r = lv_error("domain events");
        pthread_mutex_lock(&lb->event_lock);
        lb->event_regs--;
        pthread_mutex_unlock(&lb->event_lock);
        return r;
    }
    return id;
}

static int ensure_pool(lv_backend *lb, virConnectPtr c)
{
    virStoragePoolPtr pool = virStoragePoolLookupByName(c, lb->pool_name);
    if (!pool) {
        virResetLastError();
        if (!lb->pool_dir)
            return backend_set_error(-EINVAL, "storage pool %s is missing and no folder was given",
                                     lb->pool_name);
        if (mkdir(lb->pool_dir, 0711) < 0 && errno != EEXIST)
            return backend_set_error(-errno, "cannot create %s: %s", lb->pool_dir, strerror(errno));
        _cleanup_free_ char *xml = xasprintf("<pool type='dir'><name>%s</name><target><path>%s"
                                             "</path></target></pool>",
                                             lb->pool_name, lb->pool_dir);
        pool = virStoragePoolDefineXML(c, xml, 0);
        if (!pool)
            return lv_error("define storage pool");
        virStoragePoolSetAutostart(pool, 1);
    }
    int r = 0;
    if (virStoragePoolIsActive(pool) != 1 && virStoragePoolCreate(pool, 0) < 0)
        r = lv_error("start storage pool");
    virStoragePoolFree(pool);
    return r;
}

/* Lets go of a connection this backend opened: its callbacks first (they hold references to
 * it), then our reference. Errors are ignored: on a dead connection they are expected. */
static void conn_release(virConnectPtr c, int event_id)
{
    if (event_id >= 0 && virConnectDomainEventDeregisterAny(c, event_id) < 0)
        virResetLastError();
    if (virConnectUnregisterCloseCallback(c, conn_closed) < 0)
        virResetLastError(); /* already called (it unregisters itself), or never registered */
    virConnectClose(c);
}

/* A new connection to lb->uri with keepalive and the close callback, and the storage pool. */
static int conn_open(lv_backend *lb, virConnectPtr *ret)
{
    virConnectPtr c = virConnectOpen(lb->uri);
    if (!c)
        return lv_error(lb->uri);
    /* A libvirtd that hangs instead of closing its socket: give up on it after ~20 s. Only the
     * remote driver has keepalive (the test driver is in-process). */
    if (!lb->is_test && virConnectSetKeepAlive(c, 5, 3) < 0)
        virResetLastError();
    if (virConnectRegisterCloseCallback(c, conn_closed, lb, NULL) < 0)
        virResetLastError(); /* drivers without it (the test driver) never close */
    int r = ensure_pool(lb, c);
    if (r < 0) {
        conn_release(c, -1);
        return r;
    }
    *ret = c;
    return 0;
}

static void lv_close(backend *b)
{
    lv_backend *lb = LV(b);
    if (lb->conn) {
        backend_events_unsubscribe(b);
        conn_release(lb->conn, -1);
    }
    pthread_mutex_destroy(&lb->conn_lock);
    pthread_mutex_destroy(&lb->reconnect_lock);
    pthread_mutex_destroy(&lb->event_lock);
    pthread_cond_destroy(&lb->event_cond);
    free(lb->uri);
    free(lb->pool_name);
    free(lb->pool_dir);
    free(lb);
}

static int lv_open(const backend_config *cfg, backend **ret)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, event_setup);
    if (event_setup_result < 0)
        return backend_set_error(event_setup_result, "libvirt event loop: %s",
                                 strerror(-event_setup_result));
    lv_backend *lb = xnew(lv_backend, 1);
    lb->event_id = -1;
    pthread_mutex_init(&lb->conn_lock, NULL);
    pthread_mutex_init(&lb->reconnect_lock, NULL);
    pthread_mutex_init(&lb->event_lock, NULL);
    pthread_cond_init(&lb->event_cond, NULL);
    lb->uri = xstrdup(cfg->uri);
    lb->pool_name = xstrdup(cfg->pool_name ? cfg->pool_name : "stratus");
    lb->pool_dir = cfg->pool_dir ? xstrdup(cfg->pool_dir) : NULL;
    lb->is_test = strneq(cfg->uri, "test:", 5);
    int r = conn_open(lb, &lb->conn);
    if (r < 0) {
        lv_close(&lb->base);
        return r;
    }
    *ret = &lb->base;
    return 0;
}

static bool lv_connected(backend *b)
{
    _cleanup_conn_ virConnectPtr c = conn_get(LV(b));
    int alive = virConnectIsAlive(c);
    if (alive < 0)
        virResetLastError();
    return alive == 1;
}

static int lv_reconnect(backend *b)
{
    lv_backend *lb = LV(b);
    pthread_mutex_lock(&lb->reconnect_lock);
    if (lv_connected(b)) {
        pthread_mutex_unlock(&lb->reconnect_lock);
        return 0;
    }
    virConnectPtr c = NULL;
    int r = conn_open(lb, &c);
    int id = -1;
    if (r == 0 && lb->on_event) {
        id = lifecycle_register(lb, c);
        if (id < 0) {
            r = id;
            conn_release(c, -1);
        }
    }
    if (r == 0) {
        pthread_mutex_lock(&lb->conn_lock);
        virConnectPtr old = lb->conn;
        int old_id = lb->event_id;
        lb->conn = c;
        lb->event_id = lb->on_event ? id : -1;
        pthread_mutex_unlock(&lb->conn_lock);
        conn_release(old, old_id);
    }
    pthread_mutex_unlock(&lb->reconnect_lock);
    return r;
}

/* ---- host ---- */

static void version_string(unsigned long v, char *out, size_t n)
{
    snprintf(out, n, "%lu.%lu.%lu", v / 1000000, (v / 1000) % 1000, v % 1000);
}

static int lv_host_info(backend *b, backend_host_info *ret)
{
    lv_backend *lb = LV(b);
    _cleanup_conn_ virConnectPtr c = conn_get(lb);
    virNodeInfo ni;
    if (virNodeGetInfo(c, &ni) < 0)
        return lv_error("node info");
    backend_host_info h = {0};
    h.vcpus = ni.cpus;
    h.memory_mib = (int64_t)(ni.memory / 1024);
    snprintf(h.cpu_model, sizeof(h.cpu_model), "%s", ni.model);
    snprintf(h.arch, sizeof(h.arch), "%s", ni.model);
    virStoragePoolPtr pool = virStoragePoolLookupByName(c, lb->pool_name);
    if (pool) {
        virStoragePoolInfo pi;
        if (virStoragePoolGetInfo(pool, &pi) == 0)
            h.disk_gib = (int64_t)(pi.capacity >> 30);
        virStoragePoolFree(pool);
    } else
        virResetLastError();
    char *host = virConnectGetHostname(c);
    if (host) {
        snprintf(h.hostname, sizeof(h.hostname), "%s", host);
        free(host);
    } else
        virResetLastError();
    const char *type = virConnectGetType(c);
    snprintf(h.hypervisor, sizeof(h.hypervisor), "%s", type ? type : "");
    unsigned long v = 0;
    if (virConnectGetVersion(c, &v) == 0)
        version_string(v, h.hypervisor_version, sizeof(h.hypervisor_version));
    if (virConnectGetLibVersion(c, &v) == 0)
        version_string(v, h.libvirt_version, sizeof(h.libvirt_version));
    virResetLastError();
    *ret = h;
    return 0;
}

/* ---- domains ---- */

static backend_domain_state map_state(int state, int reason)
{
    switch (state) {
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED:
        return BACKEND_DOMAIN_RUNNING;
    case VIR_DOMAIN_PAUSED:
    case VIR_DOMAIN_PMSUSPENDED:
        return BACKEND_DOMAIN_PAUSED;
    case VIR_DOMAIN_SHUTDOWN:
        return BACKEND_DOMAIN_STOPPING;
    case VIR_DOMAIN_SHUTOFF:
        return reason == VIR_DOMAIN_SHUTOFF_CRASHED ? BACKEND_DOMAIN_CRASHED
                                                    : BACKEND_DOMAIN_SHUTOFF;
    case VIR_DOMAIN_CRASHED:
        return BACKEND_DOMAIN_CRASHED;
    default:
        return BACKEND_DOMAIN_OTHER;
    }
}

/* The domain holds its own reference to the connection it came from. */
static int lookup(lv_backend *lb, const char *name, virDomainPtr *ret)
{
    _cleanup_conn_ virConnectPtr c = conn_get(lb);
    virDomainPtr d = virDomainLookupByName(c, name);
    if (!d)
        return lv_error(name);
    *ret = d;
    return 0;
}

static int lv_domain_define(backend *b, const char *xml, char ret_uuid[BACKEND_UUID_MAX])
{
    _cleanup_conn_ virConnectPtr c = conn_get(LV(b));
    virDomainPtr d = virDomainDefineXML(c, xml);
    if (!d)
        return lv_error("define domain");
    int r = 0;
    if (virDomainGetUUIDString(d, ret_uuid) < 0)
        r = lv_error("domain uuid");
    virDomainFree(d);
    return r;
}

/* Runs op on a domain unless it is already in the state op leads to (active == want_active
 * means there is nothing to do). */
static int domain_op(backend *b, const char *name, int want_active, int (*op)(virDomainPtr),
                     const char *what)
{
    virDomainPtr d = NULL;
    int r = lookup(LV(b), name, &d);
    if (r < 0)
        return r;
    int active = virDomainIsActive(d);
    if (active == want_active) {
        virDomainFree(d);
        return 0;
    }
    if (op(d) < 0) {
        r = lv_error(what);
        /* Lost a race with the guest or another caller: it is in the state asked for. */
        if (r == -EBUSY && virDomainIsActive(d) == want_active)
            r = 0;
    }
    virDomainFree(d);
    return r;
}

static int lv_domain_start(backend *b, const char *name)
{
    return domain_op(b, name, 1, virDomainCreate, "start domain");
}

/* A start with work beside it (lv_domain_start_with). */
typedef struct lv_beside {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* start_returned changed */
    bool start_returned;
    virDomainPtr dom;
    backend_beside_fn fn;
    void *userdata;
    int result;
} lv_beside;

#define BESIDE_POLL_USEC 5000

/* Waits until the domain has left shut-off (paused, starting up: qemu runs, the NICs' ports
 * exist) or its start returned, then runs the work. While libvirt prepares the domain it holds
 * the domain's lock, so a state query made then returns only once qemu runs (40–150 ms here):
 * the poll seldom turns more than twice. */
static void *beside_main(void *arg)
{
    lv_beside *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        bool returned = s->start_returned;
        pthread_mutex_unlock(&s->lock);
        if (returned)
            break;
        int state = VIR_DOMAIN_NOSTATE;
        if (virDomainGetState(s->dom, &state, NULL, 0) < 0)
            virResetLastError(); /* the start will tell */
        else if (state != VIR_DOMAIN_SHUTOFF)
            break;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += BESIDE_POLL_USEC * 1000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&s->lock);
        if (!s->start_returned)
            pthread_cond_timedwait(&s->cond, &s->lock, &until);
        pthread_mutex_unlock(&s->lock);
    }
    s->result = s->fn(s->userdata);
    return NULL;
}

static int lv_domain_start_with(backend *b, const char *name, backend_beside_fn fn, void *userdata,
                                int *ret_fn)
{
    virDomainPtr d = NULL;
    int r = lookup(LV(b), name, &d);
    if (r < 0) {
        char start_error[BACKEND_ERROR_MAX];
        snprintf(start_error, sizeof(start_error), "%s", backend_last_error());
        *ret_fn = fn(userdata);
        return backend_set_error(r, "%s", start_error);
    }
    lv_beside s = {.dom = d, .fn = fn, .userdata = userdata};
    pthread_mutex_init(&s.lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s.cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_t th;
    bool beside = pthread_create(&th, NULL, beside_main, &s) == 0;
    if (virDomainIsActive(d) != 1 && virDomainCreate(d) < 0) {
        r = lv_error("start domain");
        /* Lost a race with another caller: it runs. */
        if (r == -EBUSY && virDomainIsActive(d) == 1)
            r = 0;
    }
    pthread_mutex_lock(&s.lock);
    s.start_returned = true;
    pthread_cond_signal(&s.cond);
    pthread_mutex_unlock(&s.lock);
    char start_error[BACKEND_ERROR_MAX];
    snprintf(start_error, sizeof(start_error), "%s", backend_last_error());
    if (beside)
        pthread_join(th, NULL);
    else
        s.result = fn(userdata);
    pthread_cond_destroy(&s.cond);
    pthread_mutex_destroy(&s.lock);
    virDomainFree(d);
    *ret_fn = s.result;
    return r < 0 ? backend_set_error(r, "%s", start_error) : 0;
}

static int lv_domain_shutdown(backend *b, const char *name)
{
    return domain_op(b, name, 0, virDomainShutdown, "shut down domain");
}

static int lv_domain_destroy(backend *b, const char *name)
{
    return domain_op(b, name, 0, virDomainDestroy, "destroy domain");
}

static int lv_domain_undefine(backend *b, const char *name)
{
    virDomainPtr d = NULL;
    int r = lookup(LV(b), name, &d);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    if (virDomainUndefine(d) < 0)
        r = lv_error("undefine domain");
    virDomainFree(d);
    return r == -ENOENT ? 0 : r;
}

static int lv_domain_state(backend *b, const char *name, backend_domain_state *ret_state,
                           char ret_uuid[BACKEND_UUID_MAX])
{
    virDomainPtr d = NULL;
    int r = lookup(LV(b), name, &d);
    if (r < 0)
        return r;
    int state = 0, reason = 0;
    char uuid[VIR_UUID_STRING_BUFLEN];
    if (virDomainGetState(d, &state, &reason, 0) < 0 || virDomainGetUUIDString(d, uuid) < 0)
        r = lv_error("domain state");
    virDomainFree(d);
    if (r < 0)
        return r;
    *ret_state = map_state(state, reason);
    if (ret_uuid)
        snprintf(ret_uuid, BACKEND_UUID_MAX, "%s", uuid);
    return 0;
}

/* The value of attribute `name` in an XML start tag, unescaped; NULL when absent. Enough for the
 * one element we write ourselves. */
static char *xml_attr(const char *tag, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = tag; (p = strstr(p, name)); p += n) {
        if (p > tag && p[-1] != ' ' && p[-1] != '\t' && p[-1] != '\n')
            continue;
        const char *q = p + n;
        if (*q != '=')
            continue;
        q++;
        char quote = *q;
        if (quote != '"' && quote != '\'')
            continue;
        const char *end = strchr(++q, quote);
        if (!end)
            return NULL;
        buf out = BUF_INIT(BACKEND_NAME_MAX);
        while (q < end) {
            static const struct {
                const char *ent;
                char c;
            } ents[] = {
                {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
            size_t i;
            for (i = 0; i < ELEMENTSOF(ents); i++)
                if (strneq(q, ents[i].ent, strlen(ents[i].ent)))
                    break;
            char c = i < ELEMENTSOF(ents) ? ents[i].c : *q;
            q += i < ELEMENTSOF(ents) ? strlen(ents[i].ent) : 1;
            if (buf_append(&out, &c, 1) < 0) {
                buf_done(&out);
                return NULL;
            }
        }
        return buf_steal(&out, NULL);
    }
    return NULL;
}

static void read_metadata(virDomainPtr d, backend_domain *out)
{
    char *md = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, 0);
    if (!md) {
        virResetLastError();
        return;
    }
    out->uid = xml_attr(md, "uid");
    out->namespace_ = xml_attr(md, "namespace");
    out->instance = xml_attr(md, "name");
    out->node = xml_attr(md, "node");
    _cleanup_free_ char *gen = xml_attr(md, "generation");
    out->generation = gen ? strtoll(gen, NULL, 10) : 0;
    free(md);
}

static int lv_domain_list(backend *b, backend_domain **ret, size_t *ret_n)
{
    virDomainPtr *doms = NULL;
    _cleanup_conn_ virConnectPtr c = conn_get(LV(b));
    int n = virConnectListAllDomains(c, &doms, 0);
    if (n < 0)
        return lv_error("list domains");
    size_t keep = MIN((size_t)n, (size_t)BACKEND_LIST_MAX);
    backend_domain *out = xnew(backend_domain, keep + 1);
    size_t m = 0;
    for (int i = 0; i < n; i++) {
        if (m < keep) {
            backend_domain *o = &out[m];
            const char *name = virDomainGetName(doms[i]);
            int state = 0, reason = 0;
            if (name && virDomainGetState(doms[i], &state, &reason, 0) == 0 &&
                virDomainGetUUIDString(doms[i], o->uuid) == 0) {
                o->name = xstrdup(name);
                o->state = map_state(state, reason);
                read_metadata(doms[i], o);
                m++;
            } else
                virResetLastError(); /* went away while we listed */
        }
        virDomainFree(doms[i]);
    }
    free(doms);
    *ret = out;
    *ret_n = m;
    return 0;
}

static int lv_console_log_path(backend *b, const char *name, char **ret)
{
    virDomainPtr d = NULL;
    int r = lookup(LV(b), name, &d);
    if (r < 0)
        return r;
    char *xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
    virDomainFree(d);
    if (!xml)
        return lv_error("domain XML");
    const char *p = strstr(xml, "<log file=");
    char *path = p ? xml_attr(p, "file") : NULL;
    free(xml);
    if (!path)
        return backend_set_error(-ENOENT, "domain %s has no console log", name);
    *ret = path;
    return 0;
}

/* ---- storage ---- */

static int pool_get(lv_backend *lb, virStoragePoolPtr *ret)
{
    _cleanup_conn_ virConnectPtr c = conn_get(lb);
    virStoragePoolPtr p = virStoragePoolLookupByName(c, lb->pool_name);
    if (!p)
        return lv_error("storage pool");
    *ret = p;
    return 0;
}

static int vol_path(virStorageVolPtr v, char **ret)
{
    char *p = virStorageVolGetPath(v);
    if (!p)
        return lv_error("volume path");
    *ret = p;
    return 0;
}

static int lv_disk_create(backend *b, const backend_disk_request *d, char **ret_path)
{
    lv_backend *lb = LV(b);
    if (!d->name || !*d->name || strchr(d->name, '/') || strpbrk(d->name, "<>&'\"") ||
        (d->backing_path && strpbrk(d->backing_path, "<>&'\"")))
        return backend_set_error(-EINVAL, "bad disk name or backing path");
    virStoragePoolPtr pool = NULL;
    int r = pool_get(lb, &pool);
    if (r < 0)
        return r;
    virStorageVolPtr v = virStorageVolLookupByName(pool, d->name);
    if (!v) {
        virResetLastError();
        buf x = BUF_INIT(0);
        buf_printf(&x,
                   "<volume><name>%s</name><capacity unit='bytes'>%llu</capacity>"
                   "<target><format type='%s'/><permissions><mode>0600</mode></permissions>"
                   "</target>",
                   d->name, (unsigned long long)d->size_bytes,
                   backend_disk_format_to_string(d->format));
        if (d->backing_path)
            buf_printf(&x, "<backingStore><path>%s</path><format type='%s'/></backingStore>",
                       d->backing_path, backend_disk_format_to_string(d->backing_format));
        buf_append_str(&x, "</volume>");
        v = virStorageVolCreateXML(pool, x.data, 0);
        buf_done(&x);
        if (!v)
            r = lv_error("create volume");
    }
    virStoragePoolFree(pool);
    if (r < 0)
        return r;
    r = vol_path(v, ret_path);
    virStorageVolFree(v);
    return r;
}

static int lv_disk_delete(backend *b, const char *name)
{
    virStoragePoolPtr pool = NULL;
    int r = pool_get(LV(b), &pool);
    if (r < 0)
        return r;
    virStorageVolPtr v = virStorageVolLookupByName(pool, name);
    virStoragePoolFree(pool);
    if (!v) {
        r = lv_error("volume");
        return r == -ENOENT ? 0 : r;
    }
    if (virStorageVolDelete(v, 0) < 0)
        r = lv_error("delete volume");
    virStorageVolFree(v);
    return r == -ENOENT ? 0 : r;
}

static int lv_disk_list(backend *b, char ***ret_names, size_t *ret_n)
{
    lv_backend *lb = LV(b);
    virStoragePoolPtr pool = NULL;
    int r = pool_get(lb, &pool);
    if (r < 0)
        return r;
    if (!lb->is_test && virStoragePoolRefresh(pool, 0) < 0)
        virResetLastError();
    virStorageVolPtr *vols = NULL;
    int n = virStoragePoolListAllVolumes(pool, &vols, 0);
    virStoragePoolFree(pool);
    if (n < 0)
        return lv_error("list volumes");
    size_t keep = MIN((size_t)n, (size_t)BACKEND_LIST_MAX);
    char **names = xnew(char *, keep + 1);
    size_t m = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = virStorageVolGetName(vols[i]);
        if (nm && m < keep)
            names[m++] = xstrdup(nm);
        virStorageVolFree(vols[i]);
    }
    free(vols);
    *ret_names = names;
    *ret_n = m;
    return 0;
}

/* ---- networks ---- */

static int lv_network_ensure(backend *b, const backend_network_request *n)
{
    lv_backend *lb = LV(b);
    if (!n->name || strpbrk(n->name, "<>&'\"/") || !n->bridge || strpbrk(n->bridge, "<>&'\"/") ||
        (n->gateway && strpbrk(n->gateway, "<>&'\"")))
        return backend_set_error(-EINVAL, "bad network name, bridge or gateway");
    _cleanup_conn_ virConnectPtr c = conn_get(lb);
    virNetworkPtr net = virNetworkLookupByName(c, n->name);
    int r = 0;
    if (!net) {
        virResetLastError();
        buf x = BUF_INIT(0);
        /* No DNS from libvirt. With DHCP, libvirt runs dnsmasq (DHCP only) once the first
         * host entry is added. */
        buf_printf(&x, "<network><name>%s</name><bridge name='%s' stp='off'/><dns enable='no'/>",
                   n->name, n->bridge);
        if (n->mtu > 0)
            buf_printf(&x, "<mtu size='%d'/>", n->mtu);
        /* DHCP, when wanted, hands out only the static entries network_host_add makes: IPAM
         * owns every address, so there is no dynamic range. */
        if (n->gateway)
            buf_printf(&x, "<ip address='%s' prefix='%d'>%s</ip>", n->gateway, n->prefix,
                       n->dhcp ? "<dhcp/>" : "");
        buf_append_str(&x, "</network>");
        net = virNetworkDefineXML(c, x.data);
        buf_done(&x);
        if (!net) {
            /* Another worker building an instance on the same network may have defined it
             * since the lookup: use theirs. */
            int e = lv_error("define network");
            net = virNetworkLookupByName(c, n->name);
            if (!net)
                return e;
            virResetLastError();
        } else if (!lb->is_test)
            virNetworkSetAutostart(net, 1);
    }
    if (virNetworkIsActive(net) != 1 && virNetworkCreate(net) < 0) {
        r = lv_error("start network");
        if (r == -EBUSY && virNetworkIsActive(net) == 1)
            r = 0;
    }
    virNetworkFree(net);
    return r;
}

/* One static DHCP entry of a network, as libvirt shows it. */
typedef struct dhcp_host {
    char *mac, *ip, *name;
} dhcp_host;

static void dhcp_hosts_free(dhcp_host *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].mac);
        free(h[i].ip);
        free(h[i].name);
    }
    free(h);
}

/* The <host> entries inside the <dhcp> elements of a network's XML. */
static int dhcp_hosts_read(virNetworkPtr net, dhcp_host **ret, size_t *ret_n)
{
    char *xml = virNetworkGetXMLDesc(net, 0);
    if (!xml)
        return lv_error("network XML");
    dhcp_host *hosts = NULL;
    size_t n = 0;
    for (const char *d = xml; (d = strstr(d, "<dhcp>"));) {
        const char *end = strstr(d, "</dhcp>");
        if (!end)
            break;
        for (const char *h = d; (h = strstr(h, "<host ")) && h < end; h++) {
            const char *close = strchr(h, '>');
            if (!close || n >= BACKEND_LIST_MAX)
                break;
            _cleanup_free_ char *tag = xstrndup(h, (size_t)(close - h + 1));
            hosts = xrealloc(hosts, (n + 1) * sizeof(*hosts));
            hosts[n++] = (dhcp_host){.mac = xml_attr(tag, "mac"),
                                     .ip = xml_attr(tag, "ip"),
                                     .name = xml_attr(tag, "name")};
        }
        d = end;
    }
    free(xml);
    *ret = hosts;
    *ret_n = n;
    return 0;
}

static bool same(const char *a, const char *b)
{
    return a && b && strcasecmp(a, b) == 0;
}

/* Adds or deletes one <host> entry, in the running network and its definition. */
static int dhcp_host_update(virNetworkPtr net, bool add, const dhcp_host *h)
{
    buf x = BUF_INIT(0);
    buf_append_str(&x, "<host");
    if (h->mac)
        buf_printf(&x, " mac='%s'", h->mac);
    if (h->name)
        buf_printf(&x, " name='%s'", h->name);
    if (h->ip)
        buf_printf(&x, " ip='%s'", h->ip);
    buf_append_str(&x, "/>");
    unsigned flags = VIR_NETWORK_UPDATE_AFFECT_CONFIG;
    if (virNetworkIsActive(net) == 1)
        flags |= VIR_NETWORK_UPDATE_AFFECT_LIVE;
    int r = 0;
    if (virNetworkUpdate(
            net, add ? VIR_NETWORK_UPDATE_COMMAND_ADD_LAST : VIR_NETWORK_UPDATE_COMMAND_DELETE,
            VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, x.data, flags) < 0)
        r = lv_error(add ? "add DHCP host" : "delete DHCP host");
    buf_done(&x);
    return r;
}

static bool xml_safe(const char *s)
{
    return s && *s && !strpbrk(s, "<>&'\"/");
}

static int lv_network_host_add(backend *b, const char *network, const char *mac, const char *ip)
{
    if (!xml_safe(network) || !xml_safe(mac) || !xml_safe(ip))
        return backend_set_error(-EINVAL, "bad network, MAC or IP address");
    _cleanup_conn_ virConnectPtr c = conn_get(LV(b));
    virNetworkPtr net = virNetworkLookupByName(c, network);
    if (!net)
        return lv_error(network);
    int r = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        dhcp_host *hosts = NULL;
        size_t n = 0;
        r = dhcp_hosts_read(net, &hosts, &n);
        bool present = false;
        for (size_t i = 0; r == 0 && i < n; i++) {
            if (same(hosts[i].mac, mac) && same(hosts[i].ip, ip))
                present = true;
            else if (same(hosts[i].mac, mac) || same(hosts[i].ip, ip))
                r = dhcp_host_update(net, false, &hosts[i]); /* stale: IPAM moved on */
        }
        dhcp_hosts_free(hosts, n);
        if (r < 0 || present)
            break;
        dhcp_host want = {.mac = (char *)mac, .ip = (char *)ip};
        r = dhcp_host_update(net, true, &want);
        if (r == 0)
            break;
        /* Lost a race with another worker adding or removing an entry: look again. */
    }
    virNetworkFree(net);
    return r;
}

static int lv_network_host_remove(backend *b, const char *network, const char *mac, const char *ip)
{
    if (!xml_safe(network) || !xml_safe(mac) || !xml_safe(ip))
        return backend_set_error(-EINVAL, "bad network, MAC or IP address");
    _cleanup_conn_ virConnectPtr c = conn_get(LV(b));
    virNetworkPtr net = virNetworkLookupByName(c, network);
    if (!net) {
        int r = lv_error(network);
        return r == -ENOENT ? 0 : r;
    }
    dhcp_host *hosts = NULL;
    size_t n = 0;
    int r = dhcp_hosts_read(net, &hosts, &n);
    for (size_t i = 0; r == 0 && i < n; i++)
        if (same(hosts[i].mac, mac) && same(hosts[i].ip, ip))
            r = dhcp_host_update(net, false, &hosts[i]);
    dhcp_hosts_free(hosts, n);
    virNetworkFree(net);
    return r;
}

/* ---- events ---- */

static int lv_events_subscribe(backend *b, backend_event_fn fn, void *userdata)
{
    lv_backend *lb = LV(b);
    if (lb->on_event)
        return backend_set_error(-EALREADY, "already subscribed");
    lb->on_event = fn;
    lb->event_userdata = userdata;
    _cleanup_conn_ virConnectPtr c = conn_get(lb);
    int id = lifecycle_register(lb, c);
    if (id < 0) {
        lb->on_event = NULL;
        return id;
    }
    pthread_mutex_lock(&lb->conn_lock);
    lb->event_id = id;
    pthread_mutex_unlock(&lb->conn_lock);
    return 0;
}

static int lv_events_unsubscribe(backend *b)
{
    lv_backend *lb = LV(b);
    if (!lb->on_event)
        return 0;
    pthread_mutex_lock(&lb->conn_lock);
    int id = lb->event_id;
    lb->event_id = -1;
    pthread_mutex_unlock(&lb->conn_lock);
    int r = 0;
    if (id >= 0) {
        _cleanup_conn_ virConnectPtr c = conn_get(lb);
        if (virConnectDomainEventDeregisterAny(c, id) < 0) {
            r = lv_error("events");
            /* A dead connection forgets the callback locally and fails to tell libvirtd. */
            if (virConnectIsAlive(c) != 1)
                r = 0;
            virResetLastError();
        }
    }
    /* A dispatch in progress on the event thread may still be inside lifecycle_cb, and the
     * callbacks of connections given up by reconnect are released when they go. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&lb->event_lock);
    while (lb->event_regs > 0)
        if (pthread_cond_timedwait(&lb->event_cond, &lb->event_lock, &until) != 0)
            break;
    lb->on_event = NULL;
    pthread_mutex_unlock(&lb->event_lock);
    return r;
}

const backend_ops backend_libvirt_ops = {
    .name = "libvirt",
    .open = lv_open,
    .close = lv_close,
    .host_info = lv_host_info,
    .domain_define = lv_domain_define,
    .domain_start = lv_domain_start,
    .domain_start_with = lv_domain_start_with,
    .domain_shutdown = lv_domain_shutdown,
    .domain_destroy = lv_domain_destroy,
    .domain_undefine = lv_domain_undefine,
    .domain_state = lv_domain_state,
    .domain_list = lv_domain_list,
    .disk_create = lv_disk_create,
    .disk_delete = lv_disk_delete,
    .disk_list = lv_disk_list,
    .network_ensure = lv_network_ensure,
    .network_host_add = lv_network_host_add,
    .network_host_remove = lv_network_host_remove,
    .console_log_path = lv_console_log_path,
    .events_subscribe = lv_events_subscribe,
    .events_unsubscribe = lv_events_unsubscribe,
    .connected = lv_connected,
    .reconnect = lv_reconnect,
};
