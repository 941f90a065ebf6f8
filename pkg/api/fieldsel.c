/* Field selectors: `field=value` terms over a whitelist of fields per kind, and matching them
 * against objects. See api/selector.h for the syntax and caps. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/object.h"
#include "api/selector.h"
#include "base/alloc.h"
#include "base/buf.h"

#define KIND(k)   (1u << API_KIND_##k)
#define ALL_KINDS ((1u << _API_KIND_MAX) - 1)

/* The fields List and Watch can filter on; the apiserver may index some of them. */
static const struct {
    const char *field;
    unsigned kinds;
} supported[] = {
    {"metadata.name", ALL_KINDS},
    {"metadata.namespace", ALL_KINDS},
    {"spec.nodeName", KIND(INSTANCE)},
    {"spec.flavor", KIND(INSTANCE)},
    {"spec.image", KIND(INSTANCE) | KIND(VOLUME)},
    {"spec.serverGroup", KIND(INSTANCE)},
    {"spec.availabilityZone", KIND(INSTANCE)},
    {"spec.powerState", KIND(INSTANCE)},
    {"status.phase", KIND(INSTANCE) | KIND(VOLUME)},
    {"status.nodeName", KIND(INSTANCE) | KIND(VOLUME)},
    {"spec.unschedulable", KIND(NODE)},
    {"spec.policy", KIND(SERVER_GROUP)},
    {"spec.involvedObject.kind", KIND(EVENT)},
    {"spec.involvedObject.namespace", KIND(EVENT)},
    {"spec.involvedObject.name", KIND(EVENT)},
    {"spec.involvedObject.uid", KIND(EVENT)},
    {"spec.reason", KIND(EVENT)},
    {"spec.type", KIND(EVENT)},
    {"spec.source.component", KIND(EVENT)},
    {"spec.source.host", KIND(EVENT)},
    {"spec.holder", KIND(LEASE)},
};

static unsigned kind_mask(const api_kind_info *k)
{
    return k ? 1u << k->kind : ALL_KINDS;
}

const char *api_field_selector_field(const api_kind_info *k, size_t i)
{
    for (size_t j = 0; j < ELEMENTSOF(supported); j++)
        if (supported[j].kinds & kind_mask(k)) {
            if (i == 0)
                return supported[j].field;
            i--;
        }
    return NULL;
}

static const char *find_field(const api_kind_info *k, const char *s, size_t n)
{
    for (size_t j = 0; j < ELEMENTSOF(supported); j++)
        if ((supported[j].kinds & kind_mask(k)) && strlen(supported[j].field) == n &&
            strneq(supported[j].field, s, n))
            return supported[j].field;
    return NULL;
}

static int fail(api_error *err, size_t pos, const char *fmt, ...) _printf_(3, 4);
static int fail(api_error *err, size_t pos, const char *fmt, ...)
{
    char msg[API_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return api_error_set(err, "fieldSelector", "position %zu: %s", pos + 1, msg);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_escapable(char c)
{
    return c == ',' || c == '=' || c == '!' || c == '\\';
}

/* Parses one term starting at text[*pos]; leaves *pos at the ',' or NUL after it. */
static int parse_term(const char *text, size_t *pos, const api_kind_info *k,
                      api_field_requirement *r, api_error *err)
{
    size_t i = *pos;
    while (is_space(text[i]))
        i++;
    size_t start = i;
    while (text[i] && text[i] != '=' && text[i] != '!' && text[i] != ',' && !is_space(text[i]))
        i++;
    size_t end = i;
    while (is_space(text[i]))
        i++;
    if (end == start)
        return fail(err, start, "expected a field name");
    r->field = find_field(k, text + start, end - start);
    if (!r->field) {
        _cleanup_free_ char *name = xstrndup(text + start, end - start);
        char q[API_QUOTE_MAX];
        buf list = BUF_INIT(0);
        const char *f;
        for (size_t j = 0; (f = api_field_selector_field(k, j)); j++)
            (void)buf_printf(&list, "%s%s", j ? ", " : "", f);
        int ret = fail(err, start, "%s is not a supported field%s%s (supported: %s)",
                       api_quote(name, q), k ? " for " : "", k ? k->name : "", list.data);
        buf_done(&list);
        return ret;
    }
    if (text[i] == '!' && text[i + 1] == '=') {
        r->negate = true;
        i += 2;
    } else if (text[i] == '=') {
        i += text[i + 1] == '=' ? 2 : 1;
    } else {
        return fail(err, i, "expected \"=\", \"==\" or \"!=\" after %s", r->field);
    }
    while (is_space(text[i]))
        i++;

    buf value = BUF_INIT(0);
    size_t trailing = 0; /* unescaped spaces at the end, trimmed */
    for (; text[i] && text[i] != ','; i++) {
        char c = text[i];
        if (c == '\\') {
            if (!is_escapable(text[i + 1])) {
                buf_done(&value);
                return fail(err, i, "invalid escape; use \\, \\= \\! or \\\\");
            }
            c = text[++i];
            trailing = 0;
        } else if (c == '=' || c == '!') {
            buf_done(&value);
            return fail(err, i, "\"%c\" in a value must be escaped as \\%c", c, c);
        } else {
            trailing = is_space(c) ? trailing + 1 : 0;
        }
        (void)buf_append(&value, &c, 1);
    }
    value.len -= trailing;
    if (value.data)
        value.data[value.len] = '\0';
    r->value = buf_steal(&value, NULL);
    *pos = i;
    return 0;
}

int api_field_selector_parse(const char *text, const api_kind_info *k, api_field_selector **ret,
                             api_error *err)
{
    _cleanup_(api_field_selector_freep) api_field_selector *s = xnew(api_field_selector, 1);
    if (!text)
        text = "";
    size_t len = strlen(text);
    if (len > API_SELECTOR_MAX) {
        api_error_set(err, "fieldSelector", "is %zu bytes long, at most %d are allowed", len,
                      API_SELECTOR_MAX);
        return -EMSGSIZE;
    }
    size_t pos = 0;
    while (is_space(text[pos]))
        pos++;
    if (!text[pos]) {
        *ret = TAKE_PTR(s);
        return 0;
    }
    for (;;) {
        if (s->n_requirements >= API_SELECTOR_REQUIREMENTS_MAX)
            return fail(err, pos, "more than %d requirements", API_SELECTOR_REQUIREMENTS_MAX);
        s->requirements =
            xrealloc(s->requirements, (s->n_requirements + 1) * sizeof(api_field_requirement));
        api_field_requirement *r = &s->requirements[s->n_requirements++];
        *r = (api_field_requirement){0};
        int rr = parse_term(text, &pos, k, r, err);
        if (rr < 0)
            return rr;
        if (!text[pos])
            break;
        pos++; /* the ',' */
    }
    *ret = TAKE_PTR(s);
    return 0;
}

/* The value of field in obj as text: strings as-is, integers and booleans as JSON, else "". */
static const char *field_text(const json_t *obj, const char *field, char tmp[static 32])
{
    const json_t *v = api_json_lookup(obj, field);
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(tmp, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return tmp;
    }
    if (json_is_boolean(v))
        return json_is_true(v) ? "true" : "false";
    return "";
}

bool api_field_selector_matches(const api_field_selector *s, const json_t *obj)
{
    for (size_t i = 0; i < s->n_requirements; i++) {
        char tmp[32];
        const api_field_requirement *r = &s->requirements[i];
        bool eq = streq(field_text(obj, r->field, tmp), r->value);
        if (eq == r->negate)
            return false;
    }
    return true;
}

char *api_field_selector_format(const api_field_selector *s)
{
    buf b = BUF_INIT(0);
    for (size_t i = 0; i < s->n_requirements; i++) {
        const api_field_requirement *r = &s->requirements[i];
        (void)buf_printf(&b, "%s%s%s", i ? "," : "", r->field, r->negate ? "!=" : "=");
        for (const char *p = r->value; *p; p++) {
            if (is_escapable(*p))
                (void)buf_append_str(&b, "\\");
            (void)buf_append(&b, p, 1);
        }
    }
    return buf_steal(&b, NULL);
}

api_field_selector *api_field_selector_free(api_field_selector *s)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < s->n_requirements; i++)
        free(s->requirements[i].value);
    free(s->requirements);
    free(s);
    return NULL;
}
