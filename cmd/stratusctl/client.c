/* stratusctl's helpers around the API client (see ctl.h): error wording, Get, paged List, and
 * waiting on one object with List + Watch. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/object.h"
#include "base/alloc.h"
#include "cli/format.h"
#include "ctl.h"

int ctl_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CTL_EXIT_ERROR;
}

int ctl_usage_error(const ctl *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (c && c->command)
        fprintf(stderr, "Run 'stratusctl %s --help' for usage.\n", c->command);
    else
        fputs("Run 'stratusctl --help' for usage.\n", stderr);
    return CTL_EXIT_USAGE;
}

const char *ctl_status_text(const ctl *c, const rpc_status *st, char *out, size_t size)
{
    const char *m = st->message[0] ? st->message : rpc_code_to_string(st->code);
    /* UNAVAILABLE from the apiserver itself names etcd or its shutdown; anything else is gRPC
     * telling us it could not get there. */
    if (st->code == RPC_CODE_UNAVAILABLE && !strstr(m, "etcd") && !strstr(m, "shutting down"))
        snprintf(out, size, "cannot reach the apiserver at %s: %s", c->server, m);
    else if (st->code == RPC_CODE_DEADLINE_EXCEEDED)
        snprintf(out, size, "no answer from the apiserver at %s within %s (--request-timeout)",
                 c->server, c->timeout_text);
    else
        snprintf(out, size, "%s", m);
    return out;
}

int ctl_rpc_error(const ctl *c, const rpc_status *st, const char *what)
{
    char text[RPC_MESSAGE_MAX + 256];
    ctl_status_text(c, st, text, sizeof(text));
    if (what)
        return ctl_error("%s: %s", what, text);
    return ctl_error("%s", text);
}

int ctl_connect(ctl *c)
{
    if (c->client)
        return 0;
    int r = rpc_client_new(c->server, NULL, &c->client);
    if (r < 0)
        return ctl_error("cannot use the apiserver address \"%s\": %s", c->server, strerror(-r));
    return 0;
}

const api_kind_info *ctl_kind(const char *name)
{
    const api_kind_info *k = api_kind_lookup(name);
    if (k)
        return k;
    char known[256] = "";
    size_t n = 0;
    for (api_kind i = 0; i < _API_KIND_MAX; i++)
        n += (size_t)snprintf(known + n, sizeof(known) - MIN(n, sizeof(known) - 1), "%s%s",
                              i ? ", " : "", api_kind_get(i)->plural);
    ctl_error("unknown kind \"%s\" (known kinds: %s)", name, known);
    return NULL;
}

const char *ctl_namespace(const ctl *c, const api_kind_info *k)
{
    if (!k->namespaced)
        return "";
    return c->f.namespace_ && *c->f.namespace_ ? c->f.namespace_ : "default";
}

const char *ctl_ref(const json_t *obj, char *out, size_t size)
{
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    const char *k = cli_kind_singular(api_kind_from_name(kind ? kind : ""));
    const char *name = api_object_name(obj);
    snprintf(out, size, "%s/%s", k ? k : (kind ? kind : "?"), name ? name : "?");
    return out;
}

const char *ctl_describe_key(const api_kind_info *k, const char *ns, const char *name, char *out,
                             size_t size)
{
    if (k->namespaced)
        snprintf(out, size, "%s \"%s/%s\"", k->plural, ns && *ns ? ns : "default", name);
    else
        snprintf(out, size, "%s \"%s\"", k->plural, name);
    return out;
}

static int parse_object(const char *text, json_t **ret, rpc_status *st)
{
    json_t *o = json_loads(text ? text : "", JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        st->code = RPC_CODE_INTERNAL;
        snprintf(st->message, sizeof(st->message), "the apiserver sent an object that is not JSON");
        return -EBADMSG;
    }
    *ret = o;
    return 0;
}

int ctl_get(ctl *c, const api_kind_info *k, const char *ns, const char *name, json_t **ret,
            rpc_status *st)
{
    Stratus__V1__GetRequest req = STRATUS__V1__GET_REQUEST__INIT;
    req.kind = (char *)k->name;
    req.namespace_ = (char *)(k->namespaced ? ns : "");
    req.name = (char *)name;
    Stratus__V1__ObjectResponse *rep = NULL;
    int r = rpc_client_get(c->client, &req, c->f.request_timeout, &rep, st);
    if (r < 0)
        return r;
    r = parse_object(rep->object_json, ret, st);
    rpc_message_free(rep);
    return r;
}

int ctl_list(ctl *c, const api_kind_info *k, const char *ns, bool all_ns, const char *label_sel,
             const char *field_sel, json_t **ret_items, char **ret_rv, rpc_status *st)
{
    /* A continue token whose revision was compacted meanwhile: start over, a few times. */
    for (int attempt = 0;; attempt++) {
        json_t *items = json_array();
        _cleanup_free_ char *token = NULL, *rv = NULL;
        int r = 0;
        do {
            Stratus__V1__ListRequest req = STRATUS__V1__LIST_REQUEST__INIT;
            req.kind = (char *)k->name;
            req.namespace_ = (char *)(k->namespaced && !all_ns ? ns : "");
            req.all_namespaces = k->namespaced && all_ns;
            req.label_selector = (char *)(label_sel ? label_sel : "");
            req.field_selector = (char *)(field_sel ? field_sel : "");
            req.limit = CTL_LIST_PAGE;
            req.continue_token = token ? token : (char *)"";
            Stratus__V1__ListResponse *rep = NULL;
            r = rpc_client_list(c->client, &req, c->f.request_timeout, &rep, st);
            if (r < 0)
                break;
            for (size_t i = 0; i < rep->n_items_json && r == 0; i++) {
                json_t *o = NULL;
                r = parse_object(rep->items_json[i], &o, st);
                if (r == 0)
                    json_array_append_new(items, o);
            }
            if (!rv)
                rv = xstrdup(rep->resource_version ? rep->resource_version : "");
            free(token);
            token =
                rep->continue_token && *rep->continue_token ? xstrdup(rep->continue_token) : NULL;
            rpc_message_free(rep);
            if (r == 0 && json_array_size(items) > CTL_LIST_ITEMS_MAX) {
                st->code = RPC_CODE_RESOURCE_EXHAUSTED;
                snprintf(st->message, sizeof(st->message),
                         "more than %d %s: narrow the list with -l or --field-selector",
                         CTL_LIST_ITEMS_MAX, k->plural);
                r = -E2BIG;
            }
        } while (r == 0 && token);
        if (r == -ERANGE && attempt < 3) {
            json_decref(items);
            continue;
        }
        if (r < 0) {
            json_decref(items);
            return r;
        }
        *ret_items = items;
        if (ret_rv)
            *ret_rv = TAKE_PTR(rv);
        return 0;
    }
}

/* Hands a state of the waited-for object to the caller's progress callback, if any. */
static void report(ctl_progress_fn progress, void *userdata, const json_t *obj)
{
    if (progress)
        progress(userdata, obj);
}

int ctl_wait_object(ctl *c, const api_kind_info *k, const char *ns, const char *name,
                    const cli_wait_for *w, usec_t deadline, ctl_progress_fn progress,
                    void *userdata, json_t **ret_last, rpc_status *st)
{
    _cleanup_free_ char *fs = xasprintf("metadata.name=%s", name);
    json_t *obj = NULL;
    int r;
    bool listed = false;
    _cleanup_free_ char *rv = NULL;
    usec_t tick = c->tty ? USEC_PER_SEC : USEC_INFINITY;

    for (;;) {
        if (!listed) {
            json_t *items = NULL;
            free(rv);
            rv = NULL;
            r = ctl_list(c, k, ns, false, NULL, fs, &items, &rv, st);
            if (r < 0)
                break;
            json_decref(obj);
            obj = json_incref(json_array_get(items, 0));
            json_decref(items);
            listed = true;
            report(progress, userdata, obj);
            if (cli_wait_for_met(w, obj)) {
                r = 0;
                break;
            }
            if (!obj && w->type != CLI_WAIT_DELETE) {
                char what[512];
                st->code = RPC_CODE_NOT_FOUND;
                snprintf(st->message, sizeof(st->message), "%s not found",
                         ctl_describe_key(k, ns, name, what, sizeof(what)));
                r = -ENOENT;
                break;
            }
        }

        Stratus__V1__WatchRequest req = STRATUS__V1__WATCH_REQUEST__INIT;
        req.kind = (char *)k->name;
        req.namespace_ = (char *)(k->namespaced ? ns : "");
        req.field_selector = fs;
        req.resource_version = rv ? rv : (char *)"";
        rpc_watch *watch = NULL;
        r = rpc_client_watch(c->client, &req, &watch);
        if (r < 0) {
            st->code = rpc_code_from_errno(r);
            snprintf(st->message, sizeof(st->message), "cannot start a watch: %s", strerror(-r));
            break;
        }
        bool done = false;
        for (;;) {
            usec_t now = now_monotonic();
            if (deadline != USEC_INFINITY && now >= deadline) {
                r = -ETIMEDOUT;
                done = true;
                break;
            }
            usec_t left = deadline == USEC_INFINITY ? USEC_INFINITY : deadline - now;
            Stratus__V1__WatchEvent *ev = NULL;
            r = rpc_watch_next(watch, MIN(left, tick), &ev, st);
            if (r == -ETIMEDOUT) {
                report(progress, userdata, obj); /* a terminal's elapsed time moves on */
                continue;
            }
            if (r < 0)
                break;
            if (ev->resource_version && *ev->resource_version) {
                free(rv);
                rv = xstrdup(ev->resource_version);
            }
            bool changed = true;
            switch (ev->type) {
            case STRATUS__V1__WATCH_EVENT__TYPE__ADDED:
            case STRATUS__V1__WATCH_EVENT__TYPE__MODIFIED: {
                json_t *o = NULL;
                if (parse_object(ev->object_json, &o, st) == 0) {
                    json_decref(obj);
                    obj = o;
                }
                break;
            }
            case STRATUS__V1__WATCH_EVENT__TYPE__DELETED:
                json_decref(obj);
                obj = NULL;
                break;
            case STRATUS__V1__WATCH_EVENT__TYPE__ERROR:
                st->code = (rpc_code)ev->code;
                snprintf(st->message, sizeof(st->message), "%s",
                         ev->message ? ev->message : "watch failed");
                r = rpc_code_to_errno((rpc_code)ev->code);
                changed = false;
                break;
            default:
                changed = false;
                break;
            }
            rpc_message_free(ev);
            if (r < 0)
                break;
            if (!changed)
                continue;
            report(progress, userdata, obj);
            if (cli_wait_for_met(w, obj)) {
                r = 0;
                done = true;
                break;
            }
            if (!obj) {
                char what[512];
                st->code = RPC_CODE_NOT_FOUND;
                snprintf(st->message, sizeof(st->message), "%s was deleted",
                         ctl_describe_key(k, ns, name, what, sizeof(what)));
                r = -ENOENT;
                done = true;
                break;
            }
        }
        rpc_watch_free(watch);
        if (done)
            break;
        if (r == -ERANGE) {
            listed = false; /* our revision is gone: list again */
            continue;
        }
        if (r == -EHOSTDOWN || r == -EPIPE) {
            /* The stream ended (apiserver restarted or gone): watch again from where we were,
             * after a pause, until the deadline says otherwise. */
            if (deadline != USEC_INFINITY && now_monotonic() + USEC_PER_SEC / 2 >= deadline) {
                r = -ETIMEDOUT;
                break;
            }
            usleep(500 * 1000);
            continue;
        }
        break;
    }
    if (ret_last)
        *ret_last = obj ? json_incref(obj) : NULL;
    json_decref(obj);
    return r;
}

void ctl_print_json(const json_t *obj)
{
    char *s = json_dumps(obj, JSON_INDENT(4) | JSON_SORT_KEYS);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
}

json_t *ctl_list_document(json_t *items)
{
    return json_pack("{s:s,s:O,s:s}", "apiVersion", "stratus/v1", "items", items, "kind", "List");
}

int ctl_targets(const ctl *c, char **args, size_t n, bool allow_kind_only,
                const api_kind_info **ret_kind, const api_kind_info **ret_kinds,
                const char **ret_names, size_t *ret_n)
{
    if (n == 0)
        return ctl_usage_error(c,
                               "a kind is required (for example: %s instances, or %s "
                               "instance/web-1)",
                               c->command, c->command);
    if (strchr(args[0], '/')) {
        for (size_t i = 0; i < n; i++) {
            char *slash = strchr(args[i], '/');
            if (!slash || !slash[1] || slash == args[i])
                return ctl_usage_error(c, "\"%s\": expected KIND/NAME like the arguments before it",
                                       args[i]);
            _cleanup_free_ char *kind = xstrndup(args[i], (size_t)(slash - args[i]));
            const api_kind_info *k = ctl_kind(kind);
            if (!k)
                return CTL_EXIT_ERROR;
            ret_kinds[i] = k;
            ret_names[i] = slash + 1;
        }
        *ret_kind = ret_kinds[0];
        *ret_n = n;
        return 0;
    }
    const api_kind_info *k = ctl_kind(args[0]);
    if (!k)
        return CTL_EXIT_ERROR;
    if (n == 1 && !allow_kind_only)
        return ctl_usage_error(c, "a name is required after \"%s\"", args[0]);
    for (size_t i = 1; i < n; i++) {
        if (strchr(args[i], '/'))
            return ctl_usage_error(c, "\"%s\": give either KIND NAME... or KIND/NAME...", args[i]);
        ret_kinds[i - 1] = k;
        ret_names[i - 1] = args[i];
    }
    *ret_kind = k;
    *ret_n = n - 1;
    return 0;
}
