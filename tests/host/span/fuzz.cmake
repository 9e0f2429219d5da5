# libFuzzer harness for the span allocator. The project compiles with gcc,
# so the fuzzer is built with clang by a custom command (only when clang is
# found) and run by ctest for a bounded number of inputs.
find_program(SPAN_CLANG clang)
if(SPAN_CLANG)
  set(SPAN_FUZZER ${CMAKE_CURRENT_BINARY_DIR}/span_fuzzer)
  set(SPAN_FUZZ_SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_span.c ${SPAN_SOURCES}
      ${PROJECT_SOURCE_DIR}/common/rbtree.c)
  add_custom_command(OUTPUT ${SPAN_FUZZER}
    COMMAND ${SPAN_CLANG} -g -O1 -DTESSERA_HOST=1 -fsanitize=fuzzer,address,undefined
            -fno-sanitize-recover=all -Wall -Wextra -Werror
            -I${SPAN_INCLUDE} -I${PROJECT_SOURCE_DIR}/common/include
            -I${TESSERA_ABI_INCLUDE} -I${PROJECT_SOURCE_DIR}/servers/memsrv/span
            ${SPAN_FUZZ_SOURCES} -o ${SPAN_FUZZER}
    DEPENDS ${SPAN_FUZZ_SOURCES}
    COMMENT "Building span_fuzzer with clang")
  add_custom_target(span_fuzzer ALL DEPENDS ${SPAN_FUZZER})
  add_test(NAME span_fuzz_test
           COMMAND ${SPAN_FUZZER} -runs=200000 -max_total_time=20 -seed=1 -max_len=512)
  set_tests_properties(span_fuzz_test PROPERTIES LABELS host TIMEOUT 120)
endif()
