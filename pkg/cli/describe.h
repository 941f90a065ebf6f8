/* The text of `stratusctl describe`: metadata, the spec as the manifest spells it, the status
 * (phase, conditions, addresses, attempts and the build timeline with a duration per step for
 * instances; capacity, what is allocated and node info for nodes), then the object's recent
 * events. Pure function of the objects it is given: any thread. */
#pragma once

#include <jansson.h>

#include "cli/columns.h"

#define CLI_DESCRIBE_EVENTS_MAX 20 /* the most recent events shown */

/* Returns the description of obj, malloc'd. `events` is a JSON array of the Events about obj,
 * any order (NULL: no Events section). o->node_usage, when set, adds what is allocated on a
 * node. */
char *cli_describe(const json_t *obj, const json_t *events, const cli_print_opts *o);

/* Sorts an array of Events in place by last time seen, oldest first (then by name). */
void cli_events_sort(json_t *events);
