#include "lb/runtime.h"

namespace lb {

const Listener* Runtime::findListener(const std::string& name) const {
  for (const auto& listener : listeners)
    if (listener->config.name == name) return listener.get();
  return nullptr;
}

std::shared_ptr<const Runtime> buildRuntime(const config::Config& config, const Runtime* previous) {
  auto runtime = std::make_shared<Runtime>();
  runtime->generation = previous ? previous->generation + 1 : 1;
  runtime->global = config.global;
  for (const config::Pool& spec : config.pools) {
    const Pool* old = nullptr;
    if (previous)
      for (const auto& pool : previous->pools)
        if (pool->name() == spec.name) old = pool.get();
    runtime->pools.push_back(std::make_shared<Pool>(spec, old));
  }
  for (const config::Listener& spec : config.listeners) {
    auto listener = std::make_shared<Listener>();
    listener->config = spec;
    for (auto& pool : runtime->pools)
      if (pool->name() == spec.pool) listener->pool = pool.get();
    if (const Listener* old = previous ? previous->findListener(spec.name) : nullptr)
      listener->state = old->state;
    runtime->listeners.push_back(std::move(listener));
  }
  return runtime;
}

namespace {

const Pool* findPool(const Runtime& runtime, const std::string& name) {
  for (const auto& pool : runtime.pools)
    if (pool->name() == name) return pool.get();
  return nullptr;
}

}  // namespace

std::vector<RetiredMember> commitRuntime(const Runtime& running, const Runtime& next, uint64_t nowNs) {
  std::vector<RetiredMember> retired;
  for (const auto& pool : running.pools) {
    const Pool* nextPool = findPool(next, pool->name());
    for (const auto& member : pool->members()) {
      const Member* successor = nextPool ? nextPool->findMember(member->name) : nullptr;
      if (successor && successor->endpoint == member->endpoint) continue;
      member->endpoint->retire(nowNs);
      retired.push_back({pool->name(), member->name, member->address.text,
                         successor ? successor->address.text : std::string()});
    }
  }
  for (const auto& pool : next.pools)
    if (!pool->config().health)
      for (const auto& member : pool->members()) member->up.store(true, std::memory_order_relaxed);
  return retired;
}

bool keepsSocket(const Runtime& runtime, const config::Listener& listener) {
  const Listener* old = runtime.findListener(listener.name);
  return old && old->config.bind.text == listener.bind.text;
}

}  // namespace lb
