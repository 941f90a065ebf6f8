/* IPv4 address and CIDR helpers. */
#include "api/ipv4.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Parses a decimal number of at most max without leading zeros; advances *p. */
static int parse_decimal(const char **p, unsigned max, unsigned *ret)
{
    const char *s = *p;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    if (s[0] == '0' && s[1] >= '0' && s[1] <= '9')
        return -EINVAL;
    unsigned v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (unsigned)(*s - '0');
        if (v > max)
            return -EINVAL;
        s++;
    }
    *p = s;
    *ret = v;
    return 0;
}

/* Parses the dotted quad at *p, leaving *p after it. */
static int parse_quad(const char **p, uint32_t *ret)
{
    uint32_t a = 0;
    for (int i = 0; i < 4; i++) {
        unsigned octet;
        if (i > 0) {
            if (**p != '.')
                return -EINVAL;
            (*p)++;
        }
        if (parse_decimal(p, 255, &octet) < 0)
            return -EINVAL;
        a = (a << 8) | octet;
    }
    *ret = a;
    return 0;
}

int api_ipv4_parse(const char *s, uint32_t *ret)
{
    uint32_t a;
    if (parse_quad(&s, &a) < 0 || *s != '\0')
        return -EINVAL;
    *ret = a;
    return 0;
}

char *api_ipv4_format(uint32_t a, char out[static API_IPV4_STRLEN])
{
    snprintf(out, API_IPV4_STRLEN, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xFF, (a >> 8) & 0xFF,
             a & 0xFF);
    return out;
}

int api_ipv4_cidr_parse(const char *s, api_ipv4_cidr *ret)
{
    uint32_t a;
    unsigned prefix;
    if (parse_quad(&s, &a) < 0 || *s != '/')
        return -EINVAL;
    s++;
    if (parse_decimal(&s, 32, &prefix) < 0 || *s != '\0')
        return -EINVAL;
    *ret = (api_ipv4_cidr){.addr = a, .prefix = prefix};
    return 0;
}

char *api_ipv4_cidr_format(const api_ipv4_cidr *c, char out[static API_IPV4_CIDR_STRLEN])
{
    char a[API_IPV4_STRLEN];
    snprintf(out, API_IPV4_CIDR_STRLEN, "%s/%u", api_ipv4_format(c->addr, a), c->prefix);
    return out;
}

uint32_t api_ipv4_netmask(unsigned prefix)
{
    if (prefix == 0)
        return 0;
    if (prefix >= 32)
        return UINT32_MAX;
    return UINT32_MAX << (32 - prefix);
}

uint32_t api_ipv4_cidr_network(const api_ipv4_cidr *c)
{
    return c->addr & api_ipv4_netmask(c->prefix);
}

uint32_t api_ipv4_cidr_broadcast(const api_ipv4_cidr *c)
{
    return api_ipv4_cidr_network(c) | ~api_ipv4_netmask(c->prefix);
}

bool api_ipv4_cidr_is_network(const api_ipv4_cidr *c)
{
    return c->addr == api_ipv4_cidr_network(c);
}

bool api_ipv4_cidr_contains(const api_ipv4_cidr *c, uint32_t addr)
{
    uint32_t mask = api_ipv4_netmask(c->prefix);
    return (addr & mask) == (c->addr & mask);
}

uint64_t api_ipv4_cidr_host_count(const api_ipv4_cidr *c)
{
    if (c->prefix >= 31)
        return c->prefix == 31 ? 2 : 1;
    return (UINT64_C(1) << (32 - c->prefix)) - 2;
}

static uint32_t first_host(const api_ipv4_cidr *c)
{
    return api_ipv4_cidr_network(c) + (c->prefix >= 31 ? 0 : 1);
}

int api_ipv4_cidr_nth_host(const api_ipv4_cidr *c, uint64_t n, uint32_t *ret)
{
    if (n >= api_ipv4_cidr_host_count(c))
        return -ERANGE;
    *ret = first_host(c) + (uint32_t)n;
    return 0;
}

int api_ipv4_cidr_host_index(const api_ipv4_cidr *c, uint32_t addr, uint64_t *ret)
{
    if (!api_ipv4_cidr_contains(c, addr))
        return -ERANGE;
    uint64_t i = (uint64_t)addr - first_host(c);
    if (addr < first_host(c) || i >= api_ipv4_cidr_host_count(c))
        return -ERANGE;
    *ret = i;
    return 0;
}
