#pragma once
// One generation of what the config describes, as the data plane uses it:
// pools with their members and listeners. A reload builds the next
// generation from the new config and the running one, which it only reads:
// members share their state with the running generation's member of the
// same pool and name (active counts, health and drain state, counters, also
// when the address changed), listeners their counters by name. Whatever the
// switch changes in shared state (retired addresses, health of pools that
// lost their checks) is written by commitRuntime, once the reload is
// accepted; a refused one is dropped without a trace.

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "config/config.h"
#include "lb/listener.h"
#include "lb/pool.h"
#include "lb/ring/pipe_pool.h"

namespace lb {

// Sessions open in the whole process, against [global] max_connections:
// every worker and every generation count in the same one (a reload hands
// it on), so the sessions of a previous generation still take their place.
class GlobalSessions {
 public:
  // Counts one more session, unless `max` are open already (false then;
  // max <= 0: no limit). Each true is matched by one remove().
  bool tryAdd(int max) {
    int64_t open = open_.fetch_add(1, std::memory_order_relaxed);
    if (max > 0 && open >= max) {
      open_.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }
  void remove() { open_.fetch_sub(1, std::memory_order_relaxed); }
  int64_t open() const { return open_.load(std::memory_order_relaxed); }

 private:
  alignas(64) std::atomic<int64_t> open_{0};
};

struct Runtime {
  uint64_t generation = 0;
  // global.maxConnections is the limit in effect for this generation: the
  // process puts there the configured value or the one derived from the
  // open-file limit (lb/descriptor_budget.h) before building, at start and
  // on every reload. 0 only where no process runs it (--check, tests).
  config::Global global;
  std::shared_ptr<GlobalSessions> globalSessions;  // never null
  std::shared_ptr<PipeBudget> pipeBudget;          // never null
  std::vector<std::shared_ptr<Pool>> pools;
  std::vector<std::shared_ptr<Listener>> listeners;
  // The process's session-ticket keys, handed from generation to generation.
  std::shared_ptr<tls::TicketKeys> ticketKeys;

  const Listener* findListener(const std::string& name) const;
  // Whether any listener terminates or any pool originates TLS.
  bool usesTls() const;
};

// Builds the next generation. TLS files are read here, every time (a
// reload picks up certificates that changed on disk even when the config
// text did not): their errors and warnings go to `report`, positioned in
// the config file, and an error means no generation (nullptr). `tickets`:
// the process's ticket keys (null: `previous`'s, else new ones when a
// listener needs them). `report` may be null (tests without TLS).
std::shared_ptr<const Runtime> buildRuntime(const config::Config& config, const Runtime* previous,
                                            std::shared_ptr<tls::TicketKeys> tickets,
                                            tls::BuildReport* report);

// An address of a member that `next` no longer has: the member was removed,
// or moved to another address (and keeps its state under its name).
struct RetiredMember {
  std::string pool;
  std::string member;
  std::string address;
  std::string movedTo;  // the member's new address; empty: removed
};

// Switches the shared state from `running` to `next`, an accepted reload:
// retires every address of `running` that `next` lacks (at nowNs,
// CLOCK_MONOTONIC) and brings up every member of a pool without health
// checks (nothing else would). Returns the retired addresses.
std::vector<RetiredMember> commitRuntime(const Runtime& running, const Runtime& next, uint64_t nowNs);

// Whether `listener` has a socket already in `runtime` (same name and bind).
bool keepsSocket(const Runtime& runtime, const config::Listener& listener);

}  // namespace lb
