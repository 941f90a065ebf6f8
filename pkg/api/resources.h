/* What an instance claims and what a node can hand out, computed one way for everyone: the
 * apiserver's Bind (which enforces it) and the scheduler (which predicts it) must agree, or the
 * scheduler would keep proposing bindings the apiserver refuses.
 *
 * A flavor claims vcpus, memoryMiB, and disk = rootDiskGiB + ephemeralGiB + swapMiB rounded up to
 * GiB. A node can hand out status.allocatable × spec.allocationRatios (default 1.0), where
 * allocatable falls back to capacity (spec overrides status) − spec.reserved when the agent has
 * not reported it. Pure functions of the JSON; any thread. */
#pragma once

#include <jansson.h>
#include <stdint.h>

typedef enum api_resource {
    API_RESOURCE_VCPUS,
    API_RESOURCE_MEMORY,
    API_RESOURCE_DISK,
    _API_RESOURCE_MAX,
} api_resource;

typedef struct api_resource_info {
    const char *field; /* in ledger entries and Node allocatable/capacity/reserved */
    const char *ratio; /* in Node spec.allocationRatios */
    const char *name;  /* in messages: "vcpus", "memory", "disk" */
    const char *unit;  /* in messages: "", " MiB", " GiB" */
} api_resource_info;

extern const api_resource_info api_resource_table[_API_RESOURCE_MAX];

typedef struct api_resources {
    int64_t amount[_API_RESOURCE_MAX];
} api_resources;

typedef struct api_node_capacity {
    int64_t allocatable[_API_RESOURCE_MAX];
    double ratio[_API_RESOURCE_MAX];
    int64_t limit[_API_RESOURCE_MAX]; /* allocatable × ratio: what all claims together may reach */
} api_node_capacity;

void api_node_capacity_of(const json_t *node, api_node_capacity *ret);
void api_flavor_resources(const json_t *flavor, api_resources *ret);
/* What a bound instance claims, as Bind recorded it from the flavor in status.claim
 * ({"vcpus", "memoryMiB", "diskGiB"}, the ledger entry's sizes): 0 with *ret, or -ENOENT when the
 * instance has none (not bound, or bound before Bind recorded it: its flavor then says) or one
 * not of its binding (status.nodeName is not spec.nodeName). As Nova
 * keeps the flavor in the instance, the claim holds when the flavor is deleted. */
int api_instance_claim(const json_t *inst, api_resources *ret);
/* {"vcpus", "memoryMiB", "diskGiB"} of r: a new reference. */
json_t *api_resources_json(const api_resources *r);
