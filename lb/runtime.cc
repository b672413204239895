#include "lb/runtime.h"

#include "config/server_name.h"
#include "lb/tls/ticket_keys.h"

namespace lb {

const Listener* Runtime::findListener(const std::string& name) const {
  for (const auto& listener : listeners)
    if (listener->config.name == name) return listener.get();
  return nullptr;
}

bool Runtime::usesTls() const {
  for (const auto& listener : listeners)
    if (listener->config.tls) return true;
  for (const auto& pool : pools)
    if (pool->config().tls) return true;
  return false;
}

namespace {

Pool* findPool(const Runtime& runtime, const std::string& name) {
  for (const auto& pool : runtime.pools)
    if (pool->name() == name) return pool.get();
  return nullptr;
}

// [[listener.route]]: each route's names lead to its index in routePools.
void buildRoutes(const Runtime& runtime, const config::Listener& spec, Listener* listener) {
  for (const config::Route& route : spec.routes) {
    auto index = static_cast<uint32_t>(listener->routePools.size());
    listener->routePools.push_back(findPool(runtime, route.pool));
    for (const std::string& name : route.serverNames)
      if (auto normalized = config::normalizeServerName(name)) listener->routes.add(*normalized, index);
  }
}

// allow/deny and proxy_from as lookup structures; the per-source table,
// kept from `old` when its settings did not change.
void buildEdge(const config::Global& global, const config::Listener& spec, const Listener* old,
               Listener* listener) {
  if (spec.acceptProxy != config::AcceptProxy::Off) listener->proxyFrom = edge::AddressSet(spec.proxyFrom);
  listener->access = edge::AccessRules(spec.allow, spec.deny);
  edge::SourceLimitSettings settings{spec.maxConnectionsPerSource, spec.connectionRatePerSource,
                                     global.sourceTableSize};
  if (settings.maxConnections <= 0 && settings.ratePerSecond <= 0) return;
  if (old && old->sourceLimits && old->config.maxConnectionsPerSource == spec.maxConnectionsPerSource &&
      old->config.connectionRatePerSource == spec.connectionRatePerSource &&
      old->sourceTableSize == global.sourceTableSize) {
    listener->sourceLimits = old->sourceLimits;
    listener->sourceTableSize = old->sourceTableSize;
    return;
  }
  listener->sourceLimits = std::make_shared<edge::SourceLimits>(settings);
  listener->sourceTableSize = global.sourceTableSize;
}

}  // namespace

std::shared_ptr<const Runtime> buildRuntime(const config::Config& config, const Runtime* previous,
                                            std::shared_ptr<tls::TicketKeys> tickets,
                                            tls::BuildReport* report) {
  tls::BuildReport ownReport;
  if (!report) report = &ownReport;
  size_t errorsBefore = report->errors.size();
  auto runtime = std::make_shared<Runtime>();
  runtime->generation = previous ? previous->generation + 1 : 1;
  runtime->global = config.global;
  runtime->globalSessions = previous ? previous->globalSessions : std::make_shared<GlobalSessions>();
  runtime->pipeBudget = previous ? previous->pipeBudget : std::make_shared<PipeBudget>();
  runtime->ticketKeys = tickets ? std::move(tickets) : previous ? previous->ticketKeys : nullptr;
  for (const config::Pool& spec : config.pools) {
    const Pool* old = nullptr;
    if (previous)
      for (const auto& pool : previous->pools)
        if (pool->name() == spec.name) old = pool.get();
    auto pool = std::make_shared<Pool>(spec, old);
    pool->tls = tls::buildClientSettings(spec, report);
    runtime->pools.push_back(std::move(pool));
  }
  for (const config::Listener& spec : config.listeners) {
    auto listener = std::make_shared<Listener>();
    listener->config = spec;
    listener->pool = findPool(*runtime, spec.pool);
    if (spec.tls) {
      if (!runtime->ticketKeys) runtime->ticketKeys = tls::makeTicketKeys();
      listener->tls = tls::buildServerSettings(spec, runtime->ticketKeys, report);
    }
    buildRoutes(*runtime, spec, listener.get());
    const Listener* old = previous ? previous->findListener(spec.name) : nullptr;
    if (old) listener->state = old->state;
    buildEdge(config.global, spec, old, listener.get());
    runtime->listeners.push_back(std::move(listener));
  }
  if (report->errors.size() != errorsBefore) return nullptr;
  return runtime;
}

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
