# Thin wrapper over CMake/CTest. `make test` and `make up` install what they need first.
BUILD    ?= build
SANITIZE ?= 0
JOBS     ?= $(shell nproc)
ifeq ($(SANITIZE),1)
BUILD    := build-asan
CMAKE_FLAGS += -DSTRATUS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
endif

.PHONY: all deps build test unit bench fuzz format clean up down

all: build

deps:
	./tools/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# Every test: unit, integration (real etcd), e2e. CTest prints the summary CI reads.
test: deps
	$(MAKE) build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

bench: deps
	$(MAKE) build
	./bench/run-all.sh $(BUILD)

# A local cluster (docs/local-cluster.md): etcd, apiserver, scheduler, three hollow nodes and,
# as root with libvirt + qemu, one real node; the demo applied and Running. State in _local/.
up: deps
	$(MAKE) build
	./tools/local-cluster.sh up

down:
	./tools/local-cluster.sh down

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-asan
