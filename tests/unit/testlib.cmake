# The test fixtures' own pieces that need no root or daemon.
stratus_test(test-libvirtd-fixture LABEL unit SOURCES unit/test-libvirtd-fixture.c
             LIBS stratus_libvirtd_fixture)
