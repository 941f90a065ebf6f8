stratus_test(test-api LABEL unit SOURCES unit/test-api.c LIBS stratus_api)
stratus_test(test-api-canonical LABEL unit SOURCES unit/test-api-canonical.c
             LIBS stratus_api stratus_testlib_json)
stratus_test(test-api-parse LABEL unit SOURCES unit/test-api-parse.c
             LIBS stratus_api stratus_testlib_json)
