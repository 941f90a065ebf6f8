/* Where stratusctl finds the apiserver: --server, then $STRATUS_SERVER, then the "server" of the
 * config file (--config FILE, else $HOME/.stratus/config, which `make up` writes), then
 * 127.0.0.1:7443. The config file is a small JSON object: {"server": "127.0.0.1:7443"}; members
 * this version does not know are ignored, so newer files still work. Pure apart from reading the
 * file; any thread. */
#pragma once

#include <stdbool.h>

#define CLI_DEFAULT_SERVER     "127.0.0.1:7443"
#define CLI_CONFIG_FILE_MAX    (64u << 10)
#define CLI_SERVER_ADDRESS_MAX 1024

/* $HOME/.stratus/config, malloc'd; NULL when $HOME is unset or empty. */
char *cli_config_default_path(const char *home);

/* Resolves the server address. `flag` and `env` may be NULL or "" (not given). `config_path` is
 * the file to read: when `explicit_path` (--config) it must exist; the default path may be
 * missing. Returns 0 and a malloc'd address in *ret, or a -errno with a malloc'd message in
 * *ret_error ("~/.stratus/config: invalid JSON at line 1, column 9: ..."). */
int cli_config_server(const char *flag, const char *env, const char *config_path,
                      bool explicit_path, char **ret, char **ret_error);
