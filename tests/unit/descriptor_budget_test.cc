// Tests for lb/descriptor_budget: what the open-file limit allows, and the
// refusal of a [global] max_connections it cannot hold.

#include "lb/descriptor_budget.h"

#include <gtest/gtest.h>

#include <string>

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
  std::string whyNot;
  auto limit = planSessions(config, 2, 20000, &whyNot);
  ASSERT_TRUE(limit) << whyNot;
  EXPECT_TRUE(limit->derived);
  EXPECT_EQ(static_cast<uint64_t>(limit->maxConnections), (20000 - reserve) / kDescriptorsPerSession);
  EXPECT_NE(limit->how.find("derived: (20000 open files - " + std::to_string(reserve) + " for the process) / 6"),
            std::string::npos)
      << limit->how;
}

TEST(DescriptorBudget, NoMaximumWhenTheLimitLeavesNoRoomForASession) {
  config::Config config = load();
  uint64_t reserve = processReserve(config, 2).total;
  std::string whyNot;
  auto none = planSessions(config, 2, reserve + kDescriptorsPerSession - 1, &whyNot);
  ASSERT_TRUE(none) << whyNot;
  EXPECT_EQ(none->maxConnections, 0);
  EXPECT_NE(none->how.find("leaves no room for a session"), std::string::npos) << none->how;
  auto one = planSessions(config, 2, reserve + kDescriptorsPerSession, &whyNot);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->maxConnections, 1);
}

TEST(DescriptorBudget, AcceptsAnExplicitMaximumThatFitsExactly) {
  config::Config config = load();
  config.global.maxConnections = 1000;
  uint64_t needed = 1000 * kDescriptorsPerSession + processReserve(config, 2).total;
  std::string whyNot;
  auto limit = planSessions(config, 2, needed, &whyNot);
  ASSERT_TRUE(limit) << whyNot;
  EXPECT_FALSE(limit->derived);
  EXPECT_EQ(limit->maxConnections, 1000);
}

TEST(DescriptorBudget, RefusesAnExplicitMaximumOverTheLimitWithTheFigures) {
  config::Config config = load();
  config.global.maxConnections = 1000;
  uint64_t reserve = processReserve(config, 2).total;
  uint64_t needed = 1000 * kDescriptorsPerSession + reserve;
  std::string whyNot;
  EXPECT_FALSE(planSessions(config, 2, needed - 1, &whyNot));
  EXPECT_NE(whyNot.find("[global] max_connections = 1000 needs " + std::to_string(needed) + " open files"),
            std::string::npos)
      << whyNot;
  EXPECT_NE(whyNot.find("the open-file limit is " + std::to_string(needed - 1) + " (room for 999 sessions)"),
            std::string::npos)
      << whyNot;
}

}  // namespace
}  // namespace lb
