#pragma once
// The interface every balancing policy implements. Policies are pure: no
// sockets, no clock, no global state. Randomness comes in through the context.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace lb::policy {

// What a policy is built from: one entry per member, in the pool's order.
// `name` is the member's stable identity (consistent hashing sorts by it).
struct MemberSpec {
  std::string name;
  uint32_t weight = 1;  // 1..256
};

// The live state a policy may consult at pick time, indexed like the specs the
// policy was built from. Implemented by the pool (from its snapshot and its
// shared counters) and by fakes in tests.
class MemberState {
 public:
  virtual ~MemberState() = default;
  // False when the member must not get this connection: down, draining, or
  // already tried by this connection.
  virtual bool usable(size_t index) const = 0;
  // Active connections on the member, across all workers.
  virtual int64_t activeConnections(size_t index) const = 0;
};

// A source of uniformly random 64-bit values (injected so tests are exact).
class Random {
 public:
  virtual ~Random() = default;
  virtual uint64_t next() = 0;
};

struct PickContext {
  const MemberState* state = nullptr;
  uint64_t keyHash = 0;     // hash of the client key (consistent_hash)
  uint32_t attempt = 0;     // 0 for the first pick of a connection, 1.. for retries
  Random* random = nullptr; // random_two
};

class Policy {
 public:
  virtual ~Policy() = default;
  // The index of the chosen member, or nullopt when no member is usable.
  virtual std::optional<size_t> pick(const PickContext& context) = 0;
};

}  // namespace lb::policy
