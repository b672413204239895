#pragma once
// Smooth weighted round robin: over any window of sum(weights) picks with all
// members usable, each member is chosen exactly `weight` times, and heavy
// members are interleaved with light ones rather than chosen in a burst
// (weights 5,1,1 give a a b a c a a).

#include <vector>

#include "lb/policy/policy.h"

namespace lb::policy {

class RoundRobin final : public Policy {
 public:
  explicit RoundRobin(std::span<const MemberSpec> members);
  std::optional<size_t> pick(const PickContext& context) override;

 private:
  std::vector<int64_t> weights_;  // effective weights, >= 1
  // Invariant: after each pick over the same usable set, current_ sums to 0.
  std::vector<int64_t> current_;
};

}  // namespace lb::policy
