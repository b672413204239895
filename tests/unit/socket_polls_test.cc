// SocketPolls: the resolver's polls on c-ares's sockets. Every poll added
// and removed is recorded; stale completions (a closed socket, a reused
// fd, a replaced poll) must never be applied.

#include "lb/discovery/socket_polls.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <vector>

namespace lb::discovery {
namespace {

struct Added {
  int fd;
  unsigned mask;
  uint64_t userData;
};

class SocketPollsTest : public ::testing::Test {
 protected:
  std::vector<Added> added;
  std::vector<uint64_t> removed;
  SocketPolls polls{[this](int fd, unsigned mask, uint64_t data) { added.push_back({fd, mask, data}); },
                    [this](uint64_t data) { removed.push_back(data); }};
};

TEST_F(SocketPollsTest, AWatchedSocketIsPolledOnceAndAgainAfterProcessing) {
  polls.set(7, true, false);
  ASSERT_EQ(added.size(), 1u);
  EXPECT_EQ(added[0].fd, 7);
  EXPECT_EQ(added[0].mask, unsigned{POLLIN});
  ring::Tag tag = ring::unpack(added[0].userData);
  EXPECT_EQ(tag.owner, ring::Owner::Discovery);
  EXPECT_EQ(tag.slot, 7u);
  polls.set(7, true, false);  // the same interest: no second poll
  EXPECT_EQ(added.size(), 1u);

  auto ready = polls.onCompletion(added[0].userData, POLLIN);
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->fd, 7);
  EXPECT_TRUE(ready->read);
  EXPECT_FALSE(ready->write);
  EXPECT_EQ(polls.inFlight(), 0u);
  EXPECT_FALSE(polls.onCompletion(added[0].userData, POLLIN)) << "one completion per poll";
  polls.rearm(7);
  ASSERT_EQ(added.size(), 2u);
  EXPECT_NE(added[1].userData, added[0].userData);
  polls.rearm(7);  // already in flight
  EXPECT_EQ(added.size(), 2u);
  EXPECT_TRUE(removed.empty());
}

TEST_F(SocketPollsTest, ClosingASocketRemovesItsPollAndDropsItsCompletion) {
  polls.set(7, true, false);
  polls.set(7, false, false);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], added[0].userData);
  EXPECT_EQ(polls.watched(), 0u);
  EXPECT_FALSE(polls.onCompletion(added[0].userData, -ECANCELED));
  EXPECT_FALSE(polls.onCompletion(added[0].userData, POLLIN));
  polls.rearm(7);  // c-ares closed it while processing: nothing to poll
  EXPECT_EQ(added.size(), 1u);
}

TEST_F(SocketPollsTest, AReusedFdNeverGetsTheOldSocketsCompletion) {
  polls.set(7, true, false);
  polls.set(7, false, false);
  polls.set(7, true, false);  // a new socket, the same number
  ASSERT_EQ(added.size(), 2u);
  EXPECT_EQ(added[1].fd, 7);
  EXPECT_NE(added[1].userData, added[0].userData);
  EXPECT_FALSE(polls.onCompletion(added[0].userData, POLLIN));  // the old socket's poll
  EXPECT_EQ(polls.inFlight(), 1u);                            // the new one's still stands
  EXPECT_TRUE(polls.onCompletion(added[1].userData, POLLIN));
}

TEST_F(SocketPollsTest, ANewInterestReplacesThePollInFlight) {
  polls.set(9, false, true);  // a TCP connect: writable
  polls.set(9, true, true);
  ASSERT_EQ(added.size(), 2u);
  EXPECT_EQ(added[1].mask, unsigned{POLLIN | POLLOUT});
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], added[0].userData);
  EXPECT_FALSE(polls.onCompletion(added[0].userData, POLLOUT));
  auto ready = polls.onCompletion(added[1].userData, POLLOUT);
  ASSERT_TRUE(ready);
  EXPECT_FALSE(ready->read);
  EXPECT_TRUE(ready->write);
}

TEST_F(SocketPollsTest, ErrorsAreReadyInTheWantedDirections) {
  polls.set(3, true, false);
  auto ready = polls.onCompletion(added[0].userData, POLLERR);
  ASSERT_TRUE(ready);
  EXPECT_TRUE(ready->read);
  EXPECT_FALSE(ready->write);
  polls.set(3, true, true);  // unarmed: a poll with the new interest
  ASSERT_EQ(added.size(), 2u);
  ready = polls.onCompletion(added[1].userData, -EBADF);
  ASSERT_TRUE(ready);
  EXPECT_TRUE(ready->read);
  EXPECT_TRUE(ready->write);
}

TEST_F(SocketPollsTest, OtherOwnersAndOpsAreNotPolls) {
  polls.set(4, true, false);
  ring::Tag tag = ring::unpack(added[0].userData);
  tag.owner = ring::Owner::Prober;
  EXPECT_FALSE(polls.onCompletion(ring::pack(tag), POLLIN));
  tag.owner = ring::Owner::Discovery;
  tag.op = 2;
  EXPECT_FALSE(polls.onCompletion(ring::pack(tag), POLLIN));
  EXPECT_FALSE(polls.onCompletion(0, POLLIN));
  EXPECT_EQ(polls.inFlight(), 1u);
}

TEST_F(SocketPollsTest, AnFdBeyondTheSlotFieldIsNotPolled) {
  polls.set(static_cast<int>(ring::kMaxSlot) + 1, true, false);
  EXPECT_TRUE(added.empty());
  polls.set(static_cast<int>(ring::kMaxSlot) + 1, false, false);
  EXPECT_TRUE(removed.empty());
}

}  // namespace
}  // namespace lb::discovery
