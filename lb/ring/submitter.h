#pragma once
// The one way ringlb talks to an io_uring it owns: an SQE that is never
// null, a loop step that submits and waits, and what to do when the kernel
// says no. Every ring owner (each worker, the control thread with its admin
// endpoint and prober) has one Submitter for its ring.
//
// When the submission queue is full, getSqe() submits what is queued. If
// the kernel refuses for now (-EBUSY, -EAGAIN) the submitter reaps
// completions to make progress, waiting for one if none is ready, and
// retries: it never spins without reaping. Reaped completions go to a
// deferred queue that the owner's loop hands out first at its next drain(),
// never to a handler in the middle of the caller's own work (which may be
// halfway through changing the very state a completion would touch).
// -EBADR (the kernel dropped completions under memory pressure) is counted
// and logged; the operations whose completions were lost are ended by their
// own timeouts. Any other error means the ring is unusable: the process logs
// an error line and exits with status 1 at once, so the service manager
// restarts it, rather than live on half dead (a worker whose listening
// socket nobody accepts from, a control thread that ignores SIGTERM).
//
// A linked chain (IOSQE_IO_LINK on every SQE but its last) is never split
// across two submissions: when the queue fills in the middle of one, the
// SQEs already taken for it are held back from that flush and go with the
// rest of their chain (connect + its linked timeout stay linked).

#include <liburing.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lb::ring {

enum class SubmitError : uint8_t {
  Interrupted,        // EINTR: nothing happened; try again
  Busy,               // EBUSY, EAGAIN: reap completions (or wait for one), then retry
  CompletionsDropped, // EBADR: completions were lost; count it and carry on
  Fatal,              // anything else: the ring cannot be used any more
};

// What a negative result of io_uring_submit*/io_uring_enter means. `error`
// is -errno.
SubmitError classifySubmitError(int error);

// Logs "<who>: <call>: <error>; exiting" and ends the process with status 1
// without running destructors (other threads still use what they would free).
[[noreturn]] void exitOnRingError(std::string_view who, std::string_view call, int error);

class Submitter {
 public:
  // `who` names the owner in log lines ("worker 3", "control").
  Submitter(io_uring* ring, std::string who) : ring_(ring), who_(std::move(who)) {}
  Submitter(const Submitter&) = delete;
  Submitter& operator=(const Submitter&) = delete;

  // An SQE to fill; never null (a broken ring ends the process).
  io_uring_sqe* getSqe();
  // The loop's step: submits what is queued and waits for a completion,
  // unless completions are already waiting in the deferred queue.
  void submitAndWait();
  // Submits what is queued without waiting (start-up, tests).
  void submit();
  // Hands every completion to `handle(const io_uring_cqe&)`: the deferred
  // ones first (they completed earlier), then those in the ring, until both
  // are empty. Each is copied and released to the kernel before it is
  // handled, so handlers may submit. Returns how many were handled.
  template <typename Handle>
  unsigned drain(Handle&& handle);

  // Times the kernel reported dropped completions (-EBADR). Any thread.
  uint64_t droppedCompletionEvents() const { return droppedEvents_.load(std::memory_order_relaxed); }
  // Times a full submission queue forced a submit from getSqe().
  uint64_t fullQueueFlushes() const { return fullQueueFlushes_; }
  size_t deferred() const { return deferred_.size(); }

 private:
  void flushForRoom();
  unsigned openChainLength() const;
  // Handles a failed submit; returns after whatever recovery is possible.
  void recover(int error, std::string_view call);
  // Moves every completion the kernel has into deferred_; how many.
  unsigned reap();
  void waitForCompletion();

  io_uring* ring_;
  std::string who_;
  std::vector<io_uring_cqe> deferred_;
  std::vector<io_uring_cqe> handing_;  // deferred_ being handed out by drain()
  std::atomic<uint64_t> droppedEvents_{0};  // read by the metrics (control thread)
  uint64_t fullQueueFlushes_ = 0;
};

template <typename Handle>
unsigned Submitter::drain(Handle&& handle) {
  constexpr unsigned kBatch = 256;
  io_uring_cqe* batch[kBatch];
  io_uring_cqe copies[kBatch];
  unsigned handled = 0;
  for (;;) {
    if (!deferred_.empty()) {
      // Handlers may reap more into deferred_ while these are handed out.
      handing_.swap(deferred_);
      for (const io_uring_cqe& cqe : handing_) handle(cqe);
      handled += static_cast<unsigned>(handing_.size());
      handing_.clear();
      continue;
    }
    unsigned count = io_uring_peek_batch_cqe(ring_, batch, kBatch);
    if (count == 0) return handled;
    // Copy and release the whole batch first: a handler that reaps (from
    // getSqe) must not see these entries again.
    for (unsigned i = 0; i < count; ++i) copies[i] = *batch[i];
    io_uring_cq_advance(ring_, count);
    for (unsigned i = 0; i < count; ++i) handle(copies[i]);
    handled += count;
  }
}

}  // namespace lb::ring
