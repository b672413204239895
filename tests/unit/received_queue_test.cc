// The queues a multishot receive fills while its flow is busy: order,
// the ending completion, independence of flows sharing the links.
#include "lb/ring/received_queue.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace lb {
namespace {

ReceivedCompletion filled(uint16_t id, int32_t length, bool more = false) {
  return {length, IORING_CQE_F_BUFFER | (uint32_t{id} << IORING_CQE_BUFFER_SHIFT) |
                      (more ? IORING_CQE_F_SOCK_NONEMPTY : 0u)};
}

uint16_t bufferOf(ReceivedCompletion c) { return static_cast<uint16_t>(c.flags >> IORING_CQE_BUFFER_SHIFT); }

TEST(ReceivedQueues, GivesBackBuffersInArrivalOrderThenTheEnd) {
  ReceivedQueues queues;
  queues.setBufferCount(16);
  ReceivedQueue q;
  EXPECT_TRUE(q.empty());
  queues.push(q, filled(7, 100, true));
  queues.push(q, filled(2, 16384));
  queues.push(q, filled(11, 5));
  queues.push(q, {0, 0});  // the FIN
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.buffers, 3u);

  ReceivedCompletion first = queues.pop(q);
  EXPECT_EQ(first.result, 100);
  EXPECT_EQ(bufferOf(first), 7);
  EXPECT_TRUE(first.flags & IORING_CQE_F_BUFFER);
  EXPECT_TRUE(first.flags & IORING_CQE_F_SOCK_NONEMPTY);
  ReceivedCompletion second = queues.pop(q);
  EXPECT_EQ(second.result, 16384);
  EXPECT_EQ(bufferOf(second), 2);
  EXPECT_FALSE(second.flags & IORING_CQE_F_SOCK_NONEMPTY);
  EXPECT_EQ(bufferOf(queues.pop(q)), 11);
  ReceivedCompletion end = queues.pop(q);
  EXPECT_EQ(end.result, 0);
  EXPECT_FALSE(end.flags & IORING_CQE_F_BUFFER);
  EXPECT_TRUE(q.empty());
}

TEST(ReceivedQueues, FlowsInterleaveWithoutMixing) {
  ReceivedQueues queues;
  queues.setBufferCount(8);
  ReceivedQueue a, b;
  queues.push(a, filled(0, 1));
  queues.push(b, filled(1, 2));
  queues.push(a, filled(2, 3));
  queues.push(b, filled(3, 4));
  queues.push(b, {-ECONNRESET, 0});
  EXPECT_EQ(queues.pop(a).result, 1);
  EXPECT_EQ(queues.pop(b).result, 2);
  EXPECT_EQ(queues.pop(b).result, 4);
  EXPECT_EQ(queues.pop(a).result, 3);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(queues.pop(b).result, -ECONNRESET);
  EXPECT_TRUE(b.empty());
}

TEST(ReceivedQueues, ABufferPoppedMayBeQueuedAgainByAnotherFlow) {
  ReceivedQueues queues;
  queues.setBufferCount(4);
  ReceivedQueue a, b;
  queues.push(a, filled(3, 10));
  EXPECT_EQ(bufferOf(queues.pop(a)), 3);
  queues.push(b, filled(3, 20));  // the kernel handed buffer 3 out again
  queues.push(b, filled(0, 30));
  ReceivedCompletion again = queues.pop(b);
  EXPECT_EQ(bufferOf(again), 3);
  EXPECT_EQ(again.result, 20);
  EXPECT_EQ(bufferOf(queues.pop(b)), 0);
  EXPECT_TRUE(a.empty());
  EXPECT_TRUE(b.empty());
}

TEST(ReceivedQueues, AnEndAloneIsQueuedToo) {
  ReceivedQueues queues;
  queues.setBufferCount(4);
  ReceivedQueue q;
  queues.push(q, {-ECANCELED, 0});
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.buffers, 0u);
  EXPECT_EQ(queues.pop(q).result, -ECANCELED);
  EXPECT_TRUE(q.empty());
}

// Always checked: one buffer in two queues would hand one session's bytes
// to another.
TEST(ReceivedQueuesDeath, ABufferIsInOneQueueOnly) {
  ReceivedQueues queues;
  queues.setBufferCount(4);
  ReceivedQueue a, b;
  queues.push(a, filled(1, 10));
  EXPECT_DEATH(queues.push(b, filled(1, 10)), "invariant broken at .*received_queue.h:[0-9]+: !link.queued");
}

#ifndef NDEBUG
TEST(ReceivedQueuesDeath, NothingFollowsTheEnd) {
  ReceivedQueues queues;
  queues.setBufferCount(4);
  ReceivedQueue q;
  queues.push(q, {0, 0});
  EXPECT_DEATH(queues.push(q, filled(1, 10)), "invariant broken at .*: !queue.ended");
}
#endif

}  // namespace
}  // namespace lb
