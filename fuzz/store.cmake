# Fuzz targets for pkg/store's parsers.
stratus_fuzz(fuzz-store-response SOURCES fuzz-store-response.c LIBS stratus_store
             SEEDS ${CMAKE_SOURCE_DIR}/fuzz/corpus/store-response)
stratus_fuzz(fuzz-watch-stream SOURCES fuzz-watch-stream.c LIBS stratus_store
             SEEDS ${CMAKE_SOURCE_DIR}/fuzz/corpus/watch-stream)
