/* A throwaway etcd for integration tests: a real etcd-server on free loopback ports with its
 * data in a fresh temporary folder. It is stopped and its folder removed when the test program
 * exits, however it exits: at exit, and through PR_SET_PDEATHSIG if the test is killed. */
#pragma once

typedef struct etcd_fixture etcd_fixture;

/* Starts etcd and waits until it answers. Aborts the program with a message if it cannot. */
etcd_fixture *etcd_fixture_start(void);
/* "http://127.0.0.1:PORT" of the running member. */
const char *etcd_fixture_endpoint(const etcd_fixture *f);
/* Stops etcd (SIGTERM, then SIGKILL) but keeps its data; start again with etcd_fixture_resume. */
void etcd_fixture_pause(etcd_fixture *f);
/* Starts etcd again on the same ports and data. */
void etcd_fixture_resume(etcd_fixture *f);
/* Stops etcd and removes its data. Accepts NULL. */
void etcd_fixture_stop(etcd_fixture *f);

/* Returns a TCP port on 127.0.0.1 that was free a moment ago. */
int test_free_port(void);
