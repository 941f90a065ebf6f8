/* The gateway engine: etcd's JSON gateway over HTTP/1.1, curl multi-socket on libev, failover.
 *
 * Every request is one POST to the gateway. A request that never reached a member (refused,
 * unresolvable, connect timeout) moves to the next endpoint at once; one whose outcome is unknown
 * (timeout or broken connection after sending) is retried elsewhere only when it is a read.
 * libcurl reuses keep-alive connections per multi handle, so the pool is simply the multi's
 * connection cache, bounded by max_connections (transfers beyond it wait their turn in curl). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/list.h"
#include "engine.h"

#define STORE_IDLE_MAX 64

typedef struct store_req {
    store *s;
    struct store_req *prev, *next;
    CURL *easy;
    store_kind kind;
    store_shape shape;
    char *body;
    size_t body_len;
    buf response;
    bool too_large;
    size_t endpoint;
    unsigned tries;
    usec_t deadline; /* monotonic, of the whole request, failover included */
    store_cb cb;
    void *userdata;
} store_req;

typedef struct store_sock {
    ev_io io;
    curl_socket_t fd;
    store_multi *mu;
} store_sock;

static void multi_check_done(store_multi *mu)
{
    CURLMsg *msg;
    int pending;
    while ((msg = curl_multi_info_read(mu->multi, &pending))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;
        curl_multi_remove_handle(mu->multi, easy);
        mu->done(mu, easy, code);
    }
}

static void multi_timer_fired(struct ev_loop *loop, ev_timer *t, int revents)
{
    store_multi *mu = t->data;
    int running;
    curl_multi_socket_action(mu->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    multi_check_done(mu);
}

static void multi_sock_ready(struct ev_loop *loop, ev_io *io, int revents)
{
    store_sock *sk = io->data;
    store_multi *mu = sk->mu;
    int action =
        (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(mu->multi, sk->fd, action, &running);
    multi_check_done(mu);
}

static int multi_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    store_multi *mu = userp;
    store_sock *sk = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sk) {
            ev_io_stop(mu->s->loop, &sk->io);
            curl_multi_assign(mu->multi, fd, NULL);
            free(sk);
        }
        return 0;
    }
    int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (!sk) {
        sk = xnew(store_sock, 1);
        sk->fd = fd;
        sk->mu = mu;
        ev_io_init(&sk->io, multi_sock_ready, fd, events);
        sk->io.data = sk;
        curl_multi_assign(mu->multi, fd, sk);
    } else {
        ev_io_stop(mu->s->loop, &sk->io);
        ev_io_set(&sk->io, fd, events);
    }
    ev_io_start(mu->s->loop, &sk->io);
    return 0;
}

static int multi_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    store_multi *mu = userp;
    ev_timer_stop(mu->s->loop, &mu->timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&mu->timer, (double)timeout_ms / 1000.0, 0.0);
        ev_timer_start(mu->s->loop, &mu->timer);
    }
    return 0;
}

static void multi_init(store *s, store_multi *mu, size_t max_connections,
                       void (*done)(store_multi *, CURL *, CURLcode))
{
    mu->s = s;
    mu->done = done;
    mu->multi = curl_multi_init();
    if (!mu->multi)
        alloc_oom(0);
    ev_init(&mu->timer, multi_timer_fired);
    mu->timer.data = mu;
    curl_multi_setopt(mu->multi, CURLMOPT_SOCKETFUNCTION, multi_socket_cb);
    curl_multi_setopt(mu->multi, CURLMOPT_SOCKETDATA, mu);
    curl_multi_setopt(mu->multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
    curl_multi_setopt(mu->multi, CURLMOPT_TIMERDATA, mu);
    if (max_connections) {
        curl_multi_setopt(mu->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)max_connections);
        curl_multi_setopt(mu->multi, CURLMOPT_MAXCONNECTS, (long)max_connections);
    }
}

static void multi_done(store *s, store_multi *mu)
{
    if (!mu->multi)
        return;
    ev_timer_stop(s->loop, &mu->timer);
    curl_multi_cleanup(mu->multi);
    mu->multi = NULL;
}

static CURL *easy_get(store *s)
{
    if (s->n_idle > 0) {
        CURL *e = s->idle[--s->n_idle];
        curl_easy_reset(e);
        return e;
    }
    CURL *e = curl_easy_init();
    if (!e)
        alloc_oom(0);
    return e;
}

static void easy_put(store *s, CURL *easy)
{
    if (s->n_idle < STORE_IDLE_MAX)
        s->idle[s->n_idle++] = easy;
    else
        curl_easy_cleanup(easy);
}

void store_easy_setup(store *s, CURL *easy, size_t endpoint, const char *path, const char *body,
                      size_t body_len)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", s->opts.endpoints[endpoint], path);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(s->opts.connect_timeout / USEC_PER_MSEC));
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    /* No "Expect: 100-continue" round trip on large bodies. */
    static struct curl_slist *headers;
    if (!headers) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        headers = curl_slist_append(headers, "Expect:");
    }
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    if (s->opts.ca_file)
        curl_easy_setopt(easy, CURLOPT_CAINFO, s->opts.ca_file);
    if (s->opts.cert_file)
        curl_easy_setopt(easy, CURLOPT_SSLCERT, s->opts.cert_file);
    if (s->opts.key_file)
        curl_easy_setopt(easy, CURLOPT_SSLKEY, s->opts.key_file);
}

bool store_curl_not_sent(CURLcode code)
{
    return code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
           code == CURLE_SSL_CONNECT_ERROR;
}

static size_t req_write(char *data, size_t size, size_t nmemb, void *userdata)
{
    store_req *q = userdata;
    if (buf_append(&q->response, data, nmemb) < 0) {
        q->too_large = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return nmemb;
}

static void req_unlink(store_req *q)
{
    LIST_REMOVE(q->s->reqs, q);
}

static void req_free(store_req *q)
{
    if (q->easy)
        easy_put(q->s, q->easy);
    buf_done(&q->response);
    free(q->body);
    free(q);
}

static void req_start(store_req *q)
{
    store *s = q->s;
    q->tries++;
    buf_reset(&q->response);
    q->too_large = false;
    if (!q->easy)
        q->easy = easy_get(s);
    else
        curl_easy_reset(q->easy);
    store_easy_setup(s, q->easy, q->endpoint, store_kind_path(q->kind), q->body, q->body_len);
    /* Each attempt gets what is left of the request's time. */
    usec_t now = now_monotonic();
    usec_t left = q->deadline > now ? q->deadline - now : 0;
    curl_easy_setopt(q->easy, CURLOPT_TIMEOUT_MS, (long)MAX(left / USEC_PER_MSEC, (usec_t)1));
    curl_easy_setopt(q->easy, CURLOPT_WRITEFUNCTION, req_write);
    curl_easy_setopt(q->easy, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(q->easy, CURLOPT_PRIVATE, q);
    curl_multi_add_handle(s->requests.multi, q->easy);
}

static int curl_error(store_req *q, CURLcode code)
{
    if (q->too_large)
        return -EMSGSIZE;
    if (store_curl_not_sent(code))
        return -EHOSTDOWN;
    if (code == CURLE_OPERATION_TIMEDOUT)
        return -ETIMEDOUT;
    return -ECONNRESET;
}

static void requests_done(store_multi *mu, CURL *easy, CURLcode code)
{
    store_req *q = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&q);
    store *s = mu->s;
    _cleanup_(store_result_freep) store_result *r = xnew(store_result, 1);
    int e;
    if (code == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200)
            e = store_parse_response(q->kind, q->response.data ? q->response.data : "",
                                     q->response.len, r);
        else
            e = store_parse_error(status, q->response.data ? q->response.data : "", q->response.len,
                                  r);
    } else {
        e = curl_error(q, code);
        r->error = e;
        r->message = xasprintf("%s: %s", s->opts.endpoints[q->endpoint], curl_easy_strerror(code));
    }

    if (e < 0 &&
        store_failover(s, &q->endpoint, q->kind, e, code != CURLE_OK && store_curl_not_sent(code),
                       q->tries, now_monotonic() < q->deadline)) {
        req_start(q);
        return;
    }
    store_result_shape(r, q->shape);
    req_unlink(q);
    store_cb cb = q->cb;
    void *ud = q->userdata;
    req_free(q);
    cb(TAKE_PTR(r), ud);
}

static int gateway_submit(store *s, const store_request *req, store_shape shape, store_cb cb,
                          void *userdata)
{
    json_t *body = store_gateway_request(req);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return -EINVAL;
    store_req *q = xnew(store_req, 1);
    q->s = s;
    q->kind = req->kind;
    q->shape = shape;
    q->body = text;
    q->body_len = strlen(text);
    q->response = BUF_INIT(s->opts.max_response);
    q->endpoint = s->endpoint;
    q->deadline = now_monotonic() + s->opts.request_timeout;
    q->cb = cb;
    q->userdata = userdata;
    LIST_PREPEND(s->reqs, q);
    req_start(q);
    return 0;
}

static int gateway_init(store *s)
{
    static bool curl_ready;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = true;
    }
    s->idle = xnew(CURL *, STORE_IDLE_MAX);
    multi_init(s, &s->requests, s->opts.max_connections, requests_done);
    multi_init(s, &s->watches, 0, store_watch_transfer_done);
    return 0;
}

static void gateway_done(store *s)
{
    while (s->reqs) {
        store_req *q = s->reqs;
        curl_multi_remove_handle(s->requests.multi, q->easy);
        req_unlink(q);
        req_free(q);
    }
    multi_done(s, &s->requests);
    multi_done(s, &s->watches);
    for (size_t i = 0; i < s->n_idle; i++)
        curl_easy_cleanup(s->idle[i]);
    free(s->idle);
}

const store_engine store_engine_gateway = {
    .name = "gateway",
    .init = gateway_init,
    .done = gateway_done,
    .submit = gateway_submit,
    .watch_connect = store_gateway_watch_connect,
    .watch_disconnect = store_gateway_watch_disconnect,
};
