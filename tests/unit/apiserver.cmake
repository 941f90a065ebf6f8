stratus_test(test-apiserver-recent LABEL unit SOURCES unit/test-apiserver-recent.c
             LIBS stratus_apiserver)
target_include_directories(test-apiserver-recent PRIVATE ${CMAKE_SOURCE_DIR}/pkg/apiserver)
