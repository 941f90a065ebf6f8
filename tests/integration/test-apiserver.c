/* Integration tests for the apiserver's object methods against a real etcd and the real gRPC
 * server: Apply, Get, List, Delete, UpdateStatus, Watch, Health. Bind/Unbind/IPAM/leases are in
 * test-apiserver-bind.c. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/object.h"
#include "apiserver-fixture.h"
#include "base/alloc.h"
#include "check.h"
#include "store/store.h"

static apiserver_fixture *fx;

static void setup(void)
{
    if (fx)
        return;
    apiserver_options o = {.watch_cache = 64, .bookmark_interval = USEC_PER_SEC / 5};
    fx = apiserver_fixture_start(&o);
}

static const char *flavor_json(const char *name, int vcpus)
{
    static char buf[512];
    snprintf(buf, sizeof(buf),
             "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":\"%s\"},"
             "\"spec\":{\"vcpus\":%d,\"memoryMiB\":512,\"rootDiskGiB\":1}}",
             name, vcpus);
    return buf;
}

static const char *instance_json(const char *name, const char *labels, const char *extra)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf),
             "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"%s\","
             "\"labels\":{%s}},\"spec\":{\"flavor\":\"tiny\",\"image\":\"img\"%s}}",
             name, labels, extra);
    return buf;
}

static void base_objects(void)
{
    static bool done;
    if (done)
        return;
    rpc_status st;
    CHECK_OK(fx_apply(fx, flavor_json("tiny", 1), NULL, NULL, &st));
    CHECK_OK(fx_apply(fx,
                      "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Image\",\"metadata\":{\"name\":"
                      "\"img\"},\"spec\":{\"source\":{\"url\":\"file:///tmp/x.qcow2\",\"sha256\":"
                      "\"0000000000000000000000000000000000000000000000000000000000000000\","
                      "\"format\":\"qcow2\"}}}",
                      NULL, NULL, &st));
    done = true;
}

static void apply_create_unchanged_configured(void)
{
    setup();
    rpc_status st;
    int result = 0;
    json_t *obj = NULL;
    CHECK_OK(fx_apply(fx, flavor_json("f1", 2), &result, &obj, &st));
    CHECK_INT(result, ==, 1); /* created */
    const char *uid = api_object_uid(obj);
    CHECK(uid && strlen(uid) == 36);
    CHECK_INT(api_object_generation(obj), ==, 1);
    int64_t rv1 = 0;
    CHECK_OK(api_object_resource_version(obj, &rv1));
    char *uid1 = xstrdup(uid);
    json_decref(obj);

    CHECK_OK(fx_apply(fx, flavor_json("f1", 2), &result, &obj, &st));
    CHECK_INT(result, ==, 3); /* unchanged */
    int64_t rv2 = 0;
    CHECK_OK(api_object_resource_version(obj, &rv2));
    CHECK_INT(rv2, ==, rv1); /* nothing was written */
    json_decref(obj);

    /* a flavor's sizes are fixed (as in Nova): refused, naming the field, nothing written */
    CHECK(fx_apply(fx, flavor_json("f1", 4), &result, NULL, &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_INVALID_ARGUMENT);
    CHECK(strstr(st.message, "spec.vcpus") != NULL);
    CHECK_OK(fx_get(fx, "flavor", NULL, "f1", &obj, &st));
    CHECK_INT(json_integer_value(api_json_lookup(obj, "spec.vcpus")), ==, 2);
    int64_t rv3 = 0;
    CHECK_OK(api_object_resource_version(obj, &rv3));
    CHECK_INT(rv3, ==, rv1);
    json_decref(obj);

    /* extraSpecs may change: a new generation, the same uid */
    CHECK_OK(fx_apply(fx,
                      "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":"
                      "\"f1\"},\"spec\":{\"vcpus\":2,\"memoryMiB\":512,\"rootDiskGiB\":1,"
                      "\"extraSpecs\":{\"hw:cpu_policy\":\"dedicated\"}}}",
                      &result, &obj, &st));
    CHECK_INT(result, ==, 2); /* configured */
    CHECK_STR(api_object_uid(obj), uid1);
    CHECK_INT(api_object_generation(obj), ==, 2);
    CHECK_STR(json_string_value(api_json_lookup(obj, "spec.extraSpecs.hw:cpu_policy")),
              "dedicated");
    json_decref(obj);
    free(uid1);

    /* labels change the object but not the spec: no new generation */
    CHECK_OK(fx_apply(fx,
                      "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":"
                      "\"f1\",\"labels\":{\"tier\":\"gold\"}},\"spec\":{\"vcpus\":2,\"memoryMiB\":"
                      "512,\"rootDiskGiB\":1,\"extraSpecs\":{\"hw:cpu_policy\":\"dedicated\"}}}",
                      &result, &obj, &st));
    CHECK_INT(result, ==, 2);
    CHECK_INT(api_object_generation(obj), ==, 2);
    json_decref(obj);

    /* a field set before and left out now is removed */
    CHECK_OK(fx_apply(fx, flavor_json("f1", 2), &result, &obj, &st));
    CHECK(api_json_lookup(obj, "spec.extraSpecs") == NULL ||
          json_object_size(api_json_lookup(obj, "spec.extraSpecs")) == 0);
    CHECK(api_object_labels(obj) == NULL || json_object_size(api_object_labels(obj)) == 0);
    json_decref(obj);
}

static void apply_rejects_bad_input_and_keeps_what_is_stored(void)
{
    setup();
    base_objects();
    rpc_status st;
    CHECK_OK(fx_apply(fx, flavor_json("keep", 2), NULL, NULL, &st));

    static const struct {
        const char *doc;
        int code;
        const char *message;
    } bad[] = {
        {"{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":\"keep\"},"
         "\"spec\":{\"vcpus\":2,\"memoryMiB\":512,\"flavr\":1}}",
         RPC_CODE_INVALID_ARGUMENT, "spec.flavr: unknown field"},
        {"{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":\"keep\"},"
         "\"spec\":{\"vcpus\":\"two\",\"memoryMiB\":512}}",
         RPC_CODE_INVALID_ARGUMENT, "spec.vcpus"},
        {"{not json", RPC_CODE_INVALID_ARGUMENT, "line 1"},
        {"{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"x\"},"
         "\"spec\":{\"flavor\":\"nope\",\"image\":\"img\"}}",
         RPC_CODE_INVALID_ARGUMENT, "spec.flavor: Flavor \"nope\" not found"},
        {"{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"x\"},"
         "\"spec\":{\"flavor\":\"tiny\",\"image\":\"img\",\"networks\":[{\"network\":\"nonet\"}]}}",
         RPC_CODE_INVALID_ARGUMENT, "spec.networks[0].network: Network \"nonet\" not found"},
        {"{\"apiVersion\":\"stratus/v1\",\"kind\":\"Bogus\",\"metadata\":{\"name\":\"x\"}}",
         RPC_CODE_INVALID_ARGUMENT, "kind"},
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        memset(&st, 0, sizeof(st));
        CHECK(fx_apply(fx, bad[i].doc, NULL, NULL, &st) < 0);
        CHECK_INT(st.code, ==, bad[i].code);
        if (!strstr(st.message, bad[i].message))
            check_fail(__FILE__, __LINE__, "case %zu: \"%s\" lacks \"%s\"", i, st.message,
                       bad[i].message);
    }
    json_t *obj = NULL;
    CHECK_OK(fx_get(fx, "flavor", NULL, "keep", &obj, &st));
    CHECK_INT(json_integer_value(api_json_lookup(obj, "spec.vcpus")), ==, 2); /* nothing lost */
    json_decref(obj);
    CHECK(fx_get(fx, "instance", "default", "x", NULL, &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_NOT_FOUND);
    CHECK(strstr(st.message, "instances \"default/x\" not found") != NULL);
}

static void apply_ignores_status_and_dry_run_writes_nothing(void)
{
    setup();
    base_objects();
    rpc_status st;
    int result;
    json_t *obj = NULL;
    CHECK_OK(
        fx_apply(fx,
                 "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":"
                 "\"st1\",\"uid\":\"forged\"},\"spec\":{\"flavor\":\"tiny\",\"image\":\"img\"},"
                 "\"status\":{\"phase\":\"Running\"}}",
                 &result, &obj, &st));
    CHECK_STR(json_string_value(api_json_lookup(obj, "status.phase")), "Pending");
    CHECK(!streq(api_object_uid(obj), "forged"));
    json_decref(obj);

    Stratus__V1__ApplyRequest req = STRATUS__V1__APPLY_REQUEST__INIT;
    req.object_json = (char *)flavor_json("dry", 1);
    req.dry_run = true;
    Stratus__V1__ApplyResponse *rep = NULL;
    CHECK_OK(rpc_client_apply(fx->client, &req, 5 * USEC_PER_SEC, &rep, &st));
    CHECK_INT(rep->result, ==, STRATUS__V1__APPLY_RESPONSE__RESULT__CREATED);
    rpc_message_free(rep);
    CHECK(fx_get(fx, "flavor", NULL, "dry", NULL, &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_NOT_FOUND);
}

/* Every item of a kind, from fixture f (one page). */
static int list_on(apiserver_fixture *f, const char *kind, Stratus__V1__ListResponse **ret,
                   rpc_status *st)
{
    Stratus__V1__ListRequest req = STRATUS__V1__LIST_REQUEST__INIT;
    req.kind = (char *)kind;
    req.limit = 1000;
    return rpc_client_list(f->client, &req, 10 * USEC_PER_SEC, ret, st);
}

static int list(const char *kind, const char *ns, bool all, const char *ls, const char *fs,
                int64_t limit, const char *token, Stratus__V1__ListResponse **ret, rpc_status *st)
{
    Stratus__V1__ListRequest req = STRATUS__V1__LIST_REQUEST__INIT;
    req.kind = (char *)kind;
    req.namespace_ = (char *)(ns ? ns : "");
    req.all_namespaces = all;
    req.label_selector = (char *)(ls ? ls : "");
    req.field_selector = (char *)(fs ? fs : "");
    req.limit = limit;
    req.continue_token = (char *)(token ? token : "");
    return rpc_client_list(fx->client, &req, 10 * USEC_PER_SEC, ret, st);
}

static void list_selects_and_pages(void)
{
    setup();
    base_objects();
    rpc_status st;
    for (int i = 0; i < 12; i++) {
        char name[32], labels[64];
        snprintf(name, sizeof(name), "web-%02d", i);
        snprintf(labels, sizeof(labels), "\"app\":\"web\",\"shard\":\"%s\"",
                 i % 2 ? "odd" : "even");
        CHECK_OK(fx_apply(fx, instance_json(name, labels, ""), NULL, NULL, &st));
    }
    CHECK_OK(fx_apply(fx,
                      "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":"
                      "\"db\",\"namespace\":\"other\",\"labels\":{\"app\":\"db\"}},\"spec\":{"
                      "\"flavor\":\"tiny\",\"image\":\"img\"}}",
                      NULL, NULL, &st));

    Stratus__V1__ListResponse *rep = NULL;
    CHECK_OK(
        list("instances", "default", false, "app=web,shard in (odd)", NULL, 0, NULL, &rep, &st));
    CHECK_INT(rep->n_items_json, ==, 6);
    rpc_message_free(rep);

    CHECK_OK(list("i", NULL, true, "app", NULL, 0, NULL, &rep, &st));
    size_t all = rep->n_items_json;
    CHECK_INT(all, >=, 13);
    rpc_message_free(rep);

    CHECK_OK(list("instances", "other", false, NULL, NULL, 0, NULL, &rep, &st));
    CHECK_INT(rep->n_items_json, ==, 1);
    rpc_message_free(rep);

    /* field selector: nothing is bound yet */
    CHECK_OK(list("instances", "default", false, "app=web", "spec.nodeName=", 0, NULL, &rep, &st));
    CHECK_INT(rep->n_items_json, ==, 12);
    rpc_message_free(rep);
    CHECK_OK(
        list("instances", "default", false, "app=web", "spec.nodeName=n1", 0, NULL, &rep, &st));
    CHECK_INT(rep->n_items_json, ==, 0);
    rpc_message_free(rep);

    /* pages of 5 at one revision: 5, 5, 2, with a write in between that does not show */
    char *token = NULL;
    int pages = 0, seen = 0;
    char rv0[24] = "";
    do {
        CHECK_OK(list("instances", "default", false, "app=web", NULL, 5, token, &rep, &st));
        pages++;
        seen += (int)rep->n_items_json;
        if (pages == 1) {
            snprintf(rv0, sizeof(rv0), "%s", rep->resource_version);
            CHECK_OK(fx_apply(fx, instance_json("web-99", "\"app\":\"web\"", ""), NULL, NULL, &st));
        } else
            CHECK_STR(rep->resource_version, rv0);
        free(token);
        token = *rep->continue_token ? xstrdup(rep->continue_token) : NULL;
        rpc_message_free(rep);
    } while (token && pages < 10);
    CHECK_INT(pages, ==, 3);
    CHECK_INT(seen, ==, 12);

    CHECK(list("instances", "default", false, "app in (web", NULL, 0, NULL, &rep, &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_INVALID_ARGUMENT);
    CHECK(strstr(st.message, "labelSelector") != NULL);
    CHECK(list("instances", "default", false, NULL, "spec.bogus=1", 0, NULL, &rep, &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_INVALID_ARGUMENT);
    CHECK(list("instances", "default", false, NULL, NULL, 0, "garbage", &rep, &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_INVALID_ARGUMENT);
    CHECK(list("instances", "default", false, NULL, NULL, 1000000, NULL, &rep, &st) < 0);
    CHECK(strstr(st.message, "limit") != NULL);
}

/* A List of objects larger in all than the store takes in one response (64 MiB) reads them from
 * etcd in parts: read in one go, as a page's keys were, every page failed, and an informer would
 * have retried forever. 280 instances of ~250 KiB, in pages of up to 2,000 (each stops at ~3
 * MiB). */
static void list_reads_big_objects_in_parts(void)
{
    setup();
    base_objects();
    enum { N = 280, PAD = 250 * 1000 };
    char *pad = xmalloc(PAD + 1);
    memset(pad, 'x', PAD);
    pad[PAD] = '\0';
    rpc_status st;
    for (int i = 0; i < N; i++) {
        _cleanup_free_ char *doc =
            xasprintf("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":"
                      "\"big-%03d\",\"namespace\":\"big\",\"annotations\":{\"pad\":\"%s\"}},"
                      "\"spec\":{\"flavor\":\"tiny\",\"image\":\"img\"}}",
                      i, pad);
        CHECK_OK(fx_apply(fx, doc, NULL, NULL, &st));
    }
    free(pad);
    char *token = NULL;
    int pages = 0, seen = 0;
    do {
        Stratus__V1__ListResponse *rep = NULL;
        if (list("instances", "big", false, NULL, NULL, 2000, token, &rep, &st) < 0)
            check_fail(__FILE__, __LINE__, "page %d: %s", pages + 1, st.message);
        pages++;
        seen += (int)rep->n_items_json;
        free(token);
        token = *rep->continue_token ? xstrdup(rep->continue_token) : NULL;
        rpc_message_free(rep);
    } while (token && pages < 100);
    CHECK_INT(seen, ==, N);
    CHECK_INT(pages, >, 1);
}

static int update_status_on(apiserver_fixture *f, const char *kind, const char *ns,
                            const char *name, const char *rv, const char *status,
                            const char *remove_finalizer, json_t **ret, rpc_status *st)
{
    Stratus__V1__UpdateStatusRequest req = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
    req.kind = (char *)kind;
    req.namespace_ = (char *)(ns ? ns : "");
    req.name = (char *)name;
    req.resource_version = (char *)(rv ? rv : "");
    req.status_json = (char *)(status ? status : "");
    char *fin[1] = {(char *)remove_finalizer};
    if (remove_finalizer) {
        req.n_remove_finalizers = 1;
        req.remove_finalizers = fin;
    }
    Stratus__V1__ObjectResponse *rep = NULL;
    int r = rpc_client_update_status(f->client, &req, 10 * USEC_PER_SEC, &rep, st);
    if (r >= 0 && ret)
        *ret = json_loads(rep->object_json, 0, NULL);
    rpc_message_free(rep);
    return r;
}

static int update_status(const char *kind, const char *ns, const char *name, const char *rv,
                         const char *status, const char *remove_finalizer, json_t **ret,
                         rpc_status *st)
{
    return update_status_on(fx, kind, ns, name, rv, status, remove_finalizer, ret, st);
}

/* Two apiservers on one etcd, writing the same objects in turn: each starts its writes from
 * what it saw last (its recent values), which the other's writes keep making stale. Nothing
 * may be lost: every write is checked against etcd by its compare, whatever was guessed. */
static void two_apiservers_lose_nothing(void)
{
    setup();
    base_objects();
    apiserver_fixture *b = apiserver_fixture_second(fx);
    rpc_status st;
    int result = 0;
    json_t *obj = NULL;
    char labels[64], status[128];
    for (int i = 0; i < 60; i++) {
        /* a: the spec side (Apply keeps the status); b: the status side (keeps the spec) */
        snprintf(labels, sizeof(labels), "\"n\":\"%d\"", i);
        CHECK_OK(fx_apply(fx, instance_json("shared", labels, ""), &result, NULL, &st));
        CHECK_INT(result, ==, i == 0 ? 1 : 2);
        snprintf(status, sizeof(status), "{\"phase\":\"Pending\",\"observedGeneration\":%d}", i);
        CHECK_OK(
            update_status_on(b, "instance", "default", "shared", NULL, status, NULL, NULL, &st));
        CHECK_OK(fx_get(b, "instance", "default", "shared", &obj, &st));
        char want[16];
        snprintf(want, sizeof(want), "%d", i);
        CHECK_STR(json_string_value(api_json_lookup(obj, "metadata.labels.n")), want);
        CHECK_INT(json_integer_value(api_json_lookup(obj, "status.observedGeneration")), ==, i);
        json_decref(obj);
    }
    /* created by b, applied through a (which may not have seen it yet): an update, not a
     * second creation */
    for (int i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof(name), "born-%d", i);
        json_t *made = NULL;
        CHECK_OK(fx_apply(b, instance_json(name, "", ""), &result, &made, &st));
        CHECK_INT(result, ==, 1);
        CHECK_OK(fx_apply(fx, instance_json(name, "\"x\":\"y\"", ""), &result, &obj, &st));
        CHECK_INT(result, ==, 2);
        CHECK_STR(api_object_uid(obj), api_object_uid(made));
        json_decref(obj);
        json_decref(made);
    }
    /* deleted through b while a last wrote it: a's status write finds it gone */
    for (int i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof(name), "gone-%d", i);
        CHECK_OK(fx_apply(fx, instance_json(name, "", ""), NULL, NULL, &st));
        CHECK_OK(update_status_on(fx, "instance", "default", name, NULL, "{\"phase\":\"Pending\"}",
                                  NULL, NULL, &st));
        CHECK_OK(fx_delete(b, "instance", "default", name, NULL, &st));
        CHECK(update_status_on(fx, "instance", "default", name, NULL, "{\"phase\":\"Pending\"}",
                               NULL, NULL, &st) < 0);
        CHECK_INT(st.code, ==, RPC_CODE_NOT_FOUND);
        CHECK(fx_get(b, "instance", "default", name, NULL, &st) < 0);
        CHECK_INT(st.code, ==, RPC_CODE_NOT_FOUND);
    }
    apiserver_fixture_stop(b);
}

typedef struct counter_run {
    int ok, aborted, other;
} counter_run;

static void *bump_counter(void *arg)
{
    counter_run *c = arg;
    for (int i = 0; i < 10; i++) {
        rpc_status st;
        json_t *obj = NULL;
        if (fx_get(fx, "instance", "default", "counter", &obj, &st) < 0) {
            __atomic_add_fetch(&c->other, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        int64_t n = json_integer_value(api_json_lookup(obj, "status.observedGeneration"));
        const char *rv = json_string_value(api_json_lookup(obj, "metadata.resourceVersion"));
        char status[128];
        snprintf(status, sizeof(status), "{\"phase\":\"Pending\",\"observedGeneration\":%lld}",
                 (long long)n + 1);
        int r = update_status("instance", "default", "counter", rv, status, NULL, NULL, &st);
        if (r == 0)
            __atomic_add_fetch(&c->ok, 1, __ATOMIC_SEQ_CST);
        else if (st.code == RPC_CODE_ABORTED)
            __atomic_add_fetch(&c->aborted, 1, __ATOMIC_SEQ_CST);
        else
            __atomic_add_fetch(&c->other, 1, __ATOMIC_SEQ_CST);
        json_decref(obj);
    }
    return NULL;
}

static void concurrent_updates_lose_nothing(void)
{
    setup();
    base_objects();
    rpc_status st;
    CHECK_OK(fx_apply(fx, instance_json("counter", "", ""), NULL, NULL, &st));
    counter_run c = {0};
    pthread_t t[10];
    for (int i = 0; i < 10; i++)
        pthread_create(&t[i], NULL, bump_counter, &c);
    for (int i = 0; i < 10; i++)
        pthread_join(t[i], NULL);
    CHECK_INT(c.ok + c.aborted, ==, 100); /* each succeeded or was told it lost */
    CHECK_INT(c.other, ==, 0);
    CHECK_INT(c.ok, >=, 1);
    json_t *obj = NULL;
    CHECK_OK(fx_get(fx, "instance", "default", "counter", &obj, &st));
    /* no lost update: every success moved the counter by exactly one */
    CHECK_INT(json_integer_value(api_json_lookup(obj, "status.observedGeneration")), ==, c.ok);
    json_decref(obj);
}

static void status_is_validated_and_preconditioned(void)
{
    setup();
    base_objects();
    rpc_status st;
    json_t *obj = NULL;
    CHECK_OK(fx_apply(fx, instance_json("stat", "", ""), NULL, &obj, &st));
    const char *rv = json_string_value(api_json_lookup(obj, "metadata.resourceVersion"));
    char rv_old[24];
    snprintf(rv_old, sizeof(rv_old), "%s", rv);
    json_decref(obj);
    CHECK(update_status("instance", NULL, "stat", NULL, "{\"phase\":\"Flying\"}", NULL, NULL, &st) <
          0);
    CHECK_INT(st.code, ==, RPC_CODE_INVALID_ARGUMENT);
    CHECK(strstr(st.message, "status.phase") != NULL);
    CHECK_OK(update_status("instance", NULL, "stat", rv_old, "{\"phase\":\"Building\"}", NULL, &obj,
                           &st));
    CHECK_STR(json_string_value(api_json_lookup(obj, "status.phase")), "Building");
    CHECK_INT(api_object_generation(obj), ==, 1); /* status is not spec */
    json_decref(obj);
    CHECK(update_status("instance", NULL, "stat", rv_old, "{\"phase\":\"Running\"}", NULL, NULL,
                        &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_ABORTED);
    CHECK(update_status("instance", NULL, "nope", NULL, "{\"phase\":\"Running\"}", NULL, NULL,
                        &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_NOT_FOUND);
}

static void delete_waits_for_finalizers(void)
{
    setup();
    base_objects();
    rpc_status st;
    /* an object without finalizers goes at once */
    CHECK_OK(fx_apply(fx, flavor_json("gone", 1), NULL, NULL, &st));
    CHECK_OK(fx_delete(fx, "flavor", NULL, "gone", NULL, &st));
    CHECK(fx_get(fx, "flavor", NULL, "gone", NULL, &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_NOT_FOUND);
    CHECK(fx_delete(fx, "flavor", NULL, "gone", NULL, &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_NOT_FOUND);

    /* a node agent's finalizer (set when the instance is bound) holds the deletion. The
     * finalizer is put on through the store directly here: binding is tested elsewhere. */
    CHECK_OK(fx_apply(fx, instance_json("fin", "", ""), NULL, NULL, &st));
    {
        struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
        store_options o = {.n_endpoints = 1, .endpoints = {etcd_fixture_endpoint(fx->etcd)}};
        store *s = NULL;
        CHECK_OK(store_new(loop, &o, &s));
        store_sync y = STORE_SYNC_INIT;
        store_result *r = NULL;
        store_get(s, "/stratus/v1/instances/default/fin", store_sync_done, &y);
        CHECK_OK(store_wait(s, &y, &r));
        json_t *o2 = json_loadb(r->kvs[0].value, r->kvs[0].value_len, 0, NULL);
        json_object_set_new(json_object_get(o2, "metadata"), "finalizers",
                            json_pack("[s]", "stratus.io/node-agent"));
        char *text = json_dumps(o2, JSON_COMPACT | JSON_SORT_KEYS);
        y = STORE_SYNC_INIT;
        store_update(s, "/stratus/v1/instances/default/fin", text, strlen(text),
                     r->kvs[0].mod_revision, 0, store_sync_done, &y);
        CHECK_OK(store_wait(s, &y, NULL));
        free(text);
        json_decref(o2);
        store_result_free(r);
        store_free(s);
        ev_loop_destroy(loop);
    }
    json_t *obj = NULL;
    CHECK_OK(fx_delete(fx, "instance", "default", "fin", &obj, &st));
    CHECK(api_json_lookup(obj, "metadata.deletionTimestamp") != NULL);
    CHECK_STR(json_string_value(api_json_lookup(obj, "status.phase")), "Deleting");
    json_decref(obj);
    CHECK_OK(fx_get(fx, "instance", "default", "fin", &obj, &st)); /* still there */
    json_decref(obj);
    /* apply during deletion is refused */
    CHECK(fx_apply(fx, instance_json("fin", "", ""), NULL, NULL, &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_FAILED_PRECONDITION);
    /* the agent says it is done: the instance goes */
    CHECK_OK(
        update_status("instance", NULL, "fin", NULL, NULL, "stratus.io/node-agent", NULL, &st));
    CHECK(fx_get(fx, "instance", "default", "fin", NULL, &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_NOT_FOUND);

    /* preconditions */
    CHECK_OK(fx_apply(fx, flavor_json("pre", 1), NULL, NULL, &st));
    Stratus__V1__DeleteRequest req = STRATUS__V1__DELETE_REQUEST__INIT;
    req.kind = "flavor";
    req.name = "pre";
    req.uid = "00000000-0000-4000-8000-000000000000";
    Stratus__V1__ObjectResponse *rep = NULL;
    CHECK(rpc_client_delete(fx->client, &req, 5 * USEC_PER_SEC, &rep, &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_ABORTED);
    req.uid = "";
    req.resource_version = "1";
    CHECK(rpc_client_delete(fx->client, &req, 5 * USEC_PER_SEC, &rep, &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_ABORTED);
    CHECK_OK(fx_get(fx, "flavor", NULL, "pre", NULL, &st));
}

/* ---- watch */

static rpc_watch *watch(const char *kind, const char *ns, const char *ls, const char *fs,
                        const char *rv, bool bookmarks)
{
    Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
    req.kind = (char *)kind;
    req.namespace_ = (char *)(ns ? ns : "");
    req.label_selector = (char *)(ls ? ls : "");
    req.field_selector = (char *)(fs ? fs : "");
    req.resource_version = (char *)(rv ? rv : "");
    req.allow_bookmarks = bookmarks;
    rpc_watch *w = NULL;
    if (rpc_client_watch(fx->client, &req, &w) < 0)
        return NULL;
    return w;
}

/* Next non-bookmark event, or NULL after `timeout`. */
static Stratus__V1__WatchEvent *next_event(rpc_watch *w, usec_t timeout, rpc_status *st)
{
    usec_t end = now_monotonic() + timeout;
    while (now_monotonic() < end) {
        Stratus__V1__WatchEvent *ev = NULL;
        int r = rpc_watch_next(w, end - now_monotonic(), &ev, st);
        if (r < 0)
            return NULL;
        if (ev->type != STRATUS__V1__WATCH_EVENT__TYPE__BOOKMARK)
            return ev;
        rpc_message_free(ev);
    }
    return NULL;
}

/* The next non-bookmark event, which must be of `type` and about the object `name`: its object,
 * parsed (the caller decrefs it), and its revision in *ret_rv when asked. */
static json_t *expect_event(rpc_watch *w, Stratus__V1__WatchEvent__Type type, const char *name,
                            int64_t *ret_rv)
{
    rpc_status st;
    Stratus__V1__WatchEvent *ev = next_event(w, 10 * USEC_PER_SEC, &st);
    CHECK(ev != NULL);
    CHECK_INT(ev->type, ==, type);
    json_t *o = json_loads(ev->object_json, 0, NULL);
    CHECK_STR(api_object_name(o), name);
    if (ret_rv)
        *ret_rv = atoll(ev->resource_version);
    rpc_message_free(ev);
    return o;
}

static void watch_sees_changes_with_selectors(void)
{
    setup();
    base_objects();
    rpc_status st;
    json_t *obj = NULL;
    CHECK_OK(fx_apply(fx, instance_json("w-a", "\"team\":\"blue\"", ""), NULL, &obj, &st));
    const char *rv = json_string_value(api_json_lookup(obj, "metadata.resourceVersion"));
    char from[24];
    snprintf(from, sizeof(from), "%s", rv);
    json_decref(obj);

    rpc_watch *w = watch("instances", "default", "team=blue", NULL, from, false);
    CHECK(w != NULL);
    CHECK_OK(fx_apply(fx, instance_json("w-b", "\"team\":\"blue\"", ""), NULL, NULL, &st));
    CHECK_OK(fx_apply(fx, instance_json("w-c", "\"team\":\"red\"", ""), NULL, NULL, &st));
    /* w-b leaves the selection: DELETED for this watcher, though the object stays */
    CHECK_OK(fx_apply(fx, instance_json("w-b", "\"team\":\"red\"", ""), NULL, NULL, &st));
    CHECK_OK(
        fx_apply(fx, instance_json("w-a", "\"team\":\"blue\",\"x\":\"y\"", ""), NULL, NULL, &st));
    CHECK_OK(fx_delete(fx, "instance", "default", "w-a", NULL, &st));

    static const struct {
        Stratus__V1__WatchEvent__Type type;
        const char *name;
    } want[] = {
        {STRATUS__V1__WATCH_EVENT__TYPE__ADDED, "w-b"},
        {STRATUS__V1__WATCH_EVENT__TYPE__DELETED, "w-b"},
        {STRATUS__V1__WATCH_EVENT__TYPE__MODIFIED, "w-a"},
        {STRATUS__V1__WATCH_EVENT__TYPE__DELETED, "w-a"},
    };
    int64_t last = 0;
    for (size_t i = 0; i < ELEMENTSOF(want); i++) {
        int64_t r;
        json_decref(expect_event(w, want[i].type, want[i].name, &r));
        CHECK_INT(r, >, last);
        last = r;
    }
    rpc_watch_free(w);
}

/* The cache's etcd watch carries no previous values: a change's previous state is the newest the
 * cache saw of the key, else it is read from etcd at the revision before. Here the instances'
 * last changes have left the ring (64 events) first, and selectors must still tell ADDED,
 * MODIFIED and DELETED apart, a delete carrying the object's last state. A value in between that
 * is not JSON counts as no object: the next state is ADDED, not MODIFIED from an older one. */
static void watch_knows_states_it_no_longer_holds(void)
{
    setup();
    base_objects();
    rpc_status st;
    CHECK_OK(fx_apply(fx, instance_json("p-a", "\"team\":\"blue\"", ""), NULL, NULL, &st));
    CHECK_OK(fx_apply(fx, instance_json("p-b", "\"team\":\"blue\"", ""), NULL, NULL, &st));
    CHECK_OK(fx_apply(fx, instance_json("p-c", "\"team\":\"red\"", ""), NULL, NULL, &st));
    CHECK_OK(fx_apply(fx, instance_json("p-d", "\"team\":\"blue\"", ""), NULL, NULL, &st));
    for (int i = 0; i < 70; i++) {
        char n[16];
        snprintf(n, sizeof(n), "evict-%d", i);
        CHECK_OK(fx_apply(fx, flavor_json(n, 1), NULL, NULL, &st));
    }
    CHECK_OK(fx_apply(fx, instance_json("p-e", "\"team\":\"blue\"", ""), NULL, NULL, &st));
    Stratus__V1__ListResponse *rep = NULL;
    CHECK_OK(list("instances", "default", false, NULL, NULL, 0, NULL, &rep, &st));
    rpc_watch *w = watch("instances", "default", "team=blue", NULL, rep->resource_version, false);
    rpc_message_free(rep);
    CHECK(w != NULL);

    CHECK_OK(
        fx_apply(fx, instance_json("p-a", "\"team\":\"blue\",\"x\":\"y\"", ""), NULL, NULL, &st));
    CHECK_OK(fx_apply(fx, instance_json("p-b", "\"team\":\"red\"", ""), NULL, NULL, &st));
    CHECK_OK(fx_apply(fx, instance_json("p-c", "\"team\":\"blue\"", ""), NULL, NULL, &st));
    CHECK_OK(fx_delete(fx, "instance", "default", "p-d", NULL, &st));
    struct ev_loop *loop = NULL;
    store *direct = fx_etcd_store(fx, &loop);
    const char *key = "/stratus/v1/instances/default/p-e";
    const char *values[] = {
        "not json",
        "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"labels\":{"
        "\"team\":\"blue\"},\"name\":\"p-e\",\"namespace\":\"default\",\"uid\":"
        "\"00000000-0000-4000-8000-00000000000e\"},\"spec\":{\"flavor\":\"tiny\",\"image\":"
        "\"img\"}}"};
    for (size_t i = 0; i < ELEMENTSOF(values); i++) {
        store_sync y = STORE_SYNC_INIT;
        CHECK_OK(store_put(direct, key, values[i], strlen(values[i]), 0, 0, store_sync_done, &y));
        CHECK_OK(store_wait(direct, &y, NULL));
    }
    store_free(direct);
    ev_loop_destroy(loop);

    static const struct {
        Stratus__V1__WatchEvent__Type type;
        const char *name, *x;
    } want[] = {
        {STRATUS__V1__WATCH_EVENT__TYPE__MODIFIED, "p-a", "y"},
        {STRATUS__V1__WATCH_EVENT__TYPE__DELETED, "p-b", NULL},
        {STRATUS__V1__WATCH_EVENT__TYPE__ADDED, "p-c", NULL},
        {STRATUS__V1__WATCH_EVENT__TYPE__DELETED, "p-d", NULL},
        {STRATUS__V1__WATCH_EVENT__TYPE__ADDED, "p-e", NULL},
    };
    for (size_t i = 0; i < ELEMENTSOF(want); i++) {
        json_t *o = expect_event(w, want[i].type, want[i].name, NULL);
        /* what the watcher is sent is the state that matched: blue, and p-a's new label */
        CHECK_STR(json_string_value(api_json_lookup(o, "metadata.labels.team")),
                  want[i].type == STRATUS__V1__WATCH_EVENT__TYPE__DELETED &&
                          streq(want[i].name, "p-b")
                      ? "red"
                      : "blue");
        if (want[i].x)
            CHECK_STR(json_string_value(api_json_lookup(o, "metadata.labels.x")), want[i].x);
        json_decref(o);
    }
    rpc_watch_free(w);
}

/* One etcd transaction's events come in one response, and pushing one into the full ring can
 * evict the cache's only state of the key of a later one. Here a transaction puts ten flavors,
 * then deletes an instance whose creation is among the ten oldest events of the ring: the delete
 * must still reach the watcher, with the instance's last state. */
static void delete_after_an_eviction_in_the_same_response(void)
{
    setup();
    base_objects();
    rpc_status st;
    char n[32];
    for (int i = 0; i < 64; i++) { /* the ring (64) is full of these */
        snprintf(n, sizeof(n), "fill-%d", i);
        CHECK_OK(fx_apply(fx, flavor_json(n, 1), NULL, NULL, &st));
    }
    CHECK_OK(fx_apply(fx, instance_json("early", "\"team\":\"blue\"", ""), NULL, NULL, &st));
    for (int i = 0; i < 58; i++) { /* "early" is 6th oldest, or older */
        snprintf(n, sizeof(n), "later-%d", i);
        CHECK_OK(fx_apply(fx, flavor_json(n, 1), NULL, NULL, &st));
    }
    Stratus__V1__ListResponse *rep = NULL;
    CHECK_OK(list("instances", "default", false, NULL, NULL, 0, NULL, &rep, &st));
    rpc_watch *w = watch("instances", "default", NULL, NULL, rep->resource_version, false);
    rpc_message_free(rep);
    CHECK(w != NULL);

    struct ev_loop *loop = NULL;
    store *direct = fx_etcd_store(fx, &loop);
    _cleanup_(store_txn_freep) store_txn *t = store_txn_new();
    for (int i = 0; i < 10; i++) {
        char key[64];
        snprintf(key, sizeof(key), "/stratus/v1/flavors/txn-%d", i);
        snprintf(n, sizeof(n), "txn-%d", i);
        const char *v = flavor_json(n, 1);
        store_txn_put(t, STORE_ON_SUCCESS, key, v, strlen(v), 0, 0);
    }
    store_txn_delete(t, STORE_ON_SUCCESS, "/stratus/v1/instances/default/early", NULL, 0);
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_txn_commit(direct, t, store_sync_done, &y));
    CHECK_OK(store_wait(direct, &y, NULL));
    store_free(direct);
    ev_loop_destroy(loop);

    json_t *o = expect_event(w, STRATUS__V1__WATCH_EVENT__TYPE__DELETED, "early", NULL);
    CHECK_STR(json_string_value(api_json_lookup(o, "metadata.labels.team")), "blue");
    json_decref(o);
    rpc_watch_free(w);
}

static void watch_resumes_and_expires(void)
{
    setup();
    base_objects();
    rpc_status st;
    json_t *obj = NULL;
    CHECK_OK(fx_apply(fx, flavor_json("res-0", 1), NULL, &obj, &st));
    char from[24];
    snprintf(from, sizeof(from), "%s",
             json_string_value(api_json_lookup(obj, "metadata.resourceVersion")));
    json_decref(obj);
    for (int i = 1; i <= 3; i++) {
        char n[16];
        snprintf(n, sizeof(n), "res-%d", i);
        CHECK_OK(fx_apply(fx, flavor_json(n, 1), NULL, NULL, &st));
    }
    /* resume from an older revision: what came after it is replayed, in order */
    rpc_watch *w = watch("flavors", NULL, NULL, NULL, from, false);
    for (int i = 1; i <= 3; i++) {
        Stratus__V1__WatchEvent *ev = next_event(w, 10 * USEC_PER_SEC, &st);
        CHECK(ev != NULL);
        json_t *o = json_loads(ev->object_json, 0, NULL);
        char n[16];
        snprintf(n, sizeof(n), "res-%d", i);
        CHECK_STR(api_object_name(o), n);
        json_decref(o);
        rpc_message_free(ev);
    }
    rpc_watch_free(w);

    /* the cache holds 64 events: push 100 more and the old revision is gone → relist */
    for (int i = 0; i < 100; i++) {
        char n[16];
        snprintf(n, sizeof(n), "churn-%d", i); /* a flavor's sizes are fixed: new ones */
        CHECK_OK(fx_apply(fx, flavor_json(n, 1 + i % 7), NULL, NULL, &st));
    }
    usleep(300000);
    w = watch("flavors", NULL, NULL, NULL, from, false);
    Stratus__V1__WatchEvent *ev = NULL;
    int r = rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, &st);
    CHECK_INT(r, ==, -ERANGE);
    CHECK_INT(st.code, ==, RPC_CODE_RELIST);
    CHECK(strstr(st.message, "too old") != NULL);
    rpc_watch_free(w);

    /* relist, then watch from the list's revision: works */
    Stratus__V1__ListResponse *rep = NULL;
    CHECK_OK(list("flavors", NULL, false, NULL, NULL, 0, NULL, &rep, &st));
    w = watch("flavors", NULL, NULL, NULL, rep->resource_version, true);
    rpc_message_free(rep);
    CHECK_OK(fx_apply(fx, flavor_json("after-relist", 1), NULL, NULL, &st));
    ev = next_event(w, 10 * USEC_PER_SEC, &st);
    CHECK(ev != NULL);
    CHECK(strstr(ev->object_json, "after-relist") != NULL);
    rpc_message_free(ev);
    /* bookmarks arrive when asked for */
    bool bookmark = false;
    for (int i = 0; i < 20 && !bookmark; i++) {
        if (rpc_watch_next(w, USEC_PER_SEC, &ev, &st) < 0)
            continue;
        bookmark = ev->type == STRATUS__V1__WATCH_EVENT__TYPE__BOOKMARK;
        rpc_message_free(ev);
    }
    CHECK(bookmark);
    rpc_watch_free(w);
}

static void watch_errors_are_clear(void)
{
    setup();
    rpc_status st;
    Stratus__V1__WatchEvent *ev = NULL;
    rpc_watch *w = watch("bogus", NULL, NULL, NULL, NULL, false);
    CHECK(rpc_watch_next(w, 5 * USEC_PER_SEC, &ev, &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_INVALID_ARGUMENT);
    rpc_watch_free(w);
    w = watch("instances", NULL, "a in (", NULL, NULL, false);
    CHECK(rpc_watch_next(w, 5 * USEC_PER_SEC, &ev, &st) < 0);
    CHECK(strstr(st.message, "labelSelector") != NULL);
    rpc_watch_free(w);
}

static void health_reports_etcd(void)
{
    setup();
    Stratus__V1__HealthRequest req = STRATUS__V1__HEALTH_REQUEST__INIT;
    Stratus__V1__HealthResponse *rep = NULL;
    rpc_status st;
    CHECK_OK(rpc_client_health(fx->client, &req, 5 * USEC_PER_SEC, &rep, &st));
    CHECK_STR(rep->status, "ok");
    CHECK(rep->etcd_ok);
    rpc_message_free(rep);
}

static void oversize_request_is_refused(void)
{
    setup();
    size_t n = 5 << 20;
    char *big = xmalloc(n + 256);
    int off = snprintf(
        big, 256,
        "{\"apiVersion\":\"stratus/"
        "v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":\"big\",\"annotations\":{\"a\":\"");
    memset(big + off, 'x', n);
    strcpy(big + off + n, "\"}},\"spec\":{\"vcpus\":1,\"memoryMiB\":64}}");
    rpc_status st;
    CHECK(fx_apply(fx, big, NULL, NULL, &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_RESOURCE_EXHAUSTED);
    free(big);
    CHECK_OK(fx_get(fx, "flavor", NULL, "tiny", NULL, &st)); /* still serving */
}

static void watch_sees_every_object_of_a_transaction(void)
{
    /* One Bind of five instances to one node is one etcd transaction: five events at one
     * revision. Every one must reach the watcher (a dedupe on revision once dropped four). */
    setup();
    base_objects();
    rpc_status st;
    CHECK_OK(fx_apply(fx,
                      "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Node\",\"metadata\":{\"name\":"
                      "\"txn-node\"},\"spec\":{}}",
                      NULL, NULL, &st));
    CHECK_OK(update_status("node", NULL, "txn-node", NULL,
                           "{\"allocatable\":{\"vcpus\":64,\"memoryMiB\":65536,\"diskGiB\":1000}}",
                           NULL, NULL, &st));
    char uids[5][40];
    for (int i = 0; i < 5; i++) {
        char doc[512], name[16];
        snprintf(name, sizeof(name), "t%d", i);
        snprintf(
            doc, sizeof(doc),
            "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"%s\","
            "\"namespace\":\"txn\"},\"spec\":{\"flavor\":\"tiny\",\"image\":\"img\"}}",
            name);
        json_t *obj = NULL;
        CHECK_OK(fx_apply(fx, doc, NULL, &obj, &st));
        snprintf(uids[i], sizeof(uids[i]), "%s", api_object_uid(obj));
        json_decref(obj);
    }
    Stratus__V1__ListResponse *lr = NULL;
    CHECK_OK(list("instances", "txn", false, NULL, NULL, 0, NULL, &lr, &st));
    rpc_watch *w = watch("instances", "txn", NULL, NULL, lr->resource_version, false);
    rpc_message_free(lr);

    Stratus__V1__Binding b[5], *bp[5];
    for (int i = 0; i < 5; i++) {
        char *name = xasprintf("t%d", i);
        stratus__v1__binding__init(&b[i]);
        b[i].namespace_ = "txn";
        b[i].name = name;
        b[i].uid = uids[i];
        b[i].node = "txn-node";
        bp[i] = &b[i];
    }
    Stratus__V1__BindRequest req = STRATUS__V1__BIND_REQUEST__INIT;
    req.n_bindings = 5;
    req.bindings = bp;
    Stratus__V1__BindResponse *rep = NULL;
    CHECK_OK(rpc_client_call(fx->client, RPC_METHOD_BIND, &req.base, 10 * USEC_PER_SEC,
                             (ProtobufCMessage **)&rep, &st));
    for (size_t i = 0; i < rep->n_results; i++)
        CHECK(rep->results[i]->ok);
    rpc_message_free(rep);
    for (int i = 0; i < 5; i++)
        free(b[i].name);

    char rv[24] = "";
    for (int i = 0; i < 5; i++) {
        Stratus__V1__WatchEvent *ev = next_event(w, 10 * USEC_PER_SEC, &st);
        CHECK(ev != NULL);
        CHECK_INT(ev->type, ==, STRATUS__V1__WATCH_EVENT__TYPE__MODIFIED);
        if (i == 0)
            snprintf(rv, sizeof(rv), "%s", ev->resource_version);
        CHECK_STR(ev->resource_version, rv); /* one transaction, one revision */
        rpc_message_free(ev);
    }
    rpc_watch_free(w);
}

static void lease_is_visible_and_expires(void)
{
    setup();
    rpc_status st;
    rpc_watch *w = watch("leases", NULL, NULL, NULL, NULL, false);
    usleep(200000); /* the watch is in place before the lease appears */
    Stratus__V1__RenewLeaseRequest req = STRATUS__V1__RENEW_LEASE_REQUEST__INIT;
    req.node = "node-x";
    req.ttl_seconds = 2;
    Stratus__V1__RenewLeaseResponse *rep = NULL;
    CHECK_OK(rpc_client_renew_lease(fx->client, &req, 5 * USEC_PER_SEC, &rep, &st));
    CHECK_INT(rep->lease_id, >, 0);
    rpc_message_free(rep);

    json_t *obj = NULL;
    CHECK_OK(fx_get(fx, "lease", NULL, "node-x", &obj, &st));
    CHECK_STR(json_string_value(api_json_lookup(obj, "spec.holder")), "node-x");
    json_decref(obj);
    CHECK(fx_apply(fx,
                   "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":"
                   "\"node-x\"},\"spec\":{\"holder\":\"node-x\"}}",
                   NULL, NULL, &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_INVALID_ARGUMENT);

    Stratus__V1__WatchEvent *ev = next_event(w, 10 * USEC_PER_SEC, &st);
    CHECK(ev && ev->type == STRATUS__V1__WATCH_EVENT__TYPE__ADDED);
    rpc_message_free(ev);
    /* no renewal: etcd expires the lease, the key goes, watchers see it */
    ev = next_event(w, 15 * USEC_PER_SEC, &st);
    CHECK(ev != NULL);
    CHECK_INT(ev->type, ==, STRATUS__V1__WATCH_EVENT__TYPE__DELETED);
    CHECK(strstr(ev->object_json, "node-x") != NULL);
    rpc_message_free(ev);
    rpc_watch_free(w);
}

/* An object too big for the recent values (over a quarter of their bound) is not kept, but an
 * Apply must still know it exists: it is updated, not created again and again. */
static void big_objects_apply_as_updates(void)
{
    apiserver_options o = {.recent_bytes = 256 << 10};
    apiserver_fixture *f = apiserver_fixture_start(&o);
    size_t pad = 80 << 10;
    char *doc = xmalloc(pad + 512);
    for (int round = 0; round < 3; round++) {
        int n = snprintf(doc, 512,
                         "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{"
                         "\"name\":\"big\",\"annotations\":{\"pad\":\"");
        memset(doc + n, 'a' + round, pad);
        snprintf(doc + n + pad, 512,
                 "\"}},\"spec\":{\"vcpus\":1,\"memoryMiB\":512,\"rootDiskGiB\":1}}");
        rpc_status st;
        int result = 0;
        CHECK_OK(fx_apply(f, doc, &result, NULL, &st));
        CHECK_INT(result, ==, round == 0 ? 1 : 2);
    }
    free(doc);
    apiserver_fixture_stop(f);
}

/* A Flavor written straight into etcd, padded so that its watch message can exceed a small
 * max_event_line. */
static void etcd_flavor(store *direct, const char *name, size_t pad)
{
    char *pads = xmalloc(pad + 1);
    memset(pads, 'x', pad);
    pads[pad] = 0;
    char key[128];
    snprintf(key, sizeof(key), "/stratus/v1/flavors/%s", name);
    char *val = xasprintf("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{"
                          "\"annotations\":{\"p\":\"%s\"},\"name\":\"%s\"},\"spec\":{"
                          "\"memoryMiB\":64,\"vcpus\":1}}",
                          pads, name);
    store_sync y = STORE_SYNC_INIT;
    CHECK_OK(store_put(direct, key, val, strlen(val), 0, 0, store_sync_done, &y));
    CHECK_OK(store_wait(direct, &y, NULL));
    free(val);
    free(pads);
}

/* When the watch cache's own etcd watch dies (here: a message over max_event_line), every
 * watcher relists and the cache starts over from etcd's revision a moment later. A client
 * doing what informers do — List, Watch from its revision, again on RELIST — must see what was
 * written while the cache was starting over: in its List, or on its Watch. */
static void nothing_is_missed_while_the_cache_starts_over(void)
{
    apiserver_options o = {.bookmark_interval = USEC_PER_SEC / 5};
    o.etcd.max_event_line = 3000;
    apiserver_fixture *f = apiserver_fixture_start(&o);
    struct ev_loop *loop = NULL;
    store *direct = fx_etcd_store(f, &loop);
    etcd_flavor(direct, "warm", 10);
    usleep(200000);
    Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
    req.kind = "flavors";
    req.namespace_ = req.label_selector = req.field_selector = "";
    req.resource_version = "0";
    rpc_watch *w = NULL;
    CHECK_OK(rpc_client_watch(f->client, &req, &w));
    usleep(100000);
    etcd_flavor(direct, "big", 4000); /* its watch message is too long: the cache starts over */
    rpc_status st;
    Stratus__V1__WatchEvent *ev = NULL;
    int r;
    while ((r = rpc_watch_next(w, 5 * USEC_PER_SEC, &ev, &st)) >= 0)
        rpc_message_free(ev);
    CHECK_INT(st.code, ==, RPC_CODE_RELIST);
    rpc_watch_free(w);

    bool seen_gap = false, seen_after = false, wrote = false;
    usec_t end = now_monotonic() + 20 * USEC_PER_SEC;
    while (!(seen_gap && seen_after) && now_monotonic() < end) {
        Stratus__V1__ListResponse *rep = NULL;
        CHECK_OK(list_on(f, "flavors", &rep, &st));
        for (size_t i = 0; i < rep->n_items_json; i++) {
            seen_gap |= strstr(rep->items_json[i], "\"in-gap\"") != NULL;
            seen_after |= strstr(rep->items_json[i], "\"after\"") != NULL;
        }
        req.resource_version = rep->resource_version;
        CHECK_OK(rpc_client_watch(f->client, &req, &w));
        rpc_message_free(rep);
        if (!wrote) { /* right after the first re-watch: in the gap, if the cache is in one */
            etcd_flavor(direct, "in-gap", 10);
            usleep(300000);
            etcd_flavor(direct, "after", 10);
            wrote = true;
        }
        /* Only a RELIST sends the client back to List: a watch that is merely quiet is kept,
         * as an informer keeps it — so what it missed stays missed. */
        while (!(seen_gap && seen_after) && now_monotonic() < end) {
            r = rpc_watch_next(w, USEC_PER_SEC, &ev, &st);
            if (r == -ETIMEDOUT)
                continue;
            if (r < 0)
                break;
            if (ev->object_json) {
                seen_gap |= strstr(ev->object_json, "\"in-gap\"") != NULL;
                seen_after |= strstr(ev->object_json, "\"after\"") != NULL;
            }
            rpc_message_free(ev);
        }
        rpc_watch_free(w);
        if (!(seen_gap && seen_after)) {
            CHECK_INT(st.code, ==, RPC_CODE_RELIST);
            usleep(50000);
        }
    }
    CHECK(seen_gap);
    CHECK(seen_after);
    store_free(direct);
    ev_loop_destroy(loop);
    apiserver_fixture_stop(f);
}

static apiserver_fixture *paused_fx;

static void *continue_etcd(void *arg)
{
    usleep(1500000);
    kill(etcd_fixture_pid(paused_fx->etcd), SIGCONT);
    return NULL;
}

/* Stopping the apiserver while its watch cache waits on etcd to start over (which runs the cache's
 * loop nested) must not hang: the stop used to break only the inner run. */
static void stop_while_the_cache_starts_over(void)
{
    apiserver_options o = {0};
    o.etcd.max_event_line = 3000;
    o.etcd.request_timeout = 10 * USEC_PER_SEC;
    apiserver_fixture *f = paused_fx = apiserver_fixture_start(&o);
    struct ev_loop *loop = NULL;
    store *direct = fx_etcd_store(f, &loop);
    etcd_flavor(direct, "big", 4000);
    store_free(direct);
    ev_loop_destroy(loop);
    usleep(50000); /* the cache lost its watch; it starts over 100 ms later */
    kill(etcd_fixture_pid(f->etcd), SIGSTOP);
    usleep(300000); /* it is waiting for etcd's revision now */
    pthread_t t;
    pthread_create(&t, NULL, continue_etcd, NULL);
    usec_t t0 = now_monotonic();
    f->srv = apiserver_free(f->srv, 0); /* hung for ever before the fix */
    CHECK(now_monotonic() - t0 < 60 * USEC_PER_SEC);
    pthread_join(t, NULL);
    apiserver_fixture_stop(f);
}

/* A watcher replaying a backlog larger than its stream's queue catches up from the ring while
 * bookmarks keep firing. A bookmark says "you have everything up to here": one sent before the
 * replayed events it covers would let a client resume past events it never got. So after every
 * bookmark, every event has a later revision. */
static void bookmarks_never_overtake_a_replay(void)
{
    apiserver_options o = {.watch_cache = 5000, .bookmark_interval = USEC_PER_SEC / 20};
    apiserver_fixture *f = apiserver_fixture_start(&o);
    struct ev_loop *loop = NULL;
    store *direct = fx_etcd_store(f, &loop);
    rpc_status st;
    json_t *first = NULL;
    CHECK_OK(fx_apply(f, flavor_json("backlog-start", 1), NULL, &first, &st));
    char from[24];
    snprintf(from, sizeof(from), "%s",
             json_string_value(api_json_lookup(first, "metadata.resourceVersion")));
    json_decref(first);
    /* 3,000 Flavors, 100 to a transaction, as the apiserver stores them */
    const int N = 3000;
    for (int t = 0; t < N / 100; t++) {
        store_txn *txn = store_txn_new();
        for (int i = 0; i < 100; i++) {
            /* 4 KiB each: more than the transport buffers, so the server's queue fills */
            char key[64], val[5000], pad[4097];
            memset(pad, 'x', sizeof(pad) - 1);
            pad[sizeof(pad) - 1] = 0;
            snprintf(key, sizeof(key), "/stratus/v1/flavors/bl-%d", t * 100 + i);
            snprintf(val, sizeof(val),
                     "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{"
                     "\"annotations\":{\"pad\":\"%s\"},\"name\":\"bl-%d\",\"uid\":\"u\"},"
                     "\"spec\":{\"memoryMiB\":512,\"vcpus\":1}}",
                     pad, t * 100 + i);
            store_txn_put(txn, STORE_ON_SUCCESS, key, val, strlen(val), 0, 0);
        }
        store_sync y = STORE_SYNC_INIT;
        CHECK_OK(store_txn_commit(direct, txn, store_sync_done, &y));
        CHECK_OK(store_wait(direct, &y, NULL));
        store_txn_free(txn);
    }
    usleep(300000); /* in the apiserver's ring */

    Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
    req.kind = "flavors";
    req.namespace_ = "";
    req.label_selector = "";
    req.field_selector = "";
    req.resource_version = from;
    req.allow_bookmarks = true;
    rpc_watch *w = NULL;
    CHECK_OK(rpc_client_watch(f->client, &req, &w));
    usleep(1000000); /* not reading: the stream's queue fills, bookmarks fire meanwhile */
    int64_t bookmark = 0, last = 0;
    int events = 0, bookmarks = 0;
    while (events < N) {
        Stratus__V1__WatchEvent *ev = NULL;
        if (rpc_watch_next(w, 10 * USEC_PER_SEC, &ev, &st) < 0)
            break;
        int64_t rv = strtoll(ev->resource_version, NULL, 10);
        if (ev->type == STRATUS__V1__WATCH_EVENT__TYPE__BOOKMARK) {
            bookmarks++;
            bookmark = rv;
        } else {
            events++;
            CHECK(rv > bookmark);
            CHECK(rv >= last);
            last = rv;
        }
        rpc_message_free(ev);
    }
    CHECK_INT(events, ==, N);
    /* and once caught up, bookmarks come, covering what was replayed */
    for (int i = 0; i < 40 && bookmarks == 0; i++) {
        Stratus__V1__WatchEvent *ev = NULL;
        if (rpc_watch_next(w, USEC_PER_SEC / 10, &ev, &st) < 0)
            continue;
        if (ev->type == STRATUS__V1__WATCH_EVENT__TYPE__BOOKMARK) {
            bookmarks++;
            CHECK(strtoll(ev->resource_version, NULL, 10) >= last);
        }
        rpc_message_free(ev);
    }
    CHECK(bookmarks > 0);
    rpc_watch_free(w);
    store_free(direct);
    ev_loop_destroy(loop);
    apiserver_fixture_stop(f);
}

CHECK_MAIN(CASE(apply_create_unchanged_configured),
           CASE(apply_rejects_bad_input_and_keeps_what_is_stored),
           CASE(apply_ignores_status_and_dry_run_writes_nothing), CASE(list_selects_and_pages),
           CASE(list_reads_big_objects_in_parts), CASE(concurrent_updates_lose_nothing),
           CASE(two_apiservers_lose_nothing), CASE(status_is_validated_and_preconditioned),
           CASE(delete_waits_for_finalizers), CASE(watch_sees_changes_with_selectors),
           CASE(watch_knows_states_it_no_longer_holds),
           CASE(delete_after_an_eviction_in_the_same_response), CASE(watch_resumes_and_expires),
           CASE(watch_errors_are_clear), CASE(health_reports_etcd),
           CASE(oversize_request_is_refused), CASE(watch_sees_every_object_of_a_transaction),
           CASE(lease_is_visible_and_expires), CASE(bookmarks_never_overtake_a_replay),
           CASE(big_objects_apply_as_updates), CASE(nothing_is_missed_while_the_cache_starts_over),
           CASE(stop_while_the_cache_starts_over))
