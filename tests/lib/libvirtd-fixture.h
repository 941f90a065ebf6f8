/* A real libvirtd for the tests and benchmarks that need one: the host's virtlogd and libvirtd
 * (qemu:///system), started only when they are not running and stopped at the end only if this
 * process started them, however it ends; and the pieces a caller with daemons of its own needs
 * (a daemon known by its pid file, whether a process is alive, stopping one by pid, waiting until
 * a URI answers, the host's prerequisites).
 *
 * Not a sandbox. The host's daemons are shared with whoever else uses them (another test, a
 * benchmark, a local cluster, another build directory's ctest run): a caller creates and removes
 * only what it named itself (its pool, network, domains), and the daemon it did not start may
 * go away under it. A caller that must stop or restart libvirtd runs one of its own
 * (tests/integration/test-agent-libvirtd.c: in a private mount namespace, with these pieces).
 *
 * Written for hosts without systemd (docs/agent.md, "Host facts"): the daemons are started with
 * `-d` and known by their pid files; PID 1 may never reap an orphan, so a daemon that exited can
 * stay a zombie for ever and kill(pid, 0) still succeeds on it. Here a zombie counts as gone, and
 * a pid file only names a daemon while /proc says the process is alive and has the daemon's name
 * (a stale pid file's number may belong to another process by now).
 *
 * It runs programs with system() (the daemons, virsh) and links no libvirt. Not thread-safe: call
 * it from the program's main thread. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "base/timeutil.h"

/* The URI of the host's libvirtd, the one libvirtd_fixture_up makes sure of. */
#define LIBVIRTD_FIXTURE_URI "qemu:///system"

/* How long a daemon may take from SIGTERM to exit before it gets SIGKILL: libvirtd 9.0 busy with
 * a qemu (or hanging in its shutdown) can ignore SIGTERM for seconds. */
#define LIBVIRTD_FIXTURE_STOP_GRACE (15 * USEC_PER_SEC)

/* ---- the host's daemons ---- */

/* Makes sure the host's virtlogd and then its libvirtd run: a daemon runs when its default pid
 * file (/run/virtlogd.pid, /run/libvirtd.pid) names a live process of that name; one that does
 * not is started with `<name> -d`, and its pid (once the pid file names it, within 10 s) is
 * remembered. The first call registers libvirtd_fixture_down with atexit, so what was started is
 * stopped however the program exits (a failed CHECK, a skip, exit()); a teardown of the caller's
 * that still needs libvirtd (removing its pool, network, domains) must be registered after this
 * call, so that it runs before (atexit runs the last registered first), and may end with
 * libvirtd_fixture_down itself. Returns 0 once both run, or -errno when one did not start
 * (libvirtd is not tried when virtlogd failed); what was started stays remembered. Waiting until
 * libvirtd answers is libvirtd_fixture_wait_answer's. */
int libvirtd_fixture_up(void);

/* Stops what libvirtd_fixture_up started, libvirtd first (it logs through virtlogd), each with
 * libvirtd_fixture_stop_pid, and forgets it; leaves alone a daemon it found running. Safe to call
 * any number of times, and when nothing was started. Only the process that called
 * libvirtd_fixture_up stops anything: a forked child that exits does not. */
void libvirtd_fixture_down(void);

/* Removes the storage pools a killed test or benchmark left in libvirt: those named
 * "stratus-kill-<pid>", "stratus-qemu-<pid>" or "stratus-bench-<pid>" (each run's own, removed by
 * its teardown, which a SIGKILL or a CTest timeout skips) whose process is gone. Their definitions
 * would otherwise stay, autostarted with every libvirtd. Returns how many it removed. */
int libvirtd_fixture_sweep_pools(const char *uri);

/* ---- pieces ---- */

/* Whether `virsh -c uri uri` succeeds now: a libvirtd serves uri. A socket file left by a daemon
 * that is gone proves nothing, so this asks. */
bool libvirtd_fixture_answers(const char *uri);
/* Polls libvirtd_fixture_answers every 100 ms until it holds (true) or timeout passed (false). */
bool libvirtd_fixture_wait_answer(const char *uri, usec_t timeout);

/* The number a pid file holds (first line, > 0), or 0 when there is none. Says nothing about the
 * process. */
pid_t libvirtd_fixture_pid_read(const char *pidfile);
/* Whether pid is a process that has not exited: false for a zombie (or a dead one) too, which
 * kill(pid, 0) would call alive. */
bool libvirtd_fixture_alive(pid_t pid);
/* The pid the pid file names when that process is alive and its name (/proc/<pid>/comm) is comm
 * (NULL: any name); else 0. */
pid_t libvirtd_fixture_daemon_pid(const char *pidfile, const char *comm);
/* Polls libvirtd_fixture_daemon_pid every 100 ms until it names a process, for at most timeout.
 * Returns 0 with the pid in *ret_pid, or -ETIMEDOUT. For a daemon started with `-d`, whose pid
 * file need not exist yet when the command returns. */
int libvirtd_fixture_wait_pid(const char *pidfile, const char *comm, usec_t timeout,
                              pid_t *ret_pid);
/* Stops a process started from here, by pid: SIGTERM; wait until it is gone (a zombie is gone)
 * for up to LIBVIRTD_FIXTURE_STOP_GRACE; SIGKILL; wait again, up to 5 s; reap it when it is a
 * child of this process (a daemon that forked away is not, unless this process is its subreaper,
 * which then reaps for itself). A pid <= 0, a process that is already gone, or one whose name is
 * not comm (non-NULL: the pid was reused) is left alone. Returns 0 when it is gone, -ETIMEDOUT
 * when it outlived SIGKILL (stuck in the kernel). */
int libvirtd_fixture_stop_pid(pid_t pid, const char *comm);

/* ---- the host's prerequisites ---- */

/* The first of a NULL-terminated list of programs (absolute paths) that is not executable, or
 * NULL when all are. Each caller lists what it uses: the reason it is skipped names the one. */
const char *libvirtd_fixture_missing(const char *const *programs);
/* Runs tools/libvirt-host-setup.sh of the source tree at source_dir: the folders and the
 * libvirt-qemu user and group that libvirtd without systemd needs (PLATFORM.md). Returns 0, or
 * -EIO when it failed. */
int libvirtd_fixture_host_setup(const char *source_dir);
