/* Label selectors and field selectors, in Kubernetes syntax, for List and Watch.
 *
 * Label selectors: comma-separated requirements, all of which must hold:
 *   key=value  key==value  key!=value  key in (v1,v2)  key notin (v1,v2)  key  !key
 * Keys and values follow the label rules (api/names.h). `!=` and `notin` also match objects
 * without the key. An empty selector matches everything. Whitespace around tokens is ignored.
 *
 * Field selectors: comma-separated `field=value`, `field==value`, `field!=value`, all of which
 * must hold, over a fixed set of fields (see api_field_selector_field(); docs/api.md). A missing
 * field has the value "" (so `spec.nodeName=` selects unscheduled instances). In values, `\,`
 * `\=` `\!` and `\\` stand for the character itself.
 *
 * Caps: API_SELECTOR_MAX bytes, API_SELECTOR_REQUIREMENTS_MAX requirements,
 * API_SELECTOR_VALUES_MAX values per set. Parse errors: -EINVAL with err->path "labelSelector" /
 * "fieldSelector" and a message with the 1-based byte position, e.g. `position 9: expected "("
 * after "in"`. Parsed selectors are immutable: any thread may match concurrently. */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "api/error.h"
#include "api/kind.h"

typedef enum api_label_op {
    API_LABEL_OP_EQUALS,
    API_LABEL_OP_NOT_EQUALS,
    API_LABEL_OP_IN,
    API_LABEL_OP_NOT_IN,
    API_LABEL_OP_EXISTS,
    API_LABEL_OP_NOT_EXISTS,
    _API_LABEL_OP_MAX,
    _API_LABEL_OP_INVALID = -EINVAL,
} api_label_op;

const char *api_label_op_to_string(api_label_op op); /* "=", "!=", "in", "notin", "", "!" */

typedef struct api_label_requirement {
    char *key;
    api_label_op op;
    char **values; /* one for = and !=, one or more for in/notin, none for exists */
    size_t n_values;
} api_label_requirement;

typedef struct api_label_selector {
    api_label_requirement *requirements;
    size_t n_requirements;
} api_label_selector;

/* Parses text (NULL or "" gives the empty selector). Returns 0 and a new selector in *ret (free
 * with api_label_selector_free), or -EINVAL / -EMSGSIZE with err filled. */
int api_label_selector_parse(const char *text, api_label_selector **ret, api_error *err);
/* True when labels (a JSON object of strings, or NULL for none) satisfies every requirement. */
bool api_label_selector_matches(const api_label_selector *s, const json_t *labels);
/* The selector in normal form ("a=b,c in (d,e),!f"): parses back to an equal selector. malloc'd. */
char *api_label_selector_format(const api_label_selector *s);
api_label_selector *api_label_selector_free(api_label_selector *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(api_label_selector *, api_label_selector_free);

typedef struct api_field_requirement {
    const char *field; /* static string from the supported set */
    bool negate;       /* != */
    char *value;
} api_field_requirement;

typedef struct api_field_selector {
    api_field_requirement *requirements;
    size_t n_requirements;
} api_field_selector;

/* Parses text for objects of kind k (NULL: any kind; fields of every kind are accepted). Returns
 * 0 and a new selector in *ret, or -EINVAL / -EMSGSIZE with err filled (an unsupported field is
 * named). */
int api_field_selector_parse(const char *text, const api_kind_info *k, api_field_selector **ret,
                             api_error *err);
/* True when obj satisfies every requirement. Strings compare as-is; integers and booleans as
 * their JSON text; absent fields as "". */
bool api_field_selector_matches(const api_field_selector *s, const json_t *obj);
char *api_field_selector_format(const api_field_selector *s);
api_field_selector *api_field_selector_free(api_field_selector *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(api_field_selector *, api_field_selector_free);

/* The i-th field (from 0) that selectors over kind k (NULL: any kind) support, or NULL past the
 * last one. Static strings; for docs, the CLI and error messages. */
const char *api_field_selector_field(const api_kind_info *k, size_t i);
