/* Editing an Instance's status document the way the agent reports progress: conditions (with
 * lastTransitionTime moving only when the status value changes), the timeline of build steps
 * (capped, oldest dropped), the phase with its reason and message. Every text written is made
 * safe for the API first: printable ASCII (other bytes become '?'), cut to the API's caps.
 *
 * Pure functions on a json_t the caller owns; any thread. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/timeutil.h"

/* Sets condition `type` to status ("True"/"False"/"Unknown") with reason and message (NULL:
 * removed). lastTransitionTime is now when the status value changed or the condition is new. */
void status_condition_set(json_t *status, const char *type, const char *value, const char *reason,
                          const char *message, usec_t now);
/* The condition's status value, or NULL when absent. */
const char *status_condition_get(const json_t *status, const char *type);
/* Removes a condition; no-op when absent. */
void status_condition_remove(json_t *status, const char *type);

/* Appends {step, startTime} to status.timeline (dropping the oldest beyond the API cap) and
 * returns its index, valid until the next begin. */
size_t status_timeline_begin(json_t *status, const char *step, usec_t now);
/* Sets endTime and result ("Succeeded"/"Failed") of the entry at idx. */
void status_timeline_end(json_t *status, size_t idx, bool succeeded, usec_t now);

/* Sets status.phase, and reason/message (removed when NULL). */
void status_phase_set(json_t *status, const char *phase, const char *reason, const char *message);
const char *status_phase_get(const json_t *status);

/* A copy of s made safe for an API message of at most max bytes: printable ASCII, newlines,
 * carriage returns and tabs kept, everything else '?'. */
char *status_text(const char *s, size_t max);
/* The same in place (for console logs). */
void status_text_sanitize(char *s);
