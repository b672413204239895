// A pool with no members (issue 12: its members all come from DNS, which
// has not answered yet or answered with nothing): building a generation,
// picking under every balance, a reload to and from members, and the admin
// endpoint's renderings all work, and a pick finds nothing, as when every
// member is down.

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "lb/metrics.h"
#include "lb/pool.h"
#include "lb/runtime.h"
#include "lb/status_page.h"

namespace lb {
namespace {

constexpr std::string_view kBalances[] = {"round_robin", "least_conn", "consistent_hash", "random_two"};

// A listener on pool "api", whose members come only from DNS; `extra` goes
// into [pool.api].
config::Config discoveringConfig(std::string_view balance, std::string_view extra = "") {
  std::string text = fmt::format(
      "[[listener]]\nname = \"front\"\nbind = \"127.0.0.1:8080\"\npool = \"api\"\n"
      "[pool.api]\nbalance = \"{}\"\n{}\n[[pool.api.discover]]\nname = \"api.internal\"\nport = 9001\n",
      balance, extra);
  config::LoadResult result = config::loadString(text, "x.toml");
  EXPECT_TRUE(result.config.has_value()) << (result.errors.empty() ? "" : config::formatError(result.errors[0]));
  return result.config.value_or(config::Config{});
}

sockaddr_storage client(uint32_t n) {
  sockaddr_storage storage{};
  auto& v4 = reinterpret_cast<sockaddr_in&>(storage);
  v4.sin_family = AF_INET;
  v4.sin_addr.s_addr = htonl(0x0a000000u + n);
  v4.sin_port = htons(static_cast<uint16_t>(40000 + n));
  return storage;
}

TEST(EmptyPool, EveryBalancePicksNothing) {
  for (std::string_view balance : kBalances) {
    for (std::string_view extra : {"", "when_all_down = \"use_all\"", "hash_key = \"source_ip_port\""}) {
      SCOPED_TRACE(fmt::format("{} {}", balance, extra));
      auto runtime = buildRuntime(discoveringConfig(balance, extra), nullptr, nullptr, nullptr);
      ASSERT_TRUE(runtime);
      const Pool& pool = *runtime->pools[0];
      EXPECT_TRUE(pool.members().empty());
      EXPECT_TRUE(pool.snapshot()->primary.members.empty());
      EXPECT_TRUE(pool.snapshot()->backup.members.empty());
      PoolPicker picker(pool, 1);
      for (uint32_t i = 0; i < 5; ++i) EXPECT_EQ(picker.pick(client(i), {}), nullptr);
    }
  }
}

TEST(EmptyPool, ConsistentHashTablesHaveNoSlots) {
  auto runtime = buildRuntime(discoveringConfig("consistent_hash", "hash_balance_factor = 1.5"), nullptr, nullptr,
                              nullptr);
  ASSERT_TRUE(runtime);
  auto snapshot = runtime->pools[0]->snapshot();
  ASSERT_NE(snapshot->primary.table, nullptr);
  EXPECT_EQ(snapshot->primary.table->size(), 0u);
  EXPECT_EQ(snapshot->primary.table->memberFor(42), policy::MaglevTable::kNoMember);
  PoolPicker picker(*runtime->pools[0], 1);
  EXPECT_EQ(picker.pick(client(1), {}), nullptr);
}

// The pool's members go away in a reload (DNS answered NXDOMAIN after its
// grace) and come back in the next: the addresses are retired, the picker
// of the empty generation finds nothing, and the member that comes back is
// picked again, at an address no reload has retired.
TEST(EmptyPool, AReloadToAndFromNoMembers) {
  config::Config withMember = discoveringConfig("round_robin");
  config::Member member;
  member.name = "api.internal/127.0.0.1:9001";
  member.discoveredBy = "api.internal";
  std::string why;
  member.address = *config::parseAddress("127.0.0.1:9001", &why);
  withMember.pools[0].members.push_back(member);
  config::Config empty = discoveringConfig("round_robin");

  auto first = buildRuntime(withMember, nullptr, nullptr, nullptr);
  ASSERT_TRUE(first);
  auto second = buildRuntime(empty, first.get(), nullptr, nullptr);
  ASSERT_TRUE(second);
  std::vector<RetiredMember> retired = commitRuntime(*first, *second, 1000);
  ASSERT_EQ(retired.size(), 1u);
  EXPECT_EQ(retired[0].member, "api.internal/127.0.0.1:9001");
  EXPECT_TRUE(first->pools[0]->members()[0]->endpoint->retired());
  PoolPicker emptyPicker(*second->pools[0], 1);
  EXPECT_EQ(emptyPicker.pick(client(1), {}), nullptr);

  auto third = buildRuntime(withMember, second.get(), nullptr, nullptr);
  ASSERT_TRUE(third);
  EXPECT_TRUE(commitRuntime(*second, *third, 2000).empty());
  PoolPicker picker(*third->pools[0], 1);
  Member* picked = picker.pick(client(1), {});
  ASSERT_NE(picked, nullptr);
  EXPECT_EQ(picked->name, "api.internal/127.0.0.1:9001");
  EXPECT_FALSE(picked->endpoint->retired());
}

// /metrics, /status (JSON) and the status page with a pool of no members:
// the pool is listed, with no member lines.
TEST(EmptyPool, ReportsRender) {
  auto runtime = buildRuntime(discoveringConfig("least_conn", "[pool.api.health]\nkind = \"tcp\""), nullptr,
                              nullptr, nullptr);
  ASSERT_TRUE(runtime);
  ReportSources sources;
  sources.runtime = runtime.get();
  std::string metrics = renderMetrics(sources);
  EXPECT_NE(metrics.find("ringlb_pool_no_member_total{pool=\"api\"} 0\n"), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("member=\""), std::string::npos) << metrics;
  std::string json = renderStatusJson(sources);
  EXPECT_NE(json.find(R"({"name":"api","balance":"least_conn","health_checks":true,"members":[]})"),
            std::string::npos)
      << json;
  std::string page = renderStatusPage(sources);
  EXPECT_NE(page.find("<h2>pool api"), std::string::npos);
  EXPECT_NE(page.find("<td colspan=\"14\" class=\"muted\">no members</td>"), std::string::npos) << page;
}

}  // namespace
}  // namespace lb
