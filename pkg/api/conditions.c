/* Status conditions, set the same way everywhere. */
#include "api/conditions.h"

#include <string.h>

#include "api/limits.h"
#include "base/alloc.h"
#include "base/macro.h"

static void set_text(json_t *o, const char *key, const char *value, size_t max)
{
    if (!value) {
        json_object_del(o, key);
        return;
    }
    /* cut at a UTF-8 character boundary so the result stays valid text */
    size_t n = strnlen(value, max);
    while (n > 0 && n < strlen(value) && ((unsigned char)value[n] & 0xc0) == 0x80)
        n--;
    char *t = xstrndup(value, n);
    json_object_set_new(o, key, json_string(t));
    free(t);
}

void api_status_set_condition(json_t *status, const char *type, const char *value,
                              const char *reason, const char *message, usec_t now)
{
    json_t *list = json_object_get(status, "conditions");
    if (!json_is_array(list)) {
        list = json_array();
        json_object_set_new(status, "conditions", list);
    }
    json_t *e = NULL;
    for (size_t i = 0; i < json_array_size(list) && !e; i++) {
        const char *t = json_string_value(json_object_get(json_array_get(list, i), "type"));
        if (t && streq(t, type))
            e = json_array_get(list, i);
    }
    if (!e) {
        if (json_array_size(list) >= API_CONDITIONS_MAX)
            return;
        e = json_object();
        json_object_set_new(e, "type", json_string(type));
        json_array_append_new(list, e);
    }
    const char *old = json_string_value(json_object_get(e, "status"));
    if (!old || !streq(old, value) || !json_object_get(e, "lastTransitionTime")) {
        char ts[TIMESTAMP_MAX];
        json_object_set_new(e, "lastTransitionTime", json_string(timestamp_format(now, ts)));
    }
    json_object_set_new(e, "status", json_string(value));
    set_text(e, "reason", reason, API_REASON_MAX);
    set_text(e, "message", message, API_MESSAGE_MAX);
}
