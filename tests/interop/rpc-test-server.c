/* rpc-test-server: a pkg/rpc server with canned handlers, for clients written in other languages
 * (tests/interop/rpc_interop.py drives it with Python grpcio). Not the apiserver: no etcd, no
 * object model. It listens on 127.0.0.1 on a free port, prints "PORT <n>" on stdout, and serves
 * until SIGTERM or SIGINT, which it takes with sigwait() as docs/rpc.md tells programs to.
 *
 *   Get     echoes kind/namespace/name as JSON; name "missing" → NOT_FOUND
 *   Apply   echoes object_json; result CREATED, or UNCHANGED on a dry run
 *   Health  status "ok"
 *   Watch   3 ADDED events after resource_version, then ends with OUT_OF_RANGE
 *   others  UNIMPLEMENTED (no handler) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/macro.h"
#include "rpc/server.h"

static void on_get(rpc_call *call, const ProtobufCMessage *request, void *userdata)
{
    const Stratus__V1__GetRequest *r = (const Stratus__V1__GetRequest *)request;
    if (streq(r->name, "missing")) {
        _cleanup_free_ char *msg = xasprintf("%s \"%s\" not found", r->kind, r->name);
        rpc_call_reply(call, RPC_CODE_NOT_FOUND, msg, NULL);
        return;
    }
    _cleanup_free_ char *json =
        xasprintf("{\"kind\":\"%s\",\"metadata\":{\"namespace\":\"%s\",\"name\":\"%s\"}}", r->kind,
                  r->namespace_, r->name);
    Stratus__V1__ObjectResponse reply = STRATUS__V1__OBJECT_RESPONSE__INIT;
    reply.object_json = json;
    rpc_call_reply(call, RPC_CODE_OK, NULL, &reply.base);
}

static void on_apply(rpc_call *call, const ProtobufCMessage *request, void *userdata)
{
    const Stratus__V1__ApplyRequest *r = (const Stratus__V1__ApplyRequest *)request;
    Stratus__V1__ApplyResponse reply = STRATUS__V1__APPLY_RESPONSE__INIT;
    reply.result = r->dry_run ? STRATUS__V1__APPLY_RESPONSE__RESULT__UNCHANGED
                              : STRATUS__V1__APPLY_RESPONSE__RESULT__CREATED;
    reply.object_json = r->object_json;
    rpc_call_reply(call, RPC_CODE_OK, NULL, &reply.base);
}

static void on_health(rpc_call *call, const ProtobufCMessage *request, void *userdata)
{
    Stratus__V1__HealthResponse reply = STRATUS__V1__HEALTH_RESPONSE__INIT;
    reply.status = "ok";
    reply.etcd_ok = true;
    reply.version = STRATUS_VERSION;
    rpc_call_reply(call, RPC_CODE_OK, NULL, &reply.base);
}

static void on_watch(rpc_call *call, const ProtobufCMessage *request, void *userdata)
{
    const Stratus__V1__WatchRequest *r = (const Stratus__V1__WatchRequest *)request;
    long rv = strtol(r->resource_version, NULL, 10);
    for (long i = 1; i <= 3; i++) {
        char rvs[32], json[96];
        snprintf(rvs, sizeof(rvs), "%ld", rv + i);
        snprintf(json, sizeof(json), "{\"kind\":\"%s\",\"metadata\":{\"resourceVersion\":\"%ld\"}}",
                 r->kind, rv + i);
        Stratus__V1__WatchEvent ev = STRATUS__V1__WATCH_EVENT__INIT;
        ev.type = STRATUS__V1__WATCH_EVENT__TYPE__ADDED;
        ev.resource_version = rvs;
        ev.object_json = json;
        if (rpc_stream_send(call, &ev.base) < 0)
            break;
    }
    rpc_stream_finish(call, RPC_CODE_RELIST, "resource version is too old; list again");
}

int main(void)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL); /* before gRPC starts its threads */

    static const rpc_handler handlers[_RPC_METHOD_MAX] = {
        [RPC_METHOD_GET] = {on_get, NULL},
        [RPC_METHOD_APPLY] = {on_apply, NULL},
        [RPC_METHOD_HEALTH] = {on_health, NULL},
        [RPC_METHOD_WATCH] = {on_watch, NULL},
    };
    rpc_server *s;
    int r = rpc_server_new("127.0.0.1:0", NULL, handlers, &s);
    if (r < 0) {
        fprintf(stderr, "rpc-test-server: cannot listen: %s\n", strerror(-r));
        return EXIT_FAILURE;
    }
    printf("PORT %d\n", rpc_server_port(s));
    fflush(stdout);

    int sig;
    sigwait(&mask, &sig);
    rpc_server_shutdown(s, USEC_PER_SEC);
    rpc_server_free(s);
    return EXIT_SUCCESS;
}
