# Bind, Unbind, allocation and server-group ledgers, IPAM and leases against a real etcd.
stratus_test(test-apiserver-bind LABEL integration SOURCES integration/test-apiserver-bind.c
             LIBS stratus_apiserver_fixture stratus_apiserver TIMEOUT 600)
