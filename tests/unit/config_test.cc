// Tests for config/: the value parsers, the good and bad file corpus in
// tests/unit/data/config/, and the small public helpers.

#include "config/config.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

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

Config loadGood(const std::string& name) {
  LoadResult result = loadFile((kDataDir / "good" / name).string());
  EXPECT_TRUE(result.errors.empty()) << describe(result);
  EXPECT_TRUE(result.config.has_value());
  return result.config.value_or(Config{});
}

std::vector<std::string> filesIn(const std::string& subdir) {
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(kDataDir / subdir))
    if (entry.path().extension() == ".toml") names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// ---------------------------------------------------------------- durations

TEST(ParseDuration, AcceptsEachUnit) {
  EXPECT_EQ(parseDuration("250ms", nullptr), Duration(250));
  EXPECT_EQ(parseDuration("2s", nullptr), Duration(2000));
  EXPECT_EQ(parseDuration("1m", nullptr), Duration(60'000));
  EXPECT_EQ(parseDuration("1h", nullptr), Duration(3'600'000));
  EXPECT_EQ(parseDuration("0s", nullptr), Duration(0));  // zero is the caller's business
  EXPECT_EQ(parseDuration("007s", nullptr), Duration(7000));
  EXPECT_EQ(parseDuration("1000000h", nullptr), Duration(3'600'000'000'000));
}

TEST(ParseDuration, RejectsMalformedText) {
  for (std::string_view text : {"2", "2 s", " 2s", "2s ", "-1s", "+1s", "1.5s", "", "2d", "s", "ms",
                                "2S", "2sec", "1h30m", "0x10s", "2mss"}) {
    std::string whyNot;
    EXPECT_FALSE(parseDuration(text, &whyNot).has_value()) << text;
    EXPECT_EQ(whyNot, "expected a whole number followed by ms, s, m or h, got \"" +
                          std::string(text) + "\"");
  }
}

TEST(ParseDuration, RejectsOverflow) {
  for (std::string_view text :
       {"1000001h", "60000001m", "99999999999999999999999999ms", "18446744073709551616s"}) {
    std::string whyNot;
    EXPECT_FALSE(parseDuration(text, &whyNot).has_value()) << text;
    EXPECT_NE(whyNot.find("is too long"), std::string::npos) << whyNot;
  }
  EXPECT_FALSE(parseDuration("1000001h", nullptr).has_value());  // whyNot is optional
}

// ---------------------------------------------------------------- addresses

TEST(ParseAddress, ParsesIpv4) {
  std::optional<Address> address = parseAddress("127.0.0.1:9001", nullptr);
  ASSERT_TRUE(address.has_value());
  EXPECT_EQ(address->family(), AF_INET);
  EXPECT_EQ(address->length, sizeof(sockaddr_in));
  EXPECT_EQ(address->port(), 9001);
  EXPECT_EQ(address->text, "127.0.0.1:9001");
  const auto* sin = reinterpret_cast<const sockaddr_in*>(address->sockaddrPtr());
  EXPECT_EQ(sin->sin_port, htons(9001));
  EXPECT_EQ(sin->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
}

TEST(ParseAddress, ParsesIpv6) {
  std::optional<Address> address = parseAddress("[::1]:65535", nullptr);
  ASSERT_TRUE(address.has_value());
  EXPECT_EQ(address->family(), AF_INET6);
  EXPECT_EQ(address->length, sizeof(sockaddr_in6));
  EXPECT_EQ(address->port(), 65535);
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(address->sockaddrPtr());
  EXPECT_EQ(sin6->sin6_port, htons(65535));
  EXPECT_EQ(std::memcmp(&sin6->sin6_addr, &in6addr_loopback, sizeof(in6_addr)), 0);
}

TEST(ParseAddress, NormalisesText) {
  EXPECT_EQ(parseAddress("[0:0::0:1]:80", nullptr)->text, "[::1]:80");
  EXPECT_EQ(parseAddress("[::]:8080", nullptr)->text, "[::]:8080");
  EXPECT_EQ(parseAddress("[FE80::A]:1", nullptr)->text, "[fe80::a]:1");
  EXPECT_EQ(parseAddress("[::ffff:10.0.0.1]:1", nullptr)->text, "[::ffff:10.0.0.1]:1");
  EXPECT_EQ(parseAddress("0.0.0.0:00080", nullptr)->text, "0.0.0.0:80");
  EXPECT_EQ(parseAddress("0.0.0.0:1", nullptr)->port(), 1);
}

TEST(ParseAddress, RejectsWhatIsNotNumericIpAndPort) {
  struct Case {
    std::string_view text;
    std::string_view whyNot;
  };
  const Case cases[] = {
      {"localhost:80", R"(expected "IPv4:port" or "[IPv6]:port", got "localhost:80")"},
      {"example.com:443", R"(expected "IPv4:port" or "[IPv6]:port", got "example.com:443")"},
      {"127.0.0.1", R"(expected "IPv4:port" or "[IPv6]:port", got "127.0.0.1")"},
      {"", R"(expected "IPv4:port" or "[IPv6]:port", got "")"},
      {"::1:80", R"(expected "IPv4:port" or "[IPv6]:port", got "::1:80")"},
      {"[::1]", R"(expected "IPv4:port" or "[IPv6]:port", got "[::1]")"},
      {"[::1]80", R"(expected "IPv4:port" or "[IPv6]:port", got "[::1]80")"},
      {"[::1:80", R"(expected "IPv4:port" or "[IPv6]:port", got "[::1:80")"},
      {"1.2.3:80", R"(expected "IPv4:port" or "[IPv6]:port", got "1.2.3:80")"},
      {"1.2.3.256:80", R"(expected "IPv4:port" or "[IPv6]:port", got "1.2.3.256:80")"},
      {" 1.2.3.4:80", R"(expected "IPv4:port" or "[IPv6]:port", got " 1.2.3.4:80")"},
      {"[1.2.3.4]:80", R"(invalid IPv6 address "1.2.3.4" in "[1.2.3.4]:80")"},
      {"[fe80::1%eth0]:80", R"(invalid IPv6 address "fe80::1%eth0" in "[fe80::1%eth0]:80")"},
      {"[]:80", R"(invalid IPv6 address "" in "[]:80")"},
      {"1.2.3.4:0", R"(invalid port "0" in "1.2.3.4:0" (expected 1 to 65535))"},
      {"1.2.3.4:65536", R"(invalid port "65536" in "1.2.3.4:65536" (expected 1 to 65535))"},
      {"1.2.3.4:", R"(invalid port "" in "1.2.3.4:" (expected 1 to 65535))"},
      {"1.2.3.4:-1", R"(invalid port "-1" in "1.2.3.4:-1" (expected 1 to 65535))"},
      {"1.2.3.4:+80", R"(invalid port "+80" in "1.2.3.4:+80" (expected 1 to 65535))"},
      {"1.2.3.4:http", R"(invalid port "http" in "1.2.3.4:http" (expected 1 to 65535))"},
      {"[::1]:0", R"(invalid port "0" in "[::1]:0" (expected 1 to 65535))"},
      {"[::1]:123456", R"(invalid port "123456" in "[::1]:123456" (expected 1 to 65535))"},
  };
  for (const Case& c : cases) {
    std::string whyNot;
    EXPECT_FALSE(parseAddress(c.text, &whyNot).has_value()) << c.text;
    EXPECT_EQ(whyNot, c.whyNot);
  }
  EXPECT_FALSE(parseAddress("localhost:80", nullptr).has_value());  // whyNot is optional
}

// ---------------------------------------------------------------- good files

TEST(GoodFiles, FullFileSetsEveryField) {
  Config config = loadGood("full.toml");
  EXPECT_EQ(config.sourceName, (kDataDir / "good" / "full.toml").string());
  EXPECT_EQ(config.global.workers, 4);
  EXPECT_EQ(config.global.logLevel, LogLevel::Debug);
  EXPECT_EQ(config.global.accessLog, "/var/log/ringlb/access.log");
  EXPECT_EQ(config.global.shutdownTimeout, 45s);
  ASSERT_TRUE(config.admin.listen.has_value());
  EXPECT_EQ(config.admin.listen->text, "127.0.0.1:9900");
  EXPECT_EQ(config.admin.token, "s3cret");

  ASSERT_EQ(config.listeners.size(), 3u);
  const Listener& orders = config.listeners[0];
  EXPECT_EQ(orders.name, "orders");
  EXPECT_EQ(orders.bind.text, "0.0.0.0:8080");
  EXPECT_EQ(orders.pool, "orders");
  EXPECT_EQ(orders.maxConnections, 500);
  EXPECT_EQ(orders.idleTimeout, 90s);
  const Listener& v6 = config.listeners[1];
  EXPECT_EQ(v6.name, "orders-v6");
  EXPECT_EQ(v6.bind.family(), AF_INET6);
  EXPECT_EQ(v6.bind.text, "[::]:8443");
  EXPECT_EQ(v6.maxConnections, 1'000'000);
  EXPECT_EQ(v6.idleTimeout, 2h);
  EXPECT_EQ(config.listeners[2].name, "search");
  EXPECT_EQ(config.listeners[2].maxConnections, 10000);
  EXPECT_EQ(config.listeners[2].idleTimeout, 1h);
}

TEST(GoodFiles, FullFilePools) {
  Config config = loadGood("full.toml");
  ASSERT_EQ(config.pools.size(), 3u);
  const Pool& orders = config.pools[0];
  EXPECT_EQ(orders.name, "orders");
  EXPECT_EQ(orders.balance, Balance::ConsistentHash);
  EXPECT_EQ(orders.hashKey, HashKey::SourceIpPort);
  EXPECT_EQ(orders.connectTimeout, 250ms);
  EXPECT_EQ(orders.retries, 0);
  EXPECT_EQ(orders.whenAllDown, WhenAllDown::UseAll);

  ASSERT_EQ(orders.members.size(), 3u);
  EXPECT_EQ(orders.members[0].name, "orders-1");
  EXPECT_EQ(orders.members[0].address.text, "127.0.0.1:9001");
  EXPECT_EQ(orders.members[0].weight, 256);
  EXPECT_FALSE(orders.members[0].backup);
  EXPECT_EQ(orders.members[1].name, "[::1]:9002");  // defaults to the address
  EXPECT_EQ(orders.members[1].address.port(), 9002);
  EXPECT_EQ(orders.members[1].weight, 3);
  EXPECT_EQ(orders.members[2].name, "orders-spare");
  EXPECT_EQ(orders.members[2].weight, 1);
  EXPECT_TRUE(orders.members[2].backup);

  ASSERT_TRUE(orders.health.has_value());
  EXPECT_EQ(orders.health->kind, HealthKind::Http);
  EXPECT_EQ(orders.health->interval, 5s);
  EXPECT_EQ(orders.health->timeout, 10s);
  EXPECT_EQ(orders.health->rise, 1);
  EXPECT_EQ(orders.health->fall, 100);
  EXPECT_EQ(orders.health->path, "/healthz?full=1");
  EXPECT_EQ(orders.health->expectStatus, (std::vector<int>{200, 204, 599}));
}

TEST(GoodFiles, FullFileDefaultsAndUnusedPool) {
  Config config = loadGood("full.toml");
  const Pool* search = config.findPool("search");
  ASSERT_NE(search, nullptr);
  EXPECT_EQ(search->balance, Balance::LeastConn);
  EXPECT_EQ(search->hashKey, HashKey::SourceIp);
  EXPECT_EQ(search->connectTimeout, 2s);
  EXPECT_EQ(search->retries, 2);
  EXPECT_EQ(search->whenAllDown, WhenAllDown::Reject);
  EXPECT_FALSE(search->health.has_value());

  const Pool* spare = config.findPool("spare");  // used by no listener
  ASSERT_NE(spare, nullptr);
  EXPECT_EQ(spare->balance, Balance::RandomTwo);
  ASSERT_TRUE(spare->health.has_value());
  EXPECT_EQ(spare->health->kind, HealthKind::Tcp);
  EXPECT_EQ(spare->health->interval, 2s);
  EXPECT_EQ(spare->health->timeout, 1s);
  EXPECT_EQ(spare->health->rise, 100);
  EXPECT_EQ(spare->health->fall, 1);
  EXPECT_EQ(spare->health->path, "/health");
  EXPECT_EQ(spare->health->expectStatus, std::vector<int>{200});
  EXPECT_EQ(config.findPool("nope"), nullptr);
  EXPECT_EQ(summary(config), "ok: 3 listeners, 3 pools, 5 members");
}

TEST(GoodFiles, MinimalFileUsesDefaults) {
  Config config = loadGood("minimal.toml");
  EXPECT_EQ(config.global.workers, 0);
  EXPECT_EQ(config.global.logLevel, LogLevel::Info);
  EXPECT_EQ(config.global.accessLog, "stdout");
  EXPECT_EQ(config.global.shutdownTimeout, 30s);
  EXPECT_FALSE(config.admin.listen.has_value());
  EXPECT_EQ(config.admin.token, "");
  ASSERT_EQ(config.pools.size(), 1u);
  EXPECT_EQ(config.pools[0].name, "web");
  ASSERT_EQ(config.pools[0].members.size(), 1u);
  EXPECT_EQ(config.pools[0].members[0].name, "127.0.0.1:9001");
  EXPECT_EQ(config.pools[0].members[0].weight, 1);
  EXPECT_EQ(summary(config), "ok: 1 listener, 1 pool, 1 member");
}

TEST(GoodFiles, Ipv6Addresses) {
  Config config = loadGood("ipv6.toml");
  EXPECT_EQ(config.admin.listen->text, "[::1]:9900");
  EXPECT_EQ(config.listeners[0].bind.text, "[::]:8080");
  EXPECT_EQ(config.listeners[0].bind.family(), AF_INET6);
  EXPECT_EQ(config.listeners[1].bind.family(), AF_INET);  // same port, other family: allowed
  EXPECT_EQ(config.pools[0].members[0].address.text, "[fe80::1]:9001");
  EXPECT_EQ(config.pools[0].members[1].address.text, "[::ffff:127.0.0.1]:9002");
}

TEST(GoodFiles, InlineTablesAndDottedKeys) {
  Config config = loadGood("inline_tables.toml");
  EXPECT_EQ(config.global.workers, 1);
  EXPECT_EQ(config.global.logLevel, LogLevel::Warn);
  ASSERT_EQ(config.listeners.size(), 1u);
  ASSERT_EQ(config.pools[0].members.size(), 2u);
  EXPECT_EQ(config.pools[0].members[1].weight, 2);
  EXPECT_EQ(config.pools[0].health->interval, 1min);
}

TEST(GoodFiles, PoolsKeepFileOrder) {
  Config config = loadGood("pool_order.toml");
  ASSERT_EQ(config.pools.size(), 3u);
  EXPECT_EQ(config.pools[0].name, "zeta");
  EXPECT_EQ(config.pools[1].name, "alpha");
  EXPECT_EQ(config.pools[2].name, "mid");
}

class GoodFile : public ::testing::TestWithParam<std::string> {};

TEST_P(GoodFile, Loads) { loadGood(GetParam()); }

// ---------------------------------------------------------------- bad files

struct Expected {
  int line = 0;
  int column = 0;
  std::string message;  // a substring of the error's message
};

// Reads the leading "# expect: LINE:COL: message" lines of a bad file.
std::vector<Expected> readExpectations(const fs::path& path) {
  std::ifstream in(path);
  std::vector<Expected> expected;
  std::string line;
  const std::string prefix = "# expect: ";
  while (std::getline(in, line) && line.rfind(prefix, 0) == 0) {
    std::istringstream fields(line.substr(prefix.size()));
    Expected e;
    char colon1 = 0, colon2 = 0;
    fields >> e.line >> colon1 >> e.column >> colon2;
    EXPECT_TRUE(fields && colon1 == ':' && colon2 == ':') << path << ": bad line: " << line;
    std::getline(fields >> std::ws, e.message);
    expected.push_back(e);
  }
  return expected;
}

class BadFile : public ::testing::TestWithParam<std::string> {};

TEST_P(BadFile, ReportsExactlyTheExpectedErrors) {
  fs::path path = kDataDir / "bad" / GetParam();
  std::vector<Expected> expected = readExpectations(path);
  ASSERT_FALSE(expected.empty()) << path << " has no '# expect:' line";
  LoadResult result = loadFile(path.string());
  EXPECT_FALSE(result.config.has_value());
  for (const Expected& e : expected) {
    bool found = std::any_of(result.errors.begin(), result.errors.end(), [&](const Error& error) {
      return error.line == e.line && error.column == e.column &&
             error.message.find(e.message) != std::string::npos && error.file == path.string();
    });
    EXPECT_TRUE(found) << "missing " << e.line << ":" << e.column << ": " << e.message << "\ngot:\n"
                       << describe(result);
  }
  EXPECT_EQ(result.errors.size(), expected.size()) << describe(result);
}

std::string testName(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = fs::path(info.param).stem().string();
  std::replace_if(
      name.begin(), name.end(), [](char c) { return !std::isalnum(c); }, '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(Corpus, GoodFile, ::testing::ValuesIn(filesIn("good")), testName);
INSTANTIATE_TEST_SUITE_P(Corpus, BadFile, ::testing::ValuesIn(filesIn("bad")), testName);

TEST(BadFiles, CorpusIsLargeEnough) {
  EXPECT_GE(filesIn("bad").size(), 20u);
  EXPECT_GE(filesIn("good").size(), 3u);
}

// ---------------------------------------------------------------- loading

const char* const kMinimal = R"(
[[listener]]
name = "web"
bind = "127.0.0.1:8080"
pool = "web"
[[pool.web.member]]
address = "127.0.0.1:9001"
)";

TEST(LoadString, UsesTheSourceName) {
  LoadResult result = loadString(kMinimal, "inline.toml");
  ASSERT_TRUE(result.config.has_value()) << describe(result);
  EXPECT_EQ(result.config->sourceName, "inline.toml");
  EXPECT_EQ(result.config->listeners[0].bind.port(), 8080);
}

TEST(LoadString, CollectsEveryErrorInFileOrder) {
  // [global] is checked before the pools, but errors come out in file order.
  const char* text = R"([[pool.web.member]]
address = "127.0.0.1:9001"
weight = 0
bogus = 1
[global]
workers = 0
)";
  LoadResult result = loadString(text, "x.toml");
  EXPECT_FALSE(result.config.has_value());
  ASSERT_EQ(result.errors.size(), 4u) << describe(result);
  EXPECT_EQ(formatError(result.errors[0]),
            R"(x.toml:3:10: "weight" must be an integer from 1 to 256, got 0)");
  EXPECT_EQ(formatError(result.errors[1]),
            R"(x.toml:4:1: unknown key "bogus" in [[pool.web.member]])");
  EXPECT_EQ(formatError(result.errors[2]),
            R"(x.toml:6:11: "workers" must be an integer from 1 to 1024, got 0)");
  EXPECT_EQ(formatError(result.errors[3]), "x.toml: no [[listener]] defined");  // no position: last
}

// Found by tests/fuzz/config_fuzz.cc: at the end of the file right after a
// newline, toml++ reports the column after that newline on the line it
// ends (line 1, column 7 for "a = [\n"), one past the line. Positions stay
// on the text: at most the line's length + 1.
TEST(LoadString, SyntaxErrorAtEndOfFileStaysOnTheText) {
  for (const char* text : {"a = [\n", "a = \"\n", "a = '\n", "[x]\ninterval =\"\n", "\"\xc3\xa9\" = [\n"}) {
    LoadResult result = loadString(text, "x.toml");
    ASSERT_EQ(result.errors.size(), 1u) << describe(result);
    std::string_view whole(text);
    std::string_view lastLine = whole.substr(0, whole.size() - 1);
    lastLine = lastLine.substr(lastLine.rfind('\n') == std::string_view::npos ? 0 : lastLine.rfind('\n') + 1);
    const Error& error = result.errors[0];
    EXPECT_EQ(error.line, whole.starts_with("[x]") ? 2 : 1) << text;
    const int characters = static_cast<int>(lastLine.size()) - (lastLine.starts_with("\"\xc3") ? 1 : 0);
    EXPECT_EQ(error.column, characters + 1) << text;
  }
}

TEST(LoadFile, ReportsAnUnreadableFile) {
  std::string missing = (kDataDir / "does-not-exist.toml").string();
  LoadResult result = loadFile(missing);
  EXPECT_FALSE(result.config.has_value());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].line, 0);
  EXPECT_EQ(formatError(result.errors[0]), missing + ": cannot read: No such file or directory");

  result = loadFile(kDataDir.string());  // a directory
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].message, "cannot read: Is a directory");
}

// ---------------------------------------------------------------- helpers

TEST(FormatError, WithAndWithoutPosition) {
  EXPECT_EQ(formatError(Error{"a.toml", 3, 7, "bad"}), "a.toml:3:7: bad");
  EXPECT_EQ(formatError(Error{"a.toml", 0, 0, "bad"}), "a.toml: bad");
}

TEST(Summary, CountsWithPlurals) {
  Config config;
  EXPECT_EQ(summary(config), "ok: 0 listeners, 0 pools, 0 members");
  config.listeners.resize(2);
  config.pools.resize(2);
  config.pools[0].members.resize(1);
  config.pools[1].members.resize(4);
  EXPECT_EQ(summary(config), "ok: 2 listeners, 2 pools, 5 members");
}

TEST(ToString, NamesMatchTheFile) {
  EXPECT_EQ(toString(Balance::RoundRobin), "round_robin");
  EXPECT_EQ(toString(Balance::LeastConn), "least_conn");
  EXPECT_EQ(toString(Balance::ConsistentHash), "consistent_hash");
  EXPECT_EQ(toString(Balance::RandomTwo), "random_two");
  EXPECT_EQ(toString(LogLevel::Error), "error");
  EXPECT_EQ(toString(LogLevel::Warn), "warn");
  EXPECT_EQ(toString(LogLevel::Info), "info");
  EXPECT_EQ(toString(LogLevel::Debug), "debug");
}

}  // namespace
}  // namespace config
