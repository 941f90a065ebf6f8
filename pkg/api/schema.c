/* The table-driven validator (see schema.h) and the checks shared by several kinds. */
#include "api/schema.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/ipv4.h"
#include "api/names.h"
#include "base/buf.h"
#include "base/timeutil.h"

void api_vctx_init(api_vctx *c, api_error *err, const char *prefix)
{
    *c = (api_vctx){.err = err};
    snprintf(c->path, sizeof(c->path), "%s", prefix ? prefix : "");
    c->path_len = strlen(c->path);
}

static void vpath_append(api_vctx *c, const char *fmt, ...) _printf_(2, 3);
static void vpath_append(api_vctx *c, const char *fmt, ...)
{
    size_t room = sizeof(c->path) - c->path_len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->path + c->path_len, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        c->path_len += MIN((size_t)n, room - 1);
}

static bool is_identifier(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return false;
    return true;
}

size_t api_vpath_key(api_vctx *c, const char *key)
{
    size_t old = c->path_len;
    if (is_identifier(key)) {
        vpath_append(c, "%s%s", c->path_len ? "." : "", key);
    } else {
        char q[API_QUOTE_MAX];
        vpath_append(c, "[%s]", api_quote(key, q));
    }
    return old;
}

size_t api_vpath_index(api_vctx *c, size_t i)
{
    size_t old = c->path_len;
    vpath_append(c, "[%zu]", i);
    return old;
}

void api_vpath_restore(api_vctx *c, size_t len)
{
    c->path_len = len;
    c->path[len] = '\0';
}

static int vfail_va(api_vctx *c, const char *fmt, va_list ap) _printf_(2, 0);
static int vfail_va(api_vctx *c, const char *fmt, va_list ap)
{
    if (c->err) {
        snprintf(c->err->path, sizeof(c->err->path), "%s", c->path);
        vsnprintf(c->err->message, sizeof(c->err->message), fmt, ap);
    }
    return -EINVAL;
}

int api_vfail(api_vctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vfail_va(c, fmt, ap);
    va_end(ap);
    return r;
}

int api_vfail_at(api_vctx *c, const char *key, const char *fmt, ...)
{
    size_t old = api_vpath_key(c, key);
    va_list ap;
    va_start(ap, fmt);
    int r = vfail_va(c, fmt, ap);
    va_end(ap);
    api_vpath_restore(c, old);
    return r;
}

static const api_field *field_find(const api_field *fields, const char *name)
{
    for (const api_field *f = fields; f && f->name; f++)
        if (streq(f->name, name))
            return f;
    return NULL;
}

static int check_enum(api_vctx *c, const api_field *f, const char *s)
{
    for (const char *const *v = f->values; *v; v++)
        if (streq(*v, s))
            return 0;
    buf list = BUF_INIT(0);
    for (const char *const *v = f->values; *v; v++)
        (void)buf_printf(&list, "%s%s", v == f->values ? "" : ", ", *v);
    char q[API_QUOTE_MAX];
    int r = api_vfail(c, "%s is not one of %s", api_quote(s, q), list.data);
    buf_done(&list);
    return r;
}

static int check_string(api_vctx *c, const api_field *f, const json_t *v)
{
    size_t cap = f->max ? f->max : API_MESSAGE_MAX;
    size_t len = json_string_length(v);
    if (len > cap)
        return api_vfail(c, "is %zu bytes long, at most %zu are allowed", len, cap);
    if (f->values)
        return check_enum(c, f, json_string_value(v));
    return 0;
}

static int check_array(api_vctx *c, const api_field *f, const json_t *v)
{
    size_t n = json_array_size(v);
    if (n > f->max)
        return api_vfail(c, "has %zu entries, at most %zu are allowed", n, f->max);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        size_t old = api_vpath_index(c, i);
        int r = api_field_check(c, f->elem, e);
        if (r >= 0 && f->unique && json_is_string(e))
            for (size_t j = 0; j < i; j++)
                if (json_equal(e, json_array_get(v, j))) {
                    char q[API_QUOTE_MAX];
                    r = api_vfail(c, "%s is listed twice", api_quote(json_string_value(e), q));
                    break;
                }
        api_vpath_restore(c, old);
        if (r < 0)
            return r;
    }
    return 0;
}

static int check_map(api_vctx *c, const api_field *f, const json_t *v)
{
    size_t n = json_object_size(v);
    if (n > f->max)
        return api_vfail(c, "has %zu entries, at most %zu are allowed", n, f->max);
    const char *key;
    const json_t *e;
    json_object_foreach ((json_t *)v, key, e) {
        int r = f->key_check ? f->key_check(c, key) : 0;
        if (r < 0)
            return r;
        size_t old = api_vpath_key(c, key);
        r = api_field_check(c, f->elem, e);
        api_vpath_restore(c, old);
        if (r < 0)
            return r;
    }
    return 0;
}

int api_field_check(api_vctx *c, const api_field *f, const json_t *v)
{
    int r = 0;
    switch (f->type) {
    case API_FIELD_STRING:
        if (!json_is_string(v))
            return api_vfail(c, "must be a string");
        r = check_string(c, f, v);
        break;
    case API_FIELD_INTEGER:
        if (!json_is_integer(v))
            return api_vfail(c, "must be an integer");
        if (json_integer_value(v) < f->min_int || json_integer_value(v) > f->max_int)
            return api_vfail(c, "%lld is out of range %lld..%lld", (long long)json_integer_value(v),
                             (long long)f->min_int, (long long)f->max_int);
        break;
    case API_FIELD_NUMBER:
        if (!json_is_number(v))
            return api_vfail(c, "must be a number");
        if (json_number_value(v) < f->min_num || json_number_value(v) > f->max_num)
            return api_vfail(c, "%g is out of range %g..%g", json_number_value(v), f->min_num,
                             f->max_num);
        break;
    case API_FIELD_BOOL:
        if (!json_is_boolean(v))
            return api_vfail(c, "must be a boolean");
        break;
    case API_FIELD_SCALAR:
        if (json_is_string(v))
            r = check_string(c, f, v);
        else if (!json_is_integer(v) && !json_is_boolean(v))
            return api_vfail(c, "must be a string, an integer or a boolean");
        break;
    case API_FIELD_OBJECT:
        if (!json_is_object(v))
            return api_vfail(c, "must be an object");
        r = api_fields_check(c, f->fields, v);
        break;
    case API_FIELD_ARRAY:
        if (!json_is_array(v))
            return api_vfail(c, "must be an array");
        r = check_array(c, f, v);
        break;
    case API_FIELD_MAP:
        if (!json_is_object(v))
            return api_vfail(c, "must be an object");
        r = check_map(c, f, v);
        break;
    default:
        return api_vfail(c, "internal error: bad schema");
    }
    if (r < 0)
        return r;
    return f->check ? f->check(c, v) : 0;
}

int api_fields_check(api_vctx *c, const api_field *fields, const json_t *obj)
{
    const char *key;
    const json_t *v;
    json_object_foreach ((json_t *)obj, key, v)
        if (!field_find(fields, key))
            return api_vfail_at(c, key, "unknown field");

    for (const api_field *f = fields; f && f->name; f++) {
        v = json_object_get(obj, f->name);
        if (!v) {
            if (f->required)
                return api_vfail_at(c, f->name, "is required");
            continue;
        }
        size_t old = api_vpath_key(c, f->name);
        int r = api_field_check(c, f, v);
        api_vpath_restore(c, old);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- shared checks ---- */

static int check_name_rule(api_vctx *c, const json_t *v, const char *(*rule)(const char *),
                           const char *what)
{
    const char *s = json_string_value(v), *problem = rule(s);
    if (!problem)
        return 0;
    char q[API_QUOTE_MAX];
    return api_vfail(c, "%s is not a valid %s: %s", api_quote(s, q), what, problem);
}

int api_check_ref_name(api_vctx *c, const json_t *v)
{
    return check_name_rule(c, v, api_dns_subdomain_problem, "name");
}

int api_check_dns_label(api_vctx *c, const json_t *v)
{
    return check_name_rule(c, v, api_dns_label_problem, "DNS label");
}

int api_check_label_value(api_vctx *c, const json_t *v)
{
    return check_name_rule(c, v, api_label_value_problem, "label value");
}

int api_check_qualified_name(api_vctx *c, const json_t *v)
{
    return check_name_rule(c, v, api_label_key_problem, "qualified name");
}

int api_check_label_key(api_vctx *c, const char *key)
{
    const char *problem = api_label_key_problem(key);
    if (!problem)
        return 0;
    char q[API_QUOTE_MAX];
    return api_vfail(c, "%s is not a valid label key: %s", api_quote(key, q), problem);
}

int api_check_free_key(api_vctx *c, const char *key)
{
    char q[API_QUOTE_MAX];
    size_t n = strlen(key);
    if (n == 0)
        return api_vfail(c, "keys must not be empty");
    if (n > API_FREE_KEY_MAX)
        return api_vfail(c, "key %s is %zu bytes long, at most %d are allowed", api_quote(key, q),
                         n, API_FREE_KEY_MAX);
    for (const char *p = key; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7F)
            return api_vfail(c, "key %s contains a control character", api_quote(key, q));
    return 0;
}

int api_check_ipv4(api_vctx *c, const json_t *v)
{
    uint32_t a;
    if (api_ipv4_parse(json_string_value(v), &a) >= 0)
        return 0;
    char q[API_QUOTE_MAX];
    return api_vfail(c, "%s is not an IPv4 address", api_quote(json_string_value(v), q));
}

static bool is_hex_lower(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
}

int api_check_mac(api_vctx *c, const json_t *v)
{
    const char *s = json_string_value(v);
    bool ok = strlen(s) == 17;
    for (size_t i = 0; ok && i < 17; i++)
        ok = (i % 3 == 2) ? s[i] == ':' : is_hex_lower(s[i]);
    if (ok)
        return 0;
    char q[API_QUOTE_MAX];
    return api_vfail(c, "%s is not a MAC address (like \"52:54:00:12:34:56\")", api_quote(s, q));
}

int api_check_url(api_vctx *c, const json_t *v)
{
    const char *s = json_string_value(v), *host = NULL, *path = NULL;
    if (strneq(s, "http://", 7))
        host = s + 7;
    else if (strneq(s, "https://", 8))
        host = s + 8;
    else if (strneq(s, "file://", 7))
        path = s + 7;
    bool ok = false;
    if (host)
        ok = *host && *host != '/' && *host != '?' && *host != '#';
    else if (path)
        ok = path[0] == '/' && path[1] != '\0'; /* file:///abs/path: no host, absolute */
    for (const char *p = s; ok && *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7F)
            ok = false;
    if (ok)
        return 0;
    char q[API_QUOTE_MAX];
    return api_vfail(c, "%s is not an http, https or file:/// URL", api_quote(s, q));
}

int api_check_sha256(api_vctx *c, const json_t *v)
{
    const char *s = json_string_value(v);
    bool ok = strlen(s) == 64;
    for (size_t i = 0; ok && i < 64; i++)
        ok = is_hex_lower(s[i]);
    if (ok)
        return 0;
    char q[API_QUOTE_MAX];
    return api_vfail(c, "%s is not a sha256 digest (64 lower case hex digits)", api_quote(s, q));
}

int api_check_timestamp(api_vctx *c, const json_t *v)
{
    usec_t t;
    if (timestamp_parse(json_string_value(v), &t) >= 0)
        return 0;
    char q[API_QUOTE_MAX];
    return api_vfail(c, "%s is not an RFC 3339 UTC timestamp (like \"2026-01-02T03:04:05Z\")",
                     api_quote(json_string_value(v), q));
}

int api_check_reason(api_vctx *c, const json_t *v)
{
    const char *s = json_string_value(v);
    bool ok = (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z');
    for (const char *p = s; ok && *p; p++)
        ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9');
    if (ok)
        return 0;
    char q[API_QUOTE_MAX];
    return api_vfail(c, "%s is not a CamelCase word (letters and digits, starting with a letter)",
                     api_quote(s, q));
}

int api_check_conditions(api_vctx *c, const json_t *v)
{
    for (size_t i = 0; i < json_array_size(v); i++)
        for (size_t j = 0; j < i; j++) {
            const json_t *a = json_object_get(json_array_get(v, i), "type");
            if (json_equal(a, json_object_get(json_array_get(v, j), "type"))) {
                size_t old = api_vpath_index(c, i);
                char q[API_QUOTE_MAX];
                int r = api_vfail_at(c, "type", "%s is listed twice",
                                     api_quote(json_string_value(a), q));
                api_vpath_restore(c, old);
                return r;
            }
        }
    return 0;
}

const char *const api_condition_status_values[] = {"True", "False", "Unknown", NULL};

static const api_field condition_fields[] = {
    API_F_STRING("type", true, API_SHORT_STRING_MAX, api_check_reason),
    API_F_ENUM("status", true, api_condition_status_values),
    API_F_STRING("reason", false, API_REASON_MAX, api_check_reason),
    API_F_STRING("message", false, API_MESSAGE_MAX, NULL),
    API_F_STRING("lastTransitionTime", false, API_SHORT_STRING_MAX, api_check_timestamp),
    API_F_END,
};
const api_field api_condition_elem = API_F_OBJECT(NULL, false, condition_fields, NULL);

void api_default_set(json_t *o, const char *key, json_t *v)
{
    if (json_object_get(o, key))
        json_decref(v);
    else
        json_object_set_new(o, key, v);
}

json_t *api_child_object(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_object(v) ? v : NULL;
}

const char *const api_taint_effect_values[] = {"NoSchedule", "NoExecute", NULL};

int api_check_label_key_value(api_vctx *c, const json_t *v)
{
    return api_check_label_key(c, json_string_value(v));
}
