/* Unit tests for pkg/store's pure parts: gateway responses, error mapping, watch messages and
 * line framing, on well-formed, malformed, truncated and split input. No network here; the
 * integration tests in tests/integration/test-store-etcd.c run against a real etcd. */
#include <errno.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "base/b64.h"
#include "check.h"
#include "store/store-internal.h"

static int parse(store_kind k, const char *json, store_result *r)
{
    *r = (store_result){0};
    return store_parse_response(k, json, strlen(json), r);
}

static void range_response_parses(void)
{
    /* key "a" = YQ==, value "1" = MQ== ; 64-bit numbers as strings, as the gateway sends them */
    store_result r;
    CHECK_OK(
        parse(STORE_KIND_RANGE,
              "{\"header\":{\"revision\":\"12\"},\"kvs\":[{\"key\":\"YQ==\",\"value\":\"MQ==\","
              "\"create_revision\":\"2\",\"mod_revision\":\"11\",\"version\":\"3\"}],"
              "\"more\":true,\"count\":\"7\"}",
              &r));
    CHECK_INT(r.revision, ==, 12);
    CHECK_INT(r.n_kvs, ==, 1);
    CHECK_STR(r.kvs[0].key, "a");
    CHECK_STR(r.kvs[0].value, "1");
    CHECK_INT(r.kvs[0].value_len, ==, 1);
    CHECK_INT(r.kvs[0].create_revision, ==, 2);
    CHECK_INT(r.kvs[0].mod_revision, ==, 11);
    CHECK_INT(r.kvs[0].version, ==, 3);
    CHECK_INT(r.kvs[0].lease, ==, 0);
    CHECK(r.more);
    CHECK_INT(r.count, ==, 7);
    store_result_clear(&r);

    /* an empty range omits kvs and count; numbers may also come as numbers */
    CHECK_OK(parse(STORE_KIND_RANGE, "{\"header\":{\"revision\":5}}", &r));
    CHECK_INT(r.revision, ==, 5);
    CHECK_INT(r.n_kvs, ==, 0);
    CHECK(!r.more);
    store_result_clear(&r);

    /* a value absent means empty */
    CHECK_OK(parse(STORE_KIND_RANGE,
                   "{\"header\":{\"revision\":\"3\"},\"kvs\":[{\"key\":\"YQ==\"}]}", &r));
    CHECK_INT(r.kvs[0].value_len, ==, 0);
    CHECK_STR(r.kvs[0].value, "");
    store_result_clear(&r);
}

static void malformed_responses_are_errors(void)
{
    static const char *bad[] = {
        "",
        "not json",
        "[]",
        "{}", /* no header */
        "{\"header\":[]}",
        "{\"header\":{\"revision\":\"x12\"}}",
        "{\"header\":{\"revision\":\"12\"},\"kvs\":{}}",
        "{\"header\":{\"revision\":\"12\"},\"kvs\":[1]}",
        "{\"header\":{\"revision\":\"12\"},\"kvs\":[{\"value\":\"MQ==\"}]}", /* no key */
        "{\"header\":{\"revision\":\"12\"},\"kvs\":[{\"key\":\"Y!==\"}]}",   /* bad b64 */
        "{\"header\":{\"revision\":\"12\"},\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":true}]}",
        "{\"header\":{\"revision\":\"12\"},\"kvs\":[{\"key\":\"YQA=\"}]}", /* NUL inside a key */
        "{\"header\":{\"revision\":\"12\"},\"more\":\"yes\"}",
        "{\"header\":{\"revision\":\"12\"},\"kvs\":[{\"key\":\"YQ==\"}]",    /* truncated */
        "{\"header\":{\"revision\":\"1\"},\"header\":{\"revision\":\"2\"}}", /* duplicate key */
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        store_result r;
        CHECK_INT(parse(STORE_KIND_RANGE, bad[i], &r), ==, -EBADMSG);
        CHECK_INT(r.error, ==, -EBADMSG);
        CHECK(r.kvs == NULL); /* nothing half-parsed reaches the caller */
        store_result_clear(&r);
    }
    store_result r;
    CHECK_INT(parse(STORE_KIND_TXN,
                    "{\"header\":{\"revision\":\"3\"},\"responses\":[{\"response_bogus\":{}}]}",
                    &r),
              ==, -EBADMSG);
    store_result_clear(&r);
    CHECK_INT(parse(STORE_KIND_DELETE, "{\"header\":{\"revision\":\"3\"},\"deleted\":\"-1\"}", &r),
              ==, -EBADMSG);
    store_result_clear(&r);
}

static void txn_response_parses(void)
{
    store_result r;
    CHECK_OK(parse(STORE_KIND_TXN,
                   "{\"header\":{\"revision\":\"9\"},\"succeeded\":true,\"responses\":["
                   "{\"response_put\":{\"header\":{\"revision\":\"9\"}}},"
                   "{\"response_range\":{\"header\":{},\"kvs\":[{\"key\":\"Yg==\",\"value\":\"Mg=="
                   "\"}],\"count\":\"1\"}},"
                   "{\"response_delete_range\":{\"header\":{},\"deleted\":\"2\",\"prev_kvs\":[{"
                   "\"key\":\"Yw==\"},{\"key\":\"ZA==\"}]}}]}",
                   &r));
    CHECK(r.succeeded);
    CHECK_INT(r.n_responses, ==, 3);
    CHECK_INT(r.responses[1].n_kvs, ==, 1);
    CHECK_STR(r.responses[1].kvs[0].key, "b");
    CHECK_INT(r.responses[2].deleted, ==, 2);
    CHECK_STR(r.responses[2].kvs[1].key, "d");
    store_result_clear(&r);

    /* A failed txn omits "succeeded". */
    CHECK_OK(parse(
        STORE_KIND_TXN,
        "{\"header\":{\"revision\":\"9\"},\"responses\":[{\"response_range\":{\"header\":{}}}]}",
        &r));
    CHECK(!r.succeeded);
    store_result_clear(&r);
}

static void shapes_turn_failed_compares_into_errors(void)
{
    const char *failed =
        "{\"header\":{\"revision\":\"9\"},\"responses\":[{\"response_range\":{\"header\":{},"
        "\"kvs\":[{\"key\":\"YQ==\",\"value\":\"Y3Vy\",\"mod_revision\":\"8\"}],\"count\":\"1\"}}]"
        "}";
    store_result r;
    CHECK_OK(parse(STORE_KIND_TXN, failed, &r));
    store_result_shape(&r, STORE_SHAPE_CREATE);
    CHECK_INT(r.error, ==, -EEXIST);
    CHECK_INT(r.n_kvs, ==, 1);
    CHECK_STR(r.kvs[0].value, "cur");
    store_result_clear(&r);

    CHECK_OK(parse(STORE_KIND_TXN, failed, &r));
    store_result_shape(&r, STORE_SHAPE_CAS);
    CHECK_INT(r.error, ==, -ESTALE);
    CHECK_INT(r.kvs[0].mod_revision, ==, 8);
    store_result_clear(&r);

    CHECK_OK(parse(
        STORE_KIND_TXN,
        "{\"header\":{\"revision\":\"9\"},\"responses\":[{\"response_range\":{\"header\":{}}}]}",
        &r));
    store_result_shape(&r, STORE_SHAPE_CAS);
    CHECK_INT(r.error, ==, -ENOENT);
    store_result_clear(&r);

    CHECK_OK(parse(STORE_KIND_RANGE, "{\"header\":{\"revision\":\"9\"}}", &r));
    store_result_shape(&r, STORE_SHAPE_GET);
    CHECK_INT(r.error, ==, -ENOENT);
    store_result_clear(&r);

    CHECK_OK(parse(STORE_KIND_DELETE, "{\"header\":{\"revision\":\"9\"}}", &r));
    store_result_shape(&r, STORE_SHAPE_DELETE);
    CHECK_INT(r.error, ==, -ENOENT);
    store_result_clear(&r);
}

static void lease_answers(void)
{
    store_result r;
    CHECK_OK(parse(STORE_KIND_LEASE_GRANT,
                   "{\"header\":{\"revision\":\"3\"},\"ID\":\"7587\",\"TTL\":\"5\"}", &r));
    CHECK_INT(r.lease_id, ==, 7587);
    CHECK_INT(r.ttl, ==, 5);
    store_result_clear(&r);
    CHECK_OK(parse(STORE_KIND_LEASE_KEEPALIVE,
                   "{\"result\":{\"header\":{\"revision\":\"3\"},\"ID\":\"7587\",\"TTL\":\"5\"}}",
                   &r));
    CHECK_INT(r.ttl, ==, 5);
    store_result_clear(&r);
    /* expired: keepalive 200 without TTL; timetolive TTL -1 */
    CHECK_INT(parse(STORE_KIND_LEASE_KEEPALIVE,
                    "{\"result\":{\"header\":{\"revision\":\"3\"},\"ID\":\"7587\"}}", &r),
              ==, -ETIME);
    CHECK_INT(r.error, ==, -ETIME);
    store_result_clear(&r);
    CHECK_INT(parse(STORE_KIND_LEASE_TTL,
                    "{\"header\":{\"revision\":\"3\"},\"ID\":\"7587\",\"TTL\":\"-1\"}", &r),
              ==, -ETIME);
    store_result_clear(&r);
}

static void gateway_errors_map(void)
{
    static const struct {
        long status;
        const char *body;
        int error;
    } t[] = {
        {400,
         "{\"error\":\"etcdserver: mvcc: required revision has been "
         "compacted\",\"message\":\"etcdserver: mvcc: required revision has been "
         "compacted\",\"code\":11}",
         -ERANGE},
        {400,
         "{\"error\":\"etcdserver: mvcc: required revision is a future "
         "revision\",\"message\":\"etcdserver: mvcc: required revision is a future "
         "revision\",\"code\":11}",
         -EINVAL},
        {404,
         "{\"error\":\"etcdserver: requested lease not found\",\"message\":\"etcdserver: requested "
         "lease not found\",\"code\":5}",
         -ETIME},
        {400,
         "{\"error\":\"etcdserver: request is too large\",\"message\":\"etcdserver: request is too "
         "large\",\"code\":3}",
         -EMSGSIZE},
        {400,
         "{\"error\":\"etcdserver: too many operations in txn request\",\"message\":\"etcdserver: "
         "too many operations in txn request\",\"code\":3}",
         -E2BIG},
        {503,
         "{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver: no leader\",\"code\":14}",
         -EHOSTDOWN},
        {400, "{\"error\":\"invalid character\",\"message\":\"invalid character\",\"code\":3}",
         -EINVAL},
        {500, "{\"error\":\"boom\",\"message\":\"boom\",\"code\":13}", -EPROTO},
        {502, "<html>bad gateway</html>", -EHOSTDOWN},
        {418, "", -EPROTO},
    };
    for (size_t i = 0; i < ELEMENTSOF(t); i++) {
        store_result r = {0};
        CHECK_INT(store_parse_error(t[i].status, t[i].body, strlen(t[i].body), &r), ==, t[i].error);
        CHECK_INT(r.error, ==, t[i].error);
        CHECK(r.message != NULL);
        store_result_clear(&r);
    }
}

static void watch_messages_parse(void)
{
    store_watch_msg m;
    const char *created = "{\"result\":{\"header\":{\"revision\":\"3\"},\"created\":true}}";
    CHECK_OK(store_parse_watch_msg(created, strlen(created), &m));
    CHECK(m.created);
    CHECK_INT(m.revision, ==, 3);
    store_watch_msg_clear(&m);

    const char *events =
        "{\"result\":{\"header\":{\"revision\":\"6\"},\"events\":["
        "{\"kv\":{\"key\":\"YQ==\",\"value\":\"MQ==\",\"mod_revision\":\"4\"}},"
        "{\"type\":\"DELETE\",\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"5\"},"
        "\"prev_kv\":{\"key\":\"YQ==\",\"value\":\"MQ==\",\"mod_revision\":\"4\"}}]}}";
    CHECK_OK(store_parse_watch_msg(events, strlen(events), &m));
    CHECK_INT(m.n_events, ==, 2);
    CHECK_INT(m.events[0].type, ==, STORE_EVENT_PUT);
    CHECK_INT(m.events[1].type, ==, STORE_EVENT_DELETE);
    CHECK_INT(m.events[1].kv.mod_revision, ==, 5);
    CHECK(m.events[1].prev_kv != NULL);
    CHECK_STR(m.events[1].prev_kv->value, "1");
    store_watch_msg_clear(&m);

    const char *compacted =
        "{\"result\":{\"header\":{},\"canceled\":true,\"compact_revision\":\"3\"}}";
    CHECK_OK(store_parse_watch_msg(compacted, strlen(compacted), &m));
    CHECK(m.canceled);
    CHECK_INT(m.compact_revision, ==, 3);
    store_watch_msg_clear(&m);

    const char *inband =
        "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\"}}";
    CHECK_OK(store_parse_watch_msg(inband, strlen(inband), &m));
    CHECK_INT(m.error, ==, -EHOSTDOWN);
    store_watch_msg_clear(&m);

    static const char *bad[] = {
        "{}",
        "{\"result\":[]}",
        "{\"result\":{\"events\":{}}}",
        "{\"result\":{\"events\":[{\"type\":\"BOGUS\",\"kv\":{\"key\":\"YQ==\"}}]}}",
        "{\"result\":{\"events\":[{\"type\":\"PUT\"}]}}",
        /* out of revision order */
        "{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"5\"}},{\"kv\":{"
        "\"key\":\"YQ==\",\"mod_revision\":\"4\"}}]}}",
        "{\"result\":{\"created\":\"true\"}}",
        "{\"result\":{\"header\":{\"revision\":\"3\"},\"created\":tr",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        CHECK_INT(store_parse_watch_msg(bad[i], strlen(bad[i]), &m), ==, -EBADMSG);
}

typedef struct lines {
    char got[16][64];
    int n;
} lines;

static int collect_line(const char *l, size_t n, void *userdata)
{
    lines *ls = userdata;
    if (ls->n >= 16 || n >= 64)
        return -ENOSPC;
    memcpy(ls->got[ls->n], l, n);
    ls->got[ls->n][n] = '\0';
    ls->n++;
    return 0;
}

static void framing_survives_any_split(void)
{
    const char *stream = "{\"a\":1}\n{\"b\":22}\n\n{\"c\":333}\n{\"d\"";
    size_t len = strlen(stream);
    /* Every way of cutting the stream in two, and byte by byte, gives the same lines. */
    for (size_t cut = 0; cut <= len; cut++) {
        buf b = BUF_INIT(1024);
        lines ls = {0};
        CHECK_OK(store_frame_lines(&b, stream, cut, collect_line, &ls));
        CHECK_OK(store_frame_lines(&b, stream + cut, len - cut, collect_line, &ls));
        CHECK_INT(ls.n, ==, 3);
        CHECK_STR(ls.got[0], "{\"a\":1}");
        CHECK_STR(ls.got[2], "{\"c\":333}");
        CHECK_STR(b.data, "{\"d\""); /* the unfinished rest waits */
        buf_done(&b);
    }
    buf b = BUF_INIT(1024);
    lines ls = {0};
    for (size_t i = 0; i < len; i++)
        CHECK_OK(store_frame_lines(&b, stream + i, 1, collect_line, &ls));
    CHECK_INT(ls.n, ==, 3);
    CHECK_STR(ls.got[1], "{\"b\":22}");
    buf_done(&b);
}

static void framing_caps_line_length(void)
{
    buf b = BUF_INIT(8);
    lines ls = {0};
    CHECK_INT(store_frame_lines(&b, "0123456789", 10, collect_line, &ls), ==, -EMSGSIZE);
    buf_done(&b);
    b = BUF_INIT(8);
    CHECK_INT(store_frame_lines(&b, "0123456789\n", 11, collect_line, &ls), ==, -EMSGSIZE);
    buf_done(&b);
    b = BUF_INIT(8);
    CHECK_OK(store_frame_lines(&b, "0123", 4, collect_line, &ls));
    CHECK_INT(store_frame_lines(&b, "456789", 6, collect_line, &ls), ==, -EMSGSIZE);
    CHECK_INT(ls.n, ==, 0);
    buf_done(&b);
}

static void prefix_end_covers_prefix(void)
{
    _cleanup_free_ char *a = store_prefix_end("/stratus/v1/instances/");
    CHECK_STR(a, "/stratus/v1/instances0");
    _cleanup_free_ char *b = store_prefix_end("a\xff");
    CHECK_STR(b, "b");
    _cleanup_free_ char *c = store_prefix_end("\xff\xff");
    CHECK_STR(c, "");
}

static void range_request_encodes_paging(void)
{
    store_range_opts o = {
        .key = "p/", .after = "p/k07", .range_end = "p0", .limit = 10, .revision = 42};
    store_request r = {.kind = STORE_KIND_RANGE, .range = store_range_request(&o)};
    json_t *req = store_gateway_request(&r);
    const char *k = json_string_value(json_object_get(req, "key"));
    char *d = NULL;
    size_t n = 0;
    CHECK_OK(b64_decode(k, strlen(k), &d, &n));
    CHECK_INT(n, ==, 6); /* "p/k07" + one 0 byte: the first key after p/k07 */
    CHECK(memcmp(d, "p/k07\0", 6) == 0);
    free(d);
    CHECK_STR(json_string_value(json_object_get(req, "limit")), "10");
    CHECK_STR(json_string_value(json_object_get(req, "revision")), "42");
    json_decref(req);
}

static void gateway_txn_request_spells_every_field(void)
{
    _cleanup_(store_txn_freep) store_txn *t = store_txn_new();
    store_txn_compare(t, "/new", STORE_CMP_CREATE, STORE_CMP_EQUAL, 0);
    store_txn_compare_value(t, "/v", STORE_CMP_NOT_EQUAL, "", 0);
    store_txn_put(t, STORE_ON_SUCCESS, "/new", "val", 3, 7, STORE_PREV_KV);
    store_txn_delete(t, STORE_ON_SUCCESS, "/d/", "", 0);
    store_txn_get(t, STORE_ON_FAILURE, "/new", NULL);
    store_request r = {.kind = STORE_KIND_TXN, .txn = store_txn_request(t)};
    json_t *req = store_gateway_request(&r);
    _cleanup_free_ char *text = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(req);
    /* a zero in the compared oneof is still sent; range_end "" is the 0 byte ("AA==") */
    CHECK_STR(text, "{\"compare\":[{\"create_revision\":\"0\",\"key\":\"L25ldw==\","
                    "\"result\":\"EQUAL\",\"target\":\"CREATE\"},{\"key\":\"L3Y=\","
                    "\"result\":\"NOT_EQUAL\",\"target\":\"VALUE\",\"value\":\"\"}],"
                    "\"failure\":[{\"request_range\":{\"key\":\"L25ldw==\"}}],"
                    "\"success\":[{\"request_put\":{\"key\":\"L25ldw==\",\"lease\":\"7\","
                    "\"prev_kv\":true,\"value\":\"dmFs\"}},{\"request_delete_range\":{"
                    "\"key\":\"L2Qv\",\"range_end\":\"AA==\"}}]}");
}

CHECK_MAIN(CASE(range_response_parses), CASE(malformed_responses_are_errors),
           CASE(txn_response_parses), CASE(shapes_turn_failed_compares_into_errors),
           CASE(lease_answers), CASE(gateway_errors_map), CASE(watch_messages_parse),
           CASE(framing_survives_any_split), CASE(framing_caps_line_length),
           CASE(prefix_end_covers_prefix), CASE(range_request_encodes_paging),
           CASE(gateway_txn_request_spells_every_field))
