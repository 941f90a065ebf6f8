/* Integration tests for Bind, Unbind, the allocation and server-group ledgers, IPAM and node
 * leases, against a real etcd and the real gRPC server (tests/lib/apiserver-fixture.h). The
 * ledgers are also read straight from etcd, since they are what the invariants are about: never
 * above capacity, never an instance claimed twice, never a hard anti-affinity violation, never
 * one address twice. Each case uses its own namespace and node names. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/object.h"
#include "api/resources.h"
#include "apiserver-fixture.h"
#include "base/alloc.h"
#include "check.h"
#include "store/store.h"

#define FINALIZER "stratus.io/node-agent"
#define TIMEOUT   (30 * USEC_PER_SEC)

static apiserver_fixture *fx;
static struct ev_loop *loop;
static store *direct; /* the test's own view of etcd; main thread only */

static char *fmt(const char *f, ...) _printf_(1, 2);
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = xvasprintf(f, ap);
    va_end(ap);
    return s;
}

static void setup(void)
{
    if (fx)
        return;
    fx = apiserver_fixture_start(NULL);
    direct = fx_etcd_store(fx, &loop);
    rpc_status st;
    CHECK_OK(fx_apply(fx,
                      "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Image\",\"metadata\":{\"name\":"
                      "\"img\"},\"spec\":{\"source\":{\"url\":\"file:///tmp/x.qcow2\",\"sha256\":"
                      "\"0000000000000000000000000000000000000000000000000000000000000000\"}}}",
                      NULL, NULL, &st));
}

/* Applies, retrying while the apiserver says ABORTED (it retries itself; many writers racing
 * for one IP ledger can still outlast that). Returns 0 or -errno with st filled. */
static int apply(const char *json, json_t **ret, rpc_status *st)
{
    for (int i = 0; i < 50; i++) {
        int r = fx_apply(fx, json, NULL, ret, st);
        if (r != -ESTALE)
            return r;
    }
    return -ESTALE;
}

static void apply_ok(const char *json)
{
    rpc_status st;
    if (apply(json, NULL, &st) < 0)
        check_fail(__FILE__, __LINE__, "apply %s: %s", json, st.message);
}

static void flavor_create(const char *name, int vcpus, int mem, int root, int eph, int swap)
{
    _cleanup_free_ char *j =
        fmt("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":\"%s\"},"
            "\"spec\":{\"vcpus\":%d,\"memoryMiB\":%d,\"rootDiskGiB\":%d,\"ephemeralGiB\":%d,"
            "\"swapMiB\":%d}}",
            name, vcpus, mem, root, eph, swap);
    apply_ok(j);
}

/* A Node whose status.allocatable is set as an agent would (UpdateStatus). */
static void node_create(const char *name, int vcpus, int mem, int disk, const char *ratios)
{
    _cleanup_free_ char *j =
        fmt("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"%s\"},"
            "\"spec\":{%s%s}}",
            name, ratios ? "\"allocationRatios\":" : "", ratios ? ratios : "");
    apply_ok(j);
    _cleanup_free_ char *status =
        fmt("{\"allocatable\":{\"vcpus\":%d,\"memoryMiB\":%d,\"diskGiB\":%d}}", vcpus, mem, disk);
    Stratus__V1__UpdateStatusRequest req = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
    req.kind = "Node";
    req.name = (char *)name;
    req.status_json = status;
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status st;
    if (rpc_client_update_status(fx->client, &req, TIMEOUT, &rep, &st) < 0)
        check_fail(__FILE__, __LINE__, "node status %s: %s", name, st.message);
    rpc_message_free(rep);
}

static void namespaced_create(const char *kind, const char *ns, const char *name, const char *spec)
{
    _cleanup_free_ char *j = fmt("{\"apiVersion\":\"stratus/v1\",\"kind\":\"%s\",\"metadata\":{"
                                 "\"name\":\"%s\",\"namespace\":\"%s\"},\"spec\":%s}",
                                 kind, name, ns, spec);
    apply_ok(j);
}

static char *instance_json(const char *ns, const char *name, const char *flavor, const char *extra)
{
    return fmt("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":"
               "\"%s\",\"namespace\":\"%s\"},\"spec\":{\"flavor\":\"%s\",\"image\":\"img\"%s}}",
               name, ns, flavor, extra ? extra : "");
}

/* Creates an instance; returns its uid (the caller frees it). */
static char *instance_create(const char *ns, const char *name, const char *flavor,
                             const char *extra)
{
    _cleanup_free_ char *j = instance_json(ns, name, flavor, extra);
    json_t *obj = NULL;
    rpc_status st;
    if (apply(j, &obj, &st) < 0)
        check_fail(__FILE__, __LINE__, "create %s/%s: %s", ns, name, st.message);
    char *uid = xstrdup(api_object_uid(obj));
    json_decref(obj);
    return uid;
}

static json_t *get(const char *ns, const char *name)
{
    json_t *obj = NULL;
    rpc_status st;
    if (fx_get(fx, "Instance", ns, name, &obj, &st) < 0)
        check_fail(__FILE__, __LINE__, "get %s/%s: %s", ns, name, st.message);
    return obj;
}

/* One binding; returns the result code and copies the message, or -errno when the call failed.
 * No CHECKs: threads use it too. */
static int bind_raw(const char *ns, const char *name, const char *uid, const char *node, char *msg,
                    size_t size)
{
    Stratus__V1__Binding b = STRATUS__V1__BINDING__INIT, *pb = &b;
    b.namespace_ = (char *)ns;
    b.name = (char *)name;
    b.uid = (char *)(uid ? uid : "");
    b.node = (char *)node;
    Stratus__V1__BindRequest req = STRATUS__V1__BIND_REQUEST__INIT;
    req.n_bindings = 1;
    req.bindings = &pb;
    Stratus__V1__BindResponse *rep = NULL;
    rpc_status st;
    int r = rpc_client_bind(fx->client, &req, TIMEOUT, &rep, &st);
    if (r < 0) {
        if (msg)
            snprintf(msg, size, "%s", st.message);
        return r;
    }
    int code = rep->n_results == 1 && rep->results[0]->ok == (rep->results[0]->code == 0)
                   ? rep->results[0]->code
                   : -EBADMSG;
    if (msg && rep->n_results == 1)
        snprintf(msg, size, "%s", rep->results[0]->message);
    rpc_message_free(rep);
    return code;
}

static int bind1(const char *ns, const char *name, const char *uid, const char *node, char *msg,
                 size_t size)
{
    char m[1024];
    int code = bind_raw(ns, name, uid, node, m, sizeof(m));
    if (code < 0)
        check_fail(__FILE__, __LINE__, "bind %s/%s to %s: %d %s", ns, name, node, code, m);
    if (msg)
        snprintf(msg, size, "%s", m);
    return code;
}

static int unbind1(const char *ns, const char *name, const char *uid, const char *node,
                   const char *reason, const char *message, json_t **ret, rpc_status *st)
{
    Stratus__V1__UnbindRequest req = STRATUS__V1__UNBIND_REQUEST__INIT;
    req.namespace_ = (char *)ns;
    req.name = (char *)name;
    req.uid = (char *)(uid ? uid : "");
    req.node = (char *)node;
    req.reason = (char *)reason;
    req.message = (char *)message;
    Stratus__V1__ObjectResponse *rep = NULL;
    int r = rpc_client_unbind(fx->client, &req, TIMEOUT, &rep, st);
    if (r == 0 && ret)
        *ret = json_loads(rep->object_json, 0, NULL);
    rpc_message_free(rep);
    return r;
}

/* The JSON stored at key, NULL when absent. */
static json_t *etcd_json(const char *key)
{
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_get(direct, key, store_sync_done, &y));
    _cleanup_(store_result_freep) store_result *r = NULL;
    int e = store_wait(direct, &y, &r);
    if (e == -ENOENT)
        return NULL;
    CHECK_OK(e);
    return json_loadb(r->kvs[0].value, r->kvs[0].value_len, 0, NULL);
}

static store_result *etcd_prefix(const char *prefix)
{
    _cleanup_free_ char *end = store_prefix_end(prefix);
    store_range_opts o = {.key = prefix, .range_end = end};
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_range(direct, &o, store_sync_done, &y));
    store_result *r = NULL;
    CHECK_OK(store_wait(direct, &y, &r));
    return r;
}

/* The entry of uid in the allocation ledger of node, NULL when none (borrowed from *doc). */
static json_t *alloc_entry(const char *node, const char *uid, json_t **doc)
{
    _cleanup_free_ char *key = fmt("/stratus/v1/allocations/%s", node);
    *doc = etcd_json(key);
    return json_object_get(json_object_get(*doc, "instances"), uid);
}

static const char *str_at(const json_t *obj, const char *path)
{
    return json_string_value(api_json_lookup(obj, path));
}

static const json_t *condition(const json_t *obj, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach (api_json_lookup(obj, "status.conditions"), i, c) {
        const char *t = json_string_value(json_object_get(c, "type"));
        if (t && streq(t, type))
            return c;
    }
    return NULL;
}

/* ---- Bind: capacity, messages, idempotence, conflicts */

static void bind_fits_and_says_why_not(void)
{
    setup();
    flavor_create("b-small", 2, 2048, 10, 5, 1536); /* disk 10 + 5 + 2 (1536 MiB rounded up) */
    flavor_create("b-big", 1, 3072, 0, 0, 0);
    node_create("fit-1", 4, 4096, 100, NULL);
    node_create("fit-2", 4, 4096, 100, "{\"memory\":1.5}");
    node_create("fit-3", 1, 65536, 100, NULL);
    _cleanup_free_ char *a = instance_create("bind", "fit-a", "b-small", NULL);
    _cleanup_free_ char *b = instance_create("bind", "fit-b", "b-big", NULL);
    char msg[1024];

    CHECK_INT(bind1("bind", "fit-a", a, "fit-1", msg, sizeof(msg)), ==, 0);
    json_t *obj = get("bind", "fit-a");
    CHECK_STR(str_at(obj, "spec.nodeName"), "fit-1");
    CHECK_STR(str_at(obj, "status.nodeName"), "fit-1");
    CHECK_STR(str_at(obj, "status.phase"), "Scheduled");
    const json_t *fin = api_json_lookup(obj, "metadata.finalizers");
    CHECK_INT(json_array_size(fin), ==, 1);
    CHECK_STR(json_string_value(json_array_get(fin, 0)), FINALIZER);
    const json_t *c = condition(obj, "Scheduled");
    CHECK(c);
    CHECK_STR(json_string_value(json_object_get(c, "status")), "True");
    json_decref(obj);

    json_t *doc = NULL;
    json_t *entry = alloc_entry("fit-1", a, &doc);
    CHECK(entry);
    CHECK_STR(str_at(entry, "namespace"), "bind");
    CHECK_STR(str_at(entry, "name"), "fit-a");
    CHECK_INT(json_integer_value(json_object_get(entry, "vcpus")), ==, 2);
    CHECK_INT(json_integer_value(json_object_get(entry, "memoryMiB")), ==, 2048);
    CHECK_INT(json_integer_value(json_object_get(entry, "diskGiB")), ==, 17);
    json_decref(doc);

    CHECK_INT(bind1("bind", "fit-b", b, "fit-1", msg, sizeof(msg)), ==, 8);
    CHECK_STR(msg, "node \"fit-1\": insufficient memory (requested 3072 MiB, 2048 MiB free of "
                   "4096 MiB × 1.0)");
    obj = get("bind", "fit-b");
    CHECK(!api_json_lookup(obj, "spec.nodeName"));
    CHECK_STR(str_at(obj, "status.phase"), "Pending");
    json_decref(obj);

    /* memory × 1.5: two of 3072 fit in 4096, a third does not */
    _cleanup_free_ char *c1 = instance_create("bind", "fit-c", "b-big", NULL);
    _cleanup_free_ char *c2 = instance_create("bind", "fit-d", "b-big", NULL);
    _cleanup_free_ char *c3 = instance_create("bind", "fit-e", "b-big", NULL);
    CHECK_INT(bind1("bind", "fit-c", c1, "fit-2", msg, sizeof(msg)), ==, 0);
    CHECK_INT(bind1("bind", "fit-d", c2, "fit-2", msg, sizeof(msg)), ==, 0);
    CHECK_INT(bind1("bind", "fit-e", c3, "fit-2", msg, sizeof(msg)), ==, 8);
    CHECK_STR(msg, "node \"fit-2\": insufficient memory (requested 3072 MiB, 0 MiB free of "
                   "4096 MiB × 1.5)");

    _cleanup_free_ char *f = instance_create("bind", "fit-f", "b-small", NULL);
    CHECK_INT(bind1("bind", "fit-f", f, "fit-3", msg, sizeof(msg)), ==, 8);
    CHECK_STR(msg, "node \"fit-3\": insufficient vcpus (requested 2, 1 free of 1 × 1.0)");
}

static void status_of(const char *ns, const char *name, const char *status_json)
{
    Stratus__V1__UpdateStatusRequest req = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
    req.kind = "Instance";
    req.namespace_ = (char *)ns;
    req.name = (char *)name;
    req.status_json = (char *)status_json;
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status st;
    if (rpc_client_update_status(fx->client, &req, TIMEOUT, &rep, &st) < 0)
        check_fail(__FILE__, __LINE__, "status of %s/%s: %s", ns, name, st.message);
    rpc_message_free(rep);
}

static void check_claim(const char *ns, const char *name, int vcpus, int mem, int disk)
{
    json_t *obj = get(ns, name);
    api_resources r;
    CHECK_OK(api_instance_claim(obj, &r));
    CHECK_INT(r.amount[API_RESOURCE_VCPUS], ==, vcpus);
    CHECK_INT(r.amount[API_RESOURCE_MEMORY], ==, mem);
    CHECK_INT(r.amount[API_RESOURCE_DISK], ==, disk);
    json_decref(obj);
}

/* Bind records the claim in the instance too (status.claim, as in its node's ledger), so that
 * whoever counts it needs no flavor; a status writer can neither change nor drop it, and Unbind
 * takes it away with the binding. */
static void bind_records_the_claim_in_the_instance(void)
{
    setup();
    flavor_create("rc-f", 2, 2048, 10, 5, 1536);
    node_create("rc-1", 8, 8192, 100, NULL);
    _cleanup_free_ char *uid = instance_create("rc", "rc-a", "rc-f", NULL);
    char msg[1024];
    json_t *obj = get("rc", "rc-a");
    CHECK(api_json_lookup(obj, "status.claim") == NULL); /* not bound: nothing claimed */
    json_decref(obj);
    CHECK_INT(bind1("rc", "rc-a", uid, "rc-1", msg, sizeof(msg)), ==, 0);
    check_claim("rc", "rc-a", 2, 2048, 17);
    status_of("rc", "rc-a",
              "{\"phase\":\"Building\",\"nodeName\":\"rc-1\",\"claim\":{\"vcpus\":99,"
              "\"memoryMiB\":1,\"diskGiB\":1}}");
    check_claim("rc", "rc-a", 2, 2048, 17);
    status_of("rc", "rc-a", "{\"phase\":\"Building\",\"nodeName\":\"rc-1\"}");
    check_claim("rc", "rc-a", 2, 2048, 17);
    /* not the writer's to send: not even validated */
    status_of("rc", "rc-a", "{\"phase\":\"Building\",\"nodeName\":\"rc-1\",\"claim\":\"x\"}");
    check_claim("rc", "rc-a", 2, 2048, 17);
    obj = get("rc", "rc-a");
    CHECK_STR(str_at(obj, "status.phase"), "Building"); /* the rest of the status was written */
    json_decref(obj);

    Stratus__V1__UnbindRequest req = STRATUS__V1__UNBIND_REQUEST__INIT;
    req.namespace_ = "rc";
    req.name = "rc-a";
    req.uid = uid;
    req.node = "rc-1";
    req.reason = "Test";
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status st;
    CHECK_OK(rpc_client_unbind(fx->client, &req, TIMEOUT, &rep, &st));
    rpc_message_free(rep);
    obj = get("rc", "rc-a");
    CHECK(api_json_lookup(obj, "status.claim") == NULL);
    CHECK_STR(str_at(obj, "status.phase"), "Pending");
    json_decref(obj);
}

static void bind_is_idempotent(void)
{
    setup();
    flavor_create("b-small", 2, 2048, 10, 5, 1536);
    node_create("idem-1", 8, 8192, 100, NULL);
    _cleanup_free_ char *a = instance_create("bind", "idem-a", "b-small", NULL);
    char msg[1024];
    CHECK_INT(bind1("bind", "idem-a", a, "idem-1", msg, sizeof(msg)), ==, 0);
    json_t *obj = get("bind", "idem-a");
    _cleanup_free_ char *rv1 = xstrdup(str_at(obj, "metadata.resourceVersion"));
    json_decref(obj);
    CHECK_INT(bind1("bind", "idem-a", a, "idem-1", msg, sizeof(msg)), ==, 0);
    obj = get("bind", "idem-a");
    CHECK_STR(str_at(obj, "metadata.resourceVersion"), rv1); /* nothing written */
    json_decref(obj);

    /* The same instance twice in one request, with another one. */
    _cleanup_free_ char *b = instance_create("bind", "idem-b", "b-small", NULL);
    Stratus__V1__Binding bs[3], *pb[3];
    const char *names[3] = {"idem-b", "idem-b", "idem-a"};
    const char *uids[3] = {b, b, a};
    for (int i = 0; i < 3; i++) {
        bs[i] = (Stratus__V1__Binding)STRATUS__V1__BINDING__INIT;
        bs[i].namespace_ = "bind";
        bs[i].name = (char *)names[i];
        bs[i].uid = (char *)uids[i];
        bs[i].node = "idem-1";
        pb[i] = &bs[i];
    }
    Stratus__V1__BindRequest req = STRATUS__V1__BIND_REQUEST__INIT;
    req.n_bindings = 3;
    req.bindings = pb;
    Stratus__V1__BindResponse *rep = NULL;
    rpc_status st;
    CHECK_OK(rpc_client_bind(fx->client, &req, TIMEOUT, &rep, &st));
    CHECK_INT(rep->n_results, ==, 3);
    for (int i = 0; i < 3; i++) {
        CHECK(rep->results[i]->ok);
        CHECK_STR(rep->results[i]->name, names[i]);
        CHECK_STR(rep->results[i]->namespace_, "bind");
    }
    rpc_message_free(rep);
    json_t *doc = etcd_json("/stratus/v1/allocations/idem-1");
    CHECK_INT(json_object_size(json_object_get(doc, "instances")), ==, 2);
    json_decref(doc);
}

static void bind_conflicts_and_errors(void)
{
    setup();
    flavor_create("b-small", 2, 2048, 10, 5, 1536);
    node_create("conf-a", 8, 8192, 100, NULL);
    node_create("conf-b", 8, 8192, 100, NULL);
    _cleanup_free_ char *x = instance_create("bind", "conf-x", "b-small", NULL);
    char msg[1024];
    CHECK_INT(bind1("bind", "conf-x", x, "conf-a", msg, sizeof(msg)), ==, 0);
    CHECK_INT(bind1("bind", "conf-x", x, "conf-b", msg, sizeof(msg)), ==, 6);
    CHECK_STR(msg, "instances \"bind/conf-x\" is already bound to node \"conf-a\"");
    json_t *doc = NULL;
    CHECK(!alloc_entry("conf-b", x, &doc));
    json_decref(doc);

    CHECK_INT(
        bind1("bind", "conf-x", "00000000-0000-4000-8000-000000000000", "conf-a", msg, sizeof(msg)),
        ==, 10);
    CHECK(strstr(msg, "was deleted and recreated"));
    CHECK_INT(bind1("bind", "conf-x", x, "no-such-node", msg, sizeof(msg)), ==, 5);
    CHECK_STR(msg, "nodes \"no-such-node\" not found");
    CHECK_INT(bind1("bind", "no-such-instance", NULL, "conf-a", msg, sizeof(msg)), ==, 5);
    CHECK_STR(msg, "instances \"bind/no-such-instance\" not found");
    CHECK_INT(bind1("bind", "conf-x", x, "Not_A_Node", msg, sizeof(msg)), ==, 3);
    CHECK(strneq(msg, "bindings[0].node: ", 18));

    /* A forced node (spec.nodeName from the user) is bound there only, with its capacity. */
    _cleanup_free_ char *f =
        instance_create("bind", "conf-forced", "b-small", ",\"nodeName\":\"conf-b\"");
    CHECK_INT(bind1("bind", "conf-forced", f, "conf-a", msg, sizeof(msg)), ==, 9);
    CHECK_STR(msg, "instances \"bind/conf-forced\" may only go to node \"conf-b\" (spec.nodeName)");
    CHECK_INT(bind1("bind", "conf-forced", f, "conf-b", msg, sizeof(msg)), ==, 0);
    CHECK(alloc_entry("conf-b", f, &doc));
    json_decref(doc);

    /* Being deleted: graceful delete keeps it (finalizer); binding it is refused. */
    json_t *obj = NULL;
    rpc_status st;
    CHECK_OK(fx_delete(fx, "Instance", "bind", "conf-x", &obj, &st));
    CHECK(api_json_lookup(obj, "metadata.deletionTimestamp"));
    json_decref(obj);
    CHECK_INT(bind1("bind", "conf-x", x, "conf-a", msg, sizeof(msg)), ==, 9);
    CHECK_STR(msg, "instances \"bind/conf-x\" is being deleted");

    /* More bindings than one request may carry. */
    size_t n = 1001;
    Stratus__V1__Binding *bs = xnew(Stratus__V1__Binding, n);
    Stratus__V1__Binding **pb = xnew(Stratus__V1__Binding *, n);
    for (size_t i = 0; i < n; i++) {
        bs[i] = (Stratus__V1__Binding)STRATUS__V1__BINDING__INIT;
        bs[i].name = "conf-x";
        bs[i].node = "conf-a";
        pb[i] = &bs[i];
    }
    Stratus__V1__BindRequest req = STRATUS__V1__BIND_REQUEST__INIT;
    req.n_bindings = n;
    req.bindings = pb;
    Stratus__V1__BindResponse *rep = NULL;
    CHECK_INT(rpc_client_bind(fx->client, &req, TIMEOUT, &rep, &st), ==, -EINVAL);
    CHECK(strstr(st.message, "at most 1000"));
    free(bs);
    free(pb);
}

/* Eight instances of ~200 KiB each are more than etcd takes in one request: the batch is split. */
static void bind_splits_batches_too_large_for_etcd(void)
{
    setup();
    flavor_create("b-tiny", 1, 64, 0, 0, 0);
    node_create("big-1", 64, 65536, 100, NULL);
    _cleanup_free_ char *filler = xmalloc(200 * 1024 + 1);
    memset(filler, 'x', 200 * 1024);
    filler[200 * 1024] = '\0';
    Stratus__V1__Binding bs[8], *pb[8];
    char names[8][16];
    char *uids[8];
    for (int i = 0; i < 8; i++) {
        snprintf(names[i], sizeof(names[i]), "big-%d", i);
        _cleanup_free_ char *j =
            fmt("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":"
                "\"%s\",\"namespace\":\"bind\",\"annotations\":{\"filler\":\"%s\"}},\"spec\":{"
                "\"flavor\":\"b-tiny\",\"image\":\"img\"}}",
                names[i], filler);
        json_t *obj = NULL;
        rpc_status st;
        if (apply(j, &obj, &st) < 0)
            check_fail(__FILE__, __LINE__, "create %s: %s", names[i], st.message);
        uids[i] = xstrdup(api_object_uid(obj));
        json_decref(obj);
        bs[i] = (Stratus__V1__Binding)STRATUS__V1__BINDING__INIT;
        bs[i].namespace_ = "bind";
        bs[i].name = names[i];
        bs[i].uid = uids[i];
        bs[i].node = "big-1";
        pb[i] = &bs[i];
    }
    Stratus__V1__BindRequest req = STRATUS__V1__BIND_REQUEST__INIT;
    req.n_bindings = 8;
    req.bindings = pb;
    Stratus__V1__BindResponse *rep = NULL;
    rpc_status st;
    CHECK_OK(rpc_client_bind(fx->client, &req, TIMEOUT, &rep, &st));
    for (size_t i = 0; i < rep->n_results; i++)
        if (!rep->results[i]->ok)
            check_fail(__FILE__, __LINE__, "%s: %s", rep->results[i]->name,
                       rep->results[i]->message);
    rpc_message_free(rep);
    json_t *doc = etcd_json("/stratus/v1/allocations/big-1");
    CHECK_INT(json_object_size(json_object_get(doc, "instances")), ==, 8);
    json_decref(doc);
    for (int i = 0; i < 8; i++)
        free(uids[i]);
}

/* ---- Unbind */

static void unbind_records_the_attempt(void)
{
    setup();
    flavor_create("b-small", 2, 2048, 10, 5, 1536);
    node_create("unb-1", 8, 8192, 100, NULL);
    node_create("unb-2", 8, 8192, 100, NULL);
    _cleanup_free_ char *a = instance_create("bind", "unb-a", "b-small", NULL);
    char msg[1024];
    rpc_status st;
    json_t *obj = NULL;
    CHECK_INT(bind1("bind", "unb-a", a, "unb-1", msg, sizeof(msg)), ==, 0);
    CHECK_INT(unbind1("bind", "unb-a", a, "unb-2", "InsufficientMemory", "", NULL, &st), ==,
              -EBUSY);
    CHECK_STR(st.message, "instances \"bind/unb-a\" is not bound to node \"unb-2\" (it is bound to "
                          "\"unb-1\")");
    CHECK_INT(unbind1("bind", "unb-a", a, "unb-1", "not camel", "", NULL, &st), ==, -EINVAL);
    /* what unb-1's agent had reported of its build */
    Stratus__V1__UpdateStatusRequest sr = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
    sr.kind = "Instance";
    sr.namespace_ = "bind";
    sr.name = "unb-a";
    sr.status_json =
        "{\"phase\":\"Building\",\"conditions\":[{\"type\":\"ResourcesClaimed\",\"status\":"
        "\"True\",\"reason\":\"Claimed\"},{\"type\":\"NetworkReady\",\"status\":\"True\","
        "\"reason\":\"Attached\"}]}";
    Stratus__V1__ObjectResponse *srep = NULL;
    CHECK_OK(rpc_client_update_status(fx->client, &sr, TIMEOUT, &srep, &st));
    rpc_message_free(srep);

    CHECK_OK(
        unbind1("bind", "unb-a", a, "unb-1", "InsufficientMemory", "only 1 GiB left", &obj, &st));
    CHECK(!api_json_lookup(obj, "spec.nodeName"));
    CHECK(!api_json_lookup(obj, "status.nodeName"));
    CHECK_STR(str_at(obj, "status.phase"), "Pending");
    const json_t *attempts = api_json_lookup(obj, "status.attempts");
    CHECK_INT(json_array_size(attempts), ==, 1);
    const json_t *at = json_array_get(attempts, 0);
    CHECK_STR(str_at(at, "nodeName"), "unb-1");
    CHECK_STR(str_at(at, "reason"), "InsufficientMemory");
    CHECK_STR(str_at(at, "message"), "only 1 GiB left");
    CHECK(str_at(at, "time"));
    const json_t *c = condition(obj, "Scheduled");
    CHECK_STR(json_string_value(json_object_get(c, "status")), "False");
    CHECK_STR(json_string_value(json_object_get(c, "reason")), "InsufficientMemory");
    /* what the old node reported no longer holds */
    CHECK_STR(json_string_value(json_object_get(condition(obj, "Ready"), "status")), "False");
    CHECK_STR(json_string_value(json_object_get(condition(obj, "DomainRunning"), "message")),
              "the instance left node \"unb-1\"");
    CHECK(!api_json_lookup(obj, "status.domainUUID"));
    /* nor does its build: the next node's agent must claim and attach again */
    CHECK_STR(json_string_value(json_object_get(condition(obj, "ResourcesClaimed"), "status")),
              "False");
    CHECK_STR(json_string_value(json_object_get(condition(obj, "NetworkReady"), "status")),
              "False");
    CHECK(!condition(obj, "BlockDevicesReady")); /* never reported: not made up */
    CHECK_INT(json_array_size(api_json_lookup(obj, "metadata.finalizers")), ==, 0);
    _cleanup_free_ char *rv = xstrdup(str_at(obj, "metadata.resourceVersion"));
    json_decref(obj);
    obj = get("bind", "unb-a");
    CHECK_STR(str_at(obj, "metadata.resourceVersion"), rv);
    json_decref(obj);
    CHECK(!etcd_json("/stratus/v1/allocations/unb-1")); /* empty ledgers are deleted */

    CHECK_INT(unbind1("bind", "unb-a", a, "unb-1", "InsufficientMemory", "", NULL, &st), ==,
              -EBUSY);
    CHECK_INT(bind1("bind", "unb-a", a, "unb-2", msg, sizeof(msg)), ==, 0);

    /* attempts[] keeps the newest API_ATTEMPTS_MAX (32) */
    for (int i = 0; i < 34; i++) {
        const char *node = i % 2 ? "unb-1" : "unb-2";
        char reason[32];
        snprintf(reason, sizeof(reason), "Try%d", i);
        CHECK_OK(unbind1("bind", "unb-a", a, node, reason, "", NULL, &st));
        CHECK_INT(bind1("bind", "unb-a", a, i % 2 ? "unb-2" : "unb-1", msg, sizeof(msg)), ==, 0);
    }
    obj = get("bind", "unb-a");
    attempts = api_json_lookup(obj, "status.attempts");
    CHECK_INT(json_array_size(attempts), ==, 32);
    CHECK_STR(str_at(json_array_get(attempts, 31), "reason"), "Try33");
    CHECK_STR(str_at(json_array_get(attempts, 0), "reason"), "Try2");
    json_decref(obj);
}

/* ---- schedulers racing */

#define RACE_INSTANCES 1000
#define RACE_NODES     10
#define RACE_VCPUS     60 /* 600 fit in all: the nodes fill up while the threads race */
#define RACE_THREADS   3
#define RACE_BATCH     50

static char *race_uids[RACE_INSTANCES];

typedef struct race_thread {
    pthread_t t;
    unsigned seed;
    size_t first, step; /* creators: which instances */
    size_t ok, aborted, unexpected;
    char first_unexpected[1024];
} race_thread;

static void *race_create(void *arg)
{
    race_thread *rt = arg;
    for (size_t i = rt->first; i < RACE_INSTANCES; i += rt->step) {
        char name[32];
        snprintf(name, sizeof(name), "r-%04zu", i);
        _cleanup_free_ char *j = instance_json("race", name, "race-f", NULL);
        json_t *obj = NULL;
        rpc_status st;
        if (apply(j, &obj, &st) < 0) {
            rt->unexpected++;
            snprintf(rt->first_unexpected, sizeof(rt->first_unexpected), "%s", st.message);
            continue;
        }
        race_uids[i] = xstrdup(api_object_uid(obj));
        json_decref(obj);
    }
    return NULL;
}

static void *race_bind(void *arg)
{
    race_thread *rt = arg;
    size_t order[RACE_INSTANCES], nodes[RACE_INSTANCES];
    for (size_t i = 0; i < RACE_INSTANCES; i++)
        order[i] = i;
    for (size_t i = RACE_INSTANCES - 1; i > 0; i--) {
        size_t j = (size_t)rand_r(&rt->seed) % (i + 1), tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    for (size_t i = 0; i < RACE_INSTANCES; i++)
        nodes[i] = (size_t)rand_r(&rt->seed) % RACE_NODES;

    size_t todo[RACE_INSTANCES], n_todo = RACE_INSTANCES;
    memcpy(todo, order, sizeof(todo));
    for (int round = 0; n_todo > 0 && round < 200; round++) {
        size_t retry[RACE_INSTANCES], n_retry = 0;
        for (size_t off = 0; off < n_todo; off += RACE_BATCH) {
            size_t n = MIN(RACE_BATCH, n_todo - off);
            Stratus__V1__Binding bs[RACE_BATCH], *pb[RACE_BATCH];
            char names[RACE_BATCH][32], node_names[RACE_BATCH][32];
            for (size_t k = 0; k < n; k++) {
                size_t i = todo[off + k];
                snprintf(names[k], sizeof(names[k]), "r-%04zu", i);
                snprintf(node_names[k], sizeof(node_names[k]), "race-%zu", nodes[i]);
                bs[k] = (Stratus__V1__Binding)STRATUS__V1__BINDING__INIT;
                bs[k].namespace_ = "race";
                bs[k].name = names[k];
                bs[k].uid = race_uids[i];
                bs[k].node = node_names[k];
                pb[k] = &bs[k];
            }
            Stratus__V1__BindRequest req = STRATUS__V1__BIND_REQUEST__INIT;
            req.n_bindings = n;
            req.bindings = pb;
            Stratus__V1__BindResponse *rep = NULL;
            rpc_status st;
            if (rpc_client_bind(fx->client, &req, TIMEOUT, &rep, &st) < 0) {
                rt->unexpected++;
                snprintf(rt->first_unexpected, sizeof(rt->first_unexpected), "%s", st.message);
                continue;
            }
            for (size_t k = 0; k < n && k < rep->n_results; k++) {
                const Stratus__V1__BindResult *res = rep->results[k];
                if (res->ok)
                    rt->ok++;
                else if (res->code == 10) { /* ABORTED: try again */
                    retry[n_retry++] = todo[off + k];
                    rt->aborted++;
                } else if (res->code != 6 && res->code != 8) { /* ALREADY_EXISTS, EXHAUSTED */
                    if (!rt->unexpected++)
                        snprintf(rt->first_unexpected, sizeof(rt->first_unexpected), "code %d: %s",
                                 res->code, res->message);
                }
            }
            rpc_message_free(rep);
        }
        memcpy(todo, retry, n_retry * sizeof(size_t));
        n_todo = n_retry;
    }
    if (n_todo > 0 && !rt->unexpected++)
        snprintf(rt->first_unexpected, sizeof(rt->first_unexpected), "%zu still ABORTED", n_todo);
    return NULL;
}

static void racing_schedulers_never_overcommit(void)
{
    setup();
    flavor_create("race-f", 1, 64, 1, 0, 0);
    for (int i = 0; i < RACE_NODES; i++) {
        char name[32];
        snprintf(name, sizeof(name), "race-%d", i);
        node_create(name, RACE_VCPUS, 1 << 20, 100000, NULL);
    }
    race_thread creators[8] = {0};
    for (size_t i = 0; i < ELEMENTSOF(creators); i++) {
        creators[i].first = i;
        creators[i].step = ELEMENTSOF(creators);
        pthread_create(&creators[i].t, NULL, race_create, &creators[i]);
    }
    for (size_t i = 0; i < ELEMENTSOF(creators); i++) {
        pthread_join(creators[i].t, NULL);
        if (creators[i].unexpected)
            check_fail(__FILE__, __LINE__, "create: %s", creators[i].first_unexpected);
    }

    race_thread binders[RACE_THREADS] = {0};
    for (size_t i = 0; i < RACE_THREADS; i++) {
        binders[i].seed = 1234u + (unsigned)i;
        pthread_create(&binders[i].t, NULL, race_bind, &binders[i]);
    }
    for (size_t i = 0; i < RACE_THREADS; i++)
        pthread_join(binders[i].t, NULL);
    for (size_t i = 0; i < RACE_THREADS; i++)
        if (binders[i].unexpected)
            check_fail(__FILE__, __LINE__, "bind: %zu unexpected results, first: %s",
                       binders[i].unexpected, binders[i].first_unexpected);

    /* The ledgers, straight from etcd. */
    json_t *claimed = json_object(); /* uid → node */
    int64_t per_node[RACE_NODES] = {0};
    for (int i = 0; i < RACE_NODES; i++) {
        _cleanup_free_ char *key = fmt("/stratus/v1/allocations/race-%d", i);
        json_t *doc = etcd_json(key);
        const char *uid;
        json_t *entry;
        int64_t vcpus = 0;
        json_object_foreach (json_object_get(doc, "instances"), uid, entry) {
            CHECK(!json_object_get(claimed, uid)); /* claimed on one node only */
            json_object_set_new(claimed, uid, json_integer(i));
            vcpus += json_integer_value(json_object_get(entry, "vcpus"));
            per_node[i]++;
        }
        CHECK_INT(vcpus, <=, RACE_VCPUS);
        json_decref(doc);
    }
    /* The instances agree with the ledgers. */
    store_result *r = etcd_prefix("/stratus/v1/instances/race/");
    CHECK_INT(r->n_kvs, ==, RACE_INSTANCES);
    int64_t bound_per_node[RACE_NODES] = {0};
    size_t bound = 0;
    for (size_t k = 0; k < r->n_kvs; k++) {
        json_t *obj = json_loadb(r->kvs[k].value, r->kvs[k].value_len, 0, NULL);
        const char *uid = api_object_uid(obj), *node = str_at(obj, "spec.nodeName");
        json_t *where = json_object_get(claimed, uid);
        if (node) {
            int i = atoi(node + strlen("race-"));
            CHECK(where && json_integer_value(where) == i);
            CHECK_STR(str_at(obj, "status.phase"), "Scheduled");
            bound_per_node[i]++;
            bound++;
        } else {
            CHECK(!where);
        }
        json_decref(obj);
    }
    store_result_free(r);
    for (int i = 0; i < RACE_NODES; i++)
        CHECK_INT(bound_per_node[i], ==, per_node[i]);
    CHECK_INT(bound, ==, json_object_size(claimed));
    CHECK_INT(bound, >, 0);
    CHECK_INT(bound, <=, RACE_NODES * RACE_VCPUS);
    size_t aborted = 0;
    for (size_t i = 0; i < RACE_THREADS; i++)
        aborted += binders[i].aborted;
    printf("# race: %zu of %d instances bound on %d nodes of %d vcpus; %zu ABORTED retried\n",
           bound, RACE_INSTANCES, RACE_NODES, RACE_VCPUS, aborted);
    json_decref(claimed);
    for (size_t i = 0; i < RACE_INSTANCES; i++)
        race_uids[i] = mfree(race_uids[i]);
}

/* ---- Bind calls for the same nodes at once */

#define TURN_THREADS 8
#define TURN_NODES   40 /* one binding per node and call: 120 compares, one transaction a call */

typedef struct turn_thread {
    pthread_t t;
    int id;
    pthread_barrier_t *start;
    size_t ok;
    char first_error[1024];
} turn_thread;

static void *turn_bind(void *arg)
{
    turn_thread *tt = arg;
    Stratus__V1__Binding bs[TURN_NODES], *pb[TURN_NODES];
    char names[TURN_NODES][32], nodes[TURN_NODES][32];
    for (int k = 0; k < TURN_NODES; k++) {
        snprintf(names[k], sizeof(names[k]), "t-%d-%d", tt->id, k);
        snprintf(nodes[k], sizeof(nodes[k]), "turn-%d", k);
        bs[k] = (Stratus__V1__Binding)STRATUS__V1__BINDING__INIT;
        bs[k].namespace_ = "turns";
        bs[k].name = names[k];
        bs[k].node = nodes[k];
        pb[k] = &bs[k];
    }
    Stratus__V1__BindRequest req = STRATUS__V1__BIND_REQUEST__INIT;
    req.n_bindings = TURN_NODES;
    req.bindings = pb;
    Stratus__V1__BindResponse *rep = NULL;
    rpc_status st;
    pthread_barrier_wait(tt->start);
    if (rpc_client_bind(fx->client, &req, TIMEOUT, &rep, &st) < 0) {
        snprintf(tt->first_error, sizeof(tt->first_error), "%s", st.message);
        return NULL;
    }
    for (size_t k = 0; k < rep->n_results; k++)
        if (rep->results[k]->ok)
            tt->ok++;
        else if (!tt->first_error[0])
            snprintf(tt->first_error, sizeof(tt->first_error), "%s: code %d: %s",
                     rep->results[k]->name, rep->results[k]->code, rep->results[k]->message);
    rpc_message_free(rep);
    return NULL;
}

static int64_t etcd_revision(void)
{
    store_result *r = etcd_prefix("/stratus/v1/allocations/turn-0");
    int64_t rev = r->revision;
    store_result_free(r);
    return rev;
}

/* Bind calls of several schedulers for the same nodes take turns on each node's ledger in the
 * apiserver instead of racing on its revision: every call's bindings land in one transaction, and
 * none is lost to another call (each lost one came back as a transaction per node). */
static void bind_calls_for_the_same_nodes_take_turns(void)
{
    setup();
    flavor_create("turn-f", 1, 64, 1, 0, 0);
    for (int k = 0; k < TURN_NODES; k++) {
        char name[32];
        snprintf(name, sizeof(name), "turn-%d", k);
        node_create(name, 64, 1 << 20, 100000, NULL);
    }
    for (int i = 0; i < TURN_THREADS; i++)
        for (int k = 0; k < TURN_NODES; k++) {
            char name[32];
            snprintf(name, sizeof(name), "t-%d-%d", i, k);
            free(instance_create("turns", name, "turn-f", NULL));
        }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, TURN_THREADS);
    turn_thread tt[TURN_THREADS] = {0};
    int64_t before = etcd_revision();
    for (int i = 0; i < TURN_THREADS; i++) {
        tt[i] = (turn_thread){.id = i, .start = &start};
        pthread_create(&tt[i].t, NULL, turn_bind, &tt[i]);
    }
    for (int i = 0; i < TURN_THREADS; i++)
        pthread_join(tt[i].t, NULL);
    pthread_barrier_destroy(&start);
    int64_t after = etcd_revision();
    for (int i = 0; i < TURN_THREADS; i++) {
        if (tt[i].first_error[0])
            check_fail(__FILE__, __LINE__, "call %d: %s", i, tt[i].first_error);
        CHECK_INT(tt[i].ok, ==, TURN_NODES);
    }
    /* Nothing else writes meanwhile: one revision per committed transaction. */
    printf("# %d Bind calls of %d bindings on the same nodes: %lld transactions\n", TURN_THREADS,
           TURN_NODES, (long long)(after - before));
    CHECK_INT(after - before, ==, TURN_THREADS);
    for (int k = 0; k < TURN_NODES; k++) {
        _cleanup_free_ char *key = fmt("/stratus/v1/allocations/turn-%d", k);
        json_t *doc = etcd_json(key);
        CHECK_INT(json_object_size(json_object_get(doc, "instances")), ==, TURN_THREADS);
        json_decref(doc);
    }
}

/* ---- server groups */

typedef struct group_thread {
    pthread_t t;
    const char *name;
    const char *uid;
    size_t start;
    int code;
    char node[32];
} group_thread;

static void *group_bind(void *arg)
{
    group_thread *g = arg;
    for (size_t k = 0; k < 3; k++) {
        char node[32];
        snprintf(node, sizeof(node), "aa-%zu", (g->start + k) % 3 + 1);
        for (int tries = 0; tries < 100; tries++) {
            g->code = bind_raw("grp", g->name, g->uid, node, NULL, 0);
            if (g->code != 10)
                break;
        }
        if (g->code == 0) {
            snprintf(g->node, sizeof(g->node), "%s", node);
            return NULL;
        }
    }
    return NULL;
}

static void anti_affinity_holds_under_races(void)
{
    setup();
    flavor_create("b-small", 2, 2048, 10, 5, 1536);
    for (int i = 1; i <= 3; i++) {
        char name[32];
        snprintf(name, sizeof(name), "aa-%d", i);
        node_create(name, 64, 65536, 1000, NULL);
    }
    namespaced_create("ServerGroup", "grp", "aa", "{\"policy\":\"anti-affinity\"}");
    char *uids[5];
    group_thread th[5] = {0};
    char names[5][16];
    for (int i = 0; i < 5; i++) {
        snprintf(names[i], sizeof(names[i]), "aa-i%d", i);
        uids[i] = instance_create("grp", names[i], "b-small", ",\"serverGroup\":\"aa\"");
        th[i] = (group_thread){.name = names[i], .uid = uids[i], .start = (size_t)i};
    }
    for (int i = 0; i < 5; i++)
        pthread_create(&th[i].t, NULL, group_bind, &th[i]);
    for (int i = 0; i < 5; i++)
        pthread_join(th[i].t, NULL);
    int bound = 0;
    json_t *used = json_object();
    for (int i = 0; i < 5; i++) {
        if (th[i].code == 0) {
            bound++;
            CHECK(!json_object_get(used, th[i].node));
            json_object_set_new(used, th[i].node, json_true());
        } else {
            CHECK_INT(th[i].code, ==, 9);
        }
    }
    CHECK_INT(bound, ==, 3);
    json_decref(used);
    json_t *doc = etcd_json("/stratus/v1/groupledger/grp/aa");
    CHECK_INT(json_object_size(json_object_get(doc, "members")), ==, 3);
    json_decref(doc);
    char msg[1024];
    int loser = th[0].code ? 0 : th[1].code ? 1 : th[2].code ? 2 : th[3].code ? 3 : 4;
    CHECK_INT(bind1("grp", names[loser], uids[loser], "aa-1", msg, sizeof(msg)), ==, 9);
    CHECK(strneq(msg,
                 "server group \"grp/aa\" (anti-affinity, at most 1 per node): node \"aa-1\" "
                 "already has 1 of its members",
                 200));
    for (int i = 0; i < 5; i++)
        free(uids[i]);

    /* maxPerNode 2 on two nodes: four of five. */
    namespaced_create("ServerGroup", "grp", "aa2",
                      "{\"policy\":\"anti-affinity\",\"maxPerNode\":2}");
    bound = 0;
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof(name), "aa2-i%d", i);
        _cleanup_free_ char *uid =
            instance_create("grp", name, "b-small", ",\"serverGroup\":\"aa2\"");
        if (bind1("grp", name, uid, "aa-1", NULL, 0) == 0 ||
            bind1("grp", name, uid, "aa-2", NULL, 0) == 0)
            bound++;
    }
    CHECK_INT(bound, ==, 4);

    /* Hard affinity: the first member picks the node. */
    namespaced_create("ServerGroup", "grp", "af", "{\"policy\":\"affinity\"}");
    _cleanup_free_ char *f0 = instance_create("grp", "af-0", "b-small", ",\"serverGroup\":\"af\"");
    _cleanup_free_ char *f1 = instance_create("grp", "af-1", "b-small", ",\"serverGroup\":\"af\"");
    CHECK_INT(bind1("grp", "af-0", f0, "aa-3", msg, sizeof(msg)), ==, 0);
    CHECK_INT(bind1("grp", "af-1", f1, "aa-2", msg, sizeof(msg)), ==, 9);
    CHECK_STR(msg, "server group \"grp/af\" (affinity): its members are on node \"aa-3\"");
    CHECK_INT(bind1("grp", "af-1", f1, "aa-3", msg, sizeof(msg)), ==, 0);
}

/* ---- IPAM */

#define IP_INSTANCES 200

typedef struct ip_thread {
    pthread_t t;
    size_t first, step;
    char *ip[IP_INSTANCES];
    char *mac[IP_INSTANCES];
    char *uid[IP_INSTANCES];
    char error[1100];
} ip_thread;

static void *ip_create(void *arg)
{
    ip_thread *it = arg;
    for (size_t i = it->first; i < IP_INSTANCES; i += it->step) {
        char name[32];
        snprintf(name, sizeof(name), "ip-%03zu", i);
        _cleanup_free_ char *j =
            instance_json("ipam", name, "b-small", ",\"networks\":[{\"network\":\"net-a\"}]");
        json_t *obj = NULL;
        rpc_status st;
        if (apply(j, &obj, &st) < 0) {
            snprintf(it->error, sizeof(it->error), "%s: %s", name, st.message);
            return NULL;
        }
        const json_t *addr = json_array_get(api_json_lookup(obj, "status.addresses"), 0);
        it->ip[i] = xstrdup(str_at(addr, "ip") ?: "");
        it->mac[i] = xstrdup(str_at(addr, "mac") ?: "");
        it->uid[i] = xstrdup(api_object_uid(obj));
        json_decref(obj);
    }
    return NULL;
}

static void ip_addresses_are_unique_under_races(void)
{
    setup();
    flavor_create("b-small", 2, 2048, 10, 5, 1536);
    namespaced_create("Network", "ipam", "net-a", "{\"cidr\":\"10.20.0.0/24\"}");
    ip_thread th[8] = {0};
    for (size_t i = 0; i < ELEMENTSOF(th); i++) {
        th[i].first = i;
        th[i].step = ELEMENTSOF(th);
        pthread_create(&th[i].t, NULL, ip_create, &th[i]);
    }
    for (size_t i = 0; i < ELEMENTSOF(th); i++)
        pthread_join(th[i].t, NULL);
    json_t *seen = json_object(), *macs = json_object();
    for (size_t i = 0; i < ELEMENTSOF(th); i++) {
        if (th[i].error[0])
            check_fail(__FILE__, __LINE__, "create: %s", th[i].error);
        for (size_t k = th[i].first; k < IP_INSTANCES; k += th[i].step) {
            const char *ip = th[i].ip[k];
            CHECK(strneq(ip, "10.20.0.", 8));
            int last = atoi(ip + 8);
            CHECK(last >= 2 && last <= 254); /* not the network, gateway or broadcast */
            CHECK(!json_object_get(seen, ip));
            json_object_set_new(seen, ip, json_string(th[i].uid[k]));
            char mac[32];
            snprintf(mac, sizeof(mac), "52:54:00:14:00:%02x", last);
            CHECK_STR(th[i].mac[k], mac);
            CHECK(!json_object_get(macs, mac));
            json_object_set_new(macs, mac, json_true());
        }
    }
    CHECK_INT(json_object_size(seen), ==, IP_INSTANCES);
    json_t *doc = etcd_json("/stratus/v1/ipam/ipam/net-a");
    json_t *alloc = json_object_get(doc, "allocations");
    CHECK_INT(json_object_size(alloc), ==, IP_INSTANCES);
    CHECK(json_equal(alloc, seen));
    json_decref(doc);
    json_decref(seen);
    json_decref(macs);
    for (size_t i = 0; i < ELEMENTSOF(th); i++)
        for (size_t k = 0; k < IP_INSTANCES; k++) {
            free(th[i].ip[k]);
            free(th[i].mac[k]);
            free(th[i].uid[k]);
        }

    /* A /29 holds six hosts; one is the gateway. */
    namespaced_create("Network", "ipam", "tiny-net", "{\"cidr\":\"10.30.0.0/29\"}");
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof(name), "tiny-%d", i);
        free(
            instance_create("ipam", name, "b-small", ",\"networks\":[{\"network\":\"tiny-net\"}]"));
    }
    _cleanup_free_ char *j =
        instance_json("ipam", "tiny-5", "b-small", ",\"networks\":[{\"network\":\"tiny-net\"}]");
    rpc_status st;
    CHECK_INT(fx_apply(fx, j, NULL, NULL, &st), ==, -ENOSPC);
    CHECK_STR(st.message, "spec.networks[0].network: network \"tiny-net\" has no free address "
                          "(10.30.0.0/29)");

    /* The same network twice: two NICs, two addresses. */
    namespaced_create("Network", "ipam", "two-net", "{\"cidr\":\"10.31.0.0/24\"}");
    _cleanup_free_ char *j2 =
        instance_json("ipam", "two", "b-small",
                      ",\"networks\":[{\"network\":\"two-net\"},{\"network\":\"two-net\"}]");
    json_t *obj = NULL;
    CHECK_OK(fx_apply(fx, j2, NULL, &obj, &st));
    const json_t *addrs = api_json_lookup(obj, "status.addresses");
    CHECK_INT(json_array_size(addrs), ==, 2);
    CHECK_STR(str_at(json_array_get(addrs, 0), "ip"), "10.31.0.2");
    CHECK_STR(str_at(json_array_get(addrs, 1), "ip"), "10.31.0.3");
    json_decref(obj);
}

static void fixed_ips_are_checked(void)
{
    setup();
    flavor_create("b-small", 2, 2048, 10, 5, 1536);
    namespaced_create("Network", "ipam", "fix-net", "{\"cidr\":\"10.40.0.0/24\"}");
    json_t *obj = NULL;
    rpc_status st;
    _cleanup_free_ char *a =
        instance_json("ipam", "fx-a", "b-small",
                      ",\"networks\":[{\"network\":\"fix-net\",\"fixedIp\":\"10.40.0.50\"}]");
    CHECK_OK(fx_apply(fx, a, NULL, &obj, &st));
    const json_t *addr = json_array_get(api_json_lookup(obj, "status.addresses"), 0);
    CHECK_STR(str_at(addr, "network"), "fix-net");
    CHECK_STR(str_at(addr, "ip"), "10.40.0.50");
    CHECK_STR(str_at(addr, "mac"), "52:54:00:28:00:32");
    json_decref(obj);

    static const struct {
        const char *ip;
        int error;
        const char *message;
    } bad[] = {
        {"10.40.0.50", -EEXIST,
         "spec.networks[0].fixedIp: \"10.40.0.50\" is already in use on network \"fix-net\""},
        {"10.41.0.5", -EINVAL,
         "spec.networks[0].fixedIp: \"10.41.0.5\" is not in network \"fix-net\" (10.40.0.0/24)"},
        {"10.40.0.1", -EINVAL,
         "spec.networks[0].fixedIp: \"10.40.0.1\" is the gateway of network \"fix-net\""},
        {"10.40.0.255", -EINVAL,
         "spec.networks[0].fixedIp: \"10.40.0.255\" is the broadcast address of 10.40.0.0/24"},
        {"10.40.0.0", -EINVAL,
         "spec.networks[0].fixedIp: \"10.40.0.0\" is the network address of 10.40.0.0/24"},
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        _cleanup_free_ char *extra =
            fmt(",\"networks\":[{\"network\":\"fix-net\",\"fixedIp\":\"%s\"}]", bad[i].ip);
        _cleanup_free_ char *j = instance_json("ipam", "fx-b", "b-small", extra);
        CHECK_INT(fx_apply(fx, j, NULL, NULL, &st), ==, bad[i].error);
        CHECK_STR(st.message, bad[i].message);
    }

    /* A fixed address further down is never taken by an automatic pick before it. */
    _cleanup_free_ char *c = instance_json("ipam", "fx-c", "b-small",
                                           ",\"networks\":[{\"network\":\"fix-net\"},"
                                           "{\"network\":\"fix-net\",\"fixedIp\":\"10.40.0.2\"}]");
    CHECK_OK(fx_apply(fx, c, NULL, &obj, &st));
    const json_t *addrs = api_json_lookup(obj, "status.addresses");
    CHECK_STR(str_at(json_array_get(addrs, 0), "ip"), "10.40.0.3");
    CHECK_STR(str_at(json_array_get(addrs, 1), "ip"), "10.40.0.2");
    json_decref(obj);
}

/* ---- final delete gives everything back */

static void final_delete_releases_everything(void)
{
    setup();
    flavor_create("b-small", 2, 2048, 10, 5, 1536);
    node_create("fin-1", 8, 8192, 100, NULL);
    namespaced_create("Network", "fin", "fin-net", "{\"cidr\":\"10.50.0.0/24\"}");
    namespaced_create("ServerGroup", "fin", "fin-g", "{\"policy\":\"anti-affinity\"}");
    _cleanup_free_ char *a =
        instance_create("fin", "fin-a", "b-small",
                        ",\"networks\":[{\"network\":\"fin-net\"}],\"serverGroup\":\"fin-g\"");
    char msg[1024];
    CHECK_INT(bind1("fin", "fin-a", a, "fin-1", msg, sizeof(msg)), ==, 0);
    json_t *doc = NULL;
    CHECK(alloc_entry("fin-1", a, &doc));
    json_decref(doc);
    doc = etcd_json("/stratus/v1/ipam/fin/fin-net");
    CHECK_STR(json_string_value(json_object_get(json_object_get(doc, "allocations"), "10.50.0.2")),
              a);
    json_decref(doc);
    doc = etcd_json("/stratus/v1/groupledger/fin/fin-g");
    CHECK_STR(json_string_value(json_object_get(json_object_get(doc, "members"), a)), "fin-1");
    json_decref(doc);

    /* Graceful: the finalizer holds it, and its claims with it. */
    json_t *obj = NULL;
    rpc_status st;
    CHECK_OK(fx_delete(fx, "Instance", "fin", "fin-a", &obj, &st));
    CHECK(api_json_lookup(obj, "metadata.deletionTimestamp"));
    json_decref(obj);
    CHECK(alloc_entry("fin-1", a, &doc));
    json_decref(doc);

    /* The agent's cleanup is done: the last finalizer goes and the object with it. */
    Stratus__V1__UpdateStatusRequest req = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
    char *fins[] = {FINALIZER};
    req.kind = "Instance";
    req.namespace_ = "fin";
    req.name = "fin-a";
    req.n_remove_finalizers = 1;
    req.remove_finalizers = fins;
    Stratus__V1__ObjectResponse *rep = NULL;
    CHECK_OK(rpc_client_update_status(fx->client, &req, TIMEOUT, &rep, &st));
    rpc_message_free(rep);
    CHECK_INT(fx_get(fx, "Instance", "fin", "fin-a", NULL, &st), ==, -ENOENT);
    CHECK(!etcd_json("/stratus/v1/allocations/fin-1"));
    CHECK(!etcd_json("/stratus/v1/groupledger/fin/fin-g"));
    CHECK(!etcd_json("/stratus/v1/ipam/fin/fin-net"));

    /* Never bound, no finalizer: deleted at once, its address released. */
    _cleanup_free_ char *b =
        instance_create("fin", "fin-b", "b-small", ",\"networks\":[{\"network\":\"fin-net\"}]");
    doc = etcd_json("/stratus/v1/ipam/fin/fin-net");
    CHECK_INT(json_object_size(json_object_get(doc, "allocations")), ==, 1);
    json_decref(doc);
    CHECK_OK(fx_delete(fx, "Instance", "fin", "fin-b", NULL, &st));
    CHECK(!etcd_json("/stratus/v1/ipam/fin/fin-net"));

    /* The released address is handed out again. */
    _cleanup_free_ char *j =
        instance_json("fin", "fin-c", "b-small", ",\"networks\":[{\"network\":\"fin-net\"}]");
    CHECK_OK(fx_apply(fx, j, NULL, &obj, &st));
    CHECK_STR(str_at(json_array_get(api_json_lookup(obj, "status.addresses"), 0), "ip"),
              "10.50.0.2");
    json_decref(obj);
}

/* ---- leases */

static int renew(const char *node, int64_t ttl, int64_t id, int64_t *ret_id, int64_t *ret_ttl,
                 rpc_status *st)
{
    Stratus__V1__RenewLeaseRequest req = STRATUS__V1__RENEW_LEASE_REQUEST__INIT;
    req.node = (char *)node;
    req.ttl_seconds = ttl;
    req.lease_id = id;
    Stratus__V1__RenewLeaseResponse *rep = NULL;
    int r = rpc_client_renew_lease(fx->client, &req, TIMEOUT, &rep, st);
    if (r == 0) {
        *ret_id = rep->lease_id;
        if (ret_ttl)
            *ret_ttl = rep->ttl_seconds;
    }
    rpc_message_free(rep);
    return r;
}

/* The lease the node's key is attached to; 0 when the key is gone. */
static int64_t lease_of(const char *node)
{
    _cleanup_free_ char *key = fmt("/stratus/v1/leases/%s", node);
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_get(direct, key, store_sync_done, &y));
    _cleanup_(store_result_freep) store_result *r = NULL;
    if (store_wait(direct, &y, &r) < 0)
        return 0;
    json_t *v = json_loadb(r->kvs[0].value, r->kvs[0].value_len, 0, NULL);
    CHECK_STR(str_at(v, "kind"), "Lease");
    CHECK_STR(str_at(v, "metadata.name"), node);
    CHECK_STR(str_at(v, "spec.holder"), node);
    CHECK(str_at(v, "spec.renewTime"));
    json_decref(v);
    return r->kvs[0].lease;
}

static void leases_grant_renew_and_regrant(void)
{
    setup();
    rpc_status st;
    int64_t id = 0, ttl = 0, id2 = 0;
    CHECK_OK(renew("lease-1", 0, 0, &id, &ttl, &st));
    CHECK(id > 0);
    CHECK_INT(ttl, ==, 10);
    CHECK_INT(lease_of("lease-1"), ==, id);
    CHECK_OK(renew("lease-1", 0, id, &id2, &ttl, &st));
    CHECK_INT(id2, ==, id);
    CHECK(ttl > 0);

    /* The lease disappears behind the agent's back: a new one, the key re-attached. */
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_lease_revoke(direct, id, store_sync_done, &y));
    CHECK_OK(store_wait(direct, &y, NULL));
    CHECK_INT(lease_of("lease-1"), ==, 0);
    CHECK_OK(renew("lease-1", 0, id, &id2, &ttl, &st));
    CHECK(id2 > 0 && id2 != id);
    CHECK_INT(lease_of("lease-1"), ==, id2);

    /* Real expiry: the key goes by itself, and the next renewal grants again. */
    int64_t short_id = 0;
    CHECK_OK(renew("lease-2", 1, 0, &short_id, NULL, &st));
    CHECK_INT(lease_of("lease-2"), ==, short_id);
    for (int i = 0; i < 100 && lease_of("lease-2"); i++)
        usleep(100 * 1000);
    CHECK_INT(lease_of("lease-2"), ==, 0);
    CHECK_OK(renew("lease-2", 1, short_id, &id2, NULL, &st));
    CHECK(id2 != short_id);
    CHECK_INT(lease_of("lease-2"), ==, id2);

    CHECK_OK(renew("lease-3", 100000, 0, &id2, &ttl, &st));
    CHECK_INT(ttl, ==, 300); /* clamped */
    CHECK_INT(renew("Not_A_Node", 0, 0, &id2, NULL, &st), ==, -EINVAL);
    CHECK(strneq(st.message, "node: ", 6));
    CHECK_INT(renew("lease-4", -1, 0, &id2, NULL, &st), ==, -EINVAL);
}

/* Writes the Node's allocatable vcpus straight into etcd, as another apiserver would: this one
 * learns it only from its watch, a moment later. */
static void node_vcpus_behind_its_back(const char *node, int vcpus)
{
    _cleanup_free_ char *key = fmt("/stratus/v1/nodes/%s", node);
    json_t *n = etcd_json(key);
    CHECK(n);
    json_object_set_new(json_object_get(json_object_get(n, "status"), "allocatable"), "vcpus",
                        json_integer(vcpus));
    _cleanup_free_ char *text = json_dumps(n, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(n);
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_put(direct, key, text, strlen(text), 0, 0, store_sync_done, &y));
    CHECK_OK(store_wait(direct, &y, NULL));
}

/* ---- what the apiserver parses once (docs/apiserver.md, "What is parsed when") */

/* Adds the label behind=<n> to what etcd holds of an instance, straight through pkg/store, as
 * indented JSON: not the canonical text the apiserver writes, so nothing may serve it as if it
 * were. Returns the new revision. */
static int64_t instance_label_behind_its_back(const char *ns, const char *name, int n)
{
    _cleanup_free_ char *key = fmt("/stratus/v1/instances/%s/%s", ns, name);
    json_t *o = etcd_json(key);
    CHECK(o != NULL);
    json_t *md = json_object_get(o, "metadata");
    json_t *labels = json_object_get(md, "labels");
    if (!labels)
        json_object_set_new(md, "labels", labels = json_object());
    json_object_set_new(labels, "behind", json_sprintf("%d", n));
    _cleanup_free_ char *text = json_dumps(o, JSON_INDENT(1));
    json_decref(o);
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_put(direct, key, text, strlen(text), 0, 0, store_sync_done, &y));
    store_result *r = NULL;
    CHECK_OK(store_wait(direct, &y, &r));
    int64_t rev = r->revision;
    store_result_free(r);
    return rev;
}

static rpc_watch *watch_instances(const char *ns, const char *rv)
{
    Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
    req.kind = "Instance";
    req.namespace_ = (char *)ns;
    req.resource_version = (char *)(rv ? rv : "");
    rpc_watch *w = NULL;
    CHECK_OK(rpc_client_watch(fx->client, &req, &w));
    return w;
}

/* The next event of w (bookmarks skipped) as its object, checked to be canonical JSON whose
 * resourceVersion is the event's; NULL after a while. */
static json_t *next_object(rpc_watch *w, int *ret_type)
{
    usec_t end = now_monotonic() + TIMEOUT;
    while (now_monotonic() < end) {
        Stratus__V1__WatchEvent *ev = NULL;
        rpc_status st;
        if (rpc_watch_next(w, end - now_monotonic(), &ev, &st) < 0)
            return NULL;
        if (ev->type == STRATUS__V1__WATCH_EVENT__TYPE__BOOKMARK) {
            rpc_message_free(ev);
            continue;
        }
        json_t *o = json_loads(ev->object_json, 0, NULL);
        CHECK(o != NULL);
        _cleanup_free_ char *canonical = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        CHECK_STR(ev->object_json, canonical);
        CHECK_STR(str_at(o, "metadata.resourceVersion"), ev->resource_version);
        *ret_type = ev->type;
        rpc_message_free(ev);
        return o;
    }
    return NULL;
}

/* The apiserver holds what it wrote and parsed, by key and revision. A value written by anyone
 * else comes at another revision and must be served as written: in Bind's decision and write,
 * in the watch, in List. Each round writes behind its back and binds at once, before or after
 * the watch told it (both happen over 20 rounds). */
static void what_is_written_behind_its_back_is_served_as_written(void)
{
    setup();
    const char *ns = "behind";
    flavor_create("behind-1", 1, 64, 1, 0, 0);
    node_create("behind-n", 64, 65536, 1000, NULL);
    rpc_watch *w = watch_instances(ns, NULL);
    enum { N = 20 };
    for (int i = 0; i < N; i++) {
        _cleanup_free_ char *name = fmt("b-%d", i);
        _cleanup_free_ char *uid = instance_create(ns, name, "behind-1", NULL);
        int64_t rev = instance_label_behind_its_back(ns, name, i);
        char msg[1024];
        CHECK_INT(bind1(ns, name, uid, "behind-n", msg, sizeof(msg)), ==, 0);
        _cleanup_free_ char *key = fmt("/stratus/v1/instances/%s/%s", ns, name);
        json_t *o = etcd_json(key);
        _cleanup_free_ char *want = fmt("%d", i);
        CHECK_STR(str_at(o, "metadata.labels.behind"), want);
        CHECK_STR(str_at(o, "spec.nodeName"), "behind-n");
        json_decref(o);

        int type;
        json_t *added = next_object(w, &type);
        CHECK(added && type == STRATUS__V1__WATCH_EVENT__TYPE__ADDED);
        CHECK(api_json_lookup(added, "metadata.labels.behind") == NULL);
        json_t *behind = next_object(w, &type);
        CHECK(behind && type == STRATUS__V1__WATCH_EVENT__TYPE__MODIFIED);
        CHECK_STR(str_at(behind, "metadata.labels.behind"), want);
        CHECK(api_json_lookup(behind, "spec.nodeName") == NULL);
        int64_t got_rev = 0;
        CHECK_OK(api_object_resource_version(behind, &got_rev));
        CHECK_INT(got_rev, ==, rev);
        json_t *bound = next_object(w, &type);
        CHECK(bound && type == STRATUS__V1__WATCH_EVENT__TYPE__MODIFIED);
        CHECK_STR(str_at(bound, "metadata.labels.behind"), want);
        CHECK_STR(str_at(bound, "spec.nodeName"), "behind-n");
        json_decref(added);
        json_decref(behind);
        json_decref(bound);
    }
    rpc_watch_free(w);

    Stratus__V1__ListRequest req = STRATUS__V1__LIST_REQUEST__INIT;
    req.kind = "Instance";
    req.namespace_ = (char *)ns;
    Stratus__V1__ListResponse *rep = NULL;
    rpc_status st;
    CHECK_OK(rpc_client_list(fx->client, &req, TIMEOUT, &rep, &st));
    CHECK_INT(rep->n_items_json, ==, N);
    for (size_t i = 0; i < rep->n_items_json; i++) {
        json_t *o = json_loads(rep->items_json[i], 0, NULL);
        CHECK(str_at(o, "metadata.labels.behind") != NULL);
        CHECK_STR(str_at(o, "spec.nodeName"), "behind-n");
        json_decref(o);
    }
    rpc_message_free(rep);
}

/* The same for a ledger, which the watch cache does not parse (it only notes the text): Bind holds
 * the ledger document it wrote, parsed; another writer fills the node behind its back. Once the
 * watch has brought that text, a parse of the older revision must not decide: its compare would
 * hold (the revision is the new one) and the node would be overcommitted. Before the watch has
 * brought it, the guess loses its compare. Either way: refused. */
static void a_ledger_written_behind_its_back_is_read_as_written(void)
{
    setup();
    const char *ns = "ledger-behind";
    flavor_create("lb-1", 1, 64, 1, 0, 0);
    node_create("lb-n", 4, 65536, 1000, NULL);
    _cleanup_free_ char *key = fmt("/stratus/v1/allocations/%s", "lb-n");
    for (int i = 0; i < 10; i++) {
        _cleanup_free_ char *first = fmt("first-%d", i), *second = fmt("second-%d", i);
        _cleanup_free_ char *a = instance_create(ns, first, "lb-1", NULL);
        _cleanup_free_ char *b = instance_create(ns, second, "lb-1", NULL);
        char msg[1024];
        CHECK_INT(bind1(ns, first, a, "lb-n", msg, sizeof(msg)), ==, 0);
        /* Another apiserver's claim of what is left, in canonical JSON as it would write it. */
        json_t *doc = etcd_json(key);
        json_t *claim =
            json_pack("{s:s,s:s,s:i,s:i,s:i}", "namespace", ns, "name", "elsewhere", "vcpus",
                      4 - (int)json_object_size(json_object_get(doc, "instances")), "memoryMiB", 64,
                      "diskGiB", 1);
        _cleanup_free_ char *fake = fmt("fake-%d", i);
        json_object_set_new(json_object_get(doc, "instances"), fake, claim);
        _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(doc);
        store_sync y = STORE_SYNC_INIT;
        CHECK_OK(store_put(direct, key, text, strlen(text), 0, 0, store_sync_done, &y));
        CHECK_OK(store_wait(direct, &y, NULL));
        if (i % 2)
            usleep(50000); /* every other round, the watch has brought it */
        CHECK_INT(bind1(ns, second, b, "lb-n", msg, sizeof(msg)), ==, RPC_CODE_RESOURCE_EXHAUSTED);
        CHECK(strstr(msg, "insufficient vcpus") != NULL);
        /* Free the node for the next round: drop every claim. */
        y = STORE_SYNC_INIT;
        CHECK_OK(store_delete(direct, key, 0, store_sync_done, &y));
        CHECK_OK(store_wait(direct, &y, NULL));
        usleep(20000);
    }
}

/* A ledger whose document holds a "metadata" object (written by anyone: etcdctl, a repair) is a
 * ledger, not an API object: the parse kept for what Bind wrote is that text, so the next Bind,
 * starting from it, writes no resourceVersion into the ledger (it did when objects were told from
 * ledgers by their having metadata). */
static void a_ledger_with_metadata_stays_as_written(void)
{
    setup();
    const char *ns = "ledger-md";
    flavor_create("lm-1", 1, 64, 1, 0, 0);
    node_create("lm-n", 8, 65536, 1000, NULL);
    _cleanup_free_ char *key = fmt("/stratus/v1/allocations/%s", "lm-n");
    _cleanup_free_ char *a = instance_create(ns, "a", "lm-1", NULL);
    _cleanup_free_ char *b = instance_create(ns, "b", "lm-1", NULL);
    const char *text = "{\"instances\":{},\"metadata\":{\"note\":\"repaired by hand\"}}";
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_put(direct, key, text, strlen(text), 0, 0, store_sync_done, &y));
    CHECK_OK(store_wait(direct, &y, NULL));
    usleep(100000);
    char msg[1024];
    CHECK_INT(bind1(ns, "a", a, "lm-n", msg, sizeof(msg)), ==, 0);
    json_t *doc = etcd_json(key);
    CHECK(api_json_lookup(doc, "metadata.resourceVersion") == NULL);
    json_decref(doc);
    CHECK_INT(bind1(ns, "b", b, "lm-n", msg, sizeof(msg)), ==, 0);
    doc = etcd_json(key);
    /* What etcd holds: the first Bind's text plus b's claim, nothing else. */
    CHECK(str_at(doc, "metadata.resourceVersion") == NULL);
    CHECK_STR(str_at(doc, "metadata.note"), "repaired by hand");
    json_decref(doc);
}

/* Bind starts from the apiserver's own parse of what Apply and UpdateStatus wrote just before
 * (the newest revision); what it changes it changes in copies, so the states the watch cache
 * shares with it (each event of the instance, replayed later) stay as they were written. */
static void bind_sees_what_apply_and_status_changed(void)
{
    setup();
    const char *ns = "parsed";
    flavor_create("parsed-1", 1, 64, 1, 0, 0);
    node_create("parsed-n", 64, 65536, 1000, NULL);
    for (int i = 0; i < 10; i++) {
        _cleanup_free_ char *name = fmt("p-%d", i);
        _cleanup_free_ char *j = instance_json(ns, name, "parsed-1", NULL);
        json_t *created = NULL;
        rpc_status st;
        CHECK_OK(apply(j, &created, &st));
        _cleanup_free_ char *uid = xstrdup(api_object_uid(created));
        _cleanup_free_ char *rv0 = xstrdup(str_at(created, "metadata.resourceVersion"));
        json_decref(created);
        _cleanup_free_ char *labelled =
            fmt("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":"
                "\"%s\",\"namespace\":\"%s\",\"labels\":{\"tier\":\"t%d\"}},\"spec\":{\"flavor\":"
                "\"parsed-1\",\"image\":\"img\"}}",
                name, ns, i);
        apply_ok(labelled);
        Stratus__V1__UpdateStatusRequest req = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
        req.kind = "Instance";
        req.namespace_ = (char *)ns;
        req.name = name;
        req.status_json = "{\"phase\":\"Pending\",\"observedGeneration\":7}";
        Stratus__V1__ObjectResponse *srep = NULL;
        CHECK_OK(rpc_client_update_status(fx->client, &req, TIMEOUT, &srep, &st));
        rpc_message_free(srep);
        char msg[1024];
        CHECK_INT(bind1(ns, name, uid, "parsed-n", msg, sizeof(msg)), ==, 0);

        _cleanup_free_ char *key = fmt("/stratus/v1/instances/%s/%s", ns, name);
        json_t *o = etcd_json(key);
        _cleanup_free_ char *tier = fmt("t%d", i);
        CHECK_STR(str_at(o, "metadata.labels.tier"), tier);
        CHECK_INT(json_integer_value(api_json_lookup(o, "status.observedGeneration")), ==, 7);
        CHECK_STR(str_at(o, "status.phase"), "Scheduled");
        CHECK_STR(str_at(o, "spec.nodeName"), "parsed-n");
        CHECK_STR(str_at(condition(o, "Scheduled"), "status"), "True");
        CHECK_STR(json_string_value(json_array_get(api_json_lookup(o, "metadata.finalizers"), 0)),
                  FINALIZER);
        json_decref(o);

        /* Replayed from the ring after the creation: the labels applied, the status replaced
         * (no conditions left), then bound — each as it was written. */
        rpc_watch *w = watch_instances(ns, rv0);
        int type;
        for (int k = 0; k < 3; k++) {
            json_t *ev = next_object(w, &type);
            CHECK(ev != NULL);
            CHECK_STR(str_at(ev, "metadata.name"), name);
            CHECK_STR(str_at(ev, "metadata.labels.tier"), tier);
            CHECK_STR(str_at(ev, "status.phase"), k < 2 ? "Pending" : "Scheduled");
            CHECK((k == 2) == (api_json_lookup(ev, "spec.nodeName") != NULL));
            CHECK((k == 2) == (api_json_lookup(ev, "metadata.finalizers") != NULL));
            const char *sched = str_at(condition(ev, "Scheduled"), "status");
            CHECK_STR(sched ? sched : "none", k == 0 ? "False" : k == 1 ? "none" : "True");
            CHECK_INT(json_integer_value(api_json_lookup(ev, "status.observedGeneration")), ==,
                      k == 0 ? 0 : 7);
            json_decref(ev);
        }
        rpc_watch_free(w);
    }
    /* Listed as they are now: each item is the canonical text of the object Get reads (List
     * makes it from the text the apiserver wrote, resourceVersion put in, without a dump). */
    Stratus__V1__ListRequest lr = STRATUS__V1__LIST_REQUEST__INIT;
    lr.kind = "instances";
    lr.namespace_ = (char *)ns;
    Stratus__V1__ListResponse *lrep = NULL;
    rpc_status st;
    CHECK_OK(rpc_client_list(fx->client, &lr, TIMEOUT, &lrep, &st));
    CHECK_INT(lrep->n_items_json, ==, 10);
    for (size_t i = 0; i < lrep->n_items_json; i++) {
        json_t *item = json_loads(lrep->items_json[i], 0, NULL);
        CHECK(item != NULL);
        json_t *got = NULL;
        CHECK_OK(fx_get(fx, "instance", ns, api_object_name(item), &got, &st));
        _cleanup_free_ char *want = api_json_canonical(got);
        CHECK_STR(lrep->items_json[i], want);
        json_decref(got);
        json_decref(item);
    }
    rpc_message_free(lrep);
}

/* Bind may start from what the apiserver saw of a Node last (its recent values); the capacity it
 * decides on must be the one in etcd when it writes. Each round shrinks the node behind the
 * apiserver's back and binds at once, before the watch may have told it: always refused. */
static void bind_decides_on_the_capacity_it_writes_against(void)
{
    setup();
    const char *ns = "fresh";
    flavor_create("fresh-8", 8, 512, 1, 0, 0);
    node_create("fresh-n", 16, 65536, 1000, NULL);
    for (int i = 0; i < 30; i++) {
        _cleanup_free_ char *name = fmt("big-%d", i);
        _cleanup_free_ char *uid = instance_create(ns, name, "fresh-8", NULL);
        node_vcpus_behind_its_back("fresh-n", 4);
        char msg[1024];
        CHECK_INT(bind1(ns, name, uid, "fresh-n", msg, sizeof(msg)), ==,
                  RPC_CODE_RESOURCE_EXHAUSTED);
        CHECK(strstr(msg, "insufficient vcpus") != NULL);
        node_vcpus_behind_its_back("fresh-n", 16);
        usleep(20000); /* the apiserver sees 16 again: its guess goes stale with the next round */
    }
    json_t *doc = NULL;
    _cleanup_free_ char *key = fmt("/stratus/v1/allocations/%s", "fresh-n");
    doc = etcd_json(key);
    CHECK(json_object_size(json_object_get(doc, "instances")) == 0);
    json_decref(doc);
}

CHECK_MAIN(CASE(bind_fits_and_says_why_not), CASE(bind_records_the_claim_in_the_instance),
           CASE(bind_is_idempotent), CASE(bind_conflicts_and_errors),
           CASE(bind_splits_batches_too_large_for_etcd), CASE(unbind_records_the_attempt),
           CASE(racing_schedulers_never_overcommit), CASE(bind_calls_for_the_same_nodes_take_turns),
           CASE(anti_affinity_holds_under_races), CASE(ip_addresses_are_unique_under_races),
           CASE(fixed_ips_are_checked), CASE(final_delete_releases_everything),
           CASE(leases_grant_renew_and_regrant),
           CASE(bind_decides_on_the_capacity_it_writes_against),
           CASE(what_is_written_behind_its_back_is_served_as_written),
           CASE(a_ledger_written_behind_its_back_is_read_as_written),
           CASE(a_ledger_with_metadata_stays_as_written),
           CASE(bind_sees_what_apply_and_status_changed))
