/* stratusctl describe: each object in detail (pkg/cli/describe.c writes the text), with the
 * Events about it, found with a field selector on spec.involvedObject. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/object.h"
#include "base/alloc.h"
#include "cli/describe.h"
#include "ctl.h"

/* The Events about obj: in its namespace, or in "default" for a cluster-scoped object. NULL
 * when they cannot be listed (the description goes on without them). */
static json_t *events_about(ctl *c, const api_kind_info *k, const json_t *obj)
{
    const api_kind_info *ek = api_kind_get(API_KIND_EVENT);
    const char *ns = k->namespaced ? api_object_namespace(obj) : "default";
    _cleanup_free_ char *fs = xasprintf("spec.involvedObject.kind=%s,spec.involvedObject.name=%s",
                                        k->name, api_object_name(obj));
    json_t *items = NULL;
    rpc_status st;
    if (ctl_list(c, ek, ns ? ns : "default", false, NULL, fs, &items, NULL, &st) < 0)
        return NULL;
    return items;
}

static json_t *usage_for_nodes(ctl *c)
{
    json_t *instances = NULL, *flavors = NULL, *usage = NULL;
    rpc_status st;
    if (ctl_list(c, api_kind_get(API_KIND_INSTANCE), "", true, NULL, NULL, &instances, NULL, &st) ==
            0 &&
        ctl_list(c, api_kind_get(API_KIND_FLAVOR), "", false, NULL, NULL, &flavors, NULL, &st) == 0)
        usage = cli_node_usage(instances, flavors);
    json_decref(instances);
    json_decref(flavors);
    return usage;
}

static void describe_one(ctl *c, const api_kind_info *k, const json_t *obj, bool *first)
{
    json_t *events = k->kind == API_KIND_EVENT ? NULL : events_about(c, k, obj);
    json_t *usage = k->kind == API_KIND_NODE ? usage_for_nodes(c) : NULL;
    cli_print_opts o = {.now = now_realtime(), .node_usage = usage};
    _cleanup_free_ char *text = cli_describe(obj, events, &o);
    if (!*first)
        putchar('\n');
    *first = false;
    fputs(text, stdout);
    fflush(stdout);
    json_decref(events);
    json_decref(usage);
}

int ctl_cmd_describe(ctl *c, char **args, size_t n)
{
    const api_kind_info *k = NULL;
    const api_kind_info **kinds = xnew(const api_kind_info *, n + 1);
    const char **names = xnew(const char *, n + 1);
    size_t n_names = 0;
    bool first = true;
    int ret = ctl_targets(c, args, n, true, &k, kinds, names, &n_names);
    if (ret)
        goto out;
    if (n_names && c->f.selector) {
        ret = ctl_usage_error(c, "-l selects by label; it cannot be combined with names");
        goto out;
    }
    ret = ctl_connect(c);
    if (ret)
        goto out;
    if (n_names == 0) {
        json_t *items = NULL;
        rpc_status st = {0};
        const char *ns = ctl_namespace(c, k);
        if (ctl_list(c, k, ns, false, c->f.selector, NULL, &items, NULL, &st) < 0) {
            ret = ctl_rpc_error(c, &st, NULL);
            goto out;
        }
        if (json_array_size(items) == 0) {
            if (k->namespaced)
                fprintf(stderr, "No resources found in %s namespace.\n", ns);
            else
                fprintf(stderr, "No resources found\n");
        }
        size_t i;
        json_t *obj;
        json_array_foreach (items, i, obj)
            describe_one(c, k, obj, &first);
        json_decref(items);
        goto out;
    }
    for (size_t i = 0; i < n_names; i++) {
        json_t *obj = NULL;
        rpc_status st = {0};
        if (ctl_get(c, kinds[i], ctl_namespace(c, kinds[i]), names[i], &obj, &st) < 0) {
            ret = ctl_rpc_error(c, &st, NULL);
            if (st.code == RPC_CODE_UNAVAILABLE || st.code == RPC_CODE_DEADLINE_EXCEEDED)
                break;
            continue;
        }
        describe_one(c, kinds[i], obj, &first);
        json_decref(obj);
    }
out:
    free(kinds);
    free(names);
    return ret;
}
