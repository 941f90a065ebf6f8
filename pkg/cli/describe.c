/* stratusctl describe (see describe.h). Text is built in "key: value" blocks whose values line
 * up, and tables from table.h, all into one buffer. */
#include "cli/describe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/object.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "cli/format.h"
#include "cli/table.h"
#include "cli/wait.h"

#define VALUE_MAX 160 /* bytes of one value shown; longer strings are cut with "..." */
#define NONE      "<none>"

/* A block of "Key:   value" lines at one indent, values aligned. Values may span lines. */
typedef struct kv_block {
    char *keys[64];
    char *values[64];
    size_t n;
} kv_block;

static void kv_add(kv_block *b, const char *key, const char *value)
{
    if (b->n >= ELEMENTSOF(b->keys))
        return;
    b->keys[b->n] = xstrdup(key);
    b->values[b->n] = xstrdup(value ? value : "");
    b->n++;
}

/* Writes the block with values at column indent + width + 2 (width at least the longest key). */
static void kv_flush_width(kv_block *b, buf *out, size_t indent, size_t width)
{
    for (size_t i = 0; i < b->n; i++)
        width = MAX(width, cli_text_width(b->keys[i]) + 1);
    for (size_t i = 0; i < b->n; i++) {
        /* a value with several lines continues under the first, aligned */
        const char *v = b->values[i];
        bool first = true;
        do {
            const char *nl = strchr(v, '\n');
            size_t len = nl ? (size_t)(nl - v) : strlen(v);
            if (first || len)
                buf_printf(out, "%*s", (int)indent, "");
            if (first)
                buf_printf(out, "%s:", b->keys[i]);
            size_t used = first ? cli_text_width(b->keys[i]) + 1 : 0;
            if (len) {
                buf_printf(out, "%*s", (int)(width + 2 - used), "");
                buf_append(out, v, len);
            }
            buf_append_str(out, "\n");
            first = false;
            v = nl ? nl + 1 : NULL;
        } while (v && *v);
        free(b->keys[i]);
        free(b->values[i]);
    }
    b->n = 0;
}

static void kv_flush(kv_block *b, buf *out, size_t indent)
{
    kv_flush_width(b, out, indent, 0);
}

static const char *str_at(const json_t *obj, const char *path)
{
    return json_string_value(api_json_lookup(obj, path));
}

/* A string of several lines (user data, scripts) as at most LINES_MAX lines, each cut and made
 * printable. malloc'd. */
#define LINES_MAX 20
static char *lines_text(const char *s)
{
    buf b = BUF_INIT(0);
    size_t n = 0;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        if (n == LINES_MAX) {
            size_t rest = 0;
            for (const char *p = s; *p; p++)
                rest += *p == '\n';
            buf_printf(&b, "\n... (%zu more lines)", rest + (s[strlen(s) - 1] != '\n'));
            break;
        }
        _cleanup_free_ char *line = xstrndup(s, len);
        _cleanup_free_ char *cell = cli_cell(line, VALUE_MAX, "");
        buf_printf(&b, "%s%s", n ? "\n" : "", cell);
        n++;
        s = nl ? nl + 1 : s + len;
    }
    return buf_steal(&b, NULL);
}

/* A scalar as text (strings cut and made printable). malloc'd. */
static char *scalar_text(const json_t *v)
{
    if (json_is_string(v) && strchr(json_string_value(v), '\n'))
        return lines_text(json_string_value(v));
    if (json_is_string(v))
        return cli_cell(json_string_value(v), VALUE_MAX, "\"\"");
    if (json_is_real(v)) {
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
        return s ? s : xstrdup("?");
    }
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    return s ? s : xstrdup("?");
}

static bool is_scalar(const json_t *v)
{
    return !json_is_object(v) && !json_is_array(v);
}

/* One element of an array of objects on one line: "name=scratch sizeGiB=5 bus=virtio". */
static char *object_line(const json_t *o)
{
    buf b = BUF_INIT(0);
    const char *k;
    json_t *v;
    json_object_foreach ((json_t *)o, k, v) {
        _cleanup_free_ char *t = NULL;
        if (is_scalar(v))
            t = scalar_text(v);
        else
            t = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
        buf_printf(&b, "%s%s=%s", b.len ? " " : "", k, t ? t : "?");
    }
    return buf_steal(&b, NULL);
}

/* Renders a JSON object as nested "key: value" blocks, every inline value of the object at the
 * same column. */
static void render_object(const json_t *o, buf *out, size_t indent)
{
    kv_block kv = {0};
    const char *k;
    json_t *v;
    size_t width = 0;
    json_object_foreach ((json_t *)o, k, v)
        if (!json_is_object(v) || json_object_size(v) == 0)
            width = MAX(width, cli_text_width(k) + 1);
    json_object_foreach ((json_t *)o, k, v) {
        if (is_scalar(v)) {
            _cleanup_free_ char *t = scalar_text(v);
            kv_add(&kv, k, t);
        } else if (json_is_object(v) && json_object_size(v) == 0) {
            kv_add(&kv, k, NONE);
        } else if (json_is_array(v)) {
            buf lines = BUF_INIT(0);
            size_t i;
            json_t *e;
            json_array_foreach (v, i, e) {
                _cleanup_free_ char *t = json_is_object(e) ? object_line(e) : scalar_text(e);
                buf_printf(&lines, "%s%s", i ? "\n" : "", t);
            }
            kv_add(&kv, k, lines.len ? lines.data : NONE);
            buf_done(&lines);
        } else {
            kv_flush_width(&kv, out, indent, width);
            buf_printf(out, "%*s%s:\n", (int)indent, "", k);
            render_object(v, out, indent + 2);
        }
    }
    kv_flush_width(&kv, out, indent, width);
}

/* "a=b\nc=d" for a map of strings, or <none>. malloc'd. */
static char *map_lines(const json_t *m)
{
    if (!json_object_size(m))
        return xstrdup(NONE);
    buf b = BUF_INIT(0);
    const char *k;
    json_t *v;
    json_object_foreach ((json_t *)m, k, v) {
        _cleanup_free_ char *t = scalar_text(v);
        buf_printf(&b, "%s%s=%s", b.len ? "\n" : "", k, t);
    }
    return buf_steal(&b, NULL);
}

static void table_section(buf *out, const char *title, cli_table *t)
{
    buf_printf(out, "%s:\n", title);
    if (cli_table_rows(t) == 0) {
        buf_append_str(out, "  <none>\n");
        return;
    }
    _cleanup_free_ char *s = cli_table_to_string(t, "  ");
    buf_append_str(out, s);
}

static void conditions_section(buf *out, const json_t *obj, const cli_print_opts *o)
{
    static const char *const h[] = {"TYPE", "STATUS", "REASON", "MESSAGE", "AGE"};
    _cleanup_(cli_table_freep) cli_table *t = cli_table_new(ELEMENTSOF(h), h);
    size_t i;
    json_t *c;
    json_array_foreach (api_json_lookup(obj, "status.conditions"), i, c) {
        char age[CLI_AGE_MAX];
        const char *ts = json_string_value(json_object_get(c, "lastTransitionTime"));
        const char *row[] = {json_string_value(json_object_get(c, "type")),
                             json_string_value(json_object_get(c, "status")),
                             json_string_value(json_object_get(c, "reason")),
                             json_string_value(json_object_get(c, "message")),
                             ts ? cli_age_since(ts, o->now, age) : NONE};
        cli_table_add(t, row);
    }
    table_section(out, "Conditions", t);
}

static void instance_status(buf *out, const json_t *obj, const cli_print_opts *o)
{
    kv_block kv = {0};
    char text[CLI_AGE_MAX];
    buf_append_str(out, "Status:\n");
    kv_add(&kv, "Phase", str_at(obj, "status.phase") ? str_at(obj, "status.phase") : "<unknown>");
    if (str_at(obj, "status.reason"))
        kv_add(&kv, "Reason", str_at(obj, "status.reason"));
    if (str_at(obj, "status.message")) {
        _cleanup_free_ char *m = cli_cell(str_at(obj, "status.message"), 1024, "");
        kv_add(&kv, "Message", m);
    }
    kv_add(&kv, "Node", str_at(obj, "status.nodeName") ? str_at(obj, "status.nodeName") : NONE);
    json_t *og = api_json_lookup(obj, "status.observedGeneration");
    snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(og));
    kv_add(&kv, "Observed Generation", json_is_integer(og) ? text : NONE);
    kv_flush(&kv, out, 2);

    conditions_section(out, obj, o);

    static const char *const ha[] = {"NETWORK", "IP", "MAC"};
    _cleanup_(cli_table_freep) cli_table *addresses = cli_table_new(ELEMENTSOF(ha), ha);
    size_t i;
    json_t *a;
    json_array_foreach (api_json_lookup(obj, "status.addresses"), i, a) {
        const char *row[] = {json_string_value(json_object_get(a, "network")),
                             json_string_value(json_object_get(a, "ip")),
                             json_string_value(json_object_get(a, "mac"))};
        cli_table_add(addresses, row);
    }
    table_section(out, "Addresses", addresses);

    static const char *const hat[] = {"NODE", "STEP", "REASON", "MESSAGE", "AGE"};
    _cleanup_(cli_table_freep) cli_table *attempts = cli_table_new(ELEMENTSOF(hat), hat);
    json_array_foreach (api_json_lookup(obj, "status.attempts"), i, a) {
        char age[CLI_AGE_MAX];
        const char *row[] = {
            json_string_value(json_object_get(a, "nodeName")),
            json_string_value(json_object_get(a, "step")),
            json_string_value(json_object_get(a, "reason")),
            json_string_value(json_object_get(a, "message")),
            cli_age_since(json_string_value(json_object_get(a, "time")), o->now, age)};
        cli_table_add(attempts, row);
    }
    table_section(out, "Attempts", attempts);

    /* When each step started, as an offset from the first one: the shape of the build at a
     * glance (the absolute time of the first is in the heading). */
    static const char *const ht[] = {"STEP", "STARTED", "DURATION", "RESULT"};
    _cleanup_(cli_table_freep) cli_table *timeline = cli_table_new(ELEMENTSOF(ht), ht);
    const char *first = json_string_value(
        json_object_get(json_array_get(api_json_lookup(obj, "status.timeline"), 0), "startTime"));
    json_array_foreach (api_json_lookup(obj, "status.timeline"), i, a) {
        char d[CLI_AGE_MAX], off[CLI_AGE_MAX], at[CLI_AGE_MAX + 1];
        const char *start = json_string_value(json_object_get(a, "startTime"));
        const char *end = json_string_value(json_object_get(a, "endTime"));
        const char *result = json_string_value(json_object_get(a, "result"));
        if (end)
            cli_duration_between(start, end, d);
        else
            snprintf(d, sizeof(d), "<running>");
        cli_duration_between(first, start, off);
        snprintf(at, sizeof(at), "%s%s", off[0] ? "+" : "", off[0] ? off : "?");
        const char *row[] = {json_string_value(json_object_get(a, "step")), at, d,
                             result ? result : (end ? "" : "InProgress")};
        cli_table_add(timeline, row);
    }
    if (first) {
        _cleanup_free_ char *title = xasprintf("Timeline (from %s)", first);
        table_section(out, title, timeline);
    } else {
        table_section(out, "Timeline", timeline);
    }
}

static char *resources_text(const json_t *r)
{
    if (!json_is_object(r))
        return xstrdup(NONE);
    char a[CLI_AGE_MAX], b[CLI_AGE_MAX];
    return xasprintf("vcpus %lld, memory %s, disk %s",
                     (long long)json_integer_value(json_object_get(r, "vcpus")),
                     cli_mib_format(json_integer_value(json_object_get(r, "memoryMiB")), a),
                     cli_gib_format(json_integer_value(json_object_get(r, "diskGiB")), b));
}

static void node_status(buf *out, const json_t *obj, const cli_print_opts *o)
{
    kv_block kv = {0};
    buf_append_str(out, "Status:\n");
    _cleanup_free_ char *cap = resources_text(api_json_lookup(obj, "status.capacity"));
    _cleanup_free_ char *alloc = resources_text(api_json_lookup(obj, "status.allocatable"));
    kv_add(&kv, "Capacity", cap);
    kv_add(&kv, "Allocatable", alloc);
    char a[CLI_AGE_MAX], b[CLI_AGE_MAX], c[CLI_AGE_MAX], d[CLI_AGE_MAX];
    int64_t lv = cli_node_limit(obj, API_RESOURCE_VCPUS),
            lm = cli_node_limit(obj, API_RESOURCE_MEMORY),
            ld = cli_node_limit(obj, API_RESOURCE_DISK);
    _cleanup_free_ char *limit = lv < 0 ? xstrdup(NONE)
                                        : xasprintf("vcpus %lld, memory %s, disk %s", (long long)lv,
                                                    cli_mib_format(lm, a), cli_gib_format(ld, b));
    kv_add(&kv, "Schedulable (x ratio)", limit);
    if (o->node_usage) {
        const json_t *u =
            json_object_get(o->node_usage, api_object_name(obj) ? api_object_name(obj) : "");
        _cleanup_free_ char *used =
            xasprintf("vcpus %lld, memory %s, disk %s (%lld instance%s)",
                      (long long)json_integer_value(json_object_get(u, "vcpus")),
                      cli_mib_format(json_integer_value(json_object_get(u, "memoryMiB")), c),
                      cli_gib_format(json_integer_value(json_object_get(u, "diskGiB")), d),
                      (long long)json_integer_value(json_object_get(u, "instances")),
                      json_integer_value(json_object_get(u, "instances")) == 1 ? "" : "s");
        kv_add(&kv, "Allocated", used);
    }
    _cleanup_free_ char *addresses = NULL;
    {
        buf ab = BUF_INIT(0);
        size_t i;
        json_t *e;
        json_array_foreach (api_json_lookup(obj, "status.addresses"), i, e)
            buf_printf(&ab, "%s%s: %s", i ? "\n" : "",
                       json_string_value(json_object_get(e, "type")) ?: "?",
                       json_string_value(json_object_get(e, "address")) ?: "?");
        addresses = ab.len ? buf_steal(&ab, NULL) : xstrdup(NONE);
        buf_done(&ab);
    }
    kv_add(&kv, "Addresses", addresses);
    kv_flush(&kv, out, 2);
    json_t *info = api_json_lookup(obj, "status.nodeInfo");
    if (json_object_size(info)) {
        buf_append_str(out, "  nodeInfo:\n");
        render_object(info, out, 4);
    }
    conditions_section(out, obj, o);
}

static void generic_status(buf *out, const json_t *obj, const cli_print_opts *o)
{
    json_t *status = json_object_get(obj, "status");
    if (!json_is_object(status))
        return;
    json_t *rest = json_deep_copy(status);
    json_object_del(rest, "conditions");
    buf_append_str(out, "Status:\n");
    if (json_object_size(rest))
        render_object(rest, out, 2);
    json_decref(rest);
    conditions_section(out, obj, o);
}

static usec_t event_time(const json_t *e)
{
    static const char *const paths[] = {"spec.lastTimestamp", "spec.firstTimestamp",
                                        "metadata.creationTimestamp"};
    for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
        usec_t t;
        const char *s = str_at(e, paths[i]);
        if (s && timestamp_parse(s, &t) == 0)
            return t;
    }
    return 0;
}

static int event_compare(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    usec_t tx = event_time(x), ty = event_time(y);
    if (tx != ty)
        return tx < ty ? -1 : 1;
    const char *nx = api_object_name(x), *ny = api_object_name(y);
    return strcmp(nx ? nx : "", ny ? ny : "");
}

void cli_events_sort(json_t *events)
{
    size_t n = json_array_size(events);
    if (n < 2)
        return;
    json_t **v = xnew(json_t *, n);
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(events, i));
    qsort(v, n, sizeof(*v), event_compare);
    json_array_clear(events);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(events, v[i]);
    free(v);
}

static void events_section(buf *out, const json_t *events, const cli_print_opts *o)
{
    static const char *const h[] = {"LAST SEEN", "TYPE", "REASON", "FROM", "MESSAGE"};
    _cleanup_(cli_table_freep) cli_table *t = cli_table_new(ELEMENTSOF(h), h);
    json_t *sorted = json_copy((json_t *)events);
    cli_events_sort(sorted);
    size_t n = json_array_size(sorted);
    size_t first = n > CLI_DESCRIBE_EVENTS_MAX ? n - CLI_DESCRIBE_EVENTS_MAX : 0;
    for (size_t i = first; i < n; i++) {
        const json_t *e = json_array_get(sorted, i);
        char age[CLI_AGE_MAX];
        const char *last = str_at(e, "spec.lastTimestamp");
        if (!last)
            last = str_at(e, "spec.firstTimestamp");
        if (!last)
            last = str_at(e, "metadata.creationTimestamp");
        char count[64] = "";
        int64_t c = json_integer_value(api_json_lookup(e, "spec.count"));
        if (c > 1)
            snprintf(count, sizeof(count), " (x%lld)", (long long)c);
        char when[CLI_AGE_MAX + 64];
        snprintf(when, sizeof(when), "%s%s", cli_age_since(last, o->now, age), count);
        const char *row[] = {when, str_at(e, "spec.type") ? str_at(e, "spec.type") : "Normal",
                             str_at(e, "spec.reason"), str_at(e, "spec.source.component"),
                             str_at(e, "spec.message")};
        cli_table_add(t, row);
    }
    json_decref(sorted);
    table_section(out, "Events", t);
}

char *cli_describe(const json_t *obj, const json_t *events, const cli_print_opts *o)
{
    buf out = BUF_INIT(0);
    const api_kind_info *k = api_object_kind(obj);
    kv_block kv = {0};
    char text[256], age[CLI_AGE_MAX];

    kv_add(&kv, "Name", api_object_name(obj));
    if (!k || k->namespaced)
        kv_add(&kv, "Namespace", api_object_namespace(obj));
    kv_add(&kv, "Kind", k ? k->name : str_at(obj, "kind"));
    _cleanup_free_ char *labels = map_lines(api_object_labels(obj));
    _cleanup_free_ char *annotations = map_lines(api_json_lookup(obj, "metadata.annotations"));
    kv_add(&kv, "Labels", labels);
    kv_add(&kv, "Annotations", annotations);
    kv_add(&kv, "UID", api_object_uid(obj) ? api_object_uid(obj) : NONE);
    const char *created = str_at(obj, "metadata.creationTimestamp");
    snprintf(text, sizeof(text), "%s (%s ago)", created ? created : "?",
             cli_age_since(created, o->now, age));
    kv_add(&kv, "Created", text);
    const char *deleting = str_at(obj, "metadata.deletionTimestamp");
    if (deleting) {
        snprintf(text, sizeof(text), "%s (%s ago)", deleting, cli_age_since(deleting, o->now, age));
        kv_add(&kv, "Deletion Requested", text);
    }
    snprintf(text, sizeof(text), "%lld", (long long)api_object_generation(obj));
    kv_add(&kv, "Generation", text);
    kv_add(&kv, "Resource Version", str_at(obj, "metadata.resourceVersion"));
    buf fin = BUF_INIT(0);
    size_t i;
    json_t *f;
    json_array_foreach (api_json_lookup(obj, "metadata.finalizers"), i, f)
        buf_printf(&fin, "%s%s", i ? ", " : "", json_string_value(f) ?: "?");
    kv_add(&kv, "Finalizers", fin.len ? fin.data : NONE);
    buf_done(&fin);
    kv_flush(&kv, &out, 0);

    json_t *spec = json_object_get(obj, "spec");
    buf_append_str(&out, "Spec:\n");
    if (json_object_size(spec))
        render_object(spec, &out, 2);
    else
        buf_append_str(&out, "  <none>\n");

    if (k && k->kind == API_KIND_INSTANCE) {
        instance_status(&out, obj, o);
    } else if (k && k->kind == API_KIND_NODE) {
        node_status(&out, obj, o);
    } else {
        generic_status(&out, obj, o);
    }
    if (events)
        events_section(&out, events, o);
    return buf_steal(&out, NULL);
}
