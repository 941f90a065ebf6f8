/* stratusctl get and stratusctl events: tables (or JSON, or KIND/NAME lines) of objects listed
 * with selectors or read by name, and with -w a row for every change after that, from a Watch
 * that starts at the list's revision. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/object.h"
#include "base/alloc.h"
#include "cli/columns.h"
#include "cli/describe.h"
#include "cli/format.h"
#include "ctl.h"

typedef enum output {
    OUTPUT_TABLE,
    OUTPUT_WIDE,
    OUTPUT_JSON,
    OUTPUT_NAME,
} output;

typedef struct printer {
    ctl *c;
    const api_kind_info *k;
    output mode;
    cli_print_opts opts;
    cli_table *table;
    json_t *node_usage;
    json_t *items; /* -o json without -w: collected, printed as one List */
} printer;

static output output_mode(const ctl *c)
{
    const char *o = c->f.output;
    if (!o)
        return OUTPUT_TABLE;
    if (streq(o, "wide"))
        return OUTPUT_WIDE;
    if (streq(o, "json"))
        return OUTPUT_JSON;
    return OUTPUT_NAME;
}

/* Nodes show what instances claim: estimated from every instance and flavor (clients cannot read
 * the allocation ledger). Without them the columns show only what a node can hand out. */
static void printer_node_usage(printer *p)
{
    if (p->k->kind != API_KIND_NODE || p->mode == OUTPUT_JSON || p->mode == OUTPUT_NAME)
        return;
    json_t *instances = NULL, *flavors = NULL;
    rpc_status st;
    if (ctl_list(p->c, api_kind_get(API_KIND_INSTANCE), "", true, NULL, NULL, &instances, NULL,
                 &st) == 0 &&
        ctl_list(p->c, api_kind_get(API_KIND_FLAVOR), "", false, NULL, NULL, &flavors, NULL, &st) ==
            0) {
        json_decref(p->node_usage);
        p->node_usage = cli_node_usage(instances, flavors);
    }
    json_decref(instances);
    json_decref(flavors);
    p->opts.node_usage = p->node_usage;
}

static void printer_init(printer *p, ctl *c, const api_kind_info *k, bool namespaces)
{
    *p = (printer){.c = c, .k = k, .mode = output_mode(c)};
    p->opts = (cli_print_opts){.now = now_realtime(),
                               .wide = p->mode == OUTPUT_WIDE,
                               .namespaces = namespaces && k->namespaced};
    p->items = json_array();
    printer_node_usage(p);
    if (p->mode == OUTPUT_TABLE || p->mode == OUTPUT_WIDE)
        p->table = cli_columns_table(k, &p->opts);
}

static void printer_done(printer *p)
{
    p->table = cli_table_free(p->table);
    json_decref(p->node_usage);
    json_decref(p->items);
}

static void printer_add(printer *p, const json_t *obj, bool now)
{
    char ref[512];
    switch (p->mode) {
    case OUTPUT_TABLE:
    case OUTPUT_WIDE:
        p->opts.now = now_realtime();
        cli_columns_add_row(p->table, p->k, &p->opts, obj);
        if (now)
            cli_table_print(p->table, stdout, false);
        break;
    case OUTPUT_NAME:
        printf("%s\n", ctl_ref(obj, ref, sizeof(ref)));
        break;
    case OUTPUT_JSON:
        if (now)
            ctl_print_json(obj);
        else
            json_array_append((json_t *)p->items, (json_t *)obj);
        break;
    }
    fflush(stdout);
}

/* Prints what was collected. single: -o json of one named object prints it, not a List. */
static void printer_flush(printer *p, bool single)
{
    if (p->table) {
        if (cli_table_rows(p->table) > 0)
            cli_table_print(p->table, stdout, false);
    } else if (p->mode == OUTPUT_JSON) {
        if (single) {
            if (json_array_size(p->items) == 1)
                ctl_print_json(json_array_get(p->items, 0));
        } else {
            json_t *list = ctl_list_document(p->items);
            ctl_print_json(list);
            json_decref(list);
        }
        json_array_clear(p->items);
    }
    fflush(stdout);
}

static void no_resources(const ctl *c, const api_kind_info *k, const char *ns)
{
    if (k->namespaced && !c->f.all_namespaces)
        fprintf(stderr, "No resources found in %s namespace.\n", ns);
    else
        fprintf(stderr, "No resources found\n");
}

/* Follows changes after revision rv, one row each, until an error. Returns an exit code. */
static int watch_changes(printer *p, const char *ns, const char *label_sel, const char *field_sel,
                         char *rv)
{
    ctl *c = p->c;
    _cleanup_free_ char *from = xstrdup(rv ? rv : "");
    usec_t failing_since = 0;
    for (;;) {
        Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
        req.kind = (char *)p->k->name;
        req.namespace_ = (char *)(p->k->namespaced && !c->f.all_namespaces ? ns : "");
        req.all_namespaces = p->k->namespaced && c->f.all_namespaces;
        req.label_selector = (char *)(label_sel ? label_sel : "");
        req.field_selector = (char *)(field_sel ? field_sel : "");
        req.resource_version = from;
        req.allow_bookmarks = true;
        rpc_watch *w = NULL;
        rpc_status st = {0};
        int r = rpc_client_watch(c->client, &req, &w);
        if (r < 0)
            return ctl_error("cannot start a watch: %s", strerror(-r));
        for (;;) {
            Stratus__V1__WatchEvent *ev = NULL;
            r = rpc_watch_next(w, USEC_INFINITY, &ev, &st);
            if (r < 0)
                break;
            failing_since = 0;
            if (ev->resource_version && *ev->resource_version) {
                free(from);
                from = xstrdup(ev->resource_version);
            }
            if (ev->type == STRATUS__V1__WATCH_EVENT__TYPE__ERROR) {
                st.code = (rpc_code)ev->code;
                snprintf(st.message, sizeof(st.message), "%s", ev->message ? ev->message : "");
                r = rpc_code_to_errno(st.code);
                rpc_message_free(ev);
                break;
            }
            if (ev->type == STRATUS__V1__WATCH_EVENT__TYPE__ADDED ||
                ev->type == STRATUS__V1__WATCH_EVENT__TYPE__MODIFIED ||
                ev->type == STRATUS__V1__WATCH_EVENT__TYPE__DELETED) {
                json_t *obj = json_loads(ev->object_json ? ev->object_json : "", 0, NULL);
                if (json_is_object(obj)) {
                    printer_node_usage(p);
                    printer_add(p, obj, true);
                }
                json_decref(obj);
            }
            rpc_message_free(ev);
        }
        rpc_watch_free(w);
        if (r == -ERANGE) {
            /* Our revision is gone: list again (quietly) and watch from there. */
            json_t *items = NULL;
            char *new_rv = NULL;
            r = ctl_list(c, p->k, ns, c->f.all_namespaces, label_sel, field_sel, &items, &new_rv,
                         &st);
            json_decref(items);
            if (r < 0)
                return ctl_rpc_error(c, &st, NULL);
            free(from);
            from = new_rv;
            continue;
        }
        if (r == -EHOSTDOWN || r == -EPIPE) {
            /* The stream ended: watch again from the last revision seen, for as long as the
             * apiserver comes back within a few request timeouts. */
            usec_t now = now_monotonic();
            if (!failing_since)
                failing_since = now;
            else if (now - failing_since > 3 * c->f.request_timeout)
                return ctl_rpc_error(c, &st, "watch");
            usleep(500 * 1000);
            continue;
        }
        return ctl_rpc_error(c, &st, "watch");
    }
}

/* Lists kind k with the selectors (sorting events by time when asked), prints, and with -w
 * follows. */
static int get_list(ctl *c, const api_kind_info *k, const char *field_sel, bool sort_events,
                    const char *watch_name)
{
    const char *ns = ctl_namespace(c, k);
    json_t *items = NULL;
    _cleanup_free_ char *rv = NULL;
    rpc_status st = {0};
    int r = ctl_list(c, k, ns, c->f.all_namespaces, c->f.selector, field_sel, &items, &rv, &st);
    if (r < 0)
        return ctl_rpc_error(c, &st, NULL);
    if (sort_events)
        cli_events_sort(items);
    printer p;
    printer_init(&p, c, k, c->f.all_namespaces);
    int ret = CTL_EXIT_OK;
    if (json_array_size(items) == 0 && watch_name) {
        char what[512];
        ret = ctl_error("%s not found", ctl_describe_key(k, ns, watch_name, what, sizeof(what)));
    } else if (json_array_size(items) == 0 && p.mode != OUTPUT_JSON) {
        if (!c->f.watch)
            no_resources(c, k, ns);
    } else {
        /* -o json -w streams objects (as kubectl), so the list comes as objects too */
        bool each = c->f.watch && p.mode == OUTPUT_JSON;
        size_t i;
        json_t *obj;
        json_array_foreach (items, i, obj)
            printer_add(&p, obj, each);
        if (!each)
            printer_flush(&p, false);
    }
    json_decref(items);
    if (ret == CTL_EXIT_OK && c->f.watch)
        ret = watch_changes(&p, ns, c->f.selector, field_sel, rv);
    printer_done(&p);
    return ret;
}

/* Reads objects by name, printing one table per run of the same kind. */
static int get_named(ctl *c, const api_kind_info **kinds, const char **names, size_t n)
{
    int ret = CTL_EXIT_OK;
    printer p = {0};
    bool started = false, any_table = false;
    for (size_t i = 0; i < n; i++) {
        if (started && p.k != kinds[i]) {
            printer_flush(&p, false);
            any_table = any_table || (p.table && cli_table_rows(p.table) > 0);
            printer_done(&p);
            started = false;
        }
        if (!started) {
            if (any_table && (output_mode(c) == OUTPUT_TABLE || output_mode(c) == OUTPUT_WIDE))
                putchar('\n');
            printer_init(&p, c, kinds[i], false);
            started = true;
        }
        json_t *obj = NULL;
        rpc_status st = {0};
        if (ctl_get(c, kinds[i], ctl_namespace(c, kinds[i]), names[i], &obj, &st) < 0) {
            ret = ctl_rpc_error(c, &st, NULL);
            if (st.code == RPC_CODE_UNAVAILABLE || st.code == RPC_CODE_DEADLINE_EXCEEDED)
                break;
            continue;
        }
        printer_add(&p, obj, false);
        json_decref(obj);
    }
    if (started) {
        printer_flush(&p, n == 1);
        printer_done(&p);
    }
    return ret;
}

int ctl_cmd_get(ctl *c, char **args, size_t n)
{
    const api_kind_info *k = NULL;
    const api_kind_info **kinds = xnew(const api_kind_info *, n + 1);
    const char **names = xnew(const char *, n + 1);
    size_t n_names = 0;
    int ret = ctl_targets(c, args, n, true, &k, kinds, names, &n_names);
    if (ret)
        goto out;
    if (n_names && (c->f.selector || c->f.field_selector)) {
        ret = ctl_usage_error(c, "-l and --field-selector select by label and field; they cannot "
                                 "be combined with names");
        goto out;
    }
    if (c->f.watch && n_names > 1) {
        ret = ctl_usage_error(c, "--watch follows one object or one kind, not several names");
        goto out;
    }
    ret = ctl_connect(c);
    if (ret)
        goto out;
    if (n_names == 0) {
        ret = get_list(c, k, c->f.field_selector, false, NULL);
    } else if (c->f.watch) {
        _cleanup_free_ char *fs = xasprintf("metadata.name=%s", names[0]);
        ret = get_list(c, kinds[0], fs, false, names[0]);
    } else {
        ret = get_named(c, kinds, names, n_names);
    }
out:
    free(kinds);
    free(names);
    return ret;
}

int ctl_cmd_events(ctl *c, char **args, size_t n)
{
    if (n > 0)
        return ctl_usage_error(c, "unexpected argument \"%s\" (use --for KIND/NAME)", args[0]);
    const api_kind_info *k = api_kind_get(API_KIND_EVENT);
    _cleanup_free_ char *fs = NULL;
    if (c->f.for_) {
        const char *slash = strchr(c->f.for_, '/');
        if (!slash || slash == c->f.for_ || !slash[1])
            return ctl_usage_error(c, "--for: \"%s\" is not KIND/NAME", c->f.for_);
        _cleanup_free_ char *kind = xstrndup(c->f.for_, (size_t)(slash - c->f.for_));
        const api_kind_info *about = ctl_kind(kind);
        if (!about)
            return CTL_EXIT_ERROR;
        fs = xasprintf("spec.involvedObject.kind=%s,spec.involvedObject.name=%s", about->name,
                       slash + 1);
    }
    int r = ctl_connect(c);
    if (r)
        return r;
    return get_list(c, k, fs, true, NULL);
}
