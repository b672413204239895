#include "lb/policy/random_two.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/unit/policy_fakes.h"

namespace lb::policy {
namespace {

using testing::contextFor;
using testing::FakeMembers;
using testing::makeMembers;
using testing::ScriptedRandom;
using testing::SplitMix;

std::optional<size_t> pickWith(RandomTwo& policy, const FakeMembers& state, Random& random) {
  return policy.pick(contextFor(state, 0, 0, &random));
}

TEST(RandomTwo, TakesTheLighterOfTheTwoDrawn) {
  auto members = makeMembers({1, 1, 1});
  RandomTwo policy(members);
  FakeMembers state(3);
  state.active = {5, 1, 3};
  ScriptedRandom random{0, 0,   // members 0 and 1 -> 1
                        2, 0,   // members 2 and 0 -> 2
                        5, 4};  // 5 % 3 = 2, 4 % 2 = 0 -> members 2 and 0 -> 2
  EXPECT_EQ(pickWith(policy, state, random), 1u);
  EXPECT_EQ(pickWith(policy, state, random), 2u);
  EXPECT_EQ(pickWith(policy, state, random), 2u);
  EXPECT_EQ(random.remaining(), 0u);
}

TEST(RandomTwo, TieGoesToTheFirstDrawn) {
  auto members = makeMembers({1, 1, 1});
  RandomTwo policy(members);
  FakeMembers state(3);
  state.active = {2, 2, 2};
  ScriptedRandom random{2, 1, 1, 1};  // (2, 1) then (1, 2)
  EXPECT_EQ(pickWith(policy, state, random), 2u);
  EXPECT_EQ(pickWith(policy, state, random), 1u);
}

TEST(RandomTwo, ComparesActivePerWeight) {
  auto members = makeMembers({1, 4});
  RandomTwo policy(members);
  FakeMembers state(2);
  state.active = {1, 3};  // 1/1 > 3/4
  ScriptedRandom random{0, 0};
  EXPECT_EQ(pickWith(policy, state, random), 1u);
}

TEST(RandomTwo, UnusableDrawFallsBackToUsableList) {
  auto members = makeMembers({1, 1, 1, 1});
  RandomTwo policy(members);
  FakeMembers state(4);
  state.up[0] = false;
  state.active = {0, 7, 5, 6};
  // Fast path draws 0 and 1: 0 is down. Usable list {1, 2, 3}: draws
  // 2 -> member 3, then 0 -> member 1; 6 < 7 -> member 3.
  ScriptedRandom random{0, 0, 2, 0};
  EXPECT_EQ(pickWith(policy, state, random), 3u);
  EXPECT_EQ(random.remaining(), 0u);
}

TEST(RandomTwo, OneUsableMemberNeedsNoChoice) {
  auto members = makeMembers({1, 1, 1});
  RandomTwo policy(members);
  FakeMembers state(3);
  state.up = {false, true, false};
  ScriptedRandom random{0, 0};  // the fast path's draws only
  EXPECT_EQ(pickWith(policy, state, random), 1u);
  EXPECT_EQ(random.remaining(), 0u);
}

TEST(RandomTwo, SingleMemberPoolDrawsNothing) {
  auto members = makeMembers({1});
  RandomTwo policy(members);
  FakeMembers state(1);
  ScriptedRandom random{};
  EXPECT_EQ(pickWith(policy, state, random), 0u);
  state.up[0] = false;
  EXPECT_EQ(pickWith(policy, state, random), std::nullopt);
}

TEST(RandomTwo, NoUsableMemberGivesNothing) {
  auto members = makeMembers({1, 1, 1});
  RandomTwo policy(members);
  FakeMembers state(3);
  state.up = {false, false, false};
  ScriptedRandom random{1, 1};
  EXPECT_EQ(pickWith(policy, state, random), std::nullopt);
  RandomTwo empty(std::span<const MemberSpec>{});
  FakeMembers none(0);
  EXPECT_EQ(pickWith(empty, none, random), std::nullopt);
}

TEST(RandomTwo, NeverPicksTheHeaviestAndFavoursTheLightest) {
  auto members = makeMembers({1, 1, 1, 1});
  RandomTwo policy(members);
  FakeMembers state(4);
  state.active = {0, 10, 20, 30};
  SplitMix random(42);
  std::vector<int> counts(4, 0);
  const int picks = 120000;
  for (int i = 0; i < picks; ++i) ++counts[pickWith(policy, state, random).value()];
  // Member of rank r wins the pairs it shares with heavier ones: (3 - r) of 6.
  EXPECT_NEAR(counts[0] / double(picks), 3.0 / 6, 0.01);
  EXPECT_NEAR(counts[1] / double(picks), 2.0 / 6, 0.01);
  EXPECT_NEAR(counts[2] / double(picks), 1.0 / 6, 0.01);
  EXPECT_EQ(counts[3], 0);
}

TEST(RandomTwo, KeepsLoadsCloseWhenCountsFollowPicks) {
  auto members = makeMembers(20);
  RandomTwo policy(members);
  FakeMembers state(20);
  SplitMix random(7);
  for (int i = 0; i < 20000; ++i) ++state.active[pickWith(policy, state, random).value()];
  auto [lowest, highest] = std::minmax_element(state.active.begin(), state.active.end());
  // Two choices keep the spread to a few connections (one random choice
  // would give a spread of dozens at 1000 per member).
  EXPECT_LE(*highest - *lowest, 6);
}

TEST(RandomTwo, DownMembersNeverChosenUnderRandomDraws) {
  auto members = makeMembers(10);
  RandomTwo policy(members);
  FakeMembers state(10);
  for (size_t i = 0; i < 10; i += 2) state.up[i] = false;
  SplitMix random(3);
  std::vector<int> counts(10, 0);
  for (int i = 0; i < 10000; ++i) ++counts[pickWith(policy, state, random).value()];
  for (size_t i = 0; i < 10; ++i) {
    if (i % 2 == 0) {
      EXPECT_EQ(counts[i], 0) << i;
    } else {
      EXPECT_GT(counts[i], 1500) << i;
    }
  }
}

TEST(RandomTwo, MissingRandomAndStateStillPick) {
  auto members = makeMembers({1, 1, 1});
  RandomTwo policy(members);
  for (int i = 0; i < 10; ++i) EXPECT_LT(policy.pick(PickContext{}).value(), 3u);
}

// A pool whose members all come from DNS has none until it answers: no
// draw is taken (a draw modulo zero members would be undefined).
TEST(RandomTwo, NoMembersDrawsNothing) {
  RandomTwo policy(std::span<const MemberSpec>{});
  FakeMembers none(0);
  ScriptedRandom random{};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(pickWith(policy, none, random), std::nullopt);
  EXPECT_EQ(policy.pick(PickContext{}), std::nullopt);
}

}  // namespace
}  // namespace lb::policy
