#include "health/prober.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace health {
namespace {

bool usesTls(config::HealthKind kind) {
  return kind == config::HealthKind::Tls || kind == config::HealthKind::Https;
}

// After a local error, a target's next probe waits at most this long.
constexpr Duration kLocalErrorRetry = std::chrono::seconds(1);

std::atomic<uint64_t> gLocalErrors{0};
std::atomic<int> gLastLocalError{0};

}  // namespace

std::string formatDuration(Duration duration) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(duration).count();
  if (ms < 1000) return fmt::format("{}ms", ms);
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{:.3g}s", static_cast<double>(ms) / 1000.0);
}

std::string connectFailureReason(int error) {
  switch (error) {
    case ECONNREFUSED: return "connect refused";
    case ECONNRESET: return "connection reset";
    case ENETUNREACH:
    case EHOSTUNREACH: return "unreachable";
    default: return std::strerror(error);
  }
}

bool isLocalResourceError(int error) {
  switch (error) {
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
    case EADDRNOTAVAIL: return true;
    default: return false;
  }
}

uint64_t Prober::localErrors() { return gLocalErrors.load(std::memory_order_relaxed); }
int Prober::lastLocalError() { return gLastLocalError.load(std::memory_order_relaxed); }

Prober::Prober(ProbeRing* ring, uint16_t id, std::vector<ProbeSpec> specs, OnTransition onTransition,
               TimePoint now, uint64_t seed)
    : ring_(ring), id_(id), onTransition_(std::move(onTransition)), random_(seed) {
  targets_.reserve(specs.size());
  SharedSslCtx systemTrust;  // one for every tls target that brings no context
  for (ProbeSpec& spec : specs) {
    if (usesTls(spec.kind) && !spec.tlsContext) {
      if (!systemTrust) systemTrust = defaultProbeContext();
      spec.tlsContext = systemTrust;
    }
    Options options = spec.options;
    State initial = spec.initial;
    std::string plainOutput;
    if (!usesTls(spec.kind))
      plainOutput = spec.kind == config::HealthKind::Http ? spec.prelude + spec.request : spec.prelude;
    targets_.push_back(Target{.spec = std::move(spec),
                              .health = MemberHealth(options, now, nextRandom(), initial),
                              .status = {},
                              .plainOutput = std::move(plainOutput),
                              .parser = {}});
  }
}

Prober::~Prober() {
  for (Target& target : targets_)
    if (target.fd >= 0) ::close(target.fd);
}

uint64_t Prober::nextRandom() {
  uint64_t z = (random_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

bool Prober::idle() const {
  return std::all_of(targets_.begin(), targets_.end(),
                     [](const Target& t) { return t.inflight == 0; });
}

uint64_t Prober::userData(size_t index, Step step) const {
  return ring_->userData(id_, ProbeOp{static_cast<uint8_t>(step), static_cast<uint32_t>(index),
                                      targets_[index].generation});
}

// Ends the probe of a target: its operation in flight (if any) is cancelled,
// its socket closed, and its generation moved on so the late completion is
// only counted.
void Prober::stop(size_t index) {
  Target& t = targets_[index];
  if (t.inflight > 0) {
    io_uring_sqe* sqe = ring_->getSqe();
    io_uring_prep_cancel64(sqe, userData(index, t.step), 0);
    io_uring_sqe_set_data64(sqe, 0);  // the cancel's own completion carries no work
  }
  if (t.fd >= 0) ::close(t.fd);  // an op still in flight holds its own reference
  t.fd = -1;
  if (t.inflight == 0) t.tls.reset();
  t.running = false;
  ++t.generation;
}

void Prober::onTick(TimePoint now) {
  // Targets beyond what user_data can carry keep their initial state and are
  // never probed (over a million health-checked members: not a real config).
  size_t probed = std::min(targets_.size(), size_t{kProbeTargetLimit});
  for (size_t i = 0; i < probed; ++i) {
    Target& t = targets_[i];
    if (t.running && now >= t.deadline)
      finish(i, false, fmt::format("timeout after {}", formatDuration(t.spec.options.timeout)), now);
    else if (!t.running && t.inflight == 0 && now >= t.health.nextProbeAt() && now >= t.retryAt)
      start(i, now);
  }
}

void Prober::abandon() {
  for (size_t i = 0; i < targets_.size(); ++i)
    if (targets_[i].running) stop(i);
}

void Prober::start(size_t index, TimePoint now) {
  Target& t = targets_[index];
  int fd = ::socket(t.spec.address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return skip(index, errno, now);
  t.fd = fd;
  t.running = true;
  t.startedAt = now;
  t.deadline = now + t.spec.options.timeout;
  t.sent = 0;
  t.parser = StatusLineParser{};
  t.tls.reset();
  submit(index, Step::Connect);
}

void Prober::submit(size_t index, Step step) {
  Target& t = targets_[index];
  io_uring_sqe* sqe = ring_->getSqe();
  switch (step) {
    case Step::Connect:
      io_uring_prep_connect(sqe, t.fd, t.spec.address.sockaddrPtr(), t.spec.address.length);
      break;
    case Step::Send:
      if (t.tls) {
        std::span<const char> out = t.tls->output();
        io_uring_prep_send(sqe, t.fd, out.data(), out.size(), MSG_NOSIGNAL);
        break;
      }
      io_uring_prep_send(sqe, t.fd, t.plainOutput.data() + t.sent, t.plainOutput.size() - t.sent, MSG_NOSIGNAL);
      break;
    case Step::Recv:
      if (t.tls) {
        std::span<char> in = t.tls->receiveBuffer();
        io_uring_prep_recv(sqe, t.fd, in.data(), in.size(), 0);
        break;
      }
      io_uring_prep_recv(sqe, t.fd, t.buffer.data(), t.buffer.size(), 0);
      break;
  }
  io_uring_sqe_set_data64(sqe, userData(index, step));
  t.step = step;
  ++t.inflight;
}

void Prober::onCompletion(const ProbeOp& op, int result, TimePoint now) {
  size_t index = op.target;
  if (index >= targets_.size()) return;
  Target& t = targets_[index];
  --t.inflight;
  if (!t.running || op.generation != t.generation) {  // an abandoned probe
    if (t.inflight == 0) t.tls.reset();
    return;
  }
  onStep(index, static_cast<Step>(op.step), result, now);
}

void Prober::onStep(size_t index, Step step, int result, TimePoint now) {
  Target& t = targets_[index];
  if (result < 0 && isLocalResourceError(-result)) return skip(index, -result, now);
  if (t.tls) return onTlsStep(index, step, result, now);
  if (result < 0) return finish(index, false, connectFailureReason(-result), now);
  switch (step) {
    case Step::Connect:
      if (usesTls(t.spec.kind)) {
        t.tls = std::make_unique<TlsProbe>(
            t.spec.tlsContext.get(), t.spec.serverName,
            t.spec.kind == config::HealthKind::Https ? t.spec.request : std::string(), t.spec.prelude);
        return continueTls(index, t.tls->begin(), now);
      }
      if (t.plainOutput.empty()) return finish(index, true, "connected", now);  // tcp
      return submit(index, Step::Send);
    case Step::Send:
      t.sent += static_cast<size_t>(result);
      if (t.sent < t.plainOutput.size()) return submit(index, Step::Send);
      if (t.spec.kind == config::HealthKind::Tcp) return finish(index, true, "connected", now);
      return submit(index, Step::Recv);
    case Step::Recv: {
      if (result == 0) return finish(index, false, std::string(t.parser.finish().reason), now);
      StatusLineParser::Result parsed =
          t.parser.feed(std::span<const char>(t.buffer.data(), static_cast<size_t>(result)));
      if (parsed.kind == StatusLineParser::Kind::NeedMore) return submit(index, Step::Recv);
      if (parsed.kind == StatusLineParser::Kind::Bad) return finish(index, false, std::string(parsed.reason), now);
      bool expected = std::find(t.spec.expectStatus.begin(), t.spec.expectStatus.end(),
                                parsed.status) != t.spec.expectStatus.end();
      return finish(index, expected, fmt::format("status {}", parsed.status), now);
    }
  }
}

// A send or receive of a TLS probe: its bytes go to the TlsProbe, which
// says what comes next.
void Prober::onTlsStep(size_t index, Step step, int result, TimePoint now) {
  TlsProbe& tls = *targets_[index].tls;
  if (result < 0) return continueTls(index, tls.onConnectionError(connectFailureReason(-result)), now);
  if (step == Step::Send) return continueTls(index, tls.onSent(static_cast<size_t>(result)), now);
  return continueTls(index, tls.onReceived(static_cast<size_t>(result)), now);
}

void Prober::continueTls(size_t index, TlsProbe::Next next, TimePoint now) {
  Target& t = targets_[index];
  switch (next) {
    case TlsProbe::Next::Send: return submit(index, Step::Send);
    case TlsProbe::Next::Receive: return submit(index, Step::Recv);
    case TlsProbe::Next::Done: break;
  }
  TlsProbe::Verdict verdict = t.tls->verdict();
  bool passed = verdict.passed;
  if (passed && t.spec.kind == config::HealthKind::Https)
    passed = std::find(t.spec.expectStatus.begin(), t.spec.expectStatus.end(), verdict.status) !=
             t.spec.expectStatus.end();
  finish(index, passed, std::move(verdict.reason), now);
}

void Prober::finish(size_t index, bool passed, std::string reason, TimePoint now) {
  Target& t = targets_[index];
  stop(index);
  t.status.lastDuration = now - t.startedAt;
  ++t.status.probes;
  if (!passed) ++t.status.failures;
  auto transition = t.health.onProbeResult(passed, std::move(reason), now, nextRandom());
  if (transition) onTransition_(index, *transition);
}

// This host could not run the probe (no descriptor, memory or local port):
// that says nothing about the member, so it is no result at all. The probe
// is counted, and tried again after a pause rather than at every tick.
void Prober::skip(size_t index, int error, TimePoint now) {
  Target& t = targets_[index];
  if (t.running) stop(index);
  t.retryAt = now + std::min(t.spec.options.interval, kLocalErrorRetry);
  gLocalErrors.fetch_add(1, std::memory_order_relaxed);
  gLastLocalError.store(error, std::memory_order_relaxed);
}

void Prober::onPassiveFailures(size_t target, uint64_t failures, TimePoint now) {
  MemberHealth& health = targets_[target].health;
  if (failures == 0) return health.onPassiveSuccess();
  for (uint64_t i = 0; i < failures; ++i) {
    auto transition = health.onPassiveFailure("connect failed in traffic", now, nextRandom());
    if (transition) onTransition_(target, *transition);
  }
}

}  // namespace health
