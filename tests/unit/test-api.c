/* Unit tests for pkg/api: names, IPv4/CIDR, the kind table, validation errors with paths,
 * defaulting, keys, canonical JSON, label and field selectors. Golden files: every manifest in
 * manifests/ must load, and its prepared form must equal tests/unit/api-data/golden/<name>
 * (STRATUS_REGENERATE=1 rewrites them). Broken corpus: every api-data/broken/<x>.json must fail
 * with exactly the text in <x>.err. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ipv4.h"
#include "api/names.h"
#include "api/object.h"
#include "api/resources.h"
#include "api/selector.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "check.h"

static char *read_file(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *data = xmalloc(cap);
    size_t n;
    while ((n = fread(data + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2)
            data = xrealloc(data, cap *= 2);
    }
    fclose(f);
    data[len] = '\0';
    if (ret_len)
        *ret_len = len;
    return data;
}

static char *source_path(const char *rel)
{
    const char *root = getenv("STRATUS_SOURCE_DIR");
    return xasprintf("%s/%s", root ? root : ".", rel);
}

static int cmp_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir ending in suffix; NULL-terminated; caller frees each and the array. */
static char **list_dir(const char *dir, const char *suffix, size_t *ret_n)
{
    DIR *d = opendir(dir);
    size_t n = 0, allocated = 0;
    char **names = NULL;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name), sl = strlen(suffix);
        if (l <= sl || strcmp(de->d_name + l - sl, suffix) != 0)
            continue;
        names = xgrow(names, &allocated, n + 2, sizeof(char *));
        names[n++] = xstrdup(de->d_name);
    }
    if (d)
        closedir(d);
    if (n)
        qsort(names, n, sizeof(char *), cmp_strings);
    names = xgrow(names, &allocated, n + 1, sizeof(char *));
    names[n] = NULL;
    *ret_n = n;
    return names;
}

static void free_list(char **names)
{
    for (char **p = names; *p; p++)
        free(*p);
    free(names);
}

/* Loads a manifest from text and returns the error string, or NULL when it loaded. */
static char *manifest_error(const char *text)
{
    api_error e = {0};
    json_t *items = NULL;
    int r = api_manifest_load(text, strlen(text), &items, &e);
    if (r >= 0) {
        json_decref(items);
        return NULL;
    }
    return api_error_to_string(&e);
}

static json_t *load_one(const char *text)
{
    api_error e = {0};
    json_t *items = NULL;
    int r = api_manifest_load(text, strlen(text), &items, &e);
    if (r < 0) {
        _cleanup_free_ char *s = api_error_to_string(&e);
        check_fail(__FILE__, __LINE__, "manifest failed: %s", s);
    }
    json_t *o = json_incref(json_array_get(items, 0));
    json_decref(items);
    return o;
}

#define INSTANCE_HEAD                                                                              \
    "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"vm\"},"

static void names_follow_kubernetes_rules(void)
{
    CHECK(api_is_dns_label("web-1"));
    CHECK(!api_is_dns_label("Web-1"));
    CHECK(!api_is_dns_label("-web"));
    CHECK(!api_is_dns_label("web-"));
    CHECK(!api_is_dns_label("m1.tiny"));
    CHECK(!api_is_dns_label(""));
    char long_label[65];
    memset(long_label, 'a', 64);
    long_label[64] = '\0';
    CHECK(!api_is_dns_label(long_label));
    long_label[63] = '\0';
    CHECK(api_is_dns_label(long_label));

    CHECK(api_is_dns_subdomain("m1.tiny"));
    CHECK(!api_is_dns_subdomain("m1..tiny"));
    CHECK(!api_is_dns_subdomain(".m1"));
    CHECK(!api_is_dns_subdomain("m1_tiny"));

    CHECK(api_is_label_key("app"));
    CHECK(api_is_label_key("topology.stratus.io/zone"));
    CHECK(api_is_label_key("a_b.C-d"));
    CHECK(!api_is_label_key("/zone"));
    CHECK(!api_is_label_key("Stratus.io/zone"));
    CHECK(!api_is_label_key("stratus.io/"));
    CHECK(!api_is_label_key("a/b/c"));
    CHECK(!api_is_label_key("-app"));
    CHECK(api_is_label_value(""));
    CHECK(api_is_label_value("Zone_A.1"));
    CHECK(!api_is_label_value("a b"));
    CHECK(!api_is_label_value("a,b"));
    CHECK_STR(api_dns_label_problem("Web_1"),
              "must consist of lower case alphanumeric characters or '-', and must start and end "
              "with an alphanumeric character");
}

static void ipv4_parses_strictly(void)
{
    uint32_t a;
    CHECK_OK(api_ipv4_parse("10.0.0.1", &a));
    CHECK_INT(a, ==, 0x0A000001);
    CHECK_OK(api_ipv4_parse("255.255.255.255", &a));
    CHECK_OK(api_ipv4_parse("0.0.0.0", &a));
    static const char *const bad[] = {"10.0.0.300", "10.0.0",    "10.0.0.1.2", "010.0.0.1",
                                      " 10.0.0.1",  "10.0.0.1 ", "10.0.0.-1",  "",
                                      "a.b.c.d",    "10..0.1",   "1e1.0.0.1",  "10.0.0.1/24"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        CHECK_INT(api_ipv4_parse(bad[i], &a), ==, -EINVAL);
    char s[API_IPV4_STRLEN];
    CHECK_STR(api_ipv4_format(0xC0A80101, s), "192.168.1.1");

    api_ipv4_cidr c;
    CHECK_OK(api_ipv4_cidr_parse("10.88.0.0/24", &c));
    CHECK_INT(c.prefix, ==, 24);
    CHECK(api_ipv4_cidr_is_network(&c));
    CHECK_INT(api_ipv4_cidr_host_count(&c), ==, 254);
    CHECK_OK(api_ipv4_cidr_nth_host(&c, 0, &a));
    CHECK_STR(api_ipv4_format(a, s), "10.88.0.1");
    CHECK_OK(api_ipv4_cidr_nth_host(&c, 253, &a));
    CHECK_STR(api_ipv4_format(a, s), "10.88.0.254");
    CHECK_INT(api_ipv4_cidr_nth_host(&c, 254, &a), ==, -ERANGE);
    CHECK_STR(api_ipv4_format(api_ipv4_cidr_broadcast(&c), s), "10.88.0.255");
    uint64_t idx;
    CHECK_OK(api_ipv4_parse("10.88.0.10", &a));
    CHECK(api_ipv4_cidr_contains(&c, a));
    CHECK_OK(api_ipv4_cidr_host_index(&c, a, &idx));
    CHECK_INT(idx, ==, 9);
    CHECK_INT(api_ipv4_cidr_host_index(&c, 0x0A580000, &idx), ==, -ERANGE); /* network */
    CHECK_INT(api_ipv4_cidr_host_index(&c, 0x0A5800FF, &idx), ==, -ERANGE); /* broadcast */
    CHECK_INT(api_ipv4_cidr_host_index(&c, 0x0A580100, &idx), ==, -ERANGE); /* outside */
    CHECK(!api_ipv4_cidr_contains(&c, 0x0A580100));

    CHECK_OK(api_ipv4_cidr_parse("10.0.0.5/8", &c));
    CHECK(!api_ipv4_cidr_is_network(&c));
    CHECK_INT(api_ipv4_cidr_network(&c), ==, 0x0A000000);
    char cs[API_IPV4_CIDR_STRLEN];
    CHECK_STR(api_ipv4_cidr_format(&c, cs), "10.0.0.5/8");
    CHECK_OK(api_ipv4_cidr_parse("192.168.0.0/31", &c));
    CHECK_INT(api_ipv4_cidr_host_count(&c), ==, 2);
    CHECK_OK(api_ipv4_cidr_nth_host(&c, 1, &a));
    CHECK_STR(api_ipv4_format(a, s), "192.168.0.1");
    CHECK_OK(api_ipv4_cidr_parse("192.168.0.7/32", &c));
    CHECK_INT(api_ipv4_cidr_host_count(&c), ==, 1);
    CHECK_OK(api_ipv4_cidr_parse("0.0.0.0/0", &c));
    CHECK(api_ipv4_cidr_contains(&c, 0xFFFFFFFF));
    CHECK_INT(api_ipv4_cidr_host_count(&c), ==, 4294967294ULL);
    CHECK_INT(api_ipv4_cidr_parse("10.0.0.0/33", &c), ==, -EINVAL);
    CHECK_INT(api_ipv4_cidr_parse("10.0.0.0/024", &c), ==, -EINVAL);
    CHECK_INT(api_ipv4_cidr_parse("10.0.0.0", &c), ==, -EINVAL);
    CHECK_INT(api_ipv4_cidr_parse("10.0.0.0/", &c), ==, -EINVAL);
}

static void kind_table_lookups(void)
{
    CHECK_INT(api_kind_lookup("instance")->kind, ==, API_KIND_INSTANCE);
    CHECK_INT(api_kind_lookup("INSTANCES")->kind, ==, API_KIND_INSTANCE);
    CHECK_INT(api_kind_lookup("i")->kind, ==, API_KIND_INSTANCE);
    CHECK_INT(api_kind_lookup("Inst")->kind, ==, API_KIND_INSTANCE);
    CHECK_INT(api_kind_lookup("fl")->kind, ==, API_KIND_FLAVOR);
    CHECK_INT(api_kind_lookup("img")->kind, ==, API_KIND_IMAGE);
    CHECK_INT(api_kind_lookup("net")->kind, ==, API_KIND_NETWORK);
    CHECK_INT(api_kind_lookup("vol")->kind, ==, API_KIND_VOLUME);
    CHECK_INT(api_kind_lookup("sg")->kind, ==, API_KIND_SERVER_GROUP);
    CHECK_INT(api_kind_lookup("servergroups")->kind, ==, API_KIND_SERVER_GROUP);
    CHECK_INT(api_kind_lookup("no")->kind, ==, API_KIND_NODE);
    CHECK_INT(api_kind_lookup("ev")->kind, ==, API_KIND_EVENT);
    CHECK(!api_kind_lookup("pod"));
    CHECK(!api_kind_lookup(NULL));
    CHECK(!api_kind_from_name("instance"));
    CHECK_INT(api_kind_from_string("Node"), ==, API_KIND_NODE);
    CHECK_INT(api_kind_from_string("node"), ==, _API_KIND_INVALID);
    CHECK(!api_kind_get(_API_KIND_MAX));
    CHECK(!api_kind_to_string(_API_KIND_INVALID));
    for (int k = 0; k < _API_KIND_MAX; k++) {
        const api_kind_info *info = api_kind_get((api_kind)k);
        CHECK_INT(info->kind, ==, k);
        CHECK_INT(api_kind_from_string(api_kind_to_string((api_kind)k)), ==, k);
        CHECK(info->plural && info->aliases && info->spec);
    }
    CHECK(api_kind_get(API_KIND_INSTANCE)->namespaced);
    CHECK(!api_kind_get(API_KIND_FLAVOR)->namespaced);
    CHECK(!api_kind_get(API_KIND_NODE)->namespaced);
    CHECK(!api_kind_get(API_KIND_IMAGE)->namespaced);
    CHECK_STR(api_name_rule_to_string(API_NAME_RULE_DNS_LABEL), "dns-label");
}

/* Every manifest in manifests/ loads, and its prepared form matches the golden file. */
static void manifests_match_goldens(void)
{
    _cleanup_free_ char *dir = source_path("manifests");
    _cleanup_free_ char *golden_dir = source_path("tests/unit/api-data/golden");
    bool regenerate = getenv("STRATUS_REGENERATE") && streq(getenv("STRATUS_REGENERATE"), "1");
    size_t n;
    char **names = list_dir(dir, ".json", &n);
    CHECK_INT(n, >=, 8);
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, names[i]);
        size_t len = 0;
        _cleanup_free_ char *text = read_file(path, &len);
        CHECK(text);
        api_error e = {0};
        json_t *items = NULL;
        int r = api_manifest_load(text, len, &items, &e);
        if (r < 0) {
            _cleanup_free_ char *s = api_error_to_string(&e);
            check_fail(__FILE__, __LINE__, "%s: %s", names[i], s);
        }
        /* Prepared objects are valid, and preparing them again changes nothing. */
        size_t j;
        json_t *o;
        json_array_foreach (items, j, o) {
            CHECK_OK(api_object_validate(o, &e));
            json_t *again = json_deep_copy(o);
            CHECK_OK(api_object_prepare(again, &e));
            _cleanup_free_ char *a = api_json_canonical(o), *b = api_json_canonical(again);
            CHECK_STR(a, b);
            json_decref(again);
            _cleanup_free_ char *key = NULL;
            CHECK_OK(api_object_key(o, &key));
        }
        _cleanup_free_ char *got = json_dumps(items, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(items);
        _cleanup_free_ char *golden_path = xasprintf("%s/%s", golden_dir, names[i]);
        if (regenerate) {
            FILE *f = fopen(golden_path, "w");
            CHECK(f);
            fprintf(f, "%s\n", got);
            fclose(f);
            continue;
        }
        _cleanup_free_ char *want = read_file(golden_path, NULL);
        if (!want)
            check_fail(__FILE__, __LINE__, "%s missing; run with STRATUS_REGENERATE=1",
                       golden_path);
        size_t wl = strlen(want);
        if (wl && want[wl - 1] == '\n')
            want[wl - 1] = '\0';
        if (!streq(got, want))
            check_fail(__FILE__, __LINE__, "%s differs from its golden file:\n%s", names[i], got);
    }
    free_list(names);
}

/* Every broken manifest fails with exactly the error in its .err sidecar. */
static void broken_manifests_fail_with_paths(void)
{
    _cleanup_free_ char *dir = source_path("tests/unit/api-data/broken");
    size_t n, failures = 0;
    char **names = list_dir(dir, ".json", &n);
    CHECK_INT(n, >=, 20);
    /* Report every mismatch, not just the first, so one run shows the whole corpus. */
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, names[i]);
        _cleanup_free_ char *err_path = xasprintf("%.*s.err", (int)(strlen(path) - 5), path);
        size_t len;
        _cleanup_free_ char *text = read_file(path, &len);
        _cleanup_free_ char *want = read_file(err_path, NULL);
        if (!want)
            want = xstrdup("(no .err file)");
        size_t wl = strlen(want);
        while (wl && want[wl - 1] == '\n')
            want[--wl] = '\0';
        api_error e = {0};
        json_t *items = NULL;
        _cleanup_free_ char *got = NULL;
        if (!text)
            got = xstrdup("(unreadable)");
        else if (api_manifest_load(text, len, &items, &e) >= 0)
            got = xstrdup("(loaded)");
        else
            got = api_error_to_string(&e);
        json_decref(items);
        if (!streq(got, want)) {
            fprintf(stderr, "  %s:\n    got  %s\n    want %s\n", names[i], got, want);
            failures++;
        }
    }
    free_list(names);
    CHECK_INT(failures, ==, 0);
}

static void errors_name_path_and_value(void)
{
    static const struct {
        const char *spec, *error;
    } t[] = {
        {"{\"flavor\":\"f\",\"image\":\"i\",\"networks\":[{\"network\":\"a\"},{\"network\":\"b\","
         "\"fixedIp\":\"10.0.0.300\"}]}",
         "spec.networks[1].fixedIp: \"10.0.0.300\" is not an IPv4 address"},
        {"{\"flavor\":\"f\",\"image\":\"i\",\"configDrive\":1}",
         "spec.configDrive: must be a boolean"},
        {"{\"flavor\":\"f\",\"image\":\"i\",\"networks\":{}}", "spec.networks: must be an array"},
        {"{\"flavor\":\"f\",\"image\":\"i\",\"networks\":[3]}",
         "spec.networks[0]: must be an object"},
        {"{\"flavor\":7,\"image\":\"i\"}", "spec.flavor: must be a string"},
        {"{\"flavor\":null,\"image\":\"i\"}", "spec.flavor: must be a string"},
        {"{\"flavor\":\"f\",\"image\":\"i\",\"metadata\":{\"a\":1}}",
         "spec.metadata.a: must be a string"},
        {"{\"flavor\":\"f\",\"image\":\"i\",\"metadata\":{\"a b\":1}}",
         "spec.metadata[\"a b\"]: must be a string"},
        {"{\"flavor\":\"f\",\"image\":\"i\",\"\\n\":1}", "spec[\"\\n\"]: unknown field"},
        {"{\"flavor\":\"f\",\"image\":\"i\",\"hostname\":\"a.b\"}",
         "spec.hostname: \"a.b\" is not a valid DNS label: must consist of lower case "
         "alphanumeric characters or '-', and must start and end with an alphanumeric character"},
        {"{\"flavor\":\"f\",\"image\":\"i\",\"blockDevices\":[{\"name\":\"a\",\"sizeGiB\":1,"
         "\"volume\":\"v\"}]}",
         "spec.blockDevices[0]: exactly one of volume or sizeGiB must be set"},
        {"{\"flavor\":\"f\",\"image\":\"i\",\"blockDevices\":[{\"name\":\"a\",\"sizeGiB\":1,"
         "\"type\":\"cdrom\"}]}",
         "spec.blockDevices[0].type: a cdrom needs a volume"},
        {"{\"flavor\":\"f\",\"image\":\"i\",\"blockDevices\":[{\"name\":\"a\",\"sizeGiB\":1,"
         "\"bootIndex\":1},{\"name\":\"b\",\"sizeGiB\":1,\"bootIndex\":1}]}",
         "spec.blockDevices[1].bootIndex: 1 is already used by blockDevices[0]"},
        {"{\"flavor\":\"f\",\"blockDevices\":[{\"name\":\"a\",\"sizeGiB\":1,\"bootIndex\":0}]}",
         "spec.blockDevices[0].bootIndex: 0 needs a volume to boot from, not a blank disk"},
        {"{\"flavor\":\"f\",\"image\":\"i\",\"networks\":[{\"network\":\"a\",\"fixedIp\":"
         "\"10.0.0.5\"},{\"network\":\"a\",\"fixedIp\":\"10.0.0.5\"}]}",
         "spec.networks[1].fixedIp: \"10.0.0.5\" is already requested by networks[0]"},
        {"{\"flavor\":\"f\",\"image\":\"i\",\"tolerations\":[{\"effect\":\"NoSchedule\"}]}",
         "spec.tolerations[0].key: is required when operator is Equal"},
        {"{\"flavor\":\"f\",\"image\":\"i\",\"sshKeys\":[\"ssh-rsa AAAA a\",\"ssh-rsa AAAA a\"]}",
         NULL},
        {"{\"flavor\":\"f\",\"image\":\"i\",\"userData\":\"\"}", NULL},
    };
    for (size_t i = 0; i < ELEMENTSOF(t); i++) {
        _cleanup_free_ char *doc = xasprintf(INSTANCE_HEAD "\"spec\":%s}", t[i].spec);
        _cleanup_free_ char *got = manifest_error(doc);
        if (!t[i].error) {
            if (got)
                check_fail(__FILE__, __LINE__, "case %zu: unexpected error %s", i, got);
            continue;
        }
        if (!got || !streq(got, t[i].error))
            check_fail(__FILE__, __LINE__, "case %zu:\n  got  %s\n  want %s", i,
                       got ? got : "(loaded)", t[i].error);
    }

    /* Whole-document errors have no path. */
    _cleanup_free_ char *e1 = manifest_error("[1]");
    CHECK_STR(e1, "the document must be a JSON object");
    _cleanup_free_ char *e2 = manifest_error("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\"}");
    CHECK_STR(e2, "metadata: is required");
    _cleanup_free_ char *e3 = manifest_error(
        "{\"apiVersion\":\"stratus/v1\",\"kind\":\"List\",\"items\":[{\"kind\":\"List\","
        "\"apiVersion\":\"stratus/v1\"}]}");
    CHECK_STR(e3, "items[0].kind: \"List\" is only allowed at the top of a manifest");

    api_error e;
    char *big = xmalloc(API_OBJECT_SIZE_MAX + 2);
    memset(big, ' ', API_OBJECT_SIZE_MAX + 1);
    big[API_OBJECT_SIZE_MAX + 1] = '\0';
    json_t *items = NULL;
    CHECK_INT(api_manifest_load(big, API_OBJECT_SIZE_MAX + 1, &items, &e), ==, -EMSGSIZE);
    CHECK(items == NULL);
    free(big);

    /* Long values are cut in messages, on a UTF-8 boundary. */
    char q[API_QUOTE_MAX];
    char long_value[200];
    memset(long_value, 'x', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    long_value[63] = '\xc3'; /* "é" straddling the cut */
    long_value[64] = '\xa9';
    api_quote(long_value, q);
    CHECK_INT(strlen(q), ==, 1 + 63 + 3 + 1);
    CHECK(strneq(q + 64, "...\"", 4));
    CHECK_STR(api_quote("a\"b\\c\n\x01", q), "\"a\\\"b\\\\c\\n\\u0001\"");

    CHECK_STR(api_label_key_problem("a/b/c"),
              "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
              "and end with an alphanumeric character");
}

static void metadata_rules(void)
{
    /* 64 labels are fine, 65 are not. */
    json_t *o = load_one(INSTANCE_HEAD "\"spec\":{\"flavor\":\"f\",\"image\":\"i\"}}");
    json_t *labels = json_object();
    json_object_set_new(json_object_get(o, "metadata"), "labels", labels);
    for (int i = 0; i < API_LABELS_MAX; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        json_object_set_new(labels, k, json_string("v"));
    }
    api_error e;
    CHECK_OK(api_object_validate(o, &e));
    json_object_set_new(labels, "one-more", json_string("v"));
    CHECK_INT(api_object_validate(o, &e), ==, -EINVAL);
    CHECK_STR(e.path, "metadata.labels");
    CHECK_STR(e.message, "has 65 entries, at most 64 are allowed");
    json_object_del(o, "metadata");

    /* Annotations: total size cap. */
    json_t *md = json_pack("{s:s}", "name", "vm");
    json_object_set_new(o, "metadata", md);
    json_t *ann = json_object();
    json_object_set_new(md, "annotations", ann);
    char *chunk = xmalloc(100 * 1024 + 1);
    memset(chunk, 'a', 100 * 1024);
    chunk[100 * 1024] = '\0';
    json_object_set_new(ann, "a", json_string(chunk));
    json_object_set_new(ann, "b", json_string(chunk));
    CHECK_OK(api_object_validate(o, &e));
    json_object_set_new(ann, "c", json_string(chunk));
    CHECK_INT(api_object_validate(o, &e), ==, -EINVAL);
    _cleanup_free_ char *s = api_error_to_string(&e);
    CHECK_STR(s, "metadata.annotations: total size is 307203 bytes, at most 262144 are allowed");
    free(chunk);
    json_object_del(md, "annotations");

    /* Finalizers: qualified names, no duplicates. */
    json_object_set_new(md, "finalizers",
                        json_pack("[ss]", "stratus.io/agent", "stratus.io/agent"));
    CHECK_INT(api_object_validate(o, &e), ==, -EINVAL);
    _cleanup_free_ char *s2 = api_error_to_string(&e);
    CHECK_STR(s2, "metadata.finalizers[1]: \"stratus.io/agent\" is listed twice");

    /* System-owned fields are type-checked by validate, and stripped by prepare. */
    json_object_set_new(md, "finalizers", json_pack("[s]", "stratus.io/agent"));
    json_object_set_new(md, "resourceVersion", json_string("012"));
    CHECK_INT(api_object_validate(o, &e), ==, -EINVAL);
    _cleanup_free_ char *s3 = api_error_to_string(&e);
    CHECK_STR(s3, "metadata.resourceVersion: \"012\" is not a resource version (a decimal number)");
    json_object_set_new(md, "uid", json_integer(5));
    json_object_set_new(md, "generation", json_string("x"));
    json_object_set_new(md, "creationTimestamp", json_string("yesterday"));
    json_object_set_new(o, "status", json_pack("{s:s}", "phase", "Bogus"));
    CHECK_OK(api_object_prepare(o, &e));
    CHECK(!json_object_get(o, "status"));
    CHECK(!json_object_get(md, "uid") && !json_object_get(md, "resourceVersion"));
    CHECK(!json_object_get(md, "generation") && !json_object_get(md, "creationTimestamp"));
    CHECK(json_object_get(md, "finalizers"));
    json_decref(o);
}

static void status_is_validated_separately(void)
{
    const api_kind_info *inst = api_kind_get(API_KIND_INSTANCE);
    api_error e;
    json_t *st =
        json_pack("{s:s, s:s, s:i, s:[{s:s, s:s, s:s, s:s}], s:[{s:s, s:s, s:s}], "
                  "s:[{s:s, s:s, s:s, s:s}], s:[{s:s, s:s, s:s, s:s}]}",
                  "phase", "Running", "nodeName", "node-1", "observedGeneration", 3, "conditions",
                  "type", "Ready", "status", "True", "reason", "DomainStarted",
                  "lastTransitionTime", "2026-01-02T03:04:05Z", "addresses", "network", "default",
                  "ip", "10.88.0.10", "mac", "52:54:00:12:34:56", "attempts", "nodeName", "node-2",
                  "step", "Claim", "reason", "InsufficientMemory", "time", "2026-01-02T03:04:00Z",
                  "timeline", "step", "Spawn", "startTime", "2026-01-02T03:04:01Z", "endTime",
                  "2026-01-02T03:04:05Z", "result", "Succeeded");
    CHECK_OK(api_object_validate_status(inst, st, &e));

    json_object_set_new(st, "phase", json_string("Active"));
    CHECK_INT(api_object_validate_status(inst, st, &e), ==, -EINVAL);
    _cleanup_free_ char *s1 = api_error_to_string(&e);
    CHECK_STR(s1, "status.phase: \"Active\" is not one of Pending, Scheduled, Building, Running, "
                  "Stopped, Failed, Deleting");
    json_object_set_new(st, "phase", json_string("Running"));
    json_array_append_new(json_object_get(st, "conditions"),
                          json_pack("{s:s, s:s}", "type", "Ready", "status", "False"));
    CHECK_INT(api_object_validate_status(inst, st, &e), ==, -EINVAL);
    _cleanup_free_ char *s2 = api_error_to_string(&e);
    CHECK_STR(s2, "status.conditions[1].type: \"Ready\" is listed twice");
    json_array_remove(json_object_get(st, "conditions"), 1);
    json_object_set_new(json_array_get(json_object_get(st, "addresses"), 0), "mac",
                        json_string("52:54:00:12:34"));
    CHECK_INT(api_object_validate_status(inst, st, &e), ==, -EINVAL);
    CHECK_STR(e.path, "status.addresses[0].mac");
    json_decref(st);

    json_t *empty = json_object();
    CHECK_INT(api_object_validate_status(api_kind_get(API_KIND_FLAVOR), empty, &e), ==, -EINVAL);
    json_decref(empty);
    _cleanup_free_ char *s3 = api_error_to_string(&e);
    CHECK_STR(s3, "status: Flavor has no status");

    json_t *node =
        json_pack("{s:{s:i, s:i, s:i}, s:{s:i}, s:[{s:s, s:s}], s:{s:s}}", "capacity", "vcpus", 8,
                  "memoryMiB", 16384, "diskGiB", 200, "allocatable", "vcpus", 7, "conditions",
                  "type", "Ready", "status", "True", "nodeInfo", "hypervisor", "qemu");
    CHECK_OK(api_object_validate_status(api_kind_get(API_KIND_NODE), node, &e));
    json_decref(node);

    /* validate() checks a status that is present. */
    json_t *o = load_one(INSTANCE_HEAD "\"spec\":{\"flavor\":\"f\",\"image\":\"i\"}}");
    json_object_set_new(o, "status", json_pack("{s:i}", "observedGeneration", -1));
    CHECK_INT(api_object_validate(o, &e), ==, -EINVAL);
    _cleanup_free_ char *s4 = api_error_to_string(&e);
    CHECK_STR(s4, "status.observedGeneration: -1 is out of range 0..9223372036854775807");
    json_decref(o);
}

static void defaults_fill_and_are_idempotent(void)
{
    json_t *o =
        load_one(INSTANCE_HEAD "\"spec\":{\"flavor\":\"f\",\"image\":\"i\",\"blockDevices\":["
                               "{\"name\":\"a\",\"sizeGiB\":1},{\"name\":\"b\",\"volume\":\"v\"},"
                               "{\"name\":\"c\",\"volume\":\"iso\",\"type\":\"cdrom\"}],"
                               "\"tolerations\":[{\"key\":\"k\"}]}}");
    _cleanup_free_ char *s = api_json_canonical(o);
    CHECK_STR(s,
              "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":"
              "\"vm\",\"namespace\":\"default\"},\"spec\":{\"blockDevices\":[{\"bus\":\"virtio\","
              "\"deleteOnTermination\":true,\"name\":\"a\",\"sizeGiB\":1,\"type\":\"disk\"},{"
              "\"bus\":\"virtio\",\"deleteOnTermination\":false,\"name\":\"b\",\"type\":\"disk\","
              "\"volume\":\"v\"},{\"bus\":\"sata\",\"deleteOnTermination\":false,\"name\":\"c\","
              "\"type\":\"cdrom\",\"volume\":\"iso\"}],\"configDrive\":false,\"flavor\":\"f\","
              "\"hostname\":\"vm\",\"image\":\"i\",\"powerState\":\"Running\",\"tolerations\":[{"
              "\"key\":\"k\",\"operator\":\"Equal\"}]}}");
    json_decref(o);

    o = load_one("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Network\",\"metadata\":{\"name\":"
                 "\"n\",\"namespace\":\"prod\"},\"spec\":{\"cidr\":\"172.16.0.0/12\"}}");
    _cleanup_free_ char *n = api_json_canonical(json_object_get(o, "spec"));
    CHECK_STR(n,
              "{\"cidr\":\"172.16.0.0/12\",\"dhcp\":true,\"gateway\":\"172.16.0.1\",\"mtu\":1500}");
    CHECK_STR(api_object_namespace(o), "prod");
    json_decref(o);

    o = load_one("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"},"
                 "\"spec\":{\"allocationRatios\":{\"memory\":1.5}}}");
    _cleanup_free_ char *nd = api_json_canonical(json_object_get(o, "spec"));
    CHECK_STR(nd, "{\"allocationRatios\":{\"cpu\":1.0,\"disk\":1.0,\"memory\":1.5},"
                  "\"unschedulable\":false}");
    CHECK(!api_object_namespace(o));
    json_decref(o);

    o = load_one("{\"apiVersion\":\"stratus/v1\",\"kind\":\"ServerGroup\",\"metadata\":{\"name\":"
                 "\"g\"},\"spec\":{\"policy\":\"soft-anti-affinity\"}}");
    CHECK(!json_object_get(json_object_get(o, "spec"), "maxPerNode"));
    json_decref(o);

    /* An explicit value is never overwritten. */
    o = load_one(INSTANCE_HEAD "\"spec\":{\"flavor\":\"f\",\"image\":\"i\",\"hostname\":\"h\","
                               "\"powerState\":\"Stopped\"}}");
    CHECK_STR(json_string_value(api_json_lookup(o, "spec.hostname")), "h");
    CHECK_STR(json_string_value(api_json_lookup(o, "spec.powerState")), "Stopped");
    json_t *empty = json_object();
    CHECK_INT(api_object_default(empty), ==, -EINVAL);
    json_decref(empty);
    json_decref(o);
}

static void keys_and_accessors(void)
{
    const api_kind_info *inst = api_kind_get(API_KIND_INSTANCE),
                        *fl = api_kind_get(API_KIND_FLAVOR);
    _cleanup_free_ char *k1 = NULL, *k2 = NULL, *p1 = NULL, *p2 = NULL, *p3 = NULL;
    CHECK_OK(api_key_build(inst, "default", "web-1", &k1));
    CHECK_STR(k1, "/stratus/v1/instances/default/web-1");
    CHECK_OK(api_key_build(fl, NULL, "m1.tiny", &k2));
    CHECK_STR(k2, "/stratus/v1/flavors/m1.tiny");
    char *x = NULL;
    CHECK_INT(api_key_build(inst, NULL, "web-1", &x), ==, -EINVAL);
    CHECK_INT(api_key_build(fl, "default", "m1.tiny", &x), ==, -EINVAL);
    CHECK_INT(api_key_build(inst, "default", "a/b", &x), ==, -EINVAL);
    CHECK_INT(api_key_build(inst, "default", "m1.tiny", &x), ==, -EINVAL); /* label rule */
    CHECK_INT(api_key_build(inst, "../x", "a", &x), ==, -EINVAL);
    CHECK(x == NULL);
    CHECK_OK(api_key_prefix(inst, NULL, &p1));
    CHECK_STR(p1, "/stratus/v1/instances/");
    CHECK_OK(api_key_prefix(inst, "default", &p2));
    CHECK_STR(p2, "/stratus/v1/instances/default/");
    CHECK_OK(api_key_prefix(api_kind_get(API_KIND_SERVER_GROUP), "", &p3));
    CHECK_STR(p3, "/stratus/v1/servergroups/");
    CHECK_INT(api_key_prefix(fl, "default", &x), ==, -EINVAL);

    json_t *o = load_one(INSTANCE_HEAD "\"spec\":{\"flavor\":\"f\",\"image\":\"i\"}}");
    _cleanup_free_ char *k3 = NULL;
    CHECK_OK(api_object_key(o, &k3));
    CHECK_STR(k3, "/stratus/v1/instances/default/vm");
    CHECK(api_object_kind(o) == inst);
    CHECK_STR(api_object_name(o), "vm");
    CHECK(!api_object_uid(o));
    CHECK(!api_object_labels(o));
    int64_t rv;
    CHECK_INT(api_object_resource_version(o, &rv), ==, -ENOENT);
    api_object_set_resource_version(o, 9007199254740993LL);
    CHECK_OK(api_object_resource_version(o, &rv));
    CHECK_INT(rv, ==, 9007199254740993LL);
    CHECK_STR(json_string_value(api_json_lookup(o, "metadata.resourceVersion")),
              "9007199254740993");
    json_object_set_new(json_object_get(o, "metadata"), "resourceVersion",
                        json_string("9223372036854775808"));
    CHECK_INT(api_object_resource_version(o, &rv), ==, -EINVAL);
    CHECK_INT(api_object_generation(o), ==, 0);
    json_object_set_new(json_object_get(o, "metadata"), "generation", json_integer(4));
    CHECK_INT(api_object_generation(o), ==, 4);
    CHECK(!api_json_lookup(o, "spec.flavor.x"));
    CHECK(!api_json_lookup(o, "nope"));
    json_decref(o);

    json_t *bare = json_object();
    api_object_set_resource_version(bare, 1);
    CHECK_OK(api_object_resource_version(bare, &rv));
    CHECK_INT(rv, ==, 1);
    json_decref(bare);
}

static void canonical_form_and_equality(void)
{
    json_t *a = json_loads("{\"spec\":{\"b\":1,\"a\":[2,{\"z\":1,\"y\":\"\\u00e9\"}]},"
                           "\"metadata\":{\"labels\":{\"x\":\"1\"}}}",
                           0, NULL);
    json_t *b = json_loads("{\"metadata\":{\"labels\":{\"x\":\"1\"},\"resourceVersion\":\"5\"},"
                           "\"spec\":{\"a\":[2,{\"y\":\"\xc3\xa9\",\"z\":1}],\"b\":1}}",
                           0, NULL);
    _cleanup_free_ char *ca = api_json_canonical(json_object_get(a, "spec"));
    CHECK_STR(ca, "{\"a\":[2,{\"y\":\"\xc3\xa9\",\"z\":1}],\"b\":1}");
    CHECK(api_spec_equal(a, b));
    CHECK(api_object_apply_equal(a, b));
    json_object_set_new(json_object_get(json_object_get(b, "metadata"), "labels"), "x",
                        json_string("2"));
    CHECK(api_spec_equal(a, b));
    CHECK(!api_object_apply_equal(a, b));
    json_object_set_new(json_object_get(b, "spec"), "b", json_real(1.0));
    CHECK(!api_spec_equal(a, b)); /* 1 and 1.0 are different JSON */
    json_t *empty = json_object();
    CHECK(api_spec_equal(empty, empty));
    CHECK(!api_spec_equal(a, empty));
    json_decref(a);
    json_decref(b);
    json_decref(empty);
}

static json_t *labels_of(const char *json)
{
    return json_loads(json, 0, NULL);
}

static void label_selectors_parse_and_match(void)
{
    json_t *web =
        labels_of("{\"app\":\"web\",\"env\":\"prod\",\"topology.stratus.io/zone\":\"a\"}");
    json_t *db = labels_of("{\"app\":\"db\",\"env\":\"dev\"}");
    static const struct {
        const char *sel;
        bool web, db, none;
        const char *formatted;
    } t[] = {
        {"", true, true, true, ""},
        {"app=web", true, false, false, "app=web"},
        {"app==web", true, false, false, "app=web"},
        {"app!=web", false, true, true, "app!=web"},
        {"env in (prod, staging)", true, false, false, "env in (prod,staging)"},
        {"env notin (prod)", false, true, true, "env notin (prod)"},
        {"app", true, true, false, "app"},
        {"!app", false, false, true, "!app"},
        {" app = web , env in(prod) ", true, false, false, "app=web,env in (prod)"},
        {"topology.stratus.io/zone=a", true, false, false, "topology.stratus.io/zone=a"},
        {"app=", false, false, false, "app="},
        {"app,!tier,env!=x", true, true, false, "app,!tier,env!=x"},
        {"in in (a)", false, false, false, "in in (a)"},
    };
    for (size_t i = 0; i < ELEMENTSOF(t); i++) {
        _cleanup_(api_label_selector_freep) api_label_selector *s = NULL;
        api_error e;
        int r = api_label_selector_parse(t[i].sel, &s, &e);
        if (r < 0)
            check_fail(__FILE__, __LINE__, "%s: %s", t[i].sel, e.message);
        CHECK_INT(api_label_selector_matches(s, web), ==, t[i].web);
        CHECK_INT(api_label_selector_matches(s, db), ==, t[i].db);
        CHECK_INT(api_label_selector_matches(s, NULL), ==, t[i].none);
        _cleanup_free_ char *f = api_label_selector_format(s);
        CHECK_STR(f, t[i].formatted);
        _cleanup_(api_label_selector_freep) api_label_selector *again = NULL;
        CHECK_OK(api_label_selector_parse(f, &again, NULL));
        _cleanup_free_ char *f2 = api_label_selector_format(again);
        CHECK_STR(f2, f);
    }
    json_decref(web);
    json_decref(db);

    static const struct {
        const char *sel, *error;
    } bad[] = {
        {"app=web,", "labelSelector: position 9: expected a requirement after \",\", found end of "
                     "selector"},
        {"env in prod", "labelSelector: position 8: expected \"(\" after \"in\", found \"prod\""},
        {"env in ()", "labelSelector: position 9: expected a label value, found \")\""},
        {"env in (a b)", "labelSelector: position 11: expected \",\" or \")\", found \"b\""},
        {"env in (a", "labelSelector: position 10: expected \",\" or \")\", found end of selector"},
        {"a=b=c", "labelSelector: position 4: expected \",\" or end of selector, found \"=\""},
        {"a b", "labelSelector: position 3: expected \"=\", \"==\", \"!=\", \"in\", \"notin\", "
                "\",\" or end of selector, found \"b\""},
        {"=a", "labelSelector: position 1: expected a label key, found \"=\""},
        {"!", "labelSelector: position 2: expected a label key, found end of selector"},
        {"Bad Key=1", "labelSelector: position 5: expected \"=\", \"==\", \"!=\", \"in\", "
                      "\"notin\", \",\" or end of selector, found \"Key\""},
        {"-a=1", "labelSelector: position 1: \"-a\" is not a valid label key: name part must "
                 "consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                 "an alphanumeric character"},
        {"a=-x", "labelSelector: position 3: \"-x\" is not a valid label value: must consist of "
                 "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                 "alphanumeric character"},
        {"a=(", "labelSelector: position 3: expected a label value, found \"(\""},
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        api_label_selector *s = NULL;
        api_error e;
        CHECK_INT(api_label_selector_parse(bad[i].sel, &s, &e), ==, -EINVAL);
        CHECK(s == NULL);
        _cleanup_free_ char *got = api_error_to_string(&e);
        if (!streq(got, bad[i].error))
            check_fail(__FILE__, __LINE__, "%s:\n  got  %s\n  want %s", bad[i].sel, got,
                       bad[i].error);
    }

    /* Caps: requirements, values per set, bytes. */
    buf b = BUF_INIT(0);
    for (int i = 0; i < API_SELECTOR_REQUIREMENTS_MAX; i++)
        (void)buf_printf(&b, "%sk%d", i ? "," : "", i);
    api_label_selector *s = NULL;
    api_error e;
    CHECK_OK(api_label_selector_parse(b.data, &s, &e));
    s = api_label_selector_free(s);
    (void)buf_append_str(&b, ",one-more");
    CHECK_INT(api_label_selector_parse(b.data, &s, &e), ==, -EINVAL);
    CHECK(strstr(e.message, "more than 64 requirements"));
    buf_reset(&b);
    (void)buf_append_str(&b, "k in (");
    for (int i = 0; i <= API_SELECTOR_VALUES_MAX; i++)
        (void)buf_printf(&b, "%sv%d", i ? "," : "", i);
    (void)buf_append_str(&b, ")");
    CHECK_INT(api_label_selector_parse(b.data, &s, &e), ==, -EINVAL);
    CHECK(strstr(e.message, "more than 64 values in one set"));
    buf_reset(&b);
    for (int i = 0; i <= API_SELECTOR_MAX; i++)
        (void)buf_append_str(&b, " ");
    CHECK_INT(api_label_selector_parse(b.data, &s, &e), ==, -EMSGSIZE);
    buf_done(&b);
    CHECK(api_label_selector_free(NULL) == NULL);
}

static void field_selectors_parse_and_match(void)
{
    json_t *o = load_one(INSTANCE_HEAD "\"spec\":{\"flavor\":\"m1.small\",\"image\":\"i\","
                                       "\"nodeName\":\"node-1\"}}");
    json_t *unbound = load_one(INSTANCE_HEAD "\"spec\":{\"flavor\":\"m1.small\",\"image\":\"i\"}}");
    json_object_set_new(o, "status", json_pack("{s:s}", "phase", "Running"));
    const api_kind_info *inst = api_kind_get(API_KIND_INSTANCE);
    static const struct {
        const char *sel;
        bool bound, unbound;
        const char *formatted;
    } t[] = {
        {"", true, true, ""},
        {"spec.nodeName=node-1", true, false, "spec.nodeName=node-1"},
        {"spec.nodeName==node-1", true, false, "spec.nodeName=node-1"},
        {"spec.nodeName!=node-1", false, true, "spec.nodeName!=node-1"},
        {"spec.nodeName=", false, true, "spec.nodeName="},
        {"metadata.name=vm,metadata.namespace=default", true, true,
         "metadata.name=vm,metadata.namespace=default"},
        {" status.phase = Running ", true, false, "status.phase=Running"},
        {"metadata.name=a\\,b", false, false, "metadata.name=a\\,b"},
        {"spec.flavor=m1.small,spec.nodeName!=node-2", true, true,
         "spec.flavor=m1.small,spec.nodeName!=node-2"},
    };
    for (size_t i = 0; i < ELEMENTSOF(t); i++) {
        _cleanup_(api_field_selector_freep) api_field_selector *s = NULL;
        api_error e;
        if (api_field_selector_parse(t[i].sel, inst, &s, &e) < 0)
            check_fail(__FILE__, __LINE__, "%s: %s", t[i].sel, e.message);
        CHECK_INT(api_field_selector_matches(s, o), ==, t[i].bound);
        CHECK_INT(api_field_selector_matches(s, unbound), ==, t[i].unbound);
        _cleanup_free_ char *f = api_field_selector_format(s);
        CHECK_STR(f, t[i].formatted);
        _cleanup_(api_field_selector_freep) api_field_selector *again = NULL;
        CHECK_OK(api_field_selector_parse(f, inst, &again, NULL));
    }

    json_t *node = load_one("{\"apiVersion\":\"stratus/v1\",\"kind\":\"Node\",\"metadata\":{"
                            "\"name\":\"n1\"},\"spec\":{\"unschedulable\":true}}");
    _cleanup_(api_field_selector_freep) api_field_selector *ns = NULL;
    CHECK_OK(api_field_selector_parse("spec.unschedulable=true", api_kind_get(API_KIND_NODE), &ns,
                                      NULL));
    CHECK(api_field_selector_matches(ns, node));
    json_decref(node);

    const struct {
        const char *sel;
        const api_kind_info *kind;
        const char *error;
    } bad[] = {
        {"spec.nodeName", NULL,
         "fieldSelector: position 14: expected \"=\", \"==\" or \"!=\" after spec.nodeName"},
        {"spec.flavr=x", api_kind_get(API_KIND_FLAVOR),
         "fieldSelector: position 1: \"spec.flavr\" is not a supported field for Flavor "
         "(supported: metadata.name, metadata.namespace)"},
        {"a=b,,c=d", NULL,
         "fieldSelector: position 1: \"a\" is not a supported field (supported: "
         "metadata.name, metadata.namespace, spec.nodeName, spec.flavor, "
         "spec.image, spec.serverGroup, spec.availabilityZone, spec.powerState, "
         "status.phase, status.nodeName, spec.unschedulable, spec.policy, "
         "spec.involvedObject.kind, spec.involvedObject.namespace, "
         "spec.involvedObject.name, spec.involvedObject.uid, spec.reason, "
         "spec.type, spec.source.component, spec.source.host, spec.holder)"},
        {"metadata.name=a,,metadata.name=b", NULL,
         "fieldSelector: position 17: expected a field name"},
        {"metadata.name=a,", NULL, "fieldSelector: position 17: expected a field name"},
        {"metadata.name=a=b", NULL,
         "fieldSelector: position 16: \"=\" in a value must be escaped as \\="},
        {"metadata.name=a\\b", NULL,
         "fieldSelector: position 16: invalid escape; use \\, \\= \\! or \\\\"},
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        api_field_selector *s = NULL;
        api_error e;
        CHECK_INT(api_field_selector_parse(bad[i].sel, bad[i].kind, &s, &e), ==, -EINVAL);
        CHECK(s == NULL);
        _cleanup_free_ char *got = api_error_to_string(&e);
        if (!streq(got, bad[i].error))
            check_fail(__FILE__, __LINE__, "%s:\n  got  %s\n  want %s", bad[i].sel, got,
                       bad[i].error);
    }
    CHECK(!api_field_selector_field(api_kind_get(API_KIND_FLAVOR), 2));
    CHECK_STR(api_field_selector_field(api_kind_get(API_KIND_INSTANCE), 2), "spec.nodeName");
    json_decref(o);
    json_decref(unbound);
}

/* status.claim counts only for the binding it was recorded with, and only when whole. */
static void instance_claim_is_read_with_its_binding(void)
{
    static const struct {
        const char *json;
        int want; /* 0: claim 2/2048/17; -ENOENT */
    } cases[] = {
        {"{\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"nodeName\":\"n1\",\"claim\":{"
         "\"vcpus\":2,\"memoryMiB\":2048,\"diskGiB\":17}}}",
         0},
        /* left behind by an Unbind that did not know claims: no binding any more */
        {"{\"spec\":{},\"status\":{\"claim\":{\"vcpus\":2,\"memoryMiB\":2048,\"diskGiB\":17}}}",
         -ENOENT},
        /* recorded for another node */
        {"{\"spec\":{\"nodeName\":\"n2\"},\"status\":{\"nodeName\":\"n1\",\"claim\":{"
         "\"vcpus\":2,\"memoryMiB\":2048,\"diskGiB\":17}}}",
         -ENOENT},
        {"{\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"nodeName\":\"n1\"}}", -ENOENT},
        {"{\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"nodeName\":\"n1\",\"claim\":{"
         "\"vcpus\":2,\"memoryMiB\":2048}}}",
         -ENOENT},
        {"{\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"nodeName\":\"n1\",\"claim\":{"
         "\"vcpus\":-1,\"memoryMiB\":2048,\"diskGiB\":17}}}",
         -ENOENT},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        json_t *inst = json_loads(cases[i].json, 0, NULL);
        CHECK(inst != NULL);
        api_resources r = {{0}};
        CHECK_INT(api_instance_claim(inst, &r), ==, cases[i].want);
        if (cases[i].want == 0) {
            CHECK_INT(r.amount[API_RESOURCE_VCPUS], ==, 2);
            CHECK_INT(r.amount[API_RESOURCE_MEMORY], ==, 2048);
            CHECK_INT(r.amount[API_RESOURCE_DISK], ==, 17);
            json_t *back = api_resources_json(&r);
            CHECK(json_equal(back, api_json_lookup(inst, "status.claim")));
            json_decref(back);
        }
        json_decref(inst);
    }
}

CHECK_MAIN(CASE(names_follow_kubernetes_rules), CASE(ipv4_parses_strictly),
           CASE(kind_table_lookups), CASE(manifests_match_goldens),
           CASE(broken_manifests_fail_with_paths), CASE(errors_name_path_and_value),
           CASE(metadata_rules), CASE(status_is_validated_separately),
           CASE(defaults_fill_and_are_idempotent), CASE(keys_and_accessors),
           CASE(canonical_form_and_equality), CASE(label_selectors_parse_and_match),
           CASE(field_selectors_parse_and_match), CASE(instance_claim_is_read_with_its_binding))
