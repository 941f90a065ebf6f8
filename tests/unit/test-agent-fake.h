/* The agent unit tests' fake backend (test-agent-fake.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "agent/backend.h"

extern const backend_ops fake_backend_ops;

backend *fake_backend_new(const char *pool_dir);
/* Fails the nth call (1-based, counted from now; only calls of `op` when op is not NULL) with
 * error (0: -EIO); with always, every call from then on. nth 0: no failures. */
void fake_fail(backend *b, unsigned nth, bool always, const char *op, int error);
unsigned fake_calls(backend *b);
void fake_set_stubborn(backend *b, bool stubborn);
/* what: "domains", "disks", "networks", or "dhcp" (host entries, named "<network> <mac>") */
size_t fake_count(backend *b, const char *what);
bool fake_has(backend *b, const char *what, const char *name);
int fake_domain_state(backend *b, const char *name); /* backend_domain_state, -1 absent */
void fake_domain_set_state(backend *b, const char *name, int state);
const char *fake_domain_xml(backend *b, const char *name);
