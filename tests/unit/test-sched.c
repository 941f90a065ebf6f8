/* Unit tests for pkg/sched's plugins: each filter and score on table cases, selection and the
 * unschedulable message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "check.h"
#include "sched/sched.h"

static json_t *node_obj(const char *json)
{
    json_t *o = json_loads(json, 0, NULL);
    if (!o)
        abort();
    return o;
}

static sched_node mk_node(json_t *obj, bool alive)
{
    sched_node n;
    sched_node_init(&n, obj, alive);
    return n;
}

static int filter_index(const char *name)
{
    for (size_t i = 0; i < sched_n_filters; i++)
        if (streq(sched_filters[i].name, name))
            return (int)i;
    return -2;
}

#define NODE_4X4096                                                                                \
    "{\"metadata\":{\"name\":\"n1\",\"labels\":{\"topology.stratus.io/zone\":\"az1\"}},"           \
    "\"spec\":{},\"status\":{\"allocatable\":{\"vcpus\":4,\"memoryMiB\":4096,\"diskGiB\":100}}}"

static void filters_on_table_cases(void)
{
    json_t *plain = node_obj(NODE_4X4096);
    json_t *cordoned =
        node_obj("{\"metadata\":{\"name\":\"n2\"},\"spec\":{\"unschedulable\":true},"
                 "\"status\":{\"allocatable\":{\"vcpus\":4,\"memoryMiB\":4096,\"diskGiB\":100}}}");
    json_t *not_ready =
        node_obj("{\"metadata\":{\"name\":\"n3\"},\"spec\":{},\"status\":{\"allocatable\":"
                 "{\"vcpus\":4,\"memoryMiB\":4096,\"diskGiB\":100},\"conditions\":[{\"type\":"
                 "\"Ready\",\"status\":\"False\"}]}}");
    json_t *tainted =
        node_obj("{\"metadata\":{\"name\":\"n4\"},\"spec\":{\"taints\":[{\"key\":\"gpu\","
                 "\"value\":\"yes\",\"effect\":\"NoSchedule\"}]},\"status\":{\"allocatable\":"
                 "{\"vcpus\":4,\"memoryMiB\":4096,\"diskGiB\":100},\"nodeInfo\":"
                 "{\"architecture\":\"aarch64\"}}}");
    json_t *ratio =
        node_obj("{\"metadata\":{\"name\":\"n5\"},\"spec\":{\"allocationRatios\":{\"cpu\":4.0}},"
                 "\"status\":{\"allocatable\":{\"vcpus\":2,\"memoryMiB\":4096,\"diskGiB\":100}}}");
    json_t *tolerate = json_loads(
        "[{\"key\":\"gpu\",\"operator\":\"Equal\",\"value\":\"yes\",\"effect\":\"NoSchedule\"}]", 0,
        NULL);
    json_t *arm_image =
        json_loads("{\"spec\":{\"properties\":{\"architecture\":\"x86_64\"}}}", 0, NULL);
    const char *failed[] = {"n1"};

    struct {
        const char *what;
        json_t *node;
        bool alive;
        sched_request r;
        size_t used_vcpus, group_members;
        const char *want; /* failing filter name, or NULL for a fit */
    } t[] = {
        {"fits", plain, true, {.need = {{2, 1024, 10}}}, 0, 0, NULL},
        {"exactly full", plain, true, {.need = {{4, 4096, 100}}}, 0, 0, NULL},
        {"lease gone", plain, false, {.need = {{1, 1, 1}}}, 0, 0, "NodeReady"},
        {"Ready=False", not_ready, true, {.need = {{1, 1, 1}}}, 0, 0, "NodeReady"},
        {"cordoned", cordoned, true, {.need = {{1, 1, 1}}}, 0, 0, "NodeSchedulable"},
        {"forced elsewhere",
         plain,
         true,
         {.need = {{1, 1, 1}}, .forced_node = "n9"},
         0,
         0,
         "ForcedNode"},
        {"forced here", plain, true, {.need = {{1, 1, 1}}, .forced_node = "n1"}, 0, 0, NULL},
        {"volume here", plain, true, {.need = {{1, 1, 1}}, .volume_node = "n1"}, 0, 0, NULL},
        {"volume elsewhere",
         plain,
         true,
         {.need = {{1, 1, 1}}, .volume_node = "n2"},
         0,
         0,
         "VolumeNode"},
        {"volumes on two nodes",
         plain,
         true,
         {.need = {{1, 1, 1}}, .volume_node = "n1", .volumes_apart = true},
         0,
         0,
         "VolumeNode"},
        {"zone matches", plain, true, {.need = {{1, 1, 1}}, .zone = "az1"}, 0, 0, NULL},
        {"zone differs",
         plain,
         true,
         {.need = {{1, 1, 1}}, .zone = "az2"},
         0,
         0,
         "AvailabilityZone"},
        {"taint not tolerated", tainted, true, {.need = {{1, 1, 1}}}, 0, 0, "Taints"},
        {"taint tolerated",
         tainted,
         true,
         {.need = {{1, 1, 1}}, .tolerations = tolerate},
         0,
         0,
         NULL},
        {"failed here before",
         plain,
         true,
         {.need = {{1, 1, 1}}, .failed_nodes = failed, .n_failed = 1},
         0,
         0,
         "FailedBefore"},
        {"image arch",
         tainted,
         true,
         {.need = {{1, 1, 1}}, .tolerations = tolerate, .arch = sched_image_arch(arm_image)},
         0,
         0,
         "ImageArchitecture"},
        {"vcpus", plain, true, {.need = {{5, 1, 1}}}, 0, 0, "FitsVcpus"},
        {"vcpus with used", plain, true, {.need = {{2, 1, 1}}}, 3, 0, "FitsVcpus"},
        {"memory", plain, true, {.need = {{1, 4097, 1}}}, 0, 0, "FitsMemory"},
        {"disk", plain, true, {.need = {{1, 1, 101}}}, 0, 0, "FitsDisk"},
        {"cpu ratio 4x", ratio, true, {.need = {{8, 1, 1}}}, 0, 0, NULL},
        {"cpu ratio 4x full", ratio, true, {.need = {{9, 1, 1}}}, 0, 0, "FitsVcpus"},
        {"anti-affinity occupied",
         plain,
         true,
         {.need = {{1, 1, 1}}, .group_policy = "anti-affinity"},
         0,
         1,
         "AntiAffinity"},
        {"anti-affinity free",
         plain,
         true,
         {.need = {{1, 1, 1}}, .group_policy = "anti-affinity"},
         0,
         0,
         NULL},
        {"anti-affinity max 2",
         plain,
         true,
         {.need = {{1, 1, 1}}, .group_policy = "anti-affinity", .max_per_node = 2},
         0,
         1,
         NULL},
        {"affinity elsewhere",
         plain,
         true,
         {.need = {{1, 1, 1}}, .group_policy = "affinity", .group_placed = 2},
         0,
         0,
         "Affinity"},
        {"affinity first member",
         plain,
         true,
         {.need = {{1, 1, 1}}, .group_policy = "affinity"},
         0,
         0,
         NULL},
        {"soft anti-affinity never filters",
         plain,
         true,
         {.need = {{1, 1, 1}}, .group_policy = "soft-anti-affinity"},
         0,
         3,
         NULL},
    };
    for (size_t i = 0; i < ELEMENTSOF(t); i++) {
        sched_node n = mk_node(t[i].node, t[i].alive);
        n.used.amount[API_RESOURCE_VCPUS] = (int64_t)t[i].used_vcpus;
        n.group_members = t[i].group_members;
        int got = sched_filter_node(&t[i].r, &n);
        int want = t[i].want ? filter_index(t[i].want) : -1;
        if (got != want)
            check_fail(__FILE__, __LINE__, "%s: got %s, want %s", t[i].what,
                       got >= 0 ? sched_filters[got].name : "fit", t[i].want ? t[i].want : "fit");
        /* A filter sched_select skips for this request must be one that passes here. */
        for (size_t f = 0; f < sched_n_filters; f++)
            if (sched_filters[f].applies && !sched_filters[f].applies(&t[i].r) &&
                !sched_filters[f].fits(&t[i].r, &n))
                check_fail(__FILE__, __LINE__, "%s: %s rejects though it does not apply", t[i].what,
                           sched_filters[f].name);
        /* ... and selection over this one node says the same as the filters in order. */
        sched_verdict v;
        unsigned seed = 1;
        int chosen = sched_select(&t[i].r, &n, 1, &(sched_options){0}, &seed, &v);
        if ((want < 0) != (chosen == 0) || (want >= 0 && v.rejected[want] != 1))
            check_fail(__FILE__, __LINE__, "%s: sched_select disagrees with the filters",
                       t[i].what);
    }
    json_decref(plain);
    json_decref(cordoned);
    json_decref(not_ready);
    json_decref(tainted);
    json_decref(ratio);
    json_decref(tolerate);
    json_decref(arm_image);
}

static void scores_prefer_the_right_nodes(void)
{
    json_t *a = node_obj(NODE_4X4096);
    sched_node empty = mk_node(a, true), busy = mk_node(a, true);
    busy.used.amount[API_RESOURCE_VCPUS] = 3;
    busy.used.amount[API_RESOURCE_MEMORY] = 3072;
    sched_request r = {.need = {{1, 512, 1}}};
    /* spread: the empty node wins; pack: the busy one */
    CHECK_INT(sched_score_node(&r, &empty, false), >, sched_score_node(&r, &busy, false));
    CHECK_INT(sched_score_node(&r, &busy, true), >, sched_score_node(&r, &empty, true));
    /* every score stays within 0..100 */
    CHECK_INT(sched_score_node(&r, &empty, false), <=, 100);

    sched_node flaky = mk_node(a, true), solid = mk_node(a, true);
    flaky.recent_failures = 3;
    CHECK_INT(sched_score_node(&r, &solid, false), >, sched_score_node(&r, &flaky, false));

    sched_request soft = {
        .need = {{1, 512, 1}}, .group_policy = "soft-anti-affinity", .group_placed = 2};
    sched_node with = mk_node(a, true), without = mk_node(a, true);
    with.group_members = 2;
    CHECK_INT(sched_score_node(&soft, &without, false), >, sched_score_node(&soft, &with, false));
    soft.group_policy = "soft-affinity";
    CHECK_INT(sched_score_node(&soft, &with, false), >, sched_score_node(&soft, &without, false));
    json_decref(a);
}

static void select_explains_rejections(void)
{
    json_t *a = node_obj(NODE_4X4096);
    json_t *b =
        node_obj("{\"metadata\":{\"name\":\"small\"},\"spec\":{},\"status\":{\"allocatable\":"
                 "{\"vcpus\":1,\"memoryMiB\":512,\"diskGiB\":10}}}");
    sched_node nodes[5] = {mk_node(a, true), mk_node(b, true), mk_node(b, true), mk_node(a, false),
                           mk_node(b, true)};
    nodes[0].used.amount[API_RESOURCE_MEMORY] = 4096;
    sched_request r = {.need = {{1, 1024, 1}}};
    sched_options o = {0};
    unsigned seed = 1;
    sched_verdict v;
    CHECK_INT(sched_select(&r, nodes, 5, &o, &seed, &v), ==, -1);
    char msg[256];
    sched_explain(&v, msg, sizeof(msg));
    CHECK_STR(msg, "0/5 nodes available: 4 insufficient memory, 1 not ready");

    /* once the full node has room it is the only choice */
    nodes[0].used.amount[API_RESOURCE_MEMORY] = 0;
    CHECK_INT(sched_select(&r, nodes, 5, &o, &seed, &v), ==, 0);

    /* equal nodes: ties are broken at random, so every one gets picked sometimes */
    sched_node same[3] = {mk_node(a, true), mk_node(a, true), mk_node(a, true)};
    int seen[3] = {0};
    for (int i = 0; i < 300; i++)
        seen[sched_select(&r, same, 3, &o, &seed, &v)]++;
    CHECK(seen[0] > 30 && seen[1] > 30 && seen[2] > 30);

    /* a cached image breaks ties, and only ties: an emptier cold node still wins */
    same[2].image_here = true;
    for (int i = 0; i < 50; i++)
        CHECK_INT(sched_select(&r, same, 3, &o, &seed, &v), ==, 2);
    same[2].used.amount[API_RESOURCE_VCPUS] = 2;
    same[2].used.amount[API_RESOURCE_MEMORY] = 2048;
    for (int i = 0; i < 50; i++)
        CHECK_INT(sched_select(&r, same, 3, &o, &seed, &v), !=, 2);

    /* this scheduler's share of the nodes breaks ties after the image, and only ties */
    sched_node share[4] = {mk_node(a, true), mk_node(a, true), mk_node(a, true), mk_node(a, true)};
    share[1].preferred = share[3].preferred = true;
    int picked[4] = {0};
    for (int i = 0; i < 200; i++)
        picked[sched_select(&r, share, 4, &o, &seed, &v)]++;
    CHECK_INT(picked[0] + picked[2], ==, 0);
    CHECK(picked[1] > 30 && picked[3] > 30); /* at random among the preferred */
    share[2].image_here = true;
    for (int i = 0; i < 50; i++)
        CHECK_INT(sched_select(&r, share, 4, &o, &seed, &v), ==, 2);
    share[2].image_here = false;
    share[1].used.amount[API_RESOURCE_MEMORY] = 2048;
    share[3].used.amount[API_RESOURCE_MEMORY] = 2048;
    for (int i = 0; i < 50; i++) {
        int at = sched_select(&r, share, 4, &o, &seed, &v);
        CHECK(at == 0 || at == 2); /* emptier nodes of other schedulers still win on score */
    }
    json_decref(a);
    json_decref(b);
}

/* With a memo, sched_select picks what it picks without one and gives the same reasons, over
 * requests alike and not (zones, architectures, tolerations, groups) and nodes filling up. */
static void memo_changes_no_pick(void)
{
    enum { N = 40 };
    json_t *objs[N];
    sched_node plain[N], memod[N];
    unsigned seed = 11;
    for (int i = 0; i < N; i++) {
        char doc[512];
        snprintf(doc, sizeof(doc),
                 "{\"metadata\":{\"name\":\"n%d\",\"labels\":{\"topology.stratus.io/zone\":"
                 "\"az%d\"}},\"spec\":{\"unschedulable\":%s%s},\"status\":{\"allocatable\":"
                 "{\"vcpus\":%d,\"memoryMiB\":%d,\"diskGiB\":100},\"nodeInfo\":"
                 "{\"architecture\":\"%s\"}}}",
                 i, i % 3, i % 13 == 0 ? "true" : "false",
                 i % 7 == 0 ? ",\"taints\":[{\"key\":\"gpu\",\"effect\":\"NoSchedule\"}]" : "",
                 4 + rand_r(&seed) % 16, 4096 << (rand_r(&seed) % 3), i % 5 ? "x86_64" : "aarch64");
        objs[i] = node_obj(doc);
        plain[i] = mk_node(objs[i], i % 11 != 0);
        plain[i].recent_failures = i % 9 == 0;
        plain[i].preferred = i % 2;
        memod[i] = plain[i];
    }
    json_t *tolerate = json_loads("[{\"key\":\"gpu\",\"operator\":\"Exists\"}]", 0, NULL);
    sched_memo memo = {0};
    sched_options without = {0}, with = {.memo = &memo};
    unsigned s1 = 5, s2 = 5;
    size_t placed = 0, memoizable = 0;
    for (int step = 0; step < 600; step++) {
        int kind = rand_r(&seed) % 10;
        sched_request r = {.need = {{1 + (kind % 2), 512 << (kind % 2), 5}}};
        if (kind == 2)
            r.zone = "az1";
        if (kind == 3)
            r.arch = "aarch64";
        if (kind == 4)
            r.tolerations = tolerate;
        if (kind == 5) {
            r.group_policy = "soft-anti-affinity";
            for (int i = 0; i < N; i++)
                plain[i].group_members = memod[i].group_members = (size_t)(i % 3);
        }
        memoizable += kind != 4 && kind != 5;
        for (int i = 0; i < N; i++)
            plain[i].image_here = memod[i].image_here = (i + step) % 4 == 0;
        sched_verdict v1, v2;
        int a = sched_select(&r, plain, N, &without, &s1, &v1);
        int b = sched_select(&r, memod, N, &with, &s2, &v2);
        CHECK_INT(a, ==, b);
        CHECK(memcmp(&v1, &v2, sizeof(v1)) == 0);
        if (a < 0)
            continue;
        placed++;
        for (int k = 0; k < _API_RESOURCE_MAX; k++)
            plain[a].used.amount[k] = memod[a].used.amount[k] += r.need.amount[k];
        sched_memo_forget(&memo, (size_t)a);
    }
    CHECK(placed > 100 && memoizable > 300);
    sched_memo_done(&memo);
    json_decref(tolerate);
    for (int i = 0; i < N; i++)
        json_decref(objs[i]);
}

/* An empty architecture is none for the filter as for the memo: a request with arch "" picks
 * the same node whether or not the memo holds verdicts of one without an architecture. */
static void memo_empty_arch(void)
{
    json_t *o = node_obj("{\"metadata\":{\"name\":\"n0\"},\"status\":{\"allocatable\":"
                         "{\"vcpus\":8,\"memoryMiB\":8192,\"diskGiB\":100},\"nodeInfo\":"
                         "{\"architecture\":\"x86_64\"}}}");
    sched_node nodes[1] = {mk_node(o, true)};
    sched_memo memo = {0};
    sched_options without = {0}, with = {.memo = &memo};
    unsigned s1 = 1, s2 = 1;
    sched_verdict v;
    sched_request plain = {.need = {{1, 512, 1}}}, empty = {.need = {{1, 512, 1}}, .arch = ""};
    CHECK_INT(sched_select(&plain, nodes, 1, &with, &s2, &v), ==, 0);
    int a = sched_select(&empty, nodes, 1, &without, &s1, &v);
    int b = sched_select(&empty, nodes, 1, &with, &s2, &v);
    CHECK_INT(a, ==, 0);
    CHECK_INT(a, ==, b);
    sched_memo_done(&memo);
    json_decref(o);
}

CHECK_MAIN(CASE(memo_empty_arch), CASE(filters_on_table_cases), CASE(scores_prefer_the_right_nodes),
           CASE(select_explains_rejections), CASE(memo_changes_no_pick))
