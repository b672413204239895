#pragma once
// How many sessions the open-file limit allows, and whether a config's
// [global] max_connections fits in it. Pure: the limit and the worker count
// are inputs (the process raises and reads the limit, lb/process.cc).
//
// A session holds two descriptors, its client and member sockets, and,
// while a direction moves bulk data, a pipe (two more) for that direction
// (lb/ring/pipe_pool.h: a pipe is held only while bytes are in it). Pipes
// are budgeted apart: the pipes in use at once, over every worker, are
// capped (PipeBudget, lb/ring/pipe_pool.h), and a bulk direction that finds the
// budget spent copies through the ring buffers instead, which only costs
// CPU. So the open-file limit is split: what the process keeps for itself
// (processReserve), two per session, and the rest for pipes. A derived
// max_connections leaves one pipe per kSessionsPerPipe sessions: 20,000
// open files hold 8,800 sessions (PERF.md sizes tests for 8,000) with
// 1,100 pipes (HAProxy's default maxpipes is a quarter of maxconn; an eighth
// is 1,100 bulk directions at once here). An explicit max_connections gets
// whatever is left as pipes, possibly none.

#include <cstdint>
#include <optional>
#include <string>

#include "config/config.h"
#include "lb/ring/pipe_pool.h"  // kNoPipeLimit

namespace lb {

inline constexpr uint64_t kDescriptorsPerSession = 2;  // its two sockets
inline constexpr uint64_t kDescriptorsPerPipe = 2;
inline constexpr uint64_t kSessionsPerPipe = 8;         // derived max_connections only

// What the process keeps open besides its sessions, with where it goes
// (for the messages).
struct DescriptorReserve {
  uint64_t total = 0;
  std::string breakdown;  // "2 workers x 133 (...) + ..."
};

DescriptorReserve processReserve(const config::Config& config, int workers);

struct SessionLimit {
  int maxConnections = 0;  // [global] max_connections in effect; 0: none (no room to derive one)
  bool derived = false;    // from the open-file limit (the config left it 0)
  // Pipes in use at once over every worker (beyond the spare ones each
  // worker keeps, counted in the reserve); kNoPipeLimit with no maximum.
  uint64_t maxPipes = kNoPipeLimit;
  std::string how;         // for the start line: how it was derived, or what it needs
};

// `openFiles`: the soft RLIMIT_NOFILE in effect (ringlb raises it to the
// hard limit first). nullopt and `whyNot` when the config's explicit
// max_connections needs more descriptors than that. Derived, when the
// reserve leaves no room for a single session: no maximum (0), and `how`
// says so (the process warns).
std::optional<SessionLimit> planSessions(const config::Config& config, int workers, uint64_t openFiles,
                                         std::string* whyNot);

// The process's RLIMIT_NOFILE (these two make system calls).
struct OpenFileLimit {
  uint64_t before = 0;  // the soft limit found at start
  uint64_t soft = 0;    // the soft limit in effect
  uint64_t hard = 0;
  int raiseError = 0;   // errno of a refused raise (soft then stays `before`)
};

// Raises the soft limit to the hard one (capped by fs.nr_open).
OpenFileLimit raiseOpenFileLimit();
// The soft limit in effect now.
uint64_t currentOpenFileLimit();

}  // namespace lb
