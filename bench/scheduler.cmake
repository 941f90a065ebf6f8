if(TARGET stratus_sched AND TARGET stratus_apiserver_fixture)
  add_executable(scheduler-bench scheduler-bench.c)
  target_link_libraries(scheduler-bench PRIVATE stratus_sched stratus_apiserver_fixture stratus_bench_stats stratus_malloc)
endif()
