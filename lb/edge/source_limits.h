#pragma once
// max_connections_per_source and connection_rate_per_source for one
// listener, shared by every worker (a client gets the same answer whichever
// worker accepts it). A source is an IPv4 address, or an IPv6 /64 (an
// IPv4-mapped IPv6 address counts as the IPv4 one). A client without an IP
// address (AF_UNIX or "unknown" from a PROXY header) is not limited: there
// is nothing to key it by; admit() says Admitted and release() ignores it.
//
// Memory is bounded: at most `capacity` sources are tracked. An entry with
// no open connection whose bucket has refilled carries no state worth
// keeping and is evicted first; when every entry is active a new source is
// refused (TableFull) rather than tracked, so a flood of one-shot addresses
// cannot grow the table. Thread-safe (striped locks); the clock is passed in.
//
// The table is split into up to 64 stripes (each with its own lock and an
// equal share of `capacity`); a source's stripe comes from a hash keyed by a
// per-table random seed, so an attacker cannot aim its addresses at one
// stripe. A stripe whose share is taken by active sources refuses new ones
// even while other stripes have room.

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <memory>

namespace lb::edge {

enum class Admission { Admitted, OverLimit, OverRate, TableFull };

struct SourceLimitSettings {
  int maxConnections = 0;  // concurrent per source; 0: no limit
  int ratePerSecond = 0;   // token bucket, burst = rate; 0: no limit
  int capacity = 65536;    // sources tracked at most
};

class SourceLimits {
 public:
  using Clock = std::chrono::steady_clock;
  // The hash seed comes from std::random_device.
  explicit SourceLimits(SourceLimitSettings settings);
  // For tests: a chosen seed, so the layout is reproducible.
  SourceLimits(SourceLimitSettings settings, uint64_t hashSeed);
  ~SourceLimits();
  SourceLimits(const SourceLimits&) = delete;
  SourceLimits& operator=(const SourceLimits&) = delete;

  bool active() const;  // either limit set

  // A new connection from `source` at `now`. Admitted counts it open (one
  // release() must follow when it ends); anything else counts nothing.
  // Callers on several threads may pass `now` values slightly out of order:
  // a `now` older than the one a source's bucket last saw refills nothing.
  Admission admit(const sockaddr_storage& source, Clock::time_point now);
  // The admitted connection from `source` ended. A source with no open
  // connection (a release too many) is ignored.
  void release(const sockaddr_storage& source);

  size_t trackedSources() const;  // for tests and /status
  size_t memoryBytes() const;     // fixed at construction: the bound
  // Open connections counted for `source`'s entry (0: none or untracked);
  // for tests and /status.
  int openConnections(const sockaddr_storage& source) const;

 private:
  struct Table;
  std::unique_ptr<Table> table_;
  SourceLimitSettings settings_;
};

}  // namespace lb::edge
