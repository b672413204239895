#pragma once
// Executable invariants for the data path.
//
// RINGLB_CHECK(cond): a rule the design relies on (a flow has one operation
// in flight, ...). Checked in debug and sanitizer builds (the default
// buildtype keeps asserts: b_ndebug=if-release); compiled out, unevaluated,
// with NDEBUG. Never put a side effect in `cond`.
// RINGLB_ENFORCE(cond): the same, always on; for cheap checks whose failure
// would corrupt other sessions' data or counters if the process went on
// (a buffer handed back to the kernel twice, a count going below zero).
// A failed check logs one error line naming the rule and its place, then
// aborts: a core dump beats a silently wrong proxy.

#include <cstdlib>

#include "lb/log.h"

namespace lb {

[[noreturn]] inline void checkFailed(const char* condition, const char* file, int line) {
  log::error("invariant broken at {}:{}: {}", file, line, condition);
  std::abort();
}

}  // namespace lb

#define RINGLB_ENFORCE(cond) \
  ((cond) ? static_cast<void>(0) : ::lb::checkFailed(#cond, __FILE__, __LINE__))

#ifdef NDEBUG
#define RINGLB_CHECK(cond) static_cast<void>(sizeof(!(cond)))
#else
#define RINGLB_CHECK(cond) RINGLB_ENFORCE(cond)
#endif
