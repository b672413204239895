// The shared io_uring plumbing: the submit-error and signalfd-read decisions
// as pure functions, and the get-an-SQE helper on a real (small) ring. No
// sockets, no sleeping: NOPs complete at once.
#include "lb/ring/submitter.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <map>

#include "lb/control.h"

namespace lb::ring {
namespace {

// Bug 6: a worker left its loop on -EBADR (recoverable) and on every error
// it did not list; the decision is now one function.
TEST(SubmitError, RecoversWhereTheKernelAllowsAndOnlyThere) {
  EXPECT_EQ(classifySubmitError(-EINTR), SubmitError::Interrupted);
  EXPECT_EQ(classifySubmitError(-EBUSY), SubmitError::Busy);
  EXPECT_EQ(classifySubmitError(-EAGAIN), SubmitError::Busy);
  EXPECT_EQ(classifySubmitError(-EBADR), SubmitError::CompletionsDropped);
  for (int fatal : {-EBADF, -EFAULT, -EINVAL, -ENXIO, -EOPNOTSUPP, -EOWNERDEAD, -ENOMEM})
    EXPECT_EQ(classifySubmitError(fatal), SubmitError::Fatal) << fatal;
}

TEST(SignalRead, ActsOnlyOnAWholeSiginfo) {
  constexpr int kWhole = sizeof(signalfd_siginfo);
  EXPECT_EQ(classifySignalRead(kWhole), SignalRead::Signal);
  EXPECT_EQ(classifySignalRead(0), SignalRead::Retry);
  EXPECT_EQ(classifySignalRead(kWhole - 1), SignalRead::Retry);
  EXPECT_EQ(classifySignalRead(-EINTR), SignalRead::Retry);
  EXPECT_EQ(classifySignalRead(-EAGAIN), SignalRead::Retry);
  EXPECT_EQ(classifySignalRead(-EBADF), SignalRead::Broken);
  EXPECT_EQ(classifySignalRead(-EINVAL), SignalRead::Broken);
}

class SmallRing : public ::testing::Test {
 protected:
  static constexpr unsigned kEntries = 8;
  void SetUp() override { ASSERT_EQ(io_uring_queue_init(kEntries, &ring_, 0), 0); }
  void TearDown() override { io_uring_queue_exit(&ring_); }

  // Completions by user_data until `count` have arrived (each NOP completes
  // at once; the bound only stops a broken test from hanging).
  std::map<uint64_t, int> collect(Submitter& submitter, size_t count) {
    std::map<uint64_t, int> results;
    for (int round = 0; round < 1000 && results.size() < count; ++round) {
      submitter.submitAndWait();
      submitter.drain([&](const io_uring_cqe& cqe) {
        EXPECT_TRUE(results.emplace(cqe.user_data, cqe.res).second) << "twice: " << cqe.user_data;
      });
    }
    return results;
  }

  io_uring ring_{};
};

TEST_F(SmallRing, AFullQueueIsSubmittedAndNothingIsLost) {
  Submitter submitter(&ring_, "test");
  for (uint64_t i = 1; i <= kEntries; ++i) {
    io_uring_sqe* sqe = submitter.getSqe();
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, i);
  }
  EXPECT_EQ(submitter.fullQueueFlushes(), 0u);
  io_uring_sqe* extra = submitter.getSqe();
  ASSERT_NE(extra, nullptr);
  EXPECT_EQ(submitter.fullQueueFlushes(), 1u);
  io_uring_prep_nop(extra);
  io_uring_sqe_set_data64(extra, kEntries + 1);
  std::map<uint64_t, int> results = collect(submitter, kEntries + 1);
  ASSERT_EQ(results.size(), kEntries + 1);
  for (uint64_t i = 1; i <= kEntries + 1; ++i) EXPECT_EQ(results[i], 0) << i;
}

// Many more completions than the completion queue holds, none reaped by the
// caller in between: whatever the kernel does with the excess (its overflow
// list, EBUSY), every completion arrives exactly once.
TEST_F(SmallRing, CompletionsBeyondTheQueueAreAllDelivered) {
  Submitter submitter(&ring_, "test");
  constexpr uint64_t kTotal = 20 * kEntries;  // the CQ holds 2 * kEntries
  for (uint64_t i = 1; i <= kTotal; ++i) {
    io_uring_sqe* sqe = submitter.getSqe();
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, i);
  }
  EXPECT_GE(submitter.fullQueueFlushes(), kTotal / kEntries - 1);
  std::map<uint64_t, int> results = collect(submitter, kTotal);
  ASSERT_EQ(results.size(), kTotal);
  EXPECT_EQ(results.begin()->first, 1u);
  EXPECT_EQ(results.rbegin()->first, kTotal);
  EXPECT_EQ(submitter.droppedCompletionEvents(), 0u);
}

// A connect and its linked timeout are taken with two getSqe() calls; a full
// queue between them used to submit the connect alone, and the timeout,
// linked to nothing, failed with EINVAL (a connect with no deadline).
TEST_F(SmallRing, AFullQueueNeverSplitsALinkedPair) {
  Submitter submitter(&ring_, "test");
  for (uint64_t i = 1; i < kEntries; ++i) {
    io_uring_sqe* sqe = submitter.getSqe();
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, i);
  }
  io_uring_sqe* head = submitter.getSqe();
  io_uring_prep_nop(head);
  io_uring_sqe_set_data64(head, 100);
  head->flags |= IOSQE_IO_LINK;
  io_uring_sqe* timeout = submitter.getSqe();  // the queue is full here
  EXPECT_EQ(submitter.fullQueueFlushes(), 1u);
  __kernel_timespec never{3600, 0};
  io_uring_prep_link_timeout(timeout, &never, 0);
  io_uring_sqe_set_data64(timeout, 101);
  std::map<uint64_t, int> results = collect(submitter, kEntries + 1);
  ASSERT_EQ(results.size(), kEntries + 1);
  EXPECT_EQ(results[100], 0);
  EXPECT_EQ(results[101], -ECANCELED);  // linked, and cancelled when the NOP completed
}

// Bug 6: a ring the kernel no longer accepts ends the process at once with
// status 1 and an error line, instead of leaving a thread that serves nothing.
TEST(SubmitterDeathTest, ABrokenRingExitsWithStatusOne) {
  EXPECT_EXIT(
      {
        io_uring ring{};
        if (io_uring_queue_init(4, &ring, 0) != 0) _exit(3);
        Submitter submitter(&ring, "worker 7");
        for (int i = 0; i < 4; ++i) io_uring_prep_nop(submitter.getSqe());
        ::close(ring.ring_fd);
        submitter.getSqe();  // full: must submit, and cannot
        _exit(0);
      },
      ::testing::ExitedWithCode(1), "worker 7: io_uring_submit: Bad file descriptor; exiting");
}

TEST(SubmitterDeathTest, ABrokenRingInTheLoopExitsWithStatusOne) {
  EXPECT_EXIT(
      {
        io_uring ring{};
        if (io_uring_queue_init(4, &ring, 0) != 0) _exit(3);
        Submitter submitter(&ring, "control");
        io_uring_prep_nop(submitter.getSqe());
        ::close(ring.ring_fd);
        submitter.submitAndWait();
        _exit(0);
      },
      ::testing::ExitedWithCode(1), "control: io_uring_submit_and_wait: Bad file descriptor; exiting");
}

}  // namespace
}  // namespace lb::ring
