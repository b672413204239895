// A session's life inside its worker: accept, pick, connect (with retries),
// proxy both directions through pipes, pass on half-closes, end, and free
// the slot once no operation on it is in flight.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "health/prober.h"
#include "lb/address_text.h"
#include "lb/check.h"
#include "lb/log.h"
#include "lb/worker.h"

namespace lb {
namespace {

// splice calls one pump may make before yielding to other sessions.
constexpr int kPumpBudget = 8;

void setNoDelay(int fd) {
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int sourceFd(const Session& s, int flow) { return flow == 0 ? s.clientFd : s.memberFd; }
int destinationFd(const Session& s, int flow) { return flow == 0 ? s.memberFd : s.clientFd; }

double msBetween(uint64_t fromNs, uint64_t toNs) {
  return static_cast<double>(toNs - fromNs) / 1e6;
}

using health::isLocalResourceError;

bool refusedAtEdge(EndReason reason) {
  switch (reason) {
    case EndReason::ProxyHeaderInvalid:
    case EndReason::ProxyHeaderTimeout:
    case EndReason::Denied:
    case EndReason::SourceLimit:
    case EndReason::SourceRate: return true;
    default: return false;
  }
}

// The user_data operation of a flow's wait, and back.
Op flowOp(int flow, FlowWait wait) {
  switch (wait) {
    case FlowWait::Receive: return flow == 0 ? Op::Recv0 : Op::Recv1;
    case FlowWait::Send: return flow == 0 ? Op::Send0 : Op::Send1;
    case FlowWait::PollIn: return flow == 0 ? Op::PollReadable0 : Op::PollReadable1;
    case FlowWait::PollOut: return flow == 0 ? Op::PollWritable0 : Op::PollWritable1;
    case FlowWait::Pause: return flow == 0 ? Op::Continue0 : Op::Continue1;
    case FlowWait::Output:  // the leg's send is the leg's own (LegSend0/1)
    case FlowWait::Nothing: break;
  }
  return Op::Ignore;
}

struct FlowOp {
  int flow;
  FlowWait wait;
};

std::optional<FlowOp> flowOpOf(Op op) {
  switch (op) {
    case Op::Recv0: return FlowOp{0, FlowWait::Receive};
    case Op::Recv1: return FlowOp{1, FlowWait::Receive};
    case Op::Send0: return FlowOp{0, FlowWait::Send};
    case Op::Send1: return FlowOp{1, FlowWait::Send};
    case Op::PollReadable0: return FlowOp{0, FlowWait::PollIn};
    case Op::PollReadable1: return FlowOp{1, FlowWait::PollIn};
    case Op::PollWritable0: return FlowOp{0, FlowWait::PollOut};
    case Op::PollWritable1: return FlowOp{1, FlowWait::PollOut};
    case Op::Continue0: return FlowOp{0, FlowWait::Pause};
    case Op::Continue1: return FlowOp{1, FlowWait::Pause};
    default: return std::nullopt;
  }
}

}  // namespace

Session* Worker::allocSession() {
  uint32_t index;
  if (freeHead_ != kNoSlot) {
    index = freeHead_;
    freeHead_ = slot(index).nextFree;
  } else {
    if (slotsInUse_ > kMaxSlot) return nullptr;
    if ((slotsInUse_ & kChunkMask) == 0) chunks_.push_back(std::make_unique<Session[]>(kChunkSize));
    index = slotsInUse_++;
  }
  Session& s = slot(index);
  uint32_t generation = s.generation + 1;
  s = Session{};
  s.generation = generation;
  s.index = index;
  ++liveSessions_;
  return &s;
}

// Counted against the listener's and the process's max_connections first;
// the rest (the PROXY header, allow/deny, per-source limits) is
// worker_edge.cc's.
void Worker::openSession(uint32_t listenerIndex, int clientFd) {
  const Listener& listener = *current_->runtime->listeners[listenerIndex];
  ListenerState& state = *listener.state;
  GlobalSessions& processSessions = *current_->runtime->globalSessions;
  bump(state.counters.accepted);
  int64_t open = state.active.value.fetch_add(1, std::memory_order_relaxed);
  bool overListener = open >= listener.config.maxConnections;
  // [global] max_connections: the limit in effect (configured or derived).
  if (overListener || !processSessions.tryAdd(current_->runtime->global.maxConnections)) {
    state.active.value.fetch_sub(1, std::memory_order_relaxed);
    bump(state.counters.rejectedByLimit);
    closeRejected(listenerIndex, clientFd, EndReason::Limit);
    return;
  }
  auto uncount = [&] {
    state.active.value.fetch_sub(1, std::memory_order_relaxed);
    processSessions.remove();
  };
  Session* s = allocSession();
  if (!s) {
    uncount();
    localError(LocalError::Slot, ENOMEM, "no session slot for a client (closed)");
    bump(state.counters.rejectedByLocalError);
    closeRejected(listenerIndex, clientFd, EndReason::LocalError);
    return;
  }
  s->state = SessionState::Connecting;
  s->clientFd = clientFd;
  s->listenerIndex = static_cast<uint16_t>(listenerIndex);
  s->runtime = current_.get();
  s->picker = current_->pickerOfListener[listenerIndex];
  ++current_->sessions;
  s->acceptedNs = nowNs_;
  s->lastActiveNs = nowNs_;
  startClient(*s);
}

void Worker::closeRejected(uint32_t listenerIndex, int clientFd, EndReason reason) {
  if (accessLog_.enabled()) {
    sockaddr_storage client{};
    socklen_t length = sizeof client;
    (void)getpeername(clientFd, reinterpret_cast<sockaddr*>(&client), &length);
    std::string clientText = formatAddress(client);
    AccessRecord record;
    record.listener = current_->runtime->listeners[listenerIndex]->config.name;
    record.client = clientText;
    record.end = reason;
    accessLog_.record(record);
  }
  ::close(clientFd);
}

// Picks a member not yet tried by this session and starts a connect to it,
// bounded by a linked timeout. With nothing left to try the session ends
// with the reason of the last failure (or no_member if nothing was tried).
void Worker::startConnect(Session& s) {
  PoolPicker& picker = *s.picker;
  const Pool& pool = poolOf(s);
  bool mayRetry = s.attempts <= static_cast<uint32_t>(pool.config().retries);
  Member* member = mayRetry ? picker.pick(s.client, {s.tried.data(), s.attempts}) : nullptr;
  if (!member) {
    if (s.attempts == 0) {
      s.endReason = EndReason::NoMember;
      bump(pool.counters().noMember);
    }
    return endSession(s, s.endReason);
  }
  if (s.attempts > 0) bump(pool.counters().retries);
  int fd = ::socket(member->address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    // Not the member's doing: no other member would fare better.
    localError(LocalError::Socket, errno, "no socket for a member connection (client closed)");
    return endSession(s, EndReason::LocalError);
  }
  setNoDelay(fd);
  s.memberFd = fd;
  s.member = member;
  s.tried[s.attempts++] = member;
  member->active.value.fetch_add(1, std::memory_order_relaxed);

  if (io_uring_sq_space_left(&ring_) < 2) io_uring_submit(&ring_);  // keep the link whole
  uint32_t index = s.index;
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_connect(sqe, fd, member->address.sockaddrPtr(), member->address.length);
  sqe->flags |= IOSQE_IO_LINK;
  prepare(sqe, Op::Connect, index, s.generation);
  sqe = getSqe();
  io_uring_prep_link_timeout(sqe, const_cast<__kernel_timespec*>(pool.connectTimeout()), 0);
  prepare(sqe, Op::ConnectTimeout, index, s.generation);
  s.inflight += 2;
  s.connectPending = true;
}

void Worker::onConnect(Session& s, int result) {
  s.connectPending = false;
  if (s.state != SessionState::Connecting) return;  // ended while connecting
  if (result != 0) return connectFailed(s, result);
  if (s.clientWatch == ClientWatch::Armed) cancel(s, Op::WatchClient);
  // The PROXY header is the first thing on the connection (before TLS).
  if (s.member->sendProxy != config::ProxyVersion::Off) return startProxyHeader(s);
  memberReady(s);
}

// The member's connection is up and its PROXY header (if any) sent.
void Worker::memberReady(Session& s) {
  if (poolOf(s).tls) return (void)startMemberHandshake(s);  // succeeds once TLS is up
  Member& member = *s.member;
  member.connectFailures.recordSuccess();
  bump(member.counters.connections);
  startProxying(s);
}

// A connect, or the PROXY header behind it, failed (`result` a -errno;
// -ECANCELED: its linked timeout fired). No client byte has reached the
// member, so the next member is tried.
void Worker::connectFailed(Session& s, int result) {
  Member& member = *s.member;
  if (isLocalResourceError(-result)) {
    // No local port, no memory: this host's failure, not the member's. The
    // next member may still work (ports are per destination).
    localError(LocalError::Connect, -result, "connect to a member failed on this host");
    s.endReason = EndReason::LocalError;
  } else {
    member.connectFailures.recordFailure();
    // The linked timeout cancels the connect when it fires: -ECANCELED here.
    bool timedOut = result == -ECANCELED;
    bump(timedOut ? member.counters.connectTimeout : member.counters.connectRefused);
    s.endReason = timedOut ? EndReason::ConnectTimeout : EndReason::ConnectRefused;
    log::debug("connect to member {} failed: {}", s.member->name,
               result == -ECANCELED ? "timed out" : std::strerror(-result));
  }
  ::close(s.memberFd);
  s.memberFd = -1;
  releaseMember(s);
  startConnect(s);
}

// The first tick that finds a session still connecting starts watching its
// client, so a client that resets meanwhile does not hold its slot for the
// whole connect_timeout, nor count as a member timeout. Fast connects (the
// usual case) never pay for the watch.
void Worker::watchClient(Session& s) {
  io_uring_sqe* sqe = getSqe();
  // POLLERR and POLLHUP are always reported; POLLRDHUP tells a FIN apart.
  io_uring_prep_poll_add(sqe, s.clientFd, POLLRDHUP);
  prepare(sqe, Op::WatchClient, s.index, s.generation);
  ++s.inflight;
  s.clientWatch = ClientWatch::Armed;
}

void Worker::onClientWatch(Session& s, int result) {
  s.clientWatch = ClientWatch::Stopped;
  if (s.state != SessionState::Connecting || result < 0) return;  // connected, or cancelled
  if (result & (POLLERR | POLLHUP)) return endSession(s, EndReason::ClientClosed);
  // Only a FIN: the client may be waiting for an answer to what it sent
  // (a half-close), so the connect goes on; the FIN is passed on later.
}

// With TLS legs both flows start by pumping (a leg may already hold input:
// bytes the client sent right behind its handshake). A flow whose receive
// is still in flight (one armed while prereading) keeps it.
//
// kTLS: the client's transmit keys go to the socket before flow 1 sends
// anything; while the handshake's last bytes are still being sent, flow 1
// waits for them (onLegSent starts it).
void Worker::startProxying(Session& s) {
  s.state = SessionState::Proxying;
  s.connectedNs = nowNs_;
  s.lastActiveNs = nowNs_;
  if (s.tls && (s.tls->client.active() || s.tls->member.active())) {
    const tls::Leg& client = s.tls->client;
    s.tls->handOverPending = offerKernelTx_ && client.kernelTxReady() && (client.sending() || client.hasOutput());
    if (!s.tls->handOverPending) handOverTx(s);
    for (int flow = 0; flow < 2 && s.state == SessionState::Proxying; ++flow)
      if (!(flow == 1 && s.tls->handOverPending)) startFlow(s, flow);
    return;
  }
  Flow& first = s.flows[0];  // may hold peeked bytes: they go first
  if (first.bufferSent < first.bufferLength)
    sendBuffer(s, 0);
  else if (first.state.sourceEnded())
    finishFlow(s, 0);
  else if (first.state.idle())
    armRead(s, 0);
  if (s.state == SessionState::Proxying) armRead(s, 1);
}

void Worker::handleSession(Op op, uint32_t index, int result, uint32_t cqeFlags) {
  Session& s = slot(index);
  RINGLB_ENFORCE(s.inflight > 0);
  --s.inflight;
  switch (op) {
    case Op::Connect: onConnect(s, result); break;
    case Op::ConnectTimeout: break;  // the outcome arrives with Connect
    case Op::ProxyHeaderSend: onProxyHeaderSent(s, result); break;
    case Op::ProxyHeaderTimeout: break;  // the outcome arrives with ProxyHeaderSend
    case Op::WatchClient: onClientWatch(s, result); break;
    case Op::LegSend0: onLegSent(s, 0, result); break;
    case Op::LegSend1: onLegSent(s, 1, result); break;
    case Op::RecvMultishot0: onMultishot(s, 0, result, cqeFlags); break;
    case Op::RecvMultishot1: onMultishot(s, 1, result, cqeFlags); break;
    default:
      if (std::optional<FlowOp> done = flowOpOf(op))
        onFlowCompletion(s, done->flow, done->wait, result, cqeFlags);
      break;
  }
  maybeFree(s);
}

// Every flow operation ends here: the flow goes back to waiting for nothing,
// then the completion decides what it waits for next.
void Worker::onFlowCompletion(Session& s, int flow, FlowWait done, int result, uint32_t cqeFlags) {
  Flow& f = s.flows[flow];
  bool expected = f.state.complete(done);
  RINGLB_CHECK(expected);
  bool tlsFlows = legsCarry(s, flow);
  switch (done) {
    case FlowWait::Receive:
      if (s.state != SessionState::Proxying) return onStageReceived(s, flow, result, cqeFlags);
      if (tlsFlows) return onTlsReceived(s, flow, result, cqeFlags);
      return onReceived(s, flow, result, cqeFlags);
    case FlowWait::Send: return onSent(s, flow, result);
    case FlowWait::Pause:
      f.starved = false;
      if (s.state == SessionState::ReadingProxyHeader) return armProxyPeek(s);
      if (s.state == SessionState::Prereading) return armPrereadReceive(s);
      if (s.state == SessionState::Handshaking && !s.tls->failing) return armRead(s, 0);
      if (s.state == SessionState::MemberHandshaking) return memberHandshakeStep(s);
      if (s.state != SessionState::Proxying) return;
      if (tlsFlows) return tlsPump(s, flow);
      if (f.bufferSent < f.bufferLength) return sendBuffer(s, flow);  // a send that lacked memory
      return pump(s, flow);
    case FlowWait::PollIn:
    case FlowWait::PollOut:
      if (s.state != SessionState::Proxying) return;
      if (result < 0 && isLocalResourceError(-result)) return pauseForResources(s, flow, -result, "poll");
      return pump(s, flow);
    case FlowWait::Output:  // completed by onLegSent, never by a CQE
    case FlowWait::Nothing: return;
  }
}

// Every flow operation starts here: the transition is checked (one
// operation per flow), the SQE tagged, the slot's in-flight count raised.
void Worker::track(Session& s, int flow, FlowWait wait, io_uring_sqe* sqe) {
  bool legal = s.flows[flow].state.start(wait);
  RINGLB_CHECK(legal);
  prepare(sqe, flowOp(flow, wait), s.index, s.generation);
  ++s.inflight;
}

// Moves bytes source -> pipe -> destination until the source is empty, the
// destination is full or the budget is spent. Backpressure: nothing more is
// read from the source while the pipe still holds bytes, so a slow reader
// costs at most one pipe of buffering, in the kernel.
void Worker::pump(Session& s, int flow) {
  Flow& f = s.flows[flow];
  RINGLB_CHECK(f.state.canStart());
  RINGLB_CHECK(!f.multishot && f.received.empty());  // nothing may read the source beside splice
  if (!f.state.canStart()) return;
  int from = sourceFd(s, flow);
  int to = destinationFd(s, flow);
  // A short read emptied the source and a short write filled the
  // destination: rather than spend a splice to hear EAGAIN, arm the poll at
  // once (a new poll completes immediately if the socket is already ready).
  bool sourceDrained = false;
  for (int budget = kPumpBudget; budget > 0; --budget) {
    if (f.inPipe > 0) {
      ssize_t n = splice(f.pipe.readFd, nullptr, to, nullptr, f.inPipe,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        f.inPipe -= static_cast<uint32_t>(n);
        moved(s, flow, static_cast<uint64_t>(n));
        s.lastActiveNs = nowNs_;
        if (f.inPipe > 0) return armPoll(s, flow, true);
        if (sourceDrained) return waitForSource(s, flow);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return armPoll(s, flow, true);
      if (n < 0 && isLocalResourceError(errno)) return pauseForResources(s, flow, errno, "splice");
      return onFlowError(s, flow, true, n < 0 ? errno : EPIPE);
    }
    if (f.state.sourceEnded()) return finishFlow(s, flow);
    if (!f.pipe.valid()) {
      int result = pipes_.acquire(&f.pipe);
      if (result < 0) return copyWithoutPipe(s, flow, -result);
    }
    // The pipe is empty here, so EAGAIN can only mean the source is empty.
    ssize_t n = splice(from, nullptr, f.pipe.writeFd, nullptr, pipes_.capacity(),
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      f.inPipe = static_cast<uint32_t>(n);
      sourceDrained = static_cast<size_t>(n) < pipes_.capacity();
      if (static_cast<size_t>(n) < buffers_.bufferSize()) f.bulk = false;
      s.lastActiveNs = nowNs_;
      continue;
    }
    if (n == 0) {
      // A reset also reads as 0 once a send on that socket took its error,
      // and that send's completion may still be waiting in the ring: a poll
      // (complete at once on a socket that ended) lets it be seen first, so
      // the session ends `reset`, not as if the source had sent FIN.
      if (!f.emptyReadSeen) {
        f.emptyReadSeen = true;
        return armPoll(s, flow, false);
      }
      sourceEnded(s, flow);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return waitForSource(s, flow);
    if (isLocalResourceError(errno)) return pauseForResources(s, flow, errno, "splice");
    return onFlowError(s, flow, false, errno);
  }
  armPause(s, flow, false);
}

// No pipe could be made (descriptors ran out), or the process's pipe budget
// is spent (lb/descriptor_budget.h): the flow carries on through
// ring buffers, the copy path, and asks for a pipe again at its next full
// buffer. If every ring buffer is in flight too, it waits a moment and
// tries again, so a starved flow neither spins nor ends.
void Worker::copyWithoutPipe(Session& s, int flow, int error) {
  Flow& f = s.flows[flow];
  if (-error == PipePool::kBudgetSpent)  // as planned for this open-file limit: not an error
    stats_.pipesOverBudget.fetch_add(1, std::memory_order_relaxed);
  else
    localError(LocalError::Pipe, error, "no pipe for a bulk transfer (copying instead)");
  f.bulk = false;
  if (!buffers_.ready() || f.starved) return armPause(s, flow, true);
  armRead(s, flow);
}

// A send, receive or splice lacked memory: the bytes stay where they are
// (the ring buffer, the pipe, the socket) and the flow tries again shortly.
void Worker::pauseForResources(Session& s, int flow, int error, const char* what) {
  localError(LocalError::Io, error, what);
  armPause(s, flow, true);
}

void Worker::sourceEnded(Session& s, int flow) {
  bool first = s.flows[flow].state.endSource();
  RINGLB_CHECK(first);
  if (s.firstEof < 0) s.firstEof = static_cast<int8_t>(flow);
}

void Worker::armPoll(Session& s, int flow, bool writable) {
  int fd = writable ? destinationFd(s, flow) : sourceFd(s, flow);
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_poll_add(sqe, fd, writable ? POLLOUT : POLLIN);
  track(s, flow, writable ? FlowWait::PollOut : FlowWait::PollIn, sqe);
}

// A bulk flow keeps to splice (a poll, then splice again) until a read
// smaller than a ring buffer says the burst is over; then it waits with a
// receive, the cheaper path for small messages.
void Worker::waitForSource(Session& s, int flow) {
  if (s.flows[flow].bulk) {
    pipes_.release(&s.flows[flow].pipe);
    return armPoll(s, flow, false);
  }
  armRead(s, flow);
}

// Waits for the source to have data: a receive into a ring buffer, which
// holds no buffer until data arrives. Without a buffer ring (or with every
// buffer in use: -ENOBUFS) the wait is a poll and the data moves by splice.
void Worker::armRead(Session& s, int flow, bool pollFirst) {
  Flow& f = s.flows[flow];
  RINGLB_CHECK(f.inPipe == 0);
  pipes_.release(&f.pipe);  // idle flows hold no pipe
  if (!buffers_.ready()) return armPoll(s, flow, false);
  // Completions of the multishot receive come first, and while it is
  // armed (even being stopped) nothing else may read the source.
  if (!f.received.empty()) return takeReceived(s, flow, received_.pop(f.received));
  if (f.multishot || receivesMultishot(s, flow)) return awaitMultishot(s, flow);
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_recv(sqe, sourceFd(s, flow), nullptr, buffers_.bufferSize(), 0);
  // The source has just been drained (or the session just connected): go
  // straight to waiting instead of a receive that would say EAGAIN. (A TLS
  // flow whose last receive filled its buffer tries at once instead.)
  if (pollFirst) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffers_.group();
  track(s, flow, FlowWait::Receive, sqe);
}

// A plaintext flow of small messages receives with a multishot receive: it
// stays armed across the flow's sends, so the source's socket keeps its
// poll instead of arming a new one per message. Measured (README,
// Performance): CPU per keep-alive request -6%, and +3% requests/s, pinned.
// Flows through a TLS leg keep single-shot receives (their input is
// gathered by record); see Flow for the rest.
bool Worker::receivesMultishot(Session& s, int flow) const {
  const Flow& f = s.flows[flow];
  return f.smallSeen && !f.wentBulk && !multishotRefused_ && s.state == SessionState::Proxying &&
         !legsCarry(s, flow);
}

// The flow waits for its multishot receive's next completion, arming the
// receive unless it is. (A receive being stopped is still armed: its last
// completion comes, then the flow turns to splice or waits again:
// takeReceived.)
void Worker::awaitMultishot(Session& s, int flow) {
  Flow& f = s.flows[flow];
  bool legal = f.state.start(FlowWait::Receive);
  RINGLB_CHECK(legal);
  if (!f.multishot) armMultishot(s, flow);
}

void Worker::armMultishot(Session& s, int flow) {
  Flow& f = s.flows[flow];
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_recv_multishot(sqe, sourceFd(s, flow), nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffers_.group();
  prepare(sqe, flow == 0 ? Op::RecvMultishot0 : Op::RecvMultishot1, s.index, s.generation);
  ++s.inflight;
  f.multishot = true;
  f.multishotStopping = false;
}

void Worker::stopMultishot(const Session& s, Flow& f, int flow) {
  if (!f.multishot || f.multishotStopping) return;
  cancel(s, flow == 0 ? Op::RecvMultishot0 : Op::RecvMultishot1);
  f.multishotStopping = true;
  stats_.receivesStopped.fetch_add(1, std::memory_order_relaxed);
}

// At most this many filled buffers wait for a busy flow: then its receive
// is stopped, so a source faster than its destination holds few ring
// buffers and the rest waits in its socket (TCP's window pushes back). A
// stopped receive may still post what it had read: one kernel pass reads
// until the socket is empty, or a few dozen times.
constexpr uint16_t kQueuedHighWater = 2;

// A completion of a flow's multishot receive. The receive stays in flight
// (and counted in `inflight`) until one comes without IORING_CQE_F_MORE.
void Worker::onMultishot(Session& s, int flow, int result, uint32_t cqeFlags) {
  Flow& f = s.flows[flow];
  if (cqeFlags & IORING_CQE_F_MORE)
    ++s.inflight;  // handleSession counted this completion down: the receive goes on
  else
    f.multishot = f.multishotStopping = false;
  if (s.state != SessionState::Proxying) {
    if (cqeFlags & IORING_CQE_F_BUFFER) buffers_.recycle(static_cast<uint16_t>(cqeFlags >> IORING_CQE_BUFFER_SHIFT));
    return;
  }
  bool hasBuffer = cqeFlags & IORING_CQE_F_BUFFER;
  if (hasBuffer && result <= 0) {  // a buffer that holds nothing
    buffers_.recycle(static_cast<uint16_t>(cqeFlags >> IORING_CQE_BUFFER_SHIFT));
    hasBuffer = false;
  }
  ReceivedCompletion completion{result, hasBuffer ? cqeFlags & ~IORING_CQE_F_MORE : 0};
  if (f.state.wait() == FlowWait::Receive) {  // then nothing is queued (armRead)
    RINGLB_CHECK(f.received.empty());
    bool legal = f.state.complete(FlowWait::Receive);
    RINGLB_CHECK(legal);
    return takeReceived(s, flow, completion);
  }
  received_.push(f.received, completion);
  if (f.received.buffers >= kQueuedHighWater) stopMultishot(s, f, flow);
}

// A completion the flow takes now, with nothing in flight of its own. The
// receive's end by its own cancel is no event of the stream: the flow
// turns to splice if it is bulk, else arms a new receive.
void Worker::takeReceived(Session& s, int flow, ReceivedCompletion completion) {
  Flow& f = s.flows[flow];
  bool hasBuffer = completion.flags & IORING_CQE_F_BUFFER;
  if (!hasBuffer && completion.result == -ECANCELED) {
    if (f.bulk) return pump(s, flow);
    return armRead(s, flow);
  }
  // A receive on a connected TCP socket has no other cause for -EINVAL.
  if (!hasBuffer && completion.result == -EINVAL && !multishotRefused_) {
    multishotRefused_ = true;
    log::warn("worker {}: the kernel refuses multishot receives (Linux 6.0 has them): single-shot receives only",
              options_.index);
    return armRead(s, flow);
  }
  onReceived(s, flow, completion.result, completion.flags);
}

// Buffers a flow had queued when its session ended go back to the ring.
void Worker::dropReceived(Flow& f) {
  while (!f.received.empty()) {
    ReceivedCompletion completion = received_.pop(f.received);
    if (completion.flags & IORING_CQE_F_BUFFER)
      buffers_.recycle(static_cast<uint16_t>(completion.flags >> IORING_CQE_BUFFER_SHIFT));
  }
}

void Worker::onReceived(Session& s, int flow, int result, uint32_t cqeFlags) {
  Flow& f = s.flows[flow];
  bool hasBuffer = cqeFlags & IORING_CQE_F_BUFFER;
  auto id = static_cast<uint16_t>(cqeFlags >> IORING_CQE_BUFFER_SHIFT);
  if (s.state != SessionState::Proxying) {
    if (hasBuffer) buffers_.recycle(id);
    return;
  }
  if (result > 0 && hasBuffer) {
    f.starved = false;
    f.buffer = id;
    f.bufferLength = static_cast<uint32_t>(result);
    f.bufferSent = 0;
    f.bulk = f.bufferLength == buffers_.bufferSize();
    f.wentBulk |= f.bulk;
    f.smallSeen |= !f.bulk;
    f.sourceNonEmpty = cqeFlags & IORING_CQE_F_SOCK_NONEMPTY;
    s.lastActiveNs = nowNs_;
    return sendBuffer(s, flow);
  }
  if (hasBuffer) buffers_.recycle(id);
  if (result == 0) {
    sourceEnded(s, flow);
    return finishFlow(s, flow);
  }
  if (result == -ENOBUFS) {  // every ring buffer is in flight: splice
    f.starved = true;
    return armPoll(s, flow, false);
  }
  if (isLocalResourceError(-result)) return pauseForResources(s, flow, -result, "receive");
  onFlowError(s, flow, false, -result);
}

// The bytes a flow delivers: a pool block (decrypted or peeked bytes) if it
// holds one, else its ring buffer.
char* Worker::flowData(const Flow& f) const {
  return f.block ? f.block : buffers_.buffer(static_cast<uint16_t>(f.buffer));
}

// MSG_MORE when the source still holds bytes or a FIN (sourceNonEmpty):
// the kernel keeps a short tail back for what follows. What follows always
// comes, since the next receive returns at once: more bytes (their send, or
// a splice, without MSG_MORE once nothing more waits, pushes everything),
// or the FIN, whose shutdown() leaves with the held bytes in one segment;
// an error ends the session and its close sends what is held. A request
// answered and closed at once ("Connection: close") so costs fewer
// segments: 20.0 -> 18.6 per proxied connection measured (nstat; HAProxy
// 18.45), and 3% less CPU per closed connection (README, Performance).
void Worker::sendBuffer(Session& s, int flow) {
  Flow& f = s.flows[flow];
  bool more = f.sourceNonEmpty && !s.tls;
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_send(sqe, destinationFd(s, flow), flowData(f) + f.bufferSent, f.bufferLength - f.bufferSent,
                     MSG_NOSIGNAL | (more ? MSG_MORE : 0));
  track(s, flow, FlowWait::Send, sqe);
}

// The buffer goes back to the ring once all of it is sent (or the session
// ended); a bulk flow then carries on by splice, others wait again. A send
// that lacked memory keeps its buffer and is tried again after a pause.
void Worker::onSent(Session& s, int flow, int result) {
  Flow& f = s.flows[flow];
  if (legsCarry(s, flow)) {
    // Decrypted bytes to a plaintext member or client; buffers stay with
    // the flow until tlsPump has used all its input.
    if (s.state != SessionState::Proxying) return;
    if (result > 0) {
      moved(s, flow, static_cast<uint64_t>(result));
      f.bufferSent += static_cast<uint32_t>(result);
      s.lastActiveNs = nowNs_;
      return tlsPump(s, flow);
    }
    if (result < 0 && isLocalResourceError(-result)) return pauseForResources(s, flow, -result, "send");
    return onFlowError(s, flow, true, result < 0 ? -result : EPIPE);
  }
  if (s.state == SessionState::Proxying && result > 0) {
    moved(s, flow, static_cast<uint64_t>(result));
    f.bufferSent += static_cast<uint32_t>(result);
    s.lastActiveNs = nowNs_;
    if (f.bufferSent < f.bufferLength) return sendBuffer(s, flow);
  }
  if (s.state == SessionState::Proxying && result < 0 && isLocalResourceError(-result))
    return pauseForResources(s, flow, -result, "send");
  releaseBuffer(f);
  if (s.state != SessionState::Proxying) return;
  if (result <= 0) return onFlowError(s, flow, true, result < 0 ? -result : EPIPE);
  f.bufferLength = f.bufferSent = 0;
  bool sourceNonEmpty = std::exchange(f.sourceNonEmpty, false);
  if (f.state.sourceEnded()) return finishFlow(s, flow);  // peeked bytes, then the client's FIN
  if (f.bulk) {
    // Splice takes over once the multishot receive has ended and every
    // completion it posted has been sent on (takeReceived).
    stopMultishot(s, f, flow);
    if (!f.multishot && f.received.empty()) return pump(s, flow);
  }
  armRead(s, flow, !sourceNonEmpty);
}

void Worker::releaseBuffer(Flow& f) {
  if (f.block) blocks_.release(f.block);
  f.block = nullptr;
  if (f.buffer < 0) return;
  buffers_.recycle(static_cast<uint16_t>(f.buffer));
  f.buffer = -1;
}

// A NOP (the flow spent its budget: let other sessions run) or, `delayed`,
// a short timer (a local resource ran out: try again in a moment).
void Worker::armPause(Session& s, int flow, bool delayed) {
  io_uring_sqe* sqe = getSqe();
  if (delayed)
    io_uring_prep_timeout(sqe, &localErrorPause_, 0, 0);
  else
    io_uring_prep_nop(sqe);
  track(s, flow, FlowWait::Pause, sqe);
}

// The source sent FIN and every byte before it has been written on: pass
// the FIN on. The other direction keeps flowing until it ends too.
void Worker::finishFlow(Session& s, int flow) {
  // kTLS: the client gets close_notify (a control record) before the FIN.
  if (flow == 1 && s.tls && s.tls->client.kernelTx() && !s.tls->client.shutdownSent())
    return finishTlsFlow(s, flow);
  Flow& f = s.flows[flow];
  pipes_.release(&f.pipe);
  // A plain syscall: io_uring would run a shutdown on a kernel worker thread.
  (void)::shutdown(destinationFd(s, flow), SHUT_WR);
  bool legal = f.state.finish();
  RINGLB_CHECK(legal);
  if (s.flows[1 - flow].state.finished())
    endSession(s, s.firstEof == 1 ? EndReason::MemberClosed : EndReason::ClientClosed);
}

// A write failing because its peer has gone, after that peer already sent
// FIN, is an ordinary close by that peer; anything else is a reset.
void Worker::onFlowError(Session& s, int flow, bool writing, int error) {
  int peer = writing ? 1 - flow : flow;  // the flow whose source is the failing socket
  log::debug("session flow {} {} error: {}", flow, writing ? "write" : "read", std::strerror(error));
  if (writing && s.flows[peer].state.sourceEnded())
    return endSession(s, peer == 0 ? EndReason::ClientClosed : EndReason::MemberClosed);
  endSession(s, EndReason::Reset);
}

void Worker::releaseMember(Session& s) {
  if (!s.member) return;
  s.member->active.value.fetch_sub(1, std::memory_order_relaxed);
  s.member = nullptr;
}

// Ends the session at once: cancels what is in flight, closes both sockets,
// logs it. The slot is freed when the last in-flight completion arrives.
void Worker::endSession(Session& s, EndReason reason) {
  if (s.state == SessionState::Closing || s.state == SessionState::Free) return;
  s.endReason = reason;
  s.state = SessionState::Closing;
  if (s.connectPending) cancel(s, Op::Connect);
  if (s.headerPending) cancel(s, Op::ProxyHeaderSend);
  if (s.clientWatch == ClientWatch::Armed) cancel(s, Op::WatchClient);
  if (s.tls && s.tls->client.sending()) cancel(s, Op::LegSend0);
  if (s.tls && s.tls->member.sending()) cancel(s, Op::LegSend1);
  for (int flow = 0; flow < 2; ++flow) {
    Flow& f = s.flows[flow];
    // A flow waiting for its multishot receive has no operation of its own.
    bool waitsForMultishot = f.multishot && f.state.wait() == FlowWait::Receive;
    if (!f.state.idle() && f.state.wait() != FlowWait::Output && !waitsForMultishot)
      cancel(s, flowOp(flow, f.state.wait()));
    if (f.multishot) cancel(s, flow == 0 ? Op::RecvMultishot0 : Op::RecvMultishot1);
    dropReceived(f);
    // A send in flight still reads its buffer: returned when it completes.
    if (f.state.wait() != FlowWait::Send) releaseBuffer(f);
    if (f.inPipe > 0)
      pipes_.drop(&f.pipe);
    else
      pipes_.release(&f.pipe);
  }
  if (reason == EndReason::LocalError) bump(listenerOf(s).state->counters.rejectedByLocalError);
  logSession(s);
  countSession(s);
  releaseSource(s);
  // Pending operations hold their own file references, so closing now is
  // safe: the sockets really close once those operations are cancelled.
  closeLater(s.clientFd);
  closeLater(s.memberFd);
  s.clientFd = s.memberFd = -1;
  releaseMember(s);
  listenerOf(s).state->active.value.fetch_sub(1, std::memory_order_relaxed);
  s.runtime->runtime->globalSessions->remove();
  maybeFree(s);
}

// Cancels the session's operation `op`; its completion (-ECANCELED, or its
// own result if it had finished) still arrives and is counted down.
void Worker::cancel(const Session& s, Op op) {
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_cancel64(sqe, encode(UserData{op, s.index, s.generation}), 0);
  prepare(sqe, Op::Ignore, 0, 0);
}

// Closes through the ring, batched with the next submit. Nothing else can
// be handed the fd number before that close runs.
void Worker::closeLater(int fd) {
  if (fd < 0) return;
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_close(sqe, fd);
  prepare(sqe, Op::Ignore, 0, 0);
}

void Worker::maybeFree(Session& s) {
  if (s.state != SessionState::Closing || s.inflight > 0) return;
  // Nothing in flight reads them any more.
  for (Flow& f : s.flows) {
    releaseBuffer(f);
    RINGLB_CHECK(!f.multishot && f.received.empty());
  }
  releaseProxyHeader(s);
  releaseTls(s);
  s.state = SessionState::Free;
  WorkerGeneration* runtime = s.runtime;
  s.runtime = nullptr;
  RINGLB_ENFORCE(runtime->sessions > 0);
  --runtime->sessions;
  RINGLB_ENFORCE(liveSessions_ > 0);
  releaseGeneration(runtime);
  s.nextFree = freeHead_;
  freeHead_ = s.index;
  --liveSessions_;
}

// Something this host ran out of: counted by kind, said at most once a
// second per kind (with how many were held back), never held against a
// member.
void Worker::localError(LocalError kind, int error, const char* what) {
  stats_.localErrors.add(kind);
  uint64_t heldBack = 0;
  if (!localErrorLog_[static_cast<size_t>(kind)].allow(nowNs_, &heldBack)) return;
  if (heldBack > 0)
    log::warn("worker {}: {}: {} ({} more since the last such line)", options_.index, what,
              std::strerror(error), heldBack);
  else
    log::warn("worker {}: {}: {}", options_.index, what, std::strerror(error));
}

void Worker::countSession(const Session& s) {
  const Pool& pool = poolOf(s);
  // Clients refused at the edge never were the pool's sessions.
  if (!refusedAtEdge(s.endReason))
    pool.counters().sessionDuration.record(static_cast<double>(nowNs_ - s.acceptedNs) / 1e9);
  // What moved() has not added yet (all of it for a session that never connected).
  ListenerCounters& listener = listenerOf(s).state->counters;
  bump(listener.bytesIn, s.flows[0].unflushed);
  bump(listener.bytesOut, s.flows[1].unflushed);
  if (!s.member || !s.connectedNs) return;
  bump(s.member->counters.bytesIn, s.flows[0].unflushed);
  bump(s.member->counters.bytesOut, s.flows[1].unflushed);
}

// `bytes` of the flow reached its destination. Added to the listener's and
// member's counters by kLiveBytesFlush at a time (lb/stats.h), so long
// transfers show while they last; only once connected, so the member that
// gets them is the one the session ends with (as countSession assumes).
void Worker::moved(Session& s, int flow, uint64_t bytes) {
  Flow& f = s.flows[flow];
  f.bytes += bytes;
  f.unflushed += bytes;
  if (f.unflushed < kLiveBytesFlush || !s.connectedNs || !s.member) return;
  ListenerCounters& listener = listenerOf(s).state->counters;
  bump(flow == 0 ? listener.bytesIn : listener.bytesOut, f.unflushed);
  bump(flow == 0 ? s.member->counters.bytesIn : s.member->counters.bytesOut, f.unflushed);
  f.unflushed = 0;
}

void Worker::logSession(const Session& s) {
  if (!accessLog_.enabled()) return;
  std::string client = formatAddress(s.client);
  std::string peer = s.proxied ? formatAddress(s.peer) : std::string();
  AccessRecord record;
  record.listener = listenerOf(s).config.name;
  record.client = client;
  if (s.proxied) {
    record.proxyClient = client;
    record.proxyPeer = peer;
  }
  const Member* member = s.connectedNs ? s.member : nullptr;
  if (member) {
    record.member = member->name;
    record.memberAddress = member->address.text;
  }
  record.bytesIn = s.flows[0].bytes;
  record.bytesOut = s.flows[1].bytes;
  record.connectMs = s.connectedNs ? msBetween(s.acceptedNs, s.connectedNs) : -1;
  record.durationMs = msBetween(s.acceptedNs, nowNs_);
  record.attempts = s.attempts;
  record.end = s.endReason;
  logTls(s, record);
  accessLog_.record(record);
}

}  // namespace lb
