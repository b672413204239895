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
  // Connections closed at once because the listener was full.
  SharedCounter rejectedByLimit;
};

// A bound, listening, SO_REUSEPORT socket for `address`, or -errno.
int openListenSocket(const config::Address& address);

}  // namespace lb
