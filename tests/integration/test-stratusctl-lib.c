/* Unit tests of pkg/cli, stratusctl's library: ages and durations, tables, manifest splitting
 * (with line and column of errors across several documents), the server address lookup, wait
 * conditions, instance progress, per-kind columns and describe. No server; the real binary is
 * tested in test-stratusctl.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/object.h"
#include "base/alloc.h"
#include "check.h"
#include "cli/columns.h"
#include "cli/config.h"
#include "cli/describe.h"
#include "cli/format.h"
#include "cli/manifest.h"
#include "cli/table.h"
#include "cli/wait.h"

static void ages_like_kubectl(void)
{
    static const struct {
        int64_t s;
        const char *want;
    } cases[] = {
        {-5, "<invalid>"}, {-1, "0s"},         {0, "0s"},        {59, "59s"},
        {119, "119s"},     {120, "2m"},        {125, "2m5s"},    {599, "9m59s"},
        {600, "10m"},      {10799, "179m"},    {10800, "3h"},    {11100, "3h5m"},
        {28800, "8h"},     {172799, "47h"},    {172800, "2d"},   {183600, "2d3h"},
        {691200, "8d"},    {63071999, "729d"}, {63072000, "2y"}, {63936000, "2y10d"},
        {252288000, "8y"},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        char out[CLI_AGE_MAX];
        CHECK_STR(cli_age_format(cases[i].s, out), cases[i].want);
    }
    char out[CLI_AGE_MAX];
    usec_t now;
    CHECK_OK(timestamp_parse("2026-01-02T03:04:05Z", &now));
    CHECK_STR(cli_age_since("2026-01-02T03:00:00Z", now, out), "4m5s");
    CHECK_STR(cli_age_since("2026-01-02T03:04:04.999Z", now, out), "1s");
    CHECK_STR(cli_age_since("yesterday", now, out), "<unknown>");
    CHECK_STR(cli_age_since(NULL, now, out), "<unknown>");
}

static void durations_and_sizes(void)
{
    char out[CLI_AGE_MAX];
    CHECK_STR(cli_duration_format(850 * USEC_PER_MSEC, out), "850ms");
    CHECK_STR(cli_duration_format(3250 * USEC_PER_MSEC, out), "3.2s");
    CHECK_STR(cli_duration_format(125 * USEC_PER_SEC, out), "2m5s");
    CHECK_STR(cli_duration_format(3720 * USEC_PER_SEC, out), "1h2m");
    CHECK_STR(cli_duration_between("2026-01-02T03:04:05.100Z", "2026-01-02T03:04:05.520Z", out),
              "420ms");
    CHECK_STR(cli_duration_between("2026-01-02T03:04:05Z", "2026-01-02T03:04:04Z", out), "");
    CHECK_STR(cli_duration_between("2026-01-02T03:04:05Z", NULL, out), "");
    CHECK_STR(cli_mib_format(512, out), "512Mi");
    CHECK_STR(cli_mib_format(2048, out), "2Gi");
    CHECK_STR(cli_mib_format(1536, out), "1536Mi");
    CHECK_STR(cli_mib_format(1024 * 1024, out), "1Ti");
    CHECK_STR(cli_gib_format(20, out), "20Gi");
    CHECK_STR(cli_kind_singular(api_kind_lookup("sg")), "servergroup");
    CHECK_STR(cli_kind_singular(api_kind_lookup("i")), "instance");
    _cleanup_free_ char *c = cli_cell("a\tb\nc", 100, "-");
    CHECK_STR(c, "a b c");
    _cleanup_free_ char *cut = cli_cell("héllo", 2, "-");
    CHECK_STR(cut, "h...");
    _cleanup_free_ char *empty = cli_cell("", 10, "<none>");
    CHECK_STR(empty, "<none>");
    CHECK_INT(cli_text_width("héllo"), ==, 5);
}

static void tables_align(void)
{
    static const char *const h[] = {"NAME", "PHASE", "NOTE"};
    _cleanup_(cli_table_freep) cli_table *t = cli_table_new(3, h);
    cli_table_add(t, (const char *const[]){"web-1", "Running", ""});
    cli_table_add(t, (const char *const[]){"a", NULL, "multi\nline"});
    _cleanup_free_ char *s = cli_table_to_string(t, "");
    CHECK_STR(s, "NAME    PHASE     NOTE\n"
                 "web-1   Running\n"
                 "a                 multi line\n");
    /* Rows added later keep the widths (and grow them when needed); no header again. */
    cli_table_add(t, (const char *const[]){"web-100000", "x", "y"});
    _cleanup_free_ char *s2 = cli_table_to_string(t, "  ");
    CHECK_STR(s2, "  web-100000   x         y\n");
    CHECK_INT(cli_table_rows(t), ==, 3);
}

static void manifests_split(void)
{
    cli_docs d = CLI_DOCS_INIT;
    _cleanup_free_ char *err = NULL;
    const char *one = "{\"kind\":\"Flavor\",\"metadata\":{\"name\":\"a\"}}";
    CHECK_OK(cli_docs_parse(&d, "one.json", one, strlen(one), &err));
    CHECK_INT(d.n, ==, 1);
    CHECK_STR(d.v[0].where, "");
    const char *list = "{\"apiVersion\":\"stratus/v1\",\"kind\":\"List\",\"items\":[{\"kind\":"
                       "\"Flavor\"},{\"kind\":\"Image\"}]}";
    CHECK_OK(cli_docs_parse(&d, "list.json", list, strlen(list), &err));
    CHECK_INT(d.n, ==, 3);
    CHECK_STR(d.v[2].where, "items[1]");
    CHECK_STR(d.v[2].source, "list.json");
    const char *several = "\xEF\xBB\xBF{\"kind\":\"Flavor\"}\n{\"apiVersion\":\"stratus/v1\","
                          "\"kind\":\"List\",\"items\":[{\"kind\":\"Network\"}]}\n";
    CHECK_OK(cli_docs_parse(&d, "s.json", several, strlen(several), &err));
    CHECK_INT(d.n, ==, 5);
    CHECK_STR(d.v[3].where, "document 1");
    CHECK_STR(d.v[4].where, "document 2: items[0]");

    /* Errors: where the failing document starts is added to jansson's line and column. */
    const char *bad = "{\"a\": 1}\n{\"b\": 2}\n\n   {\"c\": tru}\n";
    CHECK_INT(cli_docs_parse(&d, "bad.json", bad, strlen(bad), &err), ==, -EINVAL);
    CHECK_STR(err, "bad.json: invalid JSON at line 4, column 12: invalid token near 'tru'");
    err = mfree(err);
    const char *bad1 = "{\n  \"a\": 1,,\n}";
    CHECK_INT(cli_docs_parse(&d, "bad1.json", bad1, strlen(bad1), &err), ==, -EINVAL);
    CHECK_STR(err, "bad1.json: invalid JSON at line 2, column 10: string or '}' expected near ','");
    err = mfree(err);
    const char *arr = "[1]";
    CHECK_INT(cli_docs_parse(&d, "arr.json", arr, strlen(arr), &err), ==, -EINVAL);
    CHECK_STR(err, "arr.json: the document must be a JSON object");
    err = mfree(err);
    const char *item = "{\"apiVersion\":\"stratus/v1\",\"kind\":\"List\",\"items\":[{}, 3]}";
    CHECK_INT(cli_docs_parse(&d, "item.json", item, strlen(item), &err), ==, -EINVAL);
    CHECK_STR(err, "item.json: items[1]: must be a JSON object");
    err = mfree(err);
    const char *ver = "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[]}";
    CHECK_INT(cli_docs_parse(&d, "ver.json", ver, strlen(ver), &err), ==, -EINVAL);
    CHECK_STR(err, "ver.json: apiVersion: must be \"stratus/v1\"");
    err = mfree(err);
    size_t before = d.n;
    CHECK_OK(cli_docs_parse(&d, "blank.json", " \n\t", 3, &err));
    CHECK_INT(d.n, ==, before);

    /* Messages from the apiserver, placed in the document. */
    _cleanup_free_ char *e1 = cli_doc_error(&d.v[2], "spec.vcpus: -2 is out of range 1..1024");
    CHECK_STR(e1, "list.json: items[1].spec.vcpus: -2 is out of range 1..1024");
    _cleanup_free_ char *e2 = cli_doc_error(&d.v[2], "flavors \"a\" is being deleted");
    CHECK_STR(e2, "list.json: items[1]: flavors \"a\" is being deleted");
    _cleanup_free_ char *e3 = cli_doc_error(&d.v[0], "kind: unknown kind");
    CHECK_STR(e3, "one.json: kind: unknown kind");
    _cleanup_free_ char *e4 = cli_doc_error(&d.v[3], "metadata.name: required");
    CHECK_STR(e4, "s.json: document 1: metadata.name: required");
    cli_docs_done(&d);

    /* Folders: *.json in name order, nothing else. */
    char dir[] = "/tmp/cli-test-XXXXXX";
    CHECK(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/b.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"kind\":\"B\"}", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/a.json", dir);
    f = fopen(path, "w");
    fputs("{\"kind\":\"A\"}", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/notes.txt", dir);
    f = fopen(path, "w");
    fputs("x", f);
    fclose(f);
    CHECK_OK(cli_docs_read(&d, dir, &err));
    CHECK_INT(d.n, ==, 2);
    CHECK_STR(json_string_value(json_object_get(d.v[0].obj, "kind")), "A");
    snprintf(path, sizeof(path), "%s/a.json", dir);
    CHECK_STR(d.v[0].source, path);
    cli_docs_done(&d);
    snprintf(path, sizeof(path), "%s/none.json", dir);
    CHECK_INT(cli_docs_read(&d, path, &err), ==, -ENOENT);
    CHECK(strstr(err, "none.json: No such file or directory"));
    err = mfree(err);
    char *cmd = xasprintf("rm -rf %s", dir);
    CHECK_INT(system(cmd), ==, 0);
    free(cmd);
}

static void server_address(void)
{
    char *s = NULL, *err = NULL;
    CHECK_OK(cli_config_server("a:1", "b:2", NULL, false, &s, &err));
    CHECK_STR(s, "a:1");
    s = mfree(s);
    CHECK_OK(cli_config_server(NULL, "b:2", "/nonexistent", true, &s, &err));
    CHECK_STR(s, "b:2");
    s = mfree(s);
    CHECK_OK(cli_config_server("", "", "/nonexistent/config", false, &s, &err));
    CHECK_STR(s, CLI_DEFAULT_SERVER);
    s = mfree(s);
    CHECK_INT(cli_config_server(NULL, NULL, "/nonexistent/config", true, &s, &err), ==, -ENOENT);
    CHECK(strstr(err, "/nonexistent/config: No such file"));
    err = mfree(err);
    CHECK_INT(cli_config_server("bad address", NULL, NULL, false, &s, &err), ==, -EINVAL);
    err = mfree(err);

    char path[] = "/tmp/cli-config-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *cfg = "{\"server\": \"10.0.0.1:7443\", \"future\": 1}";
    CHECK_INT(write(fd, cfg, strlen(cfg)), ==, (long long)strlen(cfg));
    close(fd);
    CHECK_OK(cli_config_server(NULL, NULL, path, false, &s, &err));
    CHECK_STR(s, "10.0.0.1:7443");
    s = mfree(s);
    FILE *f = fopen(path, "w");
    fputs("{\"server\": }", f);
    fclose(f);
    CHECK_INT(cli_config_server(NULL, NULL, path, false, &s, &err), ==, -EINVAL);
    CHECK(strstr(err, "invalid JSON at line 1, column 12"));
    err = mfree(err);
    unlink(path);

    _cleanup_free_ char *p = cli_config_default_path("/home/me/");
    CHECK_STR(p, "/home/me/.stratus/config");
    CHECK(cli_config_default_path("") == NULL);
}

static json_t *load(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    if (!j)
        abort();
    return j;
}

static void wait_conditions(void)
{
    cli_wait_for w;
    char *err = NULL;
    char text[128];
    CHECK_OK(cli_wait_for_parse("condition=Ready", &w, &err));
    CHECK_STR(cli_wait_for_describe(&w, text, sizeof(text)), "condition Ready=True");
    CHECK_OK(cli_wait_for_parse("condition=Ready=false", &w, &err));
    CHECK_STR(cli_wait_for_describe(&w, text, sizeof(text)), "condition Ready=False");
    CHECK_OK(cli_wait_for_parse("phase=Running", &w, &err));
    CHECK_STR(cli_wait_for_describe(&w, text, sizeof(text)), "phase Running");
    CHECK_OK(cli_wait_for_parse("delete", &w, &err));
    CHECK(cli_wait_for_met(&w, NULL));
    CHECK_INT(cli_wait_for_parse("phase=", &w, &err), ==, -EINVAL);
    err = mfree(err);
    CHECK_INT(cli_wait_for_parse("ready", &w, &err), ==, -EINVAL);
    CHECK(strstr(err, "condition=TYPE[=STATUS]"));
    err = mfree(err);

    json_t *o = load("{\"kind\":\"Instance\",\"status\":{\"phase\":\"Building\",\"conditions\":["
                     "{\"type\":\"Scheduled\",\"status\":\"True\",\"lastTransitionTime\":"
                     "\"2026-01-02T03:04:09Z\"},"
                     "{\"type\":\"NetworkReady\",\"status\":\"False\",\"reason\":\"Plugging\","
                     "\"message\":\"tap0\",\"lastTransitionTime\":\"2026-01-02T03:04:10Z\"},"
                     "{\"type\":\"Ready\",\"status\":\"False\",\"lastTransitionTime\":"
                     "\"2026-01-02T03:04:01Z\"}]}}");
    CHECK_OK(cli_wait_for_parse("condition=NetworkReady=False", &w, &err));
    CHECK(cli_wait_for_met(&w, o));
    CHECK(!cli_wait_for_met(&w, NULL));
    CHECK_OK(cli_wait_for_parse("phase=Running", &w, &err));
    CHECK(!cli_wait_for_met(&w, o));
    cli_wait_for settled = {.type = CLI_WAIT_SETTLED};
    CHECK(!cli_wait_for_met(&settled, o));
    CHECK_STR(cli_instance_progress(o, text, sizeof(text)),
              "Building: NetworkReady=False (Plugging): tap0");
    json_decref(o);
    o = load("{\"status\":{\"phase\":\"Failed\",\"reason\":\"RescheduleLimit\",\"message\":\"3 "
             "attempts\"}}");
    CHECK(cli_wait_for_met(&settled, o));
    CHECK_STR(cli_instance_progress(o, text, sizeof(text)), "Failed: RescheduleLimit: 3 attempts");
    json_decref(o);
    o = load("{\"status\":{}}");
    CHECK_STR(cli_instance_progress(o, text, sizeof(text)), "<unknown>");
    json_decref(o);
}

static void columns_and_describe(void)
{
    usec_t now;
    CHECK_OK(timestamp_parse("2026-01-02T03:10:00Z", &now));
    json_t *inst = load(
        "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"web-1\","
        "\"namespace\":\"default\",\"creationTimestamp\":\"2026-01-02T03:00:00Z\",\"labels\":"
        "{\"app\":\"web\"}},\"spec\":{\"flavor\":\"m1.small\",\"image\":\"img\",\"nodeName\":"
        "\"n1\",\"userData\":\"#cloud-config\\nruncmd: []\\n\"},"
        "\"status\":{\"phase\":\"Running\",\"nodeName\":\"n1\",\"addresses\":[{\"network\":"
        "\"default\",\"ip\":\"10.0.0.5\",\"mac\":\"52:54:00:00:00:05\"}],\"timeline\":["
        "{\"step\":\"Claim\",\"startTime\":\"2026-01-02T03:00:01Z\",\"endTime\":"
        "\"2026-01-02T03:00:01.300Z\",\"result\":\"Succeeded\"},{\"step\":\"Spawn\","
        "\"startTime\":\"2026-01-02T03:00:02Z\"}]}}");
    const api_kind_info *k = api_kind_lookup("instances");
    cli_print_opts o = {.now = now, .namespaces = true};
    _cleanup_(cli_table_freep) cli_table *t = cli_columns_table(k, &o);
    cli_columns_add_row(t, k, &o, inst);
    _cleanup_free_ char *s = cli_table_to_string(t, "");
    CHECK_STR(s, "NAMESPACE   NAME    PHASE     NODE   IP         FLAVOR     AGE\n"
                 "default     web-1   Running   n1     10.0.0.5   m1.small   10m\n");

    json_t *flavors = load("[{\"metadata\":{\"name\":\"m1.small\"},\"spec\":{\"vcpus\":2,"
                           "\"memoryMiB\":2048,\"rootDiskGiB\":20,\"swapMiB\":1}}]");
    json_t *instances = json_pack("[O]", inst);
    json_t *usage = cli_node_usage(instances, flavors);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(usage, "n1"), "vcpus")), ==, 2);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(usage, "n1"), "diskGiB")), ==, 21);
    json_t *node = load("{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\",\"creationTimestamp\":"
                        "\"2026-01-02T03:09:00Z\",\"labels\":{\"topology.stratus.io/zone\":\"z\"}}"
                        ",\"spec\":{\"allocationRatios\":{\"cpu\":4.0}},\"status\":{"
                        "\"allocatable\":{\"vcpus\":4,\"memoryMiB\":8192,\"diskGiB\":100},"
                        "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}");
    const api_kind_info *nk = api_kind_lookup("no");
    cli_print_opts no = {.now = now, .node_usage = usage};
    _cleanup_(cli_table_freep) cli_table *nt = cli_columns_table(nk, &no);
    cli_columns_add_row(nt, nk, &no, node);
    _cleanup_free_ char *ns = cli_table_to_string(nt, "");
    CHECK_STR(ns, "NAME   READY   ZONE   CPU    MEM       INSTANCES   AGE\n"
                  "n1     True    z      2/16   2Gi/8Gi   1           60s\n");

    cli_print_opts d = {.now = now};
    _cleanup_free_ char *text = cli_describe(inst, NULL, &d);
    CHECK(strstr(text, "Name:              web-1\n"));
    CHECK(strstr(text, "  userData:  #cloud-config\n             runcmd: []\n"));
    CHECK(strstr(text, "  Claim   +0ms      300ms       Succeeded\n"));
    CHECK(strstr(text, "  Spawn   +1.0s     <running>   InProgress\n"));
    CHECK(strstr(text, "  default   10.0.0.5   52:54:00:00:00:05\n"));
    CHECK(!strstr(text, "Events:"));
    json_t *events = load(
        "[{\"metadata\":{\"name\":\"b\"},\"spec\":{\"reason\":\"Late\",\"lastTimestamp\":"
        "\"2026-01-02T03:09:00Z\",\"count\":2}},{\"metadata\":{\"name\":\"a\"},\"spec\":{"
        "\"reason\":\"Early\",\"type\":\"Warning\",\"lastTimestamp\":\"2026-01-02T03:01:00Z\"}}]");
    _cleanup_free_ char *with_events = cli_describe(inst, events, &d);
    const char *early = strstr(with_events, "Early"), *late = strstr(with_events, "Late");
    CHECK(early && late && early < late);
    CHECK(strstr(with_events, "60s (x2)"));
    json_decref(events);
    json_decref(node);
    json_decref(usage);
    json_decref(instances);
    json_decref(flavors);
    json_decref(inst);
}

CHECK_MAIN(CASE(ages_like_kubectl), CASE(durations_and_sizes), CASE(tables_align),
           CASE(manifests_split), CASE(server_address), CASE(wait_conditions),
           CASE(columns_and_describe))
