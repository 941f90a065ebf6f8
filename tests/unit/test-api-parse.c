/* Unit tests for pkg/api's JSON parser (parse.c): api_json_loadb() must return what jansson's
 * json_loadb() returns for every input — the same tree (json_equal, and the same canonical bytes,
 * so integers stay integers and -0.0 stays -0.0), NULL exactly when jansson gives NULL, and the
 * same json_error_t to the byte, success or not — and its fast path must take every document
 * jansson takes but the few it leaves to jansson on purpose. Checked with flags 0 and
 * JSON_REJECT_DUPLICATES (the ones it handles) on: every file under tests/, manifests/ and
 * fuzz/corpus/ (whole and line by line), hand-picked edge cases, random trees dumped with many
 * jansson flags, 100,000 random strings full of escapes, surrogates, control characters and
 * invalid UTF-8, and random mutations of valid documents (truncated, bytes changed, inserted or
 * removed, keys duplicated). Each input is parsed from a heap copy of exactly its length, so
 * ASan sees any read past it. STRATUS_PARSE_SEED=N picks other random inputs. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/object.h"
#include "api/parse.h"
#include "api/utf8.h"
#include "base/alloc.h"
#include "check.h"
#include "json-gen.h"

#define RD JSON_REJECT_DUPLICATES

static const size_t handled_flags[] = {0, RD};
/* Flags the fast path leaves to jansson: api_json_loadb must still agree. */
static const size_t other_flags[] = {JSON_DECODE_ANY,
                                     JSON_DISABLE_EOF_CHECK,
                                     JSON_ALLOW_NUL,
                                     JSON_DECODE_INT_AS_REAL,
                                     RD | JSON_DECODE_ANY | JSON_ALLOW_NUL,
                                     RD | JSON_DISABLE_EOF_CHECK};

static uint64_t seed_from_env(uint64_t fallback)
{
    const char *env = getenv("STRATUS_PARSE_SEED");
    return env ? strtoull(env, NULL, 0) : fallback;
}

/* text as C source, cut at 160 bytes, for failure messages. */
static char *describe(const char *text, size_t len)
{
    size_t n = len < 160 ? len : 160;
    char *o = xmalloc(n * 4 + 16), *w = o;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            *w++ = (char)c;
        else
            w += sprintf(w, "\\x%02x", c);
    }
    strcpy(w, n < len ? "..." : "");
    return o;
}

static void error_mismatch(const json_error_t *want, const json_error_t *got, const char *what,
                           const char *text, size_t len, size_t flags)
{
    _cleanup_free_ char *d = describe(text, len);
    check_fail(__FILE__, __LINE__,
               "%s, flags %#zx: errors differ on \"%s\"\n"
               "  jansson %d:%d@%d %s (%s) code %d\n  ours    %d:%d@%d %s (%s) code %d",
               what, flags, d, want->line, want->column, want->position, want->text, want->source,
               json_error_code(want), got->line, got->column, got->position, got->text, got->source,
               json_error_code(got));
}

/* Checks that two trees are the same: json_equal, and the same canonical bytes (which tells
 * integers from reals and -0.0 from 0.0). */
static void check_same_tree(const json_t *want, const json_t *got, const char *what,
                            const char *text, size_t len)
{
    _cleanup_free_ char *cw = api_json_canonical(want), *cg = api_json_canonical(got);
    if (!json_equal(want, got) || strcmp(cw, cg) != 0) {
        _cleanup_free_ char *d = describe(text, len);
        check_fail(__FILE__, __LINE__, "%s: trees differ on \"%s\"\n  jansson %s\n  ours    %s",
                   what, d, cw, cg);
    }
}

typedef enum {
    MUST_TAKE,   /* the fast path must take whatever jansson takes */
    MAY_DECLINE, /* one of the documented cases left to jansson */
} fast_rule;

/* Parses text[0..len) with flags by jansson, api_json_loadb and the fast path, from a heap copy
 * of exactly len bytes, and checks they agree (the json_error_t to the byte: both start from the
 * same garbage). Returns whether jansson took it. */
static bool check_agree(const char *text, size_t len, size_t flags, fast_rule rule,
                        const char *what)
{
    /* jansson skips a NUL byte it read ahead and put back (after a number or a literal): the
     * fast path leaves any NUL byte to it. */
    if (memchr(text, '\0', len))
        rule = MAY_DECLINE;
    char *copy = xmalloc(len ? len : 1);
    memcpy(copy, text, len);
    json_error_t want_e, got_e;
    memset(&want_e, 0xA5, sizeof(want_e));
    memset(&got_e, 0xA5, sizeof(got_e));
    json_t *want = json_loadb(copy, len, flags, &want_e);
    json_t *got = api_json_loadb(copy, len, flags, &got_e);
    json_t *fast = api_json_parse_fast(copy, len, flags);
    if (!want != !got) {
        _cleanup_free_ char *d = describe(text, len);
        check_fail(__FILE__, __LINE__, "%s, flags %#zx: jansson %s, ours %s on \"%s\" (%s)", what,
                   flags, want ? "parses" : "fails", got ? "parses" : "fails", d,
                   want ? got_e.text : want_e.text);
    }
    if (memcmp(&want_e, &got_e, sizeof(want_e)) != 0)
        error_mismatch(&want_e, &got_e, what, text, len, flags);
    if (want)
        check_same_tree(want, got, what, text, len);
    if (fast) {
        if (!want) {
            _cleanup_free_ char *d = describe(text, len);
            check_fail(__FILE__, __LINE__, "%s, flags %#zx: the fast path took \"%s\" (%s)", what,
                       flags, d, want_e.text);
        }
        check_same_tree(want, fast, what, text, len);
        if (flags & ~(size_t)RD)
            check_fail(__FILE__, __LINE__, "%s: the fast path took flags %#zx", what, flags);
    } else if (want && rule == MUST_TAKE && !(flags & ~(size_t)RD)) {
        _cleanup_free_ char *d = describe(text, len);
        check_fail(__FILE__, __LINE__, "%s, flags %#zx: the fast path declined \"%s\"", what, flags,
                   d);
    }
    json_decref(want);
    json_decref(got);
    json_decref(fast);
    free(copy);
    return want != NULL;
}

/* check_agree with both handled flags; returns whether jansson took it with flags 0. */
static bool check_agree_handled(const char *text, size_t len, fast_rule rule, const char *what)
{
    bool ok = check_agree(text, len, 0, rule, what);
    check_agree(text, len, RD, rule, what);
    return ok;
}

/* ---- files */

typedef struct file_counts {
    unsigned files, parsed, lines, lines_parsed;
} file_counts;

static void check_file(const char *path, file_counts *n)
{
    FILE *f = fopen(path, "rb");
    CHECK(f);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    struct stat st;
    CHECK(fstat(fileno(f), &st) == 0);
    len = (size_t)st.st_size;
    data = xmalloc(len + 1);
    CHECK(fread(data, 1, len, f) == len);
    fclose(f);
    n->files++;
    n->parsed += check_agree_handled(data, len, MUST_TAKE, path);
    /* The store-response fuzz inputs start with a byte that picks the reply's kind. */
    if (len > 0)
        n->parsed += check_agree_handled(data + 1, len - 1, MUST_TAKE, path);
    /* Line by line too: the watch-stream corpus is one document a line, golden files hold some. */
    if (!memchr(data, '\n', len))
        return;
    for (size_t start = 0; start < len;) {
        const char *nl = memchr(data + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - data) : len;
        n->lines++;
        n->lines_parsed += check_agree_handled(data + start, end - start, MUST_TAKE, path);
        start = end + 1;
    }
}

static void check_files_under(const char *dir, file_counts *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, de->d_name);
        if (de->d_type == DT_DIR)
            check_files_under(path, n);
        else if (de->d_type == DT_REG)
            check_file(path, n);
    }
    closedir(d);
}

static void files_parse_as_jansson(void)
{
    const char *root = getenv("STRATUS_SOURCE_DIR");
    static const char *dirs[] = {"tests", "manifests", "fuzz/corpus"};
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        _cleanup_free_ char *dir = xasprintf("%s/%s", root ? root : ".", dirs[i]);
        file_counts n = {0};
        check_files_under(dir, &n);
        printf("# %s: %u files, %u of them JSON; %u lines, %u of them JSON\n", dirs[i], n.files,
               n.parsed, n.lines, n.lines_parsed);
        CHECK_INT(n.parsed, >=, 4);
        if (i == 0)
            CHECK_INT(n.parsed, >=, 10); /* api-data/golden */
    }
}

/* ---- hand-picked cases */

typedef struct edge {
    const char *text;
    size_t len; /* 0: strlen(text) */
    fast_rule rule;
} edge;

#define E(t)                                                                                       \
    {                                                                                              \
        t, 0, MUST_TAKE                                                                            \
    }
#define ELEN(t)                                                                                    \
    {                                                                                              \
        t, sizeof(t) - 1, MUST_TAKE                                                                \
    }
#define ESLOW(t)                                                                                   \
    {                                                                                              \
        t, 0, MAY_DECLINE                                                                          \
    }

static const edge edges[] = {
    /* structure and whitespace */
    E("{}"),
    E("[]"),
    E(" \t\r\n{ \t\r\n} \t\r\n"),
    E("[ 1 , [ ] , { } , { \"a\" : [ ] } ]"),
    E("\f{}"),
    E("\v[]"),
    E("{}x"),
    E("{} {}"),
    E("[]]"),
    E(""),
    E("   "),
    E("1"),
    E("\"a\""),
    E("null"),
    E("true"),
    E("["),
    E("{"),
    E("[1"),
    E("[1,"),
    E("{\"a\""),
    E("{\"a\":"),
    E("{\"a\":1"),
    E("{\"a\":1,"),
    E("[1,]"),
    E("[,]"),
    E("[,1]"),
    E("[1,,2]"),
    E("[1 2]"),
    E("{,}"),
    E("{\"a\"}"),
    E("{\"a\":}"),
    E("{\"a\":1,}"),
    E("{\"a\" 1}"),
    E("{\"a\"::1}"),
    E("{1:1}"),
    E("{'a':1}"),
    E("{a:1}"),
    E("[}"),
    E("{]"),
    E("[{]}"),
    E("[true,false,null]"),
    E("[tru]"),
    E("[trueish]"),
    E("[True]"),
    E("[nul]"),
    E("[null1]"),
    E("[falsetrue]"),
    E("[true false]"),
    /* numbers */
    E("[0]"),
    E("[-0]"),
    E("[-0.0]"),
    E("[0.0]"),
    E("[01]"),
    E("[-01]"),
    E("[00]"),
    E("[-]"),
    E("[+1]"),
    E("[.5]"),
    E("[1.]"),
    E("[1.e5]"),
    E("[1e]"),
    E("[1e+]"),
    E("[1E-5]"),
    E("[1e+05]"),
    E("[1.5e3]"),
    E("[0e0]"),
    E("[-0e-0]"),
    E("[1x]"),
    E("[1.5.5]"),
    E("[--1]"),
    E("[-a]"),
    E("[0x10]"),
    E("[Infinity]"),
    E("[NaN]"),
    E("[1000000000000000000]"),
    E("[9223372036854775807]"),
    E("[9223372036854775808]"),
    E("[-9223372036854775808]"),
    E("[-9223372036854775809]"),
    E("[18446744073709551615]"),
    E("[18446744073709551616]"),
    E("[99999999999999999999]"),
    E("[123456789012345678901234567890]"),
    E("[123456789012345678901234567890.5]"),
    E("[1e308]"),
    E("[1e309]"),
    E("[-1e309]"),
    E("[1E400]"),
    E("[1e-400]"),
    E("[-1e-400]"),
    E("[4.9e-324]"),
    E("[2.2250738585072014e-308]"),
    E("[1.7976931348623157e308]"),
    E("[1.7976931348623158e308]"),
    E("[1.7976931348623159e308]"),
    E("[0.1]"),
    E("[0.30000000000000004]"),
    E("{\"ratio\":1.0,\"n\":1}"),
    ESLOW("[0.1000000000000000000000000000000000000000000000000000000000000000001]"),
    /* strings */
    E("[\"\"]"),
    E("[\"a\\\"b\"]"),
    E("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]"),
    E("[\"\\x\"]"),
    E("[\"\\U0041\"]"),
    E("[\"\\'\"]"),
    E("[\"\\u00e9\"]"),
    E("[\"\\u00E9\\u20ac\"]"),
    E("[\"\\u0041\"]"),
    E("[\"\\u0000\"]"),
    E("[\"a\\u0000b\"]"),
    E("[\"\\uD834\\uDD1E\"]"),
    E("[\"\\ud834\\udd1e\"]"),
    E("[\"\\uD834\"]"),
    E("[\"\\uD834 \"]"),
    E("[\"\\uDD1E\"]"),
    E("[\"\\uD834\\u0041\"]"),
    E("[\"\\uD834\\uD834\"]"),
    E("[\"\\uD834x\"]"),
    E("[\"\\uD834\\\"]"),
    E("[\"\\uD834\\n\"]"),
    E("[\"\\uD834\\u12\"]"),
    E("[\"\\uDC00\\uD800\"]"),
    E("[\"\\uD800\\uDC00\\uDBFF\\uDFFF\"]"),
    E("[\"\\uFFFF\\uFFFE\\uFEFF\"]"),
    E("[\"\\u12\"]"),
    E("[\"\\u12G4\"]"),
    E("[\"\\u\"]"),
    E("[\"\\u"),
    E("[\"\\"),
    E("[\"\\\"]"),
    E("[\"abc]"),
    E("[\"abc"),
    E("[\"a\nb\"]"),
    E("[\"a\tb\"]"),
    E("[\"a\rb\"]"),
    E("[\"\x01\"]"),
    E("[\"\x1f\"]"),
    E("[\"\x7f\"]"),
    E("[\"\xc3\xa9\"]"),
    E("[\"\xc3\"]"),
    E("[\"\xc3\"x]"),
    E("[\"\xc3\x28\"]"),
    E("[\"\xe2\x82\xac\"]"),
    E("[\"\xe2\x82\"]"),
    E("[\"\xed\x9f\xbf\"]"),
    E("[\"\xed\xa0\x80\"]"),
    E("[\"\xf0\x9f\x98\x80\"]"),
    E("[\"\xf4\x8f\xbf\xbf\"]"),
    E("[\"\xf4\x90\x80\x80\"]"),
    E("[\"\xf5\x80\x80\x80\"]"),
    E("[\"\xc0\xaf\"]"),
    E("[\"\xc1\xbf\"]"),
    E("[\"\xe0\x80\xaf\"]"),
    E("[\"\xf0\x80\x80\xaf\"]"),
    E("[\"\x80\"]"),
    E("[\"\xbf\"]"),
    E("[\"\xfe\"]"),
    E("[\"\xff\"]"),
    E("[\"abcdefgh\xc3\xa9ijklmnop\xe2\x82\xacqrstuvw\\n\"]"),
    E("[\xc3\xa9]"),
    E("\xef\xbb\xbf{}"),
    E("{}\xc3\xa9"),
    E("[\"\xc3\xa9\"]\xff"),
    ELEN("[\"a\0b\"]"),
    ELEN("{}\0"),
    ELEN("[1]\0[2]"),
    ELEN("\0{}"),
    ELEN("[\0]"),
    ELEN("[1\0]"),
    ELEN("{\"c\":-6\0}"),
    ELEN("[true\0,false\0,null\0]"),
    ELEN("[1.5\0,2e3\0]"),
    ELEN("[1\0\0]"),
    ELEN("[\"a\"\0]"),
    /* keys and duplicates */
    E("{\"\":1}"),
    E("{\"\":1,\"\":2}"),
    E("{\"a\\u0000b\":1}"),
    E("{\"\\u0000\":1}"),
    E("{\"\\u0061\":1}"),
    E("{\"\xc3\xa9\":1}"),
    E("{\"\xc3\":1}"),
    E("{\"a\x01\":1}"),
    E("{\"a\":1,\"a\":2}"),
    E("{\"a\":1,\"\\u0061\":2}"),
    E("{\"a\":{\"b\":1,\"b\":[]}}"),
    E("{\"a\":1,\"b\":2,\"a\":3}"),
    E("{\"a\":[1,{\"x\":1}],\"a\":{}}"),
    E("{\"a\\n\":1,\"b\":\"x\\ty\"}"),
    E("{\"\\u00e9\\u00e9\":{\"\\u00e8\":\"\\u00e7\",\"\\u00e8\":\"x\"}}"),
    E("{\"k\\\"\":{\"k\\\"\":{\"k\\\"\":\"\\\\\"}}}"),
};

static void edge_cases_parse_as_jansson(void)
{
    unsigned taken = 0, failed = 0;
    for (size_t i = 0; i < ELEMENTSOF(edges); i++) {
        const edge *e = &edges[i];
        size_t len = e->len ? e->len : strlen(e->text);
        char what[32];
        snprintf(what, sizeof(what), "edge %zu", i);
        if (check_agree_handled(e->text, len, e->rule, what))
            taken++;
        else
            failed++;
        for (size_t k = 0; k < ELEMENTSOF(other_flags); k++)
            check_agree(e->text, len, other_flags[k], MAY_DECLINE, what);
    }
    printf("# %zu edge cases: jansson takes %u, refuses %u\n", ELEMENTSOF(edges), taken, failed);
    CHECK_INT(taken, >=, 40);
    CHECK_INT(failed, >=, 80);
}

/* Results of a few that are easy to get wrong, stated outright rather than only compared. */
static void edge_results_are_what_jansson_says(void)
{
    json_t *j =
        api_json_loadb("[-0,-0.0,9223372036854775807,-9223372036854775808,1e-400]", 57, 0, NULL);
    CHECK(j);
    CHECK(json_is_integer(json_array_get(j, 0)) && json_integer_value(json_array_get(j, 0)) == 0);
    CHECK(json_is_real(json_array_get(j, 1)));
    CHECK_INT(json_integer_value(json_array_get(j, 2)), ==, INT64_MAX);
    CHECK_INT(json_integer_value(json_array_get(j, 3)), ==, INT64_MIN);
    CHECK(json_is_real(json_array_get(j, 4)) && json_real_value(json_array_get(j, 4)) == 0.0);
    json_decref(j);
    /* Without JSON_REJECT_DUPLICATES the last value wins. */
    j = api_json_loadb("{\"a\":1,\"a\":2}", 13, 0, NULL);
    CHECK(j);
    CHECK_INT(json_object_size(j), ==, 1);
    CHECK_INT(json_integer_value(json_object_get(j, "a")), ==, 2);
    json_decref(j);
    json_error_t e;
    CHECK(!api_json_loadb("{\"a\":1,\"a\":2}", 13, RD, &e));
    CHECK_STR(e.text, "duplicate object key near '\"a\"'");
    CHECK(!api_json_loadb("[9223372036854775808]", 21, 0, &e));
    CHECK_STR(e.text, "too big integer near '9223372036854775808'");
    /* A success leaves the position at the end of input, as jansson does. */
    j = api_json_loadb("{} ", 3, 0, &e);
    CHECK(j);
    CHECK_INT(e.position, ==, 3);
    CHECK_INT(e.line, ==, -1);
    CHECK_STR(e.source, "<buffer>");
    json_decref(j);
    /* NULL text, NULL error. */
    CHECK(!api_json_loadb(NULL, 0, 0, &e));
    CHECK_STR(e.text, "wrong arguments");
    CHECK(!api_json_loadb("[", 1, 0, NULL));
    CHECK(!api_json_parse_fast(NULL, 0, 0));
}

/* api_json_loads against json_loads: the same, with "<string>" as the source. */
static void loads_is_json_loads(void)
{
    static const char *texts[] = {
        "{\"a\":[1,2.5,\"\\u00e9\",true,null]}",
        "",
        "[",
        "{} x",
        "[\"\\u0000\"]",
        "{\"a\":1,\"a\":2}",
        " [ ] ",
    };
    for (size_t i = 0; i < ELEMENTSOF(texts); i++)
        for (size_t f = 0; f < ELEMENTSOF(handled_flags); f++) {
            json_error_t want_e, got_e;
            memset(&want_e, 0x3c, sizeof(want_e));
            memset(&got_e, 0x3c, sizeof(got_e));
            json_t *want = json_loads(texts[i], handled_flags[f], &want_e);
            json_t *got = api_json_loads(texts[i], handled_flags[f], &got_e);
            CHECK(!want == !got);
            if (memcmp(&want_e, &got_e, sizeof(want_e)) != 0)
                error_mismatch(&want_e, &got_e, "loads", texts[i], strlen(texts[i]),
                               handled_flags[f]);
            if (want)
                check_same_tree(want, got, "loads", texts[i], strlen(texts[i]));
            json_decref(want);
            json_decref(got);
        }
    json_error_t want_e, got_e;
    memset(&want_e, 0, sizeof(want_e));
    memset(&got_e, 0, sizeof(got_e));
    CHECK(!json_loads(NULL, 0, &want_e));
    CHECK(!api_json_loads(NULL, 0, &got_e));
    CHECK(memcmp(&want_e, &got_e, sizeof(want_e)) == 0);
}

/* Nesting: the fast path takes up to API_PARSE_DEPTH_MAX containers, jansson the rest (and
 * refuses past its own limit). */
static void depth_is_bounded(void)
{
    static const size_t depths[] = {1,
                                    2,
                                    API_PARSE_DEPTH_MAX - 1,
                                    API_PARSE_DEPTH_MAX,
                                    API_PARSE_DEPTH_MAX + 1,
                                    JSON_PARSER_MAX_DEPTH - 1,
                                    JSON_PARSER_MAX_DEPTH,
                                    JSON_PARSER_MAX_DEPTH + 1};
    for (size_t i = 0; i < ELEMENTSOF(depths); i++) {
        size_t n = depths[i];
        for (int kind = 0; kind < 3; kind++) {
            /* [[...]], [[...[1]...]], {"a":{"a":...{}}} */
            char *t = xmalloc(n * 6 + 8), *w = t;
            for (size_t k = 0; k < n; k++)
                w += kind == 2 ? sprintf(w, "%s", k ? "\"a\":{" : "{") : sprintf(w, "[");
            if (kind == 1)
                *w++ = '1';
            for (size_t k = 0; k < n; k++)
                *w++ = kind == 2 ? '}' : ']';
            char what[64];
            snprintf(what, sizeof(what), "depth %zu, kind %d", n, kind);
            fast_rule rule = n <= API_PARSE_DEPTH_MAX ? MUST_TAKE : MAY_DECLINE;
            check_agree_handled(t, (size_t)(w - t), rule, what);
            json_t *fast = api_json_parse_fast(t, (size_t)(w - t), 0);
            CHECK(!fast == (n > API_PARSE_DEPTH_MAX));
            json_decref(fast);
            free(t);
        }
    }
}

/* Strings past the decoding buffer on the stack (1 KiB), as values and as keys whose value has
 * escapes too (the key must survive the value's decoding). */
static void long_strings_parse_as_jansson(void)
{
    static const char *pieces[] = {"ab",           "\\n",  "\\u00e9", "\\uD834\\uDD1E",
                                   "\xe2\x82\xac", "\\\"", "\\/",     "x"};
    for (size_t size = 500; size <= 40000; size *= 3) {
        char *s = xmalloc(size * 12 + 64), *w = s;
        for (size_t i = 0; i < size; i++)
            w += sprintf(w, "%s", pieces[i % ELEMENTSOF(pieces)]);
        *w = '\0';
        _cleanup_free_ char *arr = xasprintf("[\"%s\",\"%s\"]", s, s + 4);
        _cleanup_free_ char *obj = xasprintf("{\"%s\":\"\\t%s\",\"b\\n\":{\"%s\":1}}", s, s, s);
        check_agree_handled(arr, strlen(arr), MUST_TAKE, "long strings");
        check_agree_handled(obj, strlen(obj), MUST_TAKE, "long keys");
        free(s);
    }
}

/* ---- random trees, dumped with jansson's flags */

static void random_trees_parse_as_jansson(void)
{
    static const size_t dump_flags[] = {
        0,
        JSON_COMPACT,
        JSON_INDENT(2),
        JSON_INDENT(1) | JSON_SORT_KEYS,
        JSON_COMPACT | JSON_ENSURE_ASCII,
        JSON_ENSURE_ASCII | JSON_INDENT(3),
        JSON_COMPACT | JSON_ESCAPE_SLASH,
        JSON_COMPACT | JSON_REAL_PRECISION(4),
        JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY,
        JSON_ENCODE_ANY | JSON_ENSURE_ASCII,
    };
    uint64_t seed = seed_from_env(0x7a55e);
    jgen_seed(seed);
    unsigned trees = 20000, parsed = 0;
    size_t bytes = 0;
    for (unsigned i = 0; i < trees; i++) {
        json_t *t = jgen_below(4) ? json_object() : jgen_tree(0);
        if (json_is_object(t) && json_object_size(t) == 0)
            for (unsigned k = jgen_below(10); k > 0; k--) {
                char key[20 * 4];
                size_t len = jgen_text(key, 10);
                json_object_setn_new(t, key, len, jgen_tree(1));
            }
        size_t flags = dump_flags[i % ELEMENTSOF(dump_flags)];
        char *text = json_dumps(t, flags | JSON_ENCODE_ANY);
        CHECK(text);
        char what[64];
        snprintf(what, sizeof(what), "seed %#llx, tree %u", (unsigned long long)seed, i);
        parsed += check_agree_handled(text, strlen(text), MUST_TAKE, what);
        bytes += strlen(text);
        free(text);
        json_decref(t);
    }
    printf("# %u random trees (%zu bytes), %u parsed\n", trees, bytes, parsed);
    /* Some trees hold NUL (refused as \u0000) or are not containers: most are neither. */
    CHECK_INT(parsed, >, trees / 2);
    CHECK_INT(parsed, <, trees);
}

/* ---- random strings */

static size_t put_hex4(char *o, unsigned v)
{
    static const char lower[] = "0123456789abcdef", upper[] = "0123456789ABCDEF";
    const char *hex = jgen_below(2) ? lower : upper;
    o[0] = '\\';
    o[1] = 'u';
    for (int i = 0; i < 4; i++)
        o[2 + i] = hex[(v >> (12 - 4 * i)) & 0xF];
    return 6;
}

/* One piece of a string's body that jansson takes: plain ASCII, a short escape, a \u escape of
 * a character or a surrogate pair, UTF-8 of 2 to 4 bytes. */
static size_t good_piece(char *o)
{
    switch (jgen_below(8)) {
    case 0 ... 2: {
        char c;
        do
            c = (char)(0x20 + jgen_below(0x5f));
        while (c == '"' || c == '\\');
        o[0] = c;
        return 1;
    }
    case 3:
        o[0] = '\\';
        o[1] = "\"\\/bfnrt"[jgen_below(8)];
        return 2;
    case 4: {
        unsigned v;
        do
            v = jgen_below(4) == 0 ? jgen_below(0x100) : jgen_below(0x10000);
        while (v == 0 || (v >= 0xD800 && v <= 0xDFFF));
        return put_hex4(o, v);
    }
    case 5: {
        size_t n = put_hex4(o, 0xD800 + jgen_below(0x400));
        return n + put_hex4(o + n, 0xDC00 + jgen_below(0x400));
    }
    default: {
        uint32_t cp;
        do
            cp = 0x80 + jgen_below(0x110000 - 0x80);
        while (cp >= 0xD800 && cp <= 0xDFFF);
        return api_utf8_put(o, cp);
    }
    }
}

/* One piece of a string's body that jansson may well refuse (one in 10 is a good one). */
static size_t bad_piece(char *o)
{
    static const char *bad_utf8[] = {"\xc0\x80",
                                     "\xc1\xbf",
                                     "\xe0\x80\x80",
                                     "\xe0\x9f\xbf",
                                     "\xed\xa0\x80",
                                     "\xed\xbf\xbf",
                                     "\xf0\x80\x80\x80",
                                     "\xf0\x8f\xbf\xbf",
                                     "\xf4\x90\x80\x80",
                                     "\xf5\x80\x80\x80",
                                     "\xc2",
                                     "\xe2\x82",
                                     "\xf0\x9d\x84",
                                     "\xc2\x41"};
    switch (jgen_below(10)) {
    case 0: /* any escape letter */
        o[0] = '\\';
        o[1] = (char)(0x20 + jgen_below(0x5f));
        return 2;
    case 1: /* any \u: surrogates and NUL included */
        return put_hex4(o, jgen_below(4) == 0 ? jgen_below(0x100) : jgen_below(0x10000));
    case 2: /* a lone or badly paired surrogate */
        switch (jgen_below(4)) {
        case 0:
            return put_hex4(o, 0xD800 + jgen_below(0x400));
        case 1:
            return put_hex4(o, 0xDC00 + jgen_below(0x400));
        case 2: {
            size_t n = put_hex4(o, 0xD800 + jgen_below(0x400));
            return n + put_hex4(o + n, jgen_below(0x10000));
        }
        default: {
            size_t n = put_hex4(o, 0xD800 + jgen_below(0x400));
            memcpy(o + n, "\\u12", 4);
            return n + 4;
        }
        }
    case 3: /* any byte from 0x80 */
        o[0] = (char)(0x80 + jgen_below(0x80));
        return 1;
    case 4: {
        const char *b = bad_utf8[jgen_below(ELEMENTSOF(bad_utf8))];
        memcpy(o, b, strlen(b));
        return strlen(b);
    }
    case 5: /* a raw control character, NUL included */
        o[0] = (char)jgen_below(0x20);
        return 1;
    case 6: /* DEL is fine; a quote ends the string early */
        o[0] = jgen_below(4) == 0 ? '"' : '\x7f';
        return 1;
    case 7: /* a short or broken \u */
        memcpy(o, "\\u00g", 5);
        return 2 + jgen_below(4);
    case 8: /* \u0000: refused in values and keys */
        memcpy(o, "\\u0000", 6);
        return 6;
    default:
        return good_piece(o);
    }
}

static void random_strings_parse_as_jansson(void)
{
    uint64_t seed = seed_from_env(0x57a1b);
    jgen_seed(seed);
    unsigned n = 100000, taken = 0, long_ones = 0;
    size_t allocated = 4096;
    char *doc = xmalloc(allocated);
    for (unsigned i = 0; i < n; i++) {
        /* Most strings are short, like keys; one in 100 outgrows the stack buffer. Half are good
         * but for at most one piece, so about as many pass as fail. */
        unsigned pieces = jgen_below(100) == 0 ? 300 + jgen_below(1500) : jgen_below(12);
        bool one_bad = jgen_below(2);
        unsigned bad_at = one_bad ? jgen_below(pieces + 1) : 0;
        size_t len = 2;
        memcpy(doc, "{\"", 2);
        for (unsigned k = 0; k < pieces; k++) {
            if (allocated - len < 32)
                doc = xrealloc(doc, allocated *= 2);
            bool bad = one_bad ? k == bad_at : true;
            len += bad ? bad_piece(doc + len) : good_piece(doc + len);
        }
        if (allocated - len < 32)
            doc = xrealloc(doc, allocated *= 2);
        long_ones += len - 2 > 1024;
        /* The string as a key, {"<body>":[0]}, then as a value, ["<body>"]. */
        memcpy(doc + len, "\":[0]}", 6);
        char what[64];
        snprintf(what, sizeof(what), "seed %#llx, string %u", (unsigned long long)seed, i);
        bool as_key = check_agree_handled(doc, len + 6, MUST_TAKE, what);
        doc[0] = '[';
        memcpy(doc + len, "\"]", 2);
        bool as_value = check_agree_handled(doc, len + 2, MUST_TAKE, what);
        /* Keys are refused for what values are refused for, no more (NUL in both). */
        CHECK(as_key == as_value);
        taken += as_value;
    }
    free(doc);
    printf("# %u random strings (%u longer than 1 KiB): jansson takes %u\n", n, long_ones, taken);
    CHECK_INT(taken, >, n / 5);
    CHECK_INT(taken, <, n * 4 / 5);
    CHECK_INT(long_ones, >, 100);
}

/* ---- mutations of valid documents */

/* Shaped like the objects Stratus parses most: a bound Instance, a ledger, a Node. */
static const char *const base_documents[] = {
    "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"creationTimestamp\":"
    "\"2026-11-22T02:31:00Z\",\"finalizers\":[\"stratus.io/node-agent\"],\"generation\":1,"
    "\"labels\":{\"app\":\"web\",\"tier\":\"frontend\"},\"name\":\"web-1\",\"namespace\":"
    "\"default\",\"resourceVersion\":\"1234\",\"uid\":\"3f1c2a9e-7b4d-4e2a-9c61-0d8e5b7a4f12\"},"
    "\"spec\":{\"flavor\":\"m1.small\",\"image\":\"cirros-like\",\"networks\":[{\"fixedIp\":"
    "\"10.88.0.10\",\"network\":\"default\"}],\"nodeName\":\"node-0042\"},\"status\":{"
    "\"conditions\":[{\"lastTransitionTime\":\"2026-11-22T02:31:01Z\",\"message\":"
    "\"bound to node \\\"node-0042\\\"\",\"reason\":\"Bound\",\"status\":\"True\",\"type\":"
    "\"Scheduled\"}],\"phase\":\"Scheduled\"}}",
    "{\"instances\":{\"9e3779b9-7b4d-4e2a-9c61-000000000000\":{\"diskGiB\":1,\"memoryMiB\":512,"
    "\"name\":\"web-0\",\"namespace\":\"default\",\"vcpus\":1},\"3c6ef372-7b4d-4e2a-9c61-"
    "000000001eef\":{\"diskGiB\":20,\"memoryMiB\":2048,\"name\":\"db-\\u00e9\",\"namespace\":"
    "\"prod\",\"vcpus\":-2}}}",
    "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Node\",\"metadata\":{\"labels\":{"
    "\"topology.stratus.io/zone\":\"zone-a\"},\"name\":\"node-7\"},\"spec\":{\"allocationRatios\":"
    "{\"cpu\":1.0,\"disk\":1.5,\"memory\":0.9},\"unschedulable\":false},\"status\":{\"capacity\":"
    "{\"vcpus\":16,\"memoryMiB\":65536},\"heartbeat\":null,\"ratio\":-1.25e-3}}",
    " [ 1 , -0 , 2.5E+3 , \"a\\tb\" , { \"k\" : [ true , false , null ] } ] \n",
};

/* Where the keys of text start: the '"' of each string followed by ':'. */
static size_t key_starts(const char *text, size_t len, size_t *ret, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n < max; i++) {
        if (text[i] != '"')
            continue;
        size_t k = i + 1;
        while (k < len && text[k] != '"')
            k += text[k] == '\\' ? 2 : 1;
        size_t after = k + 1;
        while (after < len && strchr(" \t\r\n", text[after]))
            after++;
        if (after < len && text[after] == ':')
            ret[n++] = i;
        i = k;
    }
    return n;
}

/* One random change to doc: cut, a byte changed, inserted or removed, a key repeated. Returns a
 * malloc'd text in *ret and its length. */
static size_t mutate(const char *doc, size_t len, char **ret)
{
    static const char interesting[] = "\"\\{}[],: \t\n0123456789-+.eEtrufalsn\x00\x01\x1f\x7f\x80"
                                      "\xbf\xc0\xc3\xe2\xed\xf0\xf4\xf5\xff";
    char *t = xmalloc(len * 2 + 64);
    size_t n = len, at = jgen_below((unsigned)len + 1);
    memcpy(t, doc, len);
    unsigned char b = jgen_below(2) ? (unsigned char)interesting[jgen_below(sizeof(interesting))]
                                    : (unsigned char)jgen_next();
    switch (jgen_below(6)) {
    case 0: /* truncated */
        n = at;
        break;
    case 1: /* a byte changed */
        if (at < len)
            t[at] = (char)b;
        break;
    case 2: /* a byte inserted */
        memmove(t + at + 1, t + at, len - at);
        t[at] = (char)b;
        n++;
        break;
    case 3: /* a byte removed */
        if (at < len) {
            memmove(t + at, t + at + 1, len - at - 1);
            n--;
        }
        break;
    case 4: /* two bytes swapped */
        if (at + 1 < len) {
            char c = t[at];
            t[at] = t[at + 1];
            t[at + 1] = c;
        }
        break;
    default: { /* a key repeated: "k":0, inserted before the member, whose value then wins */
        size_t keys[256];
        size_t nk = key_starts(doc, len, keys, ELEMENTSOF(keys));
        if (nk == 0)
            break;
        size_t k = keys[jgen_below((unsigned)nk)], e = k + 1;
        while (e < len && doc[e] != '"')
            e += doc[e] == '\\' ? 2 : 1;
        e++;
        static const char *values[] = {":0,", ":{\"x\":[]},", ":\"v\",", ":null , "};
        const char *v = values[jgen_below(ELEMENTSOF(values))];
        size_t kl = e - k, vl = strlen(v);
        t = xrealloc(t, len + kl + vl + 1);
        memmove(t + k + kl + vl, doc + k, len - k);
        memcpy(t + k, doc + k, kl);
        memcpy(t + k + kl, v, vl);
        n = len + kl + vl;
    }
    }
    *ret = t;
    return n;
}

static void mutations_parse_as_jansson(void)
{
    uint64_t seed = seed_from_env(0x3a7a7e);
    jgen_seed(seed);
    /* The documents above and random trees dumped compactly and indented. */
    size_t n_docs = ELEMENTSOF(base_documents) + 200;
    char **docs = xnew(char *, n_docs);
    for (size_t i = 0; i < ELEMENTSOF(base_documents); i++)
        docs[i] = xstrdup(base_documents[i]);
    for (size_t i = ELEMENTSOF(base_documents); i < n_docs; i++) {
        json_t *t;
        char *text;
        do {
            t = json_object();
            for (unsigned k = 1 + jgen_below(8); k > 0; k--) {
                char key[10 * 4];
                size_t len = jgen_text(key, 6);
                json_object_setn_new(t, key, len, jgen_tree(1));
            }
            text = json_dumps(t, i % 2 ? JSON_COMPACT : JSON_INDENT(1));
            json_decref(t);
            json_t *back = json_loads(text, 0, NULL);
            if (back) {
                json_decref(back);
                break;
            }
            free(text); /* held NUL */
        } while (1);
        docs[i] = text;
    }
    unsigned n = 150000, taken = 0, duplicates_refused = 0;
    for (unsigned i = 0; i < n; i++) {
        const char *doc = docs[i % n_docs];
        char *t;
        size_t len = mutate(doc, strlen(doc), &t);
        char what[64];
        snprintf(what, sizeof(what), "seed %#llx, mutation %u", (unsigned long long)seed, i);
        bool ok = check_agree(t, len, 0, MUST_TAKE, what);
        bool ok_rd = check_agree(t, len, RD, MUST_TAKE, what);
        taken += ok;
        duplicates_refused += ok && !ok_rd;
        free(t);
    }
    for (size_t i = 0; i < n_docs; i++)
        free(docs[i]);
    free(docs);
    printf("# %u mutations: jansson takes %u, %u only without JSON_REJECT_DUPLICATES\n", n, taken,
           duplicates_refused);
    CHECK_INT(taken, >, n / 10);
    CHECK_INT(taken, <, n * 9 / 10);
    CHECK_INT(duplicates_refused, >, n / 20);
}

CHECK_MAIN(CASE(files_parse_as_jansson), CASE(edge_cases_parse_as_jansson),
           CASE(edge_results_are_what_jansson_says), CASE(loads_is_json_loads),
           CASE(depth_is_bounded), CASE(long_strings_parse_as_jansson),
           CASE(random_trees_parse_as_jansson), CASE(random_strings_parse_as_jansson),
           CASE(mutations_parse_as_jansson))
