stratus_test(test-api LABEL unit SOURCES unit/test-api.c LIBS stratus_api)
