#pragma once
// Least connections, weighted: picks the usable member with the smallest
// active / weight (compared by cross-multiplying). Among equally loaded
// members the choice rotates, so members that stay tied share evenly.
// Cost: one usable() and one activeConnections() call per member per pick.

#include <vector>

#include "lb/policy/policy.h"

namespace lb::policy {

class LeastConn final : public Policy {
 public:
  explicit LeastConn(std::span<const MemberSpec> members);
  std::optional<size_t> pick(const PickContext& context) override;

 private:
  std::vector<uint32_t> weights_;  // effective weights, >= 1
  // Where the scan starts; the first of several equally light members from
  // here wins. Invariant: cursor_ < weights_.size(), or 0 when there are none.
  // After a pick it moves just past the chosen member.
  size_t cursor_ = 0;
};

}  // namespace lb::policy
