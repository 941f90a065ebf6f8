/* Micro-benchmark of the canonical JSON dump (pkg/api/canonical.c) against the jansson call it
 * replaced, json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY), on the two documents
 * the apiserver dumps on every Bind: a bound Instance (as bind.c's instance_bound leaves it) and a
 * node's allocation ledger of 10 instances. Each figure is the best of 5 rounds of ~0.2 s, in
 * nanoseconds per dump (the malloc'd text included, as callers get it). Checks first that both
 * give the same bytes. Prints "name: value unit" lines; never fails on a time.
 *
 *   canonical-bench */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/object.h"
#include "json-docs.h"
#include "stats.h"

#define FLAGS  (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)
#define ROUNDS 5

static char *dump_jansson(const json_t *j)
{
    return json_dumps(j, FLAGS);
}

typedef struct dump_call {
    char *(*f)(const json_t *);
    const json_t *j;
} dump_call;

static void dump_once(void *arg)
{
    const dump_call *c = arg;
    free(c->f(c->j));
}

/* Nanoseconds per dump of j by f: the best round. */
static double measure(char *(*f)(const json_t *), const json_t *j)
{
    dump_call c = {f, j};
    return bench_ns_per_call(dump_once, &c, ROUNDS);
}

/* An Instance as the apiserver stores it after create (defaults, uid, creationTimestamp,
 * generation, the Pending condition), then bound the way instance_bound does it. */
static json_t *bound_instance(void)
{
    json_t *obj = json_loads(
        "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\","
        "\"metadata\":{\"name\":\"web-1\",\"namespace\":\"default\","
        "\"uid\":\"3f1c2a9e-7b4d-4e2a-9c61-0d8e5b7a4f12\",\"labels\":{\"app\":\"web\","
        "\"tier\":\"frontend\"},\"creationTimestamp\":\"2026-11-22T02:31:00Z\","
        "\"generation\":1},"
        "\"spec\":{\"flavor\":\"m1.small\",\"image\":\"cirros-like\",\"hostname\":\"web-1\","
        "\"networks\":[{\"network\":\"default\",\"fixedIp\":\"10.88.0.10\"}],"
        "\"powerState\":\"Running\",\"configDrive\":false,\"serverGroup\":\"web\","
        "\"availabilityZone\":\"zone-a\"},"
        "\"status\":{\"phase\":\"Pending\",\"conditions\":[{\"type\":\"Scheduled\","
        "\"status\":\"False\",\"reason\":\"Pending\",\"message\":\"waiting for the scheduler\","
        "\"lastTransitionTime\":\"2026-11-22T02:31:00Z\"}]}}",
        0, NULL);
    if (!obj)
        abort();
    const char *node = "node-0042";
    json_t *spec = json_object_get(obj, "spec");
    json_object_set_new(spec, "nodeName", json_string(node));
    json_t *st = json_object_get(obj, "status");
    json_object_set_new(st, "phase", json_string("Scheduled"));
    json_object_set_new(st, "nodeName", json_string(node));
    json_t *cond = json_array_get(json_object_get(st, "conditions"), 0);
    json_object_set_new(cond, "status", json_string("True"));
    json_object_set_new(cond, "reason", json_string("Bound"));
    json_object_set_new(cond, "message", json_string("bound to node \"node-0042\""));
    json_object_set_new(cond, "lastTransitionTime", json_string("2026-11-22T02:31:01Z"));
    json_t *md = json_object_get(obj, "metadata");
    json_object_set_new(md, "finalizers", json_pack("[s]", "stratus.io/node-agent"));
    return obj;
}

static void report(const char *name, const json_t *j)
{
    char *want = dump_jansson(j), *got = api_json_canonical(j);
    if (!want || strcmp(want, got) != 0) {
        fprintf(stderr, "%s: api_json_canonical differs from jansson\n", name);
        exit(1);
    }
    double jansson = measure(dump_jansson, j), ours = measure(api_json_canonical, j);
    printf("canonical_%s_bytes: %zu bytes\n", name, strlen(want));
    printf("canonical_%s_jansson: %.0f ns\n", name, jansson);
    printf("canonical_%s_ours: %.0f ns\n", name, ours);
    printf("canonical_%s_speedup: %.1f x\n", name, jansson / ours);
    free(want);
    free(got);
}

int main(void)
{
    json_t *inst = bound_instance(), *led = bench_ledger(10);
    report("instance", inst);
    report("ledger_10", led);
    json_decref(inst);
    json_decref(led);
    return 0;
}
