#pragma once
// Builds a policy by kind. lb/policy has its own Kind (config/ has its own
// enum and lb/ maps one onto the other) so that policies never depend on
// config/.

#include <memory>
#include <string_view>

#include "lb/policy/maglev.h"
#include "lb/policy/policy.h"

namespace lb::policy {

enum class Kind { RoundRobin, LeastConn, ConsistentHash, RandomTwo };

struct Options {
  uint32_t tableSize = kDefaultTableSize;  // consistent_hash: prime, see validateTableSize
  double hashBalanceFactor = 0;            // consistent_hash: 0 = off, else 1..100 (config/shared_limits.h)
};

// The config spelling ("round_robin", "least_conn", ...).
std::string_view toString(Kind kind) noexcept;
std::optional<Kind> kindFromString(std::string_view name) noexcept;

// A fresh policy for one worker. For ConsistentHash this builds a table;
// to share one table between workers, build a MaglevTable once and construct
// ConsistentHash from it. Throws std::invalid_argument on options that
// validateTableSize's primality check or validateBalanceFactor reject;
// returns nullptr only for a value outside Kind.
std::unique_ptr<Policy> makePolicy(Kind kind, std::span<const MemberSpec> members, const Options& options = {});

}  // namespace lb::policy
