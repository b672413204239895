#pragma once
// DNS lookups with c-ares on the control thread's ring: c-ares owns the
// protocol (retries, server rotation, TCP after a truncated answer), ringlb
// owns the waiting. c-ares's sockets are watched with io_uring poll
// requests (Owner::Discovery in user_data), never with a blocking call, and
// its timeouts are driven from the control tick. A lookup's callback runs on
// the control thread, from onCompletion() or onTick().
//
// SRV lookups return one Record per (target address, port): targets'
// addresses come from the answer's additional section when it has them,
// otherwise from A and AAAA lookups of each target made here (at most 64
// targets). A target whose own lookup fails (Timeout, ServerFailure, ...)
// fails the whole SRV lookup with that status, so that discovery keeps its
// last good set; a target with no address (NXDOMAIN, no data) is skipped.
//
// Callbacks never run inside lookup(): a lookup that fails at once (DNS not
// set up, a bad name) is reported at the next onCompletion() or onTick().
// A lookup ends by [global.dns] timeout x attempts x servers at the latest
// (Timeout; SRV: again as long for the targets' lookups), whatever c-ares's
// own back-off would do.
//
// Destruction: ~Resolver runs no callback (pending lookups are dropped;
// c-ares's ARES_EDESTRUCTION callbacks are swallowed) and queues a poll
// remove for every poll it has in flight, on the Submitter, which must
// outlive it; the owner submits those with its next submit, which releases
// c-ares's closed sockets. Those polls' completions (-ECANCELED, or a late
// readiness) still arrive with Owner::Discovery: they hold no pointer, only
// (fd, generation), and the owner must drop them once the Resolver is gone.
// A callback must not destroy the Resolver.

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "lb/ring/submitter.h"

namespace lb::discovery {

enum class LookupStatus : uint8_t {
  Ok,           // records (possibly after following CNAMEs)
  NoSuchName,   // NXDOMAIN
  NoData,       // the name exists but has no records of the type (or an SRV's targets have no address)
  ServerFailure,  // SERVFAIL, REFUSED, other error codes
  Timeout,      // no server answered in time (unreachable servers end here too)
  Malformed,    // an answer that could not be read
  LocalError,   // this host could not ask (no socket, no memory, bad server list)
};
std::string_view toString(LookupStatus status);

struct Record {
  sockaddr_storage address{};  // the member's address, port set
  uint16_t priority = 0;       // SRV only
  uint16_t weight = 0;         // SRV only (A/AAAA: 0)
};

struct LookupResult {
  LookupStatus status = LookupStatus::Ok;
  std::vector<Record> records;  // Ok only; in answer order, duplicates removed
  // The TTL that says when to ask again: the smallest TTL among the asked
  // records (through CNAMEs; SRV: and the targets' address records).
  std::chrono::seconds ttl{0};
  std::string detail;  // for logs: the c-ares error or why the answer was unusable
};

class Resolver {
 public:
  using Callback = std::function<void(LookupResult)>;

  explicit Resolver(ring::Submitter* submitter);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Sets c-ares up with [global.dns] (servers, timeout, attempts); false
  // with a reason when it cannot (the process then starts without DNS and
  // every lookup reports LocalError).
  bool start(const config::Global::Dns& dns, std::string* whyNot);
  // Asks for `name`; `port` is put on A and AAAA records (SRV: the records').
  // The callback runs exactly once, unless the Resolver is destroyed first.
  void lookup(const std::string& name, config::DiscoverType type, uint16_t port, Callback done);
  // A completion with Owner::Discovery.
  void onCompletion(uint64_t userData, int result);
  // Lets c-ares act on its timeouts; call on every control tick.
  void onTick();
  size_t pending() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lb::discovery
