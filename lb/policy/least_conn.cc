#include "lb/policy/least_conn.h"

#include "lb/policy/load.h"

namespace lb::policy {

LeastConn::LeastConn(std::span<const MemberSpec> members) {
  weights_.reserve(members.size());
  for (const MemberSpec& member : members) weights_.push_back(effectiveWeight(member.weight));
}

std::optional<size_t> LeastConn::pick(const PickContext& context) {
  const size_t count = weights_.size();
  std::optional<size_t> best;
  int64_t bestActive = 0;
  for (size_t step = 0; step < count; ++step) {
    size_t i = cursor_ + step;
    if (i >= count) i -= count;
    if (!isUsable(context, i)) continue;
    int64_t active = activeOf(context, i);
    // Strictly lighter only: a tie keeps the member met first from cursor_.
    if (!best || lighter(active, weights_[i], bestActive, weights_[*best])) {
      best = i;
      bestActive = active;
    }
  }
  if (best) cursor_ = *best + 1 == count ? 0 : *best + 1;
  return best;
}

}  // namespace lb::policy
