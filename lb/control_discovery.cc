// The control thread's part of DNS discovery (lb/discovery/): sending the
// lookups that are due, and switching to a new generation when the
// discovered members change, exactly as an accepted reload does.
#include <fmt/format.h>

#include <algorithm>
#include <exception>

#include "lb/control.h"
#include "lb/log.h"

namespace lb {

std::string resolverSettings(const config::Global::Dns& dns) {
  std::string text = fmt::format("timeout={} attempts={} servers=", dns.timeout.count(), dns.attempts);
  for (const config::Address& server : dns.servers) text += server.text + ",";
  return text;
}

void Control::onReady(std::function<void(const Runtime&)> announce) {
  const config::Global::Dns& dns = config_.global.dns;
  readyDeadline_ = health::Clock::now() + dns.timeout * std::max(dns.attempts, 1) + std::chrono::seconds(1);
  announceReady_ = std::move(announce);
  checkReady(health::Clock::now());
}

// Start-up: ready once the first round of lookups has answered (the pools
// then have their discovered members), or at the deadline without them.
void Control::checkReady(health::TimePoint now) {
  if (!announceReady_) return;
  bool answered = discovery_.allAnswered();
  if (!answered && now < readyDeadline_) return;
  if (!answered) log::warn("discovery: not every name has answered yet; serving with the members found so far");
  auto announce = std::move(announceReady_);
  announceReady_ = nullptr;
  announce(*runtime_);
}

void Control::startResolver() {
  resolver_ = std::make_unique<discovery::Resolver>(&submitter_);
  std::string whyNot;
  if (!resolver_->start(config_.global.dns, &whyNot))
    log::error("discovery: cannot set up DNS lookups: {}; every lookup fails until a restart", whyNot);
}

void Control::runDiscovery(health::TimePoint now) {
  if (resolver_) resolver_->onTick();
  if (discovery_.onTick(now)) discoveryChanged_ = true;
  for (const discovery::Lookup& lookup : discovery_.due(now)) {
    if (!resolver_) startResolver();
    resolver_->lookup(lookup.name, lookup.type, lookup.port,
                      [this, entry = lookup.entry](discovery::LookupResult result) {
                        if (discovery_.onResult(entry, result, health::Clock::now(),
                                                std::chrono::system_clock::now()))
                          discoveryChanged_ = true;
                      });
  }
  if (discoveryChanged_ && now >= discoveryRetryAt_) discoveryChanged_ = !applyDiscovered(now);
  checkReady(now);
}

// The members changed: the file's config with the members found now, built
// as a reload builds (TLS files are read again). A generation that cannot
// be built leaves the running one serving; it is tried again 5 s later.
bool Control::applyDiscovered(health::TimePoint now) {
  config::Config effective = discovery_.withDiscovered(config_);
  effective.global.maxConnections = runtime_->global.maxConnections;
  tls::BuildReport report;
  std::shared_ptr<const Runtime> next;
  std::string errors;
  try {
    next = buildRuntime(effective, runtime_.get(), runtime_->ticketKeys, &report);
  } catch (const std::exception& e) {
    errors = e.what();
  }
  for (const config::Error& error : tls::toConfigErrors(report.errors, config_.sourceName))
    errors += (errors.empty() ? "" : "; ") + config::formatError(error);
  std::vector<std::map<std::string, int>> fds;
  if (next && !bindNewListeners(*next, &fds, &errors)) next.reset();
  if (!next) {
    log::error("discovery: the members changed but the new generation cannot be built ({}); the running one "
               "stays, trying again in 5s", errors);
    discoveryRetryAt_ = now + std::chrono::seconds(5);
    return false;
  }
  keepAdminWeights(*next);
  switchTo(std::move(next), std::move(fds), "discovery");
  return true;
}

// A DNS change is not an edit of the file: a weight the admin endpoint set
// on a member both generations have stays, unless the answer itself
// changed that member's weight (an SRV record's). A reload, by contrast,
// applies the file's weights.
void Control::keepAdminWeights(const Runtime& next) const {
  auto configured = [](const Pool& pool, const std::string& name) -> int {
    for (const config::Member& m : pool.config().members)
      if (m.name == name) return m.weight;
    return 0;
  };
  for (const auto& pool : next.pools) {
    const Pool* running = nullptr;
    for (const auto& candidate : runtime_->pools)
      if (candidate->name() == pool->name()) running = candidate.get();
    if (!running) continue;
    for (const auto& member : pool->members()) {
      const Member* was = running->findMember(member->name);
      if (!was || configured(*running, member->name) != configured(*pool, member->name)) continue;
      uint32_t weight = was->weight.load(std::memory_order_relaxed);
      if (weight != member->weight.load(std::memory_order_relaxed)) pool->setWeight(*member, weight);
    }
  }
}

}  // namespace lb
