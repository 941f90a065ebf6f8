/* Benchmark of pkg/store against the same work done by a minimal raw libcurl loop on the same
 * etcd in the same run, then of the two engines side by side (rate, and CPU per operation of etcd
 * and of this process). Starts its own etcd (or uses STRATUS_BENCH_ETCD=http://…, without the
 * etcd CPU figures) and prints "name: value unit" lines. Never fails on a time; see
 * docs/performance.md.
 *
 *   store-bench [puts-per-phase]   (default 2000) */
#include <curl/curl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/b64.h"
#include "etcd-fixture.h"
#include "store/store.h"

static const char *endpoint;
static struct ev_loop *loop;
static store *st;
static int n_ops = 2000;

static double secs(usec_t a, usec_t b)
{
    return (double)(b - a) / 1e6;
}

static int cmp_u64(const void *a, const void *b)
{
    usec_t x = *(const usec_t *)a, y = *(const usec_t *)b;
    return x < y ? -1 : x > y;
}

static double p50_ms(usec_t *lat, int n)
{
    qsort(lat, (size_t)n, sizeof(usec_t), cmp_u64);
    return (double)lat[n / 2] / 1000.0;
}

static void report(const char *name, double ours, double raw, const char *unit)
{
    printf("%s: %.0f %s\n", name, ours, unit);
    printf("%s_raw_curl: %.0f %s\n", name, raw, unit);
    printf("%s_ratio: %.1f %%\n", name, raw > 0 ? 100.0 * ours / raw : 0.0);
}

/* ---- the raw reference: libcurl easy/multi with hand-built JSON, no parsing of answers */

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    return n;
}

static char *raw_put_body(const char *key, const char *val)
{
    _cleanup_free_ char *k = b64_encode(key, strlen(key));
    _cleanup_free_ char *v = b64_encode(val, strlen(val));
    return xasprintf("{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
}

static char *raw_txn_body(const char *key, const char *val)
{
    _cleanup_free_ char *k = b64_encode(key, strlen(key));
    _cleanup_free_ char *v = b64_encode(val, strlen(val));
    /* the same shape store_update sends: compare mod_revision, put, read back on failure */
    return xasprintf("{\"compare\":[{\"key\":\"%s\",\"target\":\"MOD\",\"result\":\"GREATER\","
                     "\"mod_revision\":\"0\"}],\"success\":[{\"request_put\":{\"key\":\"%s\","
                     "\"value\":\"%s\"}}],\"failure\":[{\"request_range\":{\"key\":\"%s\"}}]}",
                     k, k, v, k);
}

static CURL *raw_easy(const char *path, struct curl_slist *h)
{
    CURL *e = curl_easy_init();
    char url[256];
    snprintf(url, sizeof(url), "%s%s", endpoint, path);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    return e;
}

static double raw_sequential(const char *path, char *(*body)(const char *, const char *),
                             const char *prefix, usec_t *lat)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    CURL *e = raw_easy(path, h);
    usec_t t0 = now_monotonic();
    for (int i = 0; i < n_ops; i++) {
        char k[64];
        snprintf(k, sizeof(k), "%s%d", prefix, i);
        _cleanup_free_ char *b = body(k, "value-of-some-length-0123456789");
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, b);
        usec_t a = now_monotonic();
        curl_easy_perform(e);
        lat[i] = now_monotonic() - a;
    }
    double rate = n_ops / secs(t0, now_monotonic());
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    return rate;
}

static double raw_parallel(int inflight)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    CURLM *m = curl_multi_init();
    CURL **easies = xnew(CURL *, (size_t)inflight);
    char **bodies = xnew(char *, (size_t)inflight);
    int next = 0, done = 0;
    usec_t t0 = now_monotonic();
    for (int i = 0; i < inflight && next < n_ops; i++, next++) {
        char k[64];
        snprintf(k, sizeof(k), "/bench/rawpar/%d", next);
        bodies[i] = raw_put_body(k, "value-of-some-length-0123456789");
        easies[i] = raw_easy("/v3/kv/put", h);
        curl_easy_setopt(easies[i], CURLOPT_POSTFIELDS, bodies[i]);
        curl_easy_setopt(easies[i], CURLOPT_PRIVATE, (char *)(intptr_t)i);
        curl_multi_add_handle(m, easies[i]);
    }
    while (done < n_ops) {
        int running;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int q;
        while ((msg = curl_multi_info_read(m, &q))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            done++;
            char *slot_p;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &slot_p);
            int slot = (int)(intptr_t)slot_p;
            curl_multi_remove_handle(m, msg->easy_handle);
            if (next < n_ops) {
                char k[64];
                snprintf(k, sizeof(k), "/bench/rawpar/%d", next++);
                free(bodies[slot]);
                bodies[slot] = raw_put_body(k, "value-of-some-length-0123456789");
                curl_easy_setopt(easies[slot], CURLOPT_POSTFIELDS, bodies[slot]);
                curl_multi_add_handle(m, easies[slot]);
            }
        }
        if (done < n_ops)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    double rate = n_ops / secs(t0, now_monotonic());
    for (int i = 0; i < inflight; i++) {
        curl_easy_cleanup(easies[i]);
        free(bodies[i]);
    }
    free(easies);
    free(bodies);
    curl_multi_cleanup(m);
    curl_slist_free_all(h);
    return rate;
}

/* ---- the same work through pkg/store */

static double store_sequential(bool txn, const char *prefix, usec_t *lat)
{
    usec_t t0 = now_monotonic();
    for (int i = 0; i < n_ops; i++) {
        char k[64];
        snprintf(k, sizeof(k), "%s%d", prefix, i);
        const char *v = "value-of-some-length-0123456789";
        store_sync y = STORE_SYNC_INIT;
        usec_t a = now_monotonic();
        if (txn) {
            _cleanup_(store_txn_freep) store_txn *t = store_txn_new();
            store_txn_compare(t, k, STORE_CMP_MOD, STORE_CMP_GREATER, 0);
            store_txn_put(t, STORE_ON_SUCCESS, k, v, strlen(v), 0, 0);
            store_txn_get(t, STORE_ON_FAILURE, k, NULL);
            store_txn_commit(st, t, store_sync_done, &y);
        } else
            store_put(st, k, v, strlen(v), 0, 0, store_sync_done, &y);
        if (store_wait(st, &y, NULL) < 0) {
            fprintf(stderr, "store request failed\n");
            exit(1);
        }
        lat[i] = now_monotonic() - a;
    }
    return n_ops / secs(t0, now_monotonic());
}

typedef struct par {
    int next, done, inflight, failed;
} par;

static void par_submit(par *p);

static void par_done(store_result *r, void *userdata)
{
    par *p = userdata;
    p->done++;
    p->failed += r->error != 0;
    store_result_free(r);
    if (p->next < n_ops)
        par_submit(p);
}

static void par_submit(par *p)
{
    char k[64];
    snprintf(k, sizeof(k), "/bench/par/%d", p->next++);
    const char *v = "value-of-some-length-0123456789";
    store_put(st, k, v, strlen(v), 0, 0, par_done, p);
}

static double store_parallel(int inflight)
{
    par p = {0};
    usec_t t0 = now_monotonic();
    for (int i = 0; i < inflight && p.next < n_ops; i++)
        par_submit(&p);
    while (p.done < n_ops)
        ev_run(loop, EVRUN_ONCE);
    if (p.failed)
        fprintf(stderr, "%d parallel puts failed\n", p.failed);
    return n_ops / secs(t0, now_monotonic());
}

/* ---- watch delivery: history of n events written in big transactions, then replayed */

typedef struct wcount {
    int n;
} wcount;

static void watch_count(store_watch *w, const store_event *ev, size_t n, int64_t rev, int error,
                        void *userdata)
{
    ((wcount *)userdata)->n += (int)n;
}

typedef struct raw_counter {
    int count;
    size_t matched; /* bytes of "kv" (with its quotes) seen so far, across reads */
} raw_counter;

static size_t raw_watch_count(char *p, size_t s, size_t n, void *u)
{
    /* one "kv" object per event; good enough for a reference that parses nothing. The pattern
     * may be split between two reads, so the match state carries over. */
    static const char pat[] = "\"kv\"";
    raw_counter *c = u;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == pat[c->matched])
            c->matched++;
        else
            c->matched = p[i] == pat[0];
        if (c->matched == sizeof(pat) - 1) {
            c->count++;
            c->matched = 0;
        }
    }
    return n;
}

static double raw_watch(int64_t start, const char *end, int events)
{
    _cleanup_free_ char *k = b64_encode("/bench/watch/", 13);
    _cleanup_free_ char *e = b64_encode(end, strlen(end));
    _cleanup_free_ char *body =
        xasprintf("{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\","
                  "\"start_revision\":\"%lld\"}}",
                  k, e, (long long)start);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    CURL *easy = raw_easy("/v3/watch", h);
    raw_counter counter = {0};
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, raw_watch_count);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &counter);
    CURLM *m = curl_multi_init();
    curl_multi_add_handle(m, easy);
    usec_t t0 = now_monotonic();
    while (counter.count < events) {
        int running = 0;
        curl_multi_perform(m, &running);
        if (!running) {
            fprintf(stderr, "store-bench: the raw watch ended after %d of %d events\n",
                    counter.count, events);
            break;
        }
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    double raw = events / secs(t0, now_monotonic());
    curl_multi_remove_handle(m, easy);
    curl_easy_cleanup(easy);
    curl_multi_cleanup(m);
    curl_slist_free_all(h);
    return raw;
}

static void bench_watch(int events)
{
    int64_t start = 0;
    for (int i = 0; i < events; i += 100) {
        _cleanup_(store_txn_freep) store_txn *t = store_txn_new();
        for (int j = 0; j < 100; j++) {
            char k[64];
            snprintf(k, sizeof(k), "/bench/watch/%d", i + j);
            store_txn_put(t, STORE_ON_SUCCESS, k, "value-of-some-length-0123456789", 31, 0, 0);
        }
        store_sync y = STORE_SYNC_INIT;
        store_result *r = NULL;
        store_txn_commit(st, t, store_sync_done, &y);
        store_wait(st, &y, &r);
        if (!start)
            start = r->revision;
        store_result_free(r);
    }
    _cleanup_free_ char *end = store_prefix_end("/bench/watch/");

    double raw1 = raw_watch(start, end, events);
    wcount c = {0};
    usec_t t0 = now_monotonic();
    store_watch *w = NULL;
    store_watch_new(st, "/bench/watch/", end, start, 0, watch_count, &c, &w);
    while (c.n < events)
        ev_run(loop, EVRUN_ONCE);
    double ours = events / secs(t0, now_monotonic());
    store_watch_free(w);
    double raw = MAX(raw1, raw_watch(start, end, events));
    report("store_watch_events_per_sec", ours, raw, "events/s");
}

/* ---- the engines side by side: puts of a 1.5 KiB value (an object's size), CPU per put */

static int etcd_pid;

static usec_t etcd_cpu(void)
{
    if (etcd_pid <= 0)
        return 0;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", etcd_pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    unsigned long long ut = 0, st_ = 0;
    /* the command may hold spaces: skip to after its closing parenthesis */
    char line[1024];
    if (!fgets(line, sizeof(line), f)) {
        fclose(f);
        return 0;
    }
    fclose(f);
    char *p = strrchr(line, ')');
    if (!p ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st_) != 2)
        return 0;
    return (usec_t)(ut + st_) * USEC_PER_SEC / (usec_t)sysconf(_SC_CLK_TCK);
}

static usec_t self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (usec_t)ru.ru_utime.tv_sec * USEC_PER_SEC + (usec_t)ru.ru_utime.tv_usec +
           (usec_t)ru.ru_stime.tv_sec * USEC_PER_SEC + (usec_t)ru.ru_stime.tv_usec;
}

typedef struct epar {
    store *s;
    const char *prefix;
    const char *value;
    int next, done, failed;
} epar;

static void epar_submit(epar *p);

static void epar_done(store_result *r, void *userdata)
{
    epar *p = userdata;
    p->done++;
    p->failed += r->error != 0;
    store_result_free(r);
    if (p->next < n_ops)
        epar_submit(p);
}

static void epar_submit(epar *p)
{
    char k[64];
    snprintf(k, sizeof(k), "%s%d", p->prefix, p->next++);
    store_put(p->s, k, p->value, strlen(p->value), 0, 0, epar_done, p);
}

static void engine_phase(store *s, const char *engine, const char *phase, int inflight,
                         const char *value)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "/bench/%s/%s/", engine, phase);
    epar p = {.s = s, .prefix = prefix, .value = value};
    usec_t e0 = etcd_cpu(), c0 = self_cpu(), t0 = now_monotonic();
    for (int i = 0; i < inflight && p.next < n_ops; i++)
        epar_submit(&p);
    while (p.done < n_ops)
        ev_run(loop, EVRUN_ONCE);
    usec_t t1 = now_monotonic(), e1 = etcd_cpu(), c1 = self_cpu();
    if (p.failed)
        fprintf(stderr, "store-bench: %d %s puts failed on %s\n", p.failed, phase, engine);
    printf("engine_%s_%s: %.0f puts/s\n", engine, phase, n_ops / secs(t0, t1));
    if (etcd_pid > 0)
        printf("engine_%s_%s_etcd_cpu: %.1f us/put\n", engine, phase, (double)(e1 - e0) / n_ops);
    printf("engine_%s_%s_client_cpu: %.1f us/put\n", engine, phase, (double)(c1 - c0) / n_ops);
}

static void bench_engines(void)
{
    char value[1537];
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    static const store_engine_kind engines[] = {STORE_ENGINE_GATEWAY, STORE_ENGINE_GRPC};
    for (size_t i = 0; i < ELEMENTSOF(engines); i++) {
        store_options o = {.engine = engines[i], .n_endpoints = 1, .endpoints = {endpoint}};
        store *s = NULL;
        if (store_new(loop, &o, &s) < 0)
            exit(1);
        const char *name = store_engine_to_string(engines[i]);
        engine_phase(s, name, "warm", 16, value);
        engine_phase(s, name, "put_seq", 1, value);
        engine_phase(s, name, "put_64_inflight", 64, value);
        store_free(s);
    }
}

int main(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && (atoi(argv[1]) <= 0 || atoi(argv[1]) > 10000000))) {
        fprintf(stderr, "usage: store-bench [operations-per-phase: 1..10000000]\n");
        return 2;
    }
    if (argc == 2)
        n_ops = atoi(argv[1]);
    etcd_fixture *f = NULL;
    endpoint = getenv("STRATUS_BENCH_ETCD");
    if (!endpoint) {
        f = etcd_fixture_start();
        endpoint = etcd_fixture_endpoint(f);
        etcd_pid = etcd_fixture_pid(f);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    loop = ev_loop_new(EVFLAG_AUTO);
    store_options o = {.n_endpoints = 1, .endpoints = {endpoint}};
    if (store_new(loop, &o, &st) < 0)
        return 1;
    usec_t *lat = xnew(usec_t, (size_t)n_ops);
    printf("# store-bench: %d operations per phase against %s (default engine: %s)\n", n_ops,
           endpoint, store_engine_used(st));

    /* warm-up: connections, etcd's first writes */
    store_sequential(false, "/bench/warm/", lat);

    /* raw first, then ours, then raw again: report the better raw run so drift cannot flatter us */
    double raw1 = raw_sequential("/v3/kv/put", raw_put_body, "/bench/rawseq/", lat);
    double raw_p50 = p50_ms(lat, n_ops);
    double ours = store_sequential(false, "/bench/seq/", lat);
    double ours_p50 = p50_ms(lat, n_ops);
    double raw2 = raw_sequential("/v3/kv/put", raw_put_body, "/bench/rawseq2/", lat);
    report("store_put_seq", ours, MAX(raw1, raw2), "puts/s");
    printf("store_put_seq_p50: %.3f ms\nstore_put_seq_p50_raw_curl: %.3f ms\n", ours_p50, raw_p50);

    raw1 = raw_sequential("/v3/kv/txn", raw_txn_body, "/bench/rawtxn/", lat);
    ours = store_sequential(true, "/bench/txn/", lat);
    raw2 = raw_sequential("/v3/kv/txn", raw_txn_body, "/bench/rawtxn2/", lat);
    report("store_txn_seq", ours, MAX(raw1, raw2), "txn/s");

    raw1 = raw_parallel(64);
    ours = store_parallel(64);
    raw2 = raw_parallel(64);
    report("store_put_64_inflight", ours, MAX(raw1, raw2), "puts/s");

    bench_watch(n_ops * 10);
    bench_engines();

    free(lat);
    store_free(st);
    ev_loop_destroy(loop);
    etcd_fixture_stop(f);
    return 0;
}
