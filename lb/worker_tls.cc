// TLS and routing by SNI in a session's life (lb/session.h):
//  - Prereading: peek at the ClientHello, choose the pool, keep the bytes;
//  - Handshaking: the client's handshake on a [listener.tls] listener;
//  - MemberHandshaking: the handshake with a [pool.NAME.tls] member;
//  - Proxying through TLS legs: decrypt, send plaintext; receive
//    plaintext, encrypt, send the leg's output.
// A leg's output is sent by the leg's own operation (LegSend0 toward the
// client, LegSend1 toward the member), one at a time; a flow that needs
// that output gone before it goes on waits in FlowWait::Output.
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <optional>

#include "health/prober.h"
#include "lb/check.h"
#include "lb/log.h"
#include "lb/worker.h"

namespace lb {
namespace {

constexpr size_t kSpareTls = 1024;

uint64_t msToNs(std::chrono::milliseconds d) { return static_cast<uint64_t>(d.count()) * 1'000'000u; }

HandshakeResult resultOf(tls::HandshakeFailure failure) {
  switch (failure) {
    case tls::HandshakeFailure::NoShared: return HandshakeResult::NoSharedCipher;
    case tls::HandshakeFailure::UnknownCa: return HandshakeResult::UnknownCa;
    case tls::HandshakeFailure::BadCertificate: return HandshakeResult::BadCertificate;
    case tls::HandshakeFailure::Protocol: break;
  }
  return HandshakeResult::Protocol;
}

// The leg a flow reads from / writes to, when that side is TLS. Flow 0
// reads the client (side 0) and writes the member (side 1); flow 1 the
// other way round.
tls::Leg* legOf(Session& s, int side) {
  tls::Leg& leg = side == 0 ? s.tls->client : s.tls->member;
  return leg.active() ? &leg : nullptr;
}

// The leg a flow writes plaintext into: none once the kernel encrypts
// what is sent to that side (kTLS), since then the socket takes plaintext.
tls::Leg* writeLegOf(Session& s, int side) {
  tls::Leg* leg = legOf(s, side);
  return leg && !leg->kernelTx() ? leg : nullptr;
}

}  // namespace

// TLS legs and the peek receive into ring buffers (they cannot splice):
// without a buffer ring there is no TLS state to be had.
SessionTls* Worker::acquireTls() {
  if (!buffers_.ready()) return nullptr;
  if (spareTls_.empty()) return new (std::nothrow) SessionTls;
  SessionTls* tls = spareTls_.back().release();
  spareTls_.pop_back();
  return tls;
}

// Only once nothing is in flight (maybeFree): no send reads a leg's block.
void Worker::releaseTls(Session& s) {
  if (!s.tls) return;
  s.tls->reset();
  if (spareTls_.size() < kSpareTls)
    spareTls_.emplace_back(s.tls);
  else
    delete s.tls;
  s.tls = nullptr;
}

// ---------------------------------------------------------------------------
// Prereading

void Worker::startPreread(Session& s) {
  s.state = SessionState::Prereading;
  armPrereadReceive(s);
}

// A receive of at most what the 16 KiB bound has left, so the kept bytes
// always fit one block.
void Worker::armPrereadReceive(Session& s) {
  Flow& f = s.flows[0];
  auto room = static_cast<unsigned>(tls::kMaxClientHelloBytes - f.bufferLength);
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_recv(sqe, s.clientFd, nullptr, std::min(room, buffers_.bufferSize()), 0);
  sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffers_.group();
  track(s, 0, FlowWait::Receive, sqe);
}

// Every byte is kept for the member: one receive that settles the question
// keeps its ring buffer; otherwise the bytes gather in a block.
void Worker::onPrereadReceived(Session& s, int result, uint32_t cqeFlags) {
  Flow& f = s.flows[0];
  bool hasBuffer = cqeFlags & IORING_CQE_F_BUFFER;
  auto id = static_cast<uint16_t>(cqeFlags >> IORING_CQE_BUFFER_SHIFT);
  if (result <= 0 || !hasBuffer) {
    if (hasBuffer) buffers_.recycle(id);
    if (result == 0 && f.bufferLength == 0) return endSession(s, EndReason::ClientClosed);
    if (result == 0) {  // a fragment, then FIN: not a ClientHello
      sourceEnded(s, 0);
      return chooseRoute(s, s.picker, "default_not_tls", false);
    }
    if (result == -ENOBUFS || health::isLocalResourceError(-result)) return armPause(s, 0, true);
    return endSession(s, EndReason::Reset);
  }
  s.lastActiveNs = nowNs_;
  s.tls->peeked = true;
  const char* data = buffers_.buffer(id);
  tls::HelloResult hello = s.tls->hello.feed(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(result));
  if (!f.block && hello != tls::HelloResult::NeedMore) {
    f.buffer = id;
    f.bufferLength = static_cast<uint32_t>(result);
    f.bufferSent = 0;
  } else {
    if (!f.block) f.block = blocks_.acquire();
    if (!f.block) {
      buffers_.recycle(id);
      localError(LocalError::Io, ENOMEM, "no buffer for a ClientHello (client closed)");
      return endSession(s, EndReason::LocalError);
    }
    RINGLB_ENFORCE(f.bufferLength + static_cast<uint32_t>(result) <= tls::BlockPool::kBlockBytes);
    std::memcpy(f.block + f.bufferLength, data, static_cast<size_t>(result));
    f.bufferLength += static_cast<uint32_t>(result);
    buffers_.recycle(id);
  }
  switch (hello) {
    case tls::HelloResult::NeedMore:
      if (f.bufferLength >= tls::kMaxClientHelloBytes) return endSession(s, EndReason::ClientHelloTooLarge);
      return armPrereadReceive(s);
    case tls::HelloResult::Done: {
      for (const std::string& protocol : s.tls->hello.alpn()) {
        if (!s.tls->alpnOffered.empty()) s.tls->alpnOffered += ',';
        s.tls->alpnOffered += protocol;
      }
      return routeBy(s, s.tls->hello.serverName());
    }
    case tls::HelloResult::NotTls:
    case tls::HelloResult::Malformed: return chooseRoute(s, s.picker, "default_not_tls", false);
    case tls::HelloResult::TooLarge: return endSession(s, EndReason::ClientHelloTooLarge);
  }
}

// Exact name, then wildcard (ServerNameTable); else the listener's pool.
void Worker::routeBy(Session& s, std::string_view sni) {
  PoolPicker* fallback = s.runtime->pickerOfListener[s.listenerIndex];
  if (sni.empty()) return chooseRoute(s, fallback, "default_no_sni", false);
  std::optional<uint32_t> route = listenerOf(s).routes.find(sni);
  if (!route) return chooseRoute(s, fallback, "default_no_match", false);
  chooseRoute(s, s.runtime->routePickers[s.listenerIndex][*route], "sni", true);
}

void Worker::chooseRoute(Session& s, PoolPicker* picker, std::string_view route, bool bySni) {
  TlsListenerCounters& counters = listenerOf(s).state->counters.tls;
  bump(bySni ? counters.routedBySni : counters.routedDefault);
  s.picker = picker;
  s.tls->route = route;
  s.state = SessionState::Connecting;
  startConnect(s);
}

// ---------------------------------------------------------------------------
// The client's handshake

void Worker::startHandshake(Session& s) {
  s.state = SessionState::Handshaking;
  SSL_CTX* context = s.runtime->serverContexts[s.listenerIndex].get();
  if (!context) return failHandshake(s, HandshakeResult::Protocol);
  // Detached after a TLS 1.3 handshake (lb/tls/leg.h): no SSL object while proxying.
  if (!s.tls->client.open(context, true, &blocks_, offerKernelTx_, true)) {
    localError(LocalError::Io, ENOMEM, "no TLS object for a client (closed)");
    return endSession(s, EndReason::LocalError);
  }
  armRead(s, 0);
}

void Worker::handshakeStep(Session& s) {
  tls::Leg& leg = s.tls->client;
  tls::LegStatus status = leg.handshake();
  flushLeg(s, 0);
  switch (status) {
    case tls::LegStatus::Ok: return handshakeDone(s);
    case tls::LegStatus::WantRead: {
      Flow& f = s.flows[0];
      if (!f.state.idle()) return;  // a receive is already waiting
      RINGLB_CHECK(leg.inputConsumed());
      leg.dropInput();
      releaseBuffer(f);
      return armRead(s, 0);
    }
    case tls::LegStatus::WantWrite: return;  // the leg's send calls again once done
    case tls::LegStatus::Closed:
    case tls::LegStatus::Failed:
      log::debug("listener {}: TLS handshake failed: {}", listenerOf(s).config.name, leg.failureText());
      return failHandshake(s, resultOf(leg.failure()));
  }
}

void Worker::handshakeDone(Session& s) {
  const Listener& listener = listenerOf(s);
  TlsListenerCounters& counters = listener.state->counters.tls;
  const tls::HandshakeFacts& facts = s.tls->client.facts();
  bump(counters.handshakes[static_cast<size_t>(HandshakeResult::Ok)]);
  if (facts.resumed) bump(counters.resumed);
  counters.handshakeDuration.record(static_cast<double>(nowNs_ - s.acceptedNs) / 1e9);
  Flow& f = s.flows[0];
  if (f.state.idle() && s.tls->client.inputConsumed()) {
    s.tls->client.dropInput();
    releaseBuffer(f);
  }
  if (listener.routePools.empty()) {
    s.state = SessionState::Connecting;
    return startConnect(s);
  }
  routeBy(s, facts.serverName);
}

// A failed handshake never reaches a member. Its alert, if OpenSSL made
// one, is sent first (the handshake timeout still bounds that).
void Worker::failHandshake(Session& s, HandshakeResult result) {
  bump(listenerOf(s).state->counters.tls.handshakes[static_cast<size_t>(result)]);
  EndReason reason =
      result == HandshakeResult::Timeout ? EndReason::TlsHandshakeTimeout : EndReason::TlsHandshakeFailed;
  if (result != HandshakeResult::Timeout && s.tls->client.sending()) {
    s.tls->failing = true;
    s.endReason = reason;
    return;
  }
  endSession(s, reason);
}

// ---------------------------------------------------------------------------
// The member's handshake

bool Worker::startMemberHandshake(Session& s) {
  if (!s.tls) s.tls = acquireTls();
  if (!s.tls) {
    localError(LocalError::Io, ENOMEM, "no TLS state for a member connection (client closed)");
    endSession(s, EndReason::LocalError);
    return false;
  }
  const Pool& pool = poolOf(s);
  auto context = s.runtime->clientContexts.find(&pool);
  s.state = SessionState::MemberHandshaking;
  s.tls->memberHandshakeNs = nowNs_;
  if (context == s.runtime->clientContexts.end() || !context->second) {
    failMemberHandshake(s, false);
    return false;
  }
  tls::Leg& leg = s.tls->member;
  if (!leg.open(context->second.get(), false, &blocks_)) {
    localError(LocalError::Io, ENOMEM, "no TLS object for a member connection (client closed)");
    endSession(s, EndReason::LocalError);
    return false;
  }
  if (!tls::configureClient(leg.ssl(), *pool.tls)) {
    failMemberHandshake(s, false);
    return false;
  }
  leg.setSessionSlot(&s.runtime->memberSessions[s.member]);
  memberHandshakeStep(s);
  return true;
}

void Worker::memberHandshakeStep(Session& s) {
  tls::Leg& leg = s.tls->member;
  Flow& f = s.flows[1];
  if (s.tls->memberFailed) {
    // Waiting for the failed member's operations to finish before the next.
    if (!f.state.idle() || leg.sending()) return;
    releaseBuffer(f);
    leg.reset();
    s.tls->memberFailed = false;
    closeLater(s.memberFd);
    s.memberFd = -1;
    releaseMember(s);
    s.state = SessionState::Connecting;
    return startConnect(s);
  }
  tls::LegStatus status = leg.handshake();
  flushLeg(s, 1);
  switch (status) {
    case tls::LegStatus::Ok:
      s.member->connectFailures.recordSuccess();
      bump(s.member->counters.connections);
      return startProxying(s);
    case tls::LegStatus::WantRead:
      if (!f.state.idle()) return;
      RINGLB_CHECK(leg.inputConsumed());
      leg.dropInput();
      releaseBuffer(f);
      return armRead(s, 1);
    case tls::LegStatus::WantWrite: return;
    case tls::LegStatus::Closed:
    case tls::LegStatus::Failed:
      log::debug("TLS handshake with member {} failed: {}", s.member->name, leg.failureText());
      return failMemberHandshake(s, false);
  }
}

// Counted like a refused (or timed-out) connect, passive failures
// included; then the next member, once nothing of this one is in flight.
void Worker::failMemberHandshake(Session& s, bool timedOut) {
  if (s.tls->memberFailed) return;
  Member& member = *s.member;
  member.connectFailures.recordFailure();
  bump(timedOut ? member.counters.connectTimeout : member.counters.connectRefused);
  bump(member.counters.tlsFailed);
  s.endReason = timedOut ? EndReason::ConnectTimeout : EndReason::ConnectRefused;
  s.tls->memberFailed = true;
  Flow& f = s.flows[1];
  // Flow 1 waits for the member only with a receive or a pause here.
  if (!f.state.idle()) cancel(s, f.state.wait() == FlowWait::Pause ? Op::Continue1 : Op::Recv1);
  if (s.tls->member.sending()) cancel(s, Op::LegSend1);
  memberHandshakeStep(s);
}

// ---------------------------------------------------------------------------
// Receives before Proxying

void Worker::onStageReceived(Session& s, int flow, int result, uint32_t cqeFlags) {
  Flow& f = s.flows[flow];
  bool hasBuffer = cqeFlags & IORING_CQE_F_BUFFER;
  auto id = static_cast<uint16_t>(cqeFlags >> IORING_CQE_BUFFER_SHIFT);
  bool data = result > 0 && hasBuffer;
  if (s.state == SessionState::Prereading) return onPrereadReceived(s, result, cqeFlags);
  if (s.state == SessionState::ReadingProxyHeader) return onProxyPeeked(s, result, cqeFlags);
  bool wanted = s.state != SessionState::Closing && !(flow == 1 && s.tls && s.tls->memberFailed) &&
                !(s.state == SessionState::Handshaking && s.tls->failing);
  if (!data || !wanted) {
    if (hasBuffer) buffers_.recycle(id);
    if (!wanted) {
      if (s.state == SessionState::MemberHandshaking) memberHandshakeStep(s);
      return;
    }
    if (result == -ENOBUFS || (result < 0 && health::isLocalResourceError(-result)))
      return armPause(s, flow, true);
    if (s.state == SessionState::Handshaking) return failHandshake(s, HandshakeResult::Protocol);
    if (s.state == SessionState::MemberHandshaking && flow == 1) return failMemberHandshake(s, false);
    // The client, while its member is being connected (a receive armed
    // while prereading or handshaking).
    if (result == 0) return sourceEnded(s, flow);  // passed on once connected
    return endSession(s, EndReason::ClientClosed);
  }
  s.lastActiveNs = nowNs_;
  RINGLB_CHECK(f.buffer < 0);
  f.buffer = id;
  const char* bytes = buffers_.buffer(id);
  if (tls::Leg* leg = legOf(s, flow)) {
    leg->setInput(bytes, static_cast<size_t>(result));
    if (s.state == SessionState::Handshaking) return handshakeStep(s);
    if (s.state == SessionState::MemberHandshaking && flow == 1) return memberHandshakeStep(s);
    return;  // client bytes behind the handshake: decrypted once connected
  }
  f.bufferLength = static_cast<uint32_t>(result);  // the client's, sent once connected
  f.bufferSent = 0;
}

// ---------------------------------------------------------------------------
// A leg's output

void Worker::flushLeg(Session& s, int side) {
  tls::Leg& leg = side == 0 ? s.tls->client : s.tls->member;
  if (leg.sending() || !leg.hasOutput()) return;
  std::span<const char> out = leg.takeOutput();
  io_uring_sqe* sqe = getSqe();
  if (leg.kernelTx()) {
    // A record after the kTLS hand-over: the kernel seals it with the type
    // given here (it sends such a record whole, or not at all).
    SessionTls::ControlRecord& record = s.tls->controlRecord;
    record = {};
    record.part = {const_cast<char*>(out.data()), out.size()};
    record.message.msg_iov = &record.part;
    record.message.msg_iovlen = 1;
    record.message.msg_control = record.control;
    record.message.msg_controllen = sizeof record.control;
    cmsghdr* header = CMSG_FIRSTHDR(&record.message);
    header->cmsg_level = SOL_TLS;
    header->cmsg_type = TLS_SET_RECORD_TYPE;
    header->cmsg_len = CMSG_LEN(1);
    *CMSG_DATA(header) = leg.outputRecordType();
    io_uring_prep_sendmsg(sqe, s.clientFd, &record.message, MSG_NOSIGNAL);
  } else {
    io_uring_prep_send(sqe, side == 0 ? s.clientFd : s.memberFd, out.data(), out.size(), MSG_NOSIGNAL);
  }
  prepare(sqe, side == 0 ? Op::LegSend0 : Op::LegSend1, s.index, s.generation);
  ++s.inflight;
}

// kTLS: gives the client leg's transmit keys to the socket. Only with all
// of the leg's output sent (the kernel seals what comes after it). When
// the kernel refuses, the leg goes on sealing in user space.
void Worker::handOverTx(Session& s) {
  tls::Leg& leg = s.tls->client;
  if (!offerKernelTx_ || !leg.kernelTxReady() || leg.sending() || leg.hasOutput()) return;
  TlsListenerCounters& counters = listenerOf(s).state->counters.tls;
  const tls::KernelKeyBlock& keys = leg.kernelKeys();
  if (::setsockopt(s.clientFd, SOL_TCP, TCP_ULP, "tls", sizeof "tls") != 0 ||
      ::setsockopt(s.clientFd, SOL_TLS, TLS_TX, keys.bytes.data(), static_cast<socklen_t>(keys.length)) != 0) {
    log::debug("listener {}: kTLS transmit refused ({}): sealing in user space", listenerOf(s).config.name,
               std::strerror(errno));
    bump(counters.kernelTxFailed);
    return;
  }
  leg.handOverTx();
  bump(counters.kernelTx);
}

// Whether a flow's bytes pass through a TLS leg (read from one, or
// written into one); the others move as plain TCP (and may splice).
bool Worker::legsCarry(Session& s, int flow) const {
  return s.tls && (legOf(s, flow) || writeLegOf(s, 1 - flow));
}

void Worker::startFlow(Session& s, int flow) {
  Flow& f = s.flows[flow];
  if (legsCarry(s, flow)) {
    if (f.state.idle()) tlsPump(s, flow);
    return;
  }
  if (f.bufferSent < f.bufferLength)  // bytes that came before the member was connected
    sendBuffer(s, flow);
  else if (f.state.sourceEnded())
    finishFlow(s, flow);
  else if (f.state.idle())
    armRead(s, flow);
}

void Worker::onLegSent(Session& s, int side, int result) {
  tls::Leg& leg = side == 0 ? s.tls->client : s.tls->member;
  leg.outputSent(result > 0 ? static_cast<size_t>(result) : 0);
  if (s.state == SessionState::Closing) return;
  if (s.state == SessionState::MemberHandshaking && side == 1 && s.tls->memberFailed)
    return memberHandshakeStep(s);
  if (result <= 0) {
    if (s.tls->failing) return endSession(s, s.endReason);
    if (s.state == SessionState::Handshaking) return failHandshake(s, HandshakeResult::Protocol);
    if (s.state == SessionState::MemberHandshaking && side == 1) return failMemberHandshake(s, false);
    if (s.state == SessionState::Proxying) return onFlowError(s, 1 - side, true, result < 0 ? -result : EPIPE);
    return endSession(s, EndReason::Reset);
  }
  s.lastActiveNs = nowNs_;
  if (leg.hasOutput()) return flushLeg(s, side);  // the rest, or what came meanwhile
  if (s.tls->failing) return endSession(s, s.endReason);
  if (side == 0 && s.tls->handOverPending && s.state == SessionState::Proxying) {
    s.tls->handOverPending = false;
    handOverTx(s);
    startFlow(s, 1);
  }
  if (s.state == SessionState::Handshaking) return handshakeStep(s);
  if (s.state == SessionState::MemberHandshaking && side == 1) return memberHandshakeStep(s);
  if (s.state != SessionState::Proxying) return;
  for (int flow = 0; flow < 2 && s.state == SessionState::Proxying; ++flow) {
    Flow& f = s.flows[flow];
    if (f.state.wait() != FlowWait::Output || f.outputLeg != side) continue;
    bool legal = f.state.complete(FlowWait::Output);
    RINGLB_CHECK(legal);
    tlsPump(s, flow);
  }
}

// The flow goes on once the leg's output is sent. Without a send (no block
// could be had for the output) it tries again after a pause.
void Worker::waitOutput(Session& s, int flow, int side) {
  tls::Leg& leg = side == 0 ? s.tls->client : s.tls->member;
  if (!leg.sending()) return pauseForResources(s, flow, ENOMEM, "TLS output buffer");
  Flow& f = s.flows[flow];
  bool legal = f.state.start(FlowWait::Output);
  RINGLB_CHECK(legal);
  f.outputLeg = static_cast<uint8_t>(side);
}

// ---------------------------------------------------------------------------
// Proxying through legs

// Moves one flow on as far as it can without waiting: delivers what it
// holds (sent as is, or encrypted into the destination leg), then takes
// more from the source (decrypting what the leg has, or receiving).
// Nothing more is taken while the destination leg still has output, so a
// flow buffers at most one record each side.
void Worker::tlsPump(Session& s, int flow) {
  Flow& f = s.flows[flow];
  RINGLB_CHECK(f.state.canStart());
  tls::Leg* from = legOf(s, flow);
  tls::Leg* to = writeLegOf(s, 1 - flow);
  for (;;) {
    if (f.bufferSent < f.bufferLength) {
      if (!to) return sendBuffer(s, flow);
      size_t n = 0;
      tls::LegStatus status = to->write(flowData(f) + f.bufferSent, f.bufferLength - f.bufferSent, &n);
      flushLeg(s, 1 - flow);
      if (status == tls::LegStatus::WantWrite) return waitOutput(s, flow, 1 - flow);
      if (status != tls::LegStatus::Ok) return onFlowError(s, flow, true, EPROTO);
      f.bufferSent += static_cast<uint32_t>(n);
      moved(s, flow, n);
      s.lastActiveNs = nowNs_;
      continue;
    }
    f.bufferLength = f.bufferSent = 0;
    if (to && to->hasOutput()) return waitOutput(s, flow, 1 - flow);
    if (!from) {
      releaseBuffer(f);  // a waiting flow holds nothing
      if (f.state.sourceEnded()) return finishTlsFlow(s, flow);
      return armRead(s, flow, !f.bulk);
    }
    if (from->inputConsumed()) {
      from->dropInput();
      if (f.buffer >= 0) {
        buffers_.recycle(static_cast<uint16_t>(f.buffer));
        f.buffer = -1;
      }
      if (f.state.sourceEnded()) {
        releaseBuffer(f);
        return finishTlsFlow(s, flow);
      }
    }
    if (!f.block && !(f.block = blocks_.acquire())) return pauseForResources(s, flow, ENOMEM, "TLS buffer");
    size_t n = 0;
    tls::LegStatus status = from->read(f.block, tls::BlockPool::kBlockBytes, &n);
    flushLeg(s, flow);
    switch (status) {
      case tls::LegStatus::Ok:
        f.bufferLength = static_cast<uint32_t>(n);
        continue;
      case tls::LegStatus::WantRead:
        RINGLB_CHECK(from->inputConsumed());
        from->dropInput();
        releaseBuffer(f);  // a waiting flow holds nothing
        return armRead(s, flow, !f.bulk);
      case tls::LegStatus::WantWrite: return waitOutput(s, flow, flow);
      case tls::LegStatus::Closed:  // close_notify: the source ended
        from->dropInput();
        releaseBuffer(f);
        sourceEnded(s, flow);
        return finishTlsFlow(s, flow);
      case tls::LegStatus::Failed:
        log::debug("session flow {}: TLS read failed: {}", flow, from->failureText());
        return onFlowError(s, flow, false, EPROTO);
    }
  }
}

void Worker::onTlsReceived(Session& s, int flow, int result, uint32_t cqeFlags) {
  Flow& f = s.flows[flow];
  bool hasBuffer = cqeFlags & IORING_CQE_F_BUFFER;
  auto id = static_cast<uint16_t>(cqeFlags >> IORING_CQE_BUFFER_SHIFT);
  if (result > 0 && hasBuffer) {
    f.starved = false;
    f.buffer = id;
    // A full buffer: more is probably waiting (the next receive tries at once).
    f.bulk = static_cast<unsigned>(result) == buffers_.bufferSize();
    s.lastActiveNs = nowNs_;
    if (tls::Leg* from = legOf(s, flow)) {
      from->setInput(buffers_.buffer(id), static_cast<size_t>(result));
    } else {
      f.bufferLength = static_cast<uint32_t>(result);
      f.bufferSent = 0;
    }
    return tlsPump(s, flow);
  }
  if (hasBuffer) buffers_.recycle(id);
  if (result == 0) {
    sourceEnded(s, flow);
    return finishTlsFlow(s, flow);
  }
  if (result == -ENOBUFS) {  // every ring buffer is in flight: TLS cannot splice, so wait
    f.starved = true;
    return armPause(s, flow, true);
  }
  if (health::isLocalResourceError(-result)) return pauseForResources(s, flow, -result, "receive");
  onFlowError(s, flow, false, -result);
}

// The source ended (FIN or close_notify): a TLS destination gets
// close_notify first, then the FIN.
void Worker::finishTlsFlow(Session& s, int flow) {
  if (tls::Leg* to = legOf(s, 1 - flow)) {  // after a kTLS hand-over too: close_notify is a control record
    if (!to->shutdownSent()) {
      (void)to->shutdown();
      flushLeg(s, 1 - flow);
    }
    if (to->hasOutput()) return waitOutput(s, flow, 1 - flow);
  }
  finishFlow(s, flow);
}

// ---------------------------------------------------------------------------
// Deadlines (checked at the tick) and the access log

void Worker::checkTlsDeadlines(Session& s) {
  const Listener& listener = listenerOf(s);
  switch (s.state) {
    case SessionState::Prereading:
      if (nowNs_ - s.acceptedNs < msToNs(listener.config.prereadTimeout)) return;
      // Nothing at all: a server-first protocol; its receive stays armed.
      if (!s.tls->peeked) return chooseRoute(s, s.picker, "default_timeout", false);
      return endSession(s, EndReason::PrereadTimeout);  // a ClientHello that never ends
    case SessionState::Handshaking:
      if (!listener.tls || nowNs_ - s.acceptedNs < msToNs(listener.tls->handshakeTimeout())) return;
      if (s.tls->failing) return endSession(s, s.endReason);
      return failHandshake(s, HandshakeResult::Timeout);
    case SessionState::MemberHandshaking:
      if (nowNs_ - s.tls->memberHandshakeNs < msToNs(poolOf(s).config().connectTimeout)) return;
      return failMemberHandshake(s, true);
    default: return;
  }
}

// v2 TLVs of the PROXY header to a member: what the client's terminated
// handshake settled (ALPN, SNI, version, cipher, a verified client
// certificate), or the SNI of a peeked ClientHello. The views point into
// the leg's facts or the parser, which outlive the header's writing.
void Worker::proxyHeaderExtras(const Session& s, edge::HeaderExtras& extras) const {
  if (!s.tls) return;
  if (s.tls->client.active() && s.tls->client.handshakeDone()) {
    const tls::HandshakeFacts& facts = s.tls->client.facts();
    if (!facts.alpn.empty()) extras.alpn = facts.alpn;
    if (!facts.serverName.empty()) extras.authority = facts.serverName;
    extras.tls = true;
    extras.clientCertVerified = facts.clientCertVerified;
    extras.tlsVersion = facts.version;
    extras.tlsCipher = facts.cipher;
  } else if (s.tls->peeked) {
    extras.authority = s.tls->hello.serverName();
  }
}

void Worker::logTls(const Session& s, AccessRecord& record) const {
  if (!s.tls) return;
  if (!listenerOf(s).routePools.empty()) {
    record.route = s.tls->route;
    if (!s.tls->route.empty()) record.pool = poolOf(s).name();
  }
  const tls::Leg& client = s.tls->client;
  if (client.active() && !client.handshakeDone()) {
    if (const char* sni = SSL_get_servername(client.ssl(), TLSEXT_NAMETYPE_host_name)) record.sni = sni;
  } else if (client.active()) {
    const tls::HandshakeFacts& facts = client.facts();
    record.sni = facts.serverName;
    record.tls = true;
    record.tlsResumed = facts.resumed;
    record.tlsVersion = facts.version;
    record.tlsCipher = facts.cipher;
    record.alpn = facts.alpn;
    record.clientCert = facts.clientCert;
  } else if (s.tls->peeked) {
    record.sni = s.tls->hello.serverName();
    record.alpn = s.tls->alpnOffered;
  }
}

}  // namespace lb
