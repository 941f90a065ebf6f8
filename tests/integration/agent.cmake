# The node agent in-process on libvirt's test driver, against a real etcd and apiserver.
stratus_test(test-agent-integration LABEL integration SOURCES integration/test-agent.c
             LIBS stratus_agent stratus_apiserver_fixture stratus_apiserver TIMEOUT 300)
# A real guest on libvirtd + qemu (TCG) built by tools/build-guest-image.sh; the test starts and
# stops the daemons, and is reported Skipped (exit 77) when not root or when libvirtd, qemu or
# iptables are missing, or the guest cannot be built.
stratus_test(test-agent-qemu LABEL integration SOURCES integration/test-agent-qemu.c
             LIBS stratus_agent stratus_apiserver_fixture stratus_apiserver stratus_libvirtd_fixture
             TIMEOUT 900)
set_tests_properties(test-agent-qemu PROPERTIES SKIP_RETURN_CODE 77)
# SIGKILL at every build step (and in a delete), then a restart: the real stratus-node-agent in a
# child process. On the test driver (always runs) and on qemu:///system (skipped, exit 77, when
# not root or libvirtd, qemu, dnsmasq... are missing). The tests on the host's libvirtd take one
# lock: each has its own storage pool and network, but one of them may start libvirtd and stop it
# when it ends (tests/lib/libvirtd-fixture.h) under another that still uses it.
stratus_test(test-agent-kill LABEL integration SOURCES integration/test-agent-kill.c
             LIBS stratus_agent stratus_apiserver_fixture stratus_apiserver stratus_libvirtd_fixture
             TIMEOUT 300)
stratus_test(test-agent-kill-qemu LABEL integration SOURCES integration/test-agent-kill.c
             LIBS stratus_agent stratus_apiserver_fixture stratus_apiserver stratus_libvirtd_fixture
             TIMEOUT 1500)
# Two agents on one libvirtd, and a libvirtd restart under a running agent: on a libvirtd of the
# test's own, in a private mount namespace (it is killed and restarted; the host's may be serving
# someone else). Skipped (exit 77) when not root, or libvirtd, qemu, virsh... are missing.
stratus_test(test-agent-libvirtd LABEL integration SOURCES integration/test-agent-libvirtd.c
             LIBS stratus_agent stratus_apiserver_fixture stratus_apiserver stratus_libvirtd_fixture
             TIMEOUT 1500)
if(TARGET test-agent-libvirtd)
  set_tests_properties(test-agent-libvirtd PROPERTIES SKIP_RETURN_CODE 77 RESOURCE_LOCK libvirtd)
endif()
if(TARGET test-agent-kill)
  add_dependencies(test-agent-kill stratus-node-agent)
  add_dependencies(test-agent-kill-qemu stratus-node-agent)
  target_compile_definitions(test-agent-kill-qemu PRIVATE KILL_QEMU=1)
  set_tests_properties(test-agent-kill-qemu PROPERTIES SKIP_RETURN_CODE 77 RESOURCE_LOCK libvirtd)
  set_tests_properties(test-agent-qemu PROPERTIES RESOURCE_LOCK libvirtd)
endif()
