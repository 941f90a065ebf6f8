# Fuzz targets for pkg/api's parsers: manifests (load + validate + default), selectors, and the
# JSON parser against jansson's.
# With clang they are libFuzzer programs, linked to a copy of stratus_api built with coverage
# instrumentation so libFuzzer can steer; otherwise plain programs around fuzz/replay-main.c.
# Either way CTest replays the seeds (fuzz-manifest-replay, fuzz-selector-replay,
# fuzz-parse-replay; label unit).
set(api_fuzz_lib stratus_api)
if(CMAKE_C_COMPILER_ID STREQUAL "Clang" AND TARGET stratus_api)
  get_target_property(api_sources stratus_api SOURCES)
  get_target_property(api_dir stratus_api SOURCE_DIR)
  list(TRANSFORM api_sources PREPEND ${api_dir}/)
  add_library(stratus_api_fuzz STATIC ${api_sources})
  target_compile_options(stratus_api_fuzz PRIVATE -fsanitize=fuzzer-no-link)
  target_link_libraries(stratus_api_fuzz PUBLIC stratus_base PkgConfig::JANSSON)
  set(api_fuzz_lib stratus_api_fuzz)
endif()

# Seed files, not folders: given a folder, a libFuzzer binary starts fuzzing instead of replaying.
file(GLOB api_manifest_seeds ${CMAKE_SOURCE_DIR}/manifests/*.json
     ${CMAKE_SOURCE_DIR}/tests/unit/api-data/broken/*.json)
file(GLOB api_selector_seeds ${CMAKE_SOURCE_DIR}/tests/unit/api-data/selectors/*.txt)
file(GLOB api_parse_seeds ${CMAKE_SOURCE_DIR}/manifests/*.json
     ${CMAKE_SOURCE_DIR}/tests/unit/api-data/*/*.json ${CMAKE_SOURCE_DIR}/fuzz/corpus/store-response/*)

if(COMMAND stratus_fuzz)
  stratus_fuzz(fuzz-manifest SOURCES fuzz-manifest.c LIBS ${api_fuzz_lib} SEEDS ${api_manifest_seeds})
  stratus_fuzz(fuzz-selector SOURCES fuzz-selector.c LIBS ${api_fuzz_lib} SEEDS ${api_selector_seeds})
  stratus_fuzz(fuzz-parse SOURCES fuzz-parse.c LIBS ${api_fuzz_lib} SEEDS ${api_parse_seeds})
elseif(TARGET stratus_api)
  # fuzz/CMakeLists.txt without the shared helper: the same thing, spelled out.
  foreach(target fuzz-manifest fuzz-selector fuzz-parse)
    if(CMAKE_C_COMPILER_ID STREQUAL "Clang")
      add_executable(${target} ${target}.c)
      target_compile_options(${target} PRIVATE -fsanitize=fuzzer)
      target_link_options(${target} PRIVATE -fsanitize=fuzzer)
    else()
      add_executable(${target} ${target}.c ${CMAKE_CURRENT_SOURCE_DIR}/replay-main.c)
    endif()
    set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
    target_link_libraries(${target} PRIVATE ${api_fuzz_lib})
  endforeach()
  add_test(NAME fuzz-manifest-replay COMMAND fuzz-manifest ${api_manifest_seeds})
  add_test(NAME fuzz-selector-replay COMMAND fuzz-selector ${api_selector_seeds})
  add_test(NAME fuzz-parse-replay COMMAND fuzz-parse ${api_parse_seeds})
  set_tests_properties(fuzz-manifest-replay fuzz-selector-replay fuzz-parse-replay
                       PROPERTIES LABELS unit)
endif()
