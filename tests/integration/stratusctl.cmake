# stratusctl: pkg/cli's pure functions (unit), and the real binary against a real apiserver and
# etcd with golden outputs in tests/integration/stratusctl-golden/ (STRATUS_REGENERATE=1 rewrites
# them).
stratus_test(test-stratusctl-lib LABEL unit SOURCES integration/test-stratusctl-lib.c
             LIBS stratus_cli)
stratus_test(test-stratusctl LABEL integration SOURCES integration/test-stratusctl.c
             LIBS stratus_apiserver_fixture stratus_apiserver stratus_cli TIMEOUT 300)
if(TARGET test-stratusctl AND TARGET stratusctl)
  add_dependencies(test-stratusctl stratusctl) # it runs build/bin/stratusctl
endif()
