// lb/discovery/discovery.h: when each discover entry is resolved and which
// members its answers make. The clock is a value the tests move.
#include "lb/discovery/discovery.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "lb/policy/maglev.h"

namespace lb::discovery {
namespace {

using namespace std::chrono_literals;

const std::chrono::system_clock::time_point kWall{std::chrono::seconds(1'800'000'000)};

config::Discover discover(std::string name, config::DiscoverType type = config::DiscoverType::A,
                          uint16_t port = 9001, config::Duration interval = 5s) {
  config::Discover d;
  d.name = std::move(name);
  d.type = type;
  d.port = type == config::DiscoverType::SRV ? 0 : port;
  d.interval = interval;
  return d;
}

config::Config configWith(std::vector<config::Discover> entries,
                          config::Balance balance = config::Balance::RoundRobin) {
  config::Config config;
  config.global.dns.minInterval = 1s;
  config::Pool pool;
  pool.name = "web";
  pool.balance = balance;
  pool.discover = std::move(entries);
  config.pools.push_back(pool);
  return config;
}

Record record(const std::string& ip, uint16_t port, uint16_t priority = 0, uint16_t weight = 0) {
  Record r;
  if (ip.find(':') != std::string::npos) {
    auto& v6 = reinterpret_cast<sockaddr_in6&>(r.address);
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    inet_pton(AF_INET6, ip.c_str(), &v6.sin6_addr);
  } else {
    auto& v4 = reinterpret_cast<sockaddr_in&>(r.address);
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &v4.sin_addr);
  }
  r.priority = priority;
  r.weight = weight;
  return r;
}

LookupResult ok(std::vector<Record> records, std::chrono::seconds ttl = 300s) {
  LookupResult result;
  result.status = LookupStatus::Ok;
  result.records = std::move(records);
  result.ttl = ttl;
  return result;
}

LookupResult failed(LookupStatus status) {
  LookupResult result;
  result.status = status;
  result.detail = "test";
  return result;
}

std::vector<std::string> names(const config::Config& config, size_t pool = 0) {
  std::vector<std::string> out;
  for (const auto& member : config.pools[pool].members) out.push_back(member.name);
  return out;
}

// The one entry's lookup, which must be due at `now`.
size_t dueOne(Discovery& discovery, TimePoint now) {
  auto lookups = discovery.due(now);
  EXPECT_EQ(lookups.size(), 1u);
  return lookups.empty() ? ~size_t{0} : lookups[0].entry;
}

TEST(DiscoveryTest, MemberNameIsDnsNameSlashAddressAndPort) {
  EXPECT_EQ(memberName("api.internal", record("10.0.0.5", 9001).address), "api.internal/10.0.0.5:9001");
  EXPECT_EQ(memberName("x", record("::1", 80).address), "x/[::1]:80");
}

TEST(DiscoveryTest, FirstLookupIsDueAtOnceWithTheEntrysNameTypeAndPort) {
  TimePoint t0{};
  Discovery discovery(configWith({discover("api.internal", config::DiscoverType::AAAA, 7000)}), t0);
  EXPECT_FALSE(discovery.allAnswered());
  auto lookups = discovery.due(t0);
  ASSERT_EQ(lookups.size(), 1u);
  EXPECT_EQ(lookups[0].name, "api.internal");
  EXPECT_EQ(lookups[0].type, config::DiscoverType::AAAA);
  EXPECT_EQ(lookups[0].port, 7000);
}

TEST(DiscoveryTest, OneLookupPerEntryInFlight) {
  TimePoint t0{};
  Discovery discovery(configWith({discover("a.internal")}), t0);
  size_t id = dueOne(discovery, t0);
  // Long overdue, still in flight: nothing more is sent.
  EXPECT_TRUE(discovery.due(t0 + 1h).empty());
  discovery.onResult(id, ok({record("10.0.0.1", 9001)}), t0 + 1h, kWall);
  EXPECT_TRUE(discovery.due(t0 + 1h).empty());
  EXPECT_EQ(discovery.due(t0 + 1h + 5s).size(), 1u);
}

TEST(DiscoveryTest, IntervalWithoutShorterTtl) {
  TimePoint t0{};
  Discovery discovery(configWith({discover("a.internal", config::DiscoverType::A, 9001, 5s)}), t0);
  discovery.onResult(dueOne(discovery, t0), ok({record("10.0.0.1", 9001)}, 300s), t0, kWall);
  EXPECT_TRUE(discovery.due(t0 + 4999ms).empty());
  EXPECT_EQ(discovery.due(t0 + 5s).size(), 1u);
}

TEST(DiscoveryTest, TtlShortensTheInterval) {
  TimePoint t0{};
  Discovery discovery(configWith({discover("a.internal", config::DiscoverType::A, 9001, 30s)}), t0);
  discovery.onResult(dueOne(discovery, t0), ok({record("10.0.0.1", 9001)}, 3s), t0, kWall);
  EXPECT_TRUE(discovery.due(t0 + 2999ms).empty());
  EXPECT_EQ(discovery.due(t0 + 3s).size(), 1u);
}

TEST(DiscoveryTest, MinIntervalIsAFloorUnderTtlZero) {
  TimePoint t0{};
  config::Config config = configWith({discover("a.internal", config::DiscoverType::A, 9001, 30s)});
  config.global.dns.minInterval = 2s;
  Discovery discovery(config, t0);
  discovery.onResult(dueOne(discovery, t0), ok({record("10.0.0.1", 9001)}, 0s), t0, kWall);
  EXPECT_TRUE(discovery.due(t0 + 1999ms).empty());
  EXPECT_EQ(discovery.due(t0 + 2s).size(), 1u);
}

TEST(DiscoveryTest, MinIntervalIsAFloorUnderAShortInterval) {
  TimePoint t0{};
  config::Config config = configWith({discover("a.internal", config::DiscoverType::A, 9001, 100ms)});
  config.global.dns.minInterval = 1s;
  Discovery discovery(config, t0);
  discovery.onResult(dueOne(discovery, t0), failed(LookupStatus::Timeout), t0, kWall);
  EXPECT_TRUE(discovery.due(t0 + 999ms).empty());
  EXPECT_EQ(discovery.due(t0 + 1s).size(), 1u);
}

TEST(DiscoveryTest, AnswerMakesSortedMembersAfterStaticOnes) {
  TimePoint t0{};
  config::Config file = configWith({discover("a.internal")});
  config::Member fixed;
  fixed.name = "zz-static";
  fixed.address = *config::parseAddress("127.0.0.1:1", nullptr);
  file.pools[0].members.push_back(fixed);
  Discovery discovery(file, t0);
  EXPECT_TRUE(discovery.onResult(dueOne(discovery, t0),
                                 ok({record("10.0.0.2", 9001), record("10.0.0.1", 9001)}), t0, kWall));
  config::Config built = discovery.withDiscovered(file);
  EXPECT_EQ(names(built), (std::vector<std::string>{"zz-static", "a.internal/10.0.0.1:9001",
                                                    "a.internal/10.0.0.2:9001"}));
  const config::Member& member = built.pools[0].members[1];
  EXPECT_EQ(member.address.text, "10.0.0.1:9001");
  EXPECT_EQ(member.weight, 1);
  EXPECT_FALSE(member.backup);
  EXPECT_EQ(member.discoveredBy, "a.internal");
  EXPECT_TRUE(discovery.allAnswered());
  // The file itself is not changed.
  EXPECT_EQ(file.pools[0].members.size(), 1u);
}

TEST(DiscoveryTest, AnswerOrderChangesNothing) {
  TimePoint t0{};
  config::Config file = configWith({discover("a.internal")});
  Discovery discovery(file, t0);
  EXPECT_TRUE(discovery.onResult(dueOne(discovery, t0),
                                 ok({record("10.0.0.1", 9001), record("10.0.0.2", 9001), record("10.0.0.3", 9001)}),
                                 t0, kWall));
  auto before = names(discovery.withDiscovered(file));
  EXPECT_FALSE(discovery.onResult(dueOne(discovery, t0 + 5s),
                                  ok({record("10.0.0.3", 9001), record("10.0.0.1", 9001), record("10.0.0.2", 9001)}),
                                  t0 + 5s, kWall));
  EXPECT_EQ(names(discovery.withDiscovered(file)), before);
  EXPECT_EQ(discovery.status()[0].changes, 1u);
}

TEST(DiscoveryTest, AnAddedOrRemovedRecordIsAChange) {
  TimePoint t0{};
  config::Config file = configWith({discover("a.internal")});
  Discovery discovery(file, t0);
  discovery.onResult(dueOne(discovery, t0), ok({record("10.0.0.1", 9001)}), t0, kWall);
  EXPECT_TRUE(discovery.onResult(dueOne(discovery, t0 + 5s),
                                 ok({record("10.0.0.1", 9001), record("10.0.0.2", 9001)}), t0 + 5s, kWall));
  EXPECT_EQ(names(discovery.withDiscovered(file)).size(), 2u);
  EXPECT_TRUE(discovery.onResult(dueOne(discovery, t0 + 10s), ok({record("10.0.0.2", 9001)}), t0 + 10s, kWall));
  EXPECT_EQ(names(discovery.withDiscovered(file)), (std::vector<std::string>{"a.internal/10.0.0.2:9001"}));
}

class RemovalTest : public ::testing::TestWithParam<LookupStatus> {};

TEST_P(RemovalTest, RemovesOnlyAfterTheGraceOfOneInterval) {
  TimePoint t0{};
  config::Config file = configWith({discover("a.internal", config::DiscoverType::A, 9001, 5s)});
  Discovery discovery(file, t0);
  discovery.onResult(dueOne(discovery, t0), ok({record("10.0.0.1", 9001)}), t0, kWall);
  // The name goes away at t0+5s: the member stays for one interval.
  EXPECT_FALSE(discovery.onResult(dueOne(discovery, t0 + 5s), failed(GetParam()), t0 + 5s, kWall));
  EXPECT_FALSE(discovery.onTick(t0 + 9999ms));
  EXPECT_EQ(names(discovery.withDiscovered(file)).size(), 1u);
  EXPECT_TRUE(discovery.onTick(t0 + 10s));
  EXPECT_TRUE(names(discovery.withDiscovered(file)).empty());
  EXPECT_EQ(discovery.status()[0].members, 0u);
  EXPECT_FALSE(discovery.onTick(t0 + 11s));  // once
}

TEST_P(RemovalTest, AGoodAnswerWithinTheGraceCancelsIt) {
  TimePoint t0{};
  config::Config file = configWith({discover("a.internal", config::DiscoverType::A, 9001, 5s)});
  file.pools[0].discover[0].removeGrace = 20s;
  Discovery discovery(file, t0);
  discovery.onResult(dueOne(discovery, t0), ok({record("10.0.0.1", 9001)}), t0, kWall);
  EXPECT_FALSE(discovery.onResult(dueOne(discovery, t0 + 5s), failed(GetParam()), t0 + 5s, kWall));
  EXPECT_FALSE(discovery.onResult(dueOne(discovery, t0 + 10s), ok({record("10.0.0.1", 9001)}), t0 + 10s, kWall));
  EXPECT_FALSE(discovery.onTick(t0 + 1h));
  EXPECT_EQ(names(discovery.withDiscovered(file)).size(), 1u);
  // A new absence starts a new grace, from its own start.
  EXPECT_FALSE(discovery.onResult(dueOne(discovery, t0 + 1h), failed(GetParam()), t0 + 1h, kWall));
  EXPECT_FALSE(discovery.onTick(t0 + 1h + 19s));
  EXPECT_TRUE(discovery.onTick(t0 + 1h + 20s));
}

TEST_P(RemovalTest, ALookupThatFindsTheGracePassedRemovesAtOnce) {
  TimePoint t0{};
  config::Config file = configWith({discover("a.internal", config::DiscoverType::A, 9001, 5s)});
  Discovery discovery(file, t0);
  discovery.onResult(dueOne(discovery, t0), ok({record("10.0.0.1", 9001)}), t0, kWall);
  EXPECT_FALSE(discovery.onResult(dueOne(discovery, t0 + 5s), failed(GetParam()), t0 + 5s, kWall));
  EXPECT_TRUE(discovery.onResult(dueOne(discovery, t0 + 10s), failed(GetParam()), t0 + 10s, kWall));
  EXPECT_TRUE(names(discovery.withDiscovered(file)).empty());
  EXPECT_EQ(discovery.status()[0].changes, 2u);  // the first answer, the removal (once)
  EXPECT_EQ(discovery.status()[0].members, 0u);
}

INSTANTIATE_TEST_SUITE_P(NxDomainAndNoData, RemovalTest,
                         ::testing::Values(LookupStatus::NoSuchName, LookupStatus::NoData));

TEST(DiscoveryTest, AnOkAnswerWithoutRecordsCountsAsNoData) {
  TimePoint t0{};
  config::Config file = configWith({discover("a.internal", config::DiscoverType::A, 9001, 5s)});
  Discovery discovery(file, t0);
  discovery.onResult(dueOne(discovery, t0), ok({record("10.0.0.1", 9001)}), t0, kWall);
  EXPECT_FALSE(discovery.onResult(dueOne(discovery, t0 + 5s), ok({}), t0 + 5s, kWall));
  EXPECT_EQ(discovery.status()[0].lastStatus, LookupStatus::NoData);
  EXPECT_EQ(names(discovery.withDiscovered(file)).size(), 1u);
  EXPECT_TRUE(discovery.onTick(t0 + 10s));
}

class KeepTest : public ::testing::TestWithParam<LookupStatus> {};

TEST_P(KeepTest, KeepsTheLastGoodSetForever) {
  TimePoint t0{};
  config::Config file = configWith({discover("a.internal", config::DiscoverType::A, 9001, 5s)});
  Discovery discovery(file, t0);
  discovery.onResult(dueOne(discovery, t0), ok({record("10.0.0.1", 9001), record("10.0.0.2", 9001)}), t0, kWall);
  TimePoint t = t0;
  for (int i = 0; i < 10; ++i) {
    t += 5s;
    EXPECT_FALSE(discovery.onResult(dueOne(discovery, t), failed(GetParam()), t, kWall));
    EXPECT_FALSE(discovery.onTick(t + 1s));
  }
  EXPECT_EQ(names(discovery.withDiscovered(file)).size(), 2u);
  EntryStatus status = discovery.status()[0];
  EXPECT_EQ(status.lastStatus, GetParam());
  EXPECT_EQ(status.lookups[static_cast<size_t>(GetParam())], 10u);
  EXPECT_EQ(status.lookups[static_cast<size_t>(LookupStatus::Ok)], 1u);
  EXPECT_EQ(status.records, 2u);
  EXPECT_EQ(status.members, 2u);
}

TEST_P(KeepTest, DoesNotEndAGracePeriodEither) {
  TimePoint t0{};
  config::Config file = configWith({discover("a.internal", config::DiscoverType::A, 9001, 5s)});
  file.pools[0].discover[0].removeGrace = 20s;
  Discovery discovery(file, t0);
  discovery.onResult(dueOne(discovery, t0), ok({record("10.0.0.1", 9001)}), t0, kWall);
  discovery.onResult(dueOne(discovery, t0 + 5s), failed(LookupStatus::NoSuchName), t0 + 5s, kWall);
  for (auto t : {t0 + 10s, t0 + 15s, t0 + 20s})
    EXPECT_FALSE(discovery.onResult(dueOne(discovery, t), failed(GetParam()), t, kWall));
  EXPECT_FALSE(discovery.onTick(t0 + 24999ms));
  EXPECT_TRUE(discovery.onTick(t0 + 25s));  // the grace still ran out
}

INSTANTIATE_TEST_SUITE_P(FailuresThatKeep, KeepTest,
                         ::testing::Values(LookupStatus::Timeout, LookupStatus::ServerFailure,
                                           LookupStatus::Malformed, LookupStatus::LocalError));

TEST(DiscoveryTest, SrvLowestPriorityArePrimariesAndWeightIsMapped) {
  TimePoint t0{};
  config::Config file = configWith({discover("_web._tcp.internal", config::DiscoverType::SRV)});
  Discovery discovery(file, t0);
  discovery.onResult(dueOne(discovery, t0),
                     ok({record("10.0.0.1", 8001, 10, 0), record("10.0.0.2", 8002, 10, 5000),
                         record("10.0.0.3", 8003, 20, 7), record("10.0.0.4", 8004, 10, 60)}),
                     t0, kWall);
  config::Config built = discovery.withDiscovered(file);
  ASSERT_EQ(built.pools[0].members.size(), 4u);
  const auto& m = built.pools[0].members;
  EXPECT_EQ(m[0].name, "_web._tcp.internal/10.0.0.1:8001");
  EXPECT_EQ(m[0].weight, 1);  // 0 -> 1
  EXPECT_FALSE(m[0].backup);
  EXPECT_EQ(m[1].address.text, "10.0.0.2:8002");
  EXPECT_EQ(m[1].weight, 256);  // above 256 -> 256
  EXPECT_FALSE(m[1].backup);
  EXPECT_EQ(m[2].weight, 7);
  EXPECT_TRUE(m[2].backup);  // priority 20
  EXPECT_EQ(m[3].weight, 60);
  EXPECT_FALSE(m[3].backup);
}

TEST(DiscoveryTest, SrvPriorityOrWeightChangeIsAChange) {
  TimePoint t0{};
  config::Config file = configWith({discover("_web._tcp.internal", config::DiscoverType::SRV)});
  Discovery discovery(file, t0);
  discovery.onResult(dueOne(discovery, t0), ok({record("10.0.0.1", 8001, 1, 5), record("10.0.0.2", 8002, 2, 5)}),
                     t0, kWall);
  EXPECT_TRUE(discovery.onResult(dueOne(discovery, t0 + 5s),
                                 ok({record("10.0.0.1", 8001, 1, 9), record("10.0.0.2", 8002, 2, 5)}), t0 + 5s,
                                 kWall));
  EXPECT_TRUE(discovery.onResult(dueOne(discovery, t0 + 10s),
                                 ok({record("10.0.0.1", 8001, 3, 9), record("10.0.0.2", 8002, 2, 5)}), t0 + 10s,
                                 kWall));
  EXPECT_TRUE(discovery.withDiscovered(file).pools[0].members[0].backup);
}

TEST(DiscoveryTest, AStaticMemberWithTheSameNameWins) {
  TimePoint t0{};
  config::Config file = configWith({discover("a.internal")});
  config::Member fixed;
  fixed.name = "a.internal/10.0.0.1:9001";
  fixed.address = *config::parseAddress("127.0.0.9:1234", nullptr);
  fixed.weight = 9;
  file.pools[0].members.push_back(fixed);
  Discovery discovery(file, t0);
  discovery.onResult(dueOne(discovery, t0), ok({record("10.0.0.1", 9001), record("10.0.0.2", 9001)}), t0, kWall);
  config::Config built = discovery.withDiscovered(file);
  ASSERT_EQ(built.pools[0].members.size(), 2u);
  EXPECT_EQ(built.pools[0].members[0].address.text, "127.0.0.9:1234");
  EXPECT_EQ(built.pools[0].members[0].weight, 9);
  EXPECT_TRUE(built.pools[0].members[0].discoveredBy.empty());
  EXPECT_EQ(built.pools[0].members[1].name, "a.internal/10.0.0.2:9001");
}

TEST(DiscoveryTest, TwoEntriesOfOnePoolMergeSortedWithoutDuplicates) {
  TimePoint t0{};
  config::Config file = configWith({discover("b.internal"), discover("a.internal")});
  Discovery discovery(file, t0);
  auto lookups = discovery.due(t0);
  ASSERT_EQ(lookups.size(), 2u);
  discovery.onResult(lookups[0].entry, ok({record("10.0.0.1", 9001)}), t0, kWall);
  EXPECT_FALSE(discovery.allAnswered());
  discovery.onResult(lookups[1].entry, ok({record("10.0.0.1", 9001)}), t0, kWall);
  EXPECT_TRUE(discovery.allAnswered());
  EXPECT_EQ(names(discovery.withDiscovered(file)),
            (std::vector<std::string>{"a.internal/10.0.0.1:9001", "b.internal/10.0.0.1:9001"}));
}

TEST(DiscoveryTest, ReconfigureKeepsMatchingEntriesAndStartsNewOnesPending) {
  TimePoint t0{};
  config::Config file = configWith({discover("a.internal"), discover("b.internal")});
  Discovery discovery(file, t0);
  auto lookups = discovery.due(t0);
  ASSERT_EQ(lookups.size(), 2u);
  discovery.onResult(lookups[0].entry, ok({record("10.0.0.1", 9001)}), t0, kWall);
  size_t bInFlight = lookups[1].entry;

  // Reloaded: a.internal kept (now with another interval), b.internal kept
  // with its lookup in flight, c.internal new, port change = new entry.
  config::Config reloaded = configWith({discover("c.internal"), discover("a.internal", config::DiscoverType::A, 9001, 60s),
                                        discover("b.internal"), discover("a.internal", config::DiscoverType::A, 9002)});
  discovery.reconfigure(reloaded, t0 + 1s);
  EXPECT_FALSE(discovery.allAnswered());
  EXPECT_EQ(names(discovery.withDiscovered(reloaded)), (std::vector<std::string>{"a.internal/10.0.0.1:9001"}));
  auto now = discovery.due(t0 + 1s);  // c.internal and a.internal:9002; not b (in flight), not a (due at t0+5s)
  ASSERT_EQ(now.size(), 2u);
  EXPECT_EQ(now[0].name, "c.internal");
  EXPECT_EQ(now[1].port, 9002);
  // b's answer, sent before the reload, lands on b.
  EXPECT_TRUE(discovery.onResult(bInFlight, ok({record("10.0.0.7", 9001)}), t0 + 2s, kWall));
  std::vector<EntryStatus> status = discovery.status();
  ASSERT_EQ(status.size(), 4u);
  EXPECT_EQ(status[0].name, "c.internal");
  EXPECT_FALSE(status[0].answered);
  EXPECT_TRUE(status[1].answered);
  EXPECT_EQ(status[1].members, 1u);
  EXPECT_EQ(status[2].members, 1u);

  // An entry the next reload drops: its late answer changes nothing.
  discovery.reconfigure(configWith({discover("a.internal")}), t0 + 3s);
  EXPECT_FALSE(discovery.onResult(now[0].entry, ok({record("10.0.0.9", 9001)}), t0 + 4s, kWall));
  EXPECT_EQ(discovery.status().size(), 1u);
}

TEST(DiscoveryTest, StatusShowsTheLastResultTimeAndRecords) {
  TimePoint t0{};
  Discovery discovery(configWith({discover("a.internal")}), t0);
  discovery.onResult(dueOne(discovery, t0), ok({record("10.0.0.1", 9001), record("10.0.0.2", 9001)}), t0, kWall);
  discovery.onResult(dueOne(discovery, t0 + 5s), failed(LookupStatus::ServerFailure), t0 + 5s, kWall + 5s);
  EntryStatus status = discovery.status()[0];
  EXPECT_EQ(status.pool, "web");
  EXPECT_EQ(status.name, "a.internal");
  EXPECT_TRUE(status.answered);
  EXPECT_EQ(status.lastStatus, LookupStatus::ServerFailure);
  EXPECT_EQ(status.lastDetail, "test");
  EXPECT_EQ(status.lastAt, kWall + 5s);
  EXPECT_EQ(status.records, 2u);
  EXPECT_EQ(status.members, 2u);
}

std::vector<Record> manyRecords(size_t count) {
  std::vector<Record> records;
  for (size_t i = 0; i < count; ++i)
    records.push_back(record(fmt::format("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255), 9001));
  return records;
}

TEST(DiscoveryTest, ConsistentHashTableGrowsDeterministicallyForManyMembers) {
  TimePoint t0{};
  config::Config file = configWith({discover("a.internal")}, config::Balance::ConsistentHash);
  file.pools[0].tableSize = 65537;
  Discovery discovery(file, t0);
  discovery.onResult(dueOne(discovery, t0), ok(manyRecords(600)), t0, kWall);
  EXPECT_EQ(discovery.withDiscovered(file).pools[0].tableSize, 65537u);  // 600 fit

  discovery.onResult(dueOne(discovery, t0 + 5s), ok(manyRecords(1000)), t0 + 5s, kWall);
  uint32_t size = discovery.withDiscovered(file).pools[0].tableSize;
  EXPECT_TRUE(policy::validateTableSize(size, 1000).empty()) << size;
  EXPECT_EQ(size, policy::nextPrime(2 * 65537));

  // Another host with the answer in another order builds the same size,
  // and a few members more or less do not change it.
  auto shuffled = manyRecords(1001);
  std::reverse(shuffled.begin(), shuffled.end());
  Discovery other(file, t0);
  other.onResult(dueOne(other, t0), ok(shuffled), t0, kWall);
  EXPECT_EQ(other.withDiscovered(file).pools[0].tableSize, size);
}

TEST(DiscoveryTest, OtherPoliciesKeepTheirTableSize) {
  TimePoint t0{};
  config::Config file = configWith({discover("a.internal")});
  Discovery discovery(file, t0);
  discovery.onResult(dueOne(discovery, t0), ok(manyRecords(1000)), t0, kWall);
  EXPECT_EQ(discovery.withDiscovered(file).pools[0].tableSize, file.pools[0].tableSize);
}

}  // namespace
}  // namespace lb::discovery
