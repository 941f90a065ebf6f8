/* The host's virtlogd and libvirtd for tests and benchmarks, and the pieces to run daemons of
 * one's own: see libvirtd-fixture.h. */
#include "libvirtd-fixture.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/macro.h"

#define POLL       (100 * USEC_PER_MSEC)
#define START_WAIT (10 * USEC_PER_SEC)
#define KILL_WAIT  (5 * USEC_PER_SEC)

/* In start order; stopped in reverse. */
static struct host_daemon {
    const char *name; /* the program, and its process's name */
    const char *pidfile;
    pid_t started; /* the one this process started, or 0 */
} host_daemons[] = {
    {"virtlogd", "/run/virtlogd.pid", 0},
    {"libvirtd", "/run/libvirtd.pid", 0},
};

static pid_t registered_by; /* the process whose atexit stops them */

/* ---- pieces ---- */

bool libvirtd_fixture_answers(const char *uri)
{
    if (strchr(uri, '\''))
        return false; /* it goes between single quotes below */
    _cleanup_free_ char *cmd = xasprintf("virsh -q -c '%s' uri >/dev/null 2>&1", uri);
    return system(cmd) == 0;
}

bool libvirtd_fixture_wait_answer(const char *uri, usec_t timeout)
{
    usec_t deadline = now_monotonic() + timeout;
    for (;;) {
        if (libvirtd_fixture_answers(uri))
            return true;
        if (now_monotonic() >= deadline)
            return false;
        usleep(POLL);
    }
}

pid_t libvirtd_fixture_pid_read(const char *pidfile)
{
    FILE *f = fopen(pidfile, "re");
    int pid = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid > 0 ? (pid_t)pid : 0;
}

/* The first line of /proc/<pid>/<what>, without its newline: false when there is none. */
static bool proc_line(pid_t pid, const char *what, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool got = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    if (got)
        buf[strcspn(buf, "\n")] = '\0';
    return got;
}

bool libvirtd_fixture_alive(pid_t pid)
{
    char stat[1024];
    if (pid <= 0 || !proc_line(pid, "stat", stat, sizeof(stat)))
        return false;
    /* "pid (comm) S ...": comm may hold anything, the state follows its last ')' */
    const char *p = strrchr(stat, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* Whether /proc/<pid>/comm is name (the kernel keeps 15 characters of it). */
static bool comm_is(pid_t pid, const char *name)
{
    char comm[32];
    size_t n = strlen(name) < 15 ? strlen(name) : 15;
    return proc_line(pid, "comm", comm, sizeof(comm)) && strlen(comm) == n &&
           strncmp(comm, name, n) == 0;
}

pid_t libvirtd_fixture_daemon_pid(const char *pidfile, const char *comm)
{
    pid_t pid = libvirtd_fixture_pid_read(pidfile);
    return libvirtd_fixture_alive(pid) && (!comm || comm_is(pid, comm)) ? pid : 0;
}

int libvirtd_fixture_wait_pid(const char *pidfile, const char *comm, usec_t timeout, pid_t *ret_pid)
{
    usec_t deadline = now_monotonic() + timeout;
    for (;;) {
        pid_t pid = libvirtd_fixture_daemon_pid(pidfile, comm);
        if (pid) {
            *ret_pid = pid;
            return 0;
        }
        if (now_monotonic() >= deadline)
            return -ETIMEDOUT;
        usleep(POLL);
    }
}

static bool wait_gone(pid_t pid, usec_t timeout)
{
    usec_t deadline = now_monotonic() + timeout;
    while (libvirtd_fixture_alive(pid)) {
        if (now_monotonic() >= deadline)
            return false;
        usleep(POLL);
    }
    return true;
}

/* A zombie child of ours goes for good; for any other pid this fails with ECHILD, harmlessly. */
static void reap(pid_t pid)
{
    while (waitpid(pid, NULL, WNOHANG) < 0 && errno == EINTR)
        ;
}

int libvirtd_fixture_stop_pid(pid_t pid, const char *comm)
{
    if (pid <= 0)
        return 0;
    if (!libvirtd_fixture_alive(pid)) {
        reap(pid);
        return 0;
    }
    if (comm && !comm_is(pid, comm))
        return 0; /* not the process that was started: its pid is someone else's now */
    if (kill(pid, SIGTERM) < 0)
        return 0; /* ESRCH: gone meanwhile */
    bool gone = wait_gone(pid, LIBVIRTD_FIXTURE_STOP_GRACE);
    if (!gone) {
        kill(pid, SIGKILL);
        gone = wait_gone(pid, KILL_WAIT);
    }
    reap(pid);
    return gone ? 0 : -ETIMEDOUT;
}

/* ---- the host's daemons ---- */

static void at_exit(void)
{
    libvirtd_fixture_down();
}

int libvirtd_fixture_up(void)
{
    if (!registered_by) {
        registered_by = getpid();
        atexit(at_exit);
    }
    for (size_t i = 0; i < ELEMENTSOF(host_daemons); i++) {
        struct host_daemon *d = &host_daemons[i];
        if (libvirtd_fixture_daemon_pid(d->pidfile, d->name))
            continue; /* the host's (or ours, from an earlier call) */
        _cleanup_free_ char *cmd = xasprintf("%s -d", d->name);
        if (system(cmd) != 0)
            return -EIO;
        pid_t pid;
        int r = libvirtd_fixture_wait_pid(d->pidfile, d->name, START_WAIT, &pid);
        if (r < 0)
            return r;
        d->started = pid;
    }
    return 0;
}

void libvirtd_fixture_down(void)
{
    if (!registered_by || getpid() != registered_by)
        return;
    for (size_t i = ELEMENTSOF(host_daemons); i-- > 0;) {
        struct host_daemon *d = &host_daemons[i];
        libvirtd_fixture_stop_pid(d->started, d->name);
        d->started = 0;
    }
}

/* ---- the host's prerequisites ---- */

const char *libvirtd_fixture_missing(const char *const *programs)
{
    for (size_t i = 0; programs[i]; i++)
        if (access(programs[i], X_OK) < 0)
            return programs[i];
    return NULL;
}

int libvirtd_fixture_host_setup(const char *source_dir)
{
    _cleanup_free_ char *cmd = xasprintf("sh '%s/tools/libvirt-host-setup.sh'", source_dir);
    return system(cmd) == 0 ? 0 : -EIO;
}

int libvirtd_fixture_sweep_pools(const char *uri)
{
    _cleanup_free_ char *list =
        xasprintf("virsh -q -c '%s' pool-list --all --name 2>/dev/null", uri);
    FILE *p = popen(list, "r");
    if (!p)
        return 0;
    static const char *const prefixes[] = {"stratus-kill-", "stratus-qemu-", "stratus-bench-"};
    char line[256];
    int removed = 0;
    while (fgets(line, sizeof(line), p)) {
        line[strcspn(line, " \t\r\n")] = 0; /* virsh pads the names */
        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++) {
            size_t n = strlen(prefixes[i]);
            char *end;
            if (strncmp(line, prefixes[i], n) != 0)
                continue;
            long pid = strtol(line + n, &end, 10);
            if (*end || pid <= 0 || libvirtd_fixture_alive((pid_t)pid))
                break; /* another's pattern, or its owner runs */
            _cleanup_free_ char *cmd =
                xasprintf("virsh -q -c '%s' pool-destroy '%s' >/dev/null 2>&1; "
                          "virsh -q -c '%s' pool-undefine '%s' >/dev/null 2>&1",
                          uri, line, uri, line);
            if (system(cmd) == 0)
                removed++;
            break;
        }
    }
    pclose(p);
    return removed;
}
