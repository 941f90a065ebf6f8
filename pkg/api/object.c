/* Objects: loading, top-level and metadata validation, dispatch to the kind schemas, defaulting,
 * accessors, etcd keys and the canonical form. The kind-specific rules live in kind-<name>.c. */
#include "api/object.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/names.h"
#include "api/parse.h"
#include "api/schema.h"
#include "base/alloc.h"

/* ---- metadata ---- */

static int check_name(api_vctx *c, const json_t *v)
{
    if (c->kind->name_rule == API_NAME_RULE_DNS_LABEL)
        return api_check_dns_label(c, v);
    return api_check_ref_name(c, v);
}

static int check_namespace(api_vctx *c, const json_t *v)
{
    if (!c->kind->namespaced) {
        char q[API_QUOTE_MAX];
        return api_vfail(c, "%s is not allowed: %s is cluster-scoped",
                         api_quote(json_string_value(v), q), c->kind->name);
    }
    return api_check_dns_label(c, v);
}

static int check_uid(api_vctx *c, const json_t *v)
{
    const char *s = json_string_value(v);
    bool ok = *s;
    for (const char *p = s; ok && *p; p++)
        ok = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || *p == '-';
    if (ok)
        return 0;
    char q[API_QUOTE_MAX];
    return api_vfail(c, "%s is not a uid (lower case hex digits and '-')", api_quote(s, q));
}

static int parse_resource_version(const char *s, int64_t *ret)
{
    if (!*s || (s[0] == '0' && s[1]) || strlen(s) > API_RESOURCE_VERSION_MAX)
        return -EINVAL;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (INT64_MAX - (*p - '0')) / 10)
            return -EINVAL;
        v = v * 10 + (*p - '0');
    }
    *ret = v;
    return 0;
}

static int check_resource_version(api_vctx *c, const json_t *v)
{
    int64_t rv;
    if (parse_resource_version(json_string_value(v), &rv) >= 0)
        return 0;
    char q[API_QUOTE_MAX];
    return api_vfail(c, "%s is not a resource version (a decimal number)",
                     api_quote(json_string_value(v), q));
}

static int check_annotations(api_vctx *c, const json_t *v)
{
    size_t total = 0;
    const char *key;
    const json_t *value;
    json_object_foreach ((json_t *)v, key, value)
        total += strlen(key) + json_string_length(value);
    if (total > API_ANNOTATIONS_SIZE_MAX)
        return api_vfail(c, "total size is %zu bytes, at most %d are allowed", total,
                         API_ANNOTATIONS_SIZE_MAX);
    return 0;
}

static const api_field label_value = API_F_STRING(NULL, false, 0, api_check_label_value);
static const api_field annotation_value = API_F_STRING(NULL, false, API_ANNOTATIONS_SIZE_MAX, NULL);
static const api_field finalizer_elem = API_F_STRING(
    NULL, false, API_DNS_SUBDOMAIN_MAX + 1 + API_LABEL_NAME_MAX, api_check_qualified_name);

static const api_field metadata_fields[] = {
    API_F_STRING("name", true, 0, check_name),
    API_F_STRING("namespace", false, 0, check_namespace),
    API_F_STRING("uid", false, API_UID_MAX, check_uid),
    API_F_MAP("labels", false, API_LABELS_MAX, api_check_label_key, &label_value, NULL),
    API_F_MAP("annotations", false, API_ANNOTATIONS_MAX, api_check_label_key, &annotation_value,
              check_annotations),
    API_F_STRING("resourceVersion", false, API_SHORT_STRING_MAX, check_resource_version),
    API_F_INT("generation", false, 0, INT64_MAX),
    API_F_STRING("creationTimestamp", false, API_SHORT_STRING_MAX, api_check_timestamp),
    API_F_STRING("deletionTimestamp", false, API_SHORT_STRING_MAX, api_check_timestamp),
    API_F_SET("finalizers", false, API_FINALIZERS_MAX, &finalizer_elem),
    API_F_END,
};

static const char *const system_metadata[] = {"uid", "resourceVersion", "generation",
                                              "creationTimestamp", "deletionTimestamp"};

/* ---- loading ---- */

/* jansson's messages quote input bytes; keep them printable ASCII for gRPC status texts. */
static void sanitize_text(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7F)
            *s = '?';
}

int api_json_load(const char *data, size_t len, json_t **ret, api_error *err)
{
    if (len > API_OBJECT_SIZE_MAX) {
        api_error_set(err, "", "document is %zu bytes, at most %d are allowed", len,
                      API_OBJECT_SIZE_MAX);
        return -EMSGSIZE;
    }
    json_error_t je;
    json_t *j = api_json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        sanitize_text(je.text);
        return api_error_set(err, "", "invalid JSON at line %d, column %d: %s", je.line, je.column,
                             je.text);
    }
    if (!json_is_object(j)) {
        json_decref(j);
        return api_error_set(err, "", "the document must be a JSON object");
    }
    *ret = j;
    return 0;
}

/* ---- validation ---- */

static int check_api_version(api_vctx *c, const json_t *doc)
{
    const json_t *v = json_object_get(doc, "apiVersion");
    if (!v)
        return api_vfail_at(c, "apiVersion", "is required");
    if (!json_is_string(v))
        return api_vfail_at(c, "apiVersion", "must be a string");
    if (!streq(json_string_value(v), API_VERSION)) {
        char q[API_QUOTE_MAX];
        return api_vfail_at(c, "apiVersion", "%s is not supported; use \"" API_VERSION "\"",
                            api_quote(json_string_value(v), q));
    }
    return 0;
}

static int check_kind(api_vctx *c, const json_t *doc, const api_kind_info **ret)
{
    const json_t *v = json_object_get(doc, "kind");
    if (!v)
        return api_vfail_at(c, "kind", "is required");
    if (!json_is_string(v))
        return api_vfail_at(c, "kind", "must be a string");
    const char *s = json_string_value(v);
    const api_kind_info *k = api_kind_from_name(s);
    if (k) {
        *ret = k;
        return 0;
    }
    char q[API_QUOTE_MAX];
    const api_kind_info *near = api_kind_lookup(s);
    if (near)
        return api_vfail_at(c, "kind", "%s is not a known kind (did you mean \"%s\"?)",
                            api_quote(s, q), near->name);
    if (streq(s, "List"))
        return api_vfail_at(c, "kind", "\"List\" is only allowed at the top of a manifest");
    return api_vfail_at(c, "kind", "%s is not a known kind", api_quote(s, q));
}

static int check_member_object(api_vctx *c, const json_t *doc, const char *member,
                               const json_t **ret)
{
    const json_t *v = json_object_get(doc, member);
    if (!v)
        return api_vfail_at(c, member, "is required");
    if (!json_is_object(v))
        return api_vfail_at(c, member, "must be an object");
    *ret = v;
    return 0;
}

static int check_status(api_vctx *c, const api_kind_info *k, const json_t *status)
{
    size_t old = api_vpath_key(c, "status");
    int r;
    if (!k->status)
        r = api_vfail(c, "%s has no status", k->name);
    else if (!json_is_object(status))
        r = api_vfail(c, "must be an object");
    else
        r = api_fields_check(c, k->status, status);
    api_vpath_restore(c, old);
    return r;
}

static const char *const top_fields[] = {"apiVersion", "kind", "metadata", "spec", "status"};

static int validate_at(const json_t *obj, const char *prefix, api_error *err)
{
    api_vctx c;
    api_vctx_init(&c, err, prefix);
    if (!json_is_object(obj))
        return api_vfail(&c, "must be an object");

    const char *key;
    const json_t *v;
    json_object_foreach ((json_t *)obj, key, v) {
        bool known = false;
        for (size_t i = 0; i < ELEMENTSOF(top_fields); i++)
            known = known || streq(key, top_fields[i]);
        if (!known)
            return api_vfail_at(&c, key, "unknown field");
    }

    const api_kind_info *k = NULL;
    const json_t *metadata = NULL, *spec = NULL;
    int r = check_api_version(&c, obj);
    if (r >= 0)
        r = check_kind(&c, obj, &k);
    if (r < 0)
        return r;
    c.kind = k;

    r = check_member_object(&c, obj, "metadata", &metadata);
    if (r < 0)
        return r;
    size_t old = api_vpath_key(&c, "metadata");
    r = api_fields_check(&c, metadata_fields, metadata);
    api_vpath_restore(&c, old);
    if (r < 0)
        return r;

    r = check_member_object(&c, obj, "spec", &spec);
    if (r < 0)
        return r;
    old = api_vpath_key(&c, "spec");
    r = api_fields_check(&c, k->spec, spec);
    if (r >= 0 && k->validate_spec)
        r = k->validate_spec(&c, spec);
    api_vpath_restore(&c, old);
    if (r < 0)
        return r;

    const json_t *status = json_object_get(obj, "status");
    return status ? check_status(&c, k, status) : 0;
}

int api_object_validate(const json_t *obj, api_error *err)
{
    return validate_at(obj, NULL, err);
}

int api_object_validate_status(const api_kind_info *k, const json_t *status, api_error *err)
{
    api_vctx c;
    api_vctx_init(&c, err, NULL);
    if (!k)
        return api_vfail(&c, "unknown kind");
    c.kind = k;
    return check_status(&c, k, status);
}

/* ---- apply ---- */

void api_object_strip_system_fields(json_t *obj)
{
    if (!json_is_object(obj))
        return;
    json_object_del(obj, "status");
    json_t *metadata = api_child_object(obj, "metadata");
    for (size_t i = 0; metadata && i < ELEMENTSOF(system_metadata); i++)
        json_object_del(metadata, system_metadata[i]);
}

int api_object_default(json_t *obj)
{
    const api_kind_info *k = api_object_kind(obj);
    json_t *metadata = api_child_object((json_t *)obj, "metadata");
    if (!k || !metadata)
        return -EINVAL;
    if (k->namespaced)
        api_default_set(metadata, "namespace", json_string("default"));
    if (k->default_object)
        k->default_object(obj);
    return 0;
}

static int prepare_at(json_t *obj, const char *prefix, api_error *err)
{
    api_object_strip_system_fields(obj);
    int r = validate_at(obj, prefix, err);
    if (r < 0)
        return r;
    return api_object_default(obj);
}

int api_object_prepare(json_t *obj, api_error *err)
{
    return prepare_at(obj, NULL, err);
}

static bool same_identity(const json_t *a, const json_t *b)
{
    const char *na = api_object_namespace(a), *nb = api_object_namespace(b);
    return api_object_kind(a) == api_object_kind(b) &&
           streq(api_object_name(a), api_object_name(b)) && streq(na ?: "", nb ?: "");
}

static int load_list(json_t *doc, json_t *items, api_error *err)
{
    api_vctx c;
    api_vctx_init(&c, err, NULL);
    const char *key;
    json_t *v;
    json_object_foreach (doc, key, v)
        if (!streq(key, "apiVersion") && !streq(key, "kind") && !streq(key, "items"))
            return api_vfail_at(&c, key, "unknown field");
    int r = check_api_version(&c, doc);
    if (r < 0)
        return r;
    json_t *list = json_object_get(doc, "items");
    if (!list)
        return api_vfail_at(&c, "items", "is required");
    if (!json_is_array(list))
        return api_vfail_at(&c, "items", "must be an array");
    if (json_array_size(list) > API_LIST_ITEMS_MAX)
        return api_vfail_at(&c, "items", "has %zu entries, at most %d are allowed",
                            json_array_size(list), API_LIST_ITEMS_MAX);
    size_t i;
    json_array_foreach (list, i, v) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "items[%zu]", i);
        r = prepare_at(v, prefix, err);
        if (r < 0)
            return r;
        for (size_t j = 0; j < i; j++)
            if (same_identity(v, json_array_get(list, j))) {
                char q[API_QUOTE_MAX];
                api_vctx_init(&c, err, prefix);
                return api_vfail_at(&c, "metadata", "%s %s is already in items[%zu]",
                                    api_object_kind(v)->name, api_quote(api_object_name(v), q), j);
            }
        json_array_append(items, v);
    }
    return 0;
}

int api_manifest_load(const char *data, size_t len, json_t **ret_items, api_error *err)
{
    json_t *doc = NULL;
    int r = api_json_load(data, len, &doc, err);
    if (r < 0)
        return r;
    json_t *items = json_array();
    const char *kind = json_string_value(json_object_get(doc, "kind"));
    if (kind && streq(kind, "List")) {
        r = load_list(doc, items, err);
    } else {
        r = prepare_at(doc, NULL, err);
        if (r >= 0)
            json_array_append(items, doc);
    }
    json_decref(doc);
    if (r < 0) {
        json_decref(items);
        return r;
    }
    *ret_items = items;
    return 0;
}

/* ---- accessors ---- */

json_t *api_json_lookup(const json_t *obj, const char *path)
{
    json_t *v = (json_t *)obj;
    while (v && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (!json_is_object(v))
            return NULL;
        v = json_object_getn(v, path, n);
        path += n + (dot ? 1 : 0);
    }
    return v;
}

static const char *metadata_string(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

const api_kind_info *api_object_kind(const json_t *obj)
{
    return api_kind_from_name(json_string_value(json_object_get(obj, "kind")));
}

const char *api_object_name(const json_t *obj)
{
    return metadata_string(obj, "name");
}

const char *api_object_namespace(const json_t *obj)
{
    return metadata_string(obj, "namespace");
}

const char *api_object_uid(const json_t *obj)
{
    return metadata_string(obj, "uid");
}

json_t *api_object_labels(const json_t *obj)
{
    json_t *labels = json_object_get(json_object_get(obj, "metadata"), "labels");
    return json_is_object(labels) ? labels : NULL;
}

int api_object_resource_version(const json_t *obj, int64_t *ret)
{
    const json_t *v = json_object_get(json_object_get(obj, "metadata"), "resourceVersion");
    if (!v)
        return -ENOENT;
    if (!json_is_string(v))
        return -EINVAL;
    return parse_resource_version(json_string_value(v), ret);
}

void api_object_set_resource_version(json_t *obj, int64_t rv)
{
    json_t *metadata = json_object_get(obj, "metadata");
    if (!json_is_object(metadata)) {
        metadata = json_object();
        json_object_set_new(obj, "metadata", metadata);
    }
    char s[32];
    snprintf(s, sizeof(s), "%" PRId64, rv);
    json_object_set_new(metadata, "resourceVersion", json_string(s));
}

int64_t api_object_generation(const json_t *obj)
{
    const json_t *v = json_object_get(json_object_get(obj, "metadata"), "generation");
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* ---- keys ---- */

static bool name_ok(const api_kind_info *k, const char *name)
{
    if (!name)
        return false;
    return k->name_rule == API_NAME_RULE_DNS_LABEL ? api_is_dns_label(name)
                                                   : api_is_dns_subdomain(name);
}

int api_key_build(const api_kind_info *k, const char *ns, const char *name, char **ret)
{
    if (!k || !name_ok(k, name))
        return -EINVAL;
    if (ns && !*ns)
        ns = NULL;
    if (k->namespaced != (ns != NULL) || (ns && !api_is_dns_label(ns)))
        return -EINVAL;
    *ret = ns ? xasprintf(API_KEY_PREFIX "%s/%s/%s", k->plural, ns, name)
              : xasprintf(API_KEY_PREFIX "%s/%s", k->plural, name);
    return 0;
}

int api_key_prefix(const api_kind_info *k, const char *ns, char **ret)
{
    if (ns && !*ns)
        ns = NULL;
    if (!k || (ns && (!k->namespaced || !api_is_dns_label(ns))))
        return -EINVAL;
    *ret = ns ? xasprintf(API_KEY_PREFIX "%s/%s/", k->plural, ns)
              : xasprintf(API_KEY_PREFIX "%s/", k->plural);
    return 0;
}

int api_object_key(const json_t *obj, char **ret)
{
    const api_kind_info *k = api_object_kind(obj);
    if (!k)
        return -EINVAL;
    return api_key_build(k, k->namespaced ? api_object_namespace(obj) : NULL, api_object_name(obj),
                         ret);
}

/* ---- canonical form ---- */

/* api_json_canonical() is in canonical.c. */

static bool canonical_equal(const json_t *a, const json_t *b)
{
    if (!a || !b)
        return !a && !b;
    _cleanup_free_ char *ca = api_json_canonical(a);
    _cleanup_free_ char *cb = api_json_canonical(b);
    return streq(ca, cb);
}

bool api_spec_equal(const json_t *a, const json_t *b)
{
    return canonical_equal(json_object_get(a, "spec"), json_object_get(b, "spec"));
}

bool api_object_apply_equal(const json_t *a, const json_t *b)
{
    const json_t *ma = json_object_get(a, "metadata"), *mb = json_object_get(b, "metadata");
    return api_spec_equal(a, b) &&
           canonical_equal(json_object_get(ma, "labels"), json_object_get(mb, "labels")) &&
           canonical_equal(json_object_get(ma, "annotations"), json_object_get(mb, "annotations"));
}
