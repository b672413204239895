#include "lb/tls/server_names.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "config/server_name.h"

namespace lb::tls {
namespace {

// Adds `name` the way config does: normalized first.
void addNormalized(ServerNameTable& table, std::string_view name, uint32_t value) {
  std::optional<std::string> normalized = config::normalizeServerName(name);
  ASSERT_TRUE(normalized) << name;
  table.add(*normalized, value);
}

TEST(ServerNameTable, EmptyFindsNothing) {
  ServerNameTable table;
  EXPECT_TRUE(table.empty());
  EXPECT_EQ(table.find("api.internal"), std::nullopt);
  EXPECT_EQ(table.find(""), std::nullopt);
}

TEST(ServerNameTable, ExactNamesInAnyCaseWithATrailingDot) {
  ServerNameTable table;
  addNormalized(table, "api.internal", 1);
  addNormalized(table, "Web.Internal.", 2);
  EXPECT_FALSE(table.empty());
  EXPECT_EQ(table.find("api.internal"), 1u);
  EXPECT_EQ(table.find("API.INTERNAL"), 1u);
  EXPECT_EQ(table.find("Api.Internal."), 1u);
  EXPECT_EQ(table.find("web.internal"), 2u);
  EXPECT_EQ(table.find("api.internal.."), std::nullopt);
  EXPECT_EQ(table.find("api.internal2"), std::nullopt);
  EXPECT_EQ(table.find("pi.internal"), std::nullopt);
  EXPECT_EQ(table.find("api"), std::nullopt);
  EXPECT_EQ(table.find("."), std::nullopt);
  EXPECT_EQ(table.find(""), std::nullopt);
}

TEST(ServerNameTable, WildcardCoversExactlyOneLabel) {
  ServerNameTable table;
  addNormalized(table, "*.svc.internal", 7);
  EXPECT_EQ(table.find("a.svc.internal"), 7u);
  EXPECT_EQ(table.find("X-1.SVC.internal."), 7u);
  EXPECT_EQ(table.find("svc.internal"), std::nullopt);
  EXPECT_EQ(table.find("a.b.svc.internal"), std::nullopt);
  EXPECT_EQ(table.find(".svc.internal"), std::nullopt);
  EXPECT_EQ(table.find("a.svc.internal.x"), std::nullopt);
  EXPECT_EQ(table.find("asvc.internal"), std::nullopt);
  EXPECT_EQ(table.find("a.xsvc.internal"), std::nullopt);
}

TEST(ServerNameTable, ExactBeatsWildcard) {
  ServerNameTable table;
  addNormalized(table, "*.svc.internal", 1);
  addNormalized(table, "db.svc.internal", 2);
  EXPECT_EQ(table.find("db.svc.internal"), 2u);
  EXPECT_EQ(table.find("DB.svc.internal."), 2u);
  EXPECT_EQ(table.find("web.svc.internal"), 1u);
}

TEST(ServerNameTable, WildcardDoesNotMatchItsOwnSuffixAsAnExactName) {
  ServerNameTable table;
  addNormalized(table, "*.svc.internal", 1);
  addNormalized(table, "svc.internal", 2);
  EXPECT_EQ(table.find("svc.internal"), 2u);
  EXPECT_EQ(table.find("a.svc.internal"), 1u);
}

TEST(ServerNameTable, FirstValueOfANameStays) {
  ServerNameTable table;
  addNormalized(table, "api.internal", 1);
  addNormalized(table, "API.internal.", 2);
  addNormalized(table, "*.svc.internal", 3);
  addNormalized(table, "*.SVC.internal", 4);
  EXPECT_EQ(table.find("api.internal"), 1u);
  EXPECT_EQ(table.find("a.svc.internal"), 3u);
}

TEST(ServerNameTable, BytesOutsideAsciiNeverMatchAFoldedName) {
  ServerNameTable table;
  addNormalized(table, "api.internal", 1);
  addNormalized(table, "*.internal.example", 2);
  // 0xc1 is 'A' + 0x80: folding must only touch A-Z.
  EXPECT_EQ(table.find("\xc1pi.internal"), std::nullopt);
  EXPECT_EQ(table.find("\xff.internal.example"), 2u);  // any one label
  EXPECT_EQ(table.find(std::string_view("api.internal\0", 13)), std::nullopt);
}

TEST(ServerNameTable, HundredsOfNamesInAnyOrder) {
  std::vector<std::string> names;
  for (int i = 0; i < 300; ++i) names.push_back("host" + std::to_string(i) + ".zone" + std::to_string(i % 7) + ".example");
  std::vector<std::string> wildcards;
  for (int i = 0; i < 100; ++i) wildcards.push_back("*.team" + std::to_string(i) + ".example");

  std::mt19937 random(12345);
  std::vector<std::pair<std::string, uint32_t>> all;
  for (size_t i = 0; i < names.size(); ++i) all.emplace_back(names[i], static_cast<uint32_t>(i));
  for (size_t i = 0; i < wildcards.size(); ++i) all.emplace_back(wildcards[i], static_cast<uint32_t>(1000 + i));
  for (int order = 0; order < 3; ++order) {
    std::shuffle(all.begin(), all.end(), random);
    ServerNameTable table;
    for (const auto& [name, value] : all) addNormalized(table, name, value);
    for (size_t i = 0; i < names.size(); ++i) {
      std::string upper = names[i];
      std::transform(upper.begin(), upper.end(), upper.begin(), [](char c) { return static_cast<char>(std::toupper(c)); });
      EXPECT_EQ(table.find(names[i]), i);
      EXPECT_EQ(table.find(upper + "."), i);
      EXPECT_EQ(table.find("x" + names[i]), std::nullopt);
    }
    for (size_t i = 0; i < wildcards.size(); ++i) {
      std::string suffix = wildcards[i].substr(2);
      EXPECT_EQ(table.find("anything." + suffix), 1000 + i);
      EXPECT_EQ(table.find(suffix), std::nullopt);
      EXPECT_EQ(table.find("a.b." + suffix), std::nullopt);
    }
  }
}

// ---- config::normalizeServerName, the form names are added in ----

TEST(NormalizeServerName, LowerCaseWithoutTrailingDot) {
  EXPECT_EQ(config::normalizeServerName("API.Internal."), "api.internal");
  EXPECT_EQ(config::normalizeServerName("a"), "a");
  EXPECT_EQ(config::normalizeServerName("x_y-1.Example"), "x_y-1.example");
  EXPECT_EQ(config::normalizeServerName("*.Svc.Internal"), "*.svc.internal");
  EXPECT_EQ(config::normalizeServerName("*.svc.internal."), "*.svc.internal");
}

TEST(NormalizeServerName, RefusesWhatIsNotAHostName) {
  for (std::string_view bad : {"", ".", "..", "a..b", ".a", "a.b..", "a b", "a/b", "a:443", "\xc3\xa9.example",
                               "*", "*.", "*.internal", "a*.b.c", "*a.b.c", "a.*.c", "**.b.c", "*.*.c"}) {
    EXPECT_EQ(config::normalizeServerName(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(config::normalizeServerName("*.svc.internal", false), std::nullopt);
  EXPECT_EQ(config::normalizeServerName("api.internal", false), "api.internal");
}

TEST(NormalizeServerName, LengthLimits) {
  std::string label63(63, 'a');
  std::string label64(64, 'a');
  EXPECT_EQ(config::normalizeServerName(label63 + ".b"), label63 + ".b");
  EXPECT_EQ(config::normalizeServerName(label64 + ".b"), std::nullopt);
  // 253 bytes is the longest name, 254 with the trailing dot.
  std::string name253 = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'c');
  ASSERT_EQ(name253.size(), 253u);
  EXPECT_EQ(config::normalizeServerName(name253), name253);
  EXPECT_EQ(config::normalizeServerName(name253 + "."), name253);
  EXPECT_EQ(config::normalizeServerName(name253 + "c"), std::nullopt);
}

}  // namespace
}  // namespace lb::tls
