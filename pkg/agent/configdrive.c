/* The NoCloud config drive; see configdrive.h. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/configdrive.h"
#include "agent/files.h"
#include "api/object.h"
#include "base/alloc.h"

extern char **environ;

static char *dump(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    if (!s)
        alloc_oom(0);
    char *out = xasprintf("%s\n", s);
    free(s);
    return out;
}

char *configdrive_meta_data(const agent_plan *p, const json_t *instance)
{
    json_t *md = json_object();
    json_object_set_new(md, "instance-id", json_string(p->uid));
    json_object_set_new(md, "local-hostname", json_string(p->hostname));
    json_t *keys = api_json_lookup(instance, "spec.sshKeys");
    if (json_array_size(keys) > 0)
        json_object_set_new(md, "public-keys", json_deep_copy(keys));
    json_t *meta = api_json_lookup(instance, "spec.metadata");
    if (json_object_size(meta) > 0)
        json_object_set_new(md, "meta", json_deep_copy(meta));
    return dump(md);
}

char *configdrive_network_config(const agent_plan *p)
{
    json_t *eths = json_object();
    for (size_t i = 0; i < p->n_nics; i++) {
        const plan_nic *n = &p->nics[i];
        json_t *e = json_object();
        char name[32], addr[64];
        snprintf(name, sizeof(name), "eth%zu", i);
        snprintf(addr, sizeof(addr), "%s/%d", n->ip, n->prefix);
        json_object_set_new(e, "match", json_pack("{s:s}", "macaddress", n->mac));
        json_object_set_new(e, "set-name", json_string(name));
        json_object_set_new(e, "addresses", json_pack("[s]", addr));
        if (i == 0)
            json_object_set_new(e, "gateway4", json_string(n->gateway));
        if (n->mtu > 0)
            json_object_set_new(e, "mtu", json_integer(n->mtu));
        if (json_array_size(n->dns) > 0)
            json_object_set_new(e, "nameservers", json_pack("{s:O}", "addresses", n->dns));
        json_object_set_new(eths, name, e);
    }
    return dump(json_pack("{s:i,s:o}", "version", 2, "ethernets", eths));
}

char *configdrive_user_data(const json_t *instance)
{
    const char *ud = json_string_value(api_json_lookup(instance, "spec.userData"));
    return xstrdup(ud ? ud : "#cloud-config\n{}\n");
}

static const char *tool;

static void find_tool(void)
{
    static const char *const names[] = {"genisoimage", "xorrisofs", "mkisofs"};
    const char *path = getenv("PATH");
    _cleanup_free_ char *copy = xstrdup(path && *path ? path : "/usr/bin:/bin");
    for (size_t i = 0; i < ELEMENTSOF(names) && !tool; i++) {
        char *save = NULL;
        _cleanup_free_ char *dirs = xstrdup(copy);
        for (char *d = strtok_r(dirs, ":", &save); d && !tool; d = strtok_r(NULL, ":", &save)) {
            char *cand = xasprintf("%s/%s", d, names[i]);
            if (access(cand, X_OK) == 0)
                tool = cand;
            else
                free(cand);
        }
    }
}

const char *configdrive_iso_tool(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, find_tool);
    return tool;
}

static int run(const char *const argv[], char *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int r = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0) {
        snprintf(err, CONFIGDRIVE_ERROR_MAX, "cannot run %s: %s", argv[0], strerror(r));
        return -r;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(err, CONFIGDRIVE_ERROR_MAX, "%s failed (status %d)", argv[0], status);
        return -EIO;
    }
    return 0;
}

int configdrive_write(const agent_plan *p, const json_t *instance, const char *iso_path, char *err)
{
    err[0] = 0;
    _cleanup_free_ char *dir = xasprintf("%s/config", p->files_dir);
    int r = fs_mkdir_p(dir, 0700);
    if (r < 0) {
        snprintf(err, CONFIGDRIVE_ERROR_MAX, "cannot create %s: %s", dir, strerror(-r));
        return r;
    }
    struct {
        const char *name;
        char *text;
    } files[] = {
        {"meta-data", configdrive_meta_data(p, instance)},
        {"user-data", configdrive_user_data(instance)},
        {"network-config", configdrive_network_config(p)},
    };
    for (size_t i = 0; i < ELEMENTSOF(files); i++) {
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, files[i].name);
        if (r == 0) {
            r = fs_write_file(path, files[i].text, strlen(files[i].text));
            if (r < 0)
                snprintf(err, CONFIGDRIVE_ERROR_MAX, "cannot write %s: %s", path, strerror(-r));
        }
        free(files[i].text);
    }
    if (r < 0)
        return r;
    const char *t = configdrive_iso_tool();
    if (!t)
        return 0;
    _cleanup_free_ char *tmp = xasprintf("%s.tmp", iso_path);
    const char *argv[] = {t, "-quiet", "-o", tmp, "-V", "cidata", "-J", "-r", dir, NULL};
    r = run(argv, err);
    if (r == 0 && rename(tmp, iso_path) < 0) {
        r = -errno;
        snprintf(err, CONFIGDRIVE_ERROR_MAX, "cannot rename into %s: %s", iso_path,
                 strerror(errno));
    }
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    return 1;
}
