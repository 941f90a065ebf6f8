/* The benchmarks' cluster harness: a real etcd (tests/lib/etcd-fixture) and the real Stratus
 * programs from the build's bin/ folder — stratus-apiserver, stratus-scheduler and
 * stratus-node-agent (one process running N hollow nodes on libvirt's test driver, or one real
 * node) — each its own process, as in production, with all state in one temporary folder.
 *
 * Everything started here is stopped however the benchmark ends: at exit (atexit), on
 * SIGINT/SIGTERM/SIGHUP (the handler kills the children, then exits through atexit), and when
 * the benchmark is killed outright (each child has PR_SET_PDEATHSIG = SIGKILL; spawn only from
 * the main thread, since the death signal follows the thread that forked).
 *
 * Also the small things every cluster benchmark needs: percentiles, /proc figures, object
 * helpers. Not a test fixture: nothing here asserts anything; failures exit with a message. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/timeutil.h"
#include "stats.h"
#include "etcd-fixture.h"
#include "rpc/client.h"

/* ---- processes */

typedef struct bench_proc {
    pid_t pid;
    char name[48];
    char log[512]; /* stdout and stderr go here */
} bench_proc;

/* Starts argv[0] (a path) with its output in <cluster dir>/<name>.log. Exits on failure. */
bench_proc *bench_proc_spawn(const char *dir, const char *name, char *const argv[]);
/* SIGTERM, then SIGKILL after `grace`; reaps it. Accepts NULL; returns NULL. */
bench_proc *bench_proc_stop(bench_proc *p, usec_t grace);
bool bench_proc_alive(bench_proc *p);
/* Prints the last lines of its log to stderr. */
void bench_proc_log_tail(const bench_proc *p, int lines);

/* The pid of this process's child running `comm` (e.g. "etcd"), or 0. */
pid_t bench_child_by_comm(const char *comm);

/* ---- the cluster */

typedef struct bench_cluster {
    etcd_fixture *etcd;
    char dir[256];   /* the temporary folder: logs, agent state, images */
    char bin[1024];  /* where the stratus-* programs are */
    char target[64]; /* "127.0.0.1:PORT" of the apiserver */
    bench_proc *apiserver, *scheduler, *agent;
    rpc_client *client;
} bench_cluster;

/* Starts etcd and stratus-apiserver (extra flags after its own; NULL-terminated, may be NULL)
 * and connects a client. The programs are taken from $STRATUS_BIN, else from the folder this
 * benchmark runs from. Exits with a message when something cannot start. */
bench_cluster *bench_cluster_start(const char *const *apiserver_flags);
/* stratus-scheduler against the cluster's apiserver (extra flags may be NULL). */
void bench_cluster_start_scheduler(bench_cluster *c, const char *const *flags);
/* stratus-node-agent against the apiserver with state in <dir>/agent; `flags` name the node(s)
 * and backend (e.g. "--hollow-nodes", "100"). Waits until `nodes` Nodes report Ready (up to
 * 90 s). */
void bench_cluster_start_agent(bench_cluster *c, const char *const *flags, int nodes);
/* Stops the agent, scheduler, apiserver (in that order) and etcd, removes the folder. */
void bench_cluster_stop(bench_cluster *c);

/* A client on a connection of its own: gRPC shares one connection between channels with equal
 * arguments, so `conn` (0..1000) varies the receive limit by a few bytes. Exits on failure. */
rpc_client *bench_client_new(const char *target, int conn);
/* Number of Nodes whose Ready condition is True. */
int bench_count_ready_nodes(rpc_client *c);

/* Counters from etcd's /metrics, for "what did the storage do meanwhile". */
typedef struct bench_etcd_stats {
    double ranges, txns, puts, deletes; /* etcd_debugging_mvcc_*_total */
    double fsyncs, fsync_seconds;       /* etcd_disk_wal_fsync_duration_seconds count, sum */
    double commits, commit_seconds;     /* etcd_disk_backend_commit_duration_seconds */
    double revision;                    /* etcd_debugging_mvcc_current_revision */
    double rpc_range, rpc_txn, rpc_put, rpc_delete; /* grpc_server_handled_total by method */
} bench_etcd_stats;

/* Reads them; 0 or -EIO. */
int bench_etcd_stats_read(bench_cluster *c, bench_etcd_stats *ret);
/* Prints "<prefix>_etcd: ..." for what happened between a and b, per `per` objects. */
void bench_etcd_stats_print(const char *prefix, const bench_etcd_stats *a,
                            const bench_etcd_stats *b, double seconds, long per);

/* ---- objects */

/* Apply; 0 and the stored object (optional) or -errno with st filled. */
int bench_apply(rpc_client *c, const char *json, usec_t timeout, json_t **ret_obj, rpc_status *st);
int bench_delete(rpc_client *c, const char *kind, const char *ns, const char *name, usec_t timeout,
                 rpc_status *st);
/* Flavor `bench-tiny` (1 vcpu, 64 MiB, 1 GiB root) and Image `bench-disk` (a 64 MiB qcow2
 * made with qemu-img in the cluster folder, with its real sha256). */
void bench_apply_basics(bench_cluster *c);
/* The document of Instance <name> in <ns> using the basics. */
char *bench_instance_doc(const char *ns, const char *name);

/* ---- figures */

/* Parses a duration flag ("60s", "500ms", "2m", or seconds) or exits with usage code 2. */
usec_t bench_parse_duration(const char *flag, const char *v);
/* Parses a positive integer flag within [min, max] or exits with code 2. */
long bench_parse_count(const char *flag, const char *v, long min, long max);
/* The 1-minute load average, for the header lines. */
double bench_loadavg(void);
