#pragma once
// A worker thread: one io_uring, its own listening sockets, its sessions,
// pipes, ring buffers and policy state. Nothing here is shared with other
// workers except the Member and Listener counters (relaxed atomics), the
// immutable config generations (Runtime) and the access-log sink. A reload
// reaches the worker through adopt() (a mailbox and its eventfd).

#include <liburing.h>

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lb/access_log.h"
#include "lb/edge/proxy_header.h"
#include "lb/ring/buffer_ring.h"
#include "lb/listener.h"
#include "lb/log_throttle.h"
#include "lb/ring/pipe_pool.h"
#include "lb/ring/submitter.h"
#include "lb/pool.h"
#include "lb/runtime.h"
#include "lb/session.h"
#include "lb/stats.h"
#include "lb/tls/context.h"
#include "lb/tls/leg.h"

namespace lb {

// A listening socket and the runtime listener it accepts for.
struct ListenFd {
  uint32_t listener = 0;
  int fd = -1;
};

struct WorkerOptions {
  int index = 0;
  std::shared_ptr<const Runtime> runtime;
  // At least one per runtime listener (more after an upgrade to fewer
  // workers: every socket of the old process's groups is accepted from);
  // the worker owns them.
  std::vector<ListenFd> listenFds;
  std::shared_ptr<AccessLogSink> accessLog;
  // Accept nothing until releaseAccepts(): a pool's first DNS answers are
  // still out, and a connection taken now would find it empty. Clients
  // wait in the listen backlog meanwhile (after an upgrade, the old
  // process serves them until this one is ready).
  bool holdAccepts = false;
};

// A runtime generation as one worker uses it. Sessions point at the
// generation they started in; a generation replaced by a reload lives on
// until its last session ends.
struct WorkerGeneration {
  WorkerGeneration() = default;
  ~WorkerGeneration();
  WorkerGeneration(const WorkerGeneration&) = delete;
  WorkerGeneration& operator=(const WorkerGeneration&) = delete;

  std::shared_ptr<const Runtime> runtime;
  std::vector<std::unique_ptr<PoolPicker>> pickers;  // one per pool in use
  std::vector<PoolPicker*> pickerOfListener;         // per runtime listener
  std::vector<std::vector<PoolPicker*>> routePickers;  // per listener, indexed like routePools
  // This worker's own OpenSSL contexts (never shared between threads).
  std::vector<tls::SslCtxPtr> serverContexts;  // per listener; null: no [listener.tls]
  std::unordered_map<const Pool*, tls::SslCtxPtr> clientContexts;  // pools with [pool.tls]
  // The last TLS session each member gave this worker, reused by the next
  // connection to it (freed with the generation).
  std::unordered_map<const Member*, SSL_SESSION*> memberSessions;
  uint32_t sessions = 0;
};

struct WorkerStats {
  std::atomic<uint64_t> completions{0};
  std::atomic<uint64_t> staleCompletions{0};
  std::atomic<uint64_t> sessionsOpenAtDeadline{0};
  std::atomic<uint64_t> pipesInUse{0};
  std::atomic<uint64_t> pipesSpare{0};
  // Bulk directions that found the process's pipe budget spent and copied.
  std::atomic<uint64_t> pipesOverBudget{0};
  // Multishot receives stopped: their flow fell behind its source, or
  // turned to splice.
  std::atomic<uint64_t> receivesStopped{0};
  LocalErrorCounters localErrors;
};

class Worker {
 public:
  explicit Worker(WorkerOptions options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Sets up the ring and arms the accepts; 0 or -errno. Call on the thread
  // that will call run() (the ring is single-issuer).
  int start();
  // Serves until a stop has been requested and every session has ended.
  void run();
  // From any thread: stop accepting, let sessions finish up to the shutdown
  // timeout, then close what is left.
  void requestStop();
  // Ends holdAccepts (any thread; idempotent).
  void releaseAccepts();
  // From any thread: switch new connections to `runtime` (a reload).
  // `newListenFds` holds sockets for listeners the worker does not have yet,
  // by listener name; the worker takes them over.
  void adopt(std::shared_ptr<const Runtime> runtime, std::map<std::string, int> newListenFds);

  const WorkerStats& stats() const { return stats_; }
  const AccessLog& accessLog() const { return accessLog_; }
  const ring::Submitter& submitter() const { return submitter_; }
  // Descriptors a worker holds besides its sessions' (listening sockets,
  // its ring, eventfd and spare pipes), for sizing the open-file limit.
  static uint64_t descriptorsPerWorker(size_t listeners);

 private:
  // worker.cc: the loop, accepts, timers, stopping.
  io_uring_sqe* getSqe();
  void prepare(io_uring_sqe* sqe, Op op, uint32_t slot, uint32_t generation);
  void handle(const io_uring_cqe& cqe);
  void armAccept(uint32_t slot);
  void onAccept(uint32_t slot, int result, uint32_t flags);
  void armAcceptRetry(uint32_t slot);
  void onAcceptError(uint32_t slot, int error);
  void closeListenerSlot(uint32_t slot, bool stopping);
  void listenerSlotIdle(uint32_t slot);
  void drainAccept(uint32_t slot);
  OSSL_LIB_CTX* tlsLibrary();
  std::unique_ptr<WorkerGeneration> makeGeneration(std::shared_ptr<const Runtime> runtime);
  void applyPending();
  void computeTick();
  void armWake();
  void onWake();
  void armTick();
  void onTick();
  bool closesWhenDown(const Session& s) const;
  bool removedTooLong(const Session& s) const;
  void beginStop();
  bool finished() const;

  // worker_sessions.cc: a session's life.
  Session* allocSession();
  Session& slot(uint32_t index) { return chunks_[index >> kChunkShift][index & kChunkMask]; }
  void handleSession(Op op, uint32_t index, int result, uint32_t cqeFlags);
  void openSession(uint32_t listenerIndex, int clientFd);
  const Listener& listenerOf(const Session& s) const {
    return *s.runtime->runtime->listeners[s.listenerIndex];
  }
  void releaseGeneration(WorkerGeneration* generation);
  void startConnect(Session& s);
  void onConnect(Session& s, int result);
  void memberReady(Session& s);
  void connectFailed(Session& s, int result);
  void watchClient(Session& s);
  void onClientWatch(Session& s, int result);
  void startProxying(Session& s);
  void onFlowCompletion(Session& s, int flow, FlowWait done, int result, uint32_t cqeFlags);
  void track(Session& s, int flow, FlowWait wait, io_uring_sqe* sqe);
  void pump(Session& s, int flow);
  void armPoll(Session& s, int flow, bool writable);
  void armPause(Session& s, int flow, bool delayed);
  void armRead(Session& s, int flow, bool pollFirst = true);
  bool receivesMultishot(Session& s, int flow) const;
  void awaitMultishot(Session& s, int flow);
  void armMultishot(Session& s, int flow);
  void stopMultishot(const Session& s, Flow& f, int flow);
  void onMultishot(Session& s, int flow, int result, uint32_t cqeFlags);
  void takeReceived(Session& s, int flow, ReceivedCompletion completion);
  void dropReceived(Flow& f);
  void waitForSource(Session& s, int flow);
  void copyWithoutPipe(Session& s, int flow, int error);
  void pauseForResources(Session& s, int flow, int error, const char* what);
  void sourceEnded(Session& s, int flow);
  void onReceived(Session& s, int flow, int result, uint32_t cqeFlags);
  void sendBuffer(Session& s, int flow);
  void onSent(Session& s, int flow, int result);
  void releaseBuffer(Flow& f);
  void finishFlow(Session& s, int flow);
  void onFlowError(Session& s, int flow, bool writing, int error);
  void endSession(Session& s, EndReason reason);
  void cancel(const Session& s, Op op);
  void releaseMember(Session& s);
  void maybeFree(Session& s);
  void closeLater(int fd);
  void logSession(const Session& s);
  void countSession(const Session& s);
  void moved(Session& s, int flow, uint64_t bytes);
  const Pool& poolOf(const Session& s) const { return s.picker->pool(); }
  char* flowData(const Flow& f) const;

  // worker_send_proxy.cc: the PROXY header a member connection begins with.
  const sockaddr_storage& effectiveClient(Session& s);
  const sockaddr_storage& clientDestination(Session& s);
  void startProxyHeader(Session& s);
  void sendProxyHeader(Session& s);
  void onProxyHeaderSent(Session& s, int result);
  void releaseProxyHeader(Session& s);

  // worker_tls.cc: the preread, TLS handshakes and flows through TLS legs.
  SessionTls* acquireTls();
  void releaseTls(Session& s);
  void startPreread(Session& s);
  void armPrereadReceive(Session& s);
  void onPrereadReceived(Session& s, int result, uint32_t cqeFlags);
  void routeBy(Session& s, std::string_view sni);
  void chooseRoute(Session& s, PoolPicker* picker, std::string_view route, bool bySni);
  void startHandshake(Session& s);
  void handshakeStep(Session& s);
  void handshakeDone(Session& s);
  void failHandshake(Session& s, HandshakeResult result);
  bool startMemberHandshake(Session& s);
  void memberHandshakeStep(Session& s);
  void failMemberHandshake(Session& s, bool timedOut);
  void onStageReceived(Session& s, int flow, int result, uint32_t cqeFlags);
  void flushLeg(Session& s, int side);
  void onLegSent(Session& s, int side, int result);
  void waitOutput(Session& s, int flow, int side);
  void tlsPump(Session& s, int flow);
  void onTlsReceived(Session& s, int flow, int result, uint32_t cqeFlags);
  void finishTlsFlow(Session& s, int flow);
  bool legsCarry(Session& s, int flow) const;
  void startFlow(Session& s, int flow);
  void handOverTx(Session& s);
  void checkTlsDeadlines(Session& s);
  void logTls(const Session& s, AccessRecord& record) const;
  void proxyHeaderExtras(const Session& s, edge::HeaderExtras& extras) const;
  void closeRejected(uint32_t listenerIndex, int clientFd, EndReason reason);

  // worker_edge.cc: accept_proxy, allow/deny, per-source limits.
  void startClient(Session& s);
  bool admitClient(Session& s);
  void beginClient(Session& s);
  void armProxyPeek(Session& s);
  void onProxyPeeked(Session& s, int result, uint32_t cqeFlags);
  void proxyHeaderDone(Session& s, const edge::ParsedHeader& header);
  void checkProxyDeadline(Session& s);
  void releaseSource(Session& s);
  void localError(LocalError kind, int error, const char* what);

  static constexpr uint32_t kChunkShift = 10;
  static constexpr uint32_t kChunkSize = 1u << kChunkShift;
  static constexpr uint32_t kChunkMask = kChunkSize - 1;
  static constexpr uint32_t kNoSlot = UINT32_MAX;

  WorkerOptions options_;
  // This worker's OpenSSL library context (lb/tls/context.h), made with the
  // first TLS context; declared first so that it outlives every SSL object.
  tls::LibraryPtr library_;
  bool libraryTried_ = false;
  bool threadStarted_ = false;  // start() ran: this is the worker's thread
  io_uring ring_{};
  bool ringReady_ = false;
  ring::Submitter submitter_;  // every SQE of ring_ comes from here
  std::unique_ptr<WorkerGeneration> current_;
  std::vector<std::unique_ptr<WorkerGeneration>> retired_;  // with sessions still open
  std::vector<std::unique_ptr<Session[]>> chunks_;
  uint32_t slotsInUse_ = 0;   // high-water mark of slots ever handed out
  uint32_t freeHead_ = kNoSlot;
  uint32_t liveSessions_ = 0; // not Free
  PipePool pipes_;
  BufferRing buffers_;
  ReceivedQueues received_;  // multishot completions flows took no time for yet
  // The kernel refused a multishot receive (-EINVAL: before Linux 6.0, which
  // has buffer rings from 5.19): every flow receives single-shot from then.
  bool multishotRefused_ = false;
  tls::BlockPool blocks_;
  // The kernel takes TLS transmit keys (lb/tls/ktls.h): client legs offer
  // OpenSSL to hand them over.
  bool offerKernelTx_ = false;
  std::vector<std::unique_ptr<SessionTls>> spareTls_;
  AccessLog accessLog_;
  WorkerStats stats_;
  uint64_t nowNs_ = 0;

  // Listening sockets. A slot is stable for as long as an accept on it may
  // complete: accept user_data carries the slot index.
  // A slot that stops accepting (open = false) keeps its socket until its
  // accept's last completion (armed = false), so no accept is in flight on
  // a closed descriptor.
  struct ListenerSlot {
    int fd = -1;
    uint32_t listener = 0;  // index in the current runtime's listeners
    bool open = false;      // accepting for the current runtime
    bool armed = false;     // an accept or its retry timer is in flight
    // Closed by a stop: a connection its cancelled accept still hands over
    // was taken from the queue already and is served like any other; and
    // once the accept has ended, the queue is drained (drainAccept).
    bool servesLate = false;
    bool draining = false;  // a drain accept is in flight (armed stays set)
    uint32_t drained = 0;   // connections the drain took
  };
  std::vector<ListenerSlot> listenerSlots_;
  std::mutex pendingMutex_;
  std::shared_ptr<const Runtime> pendingRuntime_;  // guarded by pendingMutex_
  std::map<std::string, int> pendingFds_;          // guarded by pendingMutex_
  __kernel_timespec acceptRetryDelay_{0, 50 * 1000 * 1000};
  // How long a flow waits before trying again when this host ran out of
  // something it needs (no ring buffer and no pipe, no memory for a send).
  __kernel_timespec localErrorPause_{0, 10 * 1000 * 1000};
  std::array<LogThrottle, static_cast<size_t>(LocalError::Count)> localErrorLog_;
  LogThrottle acceptErrorLog_;
  int wakeFd_ = -1;
  uint64_t wakeValue_ = 0;
  std::atomic<bool> stopRequested_{false};
  std::atomic<bool> acceptsReleased_{false};
  bool acceptsHeld_ = false;  // WorkerOptions::holdAccepts until releaseAccepts() is seen
  bool stopping_ = false;
  uint64_t deadlineNs_ = 0;
  bool deadlinePassed_ = false;
  __kernel_timespec tick_{};
  uint64_t minIdleNs_ = 0;
};

}  // namespace lb
