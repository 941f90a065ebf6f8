stratus_test(test-apiserver LABEL integration SOURCES integration/test-apiserver.c
             LIBS stratus_apiserver_fixture stratus_apiserver TIMEOUT 300)

# Python grpcio against the real stratus-apiserver binary, from the .proto alone.
if(TARGET stratus-apiserver)
  add_test(NAME apiserver-interop
           COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/interop/apiserver_interop.py
                   --apiserver $<TARGET_FILE:stratus-apiserver> --proto-root ${CMAKE_SOURCE_DIR}/api
                   --out ${CMAKE_BINARY_DIR}/interop-apiserver)
  set_tests_properties(apiserver-interop PROPERTIES LABELS integration TIMEOUT 120)
endif()

stratus_test(test-apiserver-compact LABEL integration SOURCES integration/test-apiserver-compact.c
             LIBS stratus_apiserver_fixture stratus_apiserver TIMEOUT 120)

stratus_test(test-apiserver-replay LABEL integration SOURCES integration/test-apiserver-replay.c
             LIBS stratus_apiserver_fixture stratus_apiserver TIMEOUT 300)
