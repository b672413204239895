#pragma once
// One generation of what the config describes, as the data plane uses it:
// pools with their members and listeners. Immutable once built; a reload
// builds the next generation from the new config and the previous
// generation, keeping members (matched by pool, name and address) and
// listener counters (matched by name), so active counts, health and drain
// state, and counters survive the reload.

#include <memory>
#include <vector>

#include "config/config.h"
#include "lb/listener.h"
#include "lb/pool.h"

namespace lb {

struct Runtime {
  uint64_t generation = 0;
  config::Global global;
  std::vector<std::shared_ptr<Pool>> pools;
  std::vector<std::shared_ptr<Listener>> listeners;

  const Listener* findListener(const std::string& name) const;
};

std::shared_ptr<const Runtime> buildRuntime(const config::Config& config, const Runtime* previous);

// Whether `listener` has a socket already in `runtime` (same name and bind).
bool keepsSocket(const Runtime& runtime, const config::Listener& listener);

}  // namespace lb
