#include "health/passive_failures.h"

namespace health {
namespace {

constexpr uint64_t kCountMask = 0xffff'ffffu;
constexpr uint64_t epochOf(uint64_t word) { return word >> 32; }
constexpr uint64_t countOf(uint64_t word) { return word & kCountMask; }

}  // namespace

// A new epoch with the count at 0, unless the count already is 0. The count
// overflowing into the epoch (2^32 failures in a row) reads as one more reset.
void PassiveFailureCounter::recordSuccess() noexcept {
  uint64_t word = word_.load(std::memory_order_relaxed);
  while (countOf(word) != 0 &&
         !word_.compare_exchange_weak(word, (epochOf(word) + 1) << 32, std::memory_order_relaxed)) {
  }
}

PassiveChange passiveChange(uint64_t seen, uint64_t now) noexcept {
  if (epochOf(now) != epochOf(seen)) return {true, countOf(now)};
  return {false, countOf(now) > countOf(seen) ? countOf(now) - countOf(seen) : 0};
}

}  // namespace health
