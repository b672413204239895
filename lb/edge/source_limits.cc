#include "lb/edge/source_limits.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>

namespace lb::edge {

namespace {

// Token bucket in integer fixed point: a token is kUnitsPerToken units and
// a bucket refills `rate` units per nanosecond, so `rate` tokens a second,
// exactly (no rounding, no drift). A bucket holds at most rate tokens (the
// burst) and is full again at most one second after it was empty, so
// elapsed time is capped at one second: rate <= 2^31 keeps every product
// below 2^62.
constexpr int64_t kUnitsPerToken = 1'000'000'000;
constexpr int64_t kFullRefillNs = 1'000'000'000;

constexpr size_t kMaxStripes = 64;
constexpr size_t kMinSourcesPerStripe = 64;
// Slots an admit of a new source looks at for an idle entry when its
// stripe is full, from the new source's home slot on: bounded work, and
// spread as evenly over the table as the hash. (A sweeping clock hand was
// tried first: it leaves the table sparse behind the hand and packed ahead
// of it, and the packed run made each erase walk ~350 slots.)
constexpr uint32_t kEvictionScan = 128;

enum class Kind : uint8_t { Empty, Ipv4, Ipv6Prefix };

struct SourceKey {
  uint64_t bits = 0;  // the IPv4 address, or the top 64 bits of the IPv6 one
  Kind kind = Kind::Empty;
};

std::optional<SourceKey> sourceKeyOf(const sockaddr_storage& source) {
  if (source.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(source);
    return SourceKey{ntohl(in.sin_addr.s_addr), Kind::Ipv4};
  }
  if (source.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(source);
    const uint8_t* bytes = in6.sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
      uint32_t v4;
      std::memcpy(&v4, bytes + 12, 4);
      return SourceKey{ntohl(v4), Kind::Ipv4};
    }
    uint64_t prefix = 0;
    for (int i = 0; i < 8; ++i) prefix = prefix << 8 | bytes[i];
    return SourceKey{prefix, Kind::Ipv6Prefix};
  }
  return std::nullopt;
}

uint64_t mix64(uint64_t x) {  // a bijective 64-bit finalizer (splitmix64's)
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

int64_t nanosOf(SourceLimits::Clock::time_point now) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
}

}  // namespace

struct SourceLimits::Table {
  struct Entry {
    uint64_t key = 0;
    int64_t tokens = 0;      // units; 0..full
    int64_t refilledAt = 0;  // ns on the callers' clock when `tokens` was brought up to date
    uint32_t open = 0;       // admitted and not yet released
    Kind kind = Kind::Empty;
  };
  static_assert(sizeof(Entry) == 32);

  // One lock and one share of the capacity. Slots are an open-addressing
  // table (linear probing, backward-shift deletion, so no tombstones) of
  // `slotCount` entries, at most `limit` of them used (load <= 2/3).
  // Invariant: `idle` counts the used entries with open == 0; with no rate
  // limit there are none (an entry goes when its last connection does).
  struct alignas(64) Stripe {
    mutable std::mutex mutex;
    Entry* slots = nullptr;
    uint32_t slotCount = 0;
    uint32_t limit = 0;
    uint32_t used = 0;
    uint32_t idle = 0;
  };

  Table(SourceLimitSettings settings, uint64_t seed);

  uint64_t hashOf(const SourceKey& key) const {
    return mix64(mix64(key.bits ^ seed0) ^ (seed1 + static_cast<uint64_t>(key.kind)));
  }
  Stripe& stripeOf(uint64_t hash) { return stripes[stripeCount == 1 ? 0 : hash >> stripeShift]; }
  const Stripe& stripeOf(uint64_t hash) const { return stripes[stripeCount == 1 ? 0 : hash >> stripeShift]; }
  uint32_t homeOf(const Stripe& stripe, uint64_t hash) const {
    return static_cast<uint32_t>((static_cast<uint64_t>(static_cast<uint32_t>(hash)) * stripe.slotCount) >> 32);
  }

  // The slot holding `key`, or the empty slot where it would go (found false).
  uint32_t probe(const Stripe& stripe, const SourceKey& key, uint64_t hash, bool* found) const;
  void erase(Stripe& stripe, uint32_t slot);
  void refill(Entry& entry, int64_t nowNs) const;
  bool isIdle(Entry& entry, int64_t nowNs) const;
  bool reclaimIdle(Stripe& stripe, uint32_t from, int64_t nowNs);

  int maxConnections;
  int64_t rate;       // tokens per second; 0: no rate limit
  int64_t fullUnits;  // rate * kUnitsPerToken: a full bucket
  uint64_t seed0, seed1;
  size_t stripeCount;
  int stripeShift;  // 64 - log2(stripeCount): the hash's top bits choose the stripe
  std::unique_ptr<Stripe[]> stripes;
  size_t entryCount;
  std::unique_ptr<Entry[]> entries;  // every stripe's slots, allocated once
};

SourceLimits::Table::Table(SourceLimitSettings settings, uint64_t seed)
    : maxConnections(std::max(settings.maxConnections, 0)),
      rate(std::max(settings.ratePerSecond, 0)),
      fullUnits(rate * kUnitsPerToken),
      seed0(mix64(seed)),
      seed1(mix64(seed ^ 0x9e3779b97f4a7c15ULL)) {
  size_t capacity = static_cast<size_t>(std::clamp(settings.capacity, 1, 1 << 26));
  stripeCount = 1;
  while (stripeCount * 2 <= kMaxStripes && capacity / (stripeCount * 2) >= kMinSourcesPerStripe) stripeCount *= 2;
  stripeShift = 64;
  for (size_t n = stripeCount; n > 1; n /= 2) --stripeShift;

  size_t largestShare = (capacity + stripeCount - 1) / stripeCount;
  uint32_t slotsPerStripe = static_cast<uint32_t>(largestShare + largestShare / 2 + 1);
  entryCount = stripeCount * slotsPerStripe;
  entries = std::make_unique<Entry[]>(entryCount);
  stripes = std::make_unique<Stripe[]>(stripeCount);
  for (size_t i = 0; i < stripeCount; ++i) {
    Stripe& stripe = stripes[i];
    stripe.slots = entries.get() + i * slotsPerStripe;
    stripe.slotCount = slotsPerStripe;
    // The shares add up to `capacity` exactly.
    stripe.limit = static_cast<uint32_t>(capacity / stripeCount + (i < capacity % stripeCount ? 1 : 0));
  }
}

uint32_t SourceLimits::Table::probe(const Stripe& stripe, const SourceKey& key, uint64_t hash, bool* found) const {
  // Terminates: used <= limit < slotCount, so an empty slot exists.
  for (uint32_t slot = homeOf(stripe, hash);; slot = slot + 1 == stripe.slotCount ? 0 : slot + 1) {
    const Entry& entry = stripe.slots[slot];
    if (entry.kind == Kind::Empty) {
      *found = false;
      return slot;
    }
    if (entry.kind == key.kind && entry.key == key.bits) {
      *found = true;
      return slot;
    }
  }
}

void SourceLimits::Table::erase(Stripe& stripe, uint32_t hole) {
  if (stripe.slots[hole].open == 0) --stripe.idle;
  --stripe.used;
  // Backward shift: pull each later entry of the run into the hole when
  // its home is not between the hole and itself, so every entry stays
  // reachable from its home without tombstones.
  uint32_t n = stripe.slotCount;
  for (uint32_t slot = hole + 1 == n ? 0 : hole + 1;; slot = slot + 1 == n ? 0 : slot + 1) {
    Entry& entry = stripe.slots[slot];
    if (entry.kind == Kind::Empty) break;
    uint32_t home = homeOf(stripe, hashOf(SourceKey{entry.key, entry.kind}));
    uint32_t fromHome = (slot + n - home) % n;
    uint32_t fromHole = (slot + n - hole) % n;
    if (fromHome >= fromHole) {
      stripe.slots[hole] = entry;
      hole = slot;
    }
  }
  stripe.slots[hole] = Entry{};
}

void SourceLimits::Table::refill(Entry& entry, int64_t nowNs) const {
  if (nowNs <= entry.refilledAt) return;  // another thread's later `now` got here first
  int64_t elapsed = std::min(nowNs - entry.refilledAt, kFullRefillNs);
  entry.tokens = std::min(fullUnits, entry.tokens + elapsed * rate);
  entry.refilledAt = nowNs;
}

// Idle: nothing distinguishes the entry from a source never seen, so
// dropping it loses nothing.
bool SourceLimits::Table::isIdle(Entry& entry, int64_t nowNs) const {
  if (entry.open != 0) return false;
  if (rate == 0) return true;
  refill(entry, nowNs);
  return entry.tokens == fullUnits;
}

bool SourceLimits::Table::reclaimIdle(Stripe& stripe, uint32_t from, int64_t nowNs) {
  if (stripe.idle == 0) return false;  // all active: refuse at once
  uint32_t steps = std::min(kEvictionScan, stripe.slotCount);
  for (uint32_t step = 0, slot = from; step < steps; ++step, slot = slot + 1 == stripe.slotCount ? 0 : slot + 1) {
    Entry& entry = stripe.slots[slot];
    if (entry.kind != Kind::Empty && isIdle(entry, nowNs)) {
      erase(stripe, slot);
      return true;
    }
  }
  return false;
}

SourceLimits::SourceLimits(SourceLimitSettings settings)
    : SourceLimits(settings, (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}()) {}

SourceLimits::SourceLimits(SourceLimitSettings settings, uint64_t hashSeed)
    : table_(std::make_unique<Table>(settings, hashSeed)), settings_(settings) {}

SourceLimits::~SourceLimits() = default;

bool SourceLimits::active() const { return table_->maxConnections > 0 || table_->rate > 0; }

Admission SourceLimits::admit(const sockaddr_storage& source, Clock::time_point now) {
  std::optional<SourceKey> key = sourceKeyOf(source);
  if (!key || !active()) return Admission::Admitted;
  Table& table = *table_;
  int64_t nowNs = nanosOf(now);
  uint64_t hash = table.hashOf(*key);
  Table::Stripe& stripe = table.stripeOf(hash);
  std::lock_guard lock(stripe.mutex);

  bool found;
  uint32_t slot = table.probe(stripe, *key, hash, &found);
  if (found) {
    Table::Entry& entry = stripe.slots[slot];
    if (table.maxConnections > 0 && entry.open >= static_cast<uint32_t>(table.maxConnections))
      return Admission::OverLimit;
    if (table.rate > 0) {
      table.refill(entry, nowNs);
      if (entry.tokens < kUnitsPerToken) return Admission::OverRate;
      entry.tokens -= kUnitsPerToken;
    }
    if (entry.open++ == 0) --stripe.idle;
    return Admission::Admitted;
  }

  if (stripe.used >= stripe.limit) {
    if (!table.reclaimIdle(stripe, table.homeOf(stripe, hash), nowNs)) return Admission::TableFull;
    slot = table.probe(stripe, *key, hash, &found);  // entries moved
  }
  // A new source: one connection open, one token spent from a full bucket.
  Table::Entry& entry = stripe.slots[slot];
  entry.key = key->bits;
  entry.kind = key->kind;
  entry.open = 1;
  entry.tokens = table.fullUnits - (table.rate > 0 ? kUnitsPerToken : 0);
  entry.refilledAt = nowNs;
  ++stripe.used;
  return Admission::Admitted;
}

void SourceLimits::release(const sockaddr_storage& source) {
  std::optional<SourceKey> key = sourceKeyOf(source);
  if (!key) return;
  Table& table = *table_;
  uint64_t hash = table.hashOf(*key);
  Table::Stripe& stripe = table.stripeOf(hash);
  std::lock_guard lock(stripe.mutex);

  bool found;
  uint32_t slot = table.probe(stripe, *key, hash, &found);
  if (!found) return;  // never admitted (or limits off): nothing to undo
  Table::Entry& entry = stripe.slots[slot];
  if (entry.open == 0) return;  // a release too many
  if (--entry.open > 0) return;
  // Without a rate limit the entry holds nothing more; with one, it stays
  // until its bucket has refilled (then it is idle and reclaimable).
  ++stripe.idle;
  if (table.rate == 0) table.erase(stripe, slot);
}

size_t SourceLimits::trackedSources() const {
  size_t total = 0;
  for (size_t i = 0; i < table_->stripeCount; ++i) {
    const Table::Stripe& stripe = table_->stripes[i];
    std::lock_guard lock(stripe.mutex);
    total += stripe.used;
  }
  return total;
}

size_t SourceLimits::memoryBytes() const {
  return sizeof(*this) + sizeof(Table) + table_->stripeCount * sizeof(Table::Stripe) +
         table_->entryCount * sizeof(Table::Entry);
}

int SourceLimits::openConnections(const sockaddr_storage& source) const {
  std::optional<SourceKey> key = sourceKeyOf(source);
  if (!key) return 0;
  const Table& table = *table_;
  uint64_t hash = table.hashOf(*key);
  const Table::Stripe& stripe = table.stripeOf(hash);
  std::lock_guard lock(stripe.mutex);
  bool found;
  uint32_t slot = table.probe(stripe, *key, hash, &found);
  return found ? static_cast<int>(stripe.slots[slot].open) : 0;
}

}  // namespace lb::edge
