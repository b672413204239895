#pragma once
// Passive health accounting: the connect outcomes the data plane sees for one
// member, counted by any worker and read by the control thread at its tick.
//
// One 64-bit word: the low 32 bits count failed connects since the last
// success (a failure adds one), the high 32 bits count the successes that
// ended a run of failures (an epoch). A reader keeps the word it saw last and
// compares: a new epoch means a success came in between, however far the
// failure count has climbed again since, so no reset is missed. A success
// that ends no run (the count is already 0) writes nothing: the common case
// costs one load.

#include <atomic>
#include <cstdint>

namespace health {

class alignas(64) PassiveFailureCounter {
 public:
  // Data plane, any thread.
  void recordFailure() noexcept { word_.fetch_add(1, std::memory_order_relaxed); }
  void recordSuccess() noexcept;
  // The word to keep and compare with passiveChange().
  uint64_t snapshot() const noexcept { return word_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> word_{0};
};

// What happened between two snapshots: whether a success reset the run of
// failures (report that first), then how many failures came after it.
struct PassiveChange {
  bool reset = false;
  uint64_t failures = 0;
};

PassiveChange passiveChange(uint64_t seen, uint64_t now) noexcept;

}  // namespace health
