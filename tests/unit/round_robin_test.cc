#include "lb/policy/round_robin.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/unit/policy_fakes.h"

namespace lb::policy {
namespace {

using testing::FakeMembers;
using testing::makeMembers;

std::vector<size_t> picks(RoundRobin& policy, const FakeMembers& state, size_t count) {
  std::vector<size_t> chosen;
  for (size_t i = 0; i < count; ++i) {
    std::optional<size_t> member = policy.pick(testing::contextFor(state));
    EXPECT_TRUE(member.has_value());
    chosen.push_back(member.value_or(SIZE_MAX));
  }
  return chosen;
}

TEST(RoundRobin, EqualWeightsCycleInOrder) {
  auto members = makeMembers({1, 1, 1});
  RoundRobin policy(members);
  FakeMembers state(3);
  EXPECT_EQ(picks(policy, state, 6), (std::vector<size_t>{0, 1, 2, 0, 1, 2}));
}

TEST(RoundRobin, HeavyMemberIsInterleavedNotBurst) {
  auto members = makeMembers({5, 1, 1});
  RoundRobin policy(members);
  FakeMembers state(3);
  // a a b a c a a, twice: the sequence repeats every sum(weights) picks.
  EXPECT_EQ(picks(policy, state, 14), (std::vector<size_t>{0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0}));
}

TEST(RoundRobin, UnusableMemberIsSkippedAndSequenceContinues) {
  auto members = makeMembers({1, 1, 1});
  RoundRobin policy(members);
  FakeMembers state(3);
  state.up[1] = false;
  EXPECT_EQ(picks(policy, state, 4), (std::vector<size_t>{0, 2, 0, 2}));
  state.up[1] = true;
  EXPECT_EQ(picks(policy, state, 6), (std::vector<size_t>{0, 1, 2, 0, 1, 2}));
}

TEST(RoundRobin, MemberDownMidCycleIsNeverChosen) {
  auto members = makeMembers({2, 1, 1});
  RoundRobin policy(members);
  FakeMembers state(3);
  picks(policy, state, 1);
  state.up[0] = false;
  std::vector<size_t> chosen = picks(policy, state, 100);
  EXPECT_EQ(std::count(chosen.begin(), chosen.end(), 0u), 0);
  EXPECT_NEAR(std::count(chosen.begin(), chosen.end(), 1u), 50, 1);
}

TEST(RoundRobin, AllUnusableGivesNothing) {
  auto members = makeMembers({1, 2});
  RoundRobin policy(members);
  FakeMembers state(2);
  state.up = {false, false};
  EXPECT_EQ(policy.pick(testing::contextFor(state)), std::nullopt);
  state.up[1] = true;
  EXPECT_EQ(policy.pick(testing::contextFor(state)), 1u);
}

TEST(RoundRobin, NoMembersGivesNothing) {
  RoundRobin policy(std::span<const MemberSpec>{});
  FakeMembers state(0);
  EXPECT_EQ(policy.pick(testing::contextFor(state)), std::nullopt);
}

TEST(RoundRobin, CountsAreExactOverWholeCycles) {
  auto members = makeMembers({5, 1, 1, 3, 7});
  RoundRobin policy(members);
  FakeMembers state(members.size());
  const size_t cycles = 13;
  std::vector<size_t> chosen = picks(policy, state, 17 * cycles);
  for (size_t i = 0; i < members.size(); ++i) {
    EXPECT_EQ(std::count(chosen.begin(), chosen.end(), i), members[i].weight * cycles) << "member " << i;
  }
}

// The policy contract allows a context without state: every member usable.
TEST(RoundRobin, MissingStateMeansEveryMemberUsable) {
  auto members = makeMembers({2, 1});
  RoundRobin policy(members);
  std::vector<size_t> chosen;
  for (int i = 0; i < 6; ++i) chosen.push_back(policy.pick(PickContext{}).value_or(SIZE_MAX));
  EXPECT_EQ(chosen, (std::vector<size_t>{0, 1, 0, 0, 1, 0}));
}

// A weight of 0 (outside MemberSpec's contract) counts as 1, as in the other
// policies: the member is not starved.
TEST(RoundRobin, ZeroWeightCountsAsOne) {
  auto members = makeMembers({0, 1, 0});
  RoundRobin policy(members);
  FakeMembers state(3);
  EXPECT_EQ(picks(policy, state, 6), (std::vector<size_t>{0, 1, 2, 0, 1, 2}));
}

// A pool whose members all come from DNS has none until it answers.
TEST(RoundRobin, NoMembersGivesNothingWithOrWithoutState) {
  RoundRobin policy(std::span<const MemberSpec>{});
  FakeMembers none(0);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(policy.pick(testing::contextFor(none)), std::nullopt);
    EXPECT_EQ(policy.pick(PickContext{}), std::nullopt);
  }
}

}  // namespace
}  // namespace lb::policy
