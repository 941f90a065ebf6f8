/* stratusctl apply: sends each object of the manifests to the apiserver's Apply, in order, and
 * prints what happened to it; stops at the first object the apiserver rejects, saying which
 * objects were applied before it. --wait then follows each applied instance until it is Running
 * or Failed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "api/object.h"
#include "base/alloc.h"
#include "cli/format.h"
#include "cli/manifest.h"
#include "ctl.h"

#define APPLIED_NAMED_MAX 10 /* objects named in the "applied before the error" line */

static const char *result_word(Stratus__V1__ApplyResponse__Result r)
{
    switch (r) {
    case STRATUS__V1__APPLY_RESPONSE__RESULT__CREATED:
        return "created";
    case STRATUS__V1__APPLY_RESPONSE__RESULT__CONFIGURED:
        return "configured";
    case STRATUS__V1__APPLY_RESPONSE__RESULT__UNCHANGED:
        return "unchanged";
    default:
        return "applied";
    }
}

/* -n fills in the namespace of namespaced objects that have none, and must agree with the ones
 * that do (kubectl's rule). Returns 0 or an exit code. */
static int apply_namespace(ctl *c, const cli_doc *d)
{
    if (!c->f.namespace_)
        return 0;
    const char *kind = json_string_value(json_object_get(d->obj, "kind"));
    const api_kind_info *k = api_kind_from_name(kind ? kind : "");
    json_t *md = json_object_get(d->obj, "metadata");
    if (!k || !k->namespaced || !json_is_object(md))
        return 0;
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    if (!ns) {
        json_object_set_new(md, "namespace", json_string(c->f.namespace_));
        return 0;
    }
    if (!streq(ns, c->f.namespace_)) {
        _cleanup_free_ char *where = cli_doc_name(d);
        return ctl_error("%s: the object's namespace \"%s\" does not match --namespace \"%s\"",
                         where, ns, c->f.namespace_);
    }
    return 0;
}

/* Says which objects were applied before the one that failed (the rest were not). */
static void report_partial(json_t *applied, size_t total)
{
    size_t n = json_array_size(applied);
    if (n == 0) {
        fprintf(stderr, "note: nothing was applied\n");
        return;
    }
    fprintf(stderr, "note: applied %zu of %zu objects before the error (", n, total);
    for (size_t i = 0; i < n && i < APPLIED_NAMED_MAX; i++)
        fprintf(stderr, "%s%s", i ? ", " : "", json_string_value(json_array_get(applied, i)));
    if (n > APPLIED_NAMED_MAX)
        fprintf(stderr, ", and %zu more", n - APPLIED_NAMED_MAX);
    fprintf(stderr, "); the other %zu were not applied\n", total - n);
}

typedef struct progress {
    ctl *c;
    char ref[512];
    char last[1024];
    usec_t start;
    bool line_open; /* a terminal line is being rewritten */
} progress;

static void progress_show(void *userdata, const json_t *obj)
{
    progress *p = userdata;
    char text[1024];
    if (obj)
        cli_instance_progress(obj, text, sizeof(text));
    else
        snprintf(text, sizeof(text), "gone");
    if (p->c->tty) {
        /* One line rewritten in place: it must not wrap, or \r would rewrite only its end. */
        char elapsed[CLI_AGE_MAX];
        cli_age_format((int64_t)((now_monotonic() - p->start) / USEC_PER_SEC), elapsed);
        struct winsize ws = {0};
        size_t cols = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 80;
        _cleanup_free_ char *full = xasprintf("%s: %s", p->ref, text);
        size_t room = cols > 16 + strlen(elapsed) ? cols - 7 - strlen(elapsed) : 8;
        _cleanup_free_ char *line = cli_cell(full, room, "");
        printf("\r\033[K%s [%s]", line, elapsed);
        p->line_open = true;
    } else if (!streq(text, p->last)) {
        printf("%s: %s\n", p->ref, text);
    }
    fflush(stdout);
    snprintf(p->last, sizeof(p->last), "%s", text);
}

static int wait_instances(ctl *c, json_t *instances)
{
    usec_t timeout = c->f.wait_timeout ? c->f.wait_timeout : CTL_SETTLE_DEFAULT;
    usec_t deadline = now_monotonic() + timeout;
    const api_kind_info *k = api_kind_get(API_KIND_INSTANCE);
    cli_wait_for w = {.type = CLI_WAIT_SETTLED};
    int ret = CTL_EXIT_OK;
    size_t i;
    json_t *obj;
    json_array_foreach (instances, i, obj) {
        progress p = {.c = c, .start = now_monotonic()};
        ctl_ref(obj, p.ref, sizeof(p.ref));
        const char *ns = api_object_namespace(obj);
        json_t *last = NULL;
        rpc_status st = {0};
        int r = ctl_wait_object(c, k, ns ? ns : "default", api_object_name(obj), &w, deadline,
                                progress_show, &p, &last, &st);
        if (p.line_open)
            putchar('\n');
        const char *phase = json_string_value(api_json_lookup(last, "status.phase"));
        if (r == 0 && phase && streq(phase, "Failed")) {
            char text[1024];
            ctl_error("%s %s", p.ref, cli_instance_progress(last, text, sizeof(text)));
            ret = CTL_EXIT_ERROR;
        } else if (r == 0) {
            printf("%s %s\n", p.ref, phase ? phase : "");
        } else if (r == -ETIMEDOUT) {
            ctl_error("timed out waiting for %s to be Running or Failed (%s)", p.ref,
                      p.last[0] ? p.last : "no status");
            ret = CTL_EXIT_ERROR;
        } else {
            ctl_rpc_error(c, &st, p.ref);
            ret = CTL_EXIT_ERROR;
        }
        fflush(stdout);
        json_decref(last);
    }
    return ret;
}

int ctl_cmd_apply(ctl *c, char **args, size_t n)
{
    if (n > 0)
        return ctl_usage_error(c, "unexpected argument \"%s\" (manifests are given with -f)",
                               args[0]);
    if (c->f.n_files == 0)
        return ctl_usage_error(c, "-f FILE is required");
    cli_docs docs = CLI_DOCS_INIT;
    int ret = CTL_EXIT_OK;
    for (size_t i = 0; i < c->f.n_files; i++) {
        _cleanup_free_ char *err = NULL;
        if (cli_docs_read(&docs, c->f.files[i], &err) < 0) {
            cli_docs_done(&docs);
            return ctl_error("%s", err);
        }
    }
    if (docs.n == 0) {
        cli_docs_done(&docs);
        return ctl_error("no objects passed to apply");
    }
    cli_docs_sort_for_apply(&docs);
    if (ctl_connect(c)) {
        cli_docs_done(&docs);
        return CTL_EXIT_ERROR;
    }
    json_t *applied = json_array();   /* "kind/name" of what was applied */
    json_t *instances = json_array(); /* the instances to --wait for */
    for (size_t i = 0; i < docs.n; i++) {
        const cli_doc *d = &docs.v[i];
        ret = apply_namespace(c, d);
        if (ret) {
            report_partial(applied, docs.n);
            break;
        }
        _cleanup_free_ char *text = json_dumps(d->obj, JSON_COMPACT);
        Stratus__V1__ApplyRequest req = STRATUS__V1__APPLY_REQUEST__INIT;
        req.object_json = text;
        req.dry_run = c->f.dry_run;
        req.field_manager = (char *)"stratusctl";
        Stratus__V1__ApplyResponse *rep = NULL;
        rpc_status st = {0};
        int r = rpc_client_apply(c->client, &req, c->f.request_timeout, &rep, &st);
        if (r < 0) {
            char msg[RPC_MESSAGE_MAX + 256];
            ctl_status_text(c, &st, msg, sizeof(msg));
            if (st.code == RPC_CODE_UNAVAILABLE || st.code == RPC_CODE_DEADLINE_EXCEEDED) {
                ctl_error("%s", msg);
            } else {
                _cleanup_free_ char *e = cli_doc_error(d, msg);
                ctl_error("%s", e);
            }
            report_partial(applied, docs.n);
            ret = CTL_EXIT_ERROR;
            break;
        }
        json_t *obj = json_loads(rep->object_json ? rep->object_json : "", 0, NULL);
        char ref[512];
        ctl_ref(obj ? obj : d->obj, ref, sizeof(ref));
        printf("%s %s%s\n", ref, result_word(rep->result), c->f.dry_run ? " (server dry run)" : "");
        fflush(stdout);
        json_array_append_new(applied, json_string(ref));
        const char *kind = json_string_value(json_object_get(obj, "kind"));
        if (obj && kind && streq(kind, "Instance"))
            json_array_append(instances, obj);
        json_decref(obj);
        rpc_message_free(rep);
    }
    if (ret == CTL_EXIT_OK && c->f.wait && !c->f.dry_run)
        ret = wait_instances(c, instances);
    json_decref(applied);
    json_decref(instances);
    cli_docs_done(&docs);
    return ret;
}
