/* See tcp-proxy.h. Connections are pairs of sockets in one poll() loop; a pipe wakes the loop
 * when the proxy is frozen, thawed or stopped. */
#include "tcp-proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "check.h"

#define PROXY_PAIRS_MAX 64

struct tcp_proxy {
    pthread_t thread;
    int listen_fd, wake[2];
    struct sockaddr_in target;
    char address[32];
    atomic_bool frozen, stop;
    int pairs[PROXY_PAIRS_MAX][2]; /* [client, upstream]; -1 when free */
};

static void pair_close(int *pair)
{
    for (int i = 0; i < 2; i++)
        if (pair[i] >= 0)
            close(pair[i]);
    pair[0] = pair[1] = -1;
}

static void accept_one(tcp_proxy *p)
{
    int c = accept(p->listen_fd, NULL, NULL);
    if (c < 0)
        return;
    int u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (u < 0 || connect(u, (struct sockaddr *)&p->target, sizeof(p->target)) < 0) {
        close(c);
        if (u >= 0)
            close(u);
        return;
    }
    for (int i = 0; i < PROXY_PAIRS_MAX; i++)
        if (p->pairs[i][0] < 0) {
            p->pairs[i][0] = c;
            p->pairs[i][1] = u;
            return;
        }
    close(c);
    close(u);
}

/* Moves what is readable on one side to the other; false when the pair is over. */
static bool forward(int from, int to)
{
    char buf[65536];
    ssize_t n = read(from, buf, sizeof(buf));
    if (n <= 0)
        return false;
    for (ssize_t done = 0; done < n;) {
        /* MSG_NOSIGNAL: a peer gone meanwhile must end the pair, not the test (SIGPIPE). */
        ssize_t w = send(to, buf + done, (size_t)(n - done), MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        done += w;
    }
    return true;
}

static void *proxy_main(void *arg)
{
    tcp_proxy *p = arg;
    while (!atomic_load(&p->stop)) {
        struct pollfd fds[2 + 2 * PROXY_PAIRS_MAX];
        int where[2 * PROXY_PAIRS_MAX];
        nfds_t n = 0;
        fds[n++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
        if (!atomic_load(&p->frozen)) {
            fds[n++] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
            for (int i = 0; i < PROXY_PAIRS_MAX; i++)
                for (int s = 0; s < 2 && p->pairs[i][0] >= 0; s++) {
                    where[n - 2] = 2 * i + s;
                    fds[n++] = (struct pollfd){.fd = p->pairs[i][s], .events = POLLIN};
                }
        }
        if (poll(fds, n, -1) < 0 && errno != EINTR)
            break;
        if (fds[0].revents) {
            char drain[64];
            (void)!read(p->wake[0], drain, sizeof(drain));
            continue; /* frozen, thawed or stopping: poll again on the new state */
        }
        if (n > 1 && fds[1].revents)
            accept_one(p);
        for (nfds_t k = 2; k < n; k++) {
            if (!fds[k].revents)
                continue;
            int i = where[k - 2] / 2, s = where[k - 2] % 2;
            if (p->pairs[i][0] >= 0 && !forward(p->pairs[i][s], p->pairs[i][1 - s]))
                pair_close(p->pairs[i]);
        }
    }
    return NULL;
}

tcp_proxy *tcp_proxy_start(const char *target)
{
    tcp_proxy *p = xnew(tcp_proxy, 1);
    for (int i = 0; i < PROXY_PAIRS_MAX; i++)
        p->pairs[i][0] = p->pairs[i][1] = -1;
    char host[64];
    int port = 0;
    if (sscanf(target, "%63[^:]:%d", host, &port) != 2)
        check_fail(__FILE__, __LINE__, "tcp proxy: bad target %s", target);
    p->target = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &p->target.sin_addr) != 1)
        check_fail(__FILE__, __LINE__, "tcp proxy: %s is not an IPv4 address", host);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(p->listen_fd, 16) < 0 ||
        getsockname(p->listen_fd, (struct sockaddr *)&a, &len) < 0 || pipe2(p->wake, O_CLOEXEC) < 0)
        check_fail(__FILE__, __LINE__, "tcp proxy: %s", strerror(errno));
    snprintf(p->address, sizeof(p->address), "127.0.0.1:%d", ntohs(a.sin_port));
    if (pthread_create(&p->thread, NULL, proxy_main, p) != 0)
        check_fail(__FILE__, __LINE__, "tcp proxy: no thread");
    return p;
}

const char *tcp_proxy_address(const tcp_proxy *p)
{
    return p->address;
}

static void wake(tcp_proxy *p)
{
    (void)!write(p->wake[1], "x", 1);
}

void tcp_proxy_freeze(tcp_proxy *p, bool frozen)
{
    atomic_store(&p->frozen, frozen);
    wake(p);
}

void tcp_proxy_stop(tcp_proxy *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, true);
    wake(p);
    pthread_join(p->thread, NULL);
    for (int i = 0; i < PROXY_PAIRS_MAX; i++)
        pair_close(p->pairs[i]);
    close(p->listen_fd);
    close(p->wake[0]);
    close(p->wake[1]);
    free(p);
}
