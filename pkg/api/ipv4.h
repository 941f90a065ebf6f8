/* IPv4 addresses and CIDR blocks: strict parsing (dotted quad, no leading zeros, no spaces),
 * formatting, containment and host enumeration, for validation here and for IPAM. Addresses are
 * uint32_t in host byte order. Pure functions, any thread. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define API_IPV4_STRLEN      16 /* "255.255.255.255" + NUL */
#define API_IPV4_CIDR_STRLEN 19 /* "255.255.255.255/32" + NUL */

typedef struct api_ipv4_cidr {
    uint32_t addr;   /* as written; may have host bits set (see api_ipv4_cidr_is_network) */
    unsigned prefix; /* 0..32 */
} api_ipv4_cidr;

/* Parses "10.0.0.1". Returns 0, or -EINVAL for anything else ("10.0.0.300", "010.0.0.1",
 * " 10.0.0.1", "10.0.0"). */
int api_ipv4_parse(const char *s, uint32_t *ret);
/* Writes the dotted quad into out and returns out. */
char *api_ipv4_format(uint32_t addr, char out[static API_IPV4_STRLEN]);

/* Parses "10.0.0.0/24" (prefix 0..32, no leading zeros). Returns 0 or -EINVAL. */
int api_ipv4_cidr_parse(const char *s, api_ipv4_cidr *ret);
/* Writes "a.b.c.d/p" into out and returns out. */
char *api_ipv4_cidr_format(const api_ipv4_cidr *c, char out[static API_IPV4_CIDR_STRLEN]);

uint32_t api_ipv4_netmask(unsigned prefix);
uint32_t api_ipv4_cidr_network(const api_ipv4_cidr *c);
uint32_t api_ipv4_cidr_broadcast(const api_ipv4_cidr *c);
/* True when addr has no host bits set, i.e. it names the network itself. */
bool api_ipv4_cidr_is_network(const api_ipv4_cidr *c);
/* True when addr is anywhere in the block (network and broadcast addresses included). */
bool api_ipv4_cidr_contains(const api_ipv4_cidr *c, uint32_t addr);

/* Usable host addresses: network+1 .. broadcast-1; for /31 both addresses (RFC 3021) and for /32
 * the one address. */
uint64_t api_ipv4_cidr_host_count(const api_ipv4_cidr *c);
/* The n-th usable host, n = 0 being the first (the default gateway). Returns 0, or -ERANGE when
 * n >= api_ipv4_cidr_host_count(). */
int api_ipv4_cidr_nth_host(const api_ipv4_cidr *c, uint64_t n, uint32_t *ret);
/* The inverse: the index of addr among the usable hosts. Returns 0, or -ERANGE when addr is not
 * a usable host of the block (outside it, or its network or broadcast address). */
int api_ipv4_cidr_host_index(const api_ipv4_cidr *c, uint32_t addr, uint64_t *ret);
