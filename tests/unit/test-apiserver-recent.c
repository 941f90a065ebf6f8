/* Unit tests for the apiserver's recent values (pkg/apiserver/recent.c): newer revisions win,
 * deletions are remembered, the byte bound evicts the least recently used. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"

static int get(recent *r, const char *key, char **value, int64_t *rev)
{
    size_t len = 0;
    int e = recent_get(r, key, value, &len, rev);
    if (e == 0)
        CHECK_INT(len, ==, strlen(*value));
    return e;
}

static void newer_revisions_win(void)
{
    recent *r = recent_new(1 << 20);
    char *v = NULL;
    int64_t rev = 0;
    CHECK_INT(get(r, "/k", &v, &rev), ==, -ENOENT);
    recent_put(r, "/k", "{\"a\":1}", 7, 10);
    CHECK_OK(get(r, "/k", &v, &rev));
    CHECK_STR(v, "{\"a\":1}");
    CHECK_INT(rev, ==, 10);
    free(v);
    recent_put(r, "/k", "{\"a\":0}", 7, 9); /* late, older: ignored */
    recent_put(r, "/k", "{\"a\":1}", 7, 10);
    CHECK_OK(get(r, "/k", &v, &rev));
    CHECK_STR(v, "{\"a\":1}");
    free(v);
    recent_put(r, "/k", "{\"a\":2}", 7, 12);
    CHECK_OK(get(r, "/k", &v, &rev));
    CHECK_STR(v, "{\"a\":2}");
    CHECK_INT(rev, ==, 12);
    free(v);
    /* a deletion is known: nothing to guess from, and an older value cannot come back */
    recent_put(r, "/k", NULL, 0, 13);
    CHECK_INT(get(r, "/k", &v, &rev), ==, -ENOENT);
    recent_put(r, "/k", "{\"a\":2}", 7, 12);
    CHECK_INT(get(r, "/k", &v, &rev), ==, -ENOENT);
    recent_put(r, "/k", "{\"a\":3}", 7, 14); /* created again */
    CHECK_OK(get(r, "/k", &v, &rev));
    CHECK_STR(v, "{\"a\":3}");
    free(v);
    recent_counts c;
    recent_stats(r, &c);
    CHECK_INT(c.keys, ==, 1);
    CHECK_INT(c.hits, ==, 4);
    CHECK_INT(c.misses, ==, 3);
    recent_free(r);
}

static void bounded_by_bytes_lru(void)
{
    const size_t bound = 64 << 10;
    recent *r = recent_new(bound);
    char key[32], value[1000];
    memset(value, 'x', sizeof(value) - 1);
    value[sizeof(value) - 1] = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "/k/%d", i);
        recent_put(r, key, value, strlen(value), i + 1);
        if (i >= 1) { /* keep /k/0 in use: it must survive */
            char *v = NULL;
            int64_t rev;
            CHECK_OK(get(r, "/k/0", &v, &rev));
            free(v);
        }
    }
    recent_counts c;
    recent_stats(r, &c);
    CHECK(c.bytes <= bound);
    CHECK(c.keys > 20 && c.keys < 70); /* ~1 KiB each */
    char *v = NULL;
    int64_t rev;
    CHECK_OK(get(r, "/k/999", &v, &rev)); /* the newest */
    free(v);
    CHECK_INT(get(r, "/k/500", &v, &rev), ==, -ENOENT); /* evicted */
    CHECK_OK(get(r, "/k/0", &v, &rev));                 /* used all along */
    free(v);
    /* a value larger than a quarter of the bound is not kept, but known to exist (an Apply must
     * not guess it absent) */
    char *big = malloc(bound);
    memset(big, 'y', bound - 1);
    big[bound - 1] = 0;
    recent_put(r, "/big", big, strlen(big), 5000);
    CHECK_INT(get(r, "/big", &v, &rev), ==, -EFBIG);
    recent_put(r, "/big", NULL, 0, 5001); /* then deleted */
    CHECK_INT(get(r, "/big", &v, &rev), ==, -ENOENT);
    free(big);
    recent_stats(r, &c);
    CHECK(c.bytes <= bound);
    /* after a gap in what fed it, everything goes */
    recent_clear(r);
    CHECK_INT(get(r, "/k/999", &v, &rev), ==, -ENOENT);
    recent_stats(r, &c);
    CHECK_INT(c.keys, ==, 0);
    CHECK_INT(c.bytes, ==, 0);
    recent_put(r, "/again", "1", 1, 6000);
    CHECK_OK(get(r, "/again", &v, &rev));
    free(v);
    recent_free(r);
}

static void many_keys_grow_the_table(void)
{
    recent *r = recent_new(64 << 20);
    char key[32], val[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "/many/%d", i);
        snprintf(val, sizeof(val), "%d", i);
        recent_put(r, key, val, strlen(val), i + 1);
    }
    for (int i = 0; i < 20000; i += 997) {
        snprintf(key, sizeof(key), "/many/%d", i);
        snprintf(val, sizeof(val), "%d", i);
        char *v = NULL;
        int64_t rev;
        CHECK_OK(get(r, key, &v, &rev));
        CHECK_STR(v, val);
        CHECK_INT(rev, ==, i + 1);
        free(v);
    }
    recent_counts c;
    recent_stats(r, &c);
    CHECK_INT(c.keys, ==, 20000);
    recent_free(r);
}

CHECK_MAIN(CASE(newer_revisions_win), CASE(bounded_by_bytes_lru), CASE(many_keys_grow_the_table))
