/* The apiserver compacts etcd's history by itself: with a 1 s interval, a revision from a few
 * seconds ago is gone (etcd answers "compacted"), and a List continue token pinned to it is told
 * to relist. Its own fixture, so the short interval touches no other test. */
#include <errno.h>
#include <unistd.h>

#include "api/object.h"
#include "apiserver-fixture.h"
#include "base/alloc.h"
#include "check.h"

static void history_is_compacted(void)
{
    apiserver_options o = {.compact_interval = USEC_PER_SEC};
    apiserver_fixture *fx = apiserver_fixture_start(&o);
    rpc_status st;
    char doc[256];
    for (int i = 0; i < 3; i++) {
        snprintf(
            doc, sizeof(doc),
            "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":\"c%d\"},"
            "\"spec\":{\"vcpus\":1,\"memoryMiB\":64}}",
            i);
        CHECK_OK(fx_apply(fx, doc, NULL, NULL, &st));
    }
    Stratus__V1__ListRequest req = STRATUS__V1__LIST_REQUEST__INIT;
    req.kind = "flavors";
    req.limit = 1;
    Stratus__V1__ListResponse *rep = NULL;
    CHECK_OK(rpc_client_list(fx->client, &req, 5 * USEC_PER_SEC, &rep, &st));
    int64_t old = atoll(rep->resource_version);
    char *token = xstrdup(rep->continue_token);
    rpc_message_free(rep);
    CHECK(*token);

    /* Move the revision on, then wait for two compaction ticks past it. */
    snprintf(doc, sizeof(doc),
             "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":\"later\"},"
             "\"spec\":{\"vcpus\":1,\"memoryMiB\":64}}");
    CHECK_OK(fx_apply(fx, doc, NULL, NULL, &st));

    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    store_options so = {.n_endpoints = 1, .endpoints = {etcd_fixture_endpoint(fx->etcd)}};
    store *s = NULL;
    CHECK_OK(store_new(loop, &so, &s));
    int e = 0;
    for (int i = 0; i < 100 && e != -ERANGE; i++) {
        usleep(100000);
        store_range_opts ro = {.key = "/stratus/v1/flavors/c0", .revision = old};
        store_sync y = STORE_SYNC_INIT;
        CHECK_OK(store_range(s, &ro, store_sync_done, &y));
        e = store_wait(s, &y, NULL);
    }
    CHECK_INT(e, ==, -ERANGE);
    store_free(s);
    ev_loop_destroy(loop);

    req.continue_token = token;
    CHECK(rpc_client_list(fx->client, &req, 5 * USEC_PER_SEC, &rep, &st) < 0);
    CHECK_INT(st.code, ==, RPC_CODE_RELIST);
    CHECK(strstr(st.message, "list again") != NULL);
    free(token);
    apiserver_fixture_stop(fx);
}

CHECK_MAIN(CASE(history_is_compacted))
