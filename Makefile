# The two commands a newcomer needs. Everything else is CMake and ctest.
#   make run   - build, make the ISO and boot it in QEMU, serial on the terminal
#   make test  - build, then run every test (host, QEMU suite, Bochs) via ctest
BUILD   ?= build
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
RUNARGS ?=

.PHONY: all deps configure build run test clean

all: build

deps:
	@scripts/ensure-deps

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@iso/run --iso $(BUILD)/tessera.iso $(RUNARGS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD)
