/* Unit tests for pkg/sched's cache: what it counts after any sequence of changes (instances
 * bound, moved, given back, deleted; nodes and leases coming and going) equals what a cache built
 * from scratch out of the final state counts, and what a batch's view reads from it equals a
 * count done by hand. */
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "check.h"
#include "sched/cache.h"

#define N_NODES     12
#define N_INSTANCES 60

static json_t *node_obj(int i, int version)
{
    json_t *o = json_pack("{s:{s:s+, s:s+}, s:{}, s:{s:{s:i, s:i, s:i}}}", "metadata", "name", "n",
                          (char[]){(char)('a' + i), 0}, "resourceVersion", "1",
                          (char[]){(char)('0' + version % 10), 0}, "spec", "status", "allocatable",
                          "vcpus", 16, "memoryMiB", 65536, "diskGiB", 1000);
    if (!o)
        abort();
    return o;
}

static const char *node_name(int i)
{
    static const char *names[N_NODES + 2] = {"na", "nb", "nc", "nd", "ne", "nf", "ng",
                                             "nh", "ni", "nj", "nk", "nl", "nm", "nn"};
    return names[i];
}

/* The state the changes leave, kept the plain way. */
typedef struct world {
    json_t *nodes[N_NODES];
    bool lease[N_NODES];
    bool bound[N_INSTANCES];
    int node[N_INSTANCES]; /* may be N_NODES or N_NODES + 1: a node with no object */
    int flavor[N_INSTANCES];
    int image[N_INSTANCES]; /* -1: none */
    int group[N_INSTANCES]; /* -1: none */
} world;

static const char *const images[] = {"cirros", "debian", "fedora"};
static const char *const groups[] = {"ns1/web", "ns1/db", "ns2/web"};

static void claim_of(const world *w, int i, sched_claim *c)
{
    *c = (sched_claim){
        .node = node_name(w->node[i]),
        .need = {{1 + w->flavor[i], 1024 << w->flavor[i], 10 * (1 + w->flavor[i])}},
        .image = w->image[i] >= 0 ? images[w->image[i]] : NULL,
        .group = w->group[i] >= 0 ? groups[w->group[i]] : NULL,
    };
}

static void set_instance(sched_cache *c, const world *w, int i)
{
    char key[32];
    snprintf(key, sizeof(key), "ns/i%d", i);
    sched_claim claim;
    claim_of(w, i, &claim);
    sched_cache_set_claim(c, key, w->bound[i] ? &claim : NULL);
}

static sched_cache *from_scratch(const world *w)
{
    sched_cache *c = sched_cache_new();
    for (int i = 0; i < N_INSTANCES; i++)
        set_instance(c, w, i);
    for (int n = 0; n < N_NODES; n++) {
        sched_cache_set_node(c, node_name(n), w->nodes[n]);
        sched_cache_set_lease(c, node_name(n), w->lease[n]);
    }
    return c;
}

static void check_same(sched_cache *a, sched_cache *b)
{
    json_t *da = sched_cache_dump(a), *db = sched_cache_dump(b);
    CHECK_INT(sched_cache_equal(a, b), ==, json_equal(da, db));
    CHECK_INT(sched_cache_equal(b, a), ==, json_equal(da, db));
    if (!json_equal(da, db)) {
        char *x = json_dumps(da, JSON_SORT_KEYS | JSON_COMPACT);
        char *y = json_dumps(db, JSON_SORT_KEYS | JSON_COMPACT);
        check_fail(__FILE__, __LINE__, "incremental:\n%s\nfrom scratch:\n%s", x, y);
    }
    json_decref(da);
    json_decref(db);
}

/* The view against a count by hand, for every image and group. */
static void check_view(sched_cache *c, const world *w)
{
    sched_view v = {0};
    sched_cache_view(c, &v);
    size_t listed = 0;
    for (int n = 0; n < N_NODES; n++)
        listed += w->nodes[n] != NULL;
    CHECK_INT(v.n, ==, listed);
    for (size_t k = 0; k < v.n; k++) {
        int n = 0;
        while (n < N_NODES && !streq(node_name(n), v.nodes[k].name))
            n++;
        CHECK(n < N_NODES && w->nodes[n]);
        CHECK_INT(v.nodes[k].lease_alive, ==, w->lease[n]);
        api_resources used = {{0}};
        size_t count = 0;
        for (int i = 0; i < N_INSTANCES; i++) {
            if (!w->bound[i] || w->node[i] != n)
                continue;
            sched_claim claim;
            claim_of(w, i, &claim);
            for (int r = 0; r < _API_RESOURCE_MAX; r++)
                used.amount[r] += claim.need.amount[r];
            count++;
        }
        CHECK(memcmp(&used, &v.nodes[k].used, sizeof(used)) == 0);
        CHECK_INT(v.nodes[k].n_instances, ==, count);
        CHECK_INT(v.nodes[k].cap.limit[API_RESOURCE_VCPUS], ==, 16);
    }
    for (int im = -1; im < 3; im++)
        for (int g = -1; g < 3; g++) {
            size_t placed =
                sched_cache_view_for(c, &v, im >= 0 ? images[im] : NULL, g >= 0 ? groups[g] : NULL);
            size_t want_placed = 0;
            for (size_t k = 0; k < v.n; k++) {
                bool image_here = false;
                size_t members = 0;
                for (int i = 0; i < N_INSTANCES; i++) {
                    if (!w->bound[i] || !streq(node_name(w->node[i]), v.nodes[k].name))
                        continue;
                    image_here |= im >= 0 && w->image[i] == im;
                    members += g >= 0 && w->group[i] == g;
                }
                CHECK_INT(v.nodes[k].image_here, ==, image_here);
                CHECK_INT(v.nodes[k].group_members, ==, members);
                want_placed += members;
            }
            CHECK_INT(placed, ==, want_placed); /* members on nodes with no object do not count */
        }
    sched_view_done(&v);
}

static void world_free(world *w)
{
    for (int n = 0; n < N_NODES; n++)
        json_decref(w->nodes[n]);
}

static void random_changes_equal_from_scratch(void)
{
    unsigned seed = 7;
    for (int round = 0; round < 20; round++) {
        world w = {0};
        sched_cache *c = sched_cache_new();
        for (int step = 0; step < 3000; step++) {
            int what = rand_r(&seed) % 10;
            int i = rand_r(&seed) % N_INSTANCES, n = rand_r(&seed) % N_NODES;
            switch (what) {
            case 0: /* a node's object: new, changed (heartbeat), or gone */
                json_decref(w.nodes[n]);
                w.nodes[n] = rand_r(&seed) % 3 ? node_obj(n, step) : NULL;
                sched_cache_set_node(c, node_name(n), w.nodes[n]);
                break;
            case 1:
                w.lease[n] = rand_r(&seed) % 2;
                sched_cache_set_lease(c, node_name(n), w.lease[n]);
                break;
            case 2: /* given back, deleted, or an assumption reverted */
                w.bound[i] = false;
                set_instance(c, &w, i);
                break;
            case 3: /* the same again: a status change of a bound instance */
                set_instance(c, &w, i);
                break;
            default: /* bound, assumed, or moved; sometimes to a node with no object */
                w.bound[i] = true;
                w.node[i] = rand_r(&seed) % 8 ? n : N_NODES + rand_r(&seed) % 2;
                w.flavor[i] = rand_r(&seed) % 3;
                w.image[i] = rand_r(&seed) % 4 - 1;
                w.group[i] = rand_r(&seed) % 4 - 1;
                set_instance(c, &w, i);
                break;
            }
            if (step % 500 == 499) {
                sched_cache *fresh = from_scratch(&w);
                check_same(c, fresh);
                sched_cache_free(fresh);
                check_view(c, &w);
            }
        }
        /* everything gone: nothing is left to say */
        for (int i = 0; i < N_INSTANCES; i++) {
            w.bound[i] = false;
            set_instance(c, &w, i);
        }
        for (int n = 0; n < N_NODES; n++) {
            sched_cache_set_node(c, node_name(n), NULL);
            sched_cache_set_lease(c, node_name(n), false);
        }
        json_t *d = sched_cache_dump(c);
        CHECK_INT(json_object_size(json_object_get(d, "nodes")), ==, 0);
        CHECK_INT(json_object_size(json_object_get(d, "claims")), ==, 0);
        json_decref(d);
        sched_cache_free(c);
        world_free(&w);
    }
}

/* A node's facts follow its object and lease; what is counted on it stays when it goes. */
static void node_facts_follow_object_and_lease(void)
{
    sched_cache *c = sched_cache_new();
    sched_claim claim = {.node = "na", .need = {{2, 2048, 20}}, .image = "cirros"};
    sched_cache_set_claim(c, "ns/i1", &claim);
    sched_view v = {0};
    sched_cache_view(c, &v);
    CHECK_INT(v.n, ==, 0); /* no object: not a node to place on */
    json_t *o = node_obj(0, 1);
    sched_cache_set_node(c, "na", o);
    sched_cache_view(c, &v);
    CHECK_INT(v.n, ==, 1);
    CHECK(!v.nodes[0].lease_alive);
    CHECK_INT(v.nodes[0].used.amount[API_RESOURCE_VCPUS], ==, 2);
    sched_cache_set_lease(c, "na", true);
    sched_cache_view(c, &v);
    CHECK(v.nodes[0].lease_alive);
    sched_cache_set_node(c, "na", NULL);
    sched_cache_view(c, &v);
    CHECK_INT(v.n, ==, 0);
    sched_cache_set_node(c, "na", o);
    sched_cache_view(c, &v);
    CHECK_INT(v.n, ==, 1);
    CHECK(v.nodes[0].lease_alive);
    CHECK_INT(v.nodes[0].n_instances, ==, 1);
    /* a claim moved within a batch: the view is refreshed for that node */
    CHECK_INT(sched_cache_view_for(c, &v, "debian", "ns/g"), ==, 0);
    CHECK(!v.nodes[0].image_here);
    claim.need.amount[API_RESOURCE_VCPUS] = 5;
    claim.image = "debian";
    claim.group = "ns/g";
    sched_cache_set_claim(c, "ns/i2", &claim);
    CHECK(!v.nodes[0].image_here);
    sched_cache_view_for_node(c, &v, 0, "debian", "ns/g");
    CHECK(v.nodes[0].image_here);
    CHECK_INT(v.nodes[0].group_members, ==, 1);
    CHECK_INT(v.nodes[0].used.amount[API_RESOURCE_VCPUS], ==, 2);
    sched_cache_view_refresh(c, &v, 0);
    CHECK_INT(v.nodes[0].used.amount[API_RESOURCE_VCPUS], ==, 7);
    CHECK_INT(v.nodes[0].n_instances, ==, 2);
    sched_view_done(&v);
    sched_cache_free(c);
    json_decref(o);
}

/* sched_cache_equal tells apart caches that differ in any one thing it compares. */
static void equal_sees_differences(void)
{
    json_t *o1 = node_obj(0, 1), *o2 = node_obj(0, 2);
    sched_claim claim = {.node = "na", .need = {{2, 2048, 20}}, .image = "cirros", .group = "ns/g"};
    for (int change = 0; change < 7; change++) {
        sched_cache *a = sched_cache_new(), *b = sched_cache_new();
        sched_cache *both[2] = {a, b};
        for (int k = 0; k < 2; k++) {
            sched_cache_set_node(both[k], "na", o1);
            sched_cache_set_lease(both[k], "na", true);
            sched_cache_set_claim(both[k], "ns/i1", &claim);
        }
        CHECK(sched_cache_equal(a, b));
        sched_claim other = claim;
        switch (change) {
        case 0:
            sched_cache_set_node(b, "na", o2);
            break;
        case 1:
            sched_cache_set_lease(b, "na", false);
            break;
        case 2:
            other.need.amount[API_RESOURCE_DISK]++;
            sched_cache_set_claim(b, "ns/i1", &other);
            break;
        case 3:
            other.image = "debian";
            sched_cache_set_claim(b, "ns/i1", &other);
            break;
        case 4:
            other.group = NULL;
            sched_cache_set_claim(b, "ns/i1", &other);
            break;
        case 5:
            other.node = "nb";
            sched_cache_set_claim(b, "ns/i1", &other);
            break;
        case 6:
            sched_cache_set_claim(b, "ns/i2", &other);
            break;
        }
        CHECK(!sched_cache_equal(a, b));
        CHECK(!sched_cache_equal(b, a));
        sched_cache_free(a);
        sched_cache_free(b);
    }
    json_decref(o1);
    json_decref(o2);
}

CHECK_MAIN(CASE(random_changes_equal_from_scratch), CASE(node_facts_follow_object_and_lease),
           CASE(equal_sees_differences))
