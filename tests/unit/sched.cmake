stratus_test(test-sched LABEL unit SOURCES unit/test-sched.c LIBS stratus_sched)
