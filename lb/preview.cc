#include "lb/preview.h"

#include <fmt/format.h>

#include <map>

#include "lb/policy/maglev.h"

namespace lb {
namespace {

using Out = std::back_insert_iterator<std::string>;

const config::Member* findMember(const config::Pool& pool, const std::string& name) {
  for (const config::Member& m : pool.members)
    if (m.name == name) return &m;
  return nullptr;
}

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

void poolChanges(std::string& out, const config::Pool& before, const config::Pool& after) {
  std::vector<std::string> added, removed, changed;
  for (const config::Member& m : after.members) {
    const config::Member* old = findMember(before, m.name);
    if (!old)
      added.push_back(fmt::format("{} ({})", m.name, m.address.text));
    else if (old->address.text != m.address.text)
      changed.push_back(fmt::format("{} address {} -> {}", m.name, old->address.text, m.address.text));
    else if (old->weight != m.weight)
      changed.push_back(fmt::format("{} weight {} -> {}", m.name, old->weight, m.weight));
    else if (old->backup != m.backup)
      changed.push_back(fmt::format("{} backup {} -> {}", m.name, old->backup, m.backup));
  }
  for (const config::Member& m : before.members)
    if (!findMember(after, m.name)) removed.push_back(fmt::format("{} ({})", m.name, m.address.text));
  fmt::format_to(Out(out), "pool {}:", after.name);
  if (added.empty() && removed.empty() && changed.empty() && before.balance == after.balance) {
    out += " unchanged\n";
    return;
  }
  out += "\n";
  if (before.balance != after.balance)
    fmt::format_to(Out(out), "  balance {} -> {}\n", config::toString(before.balance),
                   config::toString(after.balance));
  for (const auto& m : added) fmt::format_to(Out(out), "  + member {}\n", m);
  for (const auto& m : removed) fmt::format_to(Out(out), "  - member {}\n", m);
  for (const auto& m : changed) fmt::format_to(Out(out), "  ~ member {}\n", m);
  if (before.balance == config::Balance::ConsistentHash &&
      after.balance == config::Balance::ConsistentHash)
    fmt::format_to(Out(out), "  consistent-hash keys that would move: {:.2f}%\n",
                   100.0 * movedShare(before, after));
}

}  // namespace

std::string previewReload(const config::Config& before, const config::Config& after) {
  std::string out;
  for (const config::Listener& l : after.listeners) {
    bool kept = false;
    for (const config::Listener& old : before.listeners)
      kept |= old.name == l.name && old.bind.text == l.bind.text;
    if (!kept) fmt::format_to(Out(out), "+ listener {} on {} -> pool {}\n", l.name, l.bind.text, l.pool);
  }
  for (const config::Listener& l : before.listeners) {
    bool kept = false;
    for (const config::Listener& now : after.listeners)
      kept |= now.name == l.name && now.bind.text == l.bind.text;
    if (!kept) fmt::format_to(Out(out), "- listener {} on {}\n", l.name, l.bind.text);
  }
  for (const config::Pool& pool : after.pools) {
    if (const config::Pool* old = before.findPool(pool.name))
      poolChanges(out, *old, pool);
    else
      fmt::format_to(Out(out), "+ pool {} ({} members)\n", pool.name, pool.members.size());
  }
  for (const config::Pool& pool : before.pools)
    if (!after.findPool(pool.name)) fmt::format_to(Out(out), "- pool {}\n", pool.name);
  return out;
}

}  // namespace lb
