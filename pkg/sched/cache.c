/* The scheduler's cache (see cache.h). Nodes live in slots, numbered once per name and reused
 * when a slot has nothing left to say (no object, no lease, nothing counted), so that the counts
 * per image and per server group are arrays indexed by slot: a request reads them once per node
 * without looking a name up. Names map to numbers through jansson objects, touched once per
 * change, never per node of a batch. */
#include "sched/cache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "api/object.h"
#include "base/alloc.h"

/* Indexes freed in an array, to reuse. */
typedef struct free_ids {
    size_t *ids;
    size_t n, allocated;
} free_ids;

static void free_ids_push(free_ids *f, size_t id)
{
    f->ids = xgrow(f->ids, &f->allocated, f->n + 1, sizeof(size_t));
    f->ids[f->n++] = id;
}

static bool free_ids_pop(free_ids *f, size_t *ret)
{
    if (f->n == 0)
        return false;
    *ret = f->ids[--f->n];
    return true;
}

typedef struct node_slot {
    char *name; /* NULL: free */
    json_t *obj;
    bool lease_alive;
    sched_node node; /* from obj and lease_alive, when obj */
    api_resources used;
    size_t n_instances;
} node_slot;

/* Instances of one image, or members of one server group, per node slot. */
typedef struct tally {
    char *name; /* NULL: free */
    size_t *here;
    size_t allocated; /* entries of here; slots beyond count 0 */
    size_t total;
} tally;

typedef struct tallies {
    tally *items;
    size_t n, allocated;
    json_t *ids; /* name → index */
    free_ids free;
} tallies;

typedef struct claim {
    char *key; /* NULL: free */
    uint32_t slot;
    api_resources need;
    ssize_t image, group; /* tally indexes, or -1 */
} claim;

struct sched_cache {
    node_slot *slots;
    size_t n_slots, slots_allocated;
    json_t *slot_ids; /* node name → slot */
    free_ids free_slots;
    tallies images, groups;
    claim *claims;
    size_t n_claims, claims_allocated;
    json_t *claim_ids; /* instance key → claim */
    free_ids free_claims;
};

/* ---- names to numbers */

static ssize_t id_get(const json_t *ids, const char *name)
{
    json_t *id = name ? json_object_get(ids, name) : NULL;
    return id ? (ssize_t)json_integer_value(id) : -1;
}

/* ---- tallies */

static ssize_t tally_id(tallies *t, const char *name, bool add)
{
    ssize_t id = id_get(t->ids, name);
    if (id >= 0 || !add || !name)
        return id;
    size_t i;
    if (!free_ids_pop(&t->free, &i)) {
        t->items = xgrow(t->items, &t->allocated, t->n + 1, sizeof(tally));
        i = t->n++;
    }
    id = (ssize_t)i;
    t->items[id] = (tally){.name = xstrdup(name)};
    json_object_set_new(t->ids, name, json_integer(id));
    return id;
}

static size_t tally_at(const tallies *t, ssize_t id, uint32_t slot)
{
    if (id < 0)
        return 0;
    const tally *x = &t->items[id];
    return slot < x->allocated ? x->here[slot] : 0;
}

static void tally_add(tallies *t, ssize_t id, uint32_t slot, int delta)
{
    if (id < 0)
        return;
    tally *x = &t->items[id];
    if (slot >= x->allocated) {
        size_t was = x->allocated;
        x->here = xgrow(x->here, &x->allocated, (size_t)slot + 1, sizeof(size_t));
        memset(x->here + was, 0, (x->allocated - was) * sizeof(size_t));
    }
    x->here[slot] += (size_t)delta;
    x->total += (size_t)delta;
    if (x->total == 0) { /* nothing of it counted anywhere: the name may go */
        json_object_del(t->ids, x->name);
        free(x->name);
        free(x->here);
        *x = (tally){0};
        free_ids_push(&t->free, (size_t)id);
    }
}

static void tallies_done(tallies *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->items[i].name);
        free(t->items[i].here);
    }
    free(t->items);
    free(t->free.ids);
    json_decref(t->ids);
}

/* ---- node slots */

static uint32_t slot_get(sched_cache *c, const char *name)
{
    ssize_t id = id_get(c->slot_ids, name);
    if (id >= 0)
        return (uint32_t)id;
    size_t i;
    if (!free_ids_pop(&c->free_slots, &i)) {
        c->slots = xgrow(c->slots, &c->slots_allocated, c->n_slots + 1, sizeof(node_slot));
        i = c->n_slots++;
    }
    id = (ssize_t)i;
    c->slots[id] = (node_slot){.name = xstrdup(name)};
    json_object_set_new(c->slot_ids, name, json_integer(id));
    return (uint32_t)id;
}

/* Frees the slot when nothing is left in it (its tallies are 0 there: nothing is counted). */
static void slot_release_if_empty(sched_cache *c, uint32_t id)
{
    node_slot *s = &c->slots[id];
    if (s->obj || s->lease_alive || s->n_instances)
        return;
    json_object_del(c->slot_ids, s->name);
    free(s->name);
    *s = (node_slot){0};
    free_ids_push(&c->free_slots, id);
}

static void slot_refresh_node(node_slot *s)
{
    if (s->obj)
        sched_node_init(&s->node, s->obj, s->lease_alive);
}

/* ---- the API */

sched_cache *sched_cache_new(void)
{
    sched_cache *c = xnew(sched_cache, 1);
    c->slot_ids = json_object();
    c->images.ids = json_object();
    c->groups.ids = json_object();
    c->claim_ids = json_object();
    return c;
}

sched_cache *sched_cache_free(sched_cache *c)
{
    if (!c)
        return NULL;
    for (size_t i = 0; i < c->n_slots; i++) {
        free(c->slots[i].name);
        json_decref(c->slots[i].obj);
    }
    free(c->slots);
    free(c->free_slots.ids);
    json_decref(c->slot_ids);
    tallies_done(&c->images);
    tallies_done(&c->groups);
    for (size_t i = 0; i < c->n_claims; i++)
        free(c->claims[i].key);
    free(c->claims);
    free(c->free_claims.ids);
    json_decref(c->claim_ids);
    free(c);
    return NULL;
}

static void claim_count(sched_cache *c, const claim *k, int sign)
{
    node_slot *s = &c->slots[k->slot];
    for (api_resource r = 0; r < _API_RESOURCE_MAX; r++)
        s->used.amount[r] += sign * k->need.amount[r];
    s->n_instances += (size_t)sign;
    tally_add(&c->images, k->image, k->slot, sign);
    tally_add(&c->groups, k->group, k->slot, sign);
}

static bool claim_is(const sched_cache *c, const claim *k, const sched_claim *to)
{
    return streq(c->slots[k->slot].name, to->node) &&
           memcmp(&k->need, &to->need, sizeof(k->need)) == 0 &&
           k->image == id_get(c->images.ids, to->image) &&
           k->group == id_get(c->groups.ids, to->group) && (k->image >= 0) == !!to->image &&
           (k->group >= 0) == !!to->group;
}

void sched_cache_set_claim(sched_cache *c, const char *key, const sched_claim *to)
{
    ssize_t id = id_get(c->claim_ids, key);
    claim *k = id >= 0 ? &c->claims[id] : NULL;
    if (k && to && to->node && claim_is(c, k, to))
        return; /* the usual update: a status change of a bound instance */
    if (k) {
        uint32_t slot = k->slot;
        claim_count(c, k, -1);
        slot_release_if_empty(c, slot);
    }
    if (!to || !to->node) {
        if (k) {
            json_object_del(c->claim_ids, key);
            free(k->key);
            *k = (claim){0};
            free_ids_push(&c->free_claims, (size_t)id);
        }
        return;
    }
    if (!k) {
        size_t i;
        if (!free_ids_pop(&c->free_claims, &i)) {
            c->claims = xgrow(c->claims, &c->claims_allocated, c->n_claims + 1, sizeof(claim));
            i = c->n_claims++;
        }
        id = (ssize_t)i;
        k = &c->claims[id];
        *k = (claim){.key = xstrdup(key)};
        json_object_set_new(c->claim_ids, key, json_integer(id));
    }
    k->slot = slot_get(c, to->node);
    k->need = to->need;
    k->image = tally_id(&c->images, to->image, true);
    k->group = tally_id(&c->groups, to->group, true);
    claim_count(c, k, +1);
}

void sched_cache_set_node(sched_cache *c, const char *name, json_t *obj)
{
    if (!name)
        return;
    if (!obj && id_get(c->slot_ids, name) < 0)
        return;
    uint32_t id = slot_get(c, name);
    node_slot *s = &c->slots[id];
    if (s->obj == obj)
        return;
    json_decref(s->obj);
    s->obj = json_incref(obj);
    slot_refresh_node(s);
    slot_release_if_empty(c, id);
}

void sched_cache_set_lease(sched_cache *c, const char *name, bool alive)
{
    if (!name)
        return;
    if (!alive && id_get(c->slot_ids, name) < 0)
        return;
    uint32_t id = slot_get(c, name);
    node_slot *s = &c->slots[id];
    if (s->lease_alive == alive)
        return;
    s->lease_alive = alive;
    slot_refresh_node(s);
    slot_release_if_empty(c, id);
}

static void view_copy(const node_slot *s, sched_node *n)
{
    *n = s->node;
    n->used = s->used;
    n->n_instances = s->n_instances;
}

void sched_cache_view(const sched_cache *c, sched_view *v)
{
    v->n = 0;
    if (v->allocated < c->n_slots) {
        v->allocated = c->n_slots;
        v->nodes = xrealloc(v->nodes, v->allocated * sizeof(sched_node));
        v->slots = xrealloc(v->slots, v->allocated * sizeof(uint32_t));
    }
    for (size_t i = 0; i < c->n_slots; i++) {
        if (!c->slots[i].obj)
            continue;
        view_copy(&c->slots[i], &v->nodes[v->n]);
        v->slots[v->n++] = (uint32_t)i;
    }
}

void sched_cache_view_refresh(const sched_cache *c, sched_view *v, size_t i)
{
    const node_slot *s = &c->slots[v->slots[i]];
    v->nodes[i].used = s->used;
    v->nodes[i].n_instances = s->n_instances;
}

void sched_cache_view_for_node(const sched_cache *c, sched_view *v, size_t i, const char *image,
                               const char *group)
{
    ssize_t im = id_get(c->images.ids, image), g = id_get(c->groups.ids, group);
    v->nodes[i].image_here = tally_at(&c->images, im, v->slots[i]) > 0;
    v->nodes[i].group_members = tally_at(&c->groups, g, v->slots[i]);
}

size_t sched_cache_view_for(const sched_cache *c, sched_view *v, const char *image,
                            const char *group)
{
    ssize_t im = id_get(c->images.ids, image), g = id_get(c->groups.ids, group);
    size_t placed = 0;
    for (size_t i = 0; i < v->n; i++) {
        v->nodes[i].image_here = tally_at(&c->images, im, v->slots[i]) > 0;
        v->nodes[i].group_members = tally_at(&c->groups, g, v->slots[i]);
        placed += v->nodes[i].group_members;
    }
    return placed;
}

void sched_view_done(sched_view *v)
{
    free(v->nodes);
    free(v->slots);
    *v = (sched_view){0};
}

static json_t *tally_dump(const tallies *t, uint32_t slot)
{
    json_t *o = json_object();
    for (size_t i = 0; i < t->n; i++)
        if (t->items[i].name && tally_at(t, (ssize_t)i, slot))
            json_object_set_new(o, t->items[i].name,
                                json_integer((json_int_t)tally_at(t, (ssize_t)i, slot)));
    return o;
}

static json_t *resources_dump(const api_resources *r)
{
    return json_pack("[I,I,I]", (json_int_t)r->amount[0], (json_int_t)r->amount[1],
                     (json_int_t)r->amount[2]);
}

json_t *sched_cache_dump(const sched_cache *c)
{
    json_t *nodes = json_object(), *claims = json_object();
    for (size_t i = 0; i < c->n_slots; i++) {
        const node_slot *s = &c->slots[i];
        if (!s->name || (!s->obj && !s->lease_alive && !s->n_instances))
            continue;
        const json_t *rv = s->obj ? api_json_lookup(s->obj, "metadata.resourceVersion") : NULL;
        json_object_set_new(nodes, s->name,
                            json_pack("{s:O, s:b, s:o, s:I, s:o, s:o}", "object",
                                      s->obj ? (rv ? (json_t *)rv : json_true()) : json_false(),
                                      "lease", s->lease_alive, "used", resources_dump(&s->used),
                                      "instances", (json_int_t)s->n_instances, "images",
                                      tally_dump(&c->images, (uint32_t)i), "groups",
                                      tally_dump(&c->groups, (uint32_t)i)));
    }
    for (size_t i = 0; i < c->n_claims; i++) {
        const claim *k = &c->claims[i];
        if (!k->key)
            continue;
        json_object_set_new(claims, k->key,
                            json_pack("[s,I,I,I,s?,s?]", c->slots[k->slot].name,
                                      (json_int_t)k->need.amount[0], (json_int_t)k->need.amount[1],
                                      (json_int_t)k->need.amount[2],
                                      k->image >= 0 ? c->images.items[k->image].name : NULL,
                                      k->group >= 0 ? c->groups.items[k->group].name : NULL));
    }
    return json_pack("{s:o, s:o}", "nodes", nodes, "claims", claims);
}

static bool slot_empty(const node_slot *s)
{
    return !s->name || (!s->obj && !s->lease_alive && !s->n_instances);
}

static size_t slots_used(const sched_cache *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_slots; i++)
        n += !slot_empty(&c->slots[i]);
    return n;
}

static bool tallies_equal(const tallies *ta, const tallies *tb, uint32_t sa, uint32_t sb)
{
    size_t named_a = 0, named_b = 0;
    for (size_t i = 0; i < ta->n; i++) {
        if (!ta->items[i].name)
            continue;
        named_a++;
        if (tally_at(ta, (ssize_t)i, sa) != tally_at(tb, id_get(tb->ids, ta->items[i].name), sb))
            return false;
    }
    for (size_t i = 0; i < tb->n; i++)
        named_b += tb->items[i].name != NULL;
    return named_a == named_b; /* a name only b has is counted somewhere: totals differ */
}

bool sched_cache_equal(const sched_cache *a, const sched_cache *b)
{
    if (json_object_size(a->claim_ids) != json_object_size(b->claim_ids) ||
        slots_used(a) != slots_used(b))
        return false;
    for (size_t i = 0; i < a->n_claims; i++) {
        const claim *x = &a->claims[i];
        if (!x->key)
            continue;
        ssize_t j = id_get(b->claim_ids, x->key);
        if (j < 0)
            return false;
        const claim *y = &b->claims[j];
        const char *xi = x->image >= 0 ? a->images.items[x->image].name : NULL;
        const char *yi = y->image >= 0 ? b->images.items[y->image].name : NULL;
        const char *xg = x->group >= 0 ? a->groups.items[x->group].name : NULL;
        const char *yg = y->group >= 0 ? b->groups.items[y->group].name : NULL;
        if (!streq(a->slots[x->slot].name, b->slots[y->slot].name) ||
            memcmp(&x->need, &y->need, sizeof(x->need)) != 0 || !xi != !yi ||
            (xi && !streq(xi, yi)) || !xg != !yg || (xg && !streq(xg, yg)))
            return false;
    }
    for (size_t i = 0; i < a->n_slots; i++) {
        const node_slot *x = &a->slots[i];
        if (slot_empty(x))
            continue;
        ssize_t j = id_get(b->slot_ids, x->name);
        if (j < 0)
            return false;
        const node_slot *y = &b->slots[j];
        if (x->obj != y->obj || x->lease_alive != y->lease_alive ||
            x->n_instances != y->n_instances || memcmp(&x->used, &y->used, sizeof(x->used)) != 0 ||
            !tallies_equal(&a->images, &b->images, (uint32_t)i, (uint32_t)j) ||
            !tallies_equal(&a->groups, &b->groups, (uint32_t)i, (uint32_t)j))
            return false;
    }
    return true;
}
