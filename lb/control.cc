#include "lb/control.h"

#include <signal.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <random>

#include "config/diff.h"
#include "health/http_status.h"
#include "lb/descriptor_budget.h"
#include "lb/edge/proxy_header.h"
#include "lb/log.h"
#include "lb/systemd_notify.h"
#include "lb/tls/ktls.h"

namespace lb {
namespace {

int64_t unixNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A reload's errors, one per line, as one event message.
std::string withoutTrailingNewlines(std::string text) {
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

uint64_t monotonicNs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(now.tv_nsec);
}

health::Options healthOptions(const config::Health& health) {
  health::Options options;
  options.rise = health.rise;
  options.fall = health.fall;
  options.passiveFall = health.passiveFall;
  options.interval = health.interval;
  options.downInterval = health.downInterval;
  options.timeout = health.timeout;
  return options;
}

// tls and https probes of a pool share one client context, built here once
// per prober (each generation): the pool's [pool.NAME.tls] settings, or null
// (the prober then uses the system's trust store).
health::SharedSslCtx probeContext(const Pool& pool, const config::Health& health) {
  if (health.kind != config::HealthKind::Tls && health.kind != config::HealthKind::Https) return nullptr;
  if (!pool.tls) return nullptr;
  tls::SslCtxPtr ctx = pool.tls->newContext();
  if (!ctx) log::error("pool {}: no TLS context for health probes; they use the system's trust store", pool.name());
  return health::shareSslCtx(ctx.release());
}

health::ProbeSpec probeSpec(const Pool& pool, const Member& member, const config::Health& health,
                            const health::SharedSslCtx& tlsContext) {
  health::ProbeSpec spec;
  spec.pool = pool.name();
  spec.member = member.name;
  const config::Member* configured = nullptr;
  for (const config::Member& m : pool.config().members)
    if (m.name == member.name) configured = &m;
  spec.address = configured && configured->healthAddress ? *configured->healthAddress : member.address;
  spec.kind = health.kind;
  // Host: as configured; https: else the name the certificate is checked for.
  std::string host = health.host;
  if (host.empty() && health.kind == config::HealthKind::Https && pool.tls) host = pool.tls->serverName();
  spec.request = health::buildRequest(health.path, host.empty() ? spec.address.text : host);
  spec.expectStatus = health.expectStatus;
  spec.tlsContext = tlsContext;
  if (pool.tls) spec.serverName = pool.tls->serverName();
  // A member that requires the PROXY header gets one with no addresses
  // (v2 LOCAL, v1 UNKNOWN) before each probe, so it does not refuse the
  // probe as a broken header. Not to a separate health_address/health_port,
  // which is another service (as HAProxy does unless told otherwise).
  if (!(configured && configured->healthAddress)) {
    std::span<const uint8_t> header = edge::localHeader(member.sendProxy);
    spec.prelude.assign(reinterpret_cast<const char*>(header.data()), header.size());
  }
  spec.options = healthOptions(health);
  spec.initial = member.up.load() ? health::State::Up : health::State::Down;
  return spec;
}

}  // namespace

Control::Control(std::string configPath, config::Config config, std::shared_ptr<const Runtime> runtime,
                 std::span<const std::unique_ptr<Worker>> workers,
                 const std::atomic<int>& runningWorkers)
    : configPath_(std::move(configPath)),
      config_(std::move(config)),
      runtime_(std::move(runtime)),
      workers_(workers),
      runningWorkers_(runningWorkers),
      discovery_(config_, health::Clock::now()) {
  startProber(health::Clock::now());
}

Control::~Control() {
  admin_.reset();
  resolver_.reset();  // closes its sockets before the ring goes
  prober_.reset();  // closes probe sockets before the ring goes
  retiredProbers_.clear();
  if (ringReady_) io_uring_queue_exit(&ring_);
}

// A prober for the current generation's health-checked members. Members kept
// across a reload start in the state they were in.
void Control::startProber(health::TimePoint now) {
  std::vector<health::ProbeSpec> specs;
  probed_.clear();
  for (const auto& pool : runtime_->pools) {
    const auto& health = pool->config().health;
    if (!health) continue;
    health::SharedSslCtx tlsContext = probeContext(*pool, *health);
    for (const auto& member : pool->members()) {
      specs.push_back(probeSpec(*pool, *member, *health, tlsContext));
      probed_.push_back(member.get());
    }
  }
  targetOf_.clear();
  for (size_t i = 0; i < probed_.size(); ++i) targetOf_.emplace(probed_[i], i);
  seenFailures_.assign(probed_.size(), 0);
  for (size_t i = 0; i < probed_.size(); ++i) seenFailures_[i] = probed_[i]->connectFailures.snapshot();
  seenProbes_.assign(probed_.size(), 0);
  probeDurations_ = std::make_unique<DurationHistogram[]>(probed_.size());
  if (prober_) {
    prober_->abandon();
    retiredProbers_.push_back(std::move(prober_));
  }
  uint16_t id = ring::allocateProberId(&nextProberId_, [this](uint16_t candidate) {
    return std::any_of(retiredProbers_.begin(), retiredProbers_.end(),
                       [&](const auto& retired) { return retired->id() == candidate; });
  });
  prober_ = std::make_unique<health::Prober>(
      &probeRing_, id, std::move(specs),
      [this](size_t target, const health::Transition& t) { onTransition(target, t); }, now,
      std::random_device{}());
}

int Control::start(int signalFd, int adminFd) {
  signalFd_ = signalFd;
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int result = io_uring_queue_init_params(1024, &ring_, &params);
  if (result == -EINVAL) result = io_uring_queue_init(1024, &ring_, 0);
  if (result < 0) return result;
  ringReady_ = true;
  armSignalRead();
  armTick();
  if (adminFd >= 0) {
    admin_ = std::make_unique<Admin>(&submitter_, adminFd, config_.admin, reportSources());
    admin_->setReload([this](std::string* errors, std::string_view peer) {
      return reload(errors, fmt::format("admin {}", peer));
    });
    admin_->setHistory(&history_);
    admin_->start();
  }
  addEvent(EventKind::Start,
           fmt::format("serving: {} listener{}, {} pool{} (pid {})", runtime_->listeners.size(),
                       runtime_->listeners.size() == 1 ? "" : "s", runtime_->pools.size(),
                       runtime_->pools.size() == 1 ? "" : "s", ::getpid()));
  addCertificateEvents("loaded at start");
  return 0;
}

// A ring error the kernel lets us recover from is handled inside the
// submitter; any other ends the process (ring::Submitter), so this loop only
// returns once every worker has finished.
void Control::run() {
  while (runningWorkers_.load() > 0) {
    submitter_.submitAndWait();
    health::TimePoint now = health::Clock::now();
    submitter_.drain([&](const io_uring_cqe& cqe) { onCompletion(cqe, now); });
  }
}

void Control::onCompletion(const io_uring_cqe& cqe, health::TimePoint now) {
  switch (ring::unpack(cqe.user_data).owner) {
    case ring::Owner::ControlSignal: return onSignal(cqe.res);
    case ring::Owner::ControlTick: return onTick(now);
    case ring::Owner::Upgrade: return onUpgradeCompletion(cqe.user_data, cqe.res);
    case ring::Owner::Admin:
      if (admin_) admin_->onCompletion(cqe.user_data, cqe.res, cqe.flags);
      return;
    case ring::Owner::Prober: {
      ring::ProbeData probe = ring::decodeProbe(cqe.user_data);
      health::ProbeOp op = ring::ProbeRingPort::probeOp(probe);
      if (prober_->id() == probe.prober) return prober_->onCompletion(op, cqe.res, now);
      for (auto& retired : retiredProbers_)
        if (retired->id() == probe.prober) return retired->onCompletion(op, cqe.res, now);
      return;
    }
    case ring::Owner::Discovery:
      if (resolver_) resolver_->onCompletion(cqe.user_data, cqe.res);
      return;
    default: return;  // Owner::None: cancels, whose completions carry no work
  }
}

SignalRead classifySignalRead(int result) {
  if (result == static_cast<int>(sizeof(signalfd_siginfo))) return SignalRead::Signal;
  if (result >= 0) return SignalRead::Retry;  // short: signalfd never does this, act on nothing
  switch (result) {
    case -EINTR:
    case -EAGAIN: return SignalRead::Retry;
    default: return SignalRead::Broken;
  }
}

// signalInfo_ is cleared before each read, so nothing but a whole siginfo
// from the read that just completed is ever acted on.
void Control::armSignalRead() {
  signalInfo_ = signalfd_siginfo{};
  io_uring_sqe* sqe = submitter_.getSqe();
  io_uring_prep_read(sqe, signalFd_, &signalInfo_, sizeof signalInfo_, 0);
  io_uring_sqe_set_data64(sqe, ring::encodeOwner(ring::Owner::ControlSignal));
}

void Control::onSignal(int result) {
  switch (classifySignalRead(result)) {
    case SignalRead::Signal: break;
    case SignalRead::Retry:
      log::warn("control: signalfd read returned {}; reading again", result);
      return armSignalRead();
    case SignalRead::Broken: ring::exitOnRingError("control", "read from signalfd", result);
  }
  int signal = static_cast<int>(signalInfo_.ssi_signo);
  armSignalRead();
  if (signal == SIGHUP) {
    if (!stopping_) reload(nullptr, "SIGHUP");
    return;
  }
  if (signal == SIGUSR1) {
    if (accessLog_) accessLog_->reopen();
    return;
  }
  if (signal == SIGUSR2) return onUpgradeSignal();
  if (stopping_) {
    log::warn("second {}: exiting now", strsignal(signal));
    _exit(1);
  }
  stop(strsignal(signal), 0);
}

// After an upgrade the unit lives on in the new process: systemd is told
// its pid and never hears STOPPING=1 (with NotifyAccess=all it would take
// it for the unit's). The admin socket goes on in the new process too.
void Control::stop(std::string_view why, pid_t upgradedTo) {
  stopping_ = true;
  if (upgradedTo > 0) {
    notifySystemd(fmt::format("MAINPID={}", upgradedTo));
    if (admin_) admin_->stopAccepting();
  } else {
    notifySystemd("STOPPING=1");
  }
  log::info("{}: no longer accepting; waiting up to {}ms for sessions to end", why,
            runtime_->global.shutdownTimeout.count());
  // Our own descriptors of the listening sockets go with the workers', so
  // that without a new process holding them new connections are refused.
  if (upgrader_) upgrader_->closeSockets();
  for (const auto& worker : workers_) worker->requestStop();
}

void Control::setUpgrade(upgrade::StartCommand command, const upgrade::HandedSockets& sockets) {
  upgrader_ = std::make_unique<upgrade::Upgrader>(&submitter_, std::move(command));
  for (const auto& listener : sockets.listeners) upgrader_->keepListener(listener.name, listener.bind, listener.fds);
  upgrader_->keepAdmin(sockets.admin);
}

void Control::onUpgradeSignal() {
  if (stopping_) {
    log::info("SIGUSR2 ignored: this process (pid {}) is stopping", ::getpid());
    return;
  }
  if (!upgrader_) return;
  if (upgrader_->busy()) {
    log::warn("SIGUSR2 refused: the upgrade to process {} is still in progress", upgrader_->child());
    addEvent(EventKind::Upgrade,
             fmt::format("refused: the upgrade to process {} is still in progress", upgrader_->child()), {}, {},
             "SIGUSR2");
    return;
  }
  if (upgrader_->start())
    addEvent(EventKind::Upgrade,
             fmt::format("started process {}; waiting for it to be ready", upgrader_->child()), {}, {}, "SIGUSR2");
  else
    addEvent(EventKind::Upgrade, "could not start a new process (see the log); this one keeps serving", {}, {},
             "SIGUSR2");
}

void Control::onUpgradeCompletion(uint64_t userData, int result) {
  if (!upgrader_) return;
  pid_t child = upgrader_->child();
  upgrade::Upgrader::Event event = upgrader_->onCompletion(userData, result);
  if (event == upgrade::Upgrader::Event::Failed)
    addEvent(EventKind::Upgrade, fmt::format("failed: process {} ended before it was ready (see the log); "
                                             "this one (pid {}) serves on",
                                             child, ::getpid()));
  if (event != upgrade::Upgrader::Event::Ready) return;
  addEvent(EventKind::Upgrade, fmt::format("process {} took over; this one (pid {}) stops accepting", child,
                                           ::getpid()));
  if (!stopping_) return stop(fmt::format("upgrade: process {} took over", child), child);
  // Stopped (SIGTERM) while the new process started: it serves on.
  log::info("upgrade: process {} serves on; this one was stopping already", child);
  notifySystemd(fmt::format("MAINPID={}", child));
  if (admin_) admin_->stopAccepting();
}

// Sockets for the listeners the new generation adds, one per worker, bound
// before anything switches so that a port in use fails the whole reload.
bool Control::bindNewListeners(const Runtime& next, std::vector<std::map<std::string, int>>* fds,
                               std::string* errors) {
  fds->assign(workers_.size(), {});
  for (const auto& listener : next.listeners) {
    if (keepsSocket(*runtime_, listener->config)) continue;
    for (auto& perWorker : *fds) {
      int fd = openListenSocket(listener->config.bind);
      if (fd < 0) {
        *errors += fmt::format("listener {}: cannot listen on {}: {}\n", listener->config.name,
                               listener->config.bind.text, strerror(-fd));
        for (auto& opened : *fds)
          for (auto& [name, openedFd] : opened) ::close(openedFd);
        return false;
      }
      perWorker.emplace(listener->config.name, fd);
    }
  }
  return true;
}

bool Control::reload(std::string* errorsOut, std::string_view who) {
  notifySystemd("RELOADING=1");
  std::string errors;
  config::LoadResult loaded = config::loadFile(configPath_);
  for (const config::Error& error : loaded.errors) errors += config::formatError(error) + "\n";
  if (loaded.config)
    for (const config::Error& error : config::reloadRefusals(config_, *loaded.config))
      errors += config::formatError(error) + "\n";
  for (const config::Error& warning : loaded.warnings) log::warn("reload: {}", config::formatError(warning));
  std::shared_ptr<const Runtime> next;
  std::vector<std::map<std::string, int>> fds;
  std::optional<SessionLimit> sessions;
  if (loaded.config && errors.empty()) {
    std::string whyNot;
    sessions = planSessions(*loaded.config, static_cast<int>(workers_.size()), currentOpenFileLimit(), &whyNot);
    if (!sessions) errors += whyNot + "\n";
  }
  // The new file's discover entries, keeping the members of those it shares
  // with the running one: a reload never drops discovered members. Kept
  // only if the reload is accepted.
  discovery::Discovery discovered = discovery_;
  if (loaded.config && sessions) {
    discovered.reconfigure(*loaded.config, health::Clock::now());
    // The new generation runs with the max_connections in effect; config_
    // keeps the file's own value (0: derived again at the next reload).
    config::Config effective = discovered.withDiscovered(*loaded.config);
    effective.global.maxConnections = sessions->maxConnections;
    tls::BuildReport report;
    next = buildRuntime(effective, runtime_.get(), runtime_->ticketKeys, &report);
    for (const config::Error& warning : tls::toConfigErrors(report.warnings, loaded.config->sourceName))
      log::warn("reload: {}", config::formatError(warning));
    for (const config::Error& error : tls::toConfigErrors(report.errors, loaded.config->sourceName))
      errors += config::formatError(error) + "\n";
    if (next && !bindNewListeners(*next, &fds, &errors)) next.reset();
  }
  if (!next) {
    log::error("reload of {} failed; the running config stays", configPath_);
    for (size_t start = 0, end; start < errors.size(); start = end + 1) {
      end = std::min(errors.find('\n', start), errors.size());
      if (end > start) log::error("reload: {}", std::string_view(errors).substr(start, end - start));
    }
    notifySystemd("READY=1");
    addEvent(EventKind::Reload, "refused; the running config stays:\n" + withoutTrailingNewlines(errors), {}, {},
             std::string(who));
    if (errorsOut) *errorsOut = errors;
    return false;
  }
  const config::Config& fresh = *loaded.config;
  if (fresh.global.workers != config_.global.workers || fresh.global.accessLog != config_.global.accessLog ||
      (fresh.admin.listen ? fresh.admin.listen->text : "") != (config_.admin.listen ? config_.admin.listen->text : ""))
    log::warn("reload: changes to workers, access_log and [admin] listen take effect at the next restart");
  if (resolver_ && resolverSettings(fresh.global.dns) != resolverSettings(config_.global.dns))
    log::warn("reload: changes to [global.dns] servers, timeout and attempts take effect at the next restart");
  // Accepted: from here on the running generation's shared state may change.
  next->pipeBudget->setLimit(sessions->maxPipes);
  if (next->global.maxConnections != runtime_->global.maxConnections)
    log::info("reload: max_connections {} ({}), was {}; {} sessions open", next->global.maxConnections,
              sessions->how, runtime_->global.maxConnections, next->globalSessions->open());
  log::setLevel(fresh.global.logLevel);
  config_ = std::move(*loaded.config);
  discovery_ = std::move(discovered);
  discoveryChanged_ = false;  // the new generation has the members found so far
  switchTo(std::move(next), std::move(fds), "reload");
  log::info("reloaded {}: {}", configPath_, config::summary(config_));
  addEvent(EventKind::Reload, config::summary(config_), {}, {}, std::string(who));
  addCertificateEvents("loaded by the reload");
  notifySystemd("READY=1");
  return true;
}

void Control::switchTo(std::shared_ptr<const Runtime> next, std::vector<std::map<std::string, int>> fds,
                       std::string_view why) {
  // Retired addresses get no new connections; their sessions finish.
  std::string fate = next->global.removedMemberTimeout.count() > 0
                         ? fmt::format("close after {}ms", next->global.removedMemberTimeout.count())
                         : std::string("finish on their own");
  std::vector<RetiredMember> retired = commitRuntime(*runtime_, *next, monotonicNs());
  std::vector<std::string> added;
  for (const auto& pool : next->pools) {
    const Pool* before = nullptr;
    for (const auto& running : runtime_->pools)
      if (running->name() == pool->name()) before = running.get();
    if (!before) continue;  // a new pool: the reload's summary says so
    for (const auto& member : pool->members())
      if (!before->findMember(member->name)) {
        added.push_back(fmt::format("{}: member {} of pool {} added at {}", why, member->name, pool->name(),
                                    member->address.text));
        if (why == "discovery")
          addEvent(EventKind::Discovery, fmt::format("added at {}", member->address.text), pool->name(),
                   member->name);
      }
  }
  if (next->usesTls() && !runtime_->usesTls()) log::info("{}", tls::describe(tls::detectKtls()));
  if (upgrader_) upgrader_->keepAfterSwitch(*next, fds);
  for (size_t w = 0; w < workers_.size(); ++w) workers_[w]->adopt(next, std::move(fds[w]));
  runtime_ = std::move(next);
  // Said once the workers have been handed the generation.
  for (const RetiredMember& member : retired) {
    if (!member.movedTo.empty())
      log::info("{}: member {} of pool {} moved from {} to {}; its sessions to {} {}", why, member.member,
                member.pool, member.address, member.movedTo, member.address, fate);
    else
      log::info("{}: member {} of pool {} removed; its sessions {}", why, member.member, member.pool, fate);
    if (why != "discovery") continue;  // a reload's own event gives its summary
    if (!member.movedTo.empty())
      addEvent(EventKind::Discovery,
               fmt::format("moved from {} to {}; its sessions to {} {}", member.address, member.movedTo,
                           member.address, fate),
               member.pool, member.member);
    else
      addEvent(EventKind::Discovery, fmt::format("removed; its sessions {}", fate), member.pool, member.member);
  }
  for (const std::string& line : added) log::info("{}", line);
  startProber(health::Clock::now());
  if (admin_) admin_->setSources(reportSources(), config_.admin);
}

void Control::armTick() {
  io_uring_sqe* sqe = submitter_.getSqe();
  io_uring_prep_timeout(sqe, &tick_, 0, 0);
  io_uring_sqe_set_data64(sqe, ring::encodeOwner(ring::Owner::ControlTick));
}

void Control::onTick(health::TimePoint now) {
  if (!stopping_) runDiscovery(now);
  readPassiveFailures(now);
  if (!stopping_) prober_->onTick(now);
  logProbeLocalErrors(now);
  std::erase_if(retiredProbers_, [](const auto& p) { return p->idle(); });
  recordProbeDurations();
  if (now >= nextSample_) {
    sampleHistory();
    // Steps of kHistoryInterval from the previous sample; after a stall, from now.
    nextSample_ = now - nextSample_ < kHistoryInterval ? nextSample_ + kHistoryInterval : now + kHistoryInterval;
  }
  if (admin_) admin_->onTick(now);
  pid_t child = upgrader_ ? upgrader_->child() : -1;
  if (upgrader_ && upgrader_->killIfLate(now, config_.global.upgradeTimeout))
    addEvent(EventKind::Upgrade,
             fmt::format("process {} was not ready after {}ms (upgrade_timeout); killed it", child,
                         config_.global.upgradeTimeout.count()));
  armTick();
}

// Workers count failed connects per member, and successes that end a run
// of them; feed what changed since the last tick to the state machine, the
// reset first (health/passive_failures.h: none is missed).
void Control::readPassiveFailures(health::TimePoint now) {
  for (size_t i = 0; i < probed_.size(); ++i) {
    uint64_t word = probed_[i]->connectFailures.snapshot();
    health::PassiveChange change = health::passiveChange(seenFailures_[i], word);
    seenFailures_[i] = word;
    if (change.reset) prober_->onPassiveFailures(i, 0, now);
    if (change.failures > 0) prober_->onPassiveFailures(i, change.failures, now);
  }
}

// Probes this host could not run (no descriptor, ...) blame no member; they
// are said here, at most once a second.
void Control::logProbeLocalErrors(health::TimePoint now) {
  uint64_t total = health::Prober::localErrors();
  if (total == seenProbeLocalErrors_) return;
  uint64_t nowNs = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count());
  uint64_t heldBack = 0;
  if (!probeLocalErrorLog_.allow(nowNs, &heldBack)) return;
  log::warn("health probes: {} could not run on this host, no member blamed: {}",
            total - seenProbeLocalErrors_, std::strerror(health::Prober::lastLocalError()));
  seenProbeLocalErrors_ = total;
}

void Control::onTransition(size_t target, const health::Transition& transition) {
  Member& member = *probed_[target];
  member.up.store(transition.to == health::State::Up, std::memory_order_relaxed);
  const health::ProbeSpec& spec = prober_->spec(target);
  log::warn("pool {} member {}: {} -> {} ({})", spec.pool, spec.member,
            health::toString(transition.from), health::toString(transition.to), transition.reason);
  // One time for both, so the event's time is the state's "since".
  int64_t nowMs = unixNowMs();
  events_.add(nowMs, EventKind::Health,
              fmt::format("{} -> {} ({})", health::toString(transition.from), health::toString(transition.to),
                          transition.reason),
              spec.pool, spec.member);
  history_.noteState({spec.pool, spec.member}, memberState(member), nowMs);
}

void Control::recordProbeDurations() {
  for (size_t i = 0; i < probed_.size(); ++i) {
    const health::ProbeStatus& status = prober_->status(i);
    if (status.probes == seenProbes_[i]) continue;
    seenProbes_[i] = status.probes;
    probeDurations_[i].record(std::chrono::duration<double>(status.lastDuration).count());
  }
}

std::optional<size_t> Control::targetOf(const Member& member) const {
  auto it = targetOf_.find(&member);
  if (it == targetOf_.end()) return std::nullopt;
  return it->second;
}

const health::MemberHealth* Control::healthOf(const Member& member) const {
  auto target = targetOf(member);
  return target ? &prober_->health(*target) : nullptr;
}

const DurationHistogram* Control::probeDurationsOf(const Member& member) const {
  auto target = targetOf(member);
  return target ? &probeDurations_[*target] : nullptr;
}

}  // namespace lb

namespace lb {

ReportSources Control::reportSources() {
  return ReportSources{runtime_.get(), workers_, this, &discovery_, &history_, &events_};
}

void Control::addEvent(EventKind kind, std::string message, std::string pool, std::string member,
                       std::string who) {
  events_.add(unixNowMs(), kind, std::move(message), std::move(pool), std::move(member), std::move(who));
}

// Every certificate of the running generation: what an operator checks
// after replacing a file.
void Control::addCertificateEvents(std::string_view when) {
  for (const CertificateRow& row : certificateRows(*runtime_)) {
    const tls::CertificateInfo& c = *row.info;
    std::string names;
    for (const std::string& name : c.names) names += (names.empty() ? "" : ", ") + name;
    addEvent(EventKind::Certificate,
             fmt::format("{} {}: {} {}: serial {}, names [{}], expires {}", row.kind, row.owner, c.file, when,
                         c.serial, names, isoTime(c.notAfterUnix)),
             row.kind == "pool" ? std::string(row.owner) : std::string());
  }
}

// The last probe's duration: the current prober's latest, or (none yet
// since a reload restarted the prober) the value the history last had.
std::optional<double> Control::lastProbeMillis(const Member& member, const SeriesKey& key) const {
  auto target = targetOf(member);
  if (!target) return std::nullopt;
  const health::ProbeStatus& status = prober_->status(*target);
  if (status.probes > 0) return std::chrono::duration<double, std::milli>(status.lastDuration).count();
  float kept = history_.latest(key, HistoryMetric::ProbeMillis);
  if (std::isnan(kept)) return std::nullopt;
  return kept;
}

void Control::sampleHistory() {
  auto load = [](const std::atomic<uint64_t>& counter) { return counter.load(std::memory_order_relaxed); };
  std::vector<HistoryReading> readings;
  for (const auto& l : runtime_->listeners) {
    const ListenerCounters& c = l->state->counters;
    const EdgeListenerCounters& e = c.edge;
    HistoryReading r;
    r.key = {l->config.name, {}};
    r.active = static_cast<uint64_t>(std::max<int64_t>(0, l->state->active.value.load()));
    r.started = load(c.accepted);
    r.bytesIn = load(c.bytesIn);
    r.bytesOut = load(c.bytesOut);
    r.failures = load(c.rejectedByLimit) + load(c.rejectedByLocalError) + load(e.proxyHeaderInvalid) +
                 load(e.proxyHeaderTimeout) + load(e.proxyNotAllowed) + load(e.denied) + load(e.sourceLimit) +
                 load(e.sourceRate) + load(e.sourceTableFull);
    readings.push_back(std::move(r));
  }
  for (const auto& pool : runtime_->pools)
    for (const auto& member : pool->members()) {
      const MemberCounters& c = member->counters;
      HistoryReading r;
      r.key = {pool->name(), member->name};
      r.active = static_cast<uint64_t>(std::max<int64_t>(0, member->active.value.load()));
      r.started = load(c.connections);
      r.bytesIn = load(c.bytesIn);
      r.bytesOut = load(c.bytesOut);
      r.failures = load(c.connectRefused) + load(c.connectTimeout);
      r.probeMillis = lastProbeMillis(*member, r.key);
      r.state = memberState(*member);
      readings.push_back(std::move(r));
    }
  history_.sample(unixNowMs(), readings);
}

}  // namespace lb
