// Tests for the discovery keys of config/ (issue 12): [[pool.NAME.discover]]
// and [global.dns], pools whose members all come from DNS, what `--check`
// prints for them and what the reload preview shows. The bad-file corpus
// (tests/unit/data/config/bad/discover.toml, dns*.toml) holds the bulk of
// the error positions; these tests cover the rules one at a time.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "config/config.h"
#include "config/diff.h"
#include "config/discover_loader.h"
#include "lb/preview.h"

namespace config {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const fs::path kDataDir = fs::path(RINGLB_TEST_DATA) / "config";

std::string describe(const LoadResult& result) {
  std::string text;
  for (const Error& error : result.errors) text += formatError(error) + "\n";
  return text;
}

// A listener on pool "web", then `pools` (line 5 onwards).
std::string withPools(std::string_view pools) {
  return fmt::format("[[listener]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\npool = \"web\"\n{}", pools);
}

// Pool "web" with one discover table whose keys are `keys` (from line 7).
std::string withDiscover(std::string_view keys) {
  return withPools(fmt::format("[pool.web]\n[[pool.web.discover]]\n{}", keys));
}

// [global.dns] with `keys` (from line 2), before a pool that discovers.
std::string withDns(std::string_view keys) {
  return fmt::format("[global.dns]\n{}", keys) +
         withPools("[pool.web]\n[[pool.web.discover]]\nname = \"api.internal\"\nport = 9001\n");
}

Config load(const std::string& text) {
  LoadResult result = loadString(text, "x.toml");
  EXPECT_TRUE(result.config.has_value()) << describe(result) << text;
  return result.config.value_or(Config{});
}

std::string errorsOf(const std::string& text) {
  LoadResult result = loadString(text, "x.toml");
  EXPECT_FALSE(result.config.has_value()) << text;
  return describe(result);
}

// ---------------------------------------------------------------- good files

TEST(DiscoverConfig, GoodFileSetsEveryKey) {
  LoadResult result = loadFile((kDataDir / "good" / "discover.toml").string());
  ASSERT_TRUE(result.config.has_value()) << describe(result);
  const Config& config = *result.config;
  const Pool* api = config.findPool("api");
  ASSERT_NE(api, nullptr);
  EXPECT_TRUE(api->members.empty());
  ASSERT_EQ(api->discover.size(), 2u);
  EXPECT_EQ(api->discover[0].name, "api.service.consul");  // lower case, no trailing dot
  EXPECT_EQ(api->discover[0].type, DiscoverType::A);       // the default
  EXPECT_EQ(api->discover[0].port, 9001);
  EXPECT_EQ(api->discover[0].interval, 5s);                // the default
  EXPECT_EQ(api->discover[0].removeGrace, 0s);             // unset: one interval
  EXPECT_EQ(api->discover[0].position.line, 23);           // the [[pool.api.discover]] header
  EXPECT_EQ(api->discover[0].position.column, 1);
  EXPECT_EQ(api->discover[1].type, DiscoverType::AAAA);
  EXPECT_EQ(api->discover[1].interval, 30s);
  EXPECT_EQ(api->discover[1].removeGrace, 2min);
  EXPECT_EQ(api->tableSize, 65537u);

  const Pool* mixed = config.findPool("mixed");
  ASSERT_NE(mixed, nullptr);
  ASSERT_EQ(mixed->members.size(), 1u);
  ASSERT_EQ(mixed->discover.size(), 3u);
  EXPECT_EQ(mixed->discover[0].name, "_http._tcp.mixed.internal");
  EXPECT_EQ(mixed->discover[0].type, DiscoverType::SRV);
  EXPECT_EQ(mixed->discover[0].port, 0);  // each record's own
  EXPECT_EQ(mixed->discover[0].interval, 1s);
  EXPECT_EQ(mixed->discover[2].port, 9003);  // same name and type, another port: another entry

  const Global::Dns& dns = config.global.dns;
  ASSERT_EQ(dns.servers.size(), 3u);
  EXPECT_EQ(dns.servers[0].text, "127.0.0.1:8600");
  EXPECT_EQ(dns.servers[1].text, "10.0.0.2:53");
  EXPECT_EQ(dns.servers[2].text, "[fd00::53]:5353");
  EXPECT_EQ(dns.timeout, 500ms);
  EXPECT_EQ(dns.attempts, 3);
  EXPECT_EQ(dns.minInterval, 250ms);
  EXPECT_EQ(dns.position.line, 5);
  EXPECT_EQ(summary(config), "ok: 2 listeners, 2 pools, 1 member, 5 discoveries");
}

TEST(DiscoverConfig, WithoutDiscoveryNothingChanges) {
  Config config = load(withPools("[pool.web]\n[[pool.web.member]]\naddress = \"127.0.0.1:9001\"\n"));
  EXPECT_TRUE(config.pools[0].discover.empty());
  EXPECT_TRUE(config.global.dns.servers.empty());  // /etc/resolv.conf's
  EXPECT_EQ(config.global.dns.timeout, 2s);
  EXPECT_EQ(config.global.dns.attempts, 2);
  EXPECT_EQ(config.global.dns.minInterval, 1s);
  EXPECT_EQ(config.global.dns.position.line, 0);
  EXPECT_EQ(summary(config), "ok: 1 listener, 1 pool, 1 member");
}

TEST(DiscoverConfig, SummaryCountsDiscoveries) {
  Config config = load(withDiscover("name = \"api.internal\"\nport = 9001\n"));
  EXPECT_EQ(summary(config), "ok: 1 listener, 1 pool, 0 members, 1 discovery");
}

// The same tables as inline tables.
TEST(DiscoverConfig, InlineTables) {
  Config config = load(withPools(
      "[pool.web]\ndiscover = [{ name = \"a.internal\", port = 1 }, { name = \"_a._tcp.internal\", type = \"SRV\" }]\n"
      "[global]\ndns = { servers = [\"::1\"], attempts = 1 }\n"));
  ASSERT_EQ(config.pools[0].discover.size(), 2u);
  EXPECT_EQ(config.pools[0].discover[1].type, DiscoverType::SRV);
  EXPECT_EQ(config.pools[0].discover[1].position.line, 6);
  ASSERT_EQ(config.global.dns.servers.size(), 1u);
  EXPECT_EQ(config.global.dns.servers[0].text, "[::1]:53");
  EXPECT_EQ(config.global.dns.attempts, 1);
}

// ---------------------------------------------------------------- names

TEST(DiscoverName, NormalisedLikeAServerNameWithoutWildcards) {
  EXPECT_EQ(normalizeDnsName("API.Internal."), "api.internal");
  EXPECT_EQ(normalizeDnsName("_http._tcp.Consul"), "_http._tcp.consul");
  EXPECT_EQ(normalizeDnsName("localhost"), "localhost");
  EXPECT_EQ(normalizeDnsName("a-1.b-2"), "a-1.b-2");
  std::string label63(63, 'a');
  EXPECT_EQ(normalizeDnsName(label63 + ".x"), label63 + ".x");
  EXPECT_EQ(normalizeDnsName(label63 + "a.x"), std::nullopt);
  // 253 characters in all (four labels of 63, dots between), a trailing dot not counted.
  std::string longest = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
  ASSERT_EQ(longest.size(), 253u);
  EXPECT_EQ(normalizeDnsName(longest), longest);
  EXPECT_EQ(normalizeDnsName(longest + "."), longest);
  EXPECT_EQ(normalizeDnsName(longest + "b"), std::nullopt);
  const std::string_view bad[] = {"", ".", "a..b", ".a", "a b", "*.a.b", "a*.b.c", "a/b", "a:80", "é.internal",
                                  std::string_view("a\0b", 3)};
  for (std::string_view name : bad) EXPECT_EQ(normalizeDnsName(name), std::nullopt) << name;
}

TEST(DiscoverName, ErrorsAtTheName) {
  std::string label64(64, 'a');
  EXPECT_EQ(errorsOf(withDiscover(fmt::format("name = \"{}.internal\"\nport = 1\n", label64))),
            fmt::format(R"(x.toml:7:8: "name" must be a DNS name (letters, digits, "-", "_" and dots; labels of 1 )"
                        R"(to 63 characters, at most 253 in all), got "{}...")" "\n",
                        label64.substr(0, 64)));
  std::string tooLong = std::string(63, 'a') + "." + std::string(63, 'a') + "." + std::string(63, 'a') + "." +
                        std::string(62, 'a');  // 254
  EXPECT_NE(errorsOf(withDiscover(fmt::format("name = \"{}\"\nport = 1\n", tooLong)))
                .find("x.toml:7:8: \"name\" must be a DNS name"),
            std::string::npos);
  EXPECT_EQ(errorsOf(withDiscover("name = \"api\\ninternal\"\nport = 1\n")),
            R"(x.toml:7:8: "name" must be a DNS name (letters, digits, "-", "_" and dots; labels of 1 to 63 )"
            R"(characters, at most 253 in all), got "api\ninternal")" "\n");
}

// An address is a member, not a name to look up: the error says so.
TEST(DiscoverName, AnAddressIsAnErrorThatPointsToMembers) {
  for (std::string_view address : {"10.0.0.1", "10.0.0.1.", "::1", "[::1]", "fe80::1", "10.0.0.1:9001",
                                   "[2001:db8::1]:443"}) {
    EXPECT_EQ(errorsOf(withDiscover(fmt::format("name = \"{}\"\nport = 9001\n", address))),
              fmt::format(R"(x.toml:7:8: "name" must be a DNS name, got the address "{}" (an address is a )"
                          R"(member: add a [[pool.web.member]] with address = "IP:PORT"))" "\n",
                          address));
  }
  // Names made of digits that are no address are names.
  EXPECT_EQ(load(withDiscover("name = \"10.0.0\"\nport = 1\n")).pools[0].discover[0].name, "10.0.0");
  EXPECT_EQ(load(withDiscover("name = \"1e100.net\"\nport = 1\n")).pools[0].discover[0].name, "1e100.net");
}

// ---------------------------------------------------------------- type and port

TEST(DiscoverType, ChoicesAndDefault) {
  EXPECT_EQ(load(withDiscover("name = \"a.b\"\nport = 1\n")).pools[0].discover[0].type, DiscoverType::A);
  EXPECT_EQ(load(withDiscover("name = \"a.b\"\ntype = \"A\"\nport = 1\n")).pools[0].discover[0].type,
            DiscoverType::A);
  EXPECT_EQ(load(withDiscover("name = \"a.b\"\ntype = \"AAAA\"\nport = 1\n")).pools[0].discover[0].type,
            DiscoverType::AAAA);
  EXPECT_EQ(load(withDiscover("name = \"a.b\"\ntype = \"SRV\"\n")).pools[0].discover[0].type, DiscoverType::SRV);
  EXPECT_EQ(errorsOf(withDiscover("name = \"a.b\"\ntype = \"srv\"\n")),
            "x.toml:8:8: unknown discover type \"srv\" (expected A, AAAA or SRV)\n");
  EXPECT_EQ(errorsOf(withDiscover("name = \"a.b\"\ntype = 1\nport = 1\n")),
            "x.toml:8:8: \"type\" must be a string, got integer\n");
}

TEST(DiscoverPort, RequiredForAddressRecordsAndRefusedForSrv) {
  EXPECT_EQ(errorsOf(withDiscover("name = \"a.b\"\n")),
            "x.toml:6:1: missing required key \"port\" in [[pool.web.discover]] (type \"A\" records carry no "
            "port)\n");
  EXPECT_EQ(errorsOf(withDiscover("name = \"a.b\"\ntype = \"AAAA\"\n")),
            "x.toml:6:1: missing required key \"port\" in [[pool.web.discover]] (type \"AAAA\" records carry no "
            "port)\n");
  EXPECT_EQ(errorsOf(withDiscover("name = \"_a._tcp.b\"\ntype = \"SRV\"\nport = 80\n")),
            "x.toml:9:8: \"port\" must not be set with type \"SRV\" (each SRV record carries its own port)\n");
  // The order of the keys in the table does not matter.
  EXPECT_EQ(errorsOf(withDiscover("port = 80\nname = \"_a._tcp.b\"\ntype = \"SRV\"\n")),
            "x.toml:7:8: \"port\" must not be set with type \"SRV\" (each SRV record carries its own port)\n");
  EXPECT_EQ(load(withDiscover("port = 1\nname = \"a.b\"\n")).pools[0].discover[0].port, 1);
  EXPECT_EQ(load(withDiscover("name = \"a.b\"\nport = 65535\n")).pools[0].discover[0].port, 65535);
  EXPECT_EQ(errorsOf(withDiscover("name = \"a.b\"\nport = -1\n")),
            "x.toml:8:8: \"port\" must be an integer from 1 to 65535, got -1\n");
  // An unknown type: only the type is reported, and a port is still checked.
  EXPECT_EQ(errorsOf(withDiscover("name = \"a.b\"\ntype = \"MX\"\nport = 0\n")),
            "x.toml:8:8: unknown discover type \"MX\" (expected A, AAAA or SRV)\n"
            "x.toml:9:8: \"port\" must be an integer from 1 to 65535, got 0\n");
}

// ---------------------------------------------------------------- durations

TEST(DiscoverDurations, IntervalAndRemoveGrace) {
  Discover entry = load(withDiscover("name = \"a.b\"\nport = 1\ninterval = \"250ms\"\nremove_grace = \"1h\"\n"))
                       .pools[0]
                       .discover[0];
  EXPECT_EQ(entry.interval, 250ms);
  EXPECT_EQ(entry.removeGrace, 1h);
  EXPECT_EQ(errorsOf(withDiscover("name = \"a.b\"\nport = 1\ninterval = \"0ms\"\n")),
            "x.toml:9:12: \"interval\" must be greater than zero\n");
  EXPECT_EQ(errorsOf(withDiscover("name = \"a.b\"\nport = 1\nremove_grace = \"0s\"\n")),
            "x.toml:9:16: \"remove_grace\" must be greater than zero (leave it out for one interval)\n");
  EXPECT_EQ(errorsOf(withDiscover("name = \"a.b\"\nport = 1\nremove_grace = \"-1s\"\n")),
            "x.toml:9:16: \"remove_grace\": expected a whole number followed by ms, s, m or h, got \"-1s\"\n");
  EXPECT_EQ(errorsOf(withDiscover("name = \"a.b\"\nport = 1\nttl = \"5s\"\n")),
            "x.toml:9:1: unknown key \"ttl\" in [[pool.web.discover]]\n");
}

// ---------------------------------------------------------------- entries of a pool

// Name, type and port make an entry (a reload keeps its members by them).
TEST(DiscoverEntries, TheSameNameTypeAndPortTwiceIsAnError) {
  EXPECT_EQ(errorsOf(withPools("[pool.web]\n[[pool.web.discover]]\nname = \"a.b\"\nport = 1\n"
                               "[[pool.web.discover]]\nname = \"A.B.\"\nport = 1\ninterval = \"1s\"\n")),
            "x.toml:10:8: duplicate discover \"a.b A port 1\" in pool \"web\" (first at line 7)\n");
  EXPECT_EQ(errorsOf(withPools("[pool.web]\n[[pool.web.discover]]\nname = \"_a._tcp.b\"\ntype = \"SRV\"\n"
                               "[[pool.web.discover]]\nname = \"_a._tcp.b\"\ntype = \"SRV\"\n")),
            "x.toml:10:8: duplicate discover \"_a._tcp.b SRV\" in pool \"web\" (first at line 7)\n");
  // Another port, another type, or another pool: other entries.
  Config config = load(withPools(
      "[pool.web]\n[[pool.web.discover]]\nname = \"a.b\"\nport = 1\n[[pool.web.discover]]\nname = \"a.b\"\nport = 2\n"
      "[[pool.web.discover]]\nname = \"a.b\"\ntype = \"AAAA\"\nport = 1\n"
      "[[pool.web.discover]]\nname = \"a.b\"\ntype = \"SRV\"\n"
      "[pool.other]\n[[pool.other.discover]]\nname = \"a.b\"\nport = 1\n"));
  EXPECT_EQ(config.pools[0].discover.size(), 4u);
  EXPECT_EQ(config.pools[1].discover.size(), 1u);
}

TEST(DiscoverEntries, APoolNeedsMembersOrDiscovery) {
  EXPECT_EQ(errorsOf(withPools("[pool.web]\nbalance = \"least_conn\"\n")),
            "x.toml:5:1: pool \"web\" has no members (add a [[pool.web.member]] or a [[pool.web.discover]] "
            "table)\n");
  EXPECT_EQ(errorsOf(withPools("[pool.web]\ndiscover = []\n")),
            "x.toml:6:12: pool \"web\" has no members (add a [[pool.web.member]] or a [[pool.web.discover]] "
            "table)\n");
  EXPECT_EQ(errorsOf(withPools("[pool.web]\nmember = []\ndiscover = []\n")),
            "x.toml:6:10: pool \"web\" has no members (add a [[pool.web.member]] or a [[pool.web.discover]] "
            "table)\n");
  // An empty member list beside discovery is fine, and so is an empty discover list beside members.
  EXPECT_TRUE(load(withPools("[pool.web]\nmember = []\n[[pool.web.discover]]\nname = \"a.b\"\nport = 1\n"))
                  .pools[0]
                  .members.empty());
  EXPECT_EQ(load(withPools("[pool.web]\ndiscover = []\n[[pool.web.member]]\naddress = \"127.0.0.1:1\"\n"))
                .pools[0]
                .members.size(),
            1u);
  EXPECT_EQ(errorsOf(withPools("[pool.web]\ndiscover = [1]\n")),
            "x.toml:6:13: \"discover\" must be an array of tables ([[pool.web.discover]]), got integer\n");
}

// A pool whose discover entries are all wrong reports them, not "no members".
TEST(DiscoverEntries, ABadEntryIsNotAlsoAMissingMember) {
  EXPECT_EQ(errorsOf(withDiscover("name = \"10.0.0.1\"\nport = 1\n")).find("has no members"), std::string::npos);
}

// Only static members are known when the file is read: discovered members
// are checked against table_size when they arrive.
TEST(DiscoverEntries, TableSizeCountsStaticMembers) {
  std::string members;
  for (int i = 1; i <= 2; ++i) members += fmt::format("[[pool.web.member]]\naddress = \"127.0.0.1:{}\"\n", i);
  std::string discover = "[[pool.web.discover]]\nname = \"a.b\"\nport = 1\n";
  EXPECT_EQ(load(withPools("[pool.web]\nbalance = \"consistent_hash\"\ntable_size = 3\n" + discover))
                .pools[0]
                .tableSize,
            3u);
  EXPECT_EQ(errorsOf(withPools("[pool.web]\nbalance = \"consistent_hash\"\ntable_size = 101\n" + members + discover)),
            "x.toml:7:14: \"table_size\" must be at least 100 x the 2 static members, got 101\n");
  EXPECT_EQ(errorsOf(withPools("[pool.web]\nbalance = \"consistent_hash\"\ntable_size = 101\n" + members)),
            "x.toml:7:14: \"table_size\" must be at least 100 x the 2 members, got 101\n");  // as before
}

// ---------------------------------------------------------------- [global.dns]

TEST(DnsServers, Forms) {
  struct Case {
    std::string_view text;
    std::string_view normalised;
  };
  const Case cases[] = {
      {"127.0.0.1", "127.0.0.1:53"},       {"127.0.0.1:8600", "127.0.0.1:8600"}, {"::1", "[::1]:53"},
      {"[::1]", "[::1]:53"},               {"[::1]:5353", "[::1]:5353"},         {"FD00::0:53", "[fd00::53]:53"},
      {"10.0.0.1:053", "10.0.0.1:53"},
  };
  for (const Case& c : cases) {
    std::string whyNot;
    std::optional<Address> server = parseDnsServer(c.text, &whyNot);
    ASSERT_TRUE(server.has_value()) << c.text << ": " << whyNot;
    EXPECT_EQ(server->text, c.normalised);
  }
}

TEST(DnsServers, Rejects) {
  const std::string forms = R"(expected "IP", "IP:port" or "[IPv6]:port", got )";
  struct Case {
    std::string_view text;
    std::string whyNot;
  };
  const Case cases[] = {
      {"", forms + R"("")"},
      {"localhost", forms + R"("localhost")"},
      {"dns.internal:53", forms + R"("dns.internal:53")"},
      {"127.0.0.1:", R"(invalid port "" in "127.0.0.1:" (expected 1 to 65535))"},
      {"127.0.0.1:0", R"(invalid port "0" in "127.0.0.1:0" (expected 1 to 65535))"},
      {"[::1]:99999", R"(invalid port "99999" in "[::1]:99999" (expected 1 to 65535))"},
      {"[::g]:53", R"(invalid IPv6 address "::g" in "[::g]:53")"},
      {"[]", forms + R"("[]")"},
      {"1.2.3", forms + R"("1.2.3")"},
      {" 127.0.0.1", forms + R"(" 127.0.0.1")"},
      {std::string_view("127.0.0.1\0", 10), forms + R"("127.0.0.1\x00")"},
  };
  for (const Case& c : cases) {
    std::string whyNot;
    EXPECT_FALSE(parseDnsServer(c.text, &whyNot).has_value()) << c.text;
    EXPECT_EQ(whyNot, c.whyNot) << c.text;
  }
}

TEST(DnsServers, ListRules) {
  EXPECT_EQ(errorsOf(withDns("servers = []\n")),
            "x.toml:2:11: \"servers\" must not be empty (leave it out to use those of /etc/resolv.conf)\n");
  EXPECT_EQ(errorsOf(withDns("servers = \"127.0.0.1\"\n")),
            "x.toml:2:11: \"servers\" must be an array such as [\"127.0.0.1:8600\"], got string\n");
  EXPECT_EQ(load(withDns("servers = [\"10.0.0.1\", \"10.0.0.2\", \"10.0.0.3\"]\n")).global.dns.servers.size(), 3u);
  EXPECT_EQ(errorsOf(withDns("servers = [\"10.0.0.1\", \"10.0.0.2\", \"10.0.0.3\", \"10.0.0.4\"]\n")),
            "x.toml:2:11: \"servers\" must list at most 3 servers, got 4 (c-ares asks them one after another: "
            "more only make a failed lookup slower)\n");
  EXPECT_EQ(errorsOf(withDns("servers = [\"10.0.0.1\", \"10.0.0.1:53\", 53]\n")),
            "x.toml:2:24: duplicate DNS server \"10.0.0.1:53\" (first at line 2)\n"
            "x.toml:2:39: \"servers\" entries must be strings, got integer\n");
}

TEST(DnsKeys, BoundsAndUnknownKeys) {
  Global::Dns dns = load(withDns("timeout = \"1m\"\nattempts = 10\nmin_interval = \"1ms\"\n")).global.dns;
  EXPECT_EQ(dns.timeout, 1min);
  EXPECT_EQ(dns.attempts, 10);
  EXPECT_EQ(dns.minInterval, 1ms);
  EXPECT_EQ(dns.position.line, 1);
  EXPECT_EQ(load(withDns("attempts = 1\n")).global.dns.attempts, 1);
  EXPECT_EQ(errorsOf(withDns("timeout = \"60001ms\"\n")),
            "x.toml:2:11: \"timeout\" must be at most 1m (it bounds one attempt at one server)\n");
  EXPECT_EQ(errorsOf(withDns("timeout = \"0s\"\n")), "x.toml:2:11: \"timeout\" must be greater than zero\n");
  EXPECT_EQ(errorsOf(withDns("attempts = 11\n")),
            "x.toml:2:12: \"attempts\" must be an integer from 1 to 10, got 11\n");
  EXPECT_EQ(errorsOf(withDns("min_interval = \"0s\"\n")),
            "x.toml:2:16: \"min_interval\" must be greater than zero\n");
  EXPECT_EQ(errorsOf(withDns("search = [\"internal\"]\n")), "x.toml:2:1: unknown key \"search\" in [global.dns]\n");
}

// --check resolves nothing: a name that exists nowhere is fine.
TEST(DnsKeys, CheckingResolvesNothing) {
  Config config = load(withDiscover("name = \"no-such-name.invalid\"\nport = 1\n"));
  EXPECT_EQ(config.pools[0].discover[0].name, "no-such-name.invalid");
}

// ---------------------------------------------------------------- reload preview

const char* const kBase = R"([global.dns]
servers = ["127.0.0.1:8600"]
[[listener]]
name = "web"
bind = "127.0.0.1:8080"
pool = "web"
[pool.web]
[[pool.web.discover]]
name = "a.internal"
port = 9001
[[pool.web.discover]]
name = "_b._tcp.internal"
type = "SRV"
)";

std::string previewOf(std::string_view before, std::string_view after) {
  return lb::previewReload(load(std::string(before)), load(std::string(after)));
}

std::string replaced(std::string text, std::string_view from, std::string_view to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return text.replace(at, from.size(), to);
}

TEST(DiscoverPreview, AddedRemovedAndChangedEntries) {
  EXPECT_EQ(previewOf(kBase, kBase), "pool web: unchanged\n");
  EXPECT_EQ(previewOf(kBase, replaced(kBase, "port = 9001\n", "port = 9001\ninterval = \"10s\"\nremove_grace = \"1m\"\n")),
            "pool web:\n  ~ discover a.internal A port 9001 interval 5s -> 10s\n"
            "  ~ discover a.internal A port 9001 remove_grace (one interval) -> 1m\n");
  // Another port is another entry: its members are found anew.
  EXPECT_EQ(previewOf(kBase, replaced(kBase, "port = 9001", "port = 9002")),
            "pool web:\n  + discover a.internal A port 9002 (every 5s)\n  - discover a.internal A port 9001\n");
  EXPECT_EQ(previewOf(kBase, std::string(kBase) + "[[pool.web.discover]]\nname = \"c.internal\"\ntype = "
                                                  "\"AAAA\"\nport = 1\ninterval = \"1m\"\n"),
            "pool web:\n  + discover c.internal AAAA port 1 (every 1m)\n");
  EXPECT_EQ(previewOf(std::string(kBase) + "[[pool.web.member]]\nname = \"m1\"\naddress = \"127.0.0.1:9001\"\n",
                      replaced(kBase, "[[pool.web.discover]]\nname = \"_b._tcp.internal\"\ntype = \"SRV\"\n",
                               "[[pool.web.member]]\nname = \"m1\"\naddress = \"127.0.0.1:9001\"\n")),
            "pool web:\n  - discover _b._tcp.internal SRV\n");
  // The order of the tables means nothing.
  EXPECT_EQ(previewOf(kBase, replaced(kBase,
                                      "[[pool.web.discover]]\nname = \"a.internal\"\nport = 9001\n"
                                      "[[pool.web.discover]]\nname = \"_b._tcp.internal\"\ntype = \"SRV\"\n",
                                      "[[pool.web.discover]]\nname = \"_b._tcp.internal\"\ntype = \"SRV\"\n"
                                      "[[pool.web.discover]]\nname = \"A.internal.\"\nport = 9001\n")),
            "pool web: unchanged\n");
}

TEST(DiscoverPreview, DnsKeys) {
  EXPECT_EQ(previewOf(kBase, replaced(kBase, "servers = [\"127.0.0.1:8600\"]\n",
                                      "servers = [\"127.0.0.1:8600\", \"::1\"]\ntimeout = \"1s\"\nattempts = 3\n"
                                      "min_interval = \"5s\"\n")),
            "[global.dns] servers [127.0.0.1:8600] -> [127.0.0.1:8600, [::1]:53]\n"
            "[global.dns] timeout 2s -> 1s\n[global.dns] attempts 2 -> 3\n[global.dns] min_interval 1s -> 5s\n"
            "pool web: unchanged\n");
  EXPECT_EQ(previewOf(kBase, replaced(kBase, "[global.dns]\nservers = [\"127.0.0.1:8600\"]\n", "")),
            "[global.dns] servers [127.0.0.1:8600] -> (/etc/resolv.conf)\npool web: unchanged\n");
}

TEST(DiscoverPreview, AnAddedPoolSaysItDiscovers) {
  std::string added = std::string(kBase) + "[pool.api]\n[[pool.api.discover]]\nname = \"api.internal\"\nport = 1\n";
  EXPECT_EQ(previewOf(kBase, added), "pool web: unchanged\n+ pool api (0 members, 1 discovery)\n");
  std::string plain = std::string(kBase) + "[pool.api]\n[[pool.api.member]]\naddress = \"127.0.0.1:1\"\n";
  EXPECT_EQ(previewOf(kBase, plain), "pool web: unchanged\n+ pool api (1 members)\n");  // as before
}

// consistent_hash over discovered members: the file holds only the static
// ones, so the share of keys that would move is not known before DNS answers.
TEST(DiscoverPreview, ConsistentHashSharesAreUnknown) {
  std::string before = replaced(kBase, "[pool.web]\n", "[pool.web]\nbalance = \"consistent_hash\"\n");
  std::string resized = replaced(before, "balance = \"consistent_hash\"\n",
                                 "balance = \"consistent_hash\"\ntable_size = 1009\n");
  EXPECT_EQ(previewOf(before, resized),
            "pool web:\n  table_size 65537 -> 1009\n  consistent-hash keys that would move: unknown (members from DNS)\n");
}

}  // namespace
}  // namespace config
