/* A TCP forwarder for tests that need a network that stops answering: it listens on a free
 * loopback port and forwards every connection to `target` ("host:port"). Frozen, it stops moving
 * bytes both ways and accepts nothing new, but closes nothing: clients see a peer that went
 * silent (their requests time out), not one that went away (refused, reset). One thread. */
#pragma once

#include <stdbool.h>

typedef struct tcp_proxy tcp_proxy;

/* Aborts the test if it cannot listen. */
tcp_proxy *tcp_proxy_start(const char *target);
/* "127.0.0.1:<port>" to connect to instead of the target. */
const char *tcp_proxy_address(const tcp_proxy *p);
void tcp_proxy_freeze(tcp_proxy *p, bool frozen);
/* Stops the thread and closes every connection. Accepts NULL. */
void tcp_proxy_stop(tcp_proxy *p);
