/* pkg/apiserver: the Stratus API server — the only program that talks to etcd. It serves the
 * gRPC service stratus.v1.Stratus (api/stratus/v1/stratus.proto) over objects stored as JSON
 * under /stratus/v1/, keeps the allocation and IP ledgers, and fans one etcd watch out to many
 * watchers. docs/apiserver.md describes the design; cmd/apiserver is the program around it. */
#pragma once

#include <stddef.h>

#include "base/macro.h"
#include "base/timeutil.h"
#include "store/store.h"

typedef struct apiserver apiserver;

typedef struct apiserver_options {
    const char *listen; /* "127.0.0.1:7443"; port 0 picks a free one (apiserver_port) */
    store_options etcd; /* endpoints, timeouts, TLS */
    size_t workers;     /* unary request threads; 0 → 8 */
    size_t queue_max; /* unary calls waiting for a worker; more get RESOURCE_EXHAUSTED; 0 → 10000 */
    size_t watch_cache;       /* events kept for watchers to resume from; 0 → 20000 */
    size_t watchers_max;      /* open watches; 0 → 10000 */
    usec_t bookmark_interval; /* 0 → 5 s */
    usec_t compact_interval;  /* history older than this is compacted; 0 → 5 min */
    size_t max_request;       /* bytes of one request; 0 → 4 MiB */
    size_t recent_bytes;      /* recent values kept to start writes from; 0 → 16 MiB */
} apiserver_options;

/* Starts serving: connects the watch cache to etcd (returns -EHOSTDOWN if etcd cannot be reached)
 * and listens. Call with SIGINT/SIGTERM blocked (gRPC threads inherit the mask). */
int apiserver_new(const apiserver_options *opts, apiserver **ret);
int apiserver_port(const apiserver *s);
/* Stops accepting calls, ends open calls after `grace`, stops the threads, frees. NULL ok. */
apiserver *apiserver_free(apiserver *s, usec_t grace);
