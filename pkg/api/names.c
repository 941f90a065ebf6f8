/* DNS-1123 names, label keys and label values (Kubernetes validation rules). */
#include "api/names.h"

#include <string.h>

#include "api/limits.h"

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? over s[0..n) */
static bool dns_label_chars_ok(const char *s, size_t n)
{
    if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_lower_alnum(s[i]) && s[i] != '-')
            return false;
    return true;
}

const char *api_dns_label_problem(const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return "must not be empty";
    if (n > API_DNS_LABEL_MAX)
        return "must be no more than 63 characters";
    if (!dns_label_chars_ok(s, n))
        return "must consist of lower case alphanumeric characters or '-', and must start and end "
               "with an alphanumeric character";
    return NULL;
}

const char *api_dns_subdomain_problem(const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return "must not be empty";
    if (n > API_DNS_SUBDOMAIN_MAX)
        return "must be no more than 253 characters";
    for (const char *p = s;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (!dns_label_chars_ok(p, len))
            return "must consist of lower case alphanumeric characters, '-' or '.', and must start "
                   "and end with an alphanumeric character";
        if (!dot)
            break;
        p = dot + 1;
    }
    return NULL;
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] over s[0..n) */
static bool qualified_chars_ok(const char *s, size_t n)
{
    if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    return true;
}

const char *api_label_key_problem(const char *s)
{
    const char *slash = strchr(s, '/');
    const char *name = s;
    if (slash) {
        size_t plen = (size_t)(slash - s);
        if (plen == 0)
            return "prefix part must not be empty";
        if (plen > API_DNS_SUBDOMAIN_MAX)
            return "prefix part must be no more than 253 characters";
        /* The prefix is a DNS subdomain; check it label by label without copying. */
        for (const char *p = s; p < slash;) {
            const char *dot = memchr(p, '.', (size_t)(slash - p));
            size_t len = dot ? (size_t)(dot - p) : (size_t)(slash - p);
            if (!dns_label_chars_ok(p, len))
                return "prefix part must be a DNS subdomain: lower case alphanumeric characters, "
                       "'-' or '.', starting and ending with an alphanumeric character";
            if (!dot)
                break;
            p = dot + 1;
        }
        name = slash + 1;
    }
    size_t n = strlen(name);
    if (n == 0)
        return "name part must not be empty";
    if (n > API_LABEL_NAME_MAX)
        return "name part must be no more than 63 characters";
    if (!qualified_chars_ok(name, n))
        return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
               "and end with an alphanumeric character";
    return NULL;
}

const char *api_label_value_problem(const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return NULL;
    if (n > API_LABEL_NAME_MAX)
        return "must be no more than 63 characters";
    if (!qualified_chars_ok(s, n))
        return "must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
               "with an alphanumeric character";
    return NULL;
}
