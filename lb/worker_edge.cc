// What a worker decides about a client before any member is picked
// (lb/session.h): the PROXY header from a front balancer (accept_proxy),
// then allow/deny, then per-source limits. A refused client ends with its
// reason (one access-log line, one count) and never reaches a member.
//
// The header is read with MSG_PEEK: nothing is taken from the socket until
// the parser has seen a whole header, and then exactly the header's bytes
// are discarded. Whatever follows stays in the socket, so the next state
// (the connect, the ClientHello preread, the TLS handshake) receives it as
// a client's first bytes, whatever else it does with them. A header spread
// over several segments is peeked again only once more bytes have arrived
// (SO_RCVLOWAT one byte above what the last peek saw), so a client that
// dribbles its header costs one peek per segment, not a busy loop.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <span>

#include "health/prober.h"
#include "lb/address_text.h"
#include "lb/log.h"
#include "lb/worker.h"

namespace lb {
namespace {

uint64_t msToNs(std::chrono::milliseconds d) { return static_cast<uint64_t>(d.count()) * 1'000'000u; }

// The most a listener's header can take: 107 bytes for v1, the v2 cap
// (itself no larger than one ring buffer) for v2.
size_t headerBound(const config::Listener& listener, size_t bufferBytes) {
  size_t v2 = std::min(static_cast<size_t>(listener.proxyMaxHeaderBytes), bufferBytes);
  switch (listener.acceptProxy) {
    case config::AcceptProxy::V1: return edge::kMaxV1HeaderBytes;
    case config::AcceptProxy::V2: return v2;
    case config::AcceptProxy::Any:
    case config::AcceptProxy::Off: break;
  }
  return std::max(edge::kMaxV1HeaderBytes, v2);
}

void setReceiveLowWater(int fd, int bytes) {
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof bytes);
}

bool needsAddress(const Listener& listener, bool accessLog) {
  return accessLog || listener.pool->config().balance == config::Balance::ConsistentHash ||
         !listener.routePools.empty() || listener.config.acceptProxy != config::AcceptProxy::Off ||
         listener.access.active() || listener.sourceLimits;
}

}  // namespace

// A new session: who it is from, then the header (from a sender in
// proxy_from), or straight to admission.
void Worker::startClient(Session& s) {
  const Listener& listener = listenerOf(s);
  // The peer's address costs a syscall; only read when something uses it
  // (send_proxy reads it later if it is still unknown: effectiveClient).
  // TCP_NODELAY comes from the listening socket.
  if (needsAddress(listener, accessLog_.enabled())) {
    socklen_t length = sizeof s.peer;
    (void)getpeername(s.clientFd, reinterpret_cast<sockaddr*>(&s.peer), &length);
    s.client = s.peer;
  }
  if (listener.config.acceptProxy == config::AcceptProxy::Off) {
    if (admitClient(s)) beginClient(s);
    return;
  }
  if (!listener.proxyFrom.contains(s.peer)) {
    bump(listener.state->counters.edge.proxyNotAllowed);
    return endSession(s, EndReason::Denied);
  }
  if (!buffers_.ready()) {
    localError(LocalError::Slot, ENOMEM, "no receive buffers for a PROXY header (client closed)");
    return endSession(s, EndReason::LocalError);
  }
  s.state = SessionState::ReadingProxyHeader;
  armProxyPeek(s);
}

void Worker::armProxyPeek(Session& s) {
  size_t bound = headerBound(listenerOf(s).config, buffers_.bufferSize());
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_recv(sqe, s.clientFd, nullptr, bound, MSG_PEEK);
  // Wait for readability first: with SO_RCVLOWAT raised, that means "more
  // than the last peek saw".
  sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffers_.group();
  track(s, 0, FlowWait::Receive, sqe);
}

void Worker::onProxyPeeked(Session& s, int result, uint32_t cqeFlags) {
  const Listener& listener = listenerOf(s);
  EdgeListenerCounters& counters = listener.state->counters.edge;
  bool hasBuffer = cqeFlags & IORING_CQE_F_BUFFER;
  auto id = static_cast<uint16_t>(cqeFlags >> IORING_CQE_BUFFER_SHIFT);
  if (result <= 0 || !hasBuffer) {
    if (hasBuffer) buffers_.recycle(id);
    if (result == -ENOBUFS || (result < 0 && health::isLocalResourceError(-result)))
      return armPause(s, 0, true);
    if (result == 0) {  // closed before sending a single byte of a header
      bump(counters.proxyHeaderInvalid);
      return endSession(s, EndReason::ProxyHeaderInvalid);
    }
    return endSession(s, EndReason::Reset);
  }
  s.lastActiveNs = nowNs_;
  auto peeked = static_cast<uint32_t>(result);
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(buffers_.buffer(id)), peeked);
  edge::ParsedHeader header = edge::parseHeader(bytes, listener.config.acceptProxy,
                                                static_cast<size_t>(listener.config.proxyMaxHeaderBytes));
  buffers_.recycle(id);
  size_t bound = headerBound(listener.config, buffers_.bufferSize());
  if (header.status == edge::ParseStatus::NeedMore && (peeked <= s.proxyPeeked || peeked >= bound)) {
    // Readable without a byte more: the sender ended (FIN) mid-header. Or
    // the bound is reached and the parser still wants more.
    header.status = edge::ParseStatus::Invalid;
    header.why = peeked >= bound ? "header longer than the listener takes" : "connection ended inside the header";
  }
  switch (header.status) {
    case edge::ParseStatus::NeedMore:
      s.proxyPeeked = peeked;
      setReceiveLowWater(s.clientFd, static_cast<int>(peeked) + 1);
      return armProxyPeek(s);
    case edge::ParseStatus::Invalid:
      log::debug("listener {}: PROXY header from {} refused: {}", listener.config.name, formatAddress(s.peer),
                 header.why);
      bump(counters.proxyHeaderInvalid);
      return endSession(s, EndReason::ProxyHeaderInvalid);
    case edge::ParseStatus::Done: return proxyHeaderDone(s, header);
  }
}

// The header's bytes are already in the socket (the peek saw them): they
// are discarded without a copy (MSG_TRUNC), and only they.
void Worker::proxyHeaderDone(Session& s, const edge::ParsedHeader& header) {
  if (s.proxyPeeked > 0) setReceiveLowWater(s.clientFd, 1);
  ssize_t dropped = ::recv(s.clientFd, nullptr, header.headerBytes, MSG_DONTWAIT | MSG_TRUNC);
  if (dropped != static_cast<ssize_t>(header.headerBytes)) {
    log::debug("listener {}: PROXY header: {} of {} bytes discarded", listenerOf(s).config.name, dropped,
               header.headerBytes);
    return endSession(s, EndReason::Reset);
  }
  if (header.hasAddresses) {  // LOCAL / UNKNOWN: the connection's own addresses stand
    s.client = header.source;
    s.local = header.destination;
    s.proxied = true;
  }
  s.state = SessionState::Connecting;
  if (admitClient(s)) beginClient(s);
}

void Worker::checkProxyDeadline(Session& s) {
  const Listener& listener = listenerOf(s);
  if (nowNs_ - s.acceptedNs < msToNs(listener.config.proxyTimeout)) return;
  bump(listener.state->counters.edge.proxyHeaderTimeout);
  endSession(s, EndReason::ProxyHeaderTimeout);
}

// allow/deny, then the per-source limits, for the effective client. False:
// the session has ended.
bool Worker::admitClient(Session& s) {
  const Listener& listener = listenerOf(s);
  EdgeListenerCounters& counters = listener.state->counters.edge;
  if (listener.access.active() && !listener.access.admits(s.client)) {
    bump(counters.denied);
    endSession(s, EndReason::Denied);
    return false;
  }
  if (!listener.sourceLimits) return true;
  auto now = edge::SourceLimits::Clock::time_point(std::chrono::nanoseconds(nowNs_));
  switch (listener.sourceLimits->admit(s.client, now)) {
    case edge::Admission::Admitted: s.sourceLimits = listener.sourceLimits; return true;
    case edge::Admission::OverLimit: bump(counters.sourceLimit); endSession(s, EndReason::SourceLimit); break;
    case edge::Admission::OverRate: bump(counters.sourceRate); endSession(s, EndReason::SourceRate); break;
    case edge::Admission::TableFull:
      bump(counters.sourceTableFull);
      endSession(s, EndReason::SourceLimit);
      break;
  }
  return false;
}

// An admitted client goes on as any client: the TLS handshake, the
// ClientHello preread, or straight to a member.
void Worker::beginClient(Session& s) {
  const Listener& listener = listenerOf(s);
  if (listener.tls || !listener.routePools.empty()) {
    s.tls = acquireTls();
    if (!s.tls) {
      localError(LocalError::Slot, ENOMEM, "no TLS state for a client (closed)");
      return endSession(s, EndReason::LocalError);
    }
    if (listener.tls) return startHandshake(s);
    return startPreread(s);
  }
  s.state = SessionState::Connecting;
  startConnect(s);
}

// Exactly once per admitted session, whatever ended it.
void Worker::releaseSource(Session& s) {
  if (!s.sourceLimits) return;
  s.sourceLimits->release(s.client);
  s.sourceLimits.reset();
}

}  // namespace lb
