/* Internal to pkg/api: what each kind-<name>.c file provides to the kind table in kind.c. */
#pragma once

#include "api/schema.h"

extern const api_field api_instance_spec_fields[], api_instance_status_fields[];
int api_instance_validate_spec(api_vctx *c, const json_t *spec);
void api_instance_default(json_t *obj);

extern const api_field api_flavor_spec_fields[];
void api_flavor_default(json_t *obj);

extern const api_field api_image_spec_fields[], api_image_status_fields[];
int api_image_validate_spec(api_vctx *c, const json_t *spec);
void api_image_default(json_t *obj);

extern const api_field api_network_spec_fields[], api_network_status_fields[];
int api_network_validate_spec(api_vctx *c, const json_t *spec);
void api_network_default(json_t *obj);

extern const api_field api_volume_spec_fields[], api_volume_status_fields[];
void api_volume_default(json_t *obj);

extern const api_field api_server_group_spec_fields[], api_server_group_status_fields[];
int api_server_group_validate_spec(api_vctx *c, const json_t *spec);
void api_server_group_default(json_t *obj);

extern const api_field api_node_spec_fields[], api_node_status_fields[];
int api_node_validate_spec(api_vctx *c, const json_t *spec);
void api_node_default(json_t *obj);

extern const api_field api_event_spec_fields[];
int api_event_validate_spec(api_vctx *c, const json_t *spec);
void api_event_default(json_t *obj);
extern const api_field api_lease_spec_fields[];
