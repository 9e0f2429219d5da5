# Build flavours. The same gcc builds four kinds of code:
#   kernel    - ring 0: freestanding, no red zone, no SSE, kernel code model;
#   user      - ring 3 programs linked against libsys: freestanding, small model;
#   host      - ordinary Linux code for unit tests, fuzzers and benchmarks;
#   host_asan - host code under ASan + UBSan, every finding fatal: the
#               sanitizer twin of each host test (tessera_host_test()).
# Pure C libraries (common/, the span allocator) are compiled once per flavour
# they are used in, through tessera_library().

execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=include
                OUTPUT_VARIABLE TESSERA_GCC_INCLUDE OUTPUT_STRIP_TRAILING_WHITESPACE)

set(TESSERA_WARNINGS -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
    -Wmissing-prototypes -Wpointer-arith -Wundef)
set(TESSERA_ABI_INCLUDE ${PROJECT_SOURCE_DIR}/include)

set(TESSERA_FREESTANDING_FLAGS -ffreestanding -nostdinc -isystem ${TESSERA_GCC_INCLUDE}
    -fno-pic -fno-pie -fno-stack-protector -fno-asynchronous-unwind-tables
    -fno-omit-frame-pointer -O2 -g)
# The kernel keeps no frame pointers: nothing in it walks them (a panic
# prints the trap frame), gdb unwinds from the DWARF -g writes
# (.debug_frame), and each call that would set one up costs three
# instructions more (about 120 of a memory server ALLOC+FREE).
set(TESSERA_KERNEL_FLAGS ${TESSERA_FREESTANDING_FLAGS} -mno-red-zone -mgeneral-regs-only
    -mno-mmx -mno-sse -mno-sse2 -mcmodel=kernel -fomit-frame-pointer -DTESSERA_KERNEL=1)
set(TESSERA_USER_FLAGS ${TESSERA_FREESTANDING_FLAGS} -mcmodel=small -DTESSERA_USER=1)
set(TESSERA_HOST_FLAGS -O2 -g -DTESSERA_HOST=1)
set(TESSERA_SANITIZE_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all
    -fno-omit-frame-pointer)

function(tessera_flavour_flags target flavour)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:${TESSERA_WARNINGS}>)
  target_include_directories(${target} PUBLIC ${TESSERA_ABI_INCLUDE})
  if(flavour STREQUAL "kernel")
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:${TESSERA_KERNEL_FLAGS}>)
  elseif(flavour STREQUAL "user")
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:${TESSERA_USER_FLAGS}>)
  elseif(flavour STREQUAL "host")
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:${TESSERA_HOST_FLAGS}>)
  elseif(flavour STREQUAL "host_asan")
    target_compile_options(${target} PRIVATE
        $<$<COMPILE_LANGUAGE:C>:${TESSERA_HOST_FLAGS} ${TESSERA_SANITIZE_FLAGS}>)
    # Whatever links a sanitized library needs the sanitizer runtimes.
    target_link_options(${target} PUBLIC ${TESSERA_SANITIZE_FLAGS})
  else()
    message(FATAL_ERROR "unknown flavour ${flavour}")
  endif()
endfunction()

# tessera_library(NAME FLAVOURS kernel user host SOURCES ... INCLUDES ...)
# makes NAME_kernel, NAME_user and NAME_host static libraries as asked.
function(tessera_library name)
  cmake_parse_arguments(ARG "" "" "FLAVOURS;SOURCES;INCLUDES;LINK" ${ARGN})
  foreach(flavour ${ARG_FLAVOURS})
    add_library(${name}_${flavour} STATIC ${ARG_SOURCES})
    tessera_flavour_flags(${name}_${flavour} ${flavour})
    target_include_directories(${name}_${flavour} PUBLIC ${ARG_INCLUDES})
    foreach(dep ${ARG_LINK})
      target_link_libraries(${name}_${flavour} PUBLIC ${dep}_${flavour})
    endforeach()
  endforeach()
endfunction()

# Host unit tests use cmocka (Debian: libcmocka-dev).
find_library(CMOCKA_LIBRARY cmocka REQUIRED)
find_path(CMOCKA_INCLUDE_DIR cmocka.h REQUIRED)

# tessera_host_test(NAME SOURCES file.c ... [UNDER_TEST file.c ...]
#                   [LINK lib ...] [INCLUDES dir ...] [DEFINES D=1 ...]
#                   [ARGS arg ...] [ASAN_ARGS arg ...] [TIMEOUT seconds]
#                   [ENVIRONMENT VAR=value ...] [ASAN_ENVIRONMENT VAR=value ...])
# registers a cmocka test twice:
#   NAME       - the host flavour, labels "host";
#   NAME_asan  - the host_asan flavour (ASan + UBSan, every finding fatal),
#                labels "host;sanitize".
# SOURCES are the test's own files; UNDER_TEST the code it tests, compiled
# into each executable (so that the sanitizers see into it too). LINK names
# libraries without their flavour: "span" links span_host into NAME and
# span_host_asan into NAME_asan. ARGS go to both runs unless ASAN_ARGS are
# given (sanitized runs are slower: fewer iterations).
function(tessera_host_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT"
      "SOURCES;UNDER_TEST;LINK;INCLUDES;DEFINES;ARGS;ASAN_ARGS;ENVIRONMENT;ASAN_ENVIRONMENT" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "tessera_host_test(${name}): no SOURCES")
  endif()
  if(NOT ARG_ASAN_ARGS)
    set(ARG_ASAN_ARGS ${ARG_ARGS})
  endif()
  if(NOT ARG_ASAN_ENVIRONMENT)
    set(ARG_ASAN_ENVIRONMENT ${ARG_ENVIRONMENT})
  endif()
  foreach(flavour host host_asan)
    if(flavour STREQUAL "host")
      set(target ${name})
      set(args ${ARG_ARGS})
      set(env ${ARG_ENVIRONMENT})
      set(labels host)
    else()
      set(target ${name}_asan)
      set(args ${ARG_ASAN_ARGS})
      set(env ${ARG_ASAN_ENVIRONMENT})
      set(labels host sanitize)
    endif()
    add_executable(${target} ${ARG_SOURCES} ${ARG_UNDER_TEST})
    tessera_flavour_flags(${target} ${flavour})
    target_include_directories(${target} PRIVATE ${CMOCKA_INCLUDE_DIR} ${ARG_INCLUDES})
    target_compile_definitions(${target} PRIVATE ${ARG_DEFINES})
    foreach(lib ${ARG_LINK})
      target_link_libraries(${target} PRIVATE ${lib}_${flavour})
    endforeach()
    target_link_libraries(${target} PRIVATE ${CMOCKA_LIBRARY})
    add_test(NAME ${target} COMMAND ${target} ${args})
    set_tests_properties(${target} PROPERTIES LABELS "${labels}")
    if(ARG_TIMEOUT)
      set_tests_properties(${target} PROPERTIES TIMEOUT ${ARG_TIMEOUT})
    endif()
    if(env)
      set_tests_properties(${target} PROPERTIES ENVIRONMENT "${env}")
    endif()
  endforeach()
endfunction()

# tessera_user_program(NAME SOURCES ... [LINK lib ...] [BOOT] [CONSOLE]): a
# ring-3 ELF linked with libsys, and a boot module of the ISO (iso/).
#   BOOT     init starts it at boot, in declaration order (the `boot=` list
#            of init's module command line); others start on request (the
#            console's `run`) or, for t_ and b_ programs, from the suite.
#   CONSOLE  it is the console (implies BOOT): init serves it the requests
#            that start and end programs (proto/init.h), and gives it a
#            device to pin for.
# Each program is linked at an address of its own, 16 MiB apart from 4 MiB
# up (TESSERA_IMAGE_BASE, libsys/user.ld), so that a breakpoint on one
# program's code stops in no other (docs/running.md, "Debugging").
set(TESSERA_IMAGE_BASE_FIRST 0x400000)
set(TESSERA_IMAGE_BASE_STEP 0x1000000)
function(tessera_user_program name)
  cmake_parse_arguments(ARG "BOOT;CONSOLE" "" "SOURCES;LINK" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  set_target_properties(${name} PROPERTIES SUFFIX ".elf")
  tessera_flavour_flags(${name} user)
  target_link_libraries(${name} PRIVATE ${ARG_LINK} libsys common_user)
  get_property(count GLOBAL PROPERTY TESSERA_USER_PROGRAMS)
  list(LENGTH count index)
  math(EXPR base "${TESSERA_IMAGE_BASE_FIRST} + ${index} * ${TESSERA_IMAGE_BASE_STEP}" OUTPUT_FORMAT HEXADECIMAL)
  target_link_options(${name} PRIVATE -nostdlib -static -no-pie
      -Wl,-T,${PROJECT_SOURCE_DIR}/libsys/user.ld -Wl,--defsym=TESSERA_IMAGE_BASE=${base}
      -Wl,--build-id=none -Wl,-z,max-page-size=0x1000)
  target_link_libraries(${name} PRIVATE gcc)
  set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS ${PROJECT_SOURCE_DIR}/libsys/user.ld)
  set_property(TARGET ${name} PROPERTY TESSERA_IMAGE_BASE ${base})
  set_property(GLOBAL APPEND PROPERTY TESSERA_USER_PROGRAMS ${name})
  if(ARG_BOOT OR ARG_CONSOLE)
    set_property(GLOBAL APPEND PROPERTY TESSERA_BOOT_PROGRAMS ${name})
  endif()
  if(ARG_CONSOLE)
    set_property(GLOBAL PROPERTY TESSERA_CONSOLE_PROGRAM ${name})
  endif()
endfunction()

# tessera_console_test(NAME SECONDS [--emulator bochs]): boots the image
# without test= (init starts the boot programs and the console), types the
# calling directory's commands.txt at the console's prompt (iso/run
# --input) and checks the console against its expected.txt, in order
# (--expect). The console is kept in NAME.serial.log in the directory's
# build tree. Extra arguments go to iso/run.
function(tessera_console_test name seconds)
  set(labels "guest;qemu")
  if("bochs" IN_LIST ARGN)
    set(labels "guest;bochs")
  endif()
  add_test(NAME ${name}
           COMMAND ${PROJECT_SOURCE_DIR}/iso/run ${ARGN} --iso ${CMAKE_BINARY_DIR}/tessera.iso --cmdline "seed=1"
                   --timeout ${seconds}
                   --log ${CMAKE_CURRENT_BINARY_DIR}/${name}.serial.log
                   --input ${CMAKE_CURRENT_SOURCE_DIR}/commands.txt --prompt "memctl> "
                   --expect ${CMAKE_CURRENT_SOURCE_DIR}/expected.txt)
  # ctest's own limit only catches a runner that fails to stop its emulator.
  math(EXPR limit "${seconds} + 120")
  set_tests_properties(${name} PROPERTIES LABELS "${labels}" TIMEOUT ${limit})
endfunction()
