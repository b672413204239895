#include "lb/control.h"

#include <signal.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <random>

#include "health/http_status.h"
#include "lb/log.h"
#include "lb/systemd_notify.h"

namespace lb {
namespace {

uint64_t tagged(uint8_t tag) { return uint64_t{tag} << 56; }

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

health::ProbeSpec probeSpec(const Pool& pool, const Member& member, const config::Health& health) {
  health::ProbeSpec spec;
  spec.pool = pool.name();
  spec.member = member.name;
  const config::Member* configured = nullptr;
  for (const config::Member& m : pool.config().members)
    if (m.name == member.name) configured = &m;
  spec.address = configured && configured->healthAddress ? *configured->healthAddress : member.address;
  spec.kind = health.kind;
  spec.request = health::buildRequest(health.path, health.host.empty() ? spec.address.text : health.host);
  spec.expectStatus = health.expectStatus;
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
      runningWorkers_(runningWorkers) {
  startProber(health::Clock::now());
}

Control::~Control() {
  admin_.reset();
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
    for (const auto& member : pool->members()) {
      specs.push_back(probeSpec(*pool, *member, *health));
      probed_.push_back(member.get());
    }
  }
  targetOf_.clear();
  for (size_t i = 0; i < probed_.size(); ++i) targetOf_.emplace(probed_[i], i);
  seenFailures_.assign(probed_.size(), 0);
  for (size_t i = 0; i < probed_.size(); ++i)
    seenFailures_[i] = static_cast<uint64_t>(probed_[i]->connectFailures.value.load());
  seenProbes_.assign(probed_.size(), 0);
  probeDurations_ = std::make_unique<DurationHistogram[]>(probed_.size());
  if (prober_) {
    prober_->abandon();
    retiredProbers_.push_back(std::move(prober_));
  }
  uint8_t tag = nextHealthTag_;
  nextHealthTag_ = nextHealthTag_ == 255 ? kFirstHealth : nextHealthTag_ + 1;
  prober_ = std::make_unique<health::Prober>(
      &ring_, tag, std::move(specs),
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
    admin_ = std::make_unique<Admin>(&ring_, kAdmin, adminFd, config_.admin.token,
                                     ReportSources{runtime_.get(), workers_, this});
    admin_->setReload([this](std::string* errors) { return reload(errors); });
    admin_->start();
  }
  return 0;
}

void Control::run() {
  while (runningWorkers_.load() > 0) {
    int result = io_uring_submit_and_wait(&ring_, 1);
    if (result < 0 && result != -EINTR && result != -EAGAIN && result != -EBUSY) {
      log::error("control: io_uring_submit_and_wait: {}", strerror(-result));
      return;
    }
    health::TimePoint now = health::Clock::now();
    io_uring_cqe* cqe;
    while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
      uint64_t data = cqe->user_data;
      int res = cqe->res;
      uint32_t flags = cqe->flags;
      io_uring_cqe_seen(&ring_, cqe);
      uint8_t tag = static_cast<uint8_t>(data >> 56);
      if (tag == kSignal) {
        onSignal();
      } else if (tag == kTick) {
        onTick(now);
      } else if (tag == kAdmin) {
        if (admin_) admin_->onCompletion(data, res, flags);
      } else if (tag >= kFirstHealth) {
        if (prober_->tag() == tag) prober_->onCompletion(data, res, now);
        for (auto& retired : retiredProbers_)
          if (retired->tag() == tag) retired->onCompletion(data, res, now);
      }
    }
  }
}

void Control::armSignalRead() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  io_uring_prep_read(sqe, signalFd_, &signalInfo_, sizeof signalInfo_, 0);
  io_uring_sqe_set_data64(sqe, tagged(kSignal));
}

void Control::onSignal() {
  int signal = static_cast<int>(signalInfo_.ssi_signo);
  armSignalRead();
  if (signal == SIGHUP) {
    if (!stopping_) reload(nullptr);
    return;
  }
  if (stopping_) {
    log::warn("second {}: exiting now", strsignal(signal));
    _exit(1);
  }
  stopping_ = true;
  notifySystemd("STOPPING=1");
  log::info("{}: no longer accepting; waiting up to {}ms for sessions to end", strsignal(signal),
            runtime_->global.shutdownTimeout.count());
  for (const auto& worker : workers_) worker->requestStop();
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

bool Control::reload(std::string* errorsOut) {
  notifySystemd("RELOADING=1");
  std::string errors;
  config::LoadResult loaded = config::loadFile(configPath_);
  for (const config::Error& error : loaded.errors) errors += config::formatError(error) + "\n";
  std::shared_ptr<const Runtime> next;
  std::vector<std::map<std::string, int>> fds;
  if (loaded.config) {
    next = buildRuntime(*loaded.config, runtime_.get());
    if (!bindNewListeners(*next, &fds, &errors)) next.reset();
  }
  if (!next) {
    log::error("reload of {} failed; the running config stays:\n{}", configPath_, errors);
    notifySystemd("READY=1");
    if (errorsOut) *errorsOut = errors;
    return false;
  }
  const config::Config& fresh = *loaded.config;
  if (fresh.global.workers != config_.global.workers || fresh.global.accessLog != config_.global.accessLog ||
      (fresh.admin.listen ? fresh.admin.listen->text : "") != (config_.admin.listen ? config_.admin.listen->text : ""))
    log::warn("reload: changes to workers, access_log and [admin] listen take effect at the next restart");
  // Members that left get no new connections; their sessions finish.
  for (const auto& pool : runtime_->pools)
    for (const auto& member : pool->members()) {
      bool kept = false;
      for (const auto& nextPool : next->pools)
        for (const auto& m : nextPool->members()) kept |= m == member;
      if (!kept) {
        timespec now{};
        clock_gettime(CLOCK_MONOTONIC, &now);
        member->removedAtNs.store(static_cast<uint64_t>(now.tv_sec) * 1'000'000'000u +
                                  static_cast<uint64_t>(now.tv_nsec));
        member->removed.store(true);
        log::info("reload: member {} of pool {} removed; its sessions {}", member->name, pool->name(),
                  fresh.global.removedMemberTimeout.count() > 0
                      ? fmt::format("close after {}ms", fresh.global.removedMemberTimeout.count())
                      : std::string("finish on their own"));
      }
    }
  for (size_t w = 0; w < workers_.size(); ++w) workers_[w]->adopt(next, std::move(fds[w]));
  runtime_ = std::move(next);
  log::setLevel(fresh.global.logLevel);
  config_ = std::move(*loaded.config);
  startProber(health::Clock::now());
  if (admin_) admin_->setSources(ReportSources{runtime_.get(), workers_, this}, config_.admin.token);
  log::info("reloaded {}: {}", configPath_, config::summary(config_));
  notifySystemd("READY=1");
  return true;
}

void Control::armTick() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  io_uring_prep_timeout(sqe, &tick_, 0, 0);
  io_uring_sqe_set_data64(sqe, tagged(kTick));
}

void Control::onTick(health::TimePoint now) {
  readPassiveFailures(now);
  if (!stopping_) prober_->onTick(now);
  logProbeLocalErrors(now);
  std::erase_if(retiredProbers_, [](const auto& p) { return p->idle(); });
  recordProbeDurations();
  if (admin_) admin_->onTick(now);
  armTick();
}

// Workers count failed connects per member and reset the count on a
// successful one; feed what changed since the last tick to the state machine.
void Control::readPassiveFailures(health::TimePoint now) {
  for (size_t i = 0; i < probed_.size(); ++i) {
    uint64_t failures =
        static_cast<uint64_t>(probed_[i]->connectFailures.value.load(std::memory_order_relaxed));
    if (failures == seenFailures_[i]) continue;
    if (failures < seenFailures_[i]) {
      prober_->onPassiveFailures(i, 0, now);  // a connect succeeded in between
      seenFailures_[i] = 0;
    }
    if (failures > seenFailures_[i]) prober_->onPassiveFailures(i, failures - seenFailures_[i], now);
    seenFailures_[i] = failures;
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
