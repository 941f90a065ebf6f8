/* A throwaway etcd for integration tests: a real etcd-server on free loopback ports with its
 * data in a fresh temporary folder. It is stopped and its folder removed when the test program
 * exits, however it exits: at exit, and through PR_SET_PDEATHSIG if the test is killed. */
#pragma once

typedef struct etcd_fixture etcd_fixture;

/* Starts etcd and waits until it answers. Aborts the program with a message if it cannot. */
etcd_fixture *etcd_fixture_start(void);
/* The same with TLS: a throwaway CA, a server certificate for 127.0.0.1, and client certificates
 * required (etcd --client-cert-auth). The endpoint is https://; the files are PEM. */
etcd_fixture *etcd_fixture_start_tls(void);
const char *etcd_fixture_ca(const etcd_fixture *f);
const char *etcd_fixture_client_cert(const etcd_fixture *f);
const char *etcd_fixture_client_key(const etcd_fixture *f);

/* "http://127.0.0.1:PORT" (or https://) of the running member. */
const char *etcd_fixture_endpoint(const etcd_fixture *f);
/* The etcd process, for benchmarks that account its CPU time or memory. */
int etcd_fixture_pid(const etcd_fixture *f);
/* Says on stderr how the member is (running, stopped, gone), who listens on its client port,
 * and the end of its log: for a test whose requests to it fail. */
void etcd_fixture_describe(const etcd_fixture *f);
/* Stops etcd (SIGTERM, then SIGKILL) but keeps its data; start again with etcd_fixture_resume. */
void etcd_fixture_pause(etcd_fixture *f);
/* Sends sig to the member, which is then expected to end: stopping it later does not report it
 * as ended early. */
void etcd_fixture_kill(etcd_fixture *f, int sig);
/* Starts etcd again on the same ports and data, unless it runs (a member that ended, killed or
 * not, is started again). */
void etcd_fixture_resume(etcd_fixture *f);
/* Stops etcd and removes its data. Accepts NULL. */
void etcd_fixture_stop(etcd_fixture *f);

/* Returns a TCP port on 127.0.0.1 that was free a moment ago. */
int test_free_port(void);
