// What a reload does to the edge state of a listener (lb/runtime.cc): the
// per-source table is kept when the listener keeps its limits, so counts
// carry over; a change makes a new table while sessions admitted to the old
// one keep it alive; the process-wide session count is one across
// generations.

#include <gtest/gtest.h>

#include "lb/runtime.h"

namespace lb {
namespace {

config::Config configWith(int perSource, int ratePerSource, int tableSize = 1024) {
  config::Config config;
  config::Pool pool;
  pool.name = "p";
  config::Member member;
  member.name = "m";
  std::string why;
  member.address = *config::parseAddress("127.0.0.1:9001", &why);
  pool.members.push_back(member);
  config.pools.push_back(pool);
  config::Listener listener;
  listener.name = "front";
  listener.bind = *config::parseAddress("127.0.0.1:8080", &why);
  listener.pool = "p";
  listener.maxConnectionsPerSource = perSource;
  listener.connectionRatePerSource = ratePerSource;
  config.listeners.push_back(listener);
  config.global.sourceTableSize = tableSize;
  return config;
}

TEST(RuntimeEdge, NoLimitsNoTable) {
  auto runtime = buildRuntime(configWith(0, 0), nullptr, nullptr, nullptr);
  ASSERT_TRUE(runtime);
  EXPECT_EQ(runtime->listeners[0]->sourceLimits, nullptr);
}

TEST(RuntimeEdge, ReloadWithTheSameLimitsKeepsTheTable) {
  auto first = buildRuntime(configWith(3, 0), nullptr, nullptr, nullptr);
  ASSERT_TRUE(first && first->listeners[0]->sourceLimits);
  auto second = buildRuntime(configWith(3, 0), first.get(), nullptr, nullptr);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->listeners[0]->sourceLimits, first->listeners[0]->sourceLimits);
}

TEST(RuntimeEdge, ChangedLimitsMakeANewTableTheOldOneLivesWhileHeld) {
  auto first = buildRuntime(configWith(3, 0), nullptr, nullptr, nullptr);
  std::shared_ptr<edge::SourceLimits> held = first->listeners[0]->sourceLimits;  // as a session holds it
  for (auto config : {configWith(4, 0), configWith(3, 5), configWith(3, 0, 2048)}) {
    auto next = buildRuntime(config, first.get(), nullptr, nullptr);
    ASSERT_TRUE(next && next->listeners[0]->sourceLimits);
    EXPECT_NE(next->listeners[0]->sourceLimits, held);
  }
  first.reset();
  EXPECT_EQ(held.use_count(), 1);  // the session's reference is what keeps it
}

TEST(RuntimeEdge, OneSessionCountAcrossGenerations) {
  auto first = buildRuntime(configWith(0, 0), nullptr, nullptr, nullptr);
  auto second = buildRuntime(configWith(0, 0), first.get(), nullptr, nullptr);
  EXPECT_EQ(first->globalSessions, second->globalSessions);
  auto fresh = buildRuntime(configWith(0, 0), nullptr, nullptr, nullptr);
  EXPECT_NE(fresh->globalSessions, first->globalSessions);
}

}  // namespace
}  // namespace lb
