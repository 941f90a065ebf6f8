# footprint-bench: VmRSS/VmHWM of the real apiserver (10k, 100k objects), scheduler (1,000
# nodes) and node agent (0 and 100 instances), each its own process (cluster.h).
if(TARGET stratus_bench_cluster AND TARGET stratus-node-agent AND TARGET stratus-scheduler)
  add_executable(footprint-bench footprint-bench.c)
  target_link_libraries(footprint-bench PRIVATE stratus_bench_cluster)
  add_dependencies(footprint-bench stratus-apiserver stratus-scheduler stratus-node-agent)
endif()
