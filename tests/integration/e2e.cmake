# End-to-end: the real programs as `make up` runs them, driven with stratusctl (e2e/).
if(TARGET stratus-apiserver AND TARGET stratus-scheduler AND TARGET stratus-node-agent
   AND TARGET stratusctl)
  add_test(NAME e2e-local-cluster COMMAND ${CMAKE_SOURCE_DIR}/e2e/local-cluster.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(e2e-local-cluster PROPERTIES LABELS e2e TIMEOUT 600)
endif()
