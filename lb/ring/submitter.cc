#include "lb/ring/submitter.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "lb/log.h"

namespace lb::ring {
namespace {

// How long a refused submit waits for a completion when none is ready: a
// pause while the kernel finds memory, not a spin.
constexpr __kernel_timespec kBusyWait{0, 10 * 1000 * 1000};

}  // namespace

SubmitError classifySubmitError(int error) {
  switch (error) {
    case -EINTR: return SubmitError::Interrupted;
    case -EBUSY:
    case -EAGAIN: return SubmitError::Busy;
    case -EBADR: return SubmitError::CompletionsDropped;
    default: return SubmitError::Fatal;
  }
}

void exitOnRingError(std::string_view who, std::string_view call, int error) {
  log::error("{}: {}: {}; exiting so that the service manager restarts ringlb", who, call,
             std::strerror(-error));
  _exit(1);
}

io_uring_sqe* Submitter::getSqe() {
  for (;;) {
    if (io_uring_sqe* sqe = io_uring_get_sqe(ring_)) return sqe;
    flushForRoom();
  }
}

// SQEs at the tail of the queue that belong to a chain still being built:
// each has IOSQE_IO_LINK (or HARDLINK) set, so its successor is yet to come.
unsigned Submitter::openChainLength() const {
  const io_uring_sq& sq = ring_->sq;
  unsigned queued = sq.sqe_tail - sq.sqe_head;
  unsigned shift = (ring_->flags & IORING_SETUP_SQE128) ? 1 : 0;  // 128-byte SQEs take two slots
  unsigned length = 0;
  while (length < queued) {
    const io_uring_sqe& sqe = sq.sqes[((sq.sqe_tail - 1 - length) & sq.ring_mask) << shift];
    if (!(sqe.flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK))) break;
    ++length;
  }
  return length == queued ? 0 : length;  // a chain as long as the queue must go as it is
}

// The queue is full. Submit everything but an open chain: holding its SQEs
// back is moving liburing's private tail over them for this one flush, and
// they stay where they are, next in line, for the flush that completes them.
void Submitter::flushForRoom() {
  ++fullQueueFlushes_;
  unsigned held = openChainLength();
  ring_->sq.sqe_tail -= held;
  int result = io_uring_submit(ring_);
  ring_->sq.sqe_tail += held;
  if (result < 0) return recover(result, "io_uring_submit");
  if (io_uring_sq_space_left(ring_) > 0) return;
  // The kernel took nothing (it stops at a request it could not allocate):
  // make progress on completions before asking again.
  if (reap() == 0) waitForCompletion();
}

void Submitter::submit() {
  int result = io_uring_submit(ring_);
  if (result < 0) recover(result, "io_uring_submit");
}

void Submitter::submitAndWait() {
  int result = deferred_.empty() ? io_uring_submit_and_wait(ring_, 1) : io_uring_submit(ring_);
  if (result < 0) recover(result, deferred_.empty() ? "io_uring_submit_and_wait" : "io_uring_submit");
}

void Submitter::recover(int error, std::string_view call) {
  switch (classifySubmitError(error)) {
    case SubmitError::Interrupted: return;
    case SubmitError::Busy:
      if (reap() == 0) waitForCompletion();
      return;
    case SubmitError::CompletionsDropped: {
      uint64_t times = droppedEvents_.fetch_add(1, std::memory_order_relaxed) + 1;
      log::error("{}: {}: the kernel dropped completions under memory pressure ({} times so far); "
                 "operations that lost theirs end at their timeouts",
                 who_, call, times);
      return;
    }
    case SubmitError::Fatal: exitOnRingError(who_, call, error);
  }
}

unsigned Submitter::reap() {
  // With DEFER_TASKRUN completions are only posted when the ring is entered
  // for events; this also flushes an overflowed completion list.
  int result = io_uring_get_events(ring_);
  if (result < 0 && classifySubmitError(result) == SubmitError::Fatal)
    exitOnRingError(who_, "io_uring_get_events", result);
  unsigned reaped = 0;
  io_uring_cqe* cqe = nullptr;
  while (io_uring_peek_cqe(ring_, &cqe) == 0) {
    deferred_.push_back(*cqe);
    io_uring_cqe_seen(ring_, cqe);
    ++reaped;
  }
  return reaped;
}

void Submitter::waitForCompletion() {
  io_uring_cqe* cqe = nullptr;
  __kernel_timespec wait = kBusyWait;
  int result = io_uring_wait_cqe_timeout(ring_, &cqe, &wait);
  if (result == 0 || result == -ETIME) {
    reap();
    return;
  }
  if (classifySubmitError(result) == SubmitError::Fatal)
    exitOnRingError(who_, "io_uring_wait_cqe_timeout", result);
}

}  // namespace lb::ring
