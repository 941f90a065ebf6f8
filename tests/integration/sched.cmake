stratus_test(test-scheduler LABEL integration SOURCES integration/test-scheduler.c
             LIBS stratus_apiserver_fixture stratus_sched TIMEOUT 600)
