/* Status conditions ({type, status, reason, message, lastTransitionTime}), written one way by
 * every component that reports them: the apiserver, the scheduler and the node agents. */
#pragma once

#include <jansson.h>

#include "base/timeutil.h"

/* Sets condition `type` in status.conditions (created when missing) to `value` ("True",
 * "False", "Unknown") with reason and message (NULL removes them; both cut to the API's caps).
 * lastTransitionTime moves only when the value changes. A new type beyond API_CONDITIONS_MAX is
 * dropped rather than making the status invalid. */
void api_status_set_condition(json_t *status, const char *type, const char *value,
                              const char *reason, const char *message, usec_t now);
