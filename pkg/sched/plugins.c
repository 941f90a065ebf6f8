/* The filter and score plugins, and the selection over them. Adding a plugin is one function
 * and one row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/object.h"
#include "base/alloc.h"
#include "base/macro.h"
#include "sched/sched.h"

/* ---- filters */

static bool condition_false(const json_t *obj, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach (api_json_lookup(obj, "status.conditions"), i, c) {
        const char *t = json_string_value(json_object_get(c, "type"));
        const char *st = json_string_value(json_object_get(c, "status"));
        if (t && st && streq(t, type))
            return streq(st, "False");
    }
    return false;
}

void sched_node_init(sched_node *n, const json_t *obj, bool lease_alive)
{
    *n = (sched_node){
        .name = api_object_name(obj),
        .obj = obj,
        .lease_alive = lease_alive,
        .not_ready = condition_false(obj, "Ready"),
        .unschedulable = json_is_true(api_json_lookup(obj, "spec.unschedulable")),
        .zone = json_string_value(json_object_get(api_object_labels(obj), SCHED_ZONE_LABEL)),
        .taints = api_json_lookup(obj, "spec.taints"),
        .arch = json_string_value(api_json_lookup(obj, "status.nodeInfo.architecture")),
    };
    api_node_capacity_of(obj, &n->cap);
}

const char *sched_image_arch(const json_t *image)
{
    return json_string_value(api_json_lookup(image, "spec.properties.architecture"));
}

static bool fits_ready(const sched_request *r, const sched_node *n)
{
    return n->lease_alive && !n->not_ready;
}

static bool fits_schedulable(const sched_request *r, const sched_node *n)
{
    return !n->unschedulable;
}

static bool fits_forced_node(const sched_request *r, const sched_node *n)
{
    return !r->forced_node || streq(r->forced_node, n->name);
}

static bool fits_volume_node(const sched_request *r, const sched_node *n)
{
    return !r->volumes_apart && (!r->volume_node || (n->name && streq(r->volume_node, n->name)));
}

static bool fits_zone(const sched_request *r, const sched_node *n)
{
    if (!r->zone || !*r->zone)
        return true;
    return n->zone && streq(n->zone, r->zone);
}

static bool tolerated(const json_t *tolerations, const json_t *taint)
{
    const char *key = json_string_value(json_object_get(taint, "key"));
    const char *value = json_string_value(json_object_get(taint, "value"));
    const char *effect = json_string_value(json_object_get(taint, "effect"));
    size_t i;
    json_t *t;
    json_array_foreach (tolerations, i, t) {
        const char *tk = json_string_value(json_object_get(t, "key"));
        const char *op = json_string_value(json_object_get(t, "operator"));
        const char *tv = json_string_value(json_object_get(t, "value"));
        const char *te = json_string_value(json_object_get(t, "effect"));
        if (te && effect && !streq(te, effect))
            continue;
        if (!tk) /* an empty key with Exists tolerates everything */
            return op && streq(op, "Exists");
        if (!key || !streq(tk, key))
            continue;
        if (op && streq(op, "Exists"))
            return true;
        if (streq(tv ? tv : "", value ? value : ""))
            return true;
    }
    return false;
}

static bool fits_taints(const sched_request *r, const sched_node *n)
{
    size_t i;
    json_t *taint;
    json_array_foreach (n->taints, i, taint)
        if (!tolerated(r->tolerations, taint))
            return false;
    return true;
}

static bool fits_not_failed_before(const sched_request *r, const sched_node *n)
{
    for (size_t i = 0; i < r->n_failed; i++)
        if (streq(r->failed_nodes[i], n->name))
            return false;
    return true;
}

static bool fits_image_arch(const sched_request *r, const sched_node *n)
{
    return !r->arch || !*r->arch || !n->arch || streq(r->arch, n->arch);
}

static bool fits_resource(const sched_request *r, const sched_node *n, api_resource res)
{
    return n->used.amount[res] + r->need.amount[res] <= n->cap.limit[res];
}

static bool fits_vcpus(const sched_request *r, const sched_node *n)
{
    return fits_resource(r, n, API_RESOURCE_VCPUS);
}

static bool fits_memory(const sched_request *r, const sched_node *n)
{
    return fits_resource(r, n, API_RESOURCE_MEMORY);
}

static bool fits_disk(const sched_request *r, const sched_node *n)
{
    return fits_resource(r, n, API_RESOURCE_DISK);
}

static bool fits_anti_affinity(const sched_request *r, const sched_node *n)
{
    if (!r->group_policy || !streq(r->group_policy, "anti-affinity"))
        return true;
    return n->group_members < (size_t)(r->max_per_node > 0 ? r->max_per_node : 1);
}

static bool fits_affinity(const sched_request *r, const sched_node *n)
{
    if (!r->group_policy || !streq(r->group_policy, "affinity") || r->group_placed == 0)
        return true;
    return n->group_members > 0;
}

/* When each filter can reject anything at all (see sched_filter.applies). */
static bool has_forced_node(const sched_request *r)
{
    return r->forced_node;
}

static bool has_volumes(const sched_request *r)
{
    return r->volumes_apart || r->volume_node;
}

static bool has_zone(const sched_request *r)
{
    return r->zone && *r->zone;
}

static bool has_failed(const sched_request *r)
{
    return r->n_failed > 0;
}

/* An empty architecture is none, as an empty zone is (and as the memo keys them). */
static bool has_arch(const sched_request *r)
{
    return r->arch && *r->arch;
}

static bool has_anti_affinity(const sched_request *r)
{
    return r->group_policy && streq(r->group_policy, "anti-affinity");
}

static bool has_affinity(const sched_request *r)
{
    return r->group_policy && streq(r->group_policy, "affinity") && r->group_placed > 0;
}

const sched_filter sched_filters[] = {
    {"NodeReady", "not ready", fits_ready, NULL},
    {"NodeSchedulable", "unschedulable", fits_schedulable, NULL},
    {"ForcedNode", "not the requested node", fits_forced_node, has_forced_node},
    {"VolumeNode", "not where its volumes are", fits_volume_node, has_volumes},
    {"AvailabilityZone", "in another availability zone", fits_zone, has_zone},
    {"Taints", "untolerated taint", fits_taints, NULL},
    {"FailedBefore", "already failed this instance", fits_not_failed_before, has_failed},
    {"ImageArchitecture", "wrong architecture for the image", fits_image_arch, has_arch},
    {"FitsVcpus", "insufficient vcpus", fits_vcpus, NULL},
    {"FitsMemory", "insufficient memory", fits_memory, NULL},
    {"FitsDisk", "insufficient disk", fits_disk, NULL},
    {"AntiAffinity", "anti-affinity", fits_anti_affinity, has_anti_affinity},
    {"Affinity", "affinity", fits_affinity, has_affinity},
};
const size_t sched_n_filters = ELEMENTSOF(sched_filters);

/* ---- scores */

static unsigned score_resources(const sched_request *r, const sched_node *n, bool pack)
{
    /* The share of vcpus and memory left after placing, averaged: high = room to spare. */
    double free_share = 0;
    api_resource rs[] = {API_RESOURCE_VCPUS, API_RESOURCE_MEMORY};
    for (size_t i = 0; i < ELEMENTSOF(rs); i++) {
        int64_t limit = n->cap.limit[rs[i]];
        int64_t left = limit - n->used.amount[rs[i]] - r->need.amount[rs[i]];
        free_share += limit > 0 ? (double)MAX(left, 0) / (double)limit : 0;
    }
    unsigned spread = (unsigned)(free_share / 2 * 100 + 0.5);
    return pack ? 100 - spread : spread;
}

static unsigned score_soft_affinity(const sched_request *r, const sched_node *n, bool pack)
{
    if (!r->group_policy)
        return 50;
    if (streq(r->group_policy, "soft-anti-affinity"))
        return 100 / (1 + (unsigned)n->group_members);
    if (streq(r->group_policy, "soft-affinity"))
        return r->group_placed ? 100 * (unsigned)n->group_members / (unsigned)r->group_placed : 50;
    return 50;
}

static unsigned score_recent_failures(const sched_request *r, const sched_node *n, bool pack)
{
    return 100 / (1 + n->recent_failures);
}

/* A node where the instance's image is cached already (no download) is not a score: it breaks
 * ties between nodes that score the same (sched_select). As a weighted score it outweighed the
 * spread — at 1,000 nodes, 10,000 instances went to 158 of them, and even scaled by how widely
 * the image is cached (kube-scheduler's ImageLocality) 180 nodes never got one, because each
 * node that gets its first instance makes the bonus of all warm nodes larger. */
static bool has_soft_group(const sched_request *r)
{
    return r->group_policy && (streq(r->group_policy, "soft-anti-affinity") ||
                               streq(r->group_policy, "soft-affinity"));
}

const sched_score sched_scores[] = {
    {"Resources", 3, score_resources, NULL},
    {"SoftAffinity", 2, score_soft_affinity, has_soft_group},
    {"RecentFailures", 2, score_recent_failures, NULL},
};
const size_t sched_n_scores = ELEMENTSOF(sched_scores);

/* ---- selection */

int sched_filter_node(const sched_request *r, const sched_node *n)
{
    for (size_t i = 0; i < sched_n_filters; i++)
        if (!sched_filters[i].fits(r, n))
            return (int)i;
    return -1;
}

unsigned sched_score_node(const sched_request *r, const sched_node *n, bool pack)
{
    unsigned total = 0, weights = 0;
    for (size_t i = 0; i < sched_n_scores; i++) {
        unsigned s = sched_scores[i].score(r, n, pack);
        total += MIN(s, 100u) * sched_scores[i].weight;
        weights += sched_scores[i].weight;
    }
    return weights ? total / weights : 0;
}

/* Between nodes of one score: a warm image cache first, then this scheduler's share. */
static int tie_rank(const sched_node *n)
{
    return 2 * n->image_here + n->preferred;
}

void sched_memo_reset(sched_memo *m)
{
    m->n = 0;
}

void sched_memo_forget(sched_memo *m, size_t i)
{
    if (i < m->n)
        m->known[i] = false;
}

void sched_memo_done(sched_memo *m)
{
    free(m->verdict);
    free(m->score);
    free(m->known);
    *m = (sched_memo){0};
}

static bool copy_short(char *dst, size_t size, const char *s)
{
    if (!s)
        s = "";
    if (strlen(s) >= size)
        return false;
    strcpy(dst, s);
    return true;
}

static bool same_short(const char *held, const char *s)
{
    return streq(held, s ? s : "");
}

/* Whether every field of r that a filter or score reads is one the memo compares. An empty
 * zone or arch reads as none, as fits_zone and fits_image_arch do. */
static bool memo_can_hold(const sched_request *r)
{
    return !r->forced_node && !r->volume_node && !r->volumes_apart &&
           json_array_size(r->tolerations) == 0 && r->n_failed == 0 && !r->group_policy &&
           (!r->arch || strlen(r->arch) < sizeof(((sched_memo *)0)->arch)) &&
           (!r->zone || strlen(r->zone) < sizeof(((sched_memo *)0)->zone));
}

/* Makes m hold results for r over n nodes: kept when it held them already, else forgotten.
 * Returns false when r cannot be held (m is left as it was, for the next request). */
static bool memo_take(sched_memo *m, const sched_request *r, size_t n, bool pack)
{
    if (!memo_can_hold(r))
        return false;
    if (m->n == n && m->pack == pack && memcmp(&m->need, &r->need, sizeof(r->need)) == 0 &&
        same_short(m->arch, r->arch) && same_short(m->zone, r->zone))
        return true;
    if (n > m->allocated) {
        m->verdict = xrealloc(m->verdict, n * sizeof(*m->verdict));
        m->score = xrealloc(m->score, n * sizeof(*m->score));
        m->known = xrealloc(m->known, n * sizeof(*m->known));
        m->allocated = n;
    }
    copy_short(m->arch, sizeof(m->arch), r->arch);
    copy_short(m->zone, sizeof(m->zone), r->zone);
    m->need = r->need;
    m->pack = pack;
    m->n = n;
    memset(m->known, 0, n * sizeof(*m->known));
    return true;
}

int sched_select(const sched_request *r, const sched_node *nodes, size_t n, const sched_options *o,
                 unsigned *seed, sched_verdict *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->n_nodes = n;
    if (n == 0)
        return -1;
    /* Only the filters this request can fail, in table order (the first that rejects a node is
     * its reason, as in sched_filter_node): 6 of 13 for a plain instance. */
    bool (*fits[ELEMENTSOF(sched_filters)])(const sched_request *, const sched_node *);
    size_t active[ELEMENTSOF(sched_filters)], n_active = 0;
    for (size_t f = 0; f < sched_n_filters; f++)
        if (!sched_filters[f].applies || sched_filters[f].applies(r)) {
            fits[n_active] = sched_filters[f].fits;
            active[n_active++] = f;
        }
    /* The scores that are the same on every node for this request, summed once: the total is
     * the one sched_score_node computes. */
    const sched_score *varying[ELEMENTSOF(sched_scores)];
    size_t n_varying = 0;
    unsigned fixed = 0, weights = 0;
    for (size_t k = 0; k < sched_n_scores; k++) {
        weights += sched_scores[k].weight;
        if (!sched_scores[k].varies || sched_scores[k].varies(r))
            varying[n_varying++] = &sched_scores[k];
        else
            fixed +=
                MIN(sched_scores[k].score(r, &nodes[0], o->pack), 100u) * sched_scores[k].weight;
    }
    sched_memo *m = o->memo && memo_take(o->memo, r, n, o->pack) ? o->memo : NULL;
    int best = -1;
    unsigned best_score = 0, ties = 0;
    for (size_t i = 0; i < n; i++) {
        const sched_node *node = &nodes[i];
        int verdict = -1;
        unsigned s = 0;
        if (m && m->known[i]) {
            verdict = m->verdict[i];
            s = m->score[i];
        } else {
            size_t k = 0;
            while (k < n_active && fits[k](r, node))
                k++;
            if (k < n_active)
                verdict = (int)active[k];
            else {
                unsigned total = fixed;
                for (size_t v = 0; v < n_varying; v++)
                    total += MIN(varying[v]->score(r, node, o->pack), 100u) * varying[v]->weight;
                s = weights ? total / weights : 0;
            }
            if (m) {
                m->verdict[i] = verdict;
                m->score[i] = s;
                m->known[i] = true;
            }
        }
        if (verdict >= 0) {
            ret->rejected[verdict]++;
            continue;
        }
        if (best < 0 || s > best_score ||
            (s == best_score && tie_rank(node) > tie_rank(&nodes[best]))) {
            best = (int)i;
            best_score = s;
            ties = 1;
        } else if (s == best_score && tie_rank(node) == tie_rank(&nodes[best]) &&
                   (unsigned)rand_r(seed) % ++ties == 0) {
            best = (int)i; /* reservoir choice: each of the equals equally likely */
        }
    }
    return best;
}

typedef struct reason_count {
    const char *reason;
    size_t count;
} reason_count;

static int by_count(const void *a, const void *b)
{
    const reason_count *x = a, *y = b;
    return x->count < y->count ? 1 : x->count > y->count ? -1 : strcmp(x->reason, y->reason);
}

void sched_explain(const sched_verdict *v, char *out, size_t size)
{
    reason_count rc[ELEMENTSOF(v->rejected)];
    size_t n = 0;
    for (size_t i = 0; i < sched_n_filters; i++)
        if (v->rejected[i])
            rc[n++] = (reason_count){sched_filters[i].reason, v->rejected[i]};
    qsort(rc, n, sizeof(rc[0]), by_count);
    int off = snprintf(out, size, "0/%zu nodes available", v->n_nodes);
    for (size_t i = 0; i < n && off > 0 && (size_t)off < size; i++)
        off += snprintf(out + off, size - (size_t)off, "%s %zu %s", i ? "," : ":", rc[i].count,
                        rc[i].reason);
}
