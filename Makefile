# The commands a newcomer needs. Everything else is CMake and ctest.
#   make run         build, make the ISO and boot it in QEMU, serial on the terminal
#   make gdb         gdb with the kernel's symbols and the commands that know the
#                    programs by name, attached to `make run RUNARGS=--gdb`
#                    started in another terminal (docs/running.md, "Debugging")
#   make test        build, then every test (host, the QEMU matrix, Bochs) via ctest
#   make test-quick  build, then the host tests and one QEMU run of the suite
#   make soak        build, then the suite again and again with fresh seeds, under
#                    QEMU and Bochs, for SOAK_MINUTES (not part of make test)
#   make stress      build, then the ctest entries labelled stress (churn with
#                    compaction on 4 CPUs for a few minutes; not part of make test)
#   make format      lay every C file out by .clang-format (the host test
#                    format_check fails when one is not)
BUILD   ?= build
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
RUNARGS ?=
SOAK_MINUTES ?= 30
SOAK_ARGS ?=
GDB_PORT ?= 1234

.PHONY: all deps configure build run gdb test test-quick soak stress format clean

all: build

deps:
	@scripts/ensure-deps

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@iso/run --iso $(BUILD)/tessera.iso $(RUNARGS)

gdb: build
	@gdb -x $(BUILD)/tessera.gdb -ex 'tessera-connect $(GDB_PORT)'

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE stress

test-quick: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L 'host|quick' -LE stress

stress: build
	@cd $(BUILD) && ctest --output-on-failure -L stress

soak: build
	@scripts/soak --iso $(BUILD)/tessera.iso --minutes $(SOAK_MINUTES) --jobs $(JOBS) \
	    --out $(BUILD)/soak $(SOAK_ARGS)

format: deps
	@scripts/format

clean:
	rm -rf $(BUILD)
