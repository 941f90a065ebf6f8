# realguest-bench: apply → serial-console marker of a real guest (libvirt qemu:///system, TCG)
# through the real system, next to the same domain created bare. Prints "skipped" unless root
# with libvirtd + qemu.
pkg_check_modules(BENCH_LIBVIRT IMPORTED_TARGET libvirt)
if(TARGET stratus_bench_cluster AND TARGET stratus_libvirtd_fixture AND TARGET stratus-node-agent
   AND BENCH_LIBVIRT_FOUND)
  add_executable(realguest-bench realguest-bench.c)
  target_link_libraries(realguest-bench PRIVATE stratus_bench_cluster stratus_libvirtd_fixture
                        PkgConfig::BENCH_LIBVIRT)
  target_compile_definitions(realguest-bench PRIVATE STRATUS_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  add_dependencies(realguest-bench stratus-apiserver stratus-scheduler stratus-node-agent)
endif()
