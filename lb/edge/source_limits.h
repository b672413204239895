#pragma once
// max_connections_per_source and connection_rate_per_source for one
// listener, shared by every worker (a client gets the same answer whichever
// worker accepts it). A source is an IPv4 address, or an IPv6 /64 (an
// IPv4-mapped IPv6 address counts as the IPv4 one).
//
// Memory is bounded: at most `capacity` sources are tracked. An entry with
// no open connection whose bucket has refilled carries no state worth
// keeping and is evicted first; when every entry is active a new source is
// refused (TableFull) rather than tracked, so a flood of one-shot addresses
// cannot grow the table. Thread-safe (striped locks); the clock is passed in.

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
  explicit SourceLimits(SourceLimitSettings settings);
  ~SourceLimits();
  SourceLimits(const SourceLimits&) = delete;
  SourceLimits& operator=(const SourceLimits&) = delete;

  bool active() const;  // either limit set

  // A new connection from `source` at `now`. Admitted counts it open (one
  // release() must follow when it ends); anything else counts nothing.
  Admission admit(const sockaddr_storage& source, Clock::time_point now);
  // The admitted connection from `source` ended.
  void release(const sockaddr_storage& source);

  size_t trackedSources() const;  // for tests and /status
  size_t memoryBytes() const;     // fixed at construction: the bound

 private:
  struct Table;
  std::unique_ptr<Table> table_;
  SourceLimitSettings settings_;
};

}  // namespace lb::edge
