#pragma once
// What a fuzz target does when a property fails: say which and abort, so
// libFuzzer records the input as a crash (assert() would vanish under
// NDEBUG, and the message says more than a line number).

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                                        \
  do {                                                                               \
    if (!(condition)) {                                                              \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)
