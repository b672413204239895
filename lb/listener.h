#pragma once
// Listeners as the data plane sees them. Each worker has its own
// SO_REUSEPORT socket per listener, so the kernel spreads new connections
// over the workers and no accept is ever shared.

#include <atomic>
#include <cstdint>
#include <string>

#include "config/config.h"
#include "lb/pool.h"

namespace lb {

struct Listener {
  config::Listener config;
  Pool* pool = nullptr;
  // Sessions open on this listener across all workers (max_connections).
  SharedCounter active;
  ListenerCounters counters;
};

// A bound, listening socket for `address`, or -errno. With `reusePort`
// several sockets share the address and the kernel spreads connections.
int openListenSocket(const config::Address& address, bool reusePort = true);

}  // namespace lb
