/* Wait conditions and instance progress for stratusctl (see wait.h). */
#include "cli/wait.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/object.h"
#include "base/alloc.h"
#include "base/timeutil.h"
#include "cli/columns.h"

static int copy_word(char *dst, size_t size, const char *src, size_t n)
{
    if (n == 0 || n >= size)
        return -EINVAL;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

int cli_wait_for_parse(const char *text, cli_wait_for *ret, char **ret_error)
{
    cli_wait_for w = {0};
    if (streq(text, "delete")) {
        w.type = CLI_WAIT_DELETE;
    } else if (strneq(text, "condition=", 10)) {
        const char *name = text + 10, *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        const char *value = eq ? eq + 1 : "True";
        w.type = CLI_WAIT_CONDITION;
        if (copy_word(w.name, sizeof(w.name), name, n) < 0 ||
            copy_word(w.value, sizeof(w.value), value, strlen(value)) < 0)
            goto bad;
        /* Conditions say True/False/Unknown; accept how people type them. */
        static const char *const statuses[] = {"True", "False", "Unknown"};
        for (size_t i = 0; i < ELEMENTSOF(statuses); i++)
            if (strcasecmp(w.value, statuses[i]) == 0)
                snprintf(w.value, sizeof(w.value), "%s", statuses[i]);
    } else if (strneq(text, "phase=", 6)) {
        w.type = CLI_WAIT_PHASE;
        if (copy_word(w.name, sizeof(w.name), text + 6, strlen(text + 6)) < 0)
            goto bad;
    } else {
        goto bad;
    }
    *ret = w;
    return 0;
bad:
    *ret_error = xasprintf("--for: \"%.64s\" is not one of condition=TYPE[=STATUS], "
                           "phase=PHASE, delete",
                           text);
    return -EINVAL;
}

bool cli_wait_for_met(const cli_wait_for *w, const json_t *obj)
{
    if (w->type == CLI_WAIT_DELETE)
        return obj == NULL;
    if (!obj)
        return false;
    const char *phase = json_string_value(api_json_lookup(obj, "status.phase"));
    switch (w->type) {
    case CLI_WAIT_CONDITION: {
        const char *s = cli_condition_status(obj, w->name);
        return s && streq(s, w->value);
    }
    case CLI_WAIT_PHASE:
        return phase && streq(phase, w->name);
    case CLI_WAIT_SETTLED:
        return phase && (streq(phase, "Running") || streq(phase, "Failed"));
    default:
        return false;
    }
}

const char *cli_wait_for_describe(const cli_wait_for *w, char *out, size_t size)
{
    switch (w->type) {
    case CLI_WAIT_CONDITION:
        snprintf(out, size, "condition %s=%s", w->name, w->value);
        break;
    case CLI_WAIT_PHASE:
        snprintf(out, size, "phase %s", w->name);
        break;
    case CLI_WAIT_DELETE:
        snprintf(out, size, "deletion");
        break;
    default:
        snprintf(out, size, "phase Running or Failed");
        break;
    }
    return out;
}

const json_t *cli_latest_condition(const json_t *obj)
{
    const json_t *best = NULL;
    usec_t best_t = 0;
    size_t i;
    json_t *c;
    json_array_foreach (api_json_lookup(obj, "status.conditions"), i, c) {
        usec_t t = 0;
        const char *ts = json_string_value(json_object_get(c, "lastTransitionTime"));
        if (ts && timestamp_parse(ts, &t) < 0)
            t = 0;
        if (!best || t >= best_t) {
            best = c;
            best_t = t;
        }
    }
    return best;
}

const char *cli_instance_progress(const json_t *obj, char *out, size_t size)
{
    const char *phase = json_string_value(api_json_lookup(obj, "status.phase"));
    if (!phase)
        phase = "<unknown>";
    const char *reason = json_string_value(api_json_lookup(obj, "status.reason"));
    const char *message = json_string_value(api_json_lookup(obj, "status.message"));
    if (streq(phase, "Failed") && (reason || message)) {
        snprintf(out, size, "%s: %s%s%s", phase, reason ? reason : "",
                 reason && message ? ": " : "", message ? message : "");
        return out;
    }
    const json_t *c = cli_latest_condition(obj);
    if (!c) {
        snprintf(out, size, "%s", phase);
        return out;
    }
    const char *type = json_string_value(json_object_get(c, "type"));
    const char *status = json_string_value(json_object_get(c, "status"));
    reason = json_string_value(json_object_get(c, "reason"));
    message = json_string_value(json_object_get(c, "message"));
    int n = snprintf(out, size, "%s: %s=%s", phase, type ? type : "?", status ? status : "?");
    if (n >= 0 && (size_t)n < size && reason)
        n += snprintf(out + n, size - (size_t)n, " (%s)", reason);
    if (n >= 0 && (size_t)n < size && message && *message)
        snprintf(out + n, size - (size_t)n, ": %s", message);
    return out;
}
