#include "lb/edge/source_limits.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <atomic>
#include <limits>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "tests/unit/edge_test_addresses.h"

namespace lb::edge {
namespace {

using edgetest::v4;
using edgetest::v6;

using Clock = SourceLimits::Clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint64_t kSeed = 0x5eed;

sockaddr_storage v4(uint32_t address) {
  sockaddr_storage storage{};
  auto& in = reinterpret_cast<sockaddr_in&>(storage);
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(address);
  return storage;
}

// An address in the /64 `prefix`.
sockaddr_storage v6Prefix(uint64_t prefix) {
  sockaddr_storage storage{};
  auto& in6 = reinterpret_cast<sockaddr_in6&>(storage);
  in6.sin6_family = AF_INET6;
  for (int i = 0; i < 8; ++i) in6.sin6_addr.s6_addr[i] = static_cast<uint8_t>(prefix >> (56 - 8 * i));
  in6.sin6_addr.s6_addr[15] = 1;
  return storage;
}

const Clock::time_point kStart = Clock::time_point{} + std::chrono::hours(24);

TEST(SourceLimits, InactiveWithoutLimits) {
  SourceLimits limits({.maxConnections = 0, .ratePerSecond = 0, .capacity = 64}, kSeed);
  EXPECT_FALSE(limits.active());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(limits.admit(v4("10.0.0.1"), kStart), Admission::Admitted);
  EXPECT_EQ(limits.trackedSources(), 0u);
  EXPECT_TRUE(SourceLimits({.maxConnections = 1, .ratePerSecond = 0, .capacity = 64}, kSeed).active());
  EXPECT_TRUE(SourceLimits({.maxConnections = 0, .ratePerSecond = 1, .capacity = 64}, kSeed).active());
}

TEST(SourceLimits, ConcurrentLimitThenReleaseFreesAPlace) {
  SourceLimits limits({.maxConnections = 3, .ratePerSecond = 0, .capacity = 64}, kSeed);
  sockaddr_storage client = v4("192.0.2.10");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limits.admit(client, kStart), Admission::Admitted);
  EXPECT_EQ(limits.openConnections(client), 3);
  EXPECT_EQ(limits.admit(client, kStart), Admission::OverLimit);
  EXPECT_EQ(limits.admit(client, kStart + seconds(100)), Admission::OverLimit);
  // Another address is another source.
  EXPECT_EQ(limits.admit(v4("192.0.2.11"), kStart), Admission::Admitted);
  // The refusals counted nothing: one release makes one place.
  limits.release(client);
  EXPECT_EQ(limits.openConnections(client), 2);
  EXPECT_EQ(limits.admit(client, kStart), Admission::Admitted);
  EXPECT_EQ(limits.admit(client, kStart), Admission::OverLimit);
  for (int i = 0; i < 3; ++i) limits.release(client);
  EXPECT_EQ(limits.openConnections(client), 0);
  // No rate limit: a source with nothing open is not kept.
  EXPECT_EQ(limits.trackedSources(), 1u);
}

TEST(SourceLimits, ReleaseOfAnUnknownSourceOrOneTooManyIsIgnored) {
  SourceLimits limits({.maxConnections = 2, .ratePerSecond = 5, .capacity = 64}, kSeed);
  limits.release(v4("198.51.100.1"));
  sockaddr_storage unixClient{};
  unixClient.ss_family = AF_UNIX;
  limits.release(unixClient);
  EXPECT_EQ(limits.trackedSources(), 0u);

  sockaddr_storage client = v4("198.51.100.2");
  EXPECT_EQ(limits.admit(client, kStart), Admission::Admitted);
  limits.release(client);
  limits.release(client);  // one too many: no underflow
  limits.release(client);
  EXPECT_EQ(limits.openConnections(client), 0);
  EXPECT_EQ(limits.admit(client, kStart), Admission::Admitted);
  EXPECT_EQ(limits.admit(client, kStart), Admission::Admitted);
  EXPECT_EQ(limits.admit(client, kStart), Admission::OverLimit);
}

TEST(SourceLimits, SourcesWithoutAnIpAddressAreNotLimited) {
  SourceLimits limits({.maxConnections = 1, .ratePerSecond = 1, .capacity = 64}, kSeed);
  sockaddr_storage unixClient{};
  unixClient.ss_family = AF_UNIX;
  for (int i = 0; i < 10; ++i) EXPECT_EQ(limits.admit(unixClient, kStart), Admission::Admitted);
  EXPECT_EQ(limits.trackedSources(), 0u);
}

TEST(SourceLimits, RateBurstThenOverRateThenRefill) {
  SourceLimits limits({.maxConnections = 0, .ratePerSecond = 10, .capacity = 64}, kSeed);
  sockaddr_storage client = v4("203.0.113.5");
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(limits.admit(client, kStart), Admission::Admitted) << i;
    limits.release(client);
  }
  EXPECT_EQ(limits.admit(client, kStart), Admission::OverRate);
  // 10 a second: one token every 100 ms, refilled continuously.
  EXPECT_EQ(limits.admit(client, kStart + milliseconds(99)), Admission::OverRate);
  EXPECT_EQ(limits.admit(client, kStart + milliseconds(100)), Admission::Admitted);
  EXPECT_EQ(limits.admit(client, kStart + milliseconds(100)), Admission::OverRate);
  EXPECT_EQ(limits.admit(client, kStart + milliseconds(250)), Admission::Admitted);
  // 50 ms were left over from 250: the next token comes at 300, not 350.
  EXPECT_EQ(limits.admit(client, kStart + milliseconds(299)), Admission::OverRate);
  EXPECT_EQ(limits.admit(client, kStart + milliseconds(300)), Admission::Admitted);
  // A long pause refills the burst and no more.
  Clock::time_point later = kStart + seconds(3600);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(limits.admit(client, later), Admission::Admitted) << i;
  EXPECT_EQ(limits.admit(client, later), Admission::OverRate);
  // A `now` older than the bucket's (another thread's clock read) refills nothing...
  EXPECT_EQ(limits.admit(client, kStart), Admission::OverRate);
  // ... nor takes any away: 100 ms after `later` brings one token.
  EXPECT_EQ(limits.admit(client, later + milliseconds(100)), Admission::Admitted);
}

TEST(SourceLimits, RateHasNoDriftOverManyRefills) {
  // 3 a second does not divide a second into whole nanoseconds.
  SourceLimits limits({.maxConnections = 0, .ratePerSecond = 3, .capacity = 64}, kSeed);
  sockaddr_storage client = v4("203.0.113.6");
  Clock::time_point now = kStart;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limits.admit(client, now), Admission::Admitted);
  // Polled every 1 ms for 1000 s: exactly 3000 more admitted, no more, no less.
  int admitted = 0;
  for (int ms = 1; ms <= 1'000'000; ++ms) {
    if (limits.admit(client, now + milliseconds(ms)) == Admission::Admitted) ++admitted;
  }
  EXPECT_EQ(admitted, 3000);
}

TEST(SourceLimits, TheHighestRateAfterLongPausesDoesNotOverflow) {
  const int rate = std::numeric_limits<int>::max();
  SourceLimits limits({.maxConnections = 0, .ratePerSecond = rate, .capacity = 64}, kSeed);
  sockaddr_storage client = v4("203.0.113.8");
  Clock::time_point now = kStart;
  EXPECT_EQ(limits.admit(client, now), Admission::Admitted);
  for (auto pause : {seconds(1), seconds(10), seconds(1000), seconds(86400 * 365)}) {
    now += pause;
    EXPECT_EQ(limits.admit(client, now), Admission::Admitted) << pause.count();
  }
}

TEST(SourceLimits, OverLimitIsCheckedBeforeTheRateAndSpendsNoToken) {
  SourceLimits limits({.maxConnections = 1, .ratePerSecond = 2, .capacity = 64}, kSeed);
  sockaddr_storage client = v4("203.0.113.7");
  EXPECT_EQ(limits.admit(client, kStart), Admission::Admitted);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(limits.admit(client, kStart), Admission::OverLimit);
  limits.release(client);
  EXPECT_EQ(limits.admit(client, kStart), Admission::Admitted);  // the burst's second token
  limits.release(client);
  EXPECT_EQ(limits.admit(client, kStart), Admission::OverRate);
}

TEST(SourceLimits, Ipv6SourcesAreKeyedByTheir64) {
  SourceLimits limits({.maxConnections = 2, .ratePerSecond = 0, .capacity = 64}, kSeed);
  EXPECT_EQ(limits.admit(v6("2001:db8:1:2::1"), kStart), Admission::Admitted);
  EXPECT_EQ(limits.admit(v6("2001:db8:1:2:ffff:ffff:ffff:ffff"), kStart), Admission::Admitted);
  EXPECT_EQ(limits.admit(v6("2001:db8:1:2:abcd::9"), kStart), Admission::OverLimit);
  EXPECT_EQ(limits.openConnections(v6("2001:db8:1:2::77")), 2);
  // The neighbouring /64s are other sources.
  EXPECT_EQ(limits.admit(v6("2001:db8:1:3::1"), kStart), Admission::Admitted);
  EXPECT_EQ(limits.admit(v6("2001:db8:1:1::1"), kStart), Admission::Admitted);
  EXPECT_EQ(limits.admit(v6("2001:db8:1:1::2"), kStart), Admission::Admitted);
  EXPECT_EQ(limits.admit(v6("2001:db8:1:1::3"), kStart), Admission::OverLimit);
  EXPECT_EQ(limits.trackedSources(), 3u);
  limits.release(v6("2001:db8:1:2::1234"));  // any address of the /64 releases for it
  EXPECT_EQ(limits.openConnections(v6("2001:db8:1:2::1")), 1);
}

TEST(SourceLimits, MappedIpv4IsTheIpv4Source) {
  SourceLimits limits({.maxConnections = 2, .ratePerSecond = 0, .capacity = 64}, kSeed);
  EXPECT_EQ(limits.admit(v4("10.1.2.3"), kStart), Admission::Admitted);
  EXPECT_EQ(limits.admit(v6("::ffff:10.1.2.3"), kStart), Admission::Admitted);
  EXPECT_EQ(limits.admit(v4("10.1.2.3"), kStart), Admission::OverLimit);
  EXPECT_EQ(limits.admit(v6("::ffff:10.1.2.3"), kStart), Admission::OverLimit);
  // IPv4 addresses are not grouped: 10.1.2.4 is another source.
  EXPECT_EQ(limits.admit(v4("10.1.2.4"), kStart), Admission::Admitted);
  // ::/64 (where ::1 and ::10.1.2.3 live) is not IPv4's, nor is one IPv4 address.
  EXPECT_EQ(limits.admit(v6("::1"), kStart), Admission::Admitted);
  EXPECT_EQ(limits.admit(v6("::10.1.2.3"), kStart), Admission::Admitted);
  EXPECT_EQ(limits.admit(v6("::2"), kStart), Admission::OverLimit);
  limits.release(v6("::ffff:10.1.2.3"));
  EXPECT_EQ(limits.openConnections(v4("10.1.2.3")), 1);
}

// Random admits and releases over more sources than the table holds,
// checked against a plain map of open counts after every step: entries
// are removed (rate off: at their last release) without losing others.
TEST(SourceLimits, RandomAdmitsAndReleasesAgreeWithAModel) {
  const int capacity = 64;  // one stripe
  const int maxConnections = 3;
  SourceLimits limits({.maxConnections = maxConnections, .ratePerSecond = 0, .capacity = capacity}, kSeed);
  std::map<uint32_t, int> model;  // source -> open connections
  std::mt19937 random(11);
  int refusedFull = 0;
  for (int step = 0; step < 20000; ++step) {
    uint32_t address = 0x0e000000 + random() % 90;
    sockaddr_storage source = v4(address);
    int& open = model[address];
    if (random() % 2) {
      size_t tracked = 0;
      for (const auto& [_, count] : model) tracked += count > 0;
      Admission expected = open >= maxConnections                  ? Admission::OverLimit
                           : open == 0 && tracked >= capacity ? Admission::TableFull
                                                                   : Admission::Admitted;
      ASSERT_EQ(limits.admit(source, kStart), expected) << step;
      if (expected == Admission::Admitted) ++open;
      if (expected == Admission::TableFull) ++refusedFull;
    } else {
      limits.release(source);
      if (open > 0) --open;
    }
    size_t tracked = 0;
    for (const auto& [other, count] : model) {
      ASSERT_EQ(limits.openConnections(v4(other)), count) << step;
      tracked += count > 0;
    }
    ASSERT_EQ(limits.trackedSources(), tracked) << step;
  }
  EXPECT_GT(refusedFull, 100);  // the table was full often
}

TEST(SourceLimits, AMillionOneShotSourcesKeepTheTableBounded) {
  const int capacity = 4096;
  SourceLimits limits({.maxConnections = 5, .ratePerSecond = 100, .capacity = capacity}, kSeed);
  const size_t memory = limits.memoryBytes();
  // 1 ms apart: a bucket is full again 1 s (1,000 sources) after its admit.
  Clock::time_point now = kStart;
  std::mt19937 random(3);
  for (int i = 0; i < 1'000'000; ++i) {
    now += milliseconds(1);
    sockaddr_storage source = i % 2 ? v4(static_cast<uint32_t>(random())) : v6Prefix(0x20010db800000000ULL + i);
    ASSERT_EQ(limits.admit(source, now), Admission::Admitted) << i;
    limits.release(source);
    if (i % 1000 == 0) {
      ASSERT_LE(limits.trackedSources(), static_cast<size_t>(capacity)) << i;
      ASSERT_EQ(limits.memoryBytes(), memory);
    }
  }
  EXPECT_LE(limits.trackedSources(), static_cast<size_t>(capacity));
  EXPECT_GE(limits.trackedSources(), 1000u);  // recent sources are still remembered
  EXPECT_EQ(limits.memoryBytes(), memory);
}

TEST(SourceLimits, TableFullOfActiveSourcesRefusesNewOnesUntilReleases) {
  for (int rate : {0, 10}) {
    SCOPED_TRACE(rate);
    const int capacity = 64;  // one stripe: exactly 64 sources
    SourceLimits limits({.maxConnections = 10, .ratePerSecond = rate, .capacity = capacity}, kSeed);
    for (uint32_t i = 0; i < capacity; ++i) ASSERT_EQ(limits.admit(v4(0x0a000000 + i), kStart), Admission::Admitted);
    EXPECT_EQ(limits.trackedSources(), static_cast<size_t>(capacity));
    sockaddr_storage newcomer = v4("172.16.0.1");
    EXPECT_EQ(limits.admit(newcomer, kStart), Admission::TableFull);
    EXPECT_EQ(limits.admit(newcomer, kStart + seconds(10)), Admission::TableFull);
    // Tracked sources still get their answers.
    EXPECT_EQ(limits.admit(v4(0x0a000000), kStart), Admission::Admitted);
    limits.release(v4(0x0a000000));
    EXPECT_EQ(limits.trackedSources(), static_cast<size_t>(capacity));

    limits.release(v4(0x0a000005));
    limits.release(v4(0x0a000006));
    Clock::time_point later = kStart;
    if (rate > 0) {
      // Nothing open, but the buckets are not full yet (9.5 of 10 tokens):
      // still state worth keeping.
      EXPECT_EQ(limits.admit(newcomer, kStart + milliseconds(50)), Admission::TableFull);
      later = kStart + milliseconds(100);
    }
    // Full again (or no bucket at all): idle, reclaimed for newcomers.
    EXPECT_EQ(limits.admit(newcomer, later), Admission::Admitted);
    EXPECT_EQ(limits.admit(v4("172.16.0.2"), later), Admission::Admitted);
    EXPECT_EQ(limits.admit(v4("172.16.0.3"), later), Admission::TableFull);
    EXPECT_EQ(limits.trackedSources(), static_cast<size_t>(capacity));
    EXPECT_EQ(limits.openConnections(v4(0x0a000005)), 0);
    EXPECT_EQ(limits.openConnections(v4(0x0a000007)), 1);
    EXPECT_EQ(limits.openConnections(newcomer), 1);
  }
}

TEST(SourceLimits, ALargeTableFillsToItsCapacityAtMost) {
  const int capacity = 65536;
  SourceLimits limits({.maxConnections = 1, .ratePerSecond = 0, .capacity = capacity}, kSeed);
  int admitted = 0;
  int refused = 0;
  for (uint32_t i = 0; i < 2 * capacity; ++i) {
    Admission answer = limits.admit(v4(0x0b000000 + i), kStart);
    ASSERT_TRUE(answer == Admission::Admitted || answer == Admission::TableFull);
    (answer == Admission::Admitted ? admitted : refused)++;
  }
  // Shared out over stripes: a stripe refuses once its share is taken.
  EXPECT_EQ(static_cast<size_t>(admitted), limits.trackedSources());
  EXPECT_LE(admitted, capacity);
  EXPECT_GT(admitted, capacity * 9 / 10);
  EXPECT_EQ(admitted + refused, 2 * capacity);
  // Every slot of memory accounted for: no more than 64 bytes per source.
  EXPECT_LE(limits.memoryBytes(), 64u * capacity);
}

TEST(SourceLimits, TwoThreadsOnSharedAndDistinctSourcesEndWithNothingOpen) {
  SourceLimits limits({.maxConnections = 1000, .ratePerSecond = 1000000, .capacity = 256}, kSeed);
  const sockaddr_storage shared[] = {v4("10.0.0.1"), v6("2001:db8::1"), v4("10.0.0.2")};
  std::atomic<int64_t> clockMs{0};
  auto hammer = [&](uint32_t own) {
    std::vector<sockaddr_storage> holding;
    for (int i = 0; i < 20000; ++i) {
      Clock::time_point now = kStart + milliseconds(clockMs.fetch_add(1, std::memory_order_relaxed));
      sockaddr_storage source = i % 3 == 0 ? v4(own + static_cast<uint32_t>(i % 50)) : shared[i % 3];
      if (limits.admit(source, now) == Admission::Admitted) holding.push_back(source);
      if (holding.size() > 20 || i % 7 == 0) {
        for (const sockaddr_storage& held : holding) limits.release(held);
        holding.clear();
      }
    }
    for (const sockaddr_storage& held : holding) limits.release(held);
  };
  std::thread a(hammer, 0x0c000000u);
  std::thread b(hammer, 0x0d000000u);
  a.join();
  b.join();
  for (const sockaddr_storage& source : shared) EXPECT_EQ(limits.openConnections(source), 0);
  for (uint32_t i = 0; i < 50; ++i) {
    EXPECT_EQ(limits.openConnections(v4(0x0c000000u + i)), 0);
    EXPECT_EQ(limits.openConnections(v4(0x0d000000u + i)), 0);
  }
  EXPECT_LE(limits.trackedSources(), 256u);
}

}  // namespace
}  // namespace lb::edge
