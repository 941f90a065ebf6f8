/* Stratus objects as JSON documents (jansson): loading manifests, validating, defaulting, the
 * accessors and etcd keys other modules use, and the canonical form objects are stored in.
 *
 * The apply path is: api_manifest_load() (or api_json_load() + api_object_prepare()), which
 * strips what users may not set (status, and the system-owned metadata uid, resourceVersion,
 * generation, creationTimestamp, deletionTimestamp), validates, and fills defaults, so that
 * applying one manifest twice yields the same stored spec. UpdateStatus input is checked with
 * api_object_validate_status(). Nothing here talks to etcd or logs.
 *
 * Ownership: json_t results are new references the caller must json_decref(); accessors return
 * borrowed pointers into the object. Errors: -EINVAL with *err filled (see api/error.h) unless
 * said otherwise; err may be NULL. Threads: any, as long as one json_t is not shared between
 * threads while one of them modifies it. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/error.h"
#include "api/kind.h"

/* Parses one JSON document of at most API_OBJECT_SIZE_MAX bytes whose top is an object;
 * duplicate keys are rejected. Returns 0 and a new reference in *ret; -EMSGSIZE when too large,
 * -EINVAL when not JSON or not an object (err->path is ""). */
int api_json_load(const char *data, size_t len, json_t **ret, api_error *err);

/* Loads a manifest: one object, or {"apiVersion":"stratus/v1","kind":"List","items":[...]} of up
 * to API_LIST_ITEMS_MAX objects, and api_object_prepare()s each (errors in items carry the
 * prefix "items[i]."). Returns 0 and a new JSON array of the prepared objects in *ret_items. */
int api_manifest_load(const char *data, size_t len, json_t **ret_items, api_error *err);

/* Apply input: strips status and system-owned metadata, validates, fills defaults (in place).
 * Returns 0 or -EINVAL. */
int api_object_prepare(json_t *obj, api_error *err);

/* Checks a whole object as it is: top-level fields, metadata (system-owned fields included, when
 * present), spec against its kind, and status when present. Returns 0 or -EINVAL. */
int api_object_validate(const json_t *obj, api_error *err);
/* Checks UpdateStatus input: the `status` value of an object of kind k (errors say "status.…").
 * -EINVAL also when the kind has no status (Flavor, Event). */
int api_object_validate_status(const api_kind_info *k, const json_t *status, api_error *err);

/* Removes `status` and metadata uid, resourceVersion, generation, creationTimestamp and
 * deletionTimestamp: the fields the system owns and apply ignores. Accepts any JSON. */
void api_object_strip_system_fields(json_t *obj);
/* Fills defaults into a valid object: metadata.namespace "default" for namespaced kinds, then the
 * kind's spec defaults (docs/api.md lists them). Idempotent. Returns 0, or -EINVAL when obj has
 * no known kind or no metadata object. */
int api_object_default(json_t *obj);

/* Accessors. Borrowed pointers, NULL when absent or of the wrong type. */
const api_kind_info *api_object_kind(const json_t *obj);
const char *api_object_name(const json_t *obj);
const char *api_object_namespace(const json_t *obj);
const char *api_object_uid(const json_t *obj);
json_t *api_object_labels(const json_t *obj);
/* metadata.resourceVersion (a decimal string, as in Kubernetes) as int64. Returns 0, -ENOENT when
 * absent, -EINVAL when not a canonical non-negative decimal string that fits. */
int api_object_resource_version(const json_t *obj, int64_t *ret);
/* Sets metadata.resourceVersion to the decimal string of rv, creating metadata if needed. */
void api_object_set_resource_version(json_t *obj, int64_t rv);
/* metadata.generation, 0 when absent. */
int64_t api_object_generation(const json_t *obj);
/* The value at a dotted path of object members ("spec.nodeName"); borrowed; NULL when any step is
 * missing or not an object. No array indexes. */
json_t *api_json_lookup(const json_t *obj, const char *path);

/* etcd keys. "/stratus/v1/<plural>/<namespace>/<name>" for namespaced kinds (ns required),
 * "/stratus/v1/<plural>/<name>" for cluster-scoped ones (ns must be NULL or ""). Names and
 * namespaces must follow their DNS rules, so a key never has extra '/'. Returns 0 and a malloc'd
 * key in *ret, or -EINVAL. */
int api_key_build(const api_kind_info *k, const char *ns, const char *name, char **ret);
/* The prefix to list a kind: "/stratus/v1/<plural>/" (all namespaces; ns NULL or "") or
 * "/stratus/v1/<plural>/<ns>/". Returns 0 and a malloc'd prefix in *ret, or -EINVAL. */
int api_key_prefix(const api_kind_info *k, const char *ns, char **ret);
/* The key of obj from its kind, metadata.namespace and metadata.name. */
int api_object_key(const json_t *obj, char **ret);

/* The canonical text of any JSON value: compact, object keys sorted, UTF-8 kept. This is what
 * Stratus stores and compares: byte for byte json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS |
 * JSON_ENCODE_ANY), made faster (canonical.c). Returns a malloc'd string; aborts where that call
 * returns NULL (out of memory, a cycle, a string that is not UTF-8). j != NULL. Any thread. */
char *api_json_canonical(const json_t *j);
/* True when a and b have canonically equal `spec` (both absent counts as equal). */
bool api_spec_equal(const json_t *a, const json_t *b);
/* True when applying a over b changes nothing a user owns: spec, metadata.labels and
 * metadata.annotations are canonically equal. The apiserver answers "unchanged" then. */
bool api_object_apply_equal(const json_t *a, const json_t *b);
