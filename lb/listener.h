#pragma once
// Listeners as the data plane sees them. Each worker has its own
// SO_REUSEPORT socket per listener, so the kernel spreads new connections
// over the workers and no accept is ever shared.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "config/config.h"
#include "lb/edge/address_rules.h"
#include "lb/edge/source_limits.h"
#include "lb/pool.h"
#include "lb/tls/context.h"
#include "lb/tls/server_names.h"

namespace lb {

// What outlives a reload of a listener that keeps its name.
struct ListenerState {
  // Sessions open on this listener across all workers (max_connections).
  SharedCounter active;
  ListenerCounters counters;
};

struct Listener {
  config::Listener config;
  Pool* pool = nullptr;  // the default pool; owned by the same Runtime
  std::shared_ptr<ListenerState> state = std::make_shared<ListenerState>();
  // [listener.tls]: terminate; null: the client's bytes pass untouched.
  std::shared_ptr<const tls::ServerSettings> tls;
  // [[listener.route]]: SNI -> index in routePools (empty: no routes).
  tls::ServerNameTable routes;
  std::vector<Pool*> routePools;  // owned by the same Runtime
  // accept_proxy: the senders that must send a PROXY header (others are
  // closed). allow/deny. Built per generation, read-only.
  edge::AddressSet proxyFrom;
  edge::AccessRules access;
  // Per-source limits, null when neither limit is set. Shared by every
  // worker; a reload keeping the listener (same name) with the same limits
  // and table size keeps the same table, so counts carry over. Sessions hold
  // the table they were admitted to, so it outlives a reload that drops it.
  std::shared_ptr<edge::SourceLimits> sourceLimits;
  int sourceTableSize = 0;  // the [global] source_table_size sourceLimits was made with
};

// A bound, listening socket for `address`, or -errno. With `reusePort`
// several sockets share the address and the kernel spreads connections; only
// this process's sockets may: -EADDRINUSE when another process (a second
// ringlb of the same user would be let in) listens on the address, checked
// through the kernel's socket diagnostics before binding and once listening.
// Sockets inherited from an in-place upgrade are exempt: they are not opened
// here but taken over with adoptListenSocket.
int openListenSocket(const config::Address& address, bool reusePort = true);

// Takes over a listening socket inherited from the process that started
// this one (lb/upgrade.h): checks that `fd` is a listening TCP socket bound
// to `address`, marks it close-on-exec and counts it as this process's own
// (so openListenSocket does not take it for another process's). Empty, or
// why it cannot be used.
std::string adoptListenSocket(int fd, const config::Address& address);

// Whether a socket bound to `bound` (getsockname) is bound to `address`.
bool boundTo(const sockaddr_storage& bound, const config::Address& address);

}  // namespace lb
