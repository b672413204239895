#include "lb/policy/random_two.h"

#include "lb/policy/hash.h"
#include "lb/policy/load.h"

namespace lb::policy {

RandomTwo::RandomTwo(std::span<const MemberSpec> members) {
  weights_.reserve(members.size());
  for (const MemberSpec& member : members) weights_.push_back(effectiveWeight(member.weight));
  usable_.reserve(members.size());
}

uint64_t RandomTwo::draw(const PickContext& context) {
  if (context.random != nullptr) return context.random->next();
  fallbackState_ += kGoldenGamma;
  return mix64(fallbackState_);
}

size_t RandomTwo::lighterOf(const PickContext& context, size_t first, size_t second) const {
  bool secondWins = lighter(activeOf(context, second), weights_[second], activeOf(context, first), weights_[first]);
  return secondWins ? second : first;
}

std::optional<size_t> RandomTwo::pick(const PickContext& context) {
  const size_t count = weights_.size();
  // Fast path: two draws among all members, kept when both are usable; it is
  // uniform over usable pairs, and so is the slow path that follows a miss.
  if (count >= 2) {
    size_t first = draw(context) % count;
    size_t second = draw(context) % (count - 1);
    if (second >= first) ++second;
    if (isUsable(context, first) && isUsable(context, second)) return lighterOf(context, first, second);
  }
  usable_.clear();
  for (size_t i = 0; i < count; ++i) {
    if (isUsable(context, i)) usable_.push_back(i);
  }
  if (usable_.empty()) return std::nullopt;
  if (usable_.size() == 1) return usable_[0];
  size_t first = draw(context) % usable_.size();
  size_t second = draw(context) % (usable_.size() - 1);
  if (second >= first) ++second;
  return lighterOf(context, usable_[first], usable_[second]);
}

}  // namespace lb::policy
