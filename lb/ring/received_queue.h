#pragma once
// What a flow's multishot receive delivered while the flow was busy sending
// what it had received before: the completions, in the order they came.
// Each is a filled ring buffer, except possibly the last, which ended the
// receive (the source's FIN, an error, -ENOBUFS, or the cancel that
// stopped it).
//
// A worker's queues are linked through the ring buffers' ids: the
// bookkeeping costs a few bytes per flow (ReceivedQueue) and one link per
// ring buffer, however many flows queue.
//
// Invariants (checked): a buffer is in at most one queue, only while it is
// out of the ring, i.e. owned by that flow; nothing follows an ending
// completion, since the receive that posted it is over.
#include <liburing.h>

#include <cstdint>
#include <vector>

#include "lb/check.h"

namespace lb {

struct ReceivedQueue {
  int16_t head = -1;  // ring buffer id, or -1
  int16_t tail = -1;
  uint16_t buffers = 0;
  bool ended = false;  // the last completion queued ended the receive
  int32_t endResult = 0;

  bool empty() const { return buffers == 0 && !ended; }
};

// A completion as io_uring posted it: its result and its flags (which carry
// the buffer id and IORING_CQE_F_SOCK_NONEMPTY).
struct ReceivedCompletion {
  int32_t result = 0;
  uint32_t flags = 0;
};

class ReceivedQueues {
 public:
  // The ring's buffer ids are 0 .. bufferCount-1 (at most 32,768, io_uring's
  // own bound on a buffer ring).
  void setBufferCount(unsigned bufferCount) {
    RINGLB_ENFORCE(bufferCount <= 32768);
    links_.assign(bufferCount, Link{});
  }

  // A completion with a buffer (result > 0) joins the queue's buffers;
  // any other ends it.
  void push(ReceivedQueue& queue, ReceivedCompletion completion) {
    RINGLB_CHECK(!queue.ended);
    if (!(completion.flags & IORING_CQE_F_BUFFER) || completion.result <= 0) {
      RINGLB_CHECK(!(completion.flags & IORING_CQE_F_BUFFER));
      queue.ended = true;
      queue.endResult = completion.result;
      return;
    }
    auto id = static_cast<uint16_t>(completion.flags >> IORING_CQE_BUFFER_SHIFT);
    RINGLB_ENFORCE(id < links_.size());
    Link& link = links_[id];
    RINGLB_ENFORCE(!link.queued);
    link = Link{static_cast<uint32_t>(completion.result), -1, true,
                (completion.flags & IORING_CQE_F_SOCK_NONEMPTY) != 0};
    if (queue.tail >= 0)
      links_[static_cast<uint16_t>(queue.tail)].next = static_cast<int16_t>(id);
    else
      queue.head = static_cast<int16_t>(id);
    queue.tail = static_cast<int16_t>(id);
    ++queue.buffers;
  }

  // The oldest completion, rebuilt as it was posted. Only when !empty().
  ReceivedCompletion pop(ReceivedQueue& queue) {
    RINGLB_ENFORCE(!queue.empty());
    if (queue.buffers == 0) {
      queue.ended = false;
      return ReceivedCompletion{queue.endResult, 0};
    }
    auto id = static_cast<uint16_t>(queue.head);
    Link& link = links_[id];
    queue.head = link.next;
    if (queue.head < 0) queue.tail = -1;
    --queue.buffers;
    link.queued = false;
    uint32_t flags = IORING_CQE_F_BUFFER | (uint32_t{id} << IORING_CQE_BUFFER_SHIFT) |
                     (link.sourceNonEmpty ? IORING_CQE_F_SOCK_NONEMPTY : 0u);
    return ReceivedCompletion{static_cast<int32_t>(link.length), flags};
  }

 private:
  struct Link {
    uint32_t length = 0;
    int16_t next = -1;
    bool queued = false;
    bool sourceNonEmpty = false;
  };
  std::vector<Link> links_;  // by ring buffer id
};

}  // namespace lb
