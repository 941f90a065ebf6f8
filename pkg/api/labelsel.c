/* Label selectors: a small lexer and a recursive-descent parser for the Kubernetes syntax, and
 * matching against an object's labels. See api/selector.h for the grammar and caps. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/names.h"
#include "api/selector.h"
#include "base/alloc.h"
#include "base/buf.h"

static const char *const label_op_table[_API_LABEL_OP_MAX] = {
    [API_LABEL_OP_EQUALS] = "=", [API_LABEL_OP_NOT_EQUALS] = "!=",
    [API_LABEL_OP_IN] = "in",    [API_LABEL_OP_NOT_IN] = "notin",
    [API_LABEL_OP_EXISTS] = "",  [API_LABEL_OP_NOT_EXISTS] = "!",
};

const char *api_label_op_to_string(api_label_op op)
{
    if (op < 0 || op >= _API_LABEL_OP_MAX)
        return NULL;
    return label_op_table[op];
}

typedef enum token_type {
    TOKEN_END,
    TOKEN_IDENT,
    TOKEN_NOT,
    TOKEN_EQ, /* = or == */
    TOKEN_NEQ,
    TOKEN_LPAREN,
    TOKEN_RPAREN,
    TOKEN_COMMA,
} token_type;

typedef struct token {
    token_type type;
    size_t pos; /* byte offset of the token */
    size_t len;
} token;

typedef struct parser {
    const char *text;
    size_t pos;
    token tok; /* the current token */
    api_error *err;
} parser;

static bool is_special(char c)
{
    return c == ' ' || c == '\t' || c == '!' || c == '=' || c == '(' || c == ')' || c == ',' ||
           c == '\0';
}

static void advance(parser *p)
{
    while (p->text[p->pos] == ' ' || p->text[p->pos] == '\t')
        p->pos++;
    token t = {.pos = p->pos, .len = 1};
    const char *s = p->text + p->pos;
    switch (*s) {
    case '\0':
        t.type = TOKEN_END;
        t.len = 0;
        break;
    case '!':
        t.type = s[1] == '=' ? TOKEN_NEQ : TOKEN_NOT;
        t.len = s[1] == '=' ? 2 : 1;
        break;
    case '=':
        t.type = TOKEN_EQ;
        t.len = s[1] == '=' ? 2 : 1;
        break;
    case '(':
        t.type = TOKEN_LPAREN;
        break;
    case ')':
        t.type = TOKEN_RPAREN;
        break;
    case ',':
        t.type = TOKEN_COMMA;
        break;
    default:
        t.type = TOKEN_IDENT;
        t.len = 0;
        while (!is_special(s[t.len]))
            t.len++;
    }
    p->pos += t.len;
    p->tok = t;
}

static char *token_text(const parser *p)
{
    return xstrndup(p->text + p->tok.pos, p->tok.len);
}

/* Describes the current token for messages: `"foo"`, `","` or `end of selector`. */
static const char *token_describe(const parser *p, char out[static API_QUOTE_MAX])
{
    if (p->tok.type == TOKEN_END)
        return "end of selector";
    _cleanup_free_ char *t = token_text(p);
    return api_quote(t, out);
}

static int fail(parser *p, const char *fmt, ...) _printf_(2, 3);
static int fail(parser *p, const char *fmt, ...)
{
    char msg[API_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return api_error_set(p->err, "labelSelector", "position %zu: %s", p->tok.pos + 1, msg);
}

static int expect_fail(parser *p, const char *what)
{
    char q[API_QUOTE_MAX];
    return fail(p, "expected %s, found %s", what, token_describe(p, q));
}

static int take_key(parser *p, char **ret)
{
    if (p->tok.type != TOKEN_IDENT)
        return expect_fail(p, "a label key");
    _cleanup_free_ char *key = token_text(p);
    const char *problem = api_label_key_problem(key);
    if (problem) {
        char q[API_QUOTE_MAX];
        return fail(p, "%s is not a valid label key: %s", api_quote(key, q), problem);
    }
    *ret = TAKE_PTR(key);
    advance(p);
    return 0;
}

static int check_value(parser *p, const char *value)
{
    const char *problem = api_label_value_problem(value);
    if (!problem)
        return 0;
    char q[API_QUOTE_MAX];
    return fail(p, "%s is not a valid label value: %s", api_quote(value, q), problem);
}

static void add_value(api_label_requirement *r, char *value)
{
    r->values = xrealloc(r->values, (r->n_values + 1) * sizeof(char *));
    r->values[r->n_values++] = value;
}

static int parse_set(parser *p, api_label_requirement *r)
{
    if (p->tok.type != TOKEN_LPAREN)
        return expect_fail(p, r->op == API_LABEL_OP_IN ? "\"(\" after \"in\""
                                                       : "\"(\" after \"notin\"");
    advance(p);
    for (;;) {
        if (p->tok.type != TOKEN_IDENT)
            return expect_fail(p, "a label value");
        if (r->n_values >= API_SELECTOR_VALUES_MAX)
            return fail(p, "more than %d values in one set", API_SELECTOR_VALUES_MAX);
        _cleanup_free_ char *value = token_text(p);
        int ret = check_value(p, value);
        if (ret < 0)
            return ret;
        add_value(r, TAKE_PTR(value));
        advance(p);
        if (p->tok.type == TOKEN_RPAREN)
            break;
        if (p->tok.type != TOKEN_COMMA)
            return expect_fail(p, "\",\" or \")\"");
        advance(p);
    }
    advance(p);
    return 0;
}

static int parse_requirement(parser *p, api_label_requirement *r)
{
    if (p->tok.type == TOKEN_NOT) {
        advance(p);
        r->op = API_LABEL_OP_NOT_EXISTS;
        return take_key(p, &r->key);
    }
    int ret = take_key(p, &r->key);
    if (ret < 0)
        return ret;
    switch (p->tok.type) {
    case TOKEN_COMMA:
    case TOKEN_END:
        r->op = API_LABEL_OP_EXISTS;
        return 0;
    case TOKEN_EQ:
    case TOKEN_NEQ: {
        r->op = p->tok.type == TOKEN_EQ ? API_LABEL_OP_EQUALS : API_LABEL_OP_NOT_EQUALS;
        advance(p);
        _cleanup_free_ char *value = p->tok.type == TOKEN_IDENT ? token_text(p) : xstrdup("");
        if (p->tok.type != TOKEN_IDENT && p->tok.type != TOKEN_COMMA && p->tok.type != TOKEN_END)
            return expect_fail(p, "a label value");
        ret = check_value(p, value);
        if (ret < 0)
            return ret;
        add_value(r, TAKE_PTR(value));
        if (p->tok.type == TOKEN_IDENT)
            advance(p);
        return 0;
    }
    case TOKEN_IDENT:
        if (p->tok.len == 2 && strneq(p->text + p->tok.pos, "in", 2))
            r->op = API_LABEL_OP_IN;
        else if (p->tok.len == 5 && strneq(p->text + p->tok.pos, "notin", 5))
            r->op = API_LABEL_OP_NOT_IN;
        else
            break;
        advance(p);
        return parse_set(p, r);
    default:
        break;
    }
    return expect_fail(p, "\"=\", \"==\", \"!=\", \"in\", \"notin\", \",\" or end of selector");
}

int api_label_selector_parse(const char *text, api_label_selector **ret, api_error *err)
{
    _cleanup_(api_label_selector_freep) api_label_selector *s = xnew(api_label_selector, 1);
    if (!text)
        text = "";
    size_t len = strlen(text);
    if (len > API_SELECTOR_MAX) {
        api_error_set(err, "labelSelector", "is %zu bytes long, at most %d are allowed", len,
                      API_SELECTOR_MAX);
        return -EMSGSIZE;
    }
    parser p = {.text = text, .err = err};
    advance(&p);
    while (p.tok.type != TOKEN_END) {
        if (s->n_requirements >= API_SELECTOR_REQUIREMENTS_MAX)
            return fail(&p, "more than %d requirements", API_SELECTOR_REQUIREMENTS_MAX);
        s->requirements =
            xrealloc(s->requirements, (s->n_requirements + 1) * sizeof(api_label_requirement));
        api_label_requirement *r = &s->requirements[s->n_requirements++];
        *r = (api_label_requirement){0};
        int rr = parse_requirement(&p, r);
        if (rr < 0)
            return rr;
        if (p.tok.type == TOKEN_END)
            break;
        if (p.tok.type != TOKEN_COMMA)
            return expect_fail(&p, "\",\" or end of selector");
        advance(&p);
        if (p.tok.type == TOKEN_END)
            return expect_fail(&p, "a requirement after \",\"");
    }
    *ret = TAKE_PTR(s);
    return 0;
}

static bool value_in(const api_label_requirement *r, const char *v)
{
    for (size_t i = 0; i < r->n_values; i++)
        if (streq(r->values[i], v))
            return true;
    return false;
}

bool api_label_selector_matches(const api_label_selector *s, const json_t *labels)
{
    for (size_t i = 0; i < s->n_requirements; i++) {
        const api_label_requirement *r = &s->requirements[i];
        const char *v = json_string_value(json_object_get(labels, r->key));
        bool ok;
        switch (r->op) {
        case API_LABEL_OP_EQUALS:
        case API_LABEL_OP_IN:
            ok = v && value_in(r, v);
            break;
        case API_LABEL_OP_NOT_EQUALS:
        case API_LABEL_OP_NOT_IN:
            ok = !v || !value_in(r, v);
            break;
        case API_LABEL_OP_EXISTS:
            ok = v != NULL;
            break;
        case API_LABEL_OP_NOT_EXISTS:
            ok = v == NULL;
            break;
        default:
            ok = false;
        }
        if (!ok)
            return false;
    }
    return true;
}

char *api_label_selector_format(const api_label_selector *s)
{
    buf b = BUF_INIT(0);
    for (size_t i = 0; i < s->n_requirements; i++) {
        const api_label_requirement *r = &s->requirements[i];
        if (i > 0)
            (void)buf_append_str(&b, ",");
        switch (r->op) {
        case API_LABEL_OP_EQUALS:
        case API_LABEL_OP_NOT_EQUALS:
            (void)buf_printf(&b, "%s%s%s", r->key, api_label_op_to_string(r->op), r->values[0]);
            break;
        case API_LABEL_OP_IN:
        case API_LABEL_OP_NOT_IN:
            (void)buf_printf(&b, "%s %s (", r->key, api_label_op_to_string(r->op));
            for (size_t j = 0; j < r->n_values; j++)
                (void)buf_printf(&b, "%s%s", j ? "," : "", r->values[j]);
            (void)buf_append_str(&b, ")");
            break;
        case API_LABEL_OP_EXISTS:
            (void)buf_append_str(&b, r->key);
            break;
        case API_LABEL_OP_NOT_EXISTS:
            (void)buf_printf(&b, "!%s", r->key);
            break;
        default:
            break;
        }
    }
    return buf_steal(&b, NULL);
}

api_label_selector *api_label_selector_free(api_label_selector *s)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < s->n_requirements; i++) {
        free(s->requirements[i].key);
        for (size_t j = 0; j < s->requirements[i].n_values; j++)
            free(s->requirements[i].values[j]);
        free(s->requirements[i].values);
    }
    free(s->requirements);
    free(s);
    return NULL;
}
