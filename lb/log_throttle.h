#pragma once
// Keeps a log line that can repeat at a high rate (every failed accept,
// every client refused for lack of descriptors) to one line per period.
// The lines held back are counted and reported with the next one let
// through. The caller passes the clock in; nothing here reads it.

#include <cstdint>

namespace lb {

class LogThrottle {
 public:
  explicit LogThrottle(uint64_t periodNs = 1'000'000'000) : periodNs_(periodNs) {}

  // True when a line may be written at `nowNs`; then *heldBack is how many
  // lines were held back since the last one written.
  bool allow(uint64_t nowNs, uint64_t* heldBack) {
    if (written_ && nowNs >= lastNs_ && nowNs - lastNs_ < periodNs_) {
      ++heldBack_;
      return false;
    }
    *heldBack = heldBack_;
    heldBack_ = 0;
    lastNs_ = nowNs;
    written_ = true;
    return true;
  }

 private:
  uint64_t periodNs_;
  uint64_t lastNs_ = 0;
  uint64_t heldBack_ = 0;
  bool written_ = false;
};

}  // namespace lb
