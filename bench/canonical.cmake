if(TARGET stratus_api)
  add_executable(canonical-bench canonical-bench.c)
  target_link_libraries(canonical-bench PRIVATE stratus_api stratus_bench_stats stratus_bench_json)
endif()
