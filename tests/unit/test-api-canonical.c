/* Unit tests for pkg/api's canonical dumper (canonical.c): its bytes must be exactly those of
 * json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY), on every JSON file under tests/
 * and manifests/, on hand-picked edge cases, and on many random trees from a seeded PRNG
 * (STRATUS_CANONICAL_SEED=N picks another seed; the seed is printed on a mismatch). Where the fast
 * path declines (too deep, not UTF-8), api_json_canonical() must still give jansson's bytes. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/canonical.h"
#include "api/object.h"
#include "base/alloc.h"
#include "check.h"
#include "json-gen.h"

#define FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)

/* Checks that the fast path takes j and gives jansson's bytes, and so does api_json_canonical. */
static void check_same(const json_t *j, const char *what)
{
    _cleanup_free_ char *want = json_dumps(j, FLAGS);
    _cleanup_free_ char *got = NULL;
    CHECK(want);
    int r = api_json_canonical_fast(j, &got);
    if (r < 0)
        check_fail(__FILE__, __LINE__, "%s: the fast path declined (%d) what jansson dumps as %s",
                   what, r, want);
    if (strcmp(got, want) != 0)
        check_fail(__FILE__, __LINE__, "%s:\n  jansson %s\n  ours    %s", what, want, got);
    _cleanup_free_ char *api = api_json_canonical(j);
    CHECK_STR(api, want);
}

/* j, which the fast path declines with `error`: api_json_canonical gives jansson's text. */
static void check_jansson_answers(const json_t *j, int error)
{
    char *fast = NULL;
    CHECK_INT(api_json_canonical_fast(j, &fast), ==, error);
    _cleanup_free_ char *want = json_dumps(j, FLAGS);
    _cleanup_free_ char *got = api_json_canonical(j);
    CHECK(want);
    CHECK_STR(got, want);
}

/* ---- files */

static unsigned check_files_under(const char *dir)
{
    unsigned n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, de->d_name);
        size_t l = strlen(de->d_name);
        if (de->d_type == DT_DIR) {
            n += check_files_under(path);
            continue;
        }
        if (l < 5 || strcmp(de->d_name + l - 5, ".json") != 0)
            continue;
        /* The broken corpus holds files that are not JSON at all; the rest must load. */
        json_t *j = json_load_file(path, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!j)
            continue;
        check_same(j, path);
        json_decref(j);
        n++;
    }
    closedir(d);
    return n;
}

static void fixture_files_dump_as_jansson(void)
{
    const char *root = getenv("STRATUS_SOURCE_DIR");
    _cleanup_free_ char *tests = xasprintf("%s/tests", root ? root : ".");
    _cleanup_free_ char *manifests = xasprintf("%s/manifests", root ? root : ".");
    unsigned n_tests = check_files_under(tests), n_manifests = check_files_under(manifests);
    printf("# %u JSON files under tests/, %u under manifests/\n", n_tests, n_manifests);
    CHECK_INT(n_tests, >=, 20);
    CHECK_INT(n_manifests, >=, 5);
}

/* ---- hand-picked cases */

static void scalars_and_empty_containers(void)
{
    json_t *v[] = {
        json_null(),
        json_true(),
        json_false(),
        json_integer(0),
        json_integer(-1),
        json_integer(INT64_MAX),
        json_integer(INT64_MIN),
        json_real(0.0),
        json_real(-0.0),
        json_real(0.1),
        json_real(1e300),
        json_real(1e-300),
        json_real(-2.5),
        json_real(1e16),
        json_real(1e17),
        json_real(123456789012345678.0),
        json_real(5e-324),
        json_real(1.7976931348623157e308),
        json_string(""),
        json_string("/\"\\\b\f\n\r\t\x01\x1f\x7f é € 𝄞"),
        json_stringn("a\0b", 3),
        json_object(),
        json_array(),
    };
    for (size_t i = 0; i < ELEMENTSOF(v); i++) {
        char what[32];
        snprintf(what, sizeof(what), "scalar %zu", i);
        check_same(v[i], what);
        json_decref(v[i]);
    }
    json_t *ctl = json_string("\x1f\t");
    _cleanup_free_ char *s = api_json_canonical(ctl);
    json_decref(ctl);
    CHECK_STR(s, "\"\\u001F\\t\"");
}

static void keys_sort_by_bytes(void)
{
    json_t *o = json_object();
    static const struct {
        const char *k;
        size_t len;
    } keys[] = {{"", 0},         {"a", 1},    {"a\0", 2},  {"a\0b", 3}, {"ab", 2}, {"B", 1},
                {"\xc3\xa9", 2}, {"\x7f", 1}, {"\x01", 1}, {"a\"", 2},  {"aa", 2}};
    for (size_t i = 0; i < ELEMENTSOF(keys); i++)
        CHECK_OK(json_object_setn_new(o, keys[i].k, keys[i].len, json_integer((json_int_t)i)));
    check_same(o, "keys with shared prefixes, NULs and bytes above 0x7f");
    /* More than insertion sort handles, in reverse order. */
    json_t *big = json_object();
    for (int i = 99; i >= 0; i--) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        json_object_set_new(big, k, json_integer(i));
    }
    json_object_set_new(o, "big", big);
    check_same(o, "100 keys");
    json_decref(o);
}

/* Byte strings that are not UTF-8 as jansson sees it, and the edges of what is. */
static void utf8_is_checked_as_jansson_does(void)
{
    static const char *bad[] = {
        "\x80",
        "\xbf",
        "\xc0\x80",
        "\xc1\xbf",
        "\xc2",
        "\xc2\x41",
        "\xe0\x80\x80",
        "\xe0\x9f\xbf",
        "\xed\xa0\x80",
        "\xed\xbf\xbf",
        "\xe2\x82",
        "\xf0\x80\x80\x80",
        "\xf0\x8f\xbf\xbf",
        "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80",
        "\xff",
        "ok\xfe",
        "\xf0\x9d\x84",
    };
    static const char *good[] = {
        "\xc2\x80",     "\xdf\xbf",     "\xe0\xa0\x80",     "\xed\x9f\xbf",
        "\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        json_t *s = json_stringn_nocheck(bad[i], strlen(bad[i]));
        char *text = NULL;
        CHECK(!json_dumps(s, FLAGS)); /* jansson refuses such a value */
        CHECK_INT(api_json_canonical_fast(s, &text), ==, -EILSEQ);
        json_decref(s);
        /* As a key jansson writes part of it and goes on: api_json_canonical must do the same. */
        json_t *o = json_object();
        json_object_set_new(o, "a", json_integer(1));
        CHECK_OK(json_object_setn_new_nocheck(o, bad[i], strlen(bad[i]), json_string("v\n")));
        json_object_set_new(o, "z", json_integer(2));
        check_jansson_answers(o, -EILSEQ);
        json_decref(o);
    }
    for (size_t i = 0; i < ELEMENTSOF(good); i++) {
        json_t *s = json_stringn_nocheck(good[i], strlen(good[i]));
        check_same(s, "a UTF-8 edge");
        json_decref(s);
    }
}

/* Past the depth bound the fast path declines; jansson's answer stands: the text of a deep tree,
 * and no text at all for a cycle. */
static void depth_is_bounded(void)
{
    /* As deep as jansson's parser allows: the fast path takes it. */
    size_t n = JSON_PARSER_MAX_DEPTH;
    char *text = xmalloc(2 * n + 1);
    memset(text, '[', n);
    memset(text + n, ']', n);
    text[2 * n] = '\0';
    json_t *deep = json_loads(text, 0, NULL);
    free(text);
    CHECK(deep);
    check_same(deep, "2048 arrays deep");
    /* One more (an object, to go through both kinds): jansson's dump. */
    json_t *deeper = json_object();
    json_object_set_new(deeper, "x", deep);
    check_jansson_answers(deeper, -ELOOP);
    json_decref(deeper);

    json_t *a = json_array(), *o = json_object();
    json_array_append(a, o);
    json_object_set(o, "loop", a);
    CHECK(!json_dumps(a, FLAGS));
    char *fast = NULL;
    CHECK_INT(api_json_canonical_fast(a, &fast), ==, -ELOOP);
    json_object_del(o, "loop"); /* breaks the cycle, so both can be freed */
    json_decref(o);
    json_decref(a);
}

/* ---- random trees (json-gen.h) */

static void random_trees_dump_as_jansson(void)
{
    const char *env = getenv("STRATUS_CANONICAL_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : 0x5eed5eedULL;
    jgen_seed(seed);
    unsigned trees = 20000;
    size_t bytes = 0;
    for (unsigned i = 0; i < trees; i++) {
        json_t *t = jgen_below(4) ? json_object() : jgen_tree(0);
        if (json_is_object(t) && json_object_size(t) == 0) /* mostly objects, like ours */
            for (unsigned k = jgen_below(10); k > 0; k--) {
                char key[20 * 4];
                size_t len = jgen_text(key, 10);
                json_object_setn_new(t, key, len, jgen_tree(1));
            }
        char what[64];
        snprintf(what, sizeof(what), "seed %#llx, tree %u", (unsigned long long)seed, i);
        check_same(t, what);
        char *s = json_dumps(t, FLAGS);
        bytes += strlen(s);
        free(s);
        json_decref(t);
    }
    printf("# %u random trees, %zu bytes of canonical text\n", trees, bytes);
}

/* Random bytes, valid UTF-8 or not: the fast path either agrees with jansson or declines exactly
 * where jansson fails. */
static void random_bytes_agree_or_decline(void)
{
    jgen_seed(0xb17e5);
    unsigned declined = 0;
    for (unsigned i = 0; i < 100000; i++) {
        unsigned char b[8];
        size_t n = jgen_below(sizeof(b) + 1);
        for (size_t k = 0; k < n; k++)
            b[k] = jgen_below(2) ? (unsigned char)(0x80 | jgen_below(0x80))
                                 : (unsigned char)jgen_next();
        json_t *s = json_stringn_nocheck((const char *)b, n);
        _cleanup_free_ char *want = json_dumps(s, FLAGS);
        _cleanup_free_ char *got = NULL;
        int r = api_json_canonical_fast(s, &got);
        if (!want) {
            CHECK_INT(r, ==, -EILSEQ);
            declined++;
        } else {
            CHECK_INT(r, ==, 0);
            CHECK_STR(got, want);
        }
        json_decref(s);
    }
    printf("# 100000 random byte strings, %u not UTF-8\n", declined);
    CHECK_INT(declined, >, 1000);
    CHECK_INT(declined, <, 99000);
}

CHECK_MAIN(CASE(fixture_files_dump_as_jansson), CASE(scalars_and_empty_containers),
           CASE(keys_sort_by_bytes), CASE(utf8_is_checked_as_jansson_does), CASE(depth_is_bounded),
           CASE(random_trees_dump_as_jansson), CASE(random_bytes_agree_or_decline))
