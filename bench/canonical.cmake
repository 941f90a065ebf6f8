if(TARGET stratus_api)
  add_executable(canonical-bench canonical-bench.c)
  target_link_libraries(canonical-bench PRIVATE stratus_api)
endif()
