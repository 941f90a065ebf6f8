# pkg/rpc: the unit test (a real gRPC server and client on loopback; raw gRPC for bogus methods),
# and the Python grpcio interop check against rpc-test-server (tests/interop/).
stratus_test(test-rpc LABEL unit SOURCES unit/test-rpc.c LIBS stratus_rpc PkgConfig::GRPC TIMEOUT 120)

if(TARGET stratus_rpc)
add_executable(rpc-test-server interop/rpc-test-server.c)
set_target_properties(rpc-test-server PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
target_link_libraries(rpc-test-server PRIVATE stratus_rpc)
add_test(NAME rpc-interop
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/interop/rpc_interop.py
                 --server $<TARGET_FILE:rpc-test-server> --proto-root ${CMAKE_SOURCE_DIR}/api
                 --out ${CMAKE_BINARY_DIR}/interop)
set_tests_properties(rpc-interop PROPERTIES LABELS integration TIMEOUT 120)
endif()
