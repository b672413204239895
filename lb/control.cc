#include "lb/control.h"

#include <signal.h>
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
  return spec;
}

}  // namespace

Control::Control(const config::Config& config, std::span<const std::unique_ptr<Listener>> listeners,
                 std::span<const std::unique_ptr<Pool>> pools,
                 std::span<const std::unique_ptr<Worker>> workers,
                 const std::atomic<int>& runningWorkers)
    : config_(config),
      sources_{listeners, pools, workers, this},
      workers_(workers),
      runningWorkers_(runningWorkers) {
  std::vector<health::ProbeSpec> specs;
  for (const auto& pool : pools) {
    const auto& health = pool->config().health;
    if (!health) continue;
    for (const auto& member : pool->members()) {
      specs.push_back(probeSpec(*pool, *member, *health));
      probed_.push_back(member.get());
    }
  }
  seenFailures_.assign(probed_.size(), 0);
  seenProbes_.assign(probed_.size(), 0);
  probeDurations_ = std::make_unique<DurationHistogram[]>(probed_.size());
  prober_ = std::make_unique<health::Prober>(
      &ring_, kHealth, std::move(specs),
      [this](size_t target, const health::Transition& t) { onTransition(target, t); },
      health::Clock::now(), std::random_device{}());
}

Control::~Control() {
  admin_.reset();
  prober_.reset();  // closes probe sockets before the ring goes
  if (ringReady_) io_uring_queue_exit(&ring_);
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
    admin_ = std::make_unique<Admin>(&ring_, kAdmin, adminFd, config_.admin.token, sources_);
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
      switch (data >> 56) {
        case kSignal: onSignal(); break;
        case kTick: onTick(now); break;
        case kHealth: prober_->onCompletion(data, res, now); break;
        case kAdmin:
          if (admin_) admin_->onCompletion(data, res, flags);
          break;
        default: break;  // cancel requests' own completions
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
    log::warn("SIGHUP: reloading is not supported yet; the running config stays");
    return;
  }
  if (stopping_) {
    log::warn("second {}: exiting now", strsignal(signal));
    _exit(1);
  }
  stopping_ = true;
  notifySystemd("STOPPING=1");
  log::info("{}: no longer accepting; waiting up to {}ms for sessions to end", strsignal(signal),
            config_.global.shutdownTimeout.count());
  for (const auto& worker : workers_) worker->requestStop();
}

void Control::armTick() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  io_uring_prep_timeout(sqe, &tick_, 0, 0);
  io_uring_sqe_set_data64(sqe, tagged(kTick));
}

void Control::onTick(health::TimePoint now) {
  readPassiveFailures(now);
  if (!stopping_) prober_->onTick(now);
  recordProbeDurations();
  if (admin_) admin_->onTick(now);
  armTick();
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
  for (size_t i = 0; i < probed_.size(); ++i)
    if (probed_[i] == &member) return i;
  return std::nullopt;
}

const health::MemberHealth* Control::healthOf(const Member& member) const {
  auto target = targetOf(member);
  return target ? &prober_->health(*target) : nullptr;
}

const DurationHistogram* Control::probeDurationsOf(const Member& member) const {
  auto target = targetOf(member);
  return target ? &probeDurations_[*target] : nullptr;
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

void Control::onTransition(size_t target, const health::Transition& transition) {
  Member& member = *probed_[target];
  member.up.store(transition.to == health::State::Up, std::memory_order_relaxed);
  const health::ProbeSpec& spec = prober_->spec(target);
  log::warn("pool {} member {}: {} -> {} ({})", spec.pool, spec.member,
            health::toString(transition.from), health::toString(transition.to), transition.reason);
}

}  // namespace lb
