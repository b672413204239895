// Pools across config generations, without sockets: building the next
// generation writes nothing the running one reads; pickers take their groups
// from the same snapshot as the consistent-hash tables; state follows member
// names; commitRuntime retires what left and brings up unchecked members.

#include "lb/pool.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <map>

#include "lb/runtime.h"
#include "tests/unit/member_lines.h"

namespace lb {
namespace {

config::Pool poolConfig(config::Balance balance, std::vector<MemberLine> lines, bool health = false) {
  config::Pool pool;
  pool.name = "p";
  pool.balance = balance;
  pool.tableSize = 1009;
  pool.members = membersOf(lines);
  if (health) pool.health = config::Health{};
  return pool;
}

config::Config configOf(config::Pool pool) {
  config::Config config;
  config.pools.push_back(std::move(pool));
  return config;
}

sockaddr_storage client(uint32_t n) {
  sockaddr_storage storage{};
  auto& v4 = reinterpret_cast<sockaddr_in&>(storage);
  v4.sin_family = AF_INET;
  v4.sin_addr.s_addr = htonl(0x0a000000u + n);
  return storage;
}

// How often each member is picked for `count` clients (or picks).
std::map<std::string, int> picks(PoolPicker& picker, int count) {
  std::map<std::string, int> names;
  for (int i = 0; i < count; ++i)
    if (Member* m = picker.pick(client(static_cast<uint32_t>(i)), {})) ++names[m->name];
  return names;
}

const std::vector<MemberLine> kWithBackup = {
    {"m1", "127.0.0.1:9001"}, {"m2", "127.0.0.1:9002"}, {"m3", "127.0.0.1:9003", 1, true}};

TEST(PoolGenerations, BuildingTheNextLeavesTheRunningOneAlone) {
  Pool running(poolConfig(config::Balance::ConsistentHash, kWithBackup));
  auto snapshot = running.snapshot();
  uint64_t version = running.version();
  Pool next(poolConfig(config::Balance::ConsistentHash,
                       {{"m1", "127.0.0.1:9001", 3}, {"m3", "127.0.0.1:9003", 1, false}}),
            &running);
  EXPECT_EQ(running.findMember("m1")->weight.load(), 1u);
  EXPECT_TRUE(running.findMember("m3")->backup);
  EXPECT_EQ(running.snapshot(), snapshot);
  EXPECT_EQ(running.version(), version);
  EXPECT_EQ(next.findMember("m1")->weight.load(), 3u);
  EXPECT_FALSE(next.findMember("m3")->backup);
  // Distinct objects, one shared state and endpoint per name and address.
  EXPECT_NE(next.findMember("m1"), running.findMember("m1"));
  EXPECT_EQ(next.findMember("m1")->state, running.findMember("m1")->state);
  EXPECT_EQ(next.findMember("m3")->endpoint, running.findMember("m3")->endpoint);
  EXPECT_FALSE(running.findMember("m2")->endpoint->retired());
}

TEST(PoolGenerations, GroupsAndTablesComeFromOneSnapshot) {
  Pool running(poolConfig(config::Balance::ConsistentHash, kWithBackup));
  PoolPicker picker(running, 1);
  // A refused reload: built, then dropped.
  Pool(poolConfig(config::Balance::ConsistentHash,
                  {{"m1", "127.0.0.1:9001"}, {"m2", "127.0.0.1:9002"}, {"m3", "127.0.0.1:9003", 1, false}}),
       &running);
  running.setWeight(*running.findMember("m2"), 5);
  auto snapshot = running.snapshot();
  for (const Pool::Group* group : {&snapshot->primary, &snapshot->backup}) {
    EXPECT_EQ(group->table->memberCount(), group->members.size());
    EXPECT_EQ(group->specs.size(), group->members.size());
  }
  ASSERT_EQ(snapshot->primary.members.size(), 2u);
  auto names = picks(picker, 600);
  EXPECT_EQ(names.count("m3"), 0u) << "the backup got traffic while the primaries are up";
  EXPECT_GT(names["m2"], 3 * names["m1"]);  // weights 5 and 1
}

TEST(PoolGenerations, PickerFollowsAWeightChange) {
  Pool pool(poolConfig(config::Balance::RoundRobin, {{"m1", "127.0.0.1:9001"}, {"m2", "127.0.0.1:9002"}}));
  PoolPicker picker(pool, 1);
  EXPECT_EQ(picks(picker, 60), (std::map<std::string, int>{{"m1", 30}, {"m2", 30}}));
  pool.setWeight(*pool.findMember("m2"), 5);
  EXPECT_EQ(picks(picker, 60), (std::map<std::string, int>{{"m1", 10}, {"m2", 50}}));
}

TEST(PoolGenerations, BackupsServeOnlyWhenNoPrimaryIsUp) {
  Pool pool(poolConfig(config::Balance::LeastConn, kWithBackup));
  PoolPicker picker(pool, 1);
  EXPECT_EQ(picks(picker, 10).count("m3"), 0u);
  pool.findMember("m1")->up = false;
  pool.findMember("m2")->draining = true;
  EXPECT_EQ(picks(picker, 10), (std::map<std::string, int>{{"m3", 10}}));
}

TEST(RuntimeCommit, AddressChangeKeepsStateAndRetiresTheOldAddress) {
  auto running =
      buildRuntime(configOf(poolConfig(config::Balance::RoundRobin, kWithBackup)), nullptr, nullptr, nullptr);
  Member& before = *running->pools[0]->findMember("m2");
  before.draining = true;
  before.counters.connections = 7;
  auto next = buildRuntime(configOf(poolConfig(config::Balance::RoundRobin,
                                               {{"m1", "127.0.0.1:9001"}, {"m2", "127.0.0.1:9102"}})),
                           running.get(), nullptr, nullptr);
  Member& after = *next->pools[0]->findMember("m2");
  EXPECT_TRUE(after.draining);
  EXPECT_EQ(after.counters.connections.load(), 7u);
  EXPECT_EQ(after.address.text, "127.0.0.1:9102");
  EXPECT_FALSE(before.endpoint->retired()) << "retired before the reload was accepted";

  auto retired = commitRuntime(*running, *next, 1000);
  ASSERT_EQ(retired.size(), 2u);
  EXPECT_EQ(retired[0].member, "m2");
  EXPECT_EQ(retired[0].address, "127.0.0.1:9002");
  EXPECT_EQ(retired[0].movedTo, "127.0.0.1:9102");
  EXPECT_EQ(retired[1].member, "m3");
  EXPECT_EQ(retired[1].movedTo, "");
  EXPECT_EQ(before.removedFor(1500), 500u);
  EXPECT_EQ(after.removedFor(1500), 0u);
  EXPECT_EQ(running->pools[0]->findMember("m1")->removedFor(1500), 0u);
}

TEST(RuntimeCommit, MembersOfAPoolWithoutHealthChecksAreUp) {
  auto withChecks = configOf(poolConfig(config::Balance::RoundRobin, kWithBackup, true));
  auto withoutChecks = configOf(poolConfig(config::Balance::RoundRobin, kWithBackup));
  auto running = buildRuntime(withChecks, nullptr, nullptr, nullptr);
  running->pools[0]->findMember("m1")->up = false;
  auto checked = buildRuntime(withChecks, running.get(), nullptr, nullptr);
  commitRuntime(*running, *checked, 1000);
  EXPECT_FALSE(checked->pools[0]->findMember("m1")->up) << "a health-checked member keeps its state";

  auto unchecked = buildRuntime(withoutChecks, checked.get(), nullptr, nullptr);
  EXPECT_FALSE(checked->pools[0]->findMember("m1")->up) << "building wrote into the running generation";
  commitRuntime(*checked, *unchecked, 2000);
  EXPECT_TRUE(unchecked->pools[0]->findMember("m1")->up);
}

TEST(MemberEndpoint, RetiredForNeverUnderflows) {
  MemberEndpoint endpoint;
  EXPECT_EQ(endpoint.retiredFor(5000), 0u);
  endpoint.retire(5000);
  // A worker's clock read just before the control thread's.
  EXPECT_EQ(endpoint.retiredFor(4999), 0u);
  EXPECT_EQ(endpoint.retiredFor(5000), 0u);
  EXPECT_EQ(endpoint.retiredFor(8000), 3000u);
  endpoint.retire(7000);  // a second retirement keeps the first time
  EXPECT_EQ(endpoint.retiredFor(8000), 3000u);
}

}  // namespace
}  // namespace lb
