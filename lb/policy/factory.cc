#include "lb/policy/factory.h"

#include <array>
#include <utility>

#include "lb/policy/least_conn.h"
#include "lb/policy/random_two.h"
#include "lb/policy/round_robin.h"

namespace lb::policy {
namespace {

constexpr std::array<std::pair<Kind, std::string_view>, 4> kNames{{
    {Kind::RoundRobin, "round_robin"},
    {Kind::LeastConn, "least_conn"},
    {Kind::ConsistentHash, "consistent_hash"},
    {Kind::RandomTwo, "random_two"},
}};

}  // namespace

std::string_view toString(Kind kind) noexcept {
  for (const auto& [known, name] : kNames) {
    if (known == kind) return name;
  }
  return "unknown";
}

std::optional<Kind> kindFromString(std::string_view name) noexcept {
  for (const auto& [kind, known] : kNames) {
    if (known == name) return kind;
  }
  return std::nullopt;
}

std::unique_ptr<Policy> makePolicy(Kind kind, std::span<const MemberSpec> members, const Options& options) {
  switch (kind) {
    case Kind::RoundRobin:
      return std::make_unique<RoundRobin>(members);
    case Kind::LeastConn:
      return std::make_unique<LeastConn>(members);
    case Kind::ConsistentHash:
      return std::make_unique<ConsistentHash>(members, options.tableSize, options.hashBalanceFactor);
    case Kind::RandomTwo:
      return std::make_unique<RandomTwo>(members);
  }
  return nullptr;
}

}  // namespace lb::policy
