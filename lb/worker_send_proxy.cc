// send_proxy: the PROXY header (lb/edge/proxy_header.h) a member connection
// begins with. It is part of the member connection's setup (lb/session.h):
// onConnect hands every new member connection here before anything else may
// reach the member (client bytes, whether copied, spliced or decrypted, a
// FIN, or the ClientHello of [pool.NAME.tls]), so no path can send first.
//
//   connect ok --> header sent (one send, or more for its rest) --> memberReady
//              \-> the send fails or outlasts connect_timeout --> connectFailed
//
// The header and, behind it, a copy of the client bytes flow 0 already holds
// (peeked, or received while connecting) leave in one send; whatever of the
// copy went is credited to flow 0, which sends the rest from its own buffer.
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "lb/check.h"
#include "lb/edge/proxy_header.h"
#include "lb/worker.h"

namespace lb {
namespace {

bool isWildcard(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET)
    return reinterpret_cast<const sockaddr_in&>(address).sin_addr.s_addr == htonl(INADDR_ANY);
  if (address.ss_family == AF_INET6)
    return IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6&>(address).sin6_addr);
  return false;
}

}  // namespace

// The client as members are told of it: the effective client (an incoming
// PROXY header's source when there was one). Read at accept when anything
// else needs it (worker_edge.cc), else here, once.
const sockaddr_storage& Worker::effectiveClient(Session& s) {
  if (s.client.ss_family == AF_UNSPEC) {
    socklen_t length = sizeof s.client;
    if (getpeername(s.clientFd, reinterpret_cast<sockaddr*>(&s.client), &length) != 0) s.client = {};
  }
  return s.client;
}

// The address the client connected to: an incoming PROXY header's
// destination (worker_edge.cc sets `local` from it), else the listener's own
// when it binds one, else the accepted socket's (asked once per session).
const sockaddr_storage& Worker::clientDestination(Session& s) {
  if (s.local.ss_family != AF_UNSPEC) return s.local;
  const config::Address& bind = listenerOf(s).config.bind;
  if (!isWildcard(bind.storage)) {
    s.local = bind.storage;
    return s.local;
  }
  socklen_t length = sizeof s.local;
  if (getsockname(s.clientFd, reinterpret_cast<sockaddr*>(&s.local), &length) != 0) s.local = {};
  return s.local;
}

void Worker::startProxyHeader(Session& s) {
  ProxyHeaderSend& header = s.proxyHeader;
  RINGLB_CHECK(!header.block && !s.headerPending);
  header = ProxyHeaderSend{};
  header.block = blocks_.acquire();
  if (!header.block) {
    localError(LocalError::Io, ENOMEM, "no buffer for a PROXY header (client closed)");
    return endSession(s, EndReason::LocalError);
  }
  edge::HeaderExtras extras;
  proxyHeaderExtras(s, extras);
  auto* out = reinterpret_cast<uint8_t*>(header.block);
  size_t written = edge::writeHeader(s.member->sendProxy, effectiveClient(s), clientDestination(s), extras,
                                     {out, edge::kMaxWrittenHeaderBytes});
  RINGLB_CHECK(written > 0);  // kMaxWrittenHeaderBytes holds the largest header
  if (written == 0) {
    releaseProxyHeader(s);
    localError(LocalError::Io, ENOBUFS, "PROXY header too large (client closed)");
    return endSession(s, EndReason::LocalError);
  }
  header.headerBytes = header.length = static_cast<uint32_t>(written);
  // A TLS member gets the handshake right behind the header; client bytes
  // only once it is done.
  Flow& first = s.flows[0];
  if (!poolOf(s).tls && first.bufferSent < first.bufferLength) {
    size_t copied = std::min<size_t>(first.bufferLength - first.bufferSent, tls::BlockPool::kBlockBytes - written);
    std::memcpy(header.block + written, flowData(first) + first.bufferSent, copied);
    header.length += static_cast<uint32_t>(copied);
  }
  sendProxyHeader(s);
}

// What is left of the header block, bounded by connect_timeout like the
// connect itself (a member that accepts and never reads is a failed
// connect, not a session stuck before proxying).
void Worker::sendProxyHeader(Session& s) {
  ProxyHeaderSend& header = s.proxyHeader;
  if (io_uring_sq_space_left(&ring_) < 2) io_uring_submit(&ring_);  // keep the link whole
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_send(sqe, s.memberFd, header.block + header.sent, header.length - header.sent, MSG_NOSIGNAL);
  sqe->flags |= IOSQE_IO_LINK;
  prepare(sqe, Op::ProxyHeaderSend, s.index, s.generation);
  sqe = getSqe();
  io_uring_prep_link_timeout(sqe, const_cast<__kernel_timespec*>(poolOf(s).connectTimeout()), 0);
  prepare(sqe, Op::ProxyHeaderTimeout, s.index, s.generation);
  s.inflight += 2;
  s.headerPending = true;
}

void Worker::onProxyHeaderSent(Session& s, int result) {
  s.headerPending = false;
  if (s.state != SessionState::Connecting) return;  // ended meanwhile: maybeFree takes the block
  ProxyHeaderSend& header = s.proxyHeader;
  if (result <= 0) {
    // Nothing of the client's went (the header was not complete): the
    // next member starts from the same bytes. -ECANCELED: timed out.
    releaseProxyHeader(s);
    return connectFailed(s, result < 0 ? result : -EPIPE);
  }
  header.sent += static_cast<uint32_t>(result);
  if (header.sent < header.headerBytes) return sendProxyHeader(s);
  uint32_t clientBytes = header.sent - header.headerBytes;
  Flow& first = s.flows[0];
  first.bufferSent += clientBytes;
  moved(s, 0, clientBytes);  // not connected yet: counted later
  if (clientBytes > 0 && first.bufferSent == first.bufferLength) {
    releaseBuffer(first);  // all of it went: flow 0 starts empty-handed
    first.bufferLength = first.bufferSent = 0;
  }
  releaseProxyHeader(s);
  memberReady(s);
}

// Only with no send of the block in flight.
void Worker::releaseProxyHeader(Session& s) {
  if (s.proxyHeader.block) blocks_.release(s.proxyHeader.block);
  s.proxyHeader = ProxyHeaderSend{};
}

}  // namespace lb
