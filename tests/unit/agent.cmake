# pkg/agent: plan and domain XML goldens (tests/unit/agent-data, STRATUS_REGENERATE=1 rewrites
# them), config drive documents, the image cache, and the step machine on a fake backend that
# fails the Nth call.
stratus_test(test-agent LABEL unit SOURCES unit/test-agent.c unit/test-agent-fake.c
             LIBS stratus_agent TIMEOUT 120)
