# Helpers for the host tests of common/ and kernel/ pure C code; included by
# tests/host/common and tests/host/kernel.
#
# tessera_unit_test(NAME SOURCES test.c ... UNDER_TEST file.c ... [LINK lib ...])
# registers two cmocka tests:
#   NAME       - the test sources plus the code under test, as plain host code;
#   NAME_asan  - the same with ASan + UBSan, so that an out-of-bounds read in
#                the code under test (not only in the test) fails the run.
# The code under test is compiled into the executable rather than linked from
# common_host, which is built without sanitizers.
set(TESSERA_COMMON_DIR ${PROJECT_SOURCE_DIR}/common)

function(tessera_unit_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;UNDER_TEST;LINK;DEFINES" ${ARGN})
  foreach(variant plain asan)
    set(target ${name})
    if(variant STREQUAL "asan")
      set(target ${name}_asan)
    endif()
    tessera_host_test(${target} SOURCES ${ARG_SOURCES} ${ARG_UNDER_TEST} LINK ${ARG_LINK})
    target_include_directories(${target} PRIVATE ${TESSERA_COMMON_DIR}/include
                               ${PROJECT_SOURCE_DIR}/kernel/include)
    target_compile_definitions(${target} PRIVATE ${ARG_DEFINES})
    if(variant STREQUAL "asan")
      target_compile_options(${target} PRIVATE ${TESSERA_SANITIZE_FLAGS})
      target_link_options(${target} PRIVATE ${TESSERA_SANITIZE_FLAGS})
      set_tests_properties(${target} PROPERTIES LABELS "host;sanitize")
    endif()
  endforeach()
endfunction()
