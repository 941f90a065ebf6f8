/* What both engines share at the top: options, choosing the engine, submitting, freeing, and the
 * blocking wrapper. The engines themselves are gateway.c and grpc.c (see engine.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "engine.h"

static const char *const engine_names[_STORE_ENGINE_MAX] = {
    [STORE_ENGINE_DEFAULT] = "default",
    [STORE_ENGINE_GRPC] = "grpc",
    [STORE_ENGINE_GATEWAY] = "gateway",
};

const char *store_engine_to_string(store_engine_kind k)
{
    return (unsigned)k < _STORE_ENGINE_MAX ? engine_names[k] : NULL;
}

int store_engine_from_string(const char *name, store_engine_kind *ret)
{
    for (store_engine_kind k = STORE_ENGINE_GRPC; name && k < _STORE_ENGINE_MAX; k++)
        if (streq(name, engine_names[k])) {
            *ret = k;
            return 0;
        }
    return -EINVAL;
}

const char *store_engine_used(const store *s)
{
    return s->engine->name;
}

static int engine_pick(store_engine_kind k, const store_engine **ret)
{
    if (k == STORE_ENGINE_DEFAULT) {
        const char *env = getenv("STRATUS_STORE_ENGINE");
        k = STORE_ENGINE_GRPC;
        if (env && *env && store_engine_from_string(env, &k) < 0)
            return -EINVAL;
    }
    switch (k) {
    case STORE_ENGINE_GRPC:
        *ret = &store_engine_grpc;
        return 0;
    case STORE_ENGINE_GATEWAY:
        *ret = &store_engine_gateway;
        return 0;
    default:
        return -EINVAL;
    }
}

bool store_failover(store *s, size_t *endpoint, store_kind k, int error, bool not_sent,
                    unsigned tries, bool time_left)
{
    if (!store_error_is_unavailable(error))
        return false;
    size_t next = (*endpoint + 1) % s->opts.n_endpoints;
    /* Later requests start on the next member, whether or not this one goes there. */
    if (s->endpoint == *endpoint)
        s->endpoint = next;
    /* The engine's clock may say a timed-out attempt had time left a moment before ours does. */
    if (error == -ETIMEDOUT || !time_left ||
        !store_should_retry(k, error, not_sent, tries, s->opts.n_endpoints))
        return false;
    *endpoint = next;
    return true;
}

int store_submit(store *s, const store_request *req, store_shape shape, store_cb cb, void *userdata)
{
    return s->engine->submit(s, req, shape, cb, userdata);
}

static void options_free(store_options *o)
{
    for (size_t i = 0; i < o->n_endpoints; i++)
        free((char *)o->endpoints[i]);
    free((char *)o->ca_file);
    free((char *)o->cert_file);
    free((char *)o->key_file);
}

int store_new(struct ev_loop *loop, const store_options *opts, store **ret)
{
    if (!loop || !opts || opts->n_endpoints == 0 || opts->n_endpoints > STORE_ENDPOINTS_MAX)
        return -EINVAL;
    for (size_t i = 0; i < opts->n_endpoints; i++) {
        const char *e = opts->endpoints[i];
        if (!e || (strncmp(e, "http://", 7) != 0 && strncmp(e, "https://", 8) != 0) ||
            strlen(e) > 512)
            return -EINVAL;
    }
    const store_engine *engine;
    if (engine_pick(opts->engine, &engine) < 0)
        return -EINVAL;
    store *s = xnew(store, 1);
    s->loop = loop;
    s->engine = engine;
    s->opts = *opts;
    for (size_t i = 0; i < opts->n_endpoints; i++) {
        /* "http://host:port/" and "http://host:port" both work. */
        char *e = xstrdup(opts->endpoints[i]);
        size_t n = strlen(e);
        if (n && e[n - 1] == '/')
            e[n - 1] = '\0';
        s->opts.endpoints[i] = e;
    }
    s->opts.ca_file = opts->ca_file ? xstrdup(opts->ca_file) : NULL;
    s->opts.cert_file = opts->cert_file ? xstrdup(opts->cert_file) : NULL;
    s->opts.key_file = opts->key_file ? xstrdup(opts->key_file) : NULL;
    if (!s->opts.request_timeout)
        s->opts.request_timeout = STORE_DEFAULT_TIMEOUT;
    if (!s->opts.connect_timeout)
        s->opts.connect_timeout = STORE_DEFAULT_CONNECT;
    if (!s->opts.max_response)
        s->opts.max_response = STORE_DEFAULT_MAX_RESPONSE;
    if (!s->opts.max_event_line)
        s->opts.max_event_line = STORE_DEFAULT_MAX_EVENTLINE;
    if (!s->opts.max_connections)
        s->opts.max_connections = STORE_DEFAULT_CONNECTIONS;
    int e = engine->init(s);
    if (e < 0) {
        options_free(&s->opts);
        free(s);
        return e;
    }
    *ret = s;
    return 0;
}

store *store_free(store *s)
{
    if (!s)
        return NULL;
    store_watch_free_all(s);
    s->engine->done(s);
    options_free(&s->opts);
    free(s);
    return NULL;
}

struct ev_loop *store_loop(store *s)
{
    return s->loop;
}

void store_sync_done(store_result *r, void *userdata)
{
    store_sync *sync = userdata;
    sync->result = r;
    sync->done = true;
}

int store_wait(store *s, store_sync *sync, store_result **ret)
{
    while (!sync->done)
        ev_run(s->loop, EVRUN_ONCE);
    int e = sync->result->error;
    if (ret)
        *ret = TAKE_PTR(sync->result);
    else
        sync->result = (store_result_free(sync->result), NULL);
    return e;
}
