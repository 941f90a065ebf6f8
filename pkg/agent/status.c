/* Status editing helpers; see status.h. */
#include <string.h>

#include "agent/status.h"
#include "api/conditions.h"
#include "api/limits.h"
#include "base/alloc.h"

void status_text_sanitize(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\n' && *p != '\t' && *p != '\r') || *p >= 0x7f)
            *p = '?';
}

char *status_text(const char *s, size_t max)
{
    char *t = xstrndup(s ? s : "", max);
    status_text_sanitize(t);
    return t;
}

static void set_text(json_t *o, const char *key, const char *value, size_t max)
{
    if (!value) {
        json_object_del(o, key);
        return;
    }
    char *t = status_text(value, max);
    json_object_set_new(o, key, json_string(t));
    free(t);
}

static json_t *condition_find(const json_t *status, const char *type, size_t *ret_idx)
{
    const json_t *c = json_object_get(status, "conditions");
    for (size_t i = 0; i < json_array_size(c); i++) {
        json_t *e = json_array_get(c, i);
        const char *t = json_string_value(json_object_get(e, "type"));
        if (t && streq(t, type)) {
            if (ret_idx)
                *ret_idx = i;
            return e;
        }
    }
    return NULL;
}

void status_condition_set(json_t *status, const char *type, const char *value, const char *reason,
                          const char *message, usec_t now)
{
    /* the agent's texts come from libvirt and disks: cleaned before they reach the API */
    _cleanup_free_ char *r = reason ? status_text(reason, API_REASON_MAX) : NULL;
    _cleanup_free_ char *m = message ? status_text(message, API_MESSAGE_MAX) : NULL;
    api_status_set_condition(status, type, value, r, m, now);
}

const char *status_condition_get(const json_t *status, const char *type)
{
    return json_string_value(json_object_get(condition_find(status, type, NULL), "status"));
}

void status_condition_remove(json_t *status, const char *type)
{
    size_t i;
    if (condition_find(status, type, &i))
        json_array_remove(json_object_get(status, "conditions"), i);
}

size_t status_timeline_begin(json_t *status, const char *step, usec_t now)
{
    json_t *t = json_object_get(status, "timeline");
    if (!json_is_array(t)) {
        t = json_array();
        json_object_set_new(status, "timeline", t);
    }
    while (json_array_size(t) >= API_TIMELINE_MAX)
        json_array_remove(t, 0);
    char ts[TIMESTAMP_MAX];
    json_array_append_new(
        t, json_pack("{s:s,s:s}", "step", step, "startTime", timestamp_format_ms(now, ts)));
    return json_array_size(t) - 1;
}

void status_timeline_end(json_t *status, size_t idx, bool succeeded, usec_t now)
{
    json_t *e = json_array_get(json_object_get(status, "timeline"), idx);
    if (!e)
        return;
    char ts[TIMESTAMP_MAX];
    json_object_set_new(e, "endTime", json_string(timestamp_format_ms(now, ts)));
    json_object_set_new(e, "result", json_string(succeeded ? "Succeeded" : "Failed"));
}

void status_phase_set(json_t *status, const char *phase, const char *reason, const char *message)
{
    json_object_set_new(status, "phase", json_string(phase));
    set_text(status, "reason", reason, API_REASON_MAX);
    set_text(status, "message", message, API_MESSAGE_MAX);
}

const char *status_phase_get(const json_t *status)
{
    return json_string_value(json_object_get(status, "phase"));
}
