#include "lb/worker.h"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "health/prober.h"
#include "lb/log.h"
#include "lb/tls/ktls.h"

namespace lb {
namespace {

constexpr unsigned kRingEntries = 4096;
constexpr unsigned kCompletionEntries = 16384;
constexpr size_t kPipeBytes = 256 * 1024;
constexpr size_t kSparePipes = 64;
// The copy path's buffers: small messages go recv -> send through these;
// a receive that fills one switches its flow to splice.
constexpr unsigned kRingBuffers = 512;
constexpr unsigned kRingBufferBytes = 16 * 1024;
constexpr uint64_t kTickMinNs = 10'000'000;    // 10 ms
constexpr uint64_t kTickMaxNs = 250'000'000;   // 250 ms
// An accept that completes with -EAGAIN rather than waiting (Linux 6.10;
// older kernels refuse it with -EINVAL). liburing 2.3 does not name it.
constexpr uint16_t kAcceptDontWait = 1u << 1;
// A stopping slot's drain takes at most what a full backlog holds.
constexpr uint32_t kDrainLimit = 4096;

uint64_t monotonicNs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(now.tv_nsec);
}

uint64_t toNs(std::chrono::milliseconds d) { return static_cast<uint64_t>(d.count()) * 1'000'000u; }

}  // namespace

Worker::Worker(WorkerOptions options)
    : options_(std::move(options)),
      submitter_(&ring_, fmt::format("worker {}", options_.index)),
      pipes_(kPipeBytes, kSparePipes),
      accessLog_(options_.accessLog) {
  offerKernelTx_ = tls::offerKernelTx();
  pipes_.setBudget(options_.runtime->pipeBudget);
  current_ = makeGeneration(options_.runtime);
  for (const ListenFd& socket : options_.listenFds)
    listenerSlots_.push_back(ListenerSlot{socket.fd, socket.listener, true, false, false});
  options_.listenFds.clear();
  computeTick();
}

// One picker per pool, shared by the listeners (and routes) that use that
// pool; this worker's own TLS contexts for the listeners and pools that
// have TLS settings.
std::unique_ptr<WorkerGeneration> Worker::makeGeneration(std::shared_ptr<const Runtime> runtime) {
  auto generation = std::make_unique<WorkerGeneration>();
  generation->runtime = std::move(runtime);
  auto pickerFor = [&](const Pool* pool) {
    for (const auto& existing : generation->pickers)
      if (&existing->pool() == pool) return existing.get();
    uint64_t seed = static_cast<uint64_t>(options_.index + 1) * 0x9e3779b97f4a7c15ull ^ monotonicNs();
    generation->pickers.push_back(std::make_unique<PoolPicker>(*pool, seed));
    if (pool->tls && !generation->clientContexts.count(pool)) {
      tls::SslCtxPtr context = pool->tls->newContext(tlsLibrary());
      if (context)
        tls::Leg::enableSessionStore(context.get());
      else
        log::error("worker {}: pool {}: no TLS context; connections to its members fail", options_.index,
                   pool->name());
      generation->clientContexts.emplace(pool, std::move(context));
    }
    return generation->pickers.back().get();
  };
  for (const auto& listener : generation->runtime->listeners) {
    generation->pickerOfListener.push_back(pickerFor(listener->pool));
    auto& routes = generation->routePickers.emplace_back();
    for (const Pool* pool : listener->routePools) routes.push_back(pickerFor(pool));
    tls::SslCtxPtr context;
    if (listener->tls) {
      context = listener->tls->newWorkerContext(tlsLibrary());
      if (!context)
        log::error("worker {}: listener {}: no TLS context; its handshakes fail", options_.index,
                   listener->config.name);
    }
    generation->serverContexts.push_back(std::move(context));
  }
  return generation;
}

// Made on first use (a config with no TLS never has one). The worker's
// thread makes it its default, here if this runs on that thread (a reload
// that brings the first TLS), else in start().
OSSL_LIB_CTX* Worker::tlsLibrary() {
  if (!libraryTried_) {
    libraryTried_ = true;
    library_ = tls::newLibrary();
    if (!library_)
      log::warn("worker {}: no OpenSSL library context of its own; sharing the process's", options_.index);
    else if (threadStarted_)
      OSSL_LIB_CTX_set0_default(library_.get());
  }
  return library_.get();
}

WorkerGeneration::~WorkerGeneration() {
  for (auto& [member, session] : memberSessions)
    if (session) SSL_SESSION_free(session);
}

void Worker::computeTick() {
  minIdleNs_ = 0;
  for (const auto& listener : current_->runtime->listeners) {
    uint64_t idle = toNs(listener->config.idleTimeout);
    minIdleNs_ = minIdleNs_ == 0 ? idle : std::min(minIdleNs_, idle);
    // Handshake and preread deadlines are checked at the tick too.
    if (listener->tls)
      minIdleNs_ = std::min(minIdleNs_, toNs(listener->tls->handshakeTimeout()));
    else if (!listener->routePools.empty())
      minIdleNs_ = std::min(minIdleNs_, toNs(listener->config.prereadTimeout));
    if (listener->config.acceptProxy != config::AcceptProxy::Off)
      minIdleNs_ = std::min(minIdleNs_, toNs(listener->config.proxyTimeout));
  }
  uint64_t tick = std::clamp(minIdleNs_ / 4, kTickMinNs, kTickMaxNs);
  tick_.tv_sec = static_cast<int64_t>(tick / 1'000'000'000u);
  tick_.tv_nsec = static_cast<int64_t>(tick % 1'000'000'000u);
}

uint64_t Worker::descriptorsPerWorker(size_t listeners) {
  return listeners + 2 + 2 * kSparePipes;  // + the ring and the eventfd
}

Worker::~Worker() {
  if (ringReady_) io_uring_queue_exit(&ring_);
  for (ListenerSlot& slot : listenerSlots_)
    if (slot.fd >= 0) ::close(slot.fd);
  for (auto& [name, fd] : pendingFds_) ::close(fd);
  if (wakeFd_ >= 0) ::close(wakeFd_);
}

int Worker::start() {
  threadStarted_ = true;
  if (library_) OSSL_LIB_CTX_set0_default(library_.get());
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
  result = buffers_.setup(&ring_, kRingBuffers, kRingBufferBytes, 0);
  received_.setBufferCount(kRingBuffers);
  if (result < 0)
    log::warn("worker {}: no provided-buffer ring ({}); every flow uses splice", options_.index,
              std::strerror(-result));
  wakeFd_ = eventfd(0, EFD_CLOEXEC);
  if (wakeFd_ < 0) return -errno;
  nowNs_ = monotonicNs();
  armWake();
  armTick();
  acceptsHeld_ = options_.holdAccepts && !acceptsReleased_.load();
  if (!acceptsHeld_)
    for (uint32_t i = 0; i < listenerSlots_.size(); ++i) armAccept(i);
  result = io_uring_submit(&ring_);
  return result < 0 ? result : 0;
}

io_uring_sqe* Worker::getSqe() { return submitter_.getSqe(); }

void Worker::prepare(io_uring_sqe* sqe, Op op, uint32_t slot, uint32_t generation) {
  io_uring_sqe_set_data64(sqe, encode(UserData{op, slot, generation}));
}

// The submitter recovers from what the kernel lets it (EINTR, EBUSY, EAGAIN,
// EBADR) and ends the process on any other ring error, so the loop is never
// left with a listening socket that nobody accepts from.
void Worker::run() {
  while (!finished()) {
    submitter_.submitAndWait();
    nowNs_ = monotonicNs();
    unsigned count = submitter_.drain([this](const io_uring_cqe& cqe) { handle(cqe); });
    stats_.completions.fetch_add(count, std::memory_order_relaxed);
    stats_.pipesInUse.store(pipes_.inUse(), std::memory_order_relaxed);
    stats_.pipesSpare.store(pipes_.spare(), std::memory_order_relaxed);
    accessLog_.flush();  // also at every tick, so lines never wait for traffic
  }
  accessLog_.flushBeforeExit();
  // Nothing may outlive the loop: tearing the ring down releases whatever
  // it still holds (the tick timer, the eventfd read).
  io_uring_queue_exit(&ring_);
  ringReady_ = false;
}

bool Worker::finished() const {
  if (!stopping_ || liveSessions_ > 0) return false;
  return std::none_of(listenerSlots_.begin(), listenerSlots_.end(),
                      [](const ListenerSlot& slot) { return slot.armed; });
}

void Worker::handle(const io_uring_cqe& cqe) {
  UserData data = decode(cqe.user_data);
  // From here the buffer is ours until it is recycled (exactly once).
  if (cqe.flags & IORING_CQE_F_BUFFER)
    buffers_.claim(static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
  switch (data.op) {
    case Op::Ignore: return;
    case Op::Accept: return onAccept(data.slot, cqe.res, cqe.flags);
    case Op::AcceptRetry:
      if (listenerSlots_[data.slot].open)
        armAccept(data.slot);
      else if (listenerSlots_[data.slot].servesLate)
        drainAccept(data.slot);
      else
        listenerSlotIdle(data.slot);
      return;
    case Op::Wake: return onWake();
    case Op::Tick: return onTick();
    default: break;
  }
  if (data.slot >= slotsInUse_ || slot(data.slot).generation != data.generation ||
      slot(data.slot).state == SessionState::Free) {
    stats_.staleCompletions.fetch_add(1, std::memory_order_relaxed);
    if (cqe.flags & IORING_CQE_F_BUFFER)
      buffers_.recycle(static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
    return;
  }
  handleSession(data.op, data.slot, cqe.res, cqe.flags);
}

void Worker::armAccept(uint32_t slot) {
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_multishot_accept(sqe, listenerSlots_[slot].fd, nullptr, nullptr,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
  prepare(sqe, Op::Accept, slot, 0);
  listenerSlots_[slot].armed = true;
}

// A multishot accept keeps posting until a completion lacks F_MORE; then it
// has stopped and must be armed again (after a pause if the cause was a lack
// of fds or memory, so an exhausted process does not spin). A slot that is
// no longer open (stop, or its listener left in a reload) is not re-armed.
//
// A connection that arrives after the slot closed was accepted before the
// cancel took effect: the kernel has taken it off the queue, so no other
// socket or process will ever serve it. After a stop (SIGTERM, or an
// upgrade handing the sockets on) it is served; after a reload that removed
// its listener there is no listener left to serve it for, and it is closed.
void Worker::onAccept(uint32_t slot, int result, uint32_t flags) {
  ListenerSlot& listenerSlot = listenerSlots_[slot];
  bool more = flags & IORING_CQE_F_MORE;
  if (!more && listenerSlot.open) {
    listenerSlot.armed = false;
    if (result < 0) {
      if (result != -ECANCELED) onAcceptError(slot, -result);
      armAcceptRetry(slot);
      return;
    }
    armAccept(slot);
  }
  if (result >= 0) {
    if (listenerSlot.open || listenerSlot.servesLate)
      openSession(listenerSlot.listener, result);
    else
      ::close(result);
  }
  if (more || listenerSlot.open) return;
  bool drainOn = listenerSlot.draining ? result >= 0 : true;
  if (listenerSlot.servesLate && drainOn && listenerSlot.drained < kDrainLimit)
    drainAccept(slot);
  else
    listenerSlotIdle(slot);
}

// A stopping slot's accept has ended and the socket is off this ring's
// wait: whatever is still queued is taken here (no waiting), and served.
// A connection whose wake-up went to the cancelled accept would otherwise
// wait in the queue until the next one arrives: the kernel wakes one
// accepter per connection, and after an upgrade the new process's accept
// is waiting on the same socket but was not woken.
void Worker::drainAccept(uint32_t slot) {
  ListenerSlot& listenerSlot = listenerSlots_[slot];
  listenerSlot.draining = true;
  listenerSlot.armed = true;
  ++listenerSlot.drained;
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_accept(sqe, listenerSlot.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  sqe->ioprio |= kAcceptDontWait;
  prepare(sqe, Op::Accept, slot, 0);
}

// Out of descriptors or memory, an accept fails at every retry: the clients
// wait in the backlog until something is freed. Said at most once a second.
void Worker::onAcceptError(uint32_t slot, int error) {
  if (health::isLocalResourceError(error))
    return localError(LocalError::Accept, error, "accept (clients wait in the backlog)");
  uint64_t heldBack = 0;
  if (acceptErrorLog_.allow(nowNs_, &heldBack))
    log::warn("listener {}: accept: {}",
              current_->runtime->listeners[listenerSlots_[slot].listener]->config.name,
              std::strerror(error));
}

void Worker::armAcceptRetry(uint32_t slot) {
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_timeout(sqe, &acceptRetryDelay_, 0, 0);
  prepare(sqe, Op::AcceptRetry, slot, 0);
  listenerSlots_[slot].armed = true;  // the retry will arm it
}

// Stops accepting on a slot: cancels its accept (or retry timer); the
// socket is closed once the cancelled request's last completion has come
// (listenerSlotIdle). `armed` stays set until then, so the slot is not
// reused (nor the loop left) early. `stopping`: see onAccept.
void Worker::closeListenerSlot(uint32_t slot, bool stopping) {
  ListenerSlot& listenerSlot = listenerSlots_[slot];
  if (!listenerSlot.open) return;
  listenerSlot.open = false;
  listenerSlot.servesLate = stopping;
  if (!listenerSlot.armed) return stopping ? drainAccept(slot) : listenerSlotIdle(slot);
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_cancel64(sqe, encode(UserData{Op::Accept, slot, 0}), 0);
  prepare(sqe, Op::Ignore, 0, 0);
  sqe = getSqe();
  io_uring_prep_cancel64(sqe, encode(UserData{Op::AcceptRetry, slot, 0}), 0);
  prepare(sqe, Op::Ignore, 0, 0);
}

// A closed slot's last completion has come: nothing refers to its socket.
void Worker::listenerSlotIdle(uint32_t slot) {
  ListenerSlot& listenerSlot = listenerSlots_[slot];
  listenerSlot.armed = false;
  listenerSlot.draining = false;
  if (listenerSlot.fd >= 0) ::close(listenerSlot.fd);
  listenerSlot.fd = -1;
}

void Worker::armWake() {
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_read(sqe, wakeFd_, &wakeValue_, sizeof wakeValue_, 0);
  prepare(sqe, Op::Wake, 0, 0);
}

void Worker::onWake() {
  if (acceptsHeld_ && acceptsReleased_.load()) {
    acceptsHeld_ = false;
    if (!stopping_)
      for (uint32_t i = 0; i < listenerSlots_.size(); ++i)
        if (listenerSlots_[i].open && !listenerSlots_[i].armed) armAccept(i);
  }
  if (stopRequested_.load() && !stopping_) beginStop();
  if (!stopping_) {
    applyPending();
    armWake();
  }
}

void Worker::adopt(std::shared_ptr<const Runtime> runtime, std::map<std::string, int> newListenFds) {
  {
    std::lock_guard lock(pendingMutex_);
    pendingRuntime_ = std::move(runtime);
    for (auto& [name, fd] : newListenFds) {
      auto [it, inserted] = pendingFds_.emplace(name, fd);
      if (!inserted) {
        ::close(it->second);
        it->second = fd;
      }
    }
  }
  uint64_t one = 1;
  ssize_t ignored = ::write(wakeFd_, &one, sizeof one);
  (void)ignored;
}

// Switches to the newest runtime: listeners that stay keep their sockets,
// listeners that left stop accepting, new ones start. Sessions already open
// keep their generation until they end.
void Worker::applyPending() {
  std::shared_ptr<const Runtime> runtime;
  std::map<std::string, int> fds;
  {
    std::lock_guard lock(pendingMutex_);
    runtime = std::move(pendingRuntime_);
    fds.swap(pendingFds_);
  }
  if (!runtime) return;
  const Runtime& old = *current_->runtime;
  std::vector<bool> served(runtime->listeners.size(), false);
  for (uint32_t slot = 0; slot < listenerSlots_.size(); ++slot) {
    ListenerSlot& listenerSlot = listenerSlots_[slot];
    if (!listenerSlot.open) continue;
    const Listener& was = *old.listeners[listenerSlot.listener];
    bool kept = false;
    // Several slots may serve one listener (after an upgrade to fewer
    // workers): each keeps its socket.
    for (uint32_t i = 0; i < runtime->listeners.size() && !kept; ++i) {
      if (!fds.count(runtime->listeners[i]->config.name) &&
          runtime->listeners[i]->config.name == was.config.name &&
          keepsSocket(old, runtime->listeners[i]->config)) {
        listenerSlot.listener = i;
        served[i] = kept = true;
      }
    }
    if (!kept) closeListenerSlot(slot, false);
  }
  for (uint32_t i = 0; i < runtime->listeners.size(); ++i) {
    auto it = fds.find(runtime->listeners[i]->config.name);
    if (served[i] || it == fds.end()) continue;
    uint32_t slot = 0;
    while (slot < listenerSlots_.size() && (listenerSlots_[slot].open || listenerSlots_[slot].armed)) ++slot;
    if (slot == listenerSlots_.size()) listenerSlots_.emplace_back();
    listenerSlots_[slot] = ListenerSlot{it->second, i, true, false, false};
    fds.erase(it);
    if (!acceptsHeld_) armAccept(slot);
  }
  for (auto& [name, fd] : fds) ::close(fd);  // not needed after all
  WorkerGeneration* previous = current_.get();
  retired_.push_back(std::move(current_));
  current_ = makeGeneration(std::move(runtime));
  computeTick();
  if (previous->sessions == 0) releaseGeneration(previous);
}

void Worker::releaseGeneration(WorkerGeneration* generation) {
  if (generation == current_.get() || generation->sessions > 0) return;
  std::erase_if(retired_, [&](const auto& g) { return g.get() == generation; });
}

void Worker::releaseAccepts() {
  acceptsReleased_.store(true);
  uint64_t one = 1;
  ssize_t ignored = ::write(wakeFd_, &one, sizeof one);
  (void)ignored;
}

void Worker::requestStop() {
  stopRequested_.store(true);
  uint64_t one = 1;
  ssize_t ignored = ::write(wakeFd_, &one, sizeof one);
  (void)ignored;  // the eventfd counter cannot overflow from one write per stop
}

// Stop accepting: cancel every accept and close the listening sockets, so
// new connections are refused once all workers (and, after an upgrade, the
// new process) have closed theirs. Sessions keep flowing until they end or
// the deadline passes.
void Worker::beginStop() {
  stopping_ = true;
  deadlineNs_ = nowNs_ + toNs(current_->runtime->global.shutdownTimeout);
  for (uint32_t slot = 0; slot < listenerSlots_.size(); ++slot) closeListenerSlot(slot, true);
}

// on_down = "close": sessions on a member that health checks took down end
// at the next tick rather than waiting for the member to answer.
bool Worker::closesWhenDown(const Session& s) const {
  const auto& health = poolOf(s).config().health;
  return health && health->onDown == config::OnDown::Close && s.member &&
         !s.member->up.load(std::memory_order_relaxed);
}

// removed_member_timeout: a reload removed the session's member (or moved
// it away from the session's address) a while ago.
bool Worker::removedTooLong(const Session& s) const {
  uint64_t timeout = toNs(current_->runtime->global.removedMemberTimeout);
  return timeout != 0 && s.member && s.member->removedFor(nowNs_) >= timeout;
}

void Worker::armTick() {
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_timeout(sqe, &tick_, 0, 0);
  prepare(sqe, Op::Tick, 0, 0);
}

// Idle timeouts, the shutdown deadline, and watching the clients of slow
// connects. A scan of every slot: a few thousand sessions cost
// microseconds, four times a second.
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
    if (s.state == SessionState::Connecting && s.connectPending && s.clientWatch == ClientWatch::Off) {
      watchClient(s);
      continue;
    }
    if (s.state == SessionState::ReadingProxyHeader) {
      checkProxyDeadline(s);
      continue;
    }
    if (s.state == SessionState::Prereading || s.state == SessionState::Handshaking ||
        s.state == SessionState::MemberHandshaking) {
      checkTlsDeadlines(s);
      continue;
    }
    if (s.state != SessionState::Proxying) continue;
    if (closesWhenDown(s)) {
      endSession(s, EndReason::MemberDown);
      continue;
    }
    if (removedTooLong(s)) {
      endSession(s, EndReason::MemberRemoved);
      continue;
    }
    uint64_t idle = toNs(listenerOf(s).config.idleTimeout);
    if (nowNs_ - s.lastActiveNs >= idle) endSession(s, EndReason::IdleTimeout);
  }
  armTick();
}

}  // namespace lb
