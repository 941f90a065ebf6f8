# End-to-end: the real programs as `make up` runs them, driven with stratusctl and Python grpcio
# (e2e/). Each test brings up its own local cluster (tools/local-cluster.sh) with its state in a
# temporary folder, and takes it down however it ends (e2e/lib.sh).
if(TARGET stratus-apiserver AND TARGET stratus-scheduler AND TARGET stratus-node-agent
   AND TARGET stratusctl)
  # name → script; hollow nodes only, a few seconds to a minute each
  foreach(t local-cluster scale agent-restart node-lost)
    add_test(NAME e2e-${t} COMMAND ${CMAKE_SOURCE_DIR}/e2e/${t}.sh ${CMAKE_BINARY_DIR})
    set_tests_properties(e2e-${t} PROPERTIES LABELS e2e TIMEOUT 300)
  endforeach()

  # The real guest (libvirtd + qemu, TCG): root only, else Skipped (exit 77). It shares the
  # host's libvirtd with test-agent-qemu and test-agent-kill-qemu, and whichever of them started
  # the daemon stops it at its end, under the others. The lock (the one agent.cmake gives those
  # tests) keeps CTest from running them at once; the hollow e2e tests still run beside any of
  # them.
  add_test(NAME e2e-real-guest COMMAND ${CMAKE_SOURCE_DIR}/e2e/real-guest.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(e2e-real-guest PROPERTIES LABELS e2e TIMEOUT 900 SKIP_RETURN_CODE 77
                                                 RESOURCE_LOCK libvirtd)
  foreach(t test-agent-qemu test-agent-kill-qemu)
    if(TEST ${t})
      get_test_property(${t} RESOURCE_LOCK locks)
      if(NOT locks OR NOT "libvirtd" IN_LIST locks)
        set_property(TEST ${t} APPEND PROPERTY RESOURCE_LOCK libvirtd)
      endif()
    endif()
  endforeach()
endif()
