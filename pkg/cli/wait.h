/* What `stratusctl wait --for=...` (and apply --wait, delete --wait) wait for, and the one-line
 * progress of an instance being built. Pure functions of objects: any thread. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "api/limits.h"

typedef enum cli_wait_type {
    CLI_WAIT_CONDITION, /* condition=Ready[=True]: a condition with that type and status */
    CLI_WAIT_PHASE,     /* phase=Running: status.phase */
    CLI_WAIT_DELETE,    /* delete: the object is gone */
    CLI_WAIT_SETTLED,   /* an instance is Running or Failed (apply --wait); no text form */
    _CLI_WAIT_TYPE_MAX,
} cli_wait_type;

typedef struct cli_wait_for {
    cli_wait_type type;
    char name[API_SHORT_STRING_MAX + 1];  /* condition type, or phase */
    char value[API_SHORT_STRING_MAX + 1]; /* condition status: "True" unless given */
} cli_wait_for;

/* Parses the value of --for: "condition=Ready", "condition=Ready=False", "phase=Running",
 * "delete". Condition statuses are matched case-insensitively ("true"). Returns 0, or -EINVAL
 * with a malloc'd message in *ret_error. */
int cli_wait_for_parse(const char *text, cli_wait_for *ret, char **ret_error);
/* Whether obj (NULL when the object does not exist) satisfies w. */
bool cli_wait_for_met(const cli_wait_for *w, const json_t *obj);
/* "condition Ready=True", "phase Running", "deletion": for messages. Into out. */
const char *cli_wait_for_describe(const cli_wait_for *w, char *out, size_t size);

/* The condition that changed last (greatest lastTransitionTime; the later one in the array on a
 * tie), or NULL. Borrowed. */
const json_t *cli_latest_condition(const json_t *obj);
/* One line on where an instance is: "Building: NetworkReady=False (Configuring): attaching tap",
 * its phase and its latest condition; a Failed one gives its reason and message. Into out. */
const char *cli_instance_progress(const json_t *obj, char *out, size_t size);
