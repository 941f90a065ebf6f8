/* The columns `stratusctl get` prints for each kind, as a table of (kind, header, wide-only,
 * cell function) rows: instances NAME PHASE NODE IP FLAVOR AGE, nodes NAME READY ZONE CPU MEM
 * INSTANCES AGE, and so on (docs/cli.md lists them). -o wide adds the wide-only columns, -A puts
 * NAMESPACE first for namespaced kinds. Pure functions of the objects: any thread. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "api/kind.h"
#include "api/resources.h"
#include "base/timeutil.h"
#include "cli/table.h"

typedef struct cli_print_opts {
    usec_t now;      /* realtime, for ages */
    bool wide;       /* -o wide */
    bool namespaces; /* a NAMESPACE column first (namespaced kinds listed with -A) */
    /* For nodes: what cli_node_usage() computed, or NULL (CPU and MEM then show only what the
     * node can hand out, INSTANCES "?"). Borrowed. */
    const json_t *node_usage;
} cli_print_opts;

/* The headers of kind k's table. Returns how many (<= CLI_TABLE_COLUMNS_MAX), static strings in
 * ret. */
size_t cli_columns_headers(const api_kind_info *k, const cli_print_opts *o,
                           const char *ret[static CLI_TABLE_COLUMNS_MAX]);
/* A new table with kind k's headers. */
cli_table *cli_columns_table(const api_kind_info *k, const cli_print_opts *o);
/* Adds the row of obj (an object of kind k) to t, made by cli_columns_table(k, o). */
void cli_columns_add_row(cli_table *t, const api_kind_info *k, const cli_print_opts *o,
                         const json_t *obj);

/* What instances claim on each node, estimated from objects since clients cannot read the
 * allocation ledger: every instance with spec.nodeName that is past Pending (bound) claims what
 * Bind recorded in it (api_instance_claim), or for one bound before Bind recorded claims its
 * flavor's resources (api_flavor_resources), as the apiserver's Bind does. `instances` and
 * `flavors` are JSON arrays of objects. Returns a new object {"<node>": {"vcpus", "memoryMiB",
 * "diskGiB", "instances"}}. */
json_t *cli_node_usage(const json_t *instances, const json_t *flavors);

/* What a node can hand out of r, as the apiserver's Bind computes it (api_node_capacity_of:
 * status.allocatable, or capacity − reserved, × spec.allocationRatios). Returns -1 when neither
 * the node's spec nor its agent has said what its capacity is. */
int64_t cli_node_limit(const json_t *node, api_resource r);

/* Helpers shared with describe: the status of condition `type` ("True"/"False"/"Unknown"), or
 * NULL; the condition object itself (borrowed) or NULL. */
const char *cli_condition_status(const json_t *obj, const char *type);
const json_t *cli_condition_get(const json_t *obj, const char *type);
/* "instance/web-1" for an object reference {kind, name}: into out. Returns out. */
const char *cli_object_ref(const char *kind, const char *name, char *out, size_t size);
