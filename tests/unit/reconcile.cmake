# pkg/reconcile: the work queue (fake clock, real threads, a libev loop) and the informer (a real
# rpc server with List/Watch handlers over an in-memory map, driven by the real client).
stratus_test(test-reconcile LABEL unit SOURCES unit/test-reconcile.c LIBS stratus_reconcile)
stratus_test(test-reconcile-informer LABEL unit SOURCES unit/test-reconcile-informer.c
             LIBS stratus_reconcile TIMEOUT 120)
