// Tests for lb/descriptor_budget: what the open-file limit allows, the
// refusal of a [global] max_connections it cannot hold, and the pipe budget
// the workers' pools share (lb/ring/pipe_pool.h).

#include "lb/descriptor_budget.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "lb/ring/pipe_pool.h"
#include "lb/worker.h"

namespace lb {
namespace {

config::Config load(const std::string& extra = "") {
  std::string text =
      "[global]\nworkers = 2\n" + extra +
      "\n[[listener]]\nname = \"front\"\nbind = \"127.0.0.1:8080\"\npool = \"p\"\n"
      "\n[pool.p]\n[[pool.p.member]]\naddress = \"127.0.0.1:9001\"\n"
      "[[pool.p.member]]\naddress = \"127.0.0.1:9002\"\n";
  config::LoadResult result = config::loadString(text, "test.toml");
  EXPECT_TRUE(result.config) << (result.errors.empty() ? "" : result.errors[0].message);
  return *result.config;
}

TEST(DescriptorBudget, ReserveCountsWorkersProbesAndAdmin) {
  config::Config config = load();
  uint64_t bare = processReserve(config, 2).total;
  // Each worker: its listening sockets (as many again bound by a reload,
  // and the control thread's descriptors of them for an upgrade), ring,
  // eventfd and spare pipes.
  EXPECT_EQ(processReserve(config, 3).total - bare, Worker::descriptorsPerWorker(1) + 2);
  config.pools[0].health = config::Health{};
  uint64_t probed = processReserve(config, 2).total;
  EXPECT_EQ(probed - bare, 4u);  // two members, each probed by two generations at once
  config.admin.listen = config::parseAddress("127.0.0.1:9900", nullptr);
  // the admin socket, the control thread's descriptor of it and 64 connections
  EXPECT_EQ(processReserve(config, 2).total - probed, 66u);
}

TEST(DescriptorBudget, DerivesTheDefaultFromTheLimit) {
  config::Config config = load();
  uint64_t reserve = processReserve(config, 2).total;
  uint64_t room = 20000 - reserve;
  std::string whyNot;
  auto limit = planSessions(config, 2, 20000, &whyNot);
  ASSERT_TRUE(limit) << whyNot;
  EXPECT_TRUE(limit->derived);
  auto sessions = static_cast<uint64_t>(limit->maxConnections);
  // Two sockets per session and a pipe (two descriptors) per 8 sessions.
  EXPECT_EQ(sessions, room * 8 / 18);
  EXPECT_EQ(limit->maxPipes, (room - 2 * sessions) / 2);
  EXPECT_LE(2 * sessions + 2 * limit->maxPipes, room);
  EXPECT_GE(limit->maxPipes, sessions / 8);
  // PERF.md sizes its tests for 8,000 proxied connections on 20,000 files.
  EXPECT_GE(sessions, 8000u);
  EXPECT_NE(limit->how.find("derived: 20000 open files - " + std::to_string(reserve) +
                            " for the process, 2 per session and a pipe (2) per 8 sessions; " +
                            std::to_string(limit->maxPipes) + " pipes"),
            std::string::npos)
      << limit->how;
}

TEST(DescriptorBudget, NoMaximumWhenTheLimitLeavesNoRoomForASession) {
  config::Config config = load();
  uint64_t reserve = processReserve(config, 2).total;
  std::string whyNot;
  auto none = planSessions(config, 2, reserve + 2, &whyNot);
  ASSERT_TRUE(none) << whyNot;
  EXPECT_EQ(none->maxConnections, 0);
  EXPECT_EQ(none->maxPipes, kNoPipeLimit);
  EXPECT_NE(none->how.find("leaves no room for a session"), std::string::npos) << none->how;
  auto one = planSessions(config, 2, reserve + 3, &whyNot);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->maxConnections, 1);
  EXPECT_EQ(one->maxPipes, 0u);
}

TEST(DescriptorBudget, AnExplicitMaximumGetsWhatIsLeftAsPipes) {
  config::Config config = load();
  config.global.maxConnections = 1000;
  uint64_t needed = 1000 * kDescriptorsPerSession + processReserve(config, 2).total;
  std::string whyNot;
  auto exact = planSessions(config, 2, needed, &whyNot);
  ASSERT_TRUE(exact) << whyNot;
  EXPECT_FALSE(exact->derived);
  EXPECT_EQ(exact->maxConnections, 1000);
  EXPECT_EQ(exact->maxPipes, 0u);  // bulk transfers copy
  auto roomy = planSessions(config, 2, needed + 11, &whyNot);
  ASSERT_TRUE(roomy) << whyNot;
  EXPECT_EQ(roomy->maxPipes, 5u);
  EXPECT_NE(roomy->how.find("configured; needs " + std::to_string(needed) + " of " + std::to_string(needed + 11) +
                            " open files; the other 11 allow 5 pipes"),
            std::string::npos)
      << roomy->how;
}

TEST(DescriptorBudget, RefusesAnExplicitMaximumOverTheLimitWithTheFigures) {
  config::Config config = load();
  config.global.maxConnections = 1000;
  uint64_t reserve = processReserve(config, 2).total;
  uint64_t needed = 1000 * kDescriptorsPerSession + reserve;
  std::string whyNot;
  EXPECT_FALSE(planSessions(config, 2, needed - 1, &whyNot));
  EXPECT_NE(whyNot.find("[global] max_connections = 1000 needs " + std::to_string(needed) +
                        " open files (1000 x 2 per session (its sockets) + " + std::to_string(reserve)),
            std::string::npos)
      << whyNot;
  EXPECT_NE(whyNot.find("the open-file limit is " + std::to_string(needed - 1) + " (room for 999 sessions)"),
            std::string::npos)
      << whyNot;
}

TEST(PipeBudget, TakesUpToItsLimitAndGivesBack) {
  PipeBudget budget;
  EXPECT_TRUE(budget.tryTake());  // no limit until one is set
  budget.give();
  budget.setLimit(2);
  EXPECT_TRUE(budget.tryTake());
  EXPECT_TRUE(budget.tryTake());
  EXPECT_FALSE(budget.tryTake());
  EXPECT_EQ(budget.inUse(), 2u);
  budget.give();
  EXPECT_TRUE(budget.tryTake());
  budget.setLimit(1);  // a reload lowering it: nothing is taken back, no more given out
  EXPECT_FALSE(budget.tryTake());
  budget.give();
  EXPECT_FALSE(budget.tryTake());
  budget.give();
  EXPECT_TRUE(budget.tryTake());
}

TEST(PipeBudget, PoolsShareItAndCountSparePipesOnlyWhileInUse) {
  auto budget = std::make_shared<PipeBudget>();
  budget->setLimit(2);
  PipePool first(64 * 1024, 4), second(64 * 1024, 4);
  first.setBudget(budget);
  second.setBudget(budget);
  Pipe a, b, c;
  ASSERT_EQ(first.acquire(&a), 0);
  ASSERT_EQ(second.acquire(&b), 0);
  EXPECT_EQ(second.acquire(&c), PipePool::kBudgetSpent);
  EXPECT_FALSE(c.valid());
  first.release(&a);  // to first's spares: no longer in use
  EXPECT_EQ(budget->inUse(), 1u);
  EXPECT_EQ(first.spare(), 1u);
  ASSERT_EQ(second.acquire(&c), 0);
  EXPECT_EQ(first.acquire(&a), PipePool::kBudgetSpent);  // a spare pipe counts once handed out
  second.drop(&b);
  ASSERT_EQ(first.acquire(&a), 0);
  EXPECT_EQ(first.spare(), 0u);
  first.release(&a);
  second.release(&c);
  EXPECT_EQ(budget->inUse(), 0u);
}

}  // namespace
}  // namespace lb
