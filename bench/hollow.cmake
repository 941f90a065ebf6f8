# hollow-bench: boot storm and steady churn over hollow nodes, through the real apiserver,
# scheduler and node agent (cluster.h). Building it builds those programs too.
if(TARGET stratus_bench_cluster AND TARGET stratus-node-agent AND TARGET stratus-scheduler)
  add_executable(hollow-bench hollow-bench.c)
  target_link_libraries(hollow-bench PRIVATE stratus_bench_cluster)
  add_dependencies(hollow-bench stratus-apiserver stratus-scheduler stratus-node-agent)
endif()
