#include "health/state_machine.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>
#include <random>

namespace health {
namespace {

using namespace std::chrono_literals;

// An arbitrary fake "now"; tests only ever add durations to it.
const TimePoint kStart = TimePoint(std::chrono::hours(24 * 365) + 123456789ns);
constexpr uint64_t kMaxRandom = std::numeric_limits<uint64_t>::max();

Options exactOptions() {
  Options options;
  options.rise = 2;
  options.fall = 3;
  options.interval = 2s;
  options.downInterval = 500ms;
  options.jitter = 0.0;
  return options;
}

// Feeds results one a second and returns the index of each that caused a transition.
std::vector<size_t> transitionsAt(MemberHealth& member, std::string_view results) {
  std::vector<size_t> at;
  TimePoint now = kStart;
  for (size_t i = 0; i < results.size(); ++i) {
    now += 1s;
    bool passed = results[i] == 'p';
    if (member.onProbeResult(passed, passed ? "HTTP 200" : "connection refused", now, 0)) {
      at.push_back(i);
    }
  }
  return at;
}

TEST(MemberHealth, StartsUpWithNothingCounted) {
  MemberHealth member(exactOptions(), kStart, 0);
  EXPECT_EQ(member.state(), State::Up);
  EXPECT_EQ(member.consecutivePasses(), 0);
  EXPECT_EQ(member.consecutiveFailures(), 0);
  EXPECT_EQ(member.consecutivePassiveFailures(), 0);
  EXPECT_EQ(member.transitions(), 0u);
  EXPECT_EQ(member.lastResult(), ProbeResult::None);
  EXPECT_EQ(member.lastReason(), "");
  EXPECT_EQ(member.lastTransitionAt(), kStart);
}

TEST(MemberHealth, GoesDownExactlyAtTheFallthConsecutiveFailure) {
  MemberHealth member(exactOptions(), kStart, 0);
  // pass fail fail pass fail fail fail: the pass resets the count.
  EXPECT_EQ(transitionsAt(member, "pffpfff"), (std::vector<size_t>{6}));
  EXPECT_EQ(member.state(), State::Down);
  EXPECT_EQ(member.consecutiveFailures(), 3);
  EXPECT_EQ(member.transitions(), 1u);
  EXPECT_EQ(member.lastTransitionAt(), kStart + 7s);
}

TEST(MemberHealth, ComesBackExactlyAtTheRisethConsecutivePass) {
  MemberHealth member(exactOptions(), kStart, 0, State::Down);
  EXPECT_EQ(transitionsAt(member, "pfpfpp"), (std::vector<size_t>{5}));
  EXPECT_EQ(member.state(), State::Up);
  EXPECT_EQ(member.consecutivePasses(), 2);
}

TEST(MemberHealth, EachTransitionIsReportedOnceWithItsReason) {
  MemberHealth member(exactOptions(), kStart, 0);
  TimePoint now = kStart;
  std::optional<Transition> change;
  for (int i = 0; i < 3; ++i) {
    change = member.onProbeResult(false, "connection refused", now += 1s, 0);
  }
  ASSERT_TRUE(change);
  EXPECT_EQ(change->from, State::Up);
  EXPECT_EQ(change->to, State::Down);
  EXPECT_EQ(change->reason, "3 consecutive probes failed (last: connection refused)");
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(member.onProbeResult(false, "timeout", now += 1s, 0));
  EXPECT_EQ(member.lastReason(), "timeout");
  EXPECT_EQ(member.lastResult(), ProbeResult::Failed);

  EXPECT_FALSE(member.onProbeResult(true, "HTTP 200", now += 1s, 0));
  change = member.onProbeResult(true, "HTTP 204", now += 1s, 0);
  ASSERT_TRUE(change);
  EXPECT_EQ(change->from, State::Down);
  EXPECT_EQ(change->to, State::Up);
  EXPECT_EQ(change->reason, "2 consecutive probes passed (last: HTTP 204)");
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(member.onProbeResult(true, "HTTP 200", now += 1s, 0));
  EXPECT_EQ(member.transitions(), 2u);
  EXPECT_EQ(member.lastResult(), ProbeResult::Passed);
}

TEST(MemberHealth, RiseAndFallOfOneUseTheSingular) {
  Options options = exactOptions();
  options.rise = 1;
  options.fall = 1;
  MemberHealth member(options, kStart, 0);
  auto down = member.onProbeResult(false, "timeout", kStart + 1s, 0);
  ASSERT_TRUE(down);
  EXPECT_EQ(down->reason, "1 probe failed (last: timeout)");
  auto up = member.onProbeResult(true, "", kStart + 2s, 0);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->reason, "1 probe passed");
}

TEST(MemberHealth, ProbesEveryIntervalWhileUpAndEveryDownIntervalWhileDown) {
  MemberHealth member(exactOptions(), kStart, 0);
  TimePoint now = kStart + 1s;
  member.onProbeResult(false, "refused", now, 0);
  EXPECT_EQ(member.nextProbeAt(), now + 2s);
  member.onProbeResult(false, "refused", now += 2s, 0);
  member.onProbeResult(false, "refused", now += 2s, 0);
  EXPECT_EQ(member.state(), State::Down);
  EXPECT_EQ(member.nextProbeAt(), now + 500ms);  // the result that took it down
  member.onProbeResult(true, "ok", now += 500ms, 0);
  EXPECT_EQ(member.nextProbeAt(), now + 500ms);
  member.onProbeResult(true, "ok", now += 500ms, 0);
  EXPECT_EQ(member.state(), State::Up);
  EXPECT_EQ(member.nextProbeAt(), now + 2s);  // the result that brought it up
}

TEST(MemberHealth, DownIntervalDefaultsToInterval) {
  Options options = exactOptions();
  options.downInterval = Duration::zero();
  options.fall = 1;
  MemberHealth member(options, kStart, 0);
  member.onProbeResult(false, "refused", kStart, 0);
  EXPECT_EQ(member.state(), State::Down);
  EXPECT_EQ(member.nextProbeAt(), kStart + 2s);
  EXPECT_EQ(member.options().downInterval, 2s);
}

TEST(MemberHealth, JitterEndsAreExact) {
  // 2s with jitter 0.2: [1.8s, 2.2s), random 0 at the bottom, the top one tick short.
  EXPECT_EQ(MemberHealth::jittered(2s, 0.2, 0), 1800ms);
  EXPECT_EQ(MemberHealth::jittered(2s, 0.2, kMaxRandom), 2200ms - 1ns);
  EXPECT_EQ(MemberHealth::jittered(2s, 0.2, uint64_t{1} << 63), 2s);
  EXPECT_EQ(MemberHealth::jittered(2s, 0.0, kMaxRandom), 2s);
  EXPECT_EQ(MemberHealth::jittered(2s, 1.0, 0), 1s);
  EXPECT_EQ(MemberHealth::jittered(2s, 1.0, kMaxRandom), 3s - 1ns);
}

TEST(MemberHealth, NextProbeStaysWithinJitterBoundsOverASweep) {
  std::mt19937_64 random(7);
  for (double jitter : {0.0, 0.05, 0.1, 0.2, 0.5, 1.0}) {
    Options options = exactOptions();
    options.jitter = jitter;
    options.fall = 1000000;
    MemberHealth member(options, kStart, 0);
    Duration low = options.interval - Duration(std::llround(2e9 * jitter) / 2);
    Duration high = low + Duration(std::llround(2e9 * jitter));
    Duration seenLow = Duration::max(), seenHigh = Duration::min();
    TimePoint now = kStart;
    for (int i = 0; i < 10000; ++i) {
      uint64_t value = i == 0 ? 0 : i == 1 ? kMaxRandom : random();
      member.onProbeResult(i % 2 == 0, "", now, value);
      Duration delay = member.nextProbeAt() - now;
      seenLow = std::min(seenLow, delay);
      seenHigh = std::max(seenHigh, delay);
      now = member.nextProbeAt();
    }
    SCOPED_TRACE(jitter);
    EXPECT_EQ(seenLow, low);
    if (jitter == 0.0) {
      EXPECT_EQ(seenHigh, 2s);
    } else {
      EXPECT_EQ(seenHigh, high - 1ns);
    }
  }
}

TEST(MemberHealth, FirstProbesOfManyMembersSpreadOverTheInterval) {
  std::mt19937_64 random(42);
  std::array<int, 10> buckets{};
  Options options = exactOptions();
  for (int i = 0; i < 1000; ++i) {
    MemberHealth member(options, kStart, random());
    Duration offset = member.nextProbeAt() - kStart;
    ASSERT_GE(offset, Duration::zero());
    ASSERT_LT(offset, options.interval);
    ++buckets[static_cast<size_t>(offset * 10 / options.interval)];
  }
  for (int count : buckets) {
    EXPECT_LE(count, 200);  // no tenth of the interval holds twice its share
    EXPECT_GE(count, 50);
  }
  EXPECT_EQ(MemberHealth(options, kStart, 0).nextProbeAt(), kStart);
  EXPECT_EQ(MemberHealth(options, kStart, kMaxRandom).nextProbeAt(), kStart + 2s - 1ns);
}

TEST(MemberHealth, PassiveFailuresAreIgnoredWhenPassiveFallIsOff) {
  MemberHealth member(exactOptions(), kStart, 0);
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(member.onPassiveFailure("connection refused", kStart + 1s, 0));
  }
  EXPECT_EQ(member.state(), State::Up);
  EXPECT_EQ(member.consecutivePassiveFailures(), 100);  // counted for metrics only
  EXPECT_EQ(member.transitions(), 0u);
}

TEST(MemberHealth, PassiveFailuresTakeAMemberDownAndASuccessResetsThem) {
  Options options = exactOptions();
  options.passiveFall = 2;
  options.interval = 10s;
  options.downInterval = 1s;
  MemberHealth member(options, kStart, 0);
  member.onProbeResult(true, "ok", kStart, 0);
  ASSERT_EQ(member.nextProbeAt(), kStart + 10s);

  EXPECT_FALSE(member.onPassiveFailure("connection refused", kStart + 1s, 0));
  member.onPassiveSuccess();
  EXPECT_EQ(member.consecutivePassiveFailures(), 0);
  EXPECT_FALSE(member.onPassiveFailure("connection refused", kStart + 2s, 0));
  EXPECT_EQ(member.state(), State::Up);
  auto down = member.onPassiveFailure("connect timeout", kStart + 3s, 0);
  ASSERT_TRUE(down);
  EXPECT_EQ(down->from, State::Up);
  EXPECT_EQ(down->to, State::Down);
  EXPECT_EQ(down->reason, "2 consecutive connects failed (last: connect timeout)");
  EXPECT_EQ(member.nextProbeAt(), kStart + 4s);  // pulled in to now + downInterval
  EXPECT_EQ(member.consecutivePassiveFailures(), 0);

  // While Down, passive reports change nothing; only `rise` probes bring it back.
  EXPECT_FALSE(member.onPassiveFailure("connection refused", kStart + 3s, 0));
  EXPECT_EQ(member.consecutivePassiveFailures(), 0);
  EXPECT_FALSE(member.onProbeResult(true, "ok", kStart + 4s, 0));
  EXPECT_EQ(member.state(), State::Down);
  EXPECT_TRUE(member.onProbeResult(true, "ok", kStart + 5s, 0));
  EXPECT_EQ(member.state(), State::Up);
  EXPECT_EQ(member.transitions(), 2u);
}

TEST(MemberHealth, PassiveDownNeverPushesAnEarlierProbeLater) {
  Options options = exactOptions();
  options.passiveFall = 1;
  options.interval = 1s;
  options.downInterval = 5s;
  MemberHealth member(options, kStart, 0);
  member.onProbeResult(true, "ok", kStart, 0);
  ASSERT_TRUE(member.onPassiveFailure("refused", kStart + 100ms, 0));
  EXPECT_EQ(member.nextProbeAt(), kStart + 1s);
}

TEST(MemberHealth, TransitionsResetThePassiveCount) {
  Options options = exactOptions();
  options.passiveFall = 3;
  options.fall = 1;
  options.rise = 1;
  MemberHealth member(options, kStart, 0);
  member.onPassiveFailure("refused", kStart, 0);
  member.onPassiveFailure("refused", kStart, 0);
  ASSERT_TRUE(member.onProbeResult(false, "refused", kStart + 1s, 0));
  ASSERT_TRUE(member.onProbeResult(true, "ok", kStart + 2s, 0));
  EXPECT_EQ(member.consecutivePassiveFailures(), 0);
  EXPECT_FALSE(member.onPassiveFailure("refused", kStart + 3s, 0));
  EXPECT_FALSE(member.onPassiveFailure("refused", kStart + 3s, 0));
  EXPECT_TRUE(member.onPassiveFailure("refused", kStart + 3s, 0));
}

TEST(MemberHealth, InvariantsHoldOverRandomResults) {
  std::mt19937_64 random(1);
  Options options = exactOptions();
  options.rise = 3;
  options.fall = 2;
  options.passiveFall = 4;
  MemberHealth member(options, kStart, 0);
  TimePoint now = kStart;
  uint64_t seen = 0;
  for (int i = 0; i < 100000; ++i) {
    State before = member.state();
    uint64_t draw = random();
    std::optional<Transition> change;
    switch (draw % 4) {
      case 0: change = member.onProbeResult(true, "ok", now, draw); break;
      case 1: change = member.onProbeResult(false, "refused", now, draw); break;
      case 2: change = member.onPassiveFailure("refused", now, draw); break;
      default: member.onPassiveSuccess(); break;
    }
    if (change) {
      ++seen;
      EXPECT_EQ(change->from, before);
      EXPECT_NE(change->to, before);
    } else {
      EXPECT_EQ(member.state(), before);
    }
    EXPECT_TRUE(member.consecutivePasses() == 0 || member.consecutiveFailures() == 0);
    if (member.state() == State::Up) {
      EXPECT_LT(member.consecutiveFailures(), options.fall);
      EXPECT_LT(member.consecutivePassiveFailures(), options.passiveFall);
    } else {
      EXPECT_LT(member.consecutivePasses(), options.rise);
      EXPECT_EQ(member.consecutivePassiveFailures(), 0);
    }
    now += 1s;
  }
  EXPECT_EQ(member.transitions(), seen);
  EXPECT_GT(seen, 100u);
}

TEST(MemberHealth, OptionsAreNormalized) {
  Options options;
  options.rise = 0;
  options.fall = -1;
  options.passiveFall = -5;
  options.interval = Duration::zero();
  options.downInterval = -1s;
  options.jitter = std::nan("");
  MemberHealth member(options, kStart, kMaxRandom);
  EXPECT_EQ(member.options().rise, 1);
  EXPECT_EQ(member.options().fall, 1);
  EXPECT_EQ(member.options().passiveFall, 0);
  EXPECT_EQ(member.options().interval, 1ms);
  EXPECT_EQ(member.options().downInterval, 1ms);
  EXPECT_EQ(member.options().jitter, 0.0);
  options.jitter = 5.0;
  EXPECT_EQ(MemberHealth(options, kStart, 0).options().jitter, 1.0);
}

}  // namespace
}  // namespace health
