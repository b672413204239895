// What counts as this host's own failure, and the throttle that keeps its
// log lines to one a second.
#include <gtest/gtest.h>

#include <cerrno>

#include "health/prober.h"
#include "lb/log_throttle.h"
#include "lb/stats.h"

namespace lb {
namespace {

constexpr uint64_t kSecond = 1'000'000'000;

TEST(LocalErrors, RunningOutOfSomethingIsLocal) {
  for (int error : {EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL})
    EXPECT_TRUE(health::isLocalResourceError(error)) << error;
}

TEST(LocalErrors, WhatThePeerDidIsNot) {
  for (int error : {ECONNREFUSED, ECONNRESET, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, ECANCELED, EPIPE})
    EXPECT_FALSE(health::isLocalResourceError(error)) << error;
}

TEST(LocalErrors, EveryKindHasAMetricLabel) {
  EXPECT_EQ(toString(LocalError::Accept), "accept");
  EXPECT_EQ(toString(LocalError::Socket), "socket");
  EXPECT_EQ(toString(LocalError::Connect), "connect");
  EXPECT_EQ(toString(LocalError::Pipe), "pipe");
  EXPECT_EQ(toString(LocalError::Slot), "slot");
  EXPECT_EQ(toString(LocalError::Io), "io");
  LocalErrorCounters counters;
  counters.add(LocalError::Pipe);
  counters.add(LocalError::Pipe);
  EXPECT_EQ(counters.value(LocalError::Pipe), 2u);
  EXPECT_EQ(counters.value(LocalError::Accept), 0u);
}

TEST(LogThrottle, FirstLineGoesThrough) {
  LogThrottle throttle;
  uint64_t heldBack = 99;
  EXPECT_TRUE(throttle.allow(5 * kSecond, &heldBack));
  EXPECT_EQ(heldBack, 0u);
}

TEST(LogThrottle, OneLinePerPeriodWithTheCountHeldBack) {
  LogThrottle throttle(kSecond);
  uint64_t heldBack = 0;
  ASSERT_TRUE(throttle.allow(0, &heldBack));
  // Every 50 ms for a second: all held back.
  for (uint64_t t = 50'000'000; t < kSecond; t += 50'000'000) EXPECT_FALSE(throttle.allow(t, &heldBack));
  EXPECT_TRUE(throttle.allow(kSecond, &heldBack));
  EXPECT_EQ(heldBack, 19u);
  EXPECT_FALSE(throttle.allow(kSecond + 1, &heldBack));
  EXPECT_TRUE(throttle.allow(3 * kSecond, &heldBack));
  EXPECT_EQ(heldBack, 1u);
  EXPECT_TRUE(throttle.allow(5 * kSecond, &heldBack));
  EXPECT_EQ(heldBack, 0u) << "the count starts again after each line";
}

TEST(LogThrottle, TimeAtZeroIsNotSpecial) {
  LogThrottle throttle(kSecond);
  uint64_t heldBack = 0;
  EXPECT_TRUE(throttle.allow(0, &heldBack));
  EXPECT_FALSE(throttle.allow(0, &heldBack));
}

}  // namespace
}  // namespace lb
