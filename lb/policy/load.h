#pragma once
// Helpers shared by the load-aware policies (least_conn, random_two,
// consistent_hash with bounded loads): reading a possibly missing MemberState
// and comparing loads relative to weight without floating point.

#include <cstdint>

#include "lb/policy/policy.h"

namespace lb::policy {

// Active counts are clamped to [0, kMaxActive] and weights to [1, 2^32 - 1],
// so a cross product active * weight is below 2^63 and never overflows.
inline constexpr int64_t kMaxActive = (int64_t{1} << 31) - 1;

// A weight of 0 is outside MemberSpec's contract (1..256); it counts as 1 so
// that no policy divides by it or starves forever.
constexpr uint32_t effectiveWeight(uint32_t weight) noexcept { return weight == 0 ? 1 : weight; }

// A missing state means "every member usable, none busy".
inline bool isUsable(const PickContext& context, size_t index) {
  return context.state == nullptr || context.state->usable(index);
}

inline int64_t activeOf(const PickContext& context, size_t index) {
  if (context.state == nullptr) return 0;
  int64_t active = context.state->activeConnections(index);
  if (active < 0) return 0;
  return active > kMaxActive ? kMaxActive : active;
}

// True when a carries strictly less load per unit of weight than b:
// activeA / weightA < activeB / weightB, cross-multiplied. Arguments must come
// from activeOf() and effectiveWeight().
constexpr bool lighter(int64_t activeA, uint32_t weightA, int64_t activeB, uint32_t weightB) noexcept {
  return activeA * int64_t{weightB} < activeB * int64_t{weightA};
}

}  // namespace lb::policy
