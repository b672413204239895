#include "lb/discovery/discovery.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <set>

#include "lb/address_text.h"
#include "lb/log.h"
#include "lb/policy/maglev.h"

namespace lb::discovery {
namespace {

bool removes(LookupStatus status) {
  return status == LookupStatus::NoSuchName || status == LookupStatus::NoData;
}

uint32_t memberWeight(const config::Discover& spec, const Record& record) {
  if (spec.type != config::DiscoverType::SRV) return 1;
  return std::clamp<uint32_t>(record.weight, 1, 256);
}

// The members an answer makes, sorted by name (so the answer's order counts
// for nothing). A name twice (an SRV target listed at two priorities) keeps
// its lowest priority, then its highest weight.
std::vector<config::Member> membersOf(const config::Discover& spec, const std::vector<Record>& records) {
  uint16_t primary = std::numeric_limits<uint16_t>::max();
  for (const Record& record : records) primary = std::min(primary, record.priority);
  std::vector<std::pair<uint16_t, config::Member>> made;
  for (const Record& record : records) {
    std::string text = formatAddress(record.address);
    auto address = config::parseAddress(text, nullptr);
    if (!address) continue;  // neither IPv4 nor IPv6: the resolver never gives one
    config::Member member;
    member.name = memberName(spec.name, record.address);
    member.address = std::move(*address);
    member.weight = static_cast<int>(memberWeight(spec, record));
    member.backup = spec.type == config::DiscoverType::SRV && record.priority != primary;
    member.discoveredBy = spec.name;
    made.emplace_back(record.priority, std::move(member));
  }
  std::sort(made.begin(), made.end(), [](const auto& a, const auto& b) {
    if (a.second.name != b.second.name) return a.second.name < b.second.name;
    if (a.first != b.first) return a.first < b.first;
    return a.second.weight > b.second.weight;
  });
  std::vector<config::Member> members;
  for (auto& [priority, member] : made)
    if (members.empty() || members.back().name != member.name) members.push_back(std::move(member));
  return members;
}

bool sameMembers(const std::vector<config::Member>& a, const std::vector<config::Member>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    return x.name == y.name && x.address.text == y.address.text && x.weight == y.weight &&
           x.backup == y.backup;
  });
}

// consistent_hash needs 100 slots a member. When discovered members outgrow
// the pool's table, the table doubles (then the next prime) until they fit:
// a function of the member count alone, so every host with the same answers
// builds the same table, and a member more or less does not change the size
// each time.
uint32_t tableSizeFor(uint32_t configured, size_t members) {
  uint64_t needed = 100 * uint64_t{members};
  if (needed <= configured) return configured;
  uint64_t size = configured;
  while (size < needed && size < policy::kMaxTableSize) size *= 2;
  size = std::min<uint64_t>(policy::nextPrime(size), policy::kMaxTableSize);
  return static_cast<uint32_t>(size);
}

}  // namespace

// State of one [[pool.NAME.discover]] (see the header for the transitions).
// `id` is what Lookup::entry carries: it survives reconfigure(), so a
// result that arrives after a reload finds its entry, or nothing.
struct Discovery::Entry {
  size_t id = 0;
  std::string pool;
  config::Discover spec;
  std::vector<config::Member> members;  // sorted by name
  TimePoint nextDue{};
  bool inFlight = false;
  // Set while NXDOMAIN/NoData lasts with members still in use: when they go.
  std::optional<TimePoint> removeAt;
  LookupStatus removeReason = LookupStatus::NoSuchName;  // what started the grace
  EntryStatus status;

  config::Duration grace() const {
    return spec.removeGrace.count() > 0 ? spec.removeGrace : spec.interval;
  }
  std::string label() const { return fmt::format("discovery {} {} {}", pool, typeName(spec.type), spec.name); }
  bool sameKey(const std::string& otherPool, const config::Discover& other) const {
    return pool == otherPool && spec.name == other.name && spec.type == other.type && spec.port == other.port;
  }
};

Discovery::Discovery(const config::Config& config, TimePoint now) { reconfigure(config, now); }

Discovery::~Discovery() = default;
Discovery::Discovery(const Discovery&) = default;
Discovery& Discovery::operator=(const Discovery&) = default;
Discovery::Discovery(Discovery&&) noexcept = default;
Discovery& Discovery::operator=(Discovery&&) noexcept = default;

void Discovery::reconfigure(const config::Config& config, TimePoint now) {
  minInterval_ = config.global.dns.minInterval;
  std::vector<Entry> old = std::move(entries_);
  std::vector<bool> taken(old.size(), false);
  entries_.clear();
  for (const config::Pool& pool : config.pools) {
    for (const config::Discover& spec : pool.discover) {
      Entry entry;
      for (size_t i = 0; i < old.size(); ++i) {
        if (taken[i] || !old[i].sameKey(pool.name, spec)) continue;
        taken[i] = true;
        entry = std::move(old[i]);
        break;
      }
      if (entry.pool.empty()) {  // new: Pending, due now
        entry.id = nextId_++;
        entry.pool = pool.name;
        entry.nextDue = now;
        entry.status.pool = pool.name;
        entry.status.name = spec.name;
        entry.status.type = spec.type;
      }
      entry.spec = spec;  // interval and remove_grace may have changed
      entries_.push_back(std::move(entry));
    }
  }
}

std::vector<Lookup> Discovery::due(TimePoint now) {
  std::vector<Lookup> lookups;
  for (Entry& entry : entries_) {
    if (entry.inFlight || now < entry.nextDue) continue;
    entry.inFlight = true;
    lookups.push_back({entry.id, entry.spec.name, entry.spec.type, entry.spec.port});
  }
  return lookups;
}

bool Discovery::onResult(size_t id, const LookupResult& result, TimePoint now,
                         std::chrono::system_clock::time_point wallNow) {
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.id == id; });
  if (it == entries_.end()) return false;  // its discover entry went with a reload
  Entry& entry = *it;
  entry.inFlight = false;
  LookupStatus status = result.status;
  if (status == LookupStatus::Ok && result.records.empty()) status = LookupStatus::NoData;

  // Next: after the interval, sooner when the TTL says so, never sooner
  // than min_interval (the lookup was sent at or before `now`).
  config::Duration wait = entry.spec.interval;
  if (status == LookupStatus::Ok)
    wait = std::min(wait, std::chrono::duration_cast<config::Duration>(result.ttl));
  entry.nextDue = now + std::max(wait, minInterval_);

  EntryStatus& shown = entry.status;
  bool statusChanged = !shown.answered || shown.lastStatus != status;
  shown.answered = true;
  shown.lastStatus = status;
  shown.lastDetail = result.detail;
  shown.lastAt = wallNow;
  shown.lookups[static_cast<size_t>(status)]++;

  bool changed = false;
  if (status == LookupStatus::Ok) {
    std::vector<config::Member> members = membersOf(entry.spec, result.records);
    shown.records = result.records.size();
    shown.lastSuccessAt = wallNow;
    if (entry.removeAt) log::info("{}: answered again; its members stay", entry.label());
    entry.removeAt.reset();
    if (!sameMembers(members, entry.members)) {
      entry.members = std::move(members);
      changed = true;
    }
    if (statusChanged) log::info("{}: ok, {} records", entry.label(), result.records.size());
  } else if (removes(status)) {
    if (!entry.members.empty() && !entry.removeAt) {
      entry.removeAt = now + entry.grace();
      entry.removeReason = status;
      log::warn("{}: {}; its {} members are removed in {}ms unless a good answer comes first", entry.label(),
                toString(status), entry.members.size(), entry.grace().count());
    } else if (statusChanged) {
      log::warn("{}: {}", entry.label(), toString(status));
    }
    if (entry.removeAt && now >= *entry.removeAt) return onTick(now);  // counts and logs the removal
  } else if (statusChanged) {
    log::warn("{}: {} ({}); keeping the last good set of {} members", entry.label(), toString(status),
              result.detail, entry.members.size());
  }
  if (changed) shown.changes++;
  shown.members = entry.members.size();
  return changed;
}

bool Discovery::onTick(TimePoint now) {
  bool changed = false;
  for (Entry& entry : entries_) {
    if (!entry.removeAt || now < *entry.removeAt) continue;
    log::warn("{}: no good answer for {}ms since {}; its {} members are removed", entry.label(),
              entry.grace().count(), toString(entry.removeReason), entry.members.size());
    entry.removeAt.reset();
    entry.members.clear();
    entry.status.members = 0;
    entry.status.records = 0;
    entry.status.changes++;
    changed = true;
  }
  return changed;
}

bool Discovery::allAnswered() const {
  return std::all_of(entries_.begin(), entries_.end(), [](const Entry& e) { return e.status.answered; });
}

std::vector<EntryStatus> Discovery::status() const {
  std::vector<EntryStatus> all;
  for (const Entry& entry : entries_) all.push_back(entry.status);
  return all;
}

config::Config Discovery::withDiscovered(const config::Config& file) const {
  config::Config config = file;
  for (config::Pool& pool : config.pools) {
    std::set<std::string> names;
    for (const config::Member& member : pool.members) names.insert(member.name);
    std::vector<config::Member> found;
    for (const Entry& entry : entries_) {
      if (entry.pool != pool.name) continue;
      for (const config::Member& member : entry.members)
        if (names.insert(member.name).second) found.push_back(member);
    }
    std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    for (config::Member& member : found) pool.members.push_back(std::move(member));
    if (pool.balance == config::Balance::ConsistentHash)
      pool.tableSize = tableSizeFor(pool.tableSize, pool.members.size());
  }
  return config;
}

std::string_view typeName(config::DiscoverType type) {
  switch (type) {
    case config::DiscoverType::A: return "A";
    case config::DiscoverType::AAAA: return "AAAA";
    case config::DiscoverType::SRV: return "SRV";
  }
  return "?";
}

std::string memberName(std::string_view dnsName, const sockaddr_storage& address) {
  return fmt::format("{}/{}", dnsName, formatAddress(address));
}

}  // namespace lb::discovery
