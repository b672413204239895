#pragma once
// When to resolve each [[pool.NAME.discover]] and which members the answers
// make. Pure: no sockets; the clock comes in as `now`.
//
// Each discover entry is a small state machine:
//   Pending (never answered) -> Resolved (members from the last good answer)
//   A good answer (Ok) replaces the entry's members. NoSuchName/NoData
//   start a grace period (remove_grace, default one interval): the members
//   stay until it has passed with no good answer, then the set is emptied.
//   Timeout, ServerFailure, Malformed and LocalError keep the last good set
//   (they are counted, and logged once per change of status).
// The next resolution is due after min(interval, the answer's TTL), but
// never sooner than [global.dns] min_interval after the previous one. One
// lookup per entry is in flight at a time.
//
// Members are named "DNSNAME/ADDRESS:PORT" and kept sorted by name, so an
// answer in another order changes nothing and a member keeps its state, its
// counters and its consistent-hash place across resolutions and reloads.
// SRV: the records of the lowest priority are primaries, the others backups;
// the record's weight is the member's weight (0 -> 1, above 256 -> 256).

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"
#include "lb/discovery/resolver.h"

namespace lb::discovery {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// What the status page and the metrics show for one discover entry.
struct EntryStatus {
  std::string pool;
  std::string name;
  config::DiscoverType type = config::DiscoverType::A;
  bool answered = false;           // any lookup finished yet
  LookupStatus lastStatus = LookupStatus::Ok;
  std::string lastDetail;
  std::chrono::system_clock::time_point lastAt{};  // wall time of the last finished lookup
  std::chrono::system_clock::time_point lastSuccessAt{};  // of the last Ok answer (epoch: none yet)
  size_t records = 0;              // in the last good answer
  size_t members = 0;              // in the set now in use
  uint64_t lookups[7] = {};        // finished lookups, indexed by LookupStatus
  uint64_t changes = 0;            // times the member set changed
};

struct Lookup {
  // The entry's id (not its position): kept by reconfigure(), never reused,
  // so a result that comes back after a reload finds its entry or nothing.
  size_t entry = 0;
  std::string name;
  config::DiscoverType type = config::DiscoverType::A;
  uint16_t port = 0;
};

class Discovery {
 public:
  // The entries of every pool's discover list, in file order.
  Discovery(const config::Config& config, TimePoint now);
  ~Discovery();
  // A copy is what a reload reconfigures: kept only if the reload is accepted.
  Discovery(const Discovery&);
  Discovery& operator=(const Discovery&);
  Discovery(Discovery&&) noexcept;
  Discovery& operator=(Discovery&&) noexcept;
  // A reload: entries with the same pool, name, type and port keep their
  // members and state; others start Pending.
  void reconfigure(const config::Config& config, TimePoint now);

  // Lookups due at `now`; each is marked in flight until its onResult().
  std::vector<Lookup> due(TimePoint now);
  // True when the entry's member set changed (the caller then rebuilds the
  // generation with withDiscovered()). A result for an entry a reload
  // removed is dropped (false).
  bool onResult(size_t entry, const LookupResult& result, TimePoint now,
                std::chrono::system_clock::time_point wallNow);
  // Also a change: a grace period that ended (members removed); true if any.
  bool onTick(TimePoint now);
  // Every entry has had at least one finished lookup (start-up waits for
  // this, bounded, before it says ready).
  bool allAnswered() const;

  std::vector<EntryStatus> status() const;
  // `file` with each pool's discovered members appended after its static
  // ones (sorted by name). A discovered member whose name equals a static
  // member's is dropped (the static one wins). consistent_hash: when the
  // members need more than the file's table_size (100 slots each), the
  // table doubles until they fit, then takes the next prime: a function of
  // the member count, the same on every host for the same answers. Logs
  // nothing (the caller says what changed).
  config::Config withDiscovered(const config::Config& file) const;

 private:
  struct Entry;
  std::vector<Entry> entries_;
  size_t nextId_ = 0;
  config::Duration minInterval_{};
};

// "A", "AAAA" or "SRV".
std::string_view typeName(config::DiscoverType type);

// "DNSNAME/ADDRESS:PORT" ("api.internal/10.0.0.5:9001", "x/[::1]:80").
std::string memberName(std::string_view dnsName, const sockaddr_storage& address);

}  // namespace lb::discovery
