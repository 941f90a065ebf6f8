if(TARGET stratus_store)
  add_executable(store-bench store-bench.c)
  target_link_libraries(store-bench PRIVATE stratus_store stratus_testlib)
endif()
