/* The process pieces of tests/lib/libvirtd-fixture.h on processes of the test's own (no root, no
 * libvirtd): a pid file names a daemon only while it is alive and has the daemon's name, a zombie
 * counts as gone, and a stop by pid reaps a child and leaves a process of another name alone. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "libvirtd-fixture.h"

/* A child named `name` (its comm) that waits for a signal; its pid also goes into pidfile. */
static pid_t fake_daemon(const char *name, const char *pidfile)
{
    pid_t pid = fork();
    if (pid < 0)
        abort();
    if (pid == 0) {
        prctl(PR_SET_NAME, name);
        for (;;)
            pause();
    }
    FILE *f = fopen(pidfile, "we");
    if (!f)
        abort();
    fprintf(f, "%d\n", (int)pid);
    fclose(f);
    return pid;
}

static char *pidfile_path(char buf[static 64])
{
    snprintf(buf, 64, "/tmp/test-libvirtd-fixture-%d.pid", (int)getpid());
    return buf;
}

static void pid_file_names_a_live_daemon_of_its_name(void)
{
    char buf[64];
    const char *pidfile = pidfile_path(buf);
    unlink(pidfile);
    CHECK_INT(libvirtd_fixture_pid_read(pidfile), ==, 0);
    pid_t got = -1;
    CHECK_INT(libvirtd_fixture_wait_pid(pidfile, "fakedaemon", 200 * USEC_PER_MSEC, &got), ==,
              -ETIMEDOUT);
    CHECK_INT(got, ==, -1);

    pid_t pid = fake_daemon("fakedaemon", pidfile);
    CHECK_INT(libvirtd_fixture_pid_read(pidfile), ==, pid);
    /* The child names itself just after the fork: wait_pid waits for that. */
    CHECK_OK(libvirtd_fixture_wait_pid(pidfile, "fakedaemon", 5 * USEC_PER_SEC, &got));
    CHECK_INT(got, ==, pid);
    CHECK(libvirtd_fixture_alive(pid));
    CHECK_INT(libvirtd_fixture_daemon_pid(pidfile, NULL), ==, pid);
    /* A stale pid file whose number is another program's now. */
    CHECK_INT(libvirtd_fixture_daemon_pid(pidfile, "libvirtd"), ==, 0);

    /* Not the process that was started: left alone. */
    CHECK_OK(libvirtd_fixture_stop_pid(pid, "libvirtd"));
    CHECK(libvirtd_fixture_alive(pid));

    /* SIGTERM ends it; it is reaped, so the pid is free again. */
    CHECK_OK(libvirtd_fixture_stop_pid(pid, "fakedaemon"));
    CHECK(!libvirtd_fixture_alive(pid));
    CHECK_INT(waitpid(pid, NULL, WNOHANG), ==, -1);
    CHECK_INT(libvirtd_fixture_daemon_pid(pidfile, "fakedaemon"), ==, 0);
    unlink(pidfile);
}

static void zombie_is_gone(void)
{
    pid_t pid = fork();
    if (pid < 0)
        abort();
    if (pid == 0)
        _exit(0);
    for (int i = 0; i < 100 && libvirtd_fixture_alive(pid); i++)
        usleep(10000);
    /* A zombie: kill(pid, 0) still succeeds, "alive" says no. */
    CHECK(!libvirtd_fixture_alive(pid));
    CHECK_INT(kill(pid, 0), ==, 0);
    /* Stopping it only reaps it. */
    CHECK_OK(libvirtd_fixture_stop_pid(pid, "libvirtd"));
    CHECK_INT(kill(pid, 0), ==, -1);
    CHECK_INT(errno, ==, ESRCH);
}

static void missing_names_the_first_absent_program(void)
{
    static const char *const all[] = {"/bin/sh", NULL};
    static const char *const some[] = {"/bin/sh", "/nonexistent/libvirtd", "/nonexistent/qemu",
                                       NULL};
    CHECK(libvirtd_fixture_missing(all) == NULL);
    CHECK_STR(libvirtd_fixture_missing(some), "/nonexistent/libvirtd");
    /* Nothing is run for a URI that would not survive the quoting. */
    CHECK(!libvirtd_fixture_answers("qemu:///system?socket='"));
}

CHECK_MAIN(CASE(pid_file_names_a_live_daemon_of_its_name), CASE(zombie_is_gone),
           CASE(missing_names_the_first_absent_program))
