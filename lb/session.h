#pragma once
// One proxied connection, as a worker keeps it in its slab.
//
// Life:
//   Free -> [ReadingProxyHeader] -> [Prereading | Handshaking] -> Connecting
//        -> (Connecting on another member)* -> [MemberHandshaking] -> Proxying
//        -> Closing -> Free.
//  - ReadingProxyHeader (accept_proxy, the peer is in proxy_from): the
//    PROXY header is peeked (MSG_PEEK, never consumed before it is whole)
//    until parseHeader says Done or Invalid, or proxy_timeout passes. Done
//    consumes exactly the header's bytes: what follows stays in the socket
//    and reaches the next state like any client's first bytes.
//  - Connecting covers the whole TCP setup of a member connection: the
//    connect and then, for a member with send_proxy, the PROXY header
//    (lb/worker_send_proxy.cc), sent before any other byte reaches the
//    member; a header that cannot be sent is a failed connect (next member).
//  - Prereading (routes, no [listener.tls]): the client's first bytes are
//    received and kept (at most 16 KiB) until the ClientHello parser has
//    an answer or preread_timeout passes; the pool is chosen from the SNI.
//    The kept bytes are the first thing the member gets.
//  - Handshaking ([listener.tls]): the client's TLS handshake, bounded by
//    handshake_timeout; a failure ends the session before any member is
//    picked. The pool is chosen from the handshake's SNI.
//  - MemberHandshaking ([pool.NAME.tls]): after the TCP connect, the TLS
//    handshake with the member, bounded by connect_timeout; a failure counts
//    like a refused connect (next member).
// Any state may go to Closing. Access control and per-source limits are
// applied before the first of these states that sees the client's bytes
// (after the header when there is one), never after a member was picked.
// Invariants (checked: lb/check.h):
//  - `inflight` counts this session's SQEs whose final CQE has not arrived.
//    A slot returns to Free only in Closing with inflight == 0, so no
//    completion can ever reach a slot that has been reused.
//  - In Closing both fds are closed (or their close is queued on the ring);
//    completions only decrement inflight and hand ring buffers back.
//  - A flow holds a pipe only while bytes are in it or about to be.
//  - A flow has at most one operation in flight (Flow::state).
//  - A client that resets while its member is still being connected ends
//    the session within a tick, not after connect_timeout (ClientWatch).
//  - `tls` is set exactly when the session uses a TLS leg or the preread;
//    it returns to the worker's spare list when the slot is freed. A flow
//    with a TLS leg on either side never splices.

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "lb/access_log.h"
#include "lb/edge/source_limits.h"
#include "lb/flow_state.h"
#include "lb/ring/pipe_pool.h"
#include "lb/ring/received_queue.h"
#include "lb/ring/user_data.h"
#include "lb/tls/client_hello.h"
#include "lb/tls/leg.h"

namespace lb {

struct Listener;
struct Member;
class PoolPicker;
struct SessionTls;
struct WorkerGeneration;

enum class SessionState : uint8_t {
  Free,
  ReadingProxyHeader,
  Prereading,
  Handshaking,
  Connecting,
  MemberHandshaking,
  Proxying,
  Closing,
};

// A session whose connect is still pending at a tick starts watching its
// client (a poll for POLLERR/POLLHUP): Off -> Armed. A reset ends the
// session; a mere FIN (a half-close, which is passed on once connected)
// stops the watch: Armed -> Stopped. A connect cancels it.
enum class ClientWatch : uint8_t { Off, Armed, Stopped };

// Flow 0 carries client -> member bytes, flow 1 member -> client.
//
// A flow waits for data with a receive into a ring buffer (copy path: the
// buffer is then sent on, and returned when the send completes). A receive
// that fills a whole buffer marks the flow as bulk: once that buffer is
// sent, the flow moves data through a pipe with splice, waiting with polls,
// until a read smaller than a buffer ends the burst; then it waits with a
// receive again. When no pipe can be made (descriptors ran out) a bulk flow
// copies through ring buffers instead, asking again at its next full buffer.
//
// `state` (lb/flow_state.h) says which single operation is in flight and
// whether the source has ended or its FIN was passed on. `bulk` is the
// transfer mode, orthogonal to it.
//
// With TLS (SessionTls) a flow copies: its ring buffer holds what the
// source sent (ciphertext when the source is a TLS leg, which decrypts into
// `block`), and the bytes to deliver are [bufferSent, bufferLength) of
// `block` if set, else of the ring buffer; a TLS destination encrypts them
// into its leg's output, which the leg sends (the flow waits in Output).
// Nothing more is read from the source until all of that is sent.
struct Flow {
  FlowState state;
  bool bulk = false;        // the last receive filled its buffer: splice until a short read
  bool starved = false;     // the last receive found no ring buffer free
  // The last receive left bytes or a FIN in the source (the kernel's
  // IORING_CQE_F_SOCK_NONEMPTY, which TCP also sets once a FIN is in): its
  // bytes go out with MSG_MORE and the next receive starts at once, so a
  // FIN right behind them leaves in the same segment (see sendBuffer).
  bool sourceNonEmpty = false;
  // A synchronous splice read returned 0: taken as the FIN only when the
  // next one does too, after a poll, so that completions already posted
  // (a send that hit the member's reset, say) are handled first (see pump).
  bool emptyReadSeen = false;
  Pipe pipe;
  uint32_t inPipe = 0;      // bytes read from the source, not yet written on
  uint64_t bytes = 0;       // bytes written to the destination
  // Of `bytes`, those not yet added to the listener's and member's counters
  // (lb/stats.h kLiveBytesFlush): below kLiveBytesFlush once connected.
  uint64_t unflushed = 0;
  int32_t buffer = -1;      // ring buffer held between receive and send, or -1
  uint32_t bufferLength = 0;
  uint32_t bufferSent = 0;
  char* block = nullptr;    // a worker BlockPool block (decrypted or peeked bytes), or null
  uint8_t outputLeg = 0;    // in Output: whose leg's send it waits for (0 client, 1 member)
  // A flow that copies without TLS receives with one multishot receive,
  // armed until it ends (a completion without IORING_CQE_F_MORE): its
  // completions that come while the flow is busy wait in `received`, in
  // order. `multishotStopping`: its cancel was asked (the queue reached
  // its high-water mark, or the flow turns to splice).
  //
  // Only a flow that has carried small messages and never a bulk burst
  // receives so (`smallSeen`, `wentBulk`): a multishot receive reads on
  // while its completions wait, so on a burst it would copy through many
  // ring buffers what splice moves without a copy. A flow starts, and a
  // flow that once went bulk stays, with single-shot receives.
  bool smallSeen = false;
  bool wentBulk = false;
  bool multishot = false;
  bool multishotStopping = false;
  ReceivedQueue received;
};

constexpr uint32_t kMaxAttempts = 17;  // 1 + the largest `retries` config allows

// The PROXY header on its way to a just-connected member: a BlockPool
// block with the header and, behind it, a copy of the client bytes flow 0
// already holds (a plaintext member only), so both leave in one send. Only
// the header's own bytes decide success; the copied ones are credited to
// flow 0 when they went, and flow 0 sends the rest from its own buffer.
struct ProxyHeaderSend {
  char* block = nullptr;     // held from building the header to its last send's completion
  uint32_t headerBytes = 0;  // [0, headerBytes) of block: the header
  uint32_t length = 0;       // headerBytes + the copied client bytes
  uint32_t sent = 0;
};

struct Session {
  uint32_t generation = 0;
  SessionState state = SessionState::Free;
  bool connectPending = false;
  bool headerPending = false;  // a ProxyHeaderSend (and its linked timeout) in flight
  ClientWatch clientWatch = ClientWatch::Off;
  int8_t firstEof = -1;  // the flow whose source sent FIN first, or -1
  uint8_t attempts = 0;  // connects started, including the current one
  EndReason endReason = EndReason::ClientClosed;
  uint32_t inflight = 0;
  uint32_t index = 0;     // this session's slot
  uint32_t nextFree = 0;  // free-list link while Free
  int clientFd = -1;
  int memberFd = -1;
  uint16_t listenerIndex = 0;  // in runtime->runtime->listeners
  WorkerGeneration* runtime = nullptr;  // the config generation it started in
  PoolPicker* picker = nullptr;  // the pool chosen: the listener's, or a route's
  SessionTls* tls = nullptr;     // TLS legs and preread state, or null
  Member* member = nullptr;  // counted in member->active while set
  std::array<Member*, kMaxAttempts> tried{};
  uint64_t acceptedNs = 0;
  uint64_t connectedNs = 0;   // 0 until connected
  uint64_t lastActiveNs = 0;  // last byte moved either way
  // The effective client: the PROXY header's source when the header carried
  // addresses (`proxied`), else the connection's peer. Everything that asks
  // "who is the client" (access log, hashing, allow/deny, per-source limits,
  // the PROXY header sent on to a member) uses this one.
  sockaddr_storage client{};
  // The connection's own peer (with accept_proxy: the front balancer).
  // Read whenever anything needs an address; family AF_UNSPEC otherwise.
  sockaddr_storage peer{};
  bool proxied = false;  // client and local come from a front balancer's PROXY header
  uint32_t proxyPeeked = 0;  // ReadingProxyHeader: bytes the last peek saw
  // Per-source limits: the table this session was admitted to (release()
  // once when it ends, with `client`); null when not counted.
  std::shared_ptr<edge::SourceLimits> sourceLimits;
  // The address the client connected to, for PROXY headers: the received
  // header's destination when `proxied`, else filled (once, by getsockname
  // on a wildcard listener) only when a header needs it.
  sockaddr_storage local{};
  ProxyHeaderSend proxyHeader;
  std::array<Flow, 2> flows;
};

// What a session needs for TLS and for routing by SNI (lb/worker_tls.cc).
// Allocated for the sessions that need it only, and reused: a worker keeps
// the spare ones, so nothing is allocated per record or, once warm, per
// connection.
struct SessionTls {
  tls::Leg client;  // active: [listener.tls] terminates the client's TLS
  tls::Leg member;  // active: [pool.NAME.tls] originates TLS to the member
  tls::ClientHelloParser hello;  // Prereading: the peek
  bool peeked = false;           // hello saw bytes (sni and alpn come from it)
  std::string_view route;        // how the pool was chosen; empty: no routes
  std::string alpnOffered;       // the peek's ALPN list, comma-separated
  uint64_t memberHandshakeNs = 0;  // when the handshake with the member began
  // The client's handshake failed; its alert is being sent, then the
  // session ends with the reason already set.
  bool failing = false;
  // The member's handshake failed; the member side's operations are being
  // cancelled, then the next member is tried.
  bool memberFailed = false;
  // kTLS: flow 1 starts once the client leg's output is sent and its
  // transmit keys are in the socket (or stayed with the leg).
  bool handOverPending = false;
  // kTLS: a record OpenSSL wrote after the hand-over (an alert), sent as
  // one control message; lives until that send completes.
  struct ControlRecord {
    msghdr message{};
    iovec part{};
    alignas(cmsghdr) char control[CMSG_SPACE(1)]{};
  } controlRecord;

  // Back to what a new session finds. Only with no send of a leg in flight.
  void reset() {
    client.reset();
    member.reset();
    hello = tls::ClientHelloParser{};
    peeked = false;
    route = {};
    alpnOffered.clear();
    memberHandshakeNs = 0;
    failing = memberFailed = handOverPending = false;
  }
};

}  // namespace lb
