stratus_test(test-base LABEL unit SOURCES unit/test-base.c LIBS stratus_base)
