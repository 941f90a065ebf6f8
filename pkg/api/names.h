/* Name rules of the object model, as Kubernetes defines them: DNS-1123 labels (instance names,
 * namespaces, hostnames), DNS-1123 subdomains (other object names, references to objects), label
 * keys (qualified names: optional DNS-subdomain prefix, '/', name) and label values. Pure
 * functions, any thread. */
#pragma once

#include <stdbool.h>

/* Each returns NULL when s is valid, or a static text saying what the rule is (to append to a
 * message naming the value), e.g. "must be no more than 63 characters". s must not be NULL. */
const char *api_dns_label_problem(const char *s);
const char *api_dns_subdomain_problem(const char *s);
const char *api_label_key_problem(const char *s);
const char *api_label_value_problem(const char *s);

static inline bool api_is_dns_label(const char *s)
{
    return !api_dns_label_problem(s);
}
static inline bool api_is_dns_subdomain(const char *s)
{
    return !api_dns_subdomain_problem(s);
}
static inline bool api_is_label_key(const char *s)
{
    return !api_label_key_problem(s);
}
static inline bool api_is_label_value(const char *s)
{
    return !api_label_value_problem(s);
}
