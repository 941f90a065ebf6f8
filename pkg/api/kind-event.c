/* Event: what happened to an object and why (reason, message, count, first and last time), as in
 * Kubernetes. Its fields sit under spec like every other kind; it has no status. Namespaced: an
 * event about a cluster-scoped object (a Node) lives in the "default" namespace. */
#include "api/kind-internal.h"
#include "base/timeutil.h"

static const char *const type_values[] = {"Normal", "Warning", NULL};

static int check_involved_kind(api_vctx *c, const json_t *v)
{
    if (api_kind_from_name(json_string_value(v)))
        return 0;
    char q[API_QUOTE_MAX];
    return api_vfail(c, "%s is not a known kind", api_quote(json_string_value(v), q));
}

static int check_involved_object(api_vctx *c, const json_t *o)
{
    const api_kind_info *k = api_kind_from_name(json_string_value(json_object_get(o, "kind")));
    if (k && !k->namespaced && json_object_get(o, "namespace"))
        return api_vfail_at(c, "namespace", "must not be set: %s is cluster-scoped", k->name);
    return 0;
}

static const api_field involved_fields[] = {
    API_F_STRING("kind", true, API_SHORT_STRING_MAX, check_involved_kind),
    API_F_STRING("namespace", false, 0, api_check_dns_label),
    API_F_STRING("name", true, 0, api_check_ref_name),
    API_F_STRING("uid", false, API_UID_MAX, NULL),
    API_F_END,
};

static const api_field source_fields[] = {
    API_F_STRING("component", false, API_SHORT_STRING_MAX, NULL),
    API_F_STRING("host", false, 0, api_check_ref_name),
    API_F_END,
};

const api_field api_event_spec_fields[] = {
    API_F_OBJECT("involvedObject", true, involved_fields, check_involved_object),
    API_F_STRING("reason", true, API_REASON_MAX, api_check_reason),
    API_F_STRING("message", false, API_MESSAGE_MAX, NULL),
    API_F_ENUM("type", false, type_values),
    API_F_INT("count", false, 1, INT32_MAX),
    API_F_STRING("firstTimestamp", false, API_SHORT_STRING_MAX, api_check_timestamp),
    API_F_STRING("lastTimestamp", false, API_SHORT_STRING_MAX, api_check_timestamp),
    API_F_OBJECT("source", false, source_fields, NULL),
    API_F_END,
};

int api_event_validate_spec(api_vctx *c, const json_t *spec)
{
    const char *first = json_string_value(json_object_get(spec, "firstTimestamp"));
    const char *last = json_string_value(json_object_get(spec, "lastTimestamp"));
    usec_t a, b;
    if (first && last && timestamp_parse(first, &a) >= 0 && timestamp_parse(last, &b) >= 0 && b < a)
        return api_vfail_at(c, "lastTimestamp", "\"%s\" is before firstTimestamp \"%s\"", last,
                            first);
    return 0;
}

void api_event_default(json_t *obj)
{
    json_t *spec = api_child_object(obj, "spec");
    if (!spec)
        return;
    api_default_set(spec, "type", json_string("Normal"));
    api_default_set(spec, "count", json_integer(1));
}
