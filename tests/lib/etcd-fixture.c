/* Throwaway etcd member for integration tests. */
#include "etcd-fixture.h"

#include <arpa/inet.h>
#include <dirent.h>
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
#include "base/macro.h"
#include "base/timeutil.h"

struct etcd_fixture {
    pid_t pid;
    bool killed; /* the member was sent a signal on purpose (etcd_fixture_kill) */
    int client_port, peer_port;
    char *dir;
    bool tls;
    char endpoint[64];
    char ca[512], client_cert[512], client_key[512], server_cert[512], server_key[512];
};

#define FIXTURES_MAX 8
static etcd_fixture *fixtures[FIXTURES_MAX];

/* Binds a loopback socket to port (0: any); returns the port bound, or -1. */
static int bind_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int r = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
                    getsockname(fd, (struct sockaddr *)&a, &len) == 0
                ? ntohs(a.sin_port)
                : -1;
    if (fd >= 0)
        close(fd);
    return r;
}

/* A free port below the kernel's ephemeral range, where ports bound to 0 (gRPC servers of other
 * tests) and outgoing connections never land: a fixture's port stays free for it while its etcd
 * is stopped for a restart. Picked at random, so fixtures of tests run side by side seldom meet. */
int test_free_port(void)
{
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() ^ (unsigned)now_monotonic();
    int lo = 10000, hi = 32768; /* Linux's default ephemeral range starts at 32768 */
    FILE *fp = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (fp) {
        int first, last;
        if (fscanf(fp, "%d %d", &first, &last) == 2)
            hi = first > lo + 1000 ? first : lo; /* no room below it: any free port */
        fclose(fp);
    }
    for (int tries = 0; hi > lo && tries < 200; tries++) {
        int port = bind_port(lo + (int)(rand_r(&seed) % (unsigned)(hi - lo)));
        if (port > 0)
            return port;
    }
    int port = bind_port(0);
    if (port < 0) {
        perror("test_free_port");
        abort();
    }
    return port;
}

/* The inodes of the IPv4 sockets listening on port, from /proc/net/tcp: up to max, how many. */
static size_t listen_inodes(int port, unsigned long *inodes, size_t max)
{
    FILE *fp = fopen("/proc/net/tcp", "r");
    if (!fp)
        return 0;
    char line[512];
    size_t n = 0;
    while (fgets(line, sizeof(line), fp) && n < max) {
        unsigned lport, state;
        unsigned long inode;
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
        if (sscanf(line, " %*d: %*x:%x %*x:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &lport, &state,
                   &inode) == 3 &&
            (int)lport == port && state == 0x0A /* LISTEN */)
            inodes[n++] = inode;
    }
    fclose(fp);
    return n;
}

/* Whether process pid holds one of the sockets inodes[0..n). */
static bool pid_holds_socket(pid_t pid, const unsigned long *inodes, size_t n)
{
    if (n == 0)
        return false;
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%ld/fd", (long)pid);
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        char path[320], target[64];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        ssize_t len = readlink(path, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = 0;
        for (size_t i = 0; i < n && !found; i++) {
            char want[40];
            snprintf(want, sizeof(want), "socket:[%lu]", inodes[i]);
            found = strcmp(target, want) == 0;
        }
    }
    closedir(d);
    return found;
}

/* Whether process pid has a TCP socket listening on port (IPv4). A free port can be taken by
 * another listener between the moment it was picked (or an etcd was stopped for a restart) and
 * the moment our etcd binds it: that etcd then exits, and a connect would reach the other
 * listener — another test's etcd, which stops later and takes every following case with it.
 * Only the owner of the socket counts. */
static bool pid_listens_on(pid_t pid, int port)
{
    unsigned long inodes[8];
    return pid_holds_socket(pid, inodes, listen_inodes(port, inodes, ELEMENTSOF(inodes)));
}

static bool port_answers(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static void fixture_spawn(etcd_fixture *f)
{
    char client[64], peer[64], cluster[96], log_path[512];
    snprintf(client, sizeof(client), "%s://127.0.0.1:%d", f->tls ? "https" : "http",
             f->client_port);
    snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", f->peer_port);
    snprintf(cluster, sizeof(cluster), "default=%s", peer);
    snprintf(log_path, sizeof(log_path), "%s/etcd.log", f->dir);
    char data[512];
    snprintf(data, sizeof(data), "%s/data", f->dir);

    const char *flags[][2] = {
        {"--name", "default"},
        {"--data-dir", data},
        {"--listen-client-urls", client},
        {"--advertise-client-urls", client},
        {"--listen-peer-urls", peer},
        {"--initial-advertise-peer-urls", peer},
        {"--initial-cluster", cluster},
        {"--log-level", "warn"},
        /* the TLS member's */
        {"--cert-file", f->server_cert},
        {"--key-file", f->server_key},
        {"--trusted-ca-file", f->ca},
    };
    const char *argv[48] = {"etcd"};
    size_t n = 1;
    size_t n_flags = f->tls ? ELEMENTSOF(flags) : 8;
    for (size_t i = 0; i < n_flags; i++) {
        argv[n++] = flags[i][0];
        argv[n++] = flags[i][1];
    }
    if (f->tls)
        argv[n++] = "--client-cert-auth";
    /* More flags for etcd, for looking into it (--enable-pprof) or trying its settings. Made
     * before fork: the child of a process with threads should only exec. */
    char *extra =
        getenv("STRATUS_TEST_ETCD_FLAGS") ? strdup(getenv("STRATUS_TEST_ETCD_FLAGS")) : NULL;
    for (char *save = NULL, *t = extra ? strtok_r(extra, " ", &save) : NULL;
         t && n < ELEMENTSOF(argv) - 1; t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    argv[n] = NULL;
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
        execvp("etcd", (char *const *)argv);
        perror("exec etcd");
        _exit(127);
    }
    free(extra);
    f->pid = pid;
    f->killed = false;

    usec_t deadline = now_monotonic() + 20 * USEC_PER_SEC;
    while (now_monotonic() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "etcd exited during start-up (port %d or %d taken?); see %s\n",
                    f->client_port, f->peer_port, log_path);
            abort();
        }
        if (pid_listens_on(pid, f->client_port) && port_answers(f->client_port))
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

static etcd_fixture *fixture_start(bool tls);

etcd_fixture *etcd_fixture_start(void)
{
    return fixture_start(false);
}

/* Makes a CA and a server and a client certificate signed by it, with the openssl command. */
static void fixture_make_certs(etcd_fixture *f)
{
    snprintf(f->ca, sizeof(f->ca), "%s/ca.pem", f->dir);
    snprintf(f->server_cert, sizeof(f->server_cert), "%s/server.pem", f->dir);
    snprintf(f->server_key, sizeof(f->server_key), "%s/server-key.pem", f->dir);
    snprintf(f->client_cert, sizeof(f->client_cert), "%s/client.pem", f->dir);
    snprintf(f->client_key, sizeof(f->client_key), "%s/client-key.pem", f->dir);
    char *cmd =
        xasprintf("set -e; cd '%s';"
                  "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 1"
                  " -subj /CN=stratus-test-ca 2>/dev/null;"
                  "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext;"
                  "openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr"
                  " -subj /CN=127.0.0.1 2>/dev/null;"
                  "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial"
                  " -out server.pem -days 1 -extfile san.ext 2>/dev/null;"
                  "openssl req -newkey rsa:2048 -nodes -keyout client-key.pem -out client.csr"
                  " -subj /CN=stratus-apiserver 2>/dev/null;"
                  "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial"
                  " -out client.pem -days 1 2>/dev/null",
                  f->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not make test certificates with openssl\n");
        abort();
    }
    free(cmd);
}

etcd_fixture *etcd_fixture_start_tls(void)
{
    return fixture_start(true);
}

const char *etcd_fixture_ca(const etcd_fixture *f)
{
    return f->ca;
}

const char *etcd_fixture_client_cert(const etcd_fixture *f)
{
    return f->client_cert;
}

const char *etcd_fixture_client_key(const etcd_fixture *f)
{
    return f->client_key;
}

/* A test killed by a signal (SIGKILL, a CTest timeout) cannot run its atexit handler, and its
 * etcd dies with it (PDEATHSIG), but its folder stays. Each folder names its owner in `owner`;
 * those whose owner is gone are removed when the next fixture starts. */
static void sweep_orphans(const char *tmp)
{
    DIR *d = opendir(tmp);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "stratus-etcd-", 13) != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s/owner", tmp, de->d_name);
        FILE *fp = fopen(path, "r");
        long pid = 0;
        bool read = fp && fscanf(fp, "%ld", &pid) == 1;
        if (fp)
            fclose(fp);
        if (!read || pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
            continue; /* an older fixture's, or its owner lives */
        char *cmd = xasprintf("rm -rf '%s/%s'", tmp, de->d_name);
        (void)!system(cmd);
        free(cmd);
    }
    closedir(d);
}

static etcd_fixture *fixture_start(bool tls)
{
    static bool registered;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (!registered) {
        atexit(fixtures_stop_all);
        registered = true;
        if (!getenv("STRATUS_TEST_KEEP"))
            sweep_orphans(tmp);
    }
    etcd_fixture *f = xnew(etcd_fixture, 1);
    f->dir = xasprintf("%s/stratus-etcd-XXXXXX", tmp);
    if (!mkdtemp(f->dir)) {
        perror("mkdtemp");
        abort();
    }
    char *owner = xasprintf("%s/owner", f->dir);
    FILE *fp = fopen(owner, "w");
    if (fp) {
        fprintf(fp, "%ld\n", (long)getpid());
        fclose(fp);
    }
    free(owner);
    f->client_port = test_free_port();
    do
        f->peer_port = test_free_port();
    while (f->peer_port == f->client_port);
    f->tls = tls;
    snprintf(f->endpoint, sizeof(f->endpoint), "%s://127.0.0.1:%d", tls ? "https" : "http",
             f->client_port);
    if (tls)
        fixture_make_certs(f);
    for (int i = 0; i < FIXTURES_MAX; i++)
        if (!fixtures[i]) {
            fixtures[i] = f;
            break;
        }
    fixture_spawn(f);
    return f;
}

int etcd_fixture_pid(const etcd_fixture *f)
{
    return (int)f->pid;
}

const char *etcd_fixture_endpoint(const etcd_fixture *f)
{
    return f->endpoint;
}

/* Says on stderr that the member ended before it was asked to, how, and the end of its log: a
 * member gone in the middle of a test otherwise shows only as every later request failing. */
static void report_early_end(const etcd_fixture *f, int status)
{
    if (WIFSIGNALED(status))
        fprintf(stderr, "etcd fixture: etcd (pid %ld) had already ended, by signal %d\n",
                (long)f->pid, WTERMSIG(status));
    else
        fprintf(stderr, "etcd fixture: etcd (pid %ld) had already exited with status %d\n",
                (long)f->pid, WEXITSTATUS(status));
    char *cmd = xasprintf("tail -n 15 '%s/etcd.log' >&2", f->dir);
    (void)!system(cmd);
    free(cmd);
}

/* The pids holding a socket listening on port: writes up to max of them into pids. */
static size_t port_listeners(int port, pid_t *pids, size_t max)
{
    unsigned long inodes[8];
    size_t n_inodes = listen_inodes(port, inodes, ELEMENTSOF(inodes)), n = 0;
    DIR *d = n_inodes ? opendir("/proc") : NULL;
    struct dirent *de;
    while (d && n < max && (de = readdir(d))) {
        pid_t pid = (pid_t)atol(de->d_name);
        if (pid > 0 && pid_holds_socket(pid, inodes, n_inodes))
            pids[n++] = pid;
    }
    if (d)
        closedir(d);
    return n;
}

void etcd_fixture_describe(const etcd_fixture *f)
{
    char path[64], state[64] = "gone";
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)f->pid);
    FILE *fp = f->pid > 0 ? fopen(path, "r") : NULL;
    char line[128];
    while (fp && fgets(line, sizeof(line), fp))
        if (strncmp(line, "State:", 6) == 0) {
            snprintf(state, sizeof(state), "%s", line + 6 + strspn(line + 6, " \t"));
            state[strcspn(state, "\n")] = 0;
        }
    if (fp)
        fclose(fp);
    pid_t holders[4];
    size_t n = port_listeners(f->client_port, holders, ELEMENTSOF(holders));
    fprintf(stderr, "etcd fixture: member pid %ld is %s; client port %d listened on by",
            (long)f->pid, state, f->client_port);
    for (size_t i = 0; i < n; i++) {
        char comm[64] = "?";
        snprintf(path, sizeof(path), "/proc/%ld/comm", (long)holders[i]);
        FILE *c = fopen(path, "r");
        if (c && fgets(comm, sizeof(comm), c))
            comm[strcspn(comm, "\n")] = 0;
        if (c)
            fclose(c);
        fprintf(stderr, " %ld (%s)", (long)holders[i], comm);
    }
    fprintf(stderr, "%s; the end of its log:\n", n ? "" : " nobody");
    char *cmd = xasprintf("tail -n 15 '%s/etcd.log' >&2", f->dir);
    (void)!system(cmd);
    free(cmd);
}

void etcd_fixture_pause(etcd_fixture *f)
{
    if (f->pid <= 0)
        return;
    int status;
    if (waitpid(f->pid, &status, WNOHANG) == f->pid) {
        if (!f->killed)
            report_early_end(f, status);
        f->pid = 0;
        return;
    }
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

void etcd_fixture_kill(etcd_fixture *f, int sig)
{
    if (f->pid <= 0)
        return;
    f->killed = true;
    kill(f->pid, sig);
}

void etcd_fixture_resume(etcd_fixture *f)
{
    int status;
    /* A member killed on purpose is ending: wait for it rather than take it for running. */
    if (f->pid > 0 && waitpid(f->pid, &status, f->killed ? 0 : WNOHANG) == f->pid) {
        if (!f->killed)
            report_early_end(f, status);
        f->pid = 0;
    }
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
