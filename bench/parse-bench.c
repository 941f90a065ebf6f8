/* Micro-benchmark of the JSON parser (pkg/api/parse.c) against the jansson call it replaced,
 * json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL), on the documents parsed most: a bound
 * Instance as the informers of every scheduler and node agent receive it (canonical JSON, with
 * resourceVersion), a node's allocation ledger of 10 instances (parsed on every Bind), and a Node
 * (parsed by every scheduler's informer on every heartbeat; its allocation ratios are reals).
 * Each figure is the best of 5 rounds of ~0.2 s, in nanoseconds per parse, the tree freed
 * included; beside them, json_deep_copy of the same tree: what building it through jansson's API
 * costs with no text to read. Checks first that both give equal trees and that the fast path took
 * each document.
 * Prints "name: value unit" lines; never fails on a time.
 *
 *   parse-bench */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/object.h"
#include "api/parse.h"
#include "json-docs.h"
#include "stats.h"

#define FLAGS  JSON_REJECT_DUPLICATES
#define ROUNDS 5

typedef struct parse_call {
    json_t *(*f)(const char *, size_t, size_t, json_error_t *);
    const char *text;
    size_t len;
} parse_call;

static void parse_once(void *arg)
{
    const parse_call *c = arg;
    json_decref(c->f(c->text, c->len, FLAGS, NULL));
}

/* Nanoseconds per parse of text by f: the best round. */
static double measure(json_t *(*f)(const char *, size_t, size_t, json_error_t *), const char *text)
{
    parse_call c = {f, text, strlen(text)};
    return bench_ns_per_call(parse_once, &c, ROUNDS);
}

static void copy_once(void *arg)
{
    json_decref(json_deep_copy(arg));
}

/* Nanoseconds per json_deep_copy of j: building the same tree through jansson's API, without
 * reading any text, is the floor for any parser that returns jansson trees. */
static double measure_copy(const json_t *j)
{
    return bench_ns_per_call(copy_once, (void *)j, ROUNDS);
}

static json_t *must_load(const char *text)
{
    json_t *j = json_loads(text, FLAGS, NULL);
    if (!j)
        abort();
    return j;
}

/* An Instance as the apiserver stores it once bound (bind.c's instance_bound), as its watchers
 * get it: canonical, with metadata.resourceVersion. */
static json_t *bound_instance(void)
{
    return must_load(
        "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\","
        "\"metadata\":{\"name\":\"web-1\",\"namespace\":\"default\","
        "\"uid\":\"3f1c2a9e-7b4d-4e2a-9c61-0d8e5b7a4f12\",\"resourceVersion\":\"1048577\","
        "\"labels\":{\"app\":\"web\",\"tier\":\"frontend\"},"
        "\"creationTimestamp\":\"2026-11-22T02:31:00Z\",\"generation\":1,"
        "\"finalizers\":[\"stratus.io/node-agent\"]},"
        "\"spec\":{\"flavor\":\"m1.small\",\"image\":\"cirros-like\",\"hostname\":\"web-1\","
        "\"networks\":[{\"network\":\"default\",\"fixedIp\":\"10.88.0.10\"}],"
        "\"powerState\":\"Running\",\"configDrive\":false,\"serverGroup\":\"web\","
        "\"availabilityZone\":\"zone-a\",\"nodeName\":\"node-0042\"},"
        "\"status\":{\"phase\":\"Scheduled\",\"nodeName\":\"node-0042\",\"conditions\":[{"
        "\"type\":\"Scheduled\",\"status\":\"True\",\"reason\":\"Bound\","
        "\"message\":\"bound to node \\\"node-0042\\\"\","
        "\"lastTransitionTime\":\"2026-11-22T02:31:01Z\"}]}}");
}

/* A Node as its agent keeps it: labels, the defaulted spec (ratios are reals), and the status
 * of a heartbeat. */
static json_t *node(void)
{
    return must_load(
        "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Node\","
        "\"metadata\":{\"name\":\"node-0042\",\"uid\":\"8b0d6c1e-2f3a-4b5c-9d7e-1a2b3c4d5e6f\","
        "\"resourceVersion\":\"2097153\",\"creationTimestamp\":\"2026-11-22T02:00:00Z\","
        "\"generation\":1,\"labels\":{\"topology.stratus.io/zone\":\"zone-a\","
        "\"stratus.io/hollow\":\"true\"}},"
        "\"spec\":{\"unschedulable\":false,\"taints\":[],"
        "\"allocationRatios\":{\"cpu\":4.0,\"memory\":1.5,\"disk\":1.0}},"
        "\"status\":{\"capacity\":{\"vcpus\":64,\"memoryMiB\":262144,\"diskGiB\":4000},"
        "\"allocatable\":{\"vcpus\":62,\"memoryMiB\":258048,\"diskGiB\":3900},"
        "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"AgentReady\","
        "\"message\":\"the agent is posting status\","
        "\"lastTransitionTime\":\"2026-11-22T02:00:05Z\"}],"
        "\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"10.0.0.42\"},"
        "{\"type\":\"Hostname\",\"address\":\"node-0042\"}],"
        "\"nodeInfo\":{\"architecture\":\"x86_64\",\"hypervisor\":\"QEMU\","
        "\"libvirtVersion\":\"9.0.0\",\"kernelVersion\":\"6.1.0-13-amd64\","
        "\"agentVersion\":\"0.1.0\",\"backend\":\"test\"},\"observedGeneration\":1}}");
}

static void report(const char *name, json_t *doc)
{
    char *text = api_json_canonical(doc); /* as stored and served */
    size_t len = strlen(text);
    json_t *want = json_loadb(text, len, FLAGS, NULL), *got = api_json_parse_fast(text, len, FLAGS);
    if (!want || !got || !json_equal(want, got)) {
        fprintf(stderr, "%s: the fast path %s\n", name, got ? "differs from jansson" : "declined");
        exit(1);
    }
    double jansson = measure(json_loadb, text), ours = measure(api_json_loadb, text);
    double copy = measure_copy(want);
    json_decref(want);
    json_decref(got);
    printf("parse_%s_bytes: %zu bytes\n", name, len);
    printf("parse_%s_jansson: %.0f ns\n", name, jansson);
    printf("parse_%s_ours: %.0f ns\n", name, ours);
    printf("parse_%s_speedup: %.1f x\n", name, jansson / ours);
    printf("parse_%s_deep_copy: %.0f ns\n", name, copy);
    free(text);
}

int main(void)
{
    json_t *inst = bound_instance(), *led = bench_ledger(10), *nd = node();
    report("instance", inst);
    report("ledger_10", led);
    report("node", nd);
    json_decref(inst);
    json_decref(led);
    json_decref(nd);
    return 0;
}
