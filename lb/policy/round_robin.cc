#include "lb/policy/round_robin.h"

#include "lb/policy/load.h"

namespace lb::policy {

RoundRobin::RoundRobin(std::span<const MemberSpec> members) {
  weights_.reserve(members.size());
  for (const MemberSpec& member : members) weights_.push_back(effectiveWeight(member.weight));
  current_.assign(weights_.size(), 0);
}

// Every usable member gains its weight; the one with the most credit wins and
// pays back the total. Unusable members (down, or already tried by this
// connection) neither gain nor pay. A context without state makes every
// member usable, as for the other policies.
std::optional<size_t> RoundRobin::pick(const PickContext& context) {
  std::optional<size_t> best;
  int64_t total = 0;
  for (size_t i = 0; i < weights_.size(); ++i) {
    if (!isUsable(context, i)) continue;
    current_[i] += weights_[i];
    total += weights_[i];
    if (!best || current_[i] > current_[*best]) best = i;
  }
  if (best) current_[*best] -= total;
  return best;
}

}  // namespace lb::policy
