/* stratusctl wait, console and version: small commands over Get, Watch and Health. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/object.h"
#include "base/alloc.h"
#include "cli/format.h"
#include "cli/wait.h"
#include "ctl.h"

typedef struct last_seen {
    char text[512];
} last_seen;

/* Remembers how the object looked last, for the timeout message. */
static void remember(void *userdata, const json_t *obj)
{
    last_seen *l = userdata;
    if (!obj) {
        snprintf(l->text, sizeof(l->text), "it does not exist");
        return;
    }
    const char *phase = json_string_value(api_json_lookup(obj, "status.phase"));
    const json_t *cond = cli_latest_condition(obj);
    const char *type = json_string_value(json_object_get(cond, "type"));
    const char *status = json_string_value(json_object_get(cond, "status"));
    if (phase && type)
        snprintf(l->text, sizeof(l->text), "phase %s, %s=%s", phase, type, status ? status : "?");
    else if (phase)
        snprintf(l->text, sizeof(l->text), "phase %s", phase);
    else
        snprintf(l->text, sizeof(l->text), "no status yet");
}

int ctl_cmd_wait(ctl *c, char **args, size_t n)
{
    if (!c->f.for_)
        return ctl_usage_error(c, "--for is required: condition=TYPE[=STATUS], phase=PHASE or "
                                  "delete");
    cli_wait_for w;
    _cleanup_free_ char *err = NULL;
    if (cli_wait_for_parse(c->f.for_, &w, &err) < 0)
        return ctl_usage_error(c, "%s", err);
    const api_kind_info *k = NULL;
    const api_kind_info **kinds = xnew(const api_kind_info *, n + 1);
    const char **names = xnew(const char *, n + 1);
    size_t n_names = 0;
    int ret = ctl_targets(c, args, n, false, &k, kinds, names, &n_names);
    if (ret == 0)
        ret = ctl_connect(c);
    usec_t deadline = now_monotonic() + (c->f.timeout_set ? c->f.timeout : CTL_WAIT_DEFAULT);
    for (size_t i = 0; ret == 0 && i < n_names; i++) {
        char ref[512], what[128];
        snprintf(ref, sizeof(ref), "%s/%s", cli_kind_singular(kinds[i]), names[i]);
        last_seen l = {""};
        rpc_status st = {0};
        int r = ctl_wait_object(c, kinds[i], ctl_namespace(c, kinds[i]), names[i], &w, deadline,
                                remember, &l, NULL, &st);
        if (r == 0)
            printf("%s condition met\n", ref);
        else if (r == -ETIMEDOUT)
            ret = ctl_error("timed out waiting for %s on %s (%s)",
                            cli_wait_for_describe(&w, what, sizeof(what)), ref,
                            l.text[0] ? l.text : "no status yet");
        else
            ret = ctl_rpc_error(c, &st, NULL);
        fflush(stdout);
    }
    free(kinds);
    free(names);
    return ret;
}

int ctl_cmd_console(ctl *c, char **args, size_t n)
{
    if (n != 1 && n != 2)
        return ctl_usage_error(c, "one instance is required: console instance/NAME");
    const api_kind_info *k = NULL;
    const char *name = NULL;
    const char *slash = strchr(args[0], '/');
    _cleanup_free_ char *kind = NULL;
    if (n == 2) {
        kind = xstrdup(args[0]);
        name = args[1];
    } else if (slash) {
        kind = xstrndup(args[0], (size_t)(slash - args[0]));
        name = slash + 1;
    } else {
        kind = xstrdup("instance");
        name = args[0];
    }
    k = ctl_kind(kind);
    if (!k)
        return CTL_EXIT_ERROR;
    if (k->kind != API_KIND_INSTANCE)
        return ctl_error("only instances have a console, not %s", k->plural);
    int ret = ctl_connect(c);
    if (ret)
        return ret;
    json_t *obj = NULL;
    rpc_status st = {0};
    if (ctl_get(c, k, ctl_namespace(c, k), name, &obj, &st) < 0)
        return ctl_rpc_error(c, &st, NULL);
    const char *log = json_string_value(api_json_lookup(obj, "status.consoleLog"));
    if (log) {
        /* a serial port ends lines with \r\n: print them as a terminal would show them */
        size_t len = strlen(log);
        for (size_t i = 0; i < len; i++)
            if (log[i] != '\r' || (i + 1 < len && log[i + 1] != '\n'))
                putchar(log[i]);
        if (len && log[len - 1] != '\n')
            putchar('\n');
    } else {
        const char *phase = json_string_value(api_json_lookup(obj, "status.phase"));
        const char *node = json_string_value(api_json_lookup(obj, "status.nodeName"));
        ret = ctl_error("instance/%s has no console log yet: the node agent%s%s has not reported "
                        "one (phase %s)",
                        name, node ? " on " : "", node ? node : "", phase ? phase : "unknown");
    }
    json_decref(obj);
    return ret;
}

int ctl_cmd_version(ctl *c, char **args, size_t n)
{
    if (n > 0)
        return ctl_usage_error(c, "unexpected argument \"%s\"", args[0]);
    printf("Client Version: %s\n", STRATUS_VERSION);
    fflush(stdout);
    int ret = ctl_connect(c);
    if (ret)
        return ret;
    Stratus__V1__HealthRequest req = STRATUS__V1__HEALTH_REQUEST__INIT;
    Stratus__V1__HealthResponse *rep = NULL;
    rpc_status st = {0};
    if (rpc_client_health(c->client, &req, c->f.request_timeout, &rep, &st) < 0)
        return ctl_rpc_error(c, &st, NULL);
    printf("Server Version: %s (%s, etcd %s)\n", rep->version && *rep->version ? rep->version : "?",
           rep->status && *rep->status ? rep->status : "?", rep->etcd_ok ? "ok" : "unreachable");
    rpc_message_free(rep);
    return CTL_EXIT_OK;
}
