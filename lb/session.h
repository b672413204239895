#pragma once
// One proxied connection, as a worker keeps it in its slab.
//
// Life: Free -> Connecting -> (Connecting on another member)* -> Proxying
//       -> Closing -> Free.
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

#include <sys/socket.h>

#include <array>
#include <cstdint>

#include "lb/access_log.h"
#include "lb/flow_state.h"
#include "lb/ring/pipe_pool.h"
#include "lb/ring/user_data.h"

namespace lb {

struct Listener;
struct Member;
class PoolPicker;
struct WorkerGeneration;

enum class SessionState : uint8_t { Free, Connecting, Proxying, Closing };

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
struct Flow {
  FlowState state;
  bool bulk = false;        // the last receive filled its buffer: splice until a short read
  bool starved = false;     // the last receive found no ring buffer free
  Pipe pipe;
  uint32_t inPipe = 0;      // bytes read from the source, not yet written on
  uint64_t bytes = 0;       // bytes written to the destination
  int32_t buffer = -1;      // ring buffer held between receive and send, or -1
  uint32_t bufferLength = 0;
  uint32_t bufferSent = 0;
};

constexpr uint32_t kMaxAttempts = 17;  // 1 + the largest `retries` config allows

struct Session {
  uint32_t generation = 0;
  SessionState state = SessionState::Free;
  bool connectPending = false;
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
  Member* member = nullptr;  // counted in member->active while set
  std::array<Member*, kMaxAttempts> tried{};
  uint64_t acceptedNs = 0;
  uint64_t connectedNs = 0;   // 0 until connected
  uint64_t lastActiveNs = 0;  // last byte moved either way
  sockaddr_storage client{};
  std::array<Flow, 2> flows;
};

}  // namespace lb
