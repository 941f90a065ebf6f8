stratus_test(test-store LABEL unit SOURCES unit/test-store.c LIBS stratus_store)
