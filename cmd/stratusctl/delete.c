/* stratusctl delete: Delete by name, by label selector, or for every object of manifests; with
 * --wait, then waits until each object is gone (an object with finalizers goes only once its
 * controllers removed them). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/object.h"
#include "base/alloc.h"
#include "cli/format.h"
#include "cli/manifest.h"
#include "ctl.h"

typedef struct target {
    const api_kind_info *k;
    char *ns;
    char *name;
    char *where; /* the manifest document, for messages; NULL for names */
} target;

typedef struct targets {
    target *v;
    size_t n, allocated;
} targets;

static void targets_add(targets *t, const api_kind_info *k, const char *ns, const char *name,
                        char *where)
{
    t->v = xgrow(t->v, &t->allocated, t->n + 1, sizeof(target));
    t->v[t->n++] = (target){.k = k, .ns = xstrdup(ns), .name = xstrdup(name), .where = where};
}

static void targets_done(targets *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].ns);
        free(t->v[i].name);
        free(t->v[i].where);
    }
    free(t->v);
}

static int targets_from_files(ctl *c, targets *t)
{
    cli_docs docs = CLI_DOCS_INIT;
    int ret = CTL_EXIT_OK;
    for (size_t i = 0; i < c->f.n_files && ret == CTL_EXIT_OK; i++) {
        _cleanup_free_ char *err = NULL;
        if (cli_docs_read(&docs, c->f.files[i], &err) < 0)
            ret = ctl_error("%s", err);
    }
    for (size_t i = 0; i < docs.n && ret == CTL_EXIT_OK; i++) {
        const cli_doc *d = &docs.v[i];
        const char *kind = json_string_value(json_object_get(d->obj, "kind"));
        const api_kind_info *k = api_kind_from_name(kind ? kind : "");
        const char *name = api_object_name(d->obj);
        _cleanup_free_ char *where = cli_doc_name(d);
        if (!k || !name) {
            ret = ctl_error("%s: %s", where,
                            !k ? "kind: not a known kind" : "metadata.name: is required");
            break;
        }
        const char *ns = api_object_namespace(d->obj);
        if (!ns)
            ns = ctl_namespace(c, k);
        targets_add(t, k, k->namespaced ? ns : "", name, TAKE_PTR(where));
    }
    if (ret == CTL_EXIT_OK && docs.n == 0)
        ret = ctl_error("no objects passed to delete");
    cli_docs_done(&docs);
    return ret;
}

static int targets_from_selector(ctl *c, const api_kind_info *k, targets *t)
{
    json_t *items = NULL;
    rpc_status st = {0};
    const char *ns = ctl_namespace(c, k);
    if (ctl_list(c, k, ns, false, c->f.selector, NULL, &items, NULL, &st) < 0)
        return ctl_rpc_error(c, &st, NULL);
    size_t i;
    json_t *obj;
    json_array_foreach (items, i, obj)
        targets_add(t, k, ns, api_object_name(obj), NULL);
    if (t->n == 0 && k->namespaced)
        fprintf(stderr, "No resources found in %s namespace.\n", ns);
    else if (t->n == 0)
        fprintf(stderr, "No resources found\n");
    json_decref(items);
    return CTL_EXIT_OK;
}

static int delete_one(ctl *c, const target *t, bool *ret_deleted)
{
    Stratus__V1__DeleteRequest req = STRATUS__V1__DELETE_REQUEST__INIT;
    req.kind = (char *)t->k->name;
    req.namespace_ = t->ns;
    req.name = t->name;
    Stratus__V1__ObjectResponse *rep = NULL;
    rpc_status st = {0};
    *ret_deleted = false;
    int r = rpc_client_delete(c->client, &req, c->f.request_timeout, &rep, &st);
    if (r == -ENOENT && c->f.ignore_not_found)
        return CTL_EXIT_OK;
    if (r < 0)
        return ctl_rpc_error(c, &st, t->where);
    rpc_message_free(rep);
    printf("%s \"%s\" deleted\n", cli_kind_singular(t->k), t->name);
    fflush(stdout);
    *ret_deleted = true;
    return CTL_EXIT_OK;
}

int ctl_cmd_delete(ctl *c, char **args, size_t n)
{
    targets t = {0};
    const api_kind_info *k = NULL;
    const api_kind_info **kinds = xnew(const api_kind_info *, n + 1);
    const char **names = xnew(const char *, n + 1);
    bool *deleted = NULL;
    size_t n_names = 0;
    int ret = CTL_EXIT_OK;
    if (c->f.n_files) {
        if (n > 0 || c->f.selector) {
            ret = ctl_usage_error(c, "-f cannot be combined with names or -l");
            goto out;
        }
        ret = targets_from_files(c, &t);
        if (ret)
            goto out;
        ret = ctl_connect(c);
        if (ret)
            goto out;
    } else {
        ret = ctl_targets(c, args, n, c->f.selector != NULL, &k, kinds, names, &n_names);
        if (ret)
            goto out;
        if (n_names && c->f.selector) {
            ret = ctl_usage_error(c, "-l selects by label; it cannot be combined with names");
            goto out;
        }
        ret = ctl_connect(c);
        if (ret)
            goto out;
        if (c->f.selector) {
            ret = targets_from_selector(c, k, &t);
            if (ret)
                goto out;
        }
        for (size_t i = 0; i < n_names; i++)
            targets_add(&t, kinds[i], ctl_namespace(c, kinds[i]), names[i], NULL);
    }

    deleted = xnew(bool, t.n + 1);
    for (size_t i = 0; i < t.n; i++) {
        int r = delete_one(c, &t.v[i], &deleted[i]);
        if (r)
            ret = r;
    }
    if (!c->f.wait)
        goto out;
    usec_t deadline =
        now_monotonic() + (c->f.wait_timeout ? c->f.wait_timeout : CTL_SETTLE_DEFAULT);
    cli_wait_for w = {.type = CLI_WAIT_DELETE};
    for (size_t i = 0; i < t.n; i++) {
        if (!deleted[i])
            continue;
        rpc_status st = {0};
        char ref[512];
        snprintf(ref, sizeof(ref), "%s/%s", cli_kind_singular(t.v[i].k), t.v[i].name);
        int r = ctl_wait_object(c, t.v[i].k, t.v[i].ns, t.v[i].name, &w, deadline, NULL, NULL, NULL,
                                &st);
        if (r == -ETIMEDOUT)
            ret = ctl_error("timed out waiting for %s to be deleted (its finalizers are still "
                            "there: see stratusctl describe %s)",
                            ref, ref);
        else if (r < 0)
            ret = ctl_rpc_error(c, &st, ref);
    }
out:
    free(deleted);
    targets_done(&t);
    free(kinds);
    free(names);
    return ret;
}
