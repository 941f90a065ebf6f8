/* Internal to pkg/api: the table-driven validator every kind's schema is written in. A schema is
 * an array of api_field (ended by a field with a NULL name) that says, per JSON member, its type,
 * whether it is required, its cap, its allowed values and an optional check function. The walker
 * reports unknown members first, then each field in table order, then the object's own check (for
 * rules that span fields), with the path of the value at fault. Not installed for other modules. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/error.h"
#include "api/kind.h"

typedef enum api_field_type {
    API_FIELD_STRING,
    API_FIELD_INTEGER,
    API_FIELD_NUMBER, /* integer or real */
    API_FIELD_BOOL,
    API_FIELD_SCALAR, /* string, integer or boolean (free-form properties) */
    API_FIELD_OBJECT,
    API_FIELD_ARRAY,
    API_FIELD_MAP, /* object with user-chosen keys */
    _API_FIELD_TYPE_MAX,
} api_field_type;

/* The validation walk: where we are and where the first error goes. */
struct api_vctx {
    char path[API_ERROR_PATH_MAX];
    size_t path_len;
    api_error *err;
    const api_kind_info *kind; /* the kind being validated (for name rules) */
};

/* Checks a value in place; the path points at the value. Returns 0 or api_vfail()'s -EINVAL. */
typedef int (*api_check_fn)(api_vctx *c, const json_t *v);
/* Checks one key of a map; the path points at the map. */
typedef int (*api_key_check_fn)(api_vctx *c, const char *key);

struct api_field {
    const char *name;
    api_field_type type;
    bool required;
    bool unique;     /* ARRAY of strings: no value twice */
    size_t max;      /* STRING/SCALAR: bytes (0 = API_MESSAGE_MAX); ARRAY/MAP: entries */
    int64_t min_int; /* INTEGER: inclusive range */
    int64_t max_int;
    double min_num; /* NUMBER: inclusive range */
    double max_num;
    const char *const *values;  /* STRING: allowed values, NULL-terminated */
    api_check_fn check;         /* scalars: format; OBJECT/ARRAY/MAP: after the members */
    const api_field *fields;    /* OBJECT: its members */
    const api_field *elem;      /* ARRAY: element; MAP: value */
    api_key_check_fn key_check; /* MAP: each key */
};

#define API_F_STRING(n, req, cap, chk)                                                             \
    {                                                                                              \
        .name = (n), .type = API_FIELD_STRING, .required = (req), .max = (cap), .check = (chk)     \
    }
#define API_F_ENUM(n, req, vals)                                                                   \
    {                                                                                              \
        .name = (n), .type = API_FIELD_STRING, .required = (req), .max = API_SHORT_STRING_MAX,     \
        .values = (vals)                                                                           \
    }
#define API_F_INT(n, req, lo, hi)                                                                  \
    {                                                                                              \
        .name = (n), .type = API_FIELD_INTEGER, .required = (req), .min_int = (lo),                \
        .max_int = (hi)                                                                            \
    }
#define API_F_NUMBER(n, req, lo, hi)                                                               \
    {                                                                                              \
        .name = (n), .type = API_FIELD_NUMBER, .required = (req), .min_num = (lo), .max_num = (hi) \
    }
#define API_F_BOOL(n, req)                                                                         \
    {                                                                                              \
        .name = (n), .type = API_FIELD_BOOL, .required = (req)                                     \
    }
#define API_F_OBJECT(n, req, flds, chk)                                                            \
    {                                                                                              \
        .name = (n), .type = API_FIELD_OBJECT, .required = (req), .fields = (flds), .check = (chk) \
    }
#define API_F_ARRAY(n, req, cap, el, chk)                                                          \
    {                                                                                              \
        .name = (n), .type = API_FIELD_ARRAY, .required = (req), .max = (cap), .elem = (el),       \
        .check = (chk)                                                                             \
    }
#define API_F_SET(n, req, cap, el)                                                                 \
    {                                                                                              \
        .name = (n), .type = API_FIELD_ARRAY, .required = (req), .max = (cap), .elem = (el),       \
        .unique = true                                                                             \
    }
#define API_F_MAP(n, req, cap, kchk, val, chk)                                                     \
    {                                                                                              \
        .name = (n), .type = API_FIELD_MAP, .required = (req), .max = (cap), .key_check = (kchk),  \
        .elem = (val), .check = (chk)                                                              \
    }
#define API_F_END                                                                                  \
    {                                                                                              \
        .name = NULL                                                                               \
    }

void api_vctx_init(api_vctx *c, api_error *err, const char *prefix);
/* Appends ".key" (or `["key"]` when key is not a plain identifier) / "[i]" to the path and
 * returns the previous length, to hand back to api_vpath_restore(). */
size_t api_vpath_key(api_vctx *c, const char *key);
size_t api_vpath_index(api_vctx *c, size_t i);
void api_vpath_restore(api_vctx *c, size_t len);
/* Records the error at the current path and returns -EINVAL. */
int api_vfail(api_vctx *c, const char *fmt, ...) _printf_(2, 3);
/* Same, at the member `key` of the current path. */
int api_vfail_at(api_vctx *c, const char *key, const char *fmt, ...) _printf_(3, 4);

/* Validates v against f (path at v), or obj's members against fields (path at obj). */
int api_field_check(api_vctx *c, const api_field *f, const json_t *v);
int api_fields_check(api_vctx *c, const api_field *fields, const json_t *obj);

/* Checks shared by several kinds; the path points at the value. */
int api_check_ref_name(api_vctx *c, const json_t *v);  /* DNS subdomain naming another object */
int api_check_dns_label(api_vctx *c, const json_t *v); /* hostnames, namespaces */
int api_check_label_value(api_vctx *c, const json_t *v);
int api_check_qualified_name(api_vctx *c, const json_t *v); /* finalizers, taint keys */
int api_check_ipv4(api_vctx *c, const json_t *v);
int api_check_mac(api_vctx *c, const json_t *v);
int api_check_url(api_vctx *c, const json_t *v);
int api_check_sha256(api_vctx *c, const json_t *v);
int api_check_timestamp(api_vctx *c, const json_t *v);
int api_check_reason(api_vctx *c, const json_t *v); /* CamelCase word */
int api_check_label_key(api_vctx *c, const char *key);
int api_check_free_key(api_vctx *c, const char *key); /* non-empty, printable, <= 255 bytes */
/* Conditions: unique types (an ARRAY check). */
int api_check_conditions(api_vctx *c, const json_t *v);

/* Shared element schemas. */
extern const api_field api_condition_elem; /* {type, status, reason, message, lastTransitionTime} */
extern const char *const api_condition_status_values[];

/* Sets o[key] = v when o has no such member; steals v either way. o must be an object. */
void api_default_set(json_t *o, const char *key, json_t *v);
/* o[key] when o is an object and the member is an object, else NULL. */
json_t *api_child_object(json_t *o, const char *key);

/* Values shared by Instance tolerations and Node taints. */
extern const char *const api_taint_effect_values[];
/* A label key held in a string value (toleration and taint keys). */
int api_check_label_key_value(api_vctx *c, const json_t *v);
