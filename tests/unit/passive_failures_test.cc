// Passive failure accounting: a reader comparing snapshots sees every reset,
// also when failures climbed past the count it saw before.

#include "health/passive_failures.h"

#include <gtest/gtest.h>

namespace health {
namespace {

TEST(PassiveFailures, CountsFailuresSinceTheLastSnapshot) {
  PassiveFailureCounter counter;
  uint64_t seen = counter.snapshot();
  counter.recordFailure();
  counter.recordFailure();
  PassiveChange change = passiveChange(seen, counter.snapshot());
  EXPECT_FALSE(change.reset);
  EXPECT_EQ(change.failures, 2u);
  seen = counter.snapshot();
  EXPECT_EQ(passiveChange(seen, counter.snapshot()).failures, 0u);
}

TEST(PassiveFailures, AResetIsSeenAfterFailuresClimbPastTheOldCount) {
  PassiveFailureCounter counter;
  counter.recordFailure();
  counter.recordFailure();
  uint64_t seen = counter.snapshot();  // 2 failures reported
  counter.recordSuccess();
  for (int i = 0; i < 5; ++i) counter.recordFailure();
  PassiveChange change = passiveChange(seen, counter.snapshot());
  EXPECT_TRUE(change.reset);
  EXPECT_EQ(change.failures, 5u);  // all five came after the success
}

TEST(PassiveFailures, AResetToTheSameCountIsSeen) {
  PassiveFailureCounter counter;
  counter.recordFailure();
  uint64_t seen = counter.snapshot();
  counter.recordSuccess();
  counter.recordFailure();
  PassiveChange change = passiveChange(seen, counter.snapshot());
  EXPECT_TRUE(change.reset);
  EXPECT_EQ(change.failures, 1u);
}

TEST(PassiveFailures, SuccessesWithoutFailuresChangeNothing) {
  PassiveFailureCounter counter;
  uint64_t seen = counter.snapshot();
  counter.recordSuccess();
  counter.recordSuccess();
  EXPECT_EQ(counter.snapshot(), seen);
  PassiveChange change = passiveChange(seen, counter.snapshot());
  EXPECT_FALSE(change.reset);
  EXPECT_EQ(change.failures, 0u);
}

TEST(PassiveFailures, ResetWithNoFailuresAfterIt) {
  PassiveFailureCounter counter;
  counter.recordFailure();
  uint64_t seen = counter.snapshot();
  counter.recordSuccess();
  PassiveChange change = passiveChange(seen, counter.snapshot());
  EXPECT_TRUE(change.reset);
  EXPECT_EQ(change.failures, 0u);
}

}  // namespace
}  // namespace health
