stratus_test(test-store-etcd LABEL integration SOURCES integration/test-store-etcd.c LIBS stratus_store)
