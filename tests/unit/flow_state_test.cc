#include "lb/flow_state.h"

#include <gtest/gtest.h>

#include "lb/check.h"

#include <array>

namespace lb {
namespace {

constexpr std::array<FlowWait, 6> kOperations = {FlowWait::Receive, FlowWait::Send, FlowWait::PollIn,
                                                 FlowWait::PollOut, FlowWait::Pause, FlowWait::Output};

TEST(FlowState, StartsWaitingForNothingWithTheStreamOpen) {
  FlowState f;
  EXPECT_EQ(f.wait(), FlowWait::Nothing);
  EXPECT_EQ(f.end(), FlowEnd::Open);
  EXPECT_TRUE(f.idle());
  EXPECT_TRUE(f.canStart());
  EXPECT_FALSE(f.sourceEnded());
  EXPECT_FALSE(f.finished());
}

TEST(FlowState, EveryOperationStartsFromNothingAndCompletesBackToNothing) {
  for (FlowWait op : kOperations) {
    FlowState f;
    ASSERT_TRUE(f.start(op)) << toString(op);
    EXPECT_EQ(f.wait(), op);
    EXPECT_FALSE(f.canStart());
    ASSERT_TRUE(f.complete(op)) << toString(op);
    EXPECT_TRUE(f.idle());
  }
}

TEST(FlowState, AtMostOneOperationInFlight) {
  for (FlowWait first : kOperations)
    for (FlowWait second : kOperations) {
      FlowState f;
      ASSERT_TRUE(f.start(first));
      EXPECT_FALSE(f.start(second)) << toString(first) << " then " << toString(second);
      EXPECT_EQ(f.wait(), first) << "a refused start changes nothing";
    }
}

TEST(FlowState, ACompletionMustMatchTheOperationInFlight) {
  FlowState f;
  EXPECT_FALSE(f.complete(FlowWait::Receive)) << "nothing was in flight";
  ASSERT_TRUE(f.start(FlowWait::Send));
  EXPECT_FALSE(f.complete(FlowWait::Receive));
  EXPECT_FALSE(f.complete(FlowWait::Nothing));
  EXPECT_EQ(f.wait(), FlowWait::Send);
  EXPECT_TRUE(f.complete(FlowWait::Send));
  EXPECT_FALSE(f.complete(FlowWait::Send)) << "a completion arrives once";
}

TEST(FlowState, NothingIsNotAnOperation) {
  FlowState f;
  EXPECT_FALSE(f.start(FlowWait::Nothing));
  EXPECT_TRUE(f.idle());
}

TEST(FlowState, TheSourceEndsOnce) {
  FlowState f;
  ASSERT_TRUE(f.endSource());
  EXPECT_TRUE(f.sourceEnded());
  EXPECT_FALSE(f.finished());
  EXPECT_FALSE(f.endSource());
  EXPECT_EQ(f.end(), FlowEnd::SourceEnded);
}

TEST(FlowState, FinishNeedsTheSourceEndedAndNothingInFlight) {
  FlowState open;
  EXPECT_FALSE(open.finish()) << "FIN passed on before the source sent one";
  EXPECT_EQ(open.end(), FlowEnd::Open);

  FlowState sending;
  ASSERT_TRUE(sending.start(FlowWait::Send));
  ASSERT_TRUE(sending.endSource());  // bytes read before the FIN are still being sent
  EXPECT_FALSE(sending.finish());
  ASSERT_TRUE(sending.complete(FlowWait::Send));
  EXPECT_TRUE(sending.finish());
  EXPECT_TRUE(sending.finished());
  EXPECT_FALSE(sending.finish()) << "finished once";
}

TEST(FlowState, NothingStartsOnceFinished) {
  FlowState f;
  ASSERT_TRUE(f.endSource());
  ASSERT_TRUE(f.finish());
  EXPECT_FALSE(f.canStart());
  for (FlowWait op : kOperations) EXPECT_FALSE(f.start(op)) << toString(op);
  EXPECT_TRUE(f.idle());
}

// A flow's life as the worker drives it: small messages by receive and
// send, a full buffer switching to splice (polls), a spent budget (pause),
// then the source's FIN passed on.
TEST(FlowState, AWholeLife) {
  FlowState f;
  const FlowWait life[] = {FlowWait::Receive, FlowWait::Send,   FlowWait::Receive, FlowWait::Send,
                           FlowWait::PollIn,  FlowWait::PollOut, FlowWait::Pause,  FlowWait::PollIn,
                           FlowWait::Receive};
  for (FlowWait op : life) {
    ASSERT_TRUE(f.start(op)) << toString(op);
    ASSERT_TRUE(f.complete(op)) << toString(op);
  }
  ASSERT_TRUE(f.endSource());
  ASSERT_TRUE(f.finish());
  EXPECT_EQ(f.end(), FlowEnd::Finished);
}

// How the worker uses a transition: an illegal one is a broken invariant,
// which names itself and its place, then aborts.
TEST(FlowStateDeathTest, ABrokenInvariantNamesItselfAndAborts) {
  FlowState f;
  ASSERT_TRUE(f.start(FlowWait::Receive));
  bool legal = f.start(FlowWait::Send);
  EXPECT_DEATH(RINGLB_ENFORCE(legal), "invariant broken at .*flow_state_test.cc:[0-9]+: legal");
}

#ifndef NDEBUG
TEST(FlowStateDeathTest, DebugChecksAreOnInThisBuild) {
  FlowState f;
  EXPECT_DEATH(RINGLB_CHECK(f.finished()), "invariant broken at .*: f.finished\\(\\)");
}
#endif

}  // namespace
}  // namespace lb
