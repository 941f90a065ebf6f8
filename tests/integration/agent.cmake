# The node agent in-process on libvirt's test driver, against a real etcd and apiserver.
stratus_test(test-agent-integration LABEL integration SOURCES integration/test-agent.c
             LIBS stratus_agent stratus_apiserver_fixture stratus_apiserver TIMEOUT 300)
# A real guest on libvirtd + qemu (TCG) built by tools/build-guest-image.sh; the test starts and
# stops the daemons, and is reported Skipped (exit 77) when not root or when libvirtd, qemu or
# iptables are missing, or the guest cannot be built.
stratus_test(test-agent-qemu LABEL integration SOURCES integration/test-agent-qemu.c
             LIBS stratus_agent stratus_apiserver_fixture stratus_apiserver TIMEOUT 900)
set_tests_properties(test-agent-qemu PROPERTIES SKIP_RETURN_CODE 77)
