#include "lb/policy/maglev.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <stdexcept>

#include "config/shared_limits.h"
#include "lb/policy/load.h"

namespace lb::policy {
namespace {

constexpr uint64_t kOffsetSeed = 0x6f6666736574;  // "offset"
constexpr uint64_t kSkipSeed = 0x736b6970;        // "skip"

// One member's walk over the table: slots next, next + skip, ... (mod M).
// Since M is prime and 1 <= skip < M, the walk visits every slot once per M steps.
struct Walker {
  uint32_t member;  // index in the input order
  uint32_t weight;
  uint32_t next;
  uint32_t skip;
  uint64_t credit = 0;
};

// Member indices by name; equal names (a config error) keep their input order.
std::vector<uint32_t> nameOrder(std::span<const MemberSpec> members) {
  std::vector<uint32_t> order(members.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return members[a].name < members[b].name; });
  return order;
}

std::vector<Walker> makeWalkers(std::span<const MemberSpec> members, std::span<const uint32_t> order,
                                uint32_t tableSize) {
  std::vector<Walker> walkers;
  walkers.reserve(order.size());
  for (uint32_t index : order) {
    const std::string& name = members[index].name;
    uint32_t offset = static_cast<uint32_t>(hashString(name, kOffsetSeed) % tableSize);
    uint32_t skip = static_cast<uint32_t>(hashString(name, kSkipSeed) % (tableSize - 1) + 1);
    walkers.push_back({index, effectiveWeight(members[index].weight), offset, skip});
  }
  return walkers;
}

// Rounds over the walkers in name order; a walker claims the next free slot
// of its walk each time its credit reaches maxWeight, so over a round it
// claims weight / maxWeight slots on average. Ends when every slot is owned.
void populate(std::vector<Walker>& walkers, std::vector<uint32_t>& slots) {
  uint64_t maxWeight = 0;
  for (const Walker& walker : walkers) maxWeight = std::max<uint64_t>(maxWeight, walker.weight);
  const uint32_t size = static_cast<uint32_t>(slots.size());
  size_t filled = 0;
  for (;;) {
    for (Walker& walker : walkers) {
      walker.credit += walker.weight;
      if (walker.credit < maxWeight) continue;
      walker.credit -= maxWeight;
      while (slots[walker.next] != MaglevTable::kNoMember) {
        walker.next += walker.skip;
        if (walker.next >= size) walker.next -= size;
      }
      slots[walker.next] = walker.member;
      if (++filled == slots.size()) return;
    }
  }
}

// h_0 is the key's own hash; later probes are independent rehashes of it.
uint64_t probeHash(uint64_t keyHash, uint64_t k) noexcept {
  return k == 0 ? keyHash : mix64(keyHash ^ (k * kGoldenGamma));
}

// In name order, not input order: two hosts listing the members differently
// must still agree on a key that falls through to here.
std::optional<size_t> firstUsableMember(const PickContext& context, const MaglevTable& table) {
  for (uint32_t member : table.byName()) {
    if (isUsable(context, member)) return member;
  }
  return std::nullopt;
}

}  // namespace

bool isPrime(uint64_t n) noexcept {
  if (n < 4) return n >= 2;
  if (n % 2 == 0 || n % 3 == 0) return false;
  for (uint64_t d = 5; d <= n / d; d += 6) {
    if (n % d == 0 || n % (d + 2) == 0) return false;
  }
  return true;
}

uint64_t nextPrime(uint64_t n) noexcept {
  while (!isPrime(n)) ++n;
  return n;
}

std::string validateTableSize(uint64_t tableSize, size_t memberCount) {
  const std::string size = std::to_string(tableSize);
  if (tableSize > kMaxTableSize) {
    return "table_size " + size + " is too large: at most " + std::to_string(kMaxTableSize);
  }
  if (!isPrime(tableSize)) {
    return "table_size " + size + " is not prime (the next prime is " + std::to_string(nextPrime(tableSize)) + ")";
  }
  const uint64_t needed = 100 * uint64_t{memberCount};
  if (tableSize >= needed) return {};
  if (needed > kMaxTableSize) {
    return "too many members (" + std::to_string(memberCount) + ") for consistent_hash: at most " +
           std::to_string(kMaxTableSize / 100);
  }
  return "table_size " + size + " is too small for " + std::to_string(memberCount) +
         " members: it must be a prime >= 100 x members, e.g. " + std::to_string(nextPrime(needed));
}

std::string validateBalanceFactor(double factor) {
  if (factor == 0 || (factor >= config::kMinHashBalanceFactor && factor <= config::kMaxHashBalanceFactor))
    return {};
  char text[160];
  std::snprintf(text, sizeof text, "hash_balance_factor must be 0 (off) or from %g to %g, not %g",
                config::kMinHashBalanceFactor, config::kMaxHashBalanceFactor, factor);
  return text;
}

MaglevTable MaglevTable::build(std::span<const MemberSpec> members, uint32_t tableSize) {
  if (!isPrime(tableSize)) {
    throw std::invalid_argument("maglev table size " + std::to_string(tableSize) + " is not prime");
  }
  if (members.size() >= kNoMember) throw std::invalid_argument("too many members for a maglev table");
  MaglevTable table;
  for (const MemberSpec& member : members) table.weights_.push_back(effectiveWeight(member.weight));
  table.byName_ = nameOrder(members);
  if (members.empty()) return table;
  table.slots_.assign(tableSize, kNoMember);
  std::vector<Walker> walkers = makeWalkers(members, table.byName_, tableSize);
  populate(walkers, table.slots_);
  return table;
}

std::vector<uint32_t> MaglevTable::slotCounts() const {
  std::vector<uint32_t> counts(weights_.size(), 0);
  for (uint32_t member : slots_) ++counts[member];
  return counts;
}

// Totals over the usable members, taken once per pick.
struct ConsistentHash::Bound {
  double factor;
  int64_t active = 0;   // T
  uint64_t weight = 0;  // W
  size_t usable = 0;    // U
};

ConsistentHash::ConsistentHash(std::span<const MemberSpec> members, uint32_t tableSize, double hashBalanceFactor)
    : ConsistentHash(std::make_shared<const MaglevTable>(MaglevTable::build(members, tableSize)),
                     hashBalanceFactor) {}

ConsistentHash::ConsistentHash(std::shared_ptr<const MaglevTable> table, double hashBalanceFactor)
    : table_(std::move(table)), balanceFactor_(hashBalanceFactor) {
  if (!table_) throw std::invalid_argument("consistent_hash needs a table");
  std::string whyNot = validateBalanceFactor(hashBalanceFactor);
  if (!whyNot.empty()) throw std::invalid_argument(whyNot);
}

bool ConsistentHash::acceptable(const PickContext& context, const Bound* bound, uint32_t member) const {
  if (!isUsable(context, member)) return false;
  if (bound == nullptr) return true;
  double cap = std::ceil(bound->factor * static_cast<double>(bound->active + 1) * table_->weight(member) /
                         static_cast<double>(bound->weight));
  return static_cast<double>(activeOf(context, member) + 1) <= cap;
}

// The fallback once the probes have missed: the table's slots in order from
// the key's first probed slot, then (for members owning no slot at all) the
// members in name order.
std::optional<size_t> ConsistentHash::scan(const PickContext& context, const Bound* bound, uint64_t hash) const {
  std::optional<size_t> fallback = firstUsableMember(context, *table_);
  if (!fallback) return std::nullopt;  // checked first: the scan below is O(M)
  const uint32_t size = table_->size();
  const uint32_t start = static_cast<uint32_t>(hash % size);
  std::optional<size_t> firstUsable;
  for (uint32_t i = 0; i < size; ++i) {
    uint32_t slot = start + i < size ? start + i : start + i - size;
    uint32_t member = table_->memberAt(slot);
    if (acceptable(context, bound, member)) return member;
    if (!firstUsable && isUsable(context, member)) firstUsable = member;
  }
  return firstUsable ? firstUsable : fallback;
}

std::optional<size_t> ConsistentHash::pick(const PickContext& context) {
  const size_t count = table_->memberCount();
  if (count == 0) return std::nullopt;
  std::optional<Bound> bound;
  if (balanceFactor_ > 0) {
    bound = Bound{balanceFactor_};
    for (size_t i = 0; i < count; ++i) {
      if (!isUsable(context, i)) continue;
      bound->active += activeOf(context, i);
      bound->weight += table_->weight(i);
      ++bound->usable;
    }
    if (bound->usable == 0) return std::nullopt;
  }
  const Bound* boundPtr = bound ? &*bound : nullptr;
  const uint64_t begin = context.attempt;
  for (uint64_t k = begin; k < begin + kMaxProbes; ++k) {
    uint32_t member = table_->memberFor(probeHash(context.keyHash, k));
    if (acceptable(context, boundPtr, member)) return member;
  }
  return scan(context, boundPtr, probeHash(context.keyHash, begin));
}

}  // namespace lb::policy
