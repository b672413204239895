#include "lb/policy/least_conn.h"

#include <gtest/gtest.h>

#include "tests/unit/policy_fakes.h"

namespace lb::policy {
namespace {

using testing::contextFor;
using testing::FakeMembers;
using testing::makeMembers;

TEST(LeastConn, PicksFewestActive) {
  auto members = makeMembers({1, 1, 1});
  LeastConn policy(members);
  FakeMembers state(3);
  state.active = {5, 2, 7};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(policy.pick(contextFor(state)), 1u);
}

TEST(LeastConn, ComparesActivePerWeight) {
  auto members = makeMembers({1, 3});
  LeastConn policy(members);
  FakeMembers state(2);
  state.active = {2, 5};  // 2/1 > 5/3
  EXPECT_EQ(policy.pick(contextFor(state)), 1u);
  state.active = {1, 4};  // 1/1 < 4/3
  EXPECT_EQ(policy.pick(contextFor(state)), 0u);
}

TEST(LeastConn, WeightedSharesWhenCountsFollowPicks) {
  auto members = makeMembers({1, 2, 3});
  LeastConn policy(members);
  FakeMembers state(3);
  for (int i = 0; i < 600; ++i) ++state.active[policy.pick(contextFor(state)).value()];
  EXPECT_EQ(state.active, (std::vector<int64_t>{100, 200, 300}));
}

TEST(LeastConn, TiesRotateEvenly) {
  auto members = makeMembers({1, 1, 1, 1});
  LeastConn policy(members);
  FakeMembers state(4);  // counts never change: every pick is a four-way tie
  std::vector<size_t> chosen;
  for (int i = 0; i < 8; ++i) chosen.push_back(policy.pick(contextFor(state)).value());
  EXPECT_EQ(chosen, (std::vector<size_t>{0, 1, 2, 3, 0, 1, 2, 3}));
}

TEST(LeastConn, TiesAmongSomeMembersShareEvenly) {
  auto members = makeMembers({1, 1, 1, 1});
  LeastConn policy(members);
  FakeMembers state(4);
  state.active = {3, 0, 9, 0};
  std::vector<int> counts(4, 0);
  for (int i = 0; i < 1000; ++i) ++counts[policy.pick(contextFor(state)).value()];
  EXPECT_EQ(counts, (std::vector<int>{0, 500, 0, 500}));
}

TEST(LeastConn, WeightedTiesRotate) {
  auto members = makeMembers({1, 3});
  LeastConn policy(members);
  FakeMembers state(2);
  state.active = {1, 3};  // 1/1 == 3/3
  EXPECT_EQ(policy.pick(contextFor(state)), 0u);
  EXPECT_EQ(policy.pick(contextFor(state)), 1u);
  EXPECT_EQ(policy.pick(contextFor(state)), 0u);
}

TEST(LeastConn, UnusableMembersAreSkipped) {
  auto members = makeMembers({1, 1, 1});
  LeastConn policy(members);
  FakeMembers state(3);
  state.active = {0, 5, 9};
  state.up[0] = false;
  EXPECT_EQ(policy.pick(contextFor(state)), 1u);
  state.up[1] = false;
  EXPECT_EQ(policy.pick(contextFor(state)), 2u);
  state.up[2] = false;
  EXPECT_EQ(policy.pick(contextFor(state)), std::nullopt);
}

TEST(LeastConn, NoMembersGivesNothing) {
  LeastConn policy(std::span<const MemberSpec>{});
  FakeMembers state(0);
  EXPECT_EQ(policy.pick(contextFor(state)), std::nullopt);
}

TEST(LeastConn, ExtremeCountsAndWeightsDoNotOverflow) {
  std::vector<MemberSpec> members{{"a", UINT32_MAX}, {"b", 1}, {"c", 0}};
  LeastConn policy(members);
  FakeMembers state(3);
  state.active = {INT64_MAX, INT64_MAX - 1, -5};  // negative counts as 0
  EXPECT_EQ(policy.pick(contextFor(state)), 2u);
  state.active = {INT64_MAX, INT64_MAX, INT64_MAX};
  state.up[2] = false;
  // Both clamp to 2^31 - 1 active; a's huge weight makes it the lighter.
  EXPECT_EQ(policy.pick(contextFor(state)), 0u);
}

TEST(LeastConn, MissingStateMeansAllUsableAndIdle) {
  auto members = makeMembers({1, 1});
  LeastConn policy(members);
  EXPECT_EQ(policy.pick(PickContext{}), 0u);
  EXPECT_EQ(policy.pick(PickContext{}), 1u);
}

// A pool whose members all come from DNS has none until it answers.
TEST(LeastConn, NoMembersGivesNothingOnRetriesOrWithoutState) {
  LeastConn policy(std::span<const MemberSpec>{});
  FakeMembers none(0);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(policy.pick(contextFor(none, 0, static_cast<uint32_t>(i))), std::nullopt);
    EXPECT_EQ(policy.pick(PickContext{}), std::nullopt);
  }
}

}  // namespace
}  // namespace lb::policy
