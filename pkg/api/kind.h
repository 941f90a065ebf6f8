/* The kinds of the Stratus object model and their table: name, plural, aliases, scope, name rule,
 * and the schema, cross-field validator and defaulter of each. Lookups are data-driven; adding a
 * kind is one table row plus its schema file (kind-<name>.c). The table is constant: any thread. */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>

typedef enum api_kind {
    API_KIND_INSTANCE,
    API_KIND_FLAVOR,
    API_KIND_IMAGE,
    API_KIND_NETWORK,
    API_KIND_VOLUME,
    API_KIND_SERVER_GROUP,
    API_KIND_NODE,
    API_KIND_EVENT,
    API_KIND_LEASE,
    _API_KIND_MAX,
    _API_KIND_INVALID = -EINVAL,
} api_kind;

/* Which DNS-1123 rule metadata.name follows. */
typedef enum api_name_rule {
    API_NAME_RULE_DNS_LABEL,     /* <= 63: instances (the default hostname), namespaces */
    API_NAME_RULE_DNS_SUBDOMAIN, /* <= 253, dots allowed: everything else ("m1.tiny") */
    _API_NAME_RULE_MAX,
    _API_NAME_RULE_INVALID = -EINVAL,
} api_name_rule;

/* Internal schema types (api/schema.h); other modules only pass the pointers around. */
typedef struct api_field api_field;
typedef struct api_vctx api_vctx;

typedef struct api_kind_info {
    api_kind kind;
    const char *name;           /* "Instance": the `kind` of a manifest, exact case */
    const char *plural;         /* "instances": etcd keys and CLI */
    const char *const *aliases; /* NULL-terminated short names for the CLI: "inst", "i" */
    bool namespaced;
    api_name_rule name_rule;
    const api_field *spec;   /* members of spec */
    const api_field *status; /* members of status; NULL when the kind has no status */
    /* Rules spanning several spec members, run after the schema; the path points at spec. */
    int (*validate_spec)(api_vctx *c, const json_t *spec);
    /* Fills spec defaults into a valid object (may look at metadata); NULL when none. */
    void (*default_object)(json_t *obj);
} api_kind_info;

/* The row of k, or NULL when k is out of range. */
const api_kind_info *api_kind_get(api_kind k);
/* Finds a kind by name, plural or alias, case-insensitively ("Instance", "instances", "inst",
 * "I"), for the CLI and request parameters. NULL when unknown. */
const api_kind_info *api_kind_lookup(const char *s);
/* Finds a kind by its exact name, as a manifest's `kind` must spell it. NULL when unknown. */
const api_kind_info *api_kind_from_name(const char *s);

const char *api_kind_to_string(api_kind k);
/* Exact kind name to enum; _API_KIND_INVALID when unknown. */
api_kind api_kind_from_string(const char *s);

const char *api_name_rule_to_string(api_name_rule r);
