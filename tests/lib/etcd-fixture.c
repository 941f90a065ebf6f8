/* Throwaway etcd member for integration tests. */
#include "etcd-fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/timeutil.h"

struct etcd_fixture {
    pid_t pid;
    int client_port, peer_port;
    char *dir;
    char endpoint[64];
};

#define FIXTURES_MAX 8
static etcd_fixture *fixtures[FIXTURES_MAX];

int test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        perror("test_free_port");
        abort();
    }
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_answers(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static void fixture_spawn(etcd_fixture *f)
{
    char client[64], peer[64], cluster[96], log_path[512];
    snprintf(client, sizeof(client), "http://127.0.0.1:%d", f->client_port);
    snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", f->peer_port);
    snprintf(cluster, sizeof(cluster), "default=%s", peer);
    snprintf(log_path, sizeof(log_path), "%s/etcd.log", f->dir);
    char data[512];
    snprintf(data, sizeof(data), "%s/data", f->dir);

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        abort();
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execlp("etcd", "etcd", "--name", "default", "--data-dir", data, "--listen-client-urls",
               client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
               "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster,
               "--log-level", "warn", (char *)NULL);
        perror("exec etcd");
        _exit(127);
    }
    f->pid = pid;

    usec_t deadline = now_monotonic() + 20 * USEC_PER_SEC;
    while (now_monotonic() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "etcd exited during start-up; see %s\n", log_path);
            abort();
        }
        if (port_answers(f->client_port))
            return;
        usleep(20000);
    }
    fprintf(stderr, "etcd did not answer on port %d within 20 s\n", f->client_port);
    abort();
}

static void fixtures_stop_all(void)
{
    for (int i = 0; i < FIXTURES_MAX; i++)
        if (fixtures[i])
            etcd_fixture_stop(fixtures[i]);
}

etcd_fixture *etcd_fixture_start(void)
{
    static bool registered;
    if (!registered) {
        atexit(fixtures_stop_all);
        registered = true;
    }
    etcd_fixture *f = xnew(etcd_fixture, 1);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    f->dir = xasprintf("%s/stratus-etcd-XXXXXX", tmp);
    if (!mkdtemp(f->dir)) {
        perror("mkdtemp");
        abort();
    }
    f->client_port = test_free_port();
    do
        f->peer_port = test_free_port();
    while (f->peer_port == f->client_port);
    snprintf(f->endpoint, sizeof(f->endpoint), "http://127.0.0.1:%d", f->client_port);
    for (int i = 0; i < FIXTURES_MAX; i++)
        if (!fixtures[i]) {
            fixtures[i] = f;
            break;
        }
    fixture_spawn(f);
    return f;
}

const char *etcd_fixture_endpoint(const etcd_fixture *f)
{
    return f->endpoint;
}

void etcd_fixture_pause(etcd_fixture *f)
{
    if (f->pid <= 0)
        return;
    kill(f->pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(f->pid, NULL, WNOHANG) == f->pid) {
            f->pid = 0;
            return;
        }
        usleep(10000);
    }
    kill(f->pid, SIGKILL);
    waitpid(f->pid, NULL, 0);
    f->pid = 0;
}

void etcd_fixture_resume(etcd_fixture *f)
{
    if (f->pid <= 0)
        fixture_spawn(f);
}

void etcd_fixture_stop(etcd_fixture *f)
{
    if (!f)
        return;
    etcd_fixture_pause(f);
    for (int i = 0; i < FIXTURES_MAX; i++)
        if (fixtures[i] == f)
            fixtures[i] = NULL;
    if (f->dir && !getenv("STRATUS_TEST_KEEP")) {
        char *cmd = xasprintf("rm -rf '%s'", f->dir);
        (void)!system(cmd);
        free(cmd);
    }
    free(f->dir);
    free(f);
}
