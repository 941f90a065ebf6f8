# apiserver-bench: Get/Apply latency and throughput through the real stratus-apiserver, watch
# fan-out, and the apiserver's RSS with many objects. Starts the stratus-apiserver binary built
# next to it, so building the benchmark builds the server too.
if(TARGET stratus_apiserver)
  add_executable(apiserver-bench apiserver-bench.c)
  target_link_libraries(apiserver-bench PRIVATE stratus_apiserver stratus_testlib stratus_bench_stats
                        Threads::Threads)
  if(TARGET stratus-apiserver)
    add_dependencies(apiserver-bench stratus-apiserver)
  endif()
endif()
