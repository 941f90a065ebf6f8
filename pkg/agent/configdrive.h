/* The config drive: a cloud-init NoCloud seed for one instance — meta-data (instance-id,
 * local-hostname, public-keys, the instance's metadata map), user-data (spec.userData as given)
 * and network-config (version 2, static addresses from the plan's NICs, matched by MAC) — written
 * as files under <instance folder>/config/ and packed into an ISO 9660 image labelled "cidata"
 * when genisoimage, xorrisofs or mkisofs is installed.
 *
 * meta-data and network-config are JSON documents: JSON is YAML, so cloud-init reads them, and
 * jansson does the quoting. Not here: vfat seeds, a metadata service.
 *
 * Threads: any; configdrive_write blocks (it runs the ISO tool). The library does not log. */
#pragma once

#include <jansson.h>

#include "agent/plan.h"

#define CONFIGDRIVE_ERROR_MAX 512

/* The three documents, as new strings. */
char *configdrive_meta_data(const agent_plan *p, const json_t *instance);
char *configdrive_network_config(const agent_plan *p);
char *configdrive_user_data(const json_t *instance);

/* The ISO tool found on PATH ("/usr/bin/genisoimage"), or NULL. Looked up once. */
const char *configdrive_iso_tool(void);

/* Writes the seed files under p->files_dir/config/ and, when an ISO tool exists, the image at
 * iso_path (written to a temporary name, then renamed). Returns 1 when the ISO was made, 0 when
 * only the files were (no tool), -errno with err (CONFIGDRIVE_ERROR_MAX bytes) on failure. */
int configdrive_write(const agent_plan *p, const json_t *instance, const char *iso_path, char *err);
