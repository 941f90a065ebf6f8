stratus_test(test-sched LABEL unit SOURCES unit/test-sched.c LIBS stratus_sched)
stratus_test(test-sched-cache LABEL unit SOURCES unit/test-sched-cache.c LIBS stratus_sched)
