if(TARGET stratus_api)
  add_executable(parse-bench parse-bench.c)
  target_link_libraries(parse-bench PRIVATE stratus_api stratus_bench_stats stratus_bench_json)
endif()
