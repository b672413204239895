#pragma once
// Power of two choices: draw two distinct usable members uniformly at random
// and take the one with the smaller active / weight (a tie goes to the first
// drawn). Nearly as balanced as least_conn, without its O(members) scan and
// without every worker piling onto the same least-loaded member.
//
// Draws, for exact tests: with N members, first a = r1 % N and
// b = r2 % (N - 1), b += (b >= a). If both are usable they are the pair.
// Otherwise the usable members are listed in index order (U of them) and the
// pair is drawn the same way from that list; U == 1 takes its member with no
// draw, U == 0 gives nullopt. Modulo bias is below N / 2^64, i.e. negligible.

#include <vector>

#include "lb/policy/policy.h"

namespace lb::policy {

class RandomTwo final : public Policy {
 public:
  explicit RandomTwo(std::span<const MemberSpec> members);
  std::optional<size_t> pick(const PickContext& context) override;

 private:
  uint64_t draw(const PickContext& context);
  size_t lighterOf(const PickContext& context, size_t first, size_t second) const;

  std::vector<uint32_t> weights_;  // effective weights, >= 1
  std::vector<size_t> usable_;     // scratch for the slow path, kept to avoid allocating
  // Used only when the context carries no Random (splitmix64 sequence).
  uint64_t fallbackState_ = 0x5deece66d;
};

}  // namespace lb::policy
