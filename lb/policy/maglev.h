#pragma once
// consistent_hash: Maglev hashing (Eisenbud et al., NSDI'16) with weights and
// optional bounded loads.
//
// MaglevTable is a pure function of the member list: an immutable array of M
// slots (M prime), each holding the index of a member in the input order.
// Members take part sorted by their stable name, so the input order never
// changes which name owns a slot. Each member walks its own permutation of the
// slots (offset and skip from two independent hashes of its name) and claims
// the next free one when its turn comes. Turns are weighted: every round each
// member gains credit equal to its weight and claims a slot each time its
// credit reaches the largest weight, so slot shares follow the weights (equal
// weights: every member gets floor(M/N) or ceil(M/N) slots).
//
// Picking, for key hash h and attempt a: the key's preference order is the
// sequence of slots h_k % M, where h_0 = h and h_k = mix64(h ^ k * gamma)
// for k >= 1. A pick walks it from k = a (so a retry perturbs the hash and
// lands on the key's next preference) for at most kMaxProbes steps and takes
// the first member that is usable and, with bounded loads, under its bound.
// Because every key follows only its own order, a member going down moves
// only the keys it held. If all probes miss (most members down, or the
// table's owners all at their bound) a linear scan of the table from the
// first probed slot takes the first acceptable member; its cost is O(M) in
// the worst case, and it happens only when nearly all members are unusable
// (with half the members down a key falls through with odds 2^-64).
//
// Bounded loads (Mirrokni et al., "Consistent Hashing with Bounded Loads"),
// on when hashBalanceFactor > 0: with U the usable members, T their active
// connections and W their weights, member i is acceptable only if
//   active_i + 1 <= ceil(factor * (T + 1) * weight_i / W)
// i.e. it stays within factor times its fair share after taking this
// connection. With equal weights that is ceil(factor * average, counting the
// new connection). For factor >= 1 the least-loaded usable member always
// qualifies; should none (rounding), the first usable member met wins. This
// costs one pass over the members' states per pick.

#include <memory>
#include <string>
#include <vector>

#include "lb/policy/hash.h"
#include "lb/policy/policy.h"

namespace lb::policy {

inline constexpr uint32_t kDefaultTableSize = 65537;
inline constexpr uint32_t kMaxTableSize = 16777213;  // the largest prime below 2^24
inline constexpr uint32_t kMaxProbes = 64;

// Trial division: O(sqrt(n)), fine for table sizes (n < 2^32).
bool isPrime(uint64_t n) noexcept;
// The smallest prime >= n (for error messages).
uint64_t nextPrime(uint64_t n) noexcept;

// Empty when tableSize is usable for memberCount members: prime, at least
// 100 slots per member (the paper's bound for ~1% imbalance) and at most
// kMaxTableSize. Otherwise a sentence for the config error, naming a fix.
// config/ cannot include lb/; it repeats these three checks.
std::string validateTableSize(uint64_t tableSize, size_t memberCount);
// Empty when factor is 0 (off) or within the limits config/ validates
// (config/shared_limits.h: 1 to 100).
std::string validateBalanceFactor(double factor);

class MaglevTable {
 public:
  static constexpr uint32_t kNoMember = UINT32_MAX;

  // Throws std::invalid_argument if tableSize is not prime: a member's walk
  // would then not visit every slot and population might never end. Member
  // count and the 100x rule are not checked (see validateTableSize).
  static MaglevTable build(std::span<const MemberSpec> members, uint32_t tableSize = kDefaultTableSize);

  uint32_t size() const noexcept { return static_cast<uint32_t>(slots_.size()); }
  size_t memberCount() const noexcept { return weights_.size(); }
  // Index (in the input order) of the member owning a slot; slot < size().
  uint32_t memberAt(uint64_t slot) const noexcept { return slots_[slot]; }
  // kNoMember when there are no members (a pool whose members all come
  // from DNS, before it answers).
  uint32_t memberFor(uint64_t hash) const noexcept {
    return slots_.empty() ? kNoMember : slots_[hash % slots_.size()];
  }
  uint32_t weight(size_t member) const noexcept { return weights_[member]; }
  // Every member's index (in the input order), sorted by name.
  std::span<const uint32_t> byName() const noexcept { return byName_; }
  // Slots owned by each member, in the input order.
  std::vector<uint32_t> slotCounts() const;

 private:
  // Invariant: every slot holds a valid member index when there is at least
  // one member; with no members there are no slots.
  std::vector<uint32_t> slots_;
  std::vector<uint32_t> weights_;  // effective weights, >= 1, input order
  std::vector<uint32_t> byName_;   // input-order indices sorted by name
};

class ConsistentHash final : public Policy {
 public:
  // Builds its own table (throws like MaglevTable::build and on a factor
  // that validateBalanceFactor rejects).
  ConsistentHash(std::span<const MemberSpec> members, uint32_t tableSize, double hashBalanceFactor);
  // Shares a table built once per snapshot by every worker's policy.
  ConsistentHash(std::shared_ptr<const MaglevTable> table, double hashBalanceFactor);

  std::optional<size_t> pick(const PickContext& context) override;
  const MaglevTable& table() const noexcept { return *table_; }

 private:
  struct Bound;  // the bounded-loads totals of one pick
  bool acceptable(const PickContext& context, const Bound* bound, uint32_t member) const;
  std::optional<size_t> scan(const PickContext& context, const Bound* bound, uint64_t hash) const;

  std::shared_ptr<const MaglevTable> table_;  // never null
  double balanceFactor_;                      // 0: off, else within config/shared_limits.h
};

}  // namespace lb::policy
