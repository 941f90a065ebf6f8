/* The apiserver address for stratusctl (see config.h). */
#include "cli/config.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "base/alloc.h"

char *cli_config_default_path(const char *home)
{
    if (!home || !*home)
        return NULL;
    return xasprintf("%s%s.stratus/config", home, home[strlen(home) - 1] == '/' ? "" : "/");
}

static int check_address(const char *s, const char *from, char **ret, char **ret_error)
{
    size_t n = strlen(s);
    if (n == 0 || n > CLI_SERVER_ADDRESS_MAX) {
        *ret_error =
            xasprintf("%s: the server address must be 1 to %d bytes", from, CLI_SERVER_ADDRESS_MAX);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f) {
            *ret_error = xasprintf("%s: the server address \"%s\" has a space or control "
                                   "character",
                                   from, s);
            return -EINVAL;
        }
    *ret = xstrdup(s);
    return 0;
}

int cli_config_server(const char *flag, const char *env, const char *config_path,
                      bool explicit_path, char **ret, char **ret_error)
{
    if (flag && *flag)
        return check_address(flag, "--server", ret, ret_error);
    if (env && *env)
        return check_address(env, "STRATUS_SERVER", ret, ret_error);
    if (config_path) {
        FILE *f = fopen(config_path, "re");
        if (!f && (errno != ENOENT || explicit_path)) {
            int r = -errno;
            *ret_error = xasprintf("%s: %s", config_path, strerror(-r));
            return r;
        }
        if (f) {
            char data[CLI_CONFIG_FILE_MAX + 1];
            size_t n = fread(data, 1, sizeof(data), f);
            bool failed = ferror(f);
            fclose(f);
            if (failed || n > CLI_CONFIG_FILE_MAX) {
                *ret_error = xasprintf("%s: %s", config_path,
                                       failed ? "cannot be read" : "larger than 64 KiB");
                return failed ? -EIO : -EFBIG;
            }
            json_error_t je;
            json_t *cfg = json_loadb(data, n, JSON_REJECT_DUPLICATES, &je);
            if (!json_is_object(cfg)) {
                *ret_error = cfg ? xasprintf("%s: must be a JSON object", config_path)
                                 : xasprintf("%s: invalid JSON at line %d, column %d: %s",
                                             config_path, je.line, je.column, je.text);
                json_decref(cfg);
                return -EINVAL;
            }
            json_t *server = json_object_get(cfg, "server");
            int r = 1;
            if (server && !json_is_string(server)) {
                *ret_error = xasprintf("%s: server: must be a string", config_path);
                r = -EINVAL;
            } else if (server) {
                r = check_address(json_string_value(server), config_path, ret, ret_error);
            }
            json_decref(cfg);
            if (r <= 0)
                return r;
        }
    }
    *ret = xstrdup(CLI_DEFAULT_SERVER);
    return 0;
}
