#include "lb/preview.h"

#include <fmt/format.h>

#include "config/diff.h"
#include "lb/policy/maglev.h"

namespace lb {
namespace {

using Out = std::back_insert_iterator<std::string>;

std::vector<policy::MemberSpec> primarySpecs(const config::Pool& pool) {
  std::vector<policy::MemberSpec> specs;
  for (const config::Member& m : pool.members)
    if (!m.backup) specs.push_back({m.name, static_cast<uint32_t>(m.weight)});
  return specs;
}

// The share of table slots (the key space) whose member changes between the
// two pools' primary tables, compared by member name.
double movedShare(const config::Pool& before, const config::Pool& after) {
  auto oldSpecs = primarySpecs(before);
  auto newSpecs = primarySpecs(after);
  if (oldSpecs.empty() || newSpecs.empty()) return 1.0;
  auto oldTable = policy::MaglevTable::build(oldSpecs, before.tableSize);
  auto newTable = policy::MaglevTable::build(newSpecs, after.tableSize);
  // Tables of different sizes are compared over the same hash values.
  constexpr uint64_t kSamples = 200'000;
  uint64_t moved = 0;
  for (uint64_t i = 0; i < kSamples; ++i) {
    uint64_t hash = policy::mix64(i * policy::kGoldenGamma);
    if (oldSpecs[oldTable.memberFor(hash)].name != newSpecs[newTable.memberFor(hash)].name) ++moved;
  }
  return static_cast<double>(moved) / kSamples;
}

// True when the primary Maglev tables could differ: members, weights or size.
bool tableInputsDiffer(const config::Pool& before, const config::Pool& after) {
  auto a = primarySpecs(before);
  auto b = primarySpecs(after);
  if (before.tableSize != after.tableSize || a.size() != b.size()) return true;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].name != b[i].name || a[i].weight != b[i].weight) return true;
  return false;
}

}  // namespace

std::string previewReload(const config::Config& before, const config::Config& after) {
  config::Difference difference = config::difference(before, after);
  std::string out;
  for (const std::string& line : difference.process) fmt::format_to(Out(out), "{}\n", line);
  for (const std::string& line : difference.listeners) fmt::format_to(Out(out), "{}\n", line);
  for (const config::PoolDifference& pool : difference.pools) {
    std::string name = config::printable(pool.name, std::string_view::npos);
    if (pool.kind == config::PoolDifference::Kind::Removed) {
      fmt::format_to(Out(out), "- pool {}\n", name);
      continue;
    }
    const config::Pool& now = *after.findPool(pool.name);
    if (pool.kind == config::PoolDifference::Kind::Added) {
      size_t discover = now.discover.size();
      std::string discovery =
          discover == 0 ? "" : fmt::format(", {} {}", discover, discover == 1 ? "discovery" : "discoveries");
      fmt::format_to(Out(out), "+ pool {} ({} members{})\n", name, now.members.size(), discovery);
      continue;
    }
    if (pool.changes.empty()) {
      fmt::format_to(Out(out), "pool {}: unchanged\n", name);
      continue;
    }
    fmt::format_to(Out(out), "pool {}:\n", name);
    for (const std::string& line : pool.changes) fmt::format_to(Out(out), "  {}\n", line);
    const config::Pool& old = *before.findPool(pool.name);
    if (old.balance != config::Balance::ConsistentHash || now.balance != config::Balance::ConsistentHash ||
        !tableInputsDiffer(old, now))
      continue;
    // The file holds only the static members: the tables discovery builds
    // are known once DNS answers.
    if (!old.discover.empty() || !now.discover.empty())
      out += "  consistent-hash keys that would move: unknown (members from DNS)\n";
    else
      fmt::format_to(Out(out), "  consistent-hash keys that would move: {:.2f}%\n", 100.0 * movedShare(old, now));
  }
  return out;
}

}  // namespace lb
