#include "lb/worker.h"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "lb/log.h"

namespace lb {
namespace {

constexpr unsigned kRingEntries = 4096;
constexpr unsigned kCompletionEntries = 16384;
constexpr size_t kPipeBytes = 256 * 1024;
constexpr size_t kSparePipes = 64;
constexpr uint64_t kTickMinNs = 10'000'000;    // 10 ms
constexpr uint64_t kTickMaxNs = 250'000'000;   // 250 ms

uint64_t monotonicNs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(now.tv_nsec);
}

uint64_t toNs(std::chrono::milliseconds d) { return static_cast<uint64_t>(d.count()) * 1'000'000u; }

}  // namespace

Worker::Worker(WorkerOptions options)
    : options_(std::move(options)),
      pipes_(kPipeBytes, kSparePipes),
      accessLog_(options_.accessLog) {
  // One picker per pool, shared by the listeners that use that pool.
  for (Listener* listener : options_.listeners) {
    PoolPicker* picker = nullptr;
    for (size_t i = 0; i < pickerOfListener_.size(); ++i)
      if (options_.listeners[i]->pool == listener->pool) picker = pickerOfListener_[i];
    if (!picker) {
      uint64_t seed = static_cast<uint64_t>(options_.index + 1) * 0x9e3779b97f4a7c15ull ^ monotonicNs();
      pickers_.push_back(std::make_unique<PoolPicker>(*listener->pool, seed));
      picker = pickers_.back().get();
    }
    pickerOfListener_.push_back(picker);
    uint64_t idle = toNs(listener->config.idleTimeout);
    minIdleNs_ = minIdleNs_ == 0 ? idle : std::min(minIdleNs_, idle);
  }
  uint64_t tick = std::clamp(minIdleNs_ / 4, kTickMinNs, kTickMaxNs);
  tick_.tv_sec = static_cast<int64_t>(tick / 1'000'000'000u);
  tick_.tv_nsec = static_cast<int64_t>(tick % 1'000'000'000u);
  acceptArmed_.assign(options_.listeners.size(), false);
}

Worker::~Worker() {
  if (ringReady_) io_uring_queue_exit(&ring_);
  for (int fd : options_.listenFds)
    if (fd >= 0) ::close(fd);
  if (wakeFd_ >= 0) ::close(wakeFd_);
}

int Worker::start() {
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
                 IORING_SETUP_SUBMIT_ALL;
  params.cq_entries = kCompletionEntries;
  int result = io_uring_queue_init_params(kRingEntries, &ring_, &params);
  if (result == -EINVAL) {
    // Kernels before 6.1 lack DEFER_TASKRUN; the ring works without it, at
    // the cost of task work interrupting the worker.
    params = io_uring_params{};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = kCompletionEntries;
    result = io_uring_queue_init_params(kRingEntries, &ring_, &params);
  }
  if (result < 0) return result;
  ringReady_ = true;
  wakeFd_ = eventfd(0, EFD_CLOEXEC);
  if (wakeFd_ < 0) return -errno;
  nowNs_ = monotonicNs();
  armWake();
  armTick();
  for (uint32_t i = 0; i < options_.listeners.size(); ++i) armAccept(i);
  result = io_uring_submit(&ring_);
  return result < 0 ? result : 0;
}

io_uring_sqe* Worker::getSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (!sqe) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void Worker::prepare(io_uring_sqe* sqe, Op op, uint32_t slot, uint32_t generation) {
  io_uring_sqe_set_data64(sqe, encode(UserData{op, slot, generation}));
}

void Worker::run() {
  std::vector<io_uring_cqe*> batch(256);
  while (!finished()) {
    int result = io_uring_submit_and_wait(&ring_, 1);
    if (result < 0 && result != -EINTR && result != -EAGAIN && result != -EBUSY) {
      log::error("worker {}: io_uring_submit_and_wait: {}", options_.index, std::strerror(-result));
      break;
    }
    nowNs_ = monotonicNs();
    for (;;) {
      unsigned count = io_uring_peek_batch_cqe(&ring_, batch.data(), static_cast<unsigned>(batch.size()));
      if (count == 0) break;
      // Copy each CQE out before handling it: handlers may submit, and the
      // kernel must be free to reuse the CQ entry once we advance.
      for (unsigned i = 0; i < count; ++i) {
        io_uring_cqe cqe = *batch[i];
        io_uring_cqe_seen(&ring_, batch[i]);
        handle(cqe);
      }
      stats_.completions.fetch_add(count, std::memory_order_relaxed);
    }
    stats_.pipesInUse.store(pipes_.inUse(), std::memory_order_relaxed);
    stats_.pipesSpare.store(pipes_.spare(), std::memory_order_relaxed);
    accessLog_.flush();
  }
  accessLog_.flush();
  // Nothing may outlive the loop: tearing the ring down releases whatever
  // it still holds (the tick timer, the eventfd read).
  io_uring_queue_exit(&ring_);
  ringReady_ = false;
}

bool Worker::finished() const {
  if (!stopping_ || liveSessions_ > 0) return false;
  return std::none_of(acceptArmed_.begin(), acceptArmed_.end(), [](bool armed) { return armed; });
}

void Worker::handle(const io_uring_cqe& cqe) {
  UserData data = decode(cqe.user_data);
  switch (data.op) {
    case Op::Ignore: return;
    case Op::Accept: return onAccept(data.slot, cqe.res, cqe.flags);
    case Op::AcceptRetry:
      if (stopping_)
        acceptArmed_[data.slot] = false;
      else
        armAccept(data.slot);
      return;
    case Op::Wake: return onWake();
    case Op::Tick: return onTick();
    default: break;
  }
  if (data.slot >= slotsInUse_ || slot(data.slot).generation != data.generation ||
      slot(data.slot).state == SessionState::Free) {
    stats_.staleCompletions.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  handleSession(data.op, data.slot, cqe.res);
}

void Worker::armAccept(uint32_t listenerIndex) {
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_multishot_accept(sqe, options_.listenFds[listenerIndex], nullptr, nullptr,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
  prepare(sqe, Op::Accept, listenerIndex, 0);
  acceptArmed_[listenerIndex] = true;
}

// A multishot accept keeps posting until a completion lacks F_MORE; then it
// has stopped and must be armed again (after a pause if the cause was a lack
// of fds or memory, so an exhausted process does not spin).
void Worker::onAccept(uint32_t listenerIndex, int result, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) {
    acceptArmed_[listenerIndex] = false;
    if (stopping_) {
      if (result >= 0) ::close(result);
      return;
    }
    if (result < 0) {
      if (result != -ECANCELED)
        log::warn("listener {}: accept: {}", options_.listeners[listenerIndex]->config.name,
                  std::strerror(-result));
      armAcceptRetry(listenerIndex);
      return;
    }
    armAccept(listenerIndex);
  }
  if (result >= 0) openSession(listenerIndex, result);
}

void Worker::armAcceptRetry(uint32_t listenerIndex) {
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_timeout(sqe, &acceptRetryDelay_, 0, 0);
  prepare(sqe, Op::AcceptRetry, listenerIndex, 0);
  acceptArmed_[listenerIndex] = true;  // the retry will arm it
}

void Worker::armWake() {
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_read(sqe, wakeFd_, &wakeValue_, sizeof wakeValue_, 0);
  prepare(sqe, Op::Wake, 0, 0);
}

void Worker::onWake() {
  if (stopRequested_.load() && !stopping_) beginStop();
  if (!stopping_) armWake();
}

void Worker::requestStop() {
  stopRequested_.store(true);
  uint64_t one = 1;
  ssize_t ignored = ::write(wakeFd_, &one, sizeof one);
  (void)ignored;  // the eventfd counter cannot overflow from one write per stop
}

// Stop accepting: cancel every accept and close the listening sockets, so
// new connections are refused once all workers have done the same. Sessions
// keep flowing until they end or the deadline passes.
void Worker::beginStop() {
  stopping_ = true;
  deadlineNs_ = nowNs_ + toNs(options_.shutdownTimeout);
  for (uint32_t i = 0; i < options_.listeners.size(); ++i) {
    if (!acceptArmed_[i]) continue;
    io_uring_sqe* sqe = getSqe();
    io_uring_prep_cancel64(sqe, encode(UserData{Op::Accept, i, 0}), 0);
    prepare(sqe, Op::Ignore, 0, 0);
    sqe = getSqe();
    io_uring_prep_cancel64(sqe, encode(UserData{Op::AcceptRetry, i, 0}), 0);
    prepare(sqe, Op::Ignore, 0, 0);
    // acceptArmed_ stays set until the cancelled request's last completion
    // arrives; leaving the loop before that would keep the socket accepting.
  }
  for (int& fd : options_.listenFds) {
    ::close(fd);  // the pending accept holds its own reference until cancelled
    fd = -1;
  }
}

// on_down = "close": sessions on a member that health checks took down end
// at the next tick rather than waiting for the member to answer.
bool Worker::closesWhenDown(const Session& s) const {
  const auto& health = options_.listeners[s.listenerIndex]->pool->config().health;
  return health && health->onDown == config::OnDown::Close && s.member &&
         !s.member->up.load(std::memory_order_relaxed);
}

void Worker::armTick() {
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_timeout(sqe, &tick_, 0, 0);
  prepare(sqe, Op::Tick, 0, 0);
}

// Idle timeouts and the shutdown deadline. A scan of every slot: a few
// thousand sessions cost microseconds, four times a second.
void Worker::onTick() {
  bool deadline = stopping_ && nowNs_ >= deadlineNs_;
  if (deadline && !deadlinePassed_) {
    deadlinePassed_ = true;
    stats_.sessionsOpenAtDeadline.store(liveSessions_, std::memory_order_relaxed);
  }
  for (uint32_t i = 0; i < slotsInUse_; ++i) {
    Session& s = slot(i);
    if (s.state == SessionState::Free || s.state == SessionState::Closing) continue;
    if (deadline) {
      endSession(s, EndReason::Shutdown);
      continue;
    }
    if (s.state != SessionState::Proxying) continue;
    if (closesWhenDown(s)) {
      endSession(s, EndReason::MemberDown);
      continue;
    }
    uint64_t idle = toNs(options_.listeners[s.listenerIndex]->config.idleTimeout);
    if (nowNs_ - s.lastActiveNs >= idle) endSession(s, EndReason::IdleTimeout);
  }
  armTick();
}

}  // namespace lb
