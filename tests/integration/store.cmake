# The whole store suite runs once per engine: test-store-etcd on the JSON gateway,
# test-store-etcd-grpc on etcd's gRPC API (the variable picks the engine of every store_new).
stratus_test(test-store-etcd LABEL integration SOURCES integration/test-store-etcd.c LIBS stratus_store)
if(TARGET test-store-etcd)
  set_property(TEST test-store-etcd APPEND PROPERTY ENVIRONMENT STRATUS_STORE_ENGINE=gateway)
  add_test(NAME test-store-etcd-grpc COMMAND test-store-etcd)
  set_tests_properties(test-store-etcd-grpc PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATUS_STORE_ENGINE=grpc;STRATUS_SOURCE_DIR=${CMAKE_SOURCE_DIR};STRATUS_BUILD_DIR=${CMAKE_BINARY_DIR}")
endif()
