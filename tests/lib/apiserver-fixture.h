/* An apiserver for integration tests: a real etcd (etcd-fixture.h) and a real stratus apiserver
 * in this process on a free loopback port, with a real gRPC client connected to it. Stopped at
 * exit however the test ends. */
#pragma once

#include <jansson.h>

#include "apiserver/apiserver.h"
#include "etcd-fixture.h"
#include "rpc/client.h"

typedef struct apiserver_fixture {
    etcd_fixture *etcd;
    apiserver *srv;
    rpc_client *client;
    char target[64];
    apiserver_options opts;
    bool shares_etcd; /* a second apiserver on another fixture's etcd: stopping it leaves etcd */
} apiserver_fixture;

/* Starts etcd and an apiserver; `opts` may be NULL or set some options (listen and etcd are
 * filled in). Aborts with a message when something cannot start. */
apiserver_fixture *apiserver_fixture_start(const apiserver_options *opts);
/* Another apiserver (and client) on f's etcd, as when several run side by side. Stopped at exit;
 * stop it before f. */
apiserver_fixture *apiserver_fixture_second(apiserver_fixture *f);
/* Stops the apiserver only (etcd stays) and starts a new one on the same port. */
void apiserver_fixture_restart(apiserver_fixture *f);
void apiserver_fixture_stop(apiserver_fixture *f);

/* A store client of f's etcd on a new loop (*ret_loop), for a test to read or write behind the
 * apiserver's back; free both (store_free, ev_loop_destroy). Aborts the test if it cannot. */
store *fx_etcd_store(apiserver_fixture *f, struct ev_loop **ret_loop);

/* Apply one JSON document. Returns 0 (with *ret_result 1 created, 2 configured, 3 unchanged
 * and the stored object in *ret_obj, both optional) or -errno with st filled. */
int fx_apply(apiserver_fixture *f, const char *json, int *ret_result, json_t **ret_obj,
             rpc_status *st);
/* Apply every object in a manifest file under manifests/ (a List or one object). */
int fx_apply_manifest(apiserver_fixture *f, const char *name, rpc_status *st);
int fx_get(apiserver_fixture *f, const char *kind, const char *ns, const char *name,
           json_t **ret_obj, rpc_status *st);
int fx_delete(apiserver_fixture *f, const char *kind, const char *ns, const char *name,
              json_t **ret_obj, rpc_status *st);
