/* In-process apiserver over a throwaway etcd, for integration tests. */
#include "apiserver-fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "rpc/client.h"

static apiserver_fixture *running[4];

static void stop_all(void)
{
    for (size_t i = ELEMENTSOF(running); i-- > 0;) /* the latest first: it may share etcd */
        if (running[i])
            apiserver_fixture_stop(running[i]);
}

static void fixture_listen(apiserver_fixture *f, const char *listen)
{
    apiserver_options o = f->opts;
    o.listen = listen;
    int r = apiserver_new(&o, &f->srv);
    if (r < 0) {
        fprintf(stderr, "apiserver fixture: cannot start: %s\n", strerror(-r));
        abort();
    }
    snprintf(f->target, sizeof(f->target), "127.0.0.1:%d", apiserver_port(f->srv));
}

static apiserver_fixture *fixture_new(etcd_fixture *etcd, const apiserver_options *opts)
{
    apiserver_fixture *f = xnew(apiserver_fixture, 1);
    f->etcd = etcd;
    /* Registered after etcd's handler, so it runs before it: apiservers stop before etcd. */
    static bool registered;
    if (!registered) {
        atexit(stop_all);
        registered = true;
    }
    if (opts)
        f->opts = *opts;
    f->opts.etcd.n_endpoints = 1;
    f->opts.etcd.endpoints[0] = etcd_fixture_endpoint(f->etcd);
    fixture_listen(f, "127.0.0.1:0");
    if (rpc_client_new(f->target, NULL, &f->client) < 0) {
        fprintf(stderr, "apiserver fixture: no client for %s\n", f->target);
        abort();
    }
    for (size_t i = 0; i < ELEMENTSOF(running); i++)
        if (!running[i]) {
            running[i] = f;
            break;
        }
    return f;
}

apiserver_fixture *apiserver_fixture_start(const apiserver_options *opts)
{
    return fixture_new(etcd_fixture_start(), opts);
}

apiserver_fixture *apiserver_fixture_second(apiserver_fixture *f)
{
    apiserver_fixture *g = fixture_new(f->etcd, &f->opts);
    g->shares_etcd = true;
    return g;
}

void apiserver_fixture_restart(apiserver_fixture *f)
{
    char listen[64];
    snprintf(listen, sizeof(listen), "%s", f->target);
    f->srv = apiserver_free(f->srv, 0);
    fixture_listen(f, listen);
}

void apiserver_fixture_stop(apiserver_fixture *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < ELEMENTSOF(running); i++)
        if (running[i] == f)
            running[i] = NULL;
    f->client = rpc_client_free(f->client);
    f->srv = apiserver_free(f->srv, 0);
    if (!f->shares_etcd)
        etcd_fixture_stop(f->etcd);
    free(f);
}

int fx_apply(apiserver_fixture *f, const char *json, int *ret_result, json_t **ret_obj,
             rpc_status *st)
{
    Stratus__V1__ApplyRequest req = STRATUS__V1__APPLY_REQUEST__INIT;
    req.object_json = (char *)json;
    Stratus__V1__ApplyResponse *rep = NULL;
    int r = rpc_client_apply(f->client, &req, 10 * USEC_PER_SEC, &rep, st);
    if (r < 0)
        return r;
    if (ret_result)
        *ret_result = rep->result;
    if (ret_obj)
        *ret_obj = json_loads(rep->object_json, 0, NULL);
    rpc_message_free(rep);
    return 0;
}

int fx_apply_manifest(apiserver_fixture *f, const char *name, rpc_status *st)
{
    const char *src = getenv("STRATUS_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/manifests/%s", src ? src : ".", name);
    json_t *doc = json_load_file(path, 0, NULL);
    if (!doc) {
        snprintf(st->message, sizeof(st->message), "cannot read manifest %.900s", path);
        return -ENOENT;
    }
    json_t *items = json_object_get(doc, "items");
    int r = 0;
    if (items) {
        size_t i;
        json_t *it;
        json_array_foreach (items, i, it) {
            char *text = json_dumps(it, 0);
            r = fx_apply(f, text, NULL, NULL, st);
            free(text);
            if (r < 0)
                break;
        }
    } else {
        char *text = json_dumps(doc, 0);
        r = fx_apply(f, text, NULL, NULL, st);
        free(text);
    }
    json_decref(doc);
    return r;
}

int fx_get(apiserver_fixture *f, const char *kind, const char *ns, const char *name,
           json_t **ret_obj, rpc_status *st)
{
    Stratus__V1__GetRequest req = STRATUS__V1__GET_REQUEST__INIT;
    req.kind = (char *)kind;
    req.namespace_ = (char *)(ns ? ns : "");
    req.name = (char *)name;
    Stratus__V1__ObjectResponse *rep = NULL;
    int r = rpc_client_get(f->client, &req, 10 * USEC_PER_SEC, &rep, st);
    if (r < 0)
        return r;
    if (ret_obj)
        *ret_obj = json_loads(rep->object_json, 0, NULL);
    rpc_message_free(rep);
    return 0;
}

int fx_delete(apiserver_fixture *f, const char *kind, const char *ns, const char *name,
              json_t **ret_obj, rpc_status *st)
{
    Stratus__V1__DeleteRequest req = STRATUS__V1__DELETE_REQUEST__INIT;
    req.kind = (char *)kind;
    req.namespace_ = (char *)(ns ? ns : "");
    req.name = (char *)name;
    Stratus__V1__ObjectResponse *rep = NULL;
    int r = rpc_client_delete(f->client, &req, 10 * USEC_PER_SEC, &rep, st);
    if (r < 0)
        return r;
    if (ret_obj)
        *ret_obj = json_loads(rep->object_json, 0, NULL);
    rpc_message_free(rep);
    return 0;
}

store *fx_etcd_store(apiserver_fixture *f, struct ev_loop **ret_loop)
{
    *ret_loop = ev_loop_new(EVFLAG_AUTO);
    store_options so = {.n_endpoints = 1, .request_timeout = 10 * USEC_PER_SEC};
    so.endpoints[0] = etcd_fixture_endpoint(f->etcd);
    store *s = NULL;
    if (store_new(*ret_loop, &so, &s) < 0) {
        fprintf(stderr, "apiserver fixture: no store for %s\n", so.endpoints[0]);
        abort();
    }
    return s;
}
