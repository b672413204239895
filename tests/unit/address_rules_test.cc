#include "lb/edge/address_rules.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tests/unit/edge_test_addresses.h"

namespace lb::edge {
namespace {

using edgetest::v4;
using edgetest::v6;

using Bytes = std::array<uint8_t, 16>;

// config::Cidr built directly (parseCidr lives in config): IPv4 blocks in
// the IPv4-mapped form, their prefix counted over 128 bits.
config::Cidr v4Block(const char* address, int prefix) {
  config::Cidr cidr;
  cidr.address[10] = cidr.address[11] = 0xff;
  EXPECT_EQ(inet_pton(AF_INET, address, cidr.address.data() + 12), 1) << address;
  cidr.prefix = 96 + prefix;
  cidr.text = std::string(address) + "/" + std::to_string(prefix);
  return cidr;
}

config::Cidr v6Block(const char* address, int prefix) {
  config::Cidr cidr;
  EXPECT_EQ(inet_pton(AF_INET6, address, cidr.address.data()), 1) << address;
  cidr.prefix = prefix;
  cidr.text = std::string(address) + "/" + std::to_string(prefix);
  return cidr;
}

sockaddr_storage unixClient() {
  sockaddr_storage storage{};
  storage.ss_family = AF_UNIX;
  return storage;
}

// AF_INET6 carrying `bytes`, or AF_INET when they are IPv4-mapped and
// `asV4` says so: both must match the same way.
sockaddr_storage fromBytes(const Bytes& bytes, bool asV4) {
  sockaddr_storage storage{};
  static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (asV4 && std::memcmp(bytes.data(), kMappedPrefix, 12) == 0) {
    auto& in = reinterpret_cast<sockaddr_in&>(storage);
    in.sin_family = AF_INET;
    std::memcpy(&in.sin_addr, bytes.data() + 12, 4);
  } else {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(storage);
    in6.sin6_family = AF_INET6;
    std::memcpy(&in6.sin6_addr, bytes.data(), 16);
  }
  return storage;
}

// The oracle: a linear scan, whole bytes then the last bits.
bool coveredBy(const config::Cidr& block, const Bytes& address) {
  size_t wholeBytes = static_cast<size_t>(block.prefix / 8);
  for (size_t i = 0; i < wholeBytes; ++i)
    if (block.address[i] != address[i]) return false;
  int restBits = block.prefix % 8;
  if (restBits == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - restBits));
  return (block.address[wholeBytes] & mask) == (address[wholeBytes] & mask);
}

bool linearContains(const std::vector<config::Cidr>& blocks, const Bytes& address) {
  for (const config::Cidr& block : blocks)
    if (coveredBy(block, address)) return true;
  return false;
}

TEST(AddressSet, EmptyCoversNothing) {
  AddressSet set;
  EXPECT_TRUE(set.empty());
  EXPECT_FALSE(set.contains(v4("10.0.0.1")));
  AddressSet built(std::vector<config::Cidr>{});
  EXPECT_TRUE(built.empty());
  EXPECT_FALSE(built.contains(v6("::1")));
}

TEST(AddressSet, Ipv4Blocks) {
  AddressSet set({v4Block("10.0.0.0", 8), v4Block("192.168.1.0", 24), v4Block("203.0.113.7", 32)});
  EXPECT_FALSE(set.empty());
  EXPECT_TRUE(set.contains(v4("10.0.0.0")));
  EXPECT_TRUE(set.contains(v4("10.255.255.255")));
  EXPECT_FALSE(set.contains(v4("11.0.0.0")));
  EXPECT_FALSE(set.contains(v4("9.255.255.255")));
  EXPECT_TRUE(set.contains(v4("192.168.1.77")));
  EXPECT_FALSE(set.contains(v4("192.168.2.1")));
  EXPECT_TRUE(set.contains(v4("203.0.113.7")));
  EXPECT_FALSE(set.contains(v4("203.0.113.6")));
  EXPECT_FALSE(set.contains(v4("203.0.113.8")));
}

TEST(AddressSet, Ipv6Blocks) {
  AddressSet set({v6Block("2001:db8::", 32), v6Block("::1", 128), v6Block("fe80::", 10)});
  EXPECT_TRUE(set.contains(v6("2001:db8::1")));
  EXPECT_TRUE(set.contains(v6("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(set.contains(v6("2001:db9::")));
  EXPECT_TRUE(set.contains(v6("::1")));
  EXPECT_FALSE(set.contains(v6("::2")));
  EXPECT_FALSE(set.contains(v6("::")));
  EXPECT_TRUE(set.contains(v6("febf::1")));
  EXPECT_FALSE(set.contains(v6("fec0::1")));
  // No IPv4 block: IPv4 clients are not covered.
  EXPECT_FALSE(set.contains(v4("127.0.0.1")));
}

TEST(AddressSet, MappedIpv6MatchesIpv4Blocks) {
  AddressSet set({v4Block("10.1.0.0", 16)});
  EXPECT_TRUE(set.contains(v6("::ffff:10.1.2.3")));
  EXPECT_FALSE(set.contains(v6("::ffff:10.2.2.3")));
  // Not mapped: the same low 32 bits elsewhere in IPv6 are another address.
  EXPECT_FALSE(set.contains(v6("::10.1.2.3")));
  EXPECT_FALSE(set.contains(v6("64:ff9b::10.1.2.3")));
}

TEST(AddressSet, SlashZero) {
  AddressSet all4({v4Block("0.0.0.0", 0)});
  EXPECT_TRUE(all4.contains(v4("0.0.0.0")));
  EXPECT_TRUE(all4.contains(v4("255.255.255.255")));
  EXPECT_TRUE(all4.contains(v6("::ffff:1.2.3.4")));
  EXPECT_FALSE(all4.contains(v6("::1")));
  EXPECT_FALSE(all4.contains(v6("2001:db8::1")));

  // ::/0 is every IP address, IPv4 included (it lives in ::ffff:0:0/96).
  AddressSet all({v6Block("::", 0)});
  EXPECT_FALSE(all.empty());
  EXPECT_TRUE(all.contains(v6("::1")));
  EXPECT_TRUE(all.contains(v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_TRUE(all.contains(v4("8.8.8.8")));
  EXPECT_EQ(all.lookupSteps(v4("8.8.8.8")), 1);
  EXPECT_FALSE(all.contains(unixClient()));
}

TEST(AddressSet, HostBlocks) {
  AddressSet set({v4Block("198.51.100.1", 32), v6Block("2001:db8::abcd", 128)});
  EXPECT_TRUE(set.contains(v4("198.51.100.1")));
  EXPECT_TRUE(set.contains(v6("::ffff:198.51.100.1")));
  EXPECT_FALSE(set.contains(v4("198.51.100.0")));
  EXPECT_FALSE(set.contains(v4("198.51.100.3")));
  EXPECT_TRUE(set.contains(v6("2001:db8::abcd")));
  EXPECT_FALSE(set.contains(v6("2001:db8::abcc")));
  EXPECT_FALSE(set.contains(v6("2001:db8::abce")));
  EXPECT_EQ(set.lookupSteps(v6("2001:db8::abcd")), 129);
  EXPECT_EQ(set.lookupSteps(v4("198.51.100.1")), 129);
}

TEST(AddressSet, OverlappingBlocksInAnyOrder) {
  std::vector<config::Cidr> blocks = {v4Block("10.1.2.0", 24), v4Block("10.0.0.0", 8), v4Block("10.1.0.0", 16),
                                      v4Block("10.1.2.3", 32)};
  AddressSet narrowFirst(blocks);
  std::vector<config::Cidr> reversed(blocks.rbegin(), blocks.rend());
  AddressSet wideFirst(reversed);
  for (const AddressSet* set : {&narrowFirst, &wideFirst}) {
    EXPECT_TRUE(set->contains(v4("10.1.2.3")));
    EXPECT_TRUE(set->contains(v4("10.200.0.1")));
    EXPECT_FALSE(set->contains(v4("11.1.2.3")));
  }
  // The /8 covers the rest: nothing is built below it (root, 96 bits of
  // ::ffff:, 8 bits of 10).
  EXPECT_EQ(narrowFirst.nodeCount(), 1u + 96u + 8u);
  EXPECT_EQ(wideFirst.nodeCount(), 1u + 96u + 8u);
  // A lookup stops at the first block on its path.
  EXPECT_EQ(narrowFirst.lookupSteps(v4("10.1.2.3")), 1 + 96 + 8);
}

TEST(AddressSet, OtherFamiliesNeverMatch) {
  AddressSet set({v6Block("::", 0)});
  EXPECT_FALSE(set.contains(unixClient()));
  sockaddr_storage unspec{};
  EXPECT_FALSE(set.contains(unspec));
  EXPECT_EQ(set.lookupSteps(unspec), 0);
}

TEST(AccessRules, EmptyAllowAdmitsEveryone) {
  AccessRules rules;
  EXPECT_FALSE(rules.active());
  EXPECT_TRUE(rules.admits(v4("1.2.3.4")));
  EXPECT_TRUE(rules.admits(v6("2001:db8::1")));
  EXPECT_TRUE(rules.admits(unixClient()));
}

TEST(AccessRules, DenyInsideAllow) {
  AccessRules rules({v4Block("10.0.0.0", 8), v6Block("::1", 128)}, {v4Block("10.9.0.0", 16)});
  EXPECT_TRUE(rules.active());
  EXPECT_TRUE(rules.admits(v4("10.1.2.3")));
  EXPECT_TRUE(rules.admits(v6("::ffff:10.1.2.3")));
  EXPECT_FALSE(rules.admits(v4("10.9.1.1")));
  EXPECT_FALSE(rules.admits(v6("::ffff:10.9.1.1")));
  EXPECT_TRUE(rules.admits(v4("10.10.0.1")));
  EXPECT_TRUE(rules.admits(v6("::1")));
  EXPECT_FALSE(rules.admits(v6("::2")));
  EXPECT_FALSE(rules.admits(v4("192.168.0.1")));
  // No IP address cannot be shown to be allowed.
  EXPECT_FALSE(rules.admits(unixClient()));
}

TEST(AccessRules, DenyWinsOverAWiderAndANarrowerAllow) {
  AccessRules rules({v4Block("10.0.0.0", 8), v4Block("10.9.9.9", 32)}, {v4Block("10.9.0.0", 16)});
  EXPECT_FALSE(rules.admits(v4("10.9.9.9")));
  EXPECT_TRUE(rules.admits(v4("10.8.9.9")));
}

TEST(AccessRules, DenyOnly) {
  AccessRules rules({}, {v6Block("2001:db8::", 32), v4Block("192.0.2.0", 24)});
  EXPECT_TRUE(rules.active());
  EXPECT_FALSE(rules.admits(v6("2001:db8::5")));
  EXPECT_FALSE(rules.admits(v4("192.0.2.200")));
  EXPECT_FALSE(rules.admits(v6("::ffff:192.0.2.200")));
  EXPECT_TRUE(rules.admits(v4("192.0.3.1")));
  EXPECT_TRUE(rules.admits(v6("2001:db9::5")));
  // No deny block can name a client without an IP address.
  EXPECT_TRUE(rules.admits(unixClient()));
}

// Random blocks: half IPv4 (mapped, /8 to /32), half IPv6 (/16 to /128),
// so that random addresses fall both in and out (/0 has its own test).
config::Cidr randomBlock(std::mt19937_64& random) {
  config::Cidr cidr;
  bool ipv4 = random() % 2 == 0;
  for (auto& byte : cidr.address) byte = static_cast<uint8_t>(random());
  if (ipv4) {
    std::memset(cidr.address.data(), 0, 10);
    cidr.address[10] = cidr.address[11] = 0xff;
    cidr.prefix = 96 + 8 + static_cast<int>(random() % 25);
  } else {
    cidr.prefix = 16 + static_cast<int>(random() % 113);
  }
  for (int i = cidr.prefix; i < 128; ++i) cidr.address[i / 8] &= static_cast<uint8_t>(~(0x80 >> (i % 8)));
  return cidr;
}

// Near a random block (its bits, then random ones from some point on), or
// anywhere, so that both outcomes happen often.
Bytes randomAddress(std::mt19937_64& random, const std::vector<config::Cidr>& blocks) {
  Bytes address;
  for (auto& byte : address) byte = static_cast<uint8_t>(random());
  switch (random() % 3) {
    case 0:
      std::memset(address.data(), 0, 10);
      address[10] = address[11] = 0xff;
      break;
    case 1: {
      const config::Cidr& near = blocks[random() % blocks.size()];
      int keep = static_cast<int>(random() % 129);
      for (int i = 0; i < keep; ++i) {
        uint8_t mask = static_cast<uint8_t>(0x80 >> (i % 8));
        address[i / 8] = static_cast<uint8_t>((address[i / 8] & ~mask) | (near.address[i / 8] & mask));
      }
      break;
    }
    default:
      break;
  }
  return address;
}

TEST(AddressSet, TenThousandRandomBlocksAgreeWithALinearScan) {
  std::mt19937_64 random(20261126);
  std::vector<config::Cidr> blocks;
  for (int i = 0; i < 10000; ++i) blocks.push_back(randomBlock(random));
  AddressSet set(blocks);
  int covered = 0, uncovered = 0;
  for (int i = 0; i < 3000; ++i) {
    Bytes address = randomAddress(random, blocks);
    bool expected = linearContains(blocks, address);
    bool asV4 = random() % 2 == 0;
    ASSERT_EQ(set.contains(fromBytes(address, asV4)), expected) << "address " << i;
    (expected ? covered : uncovered)++;
  }
  EXPECT_GT(covered, 500);
  EXPECT_GT(uncovered, 500);
}

TEST(AccessRules, RandomAllowAndDenyAgreeWithALinearScan) {
  std::mt19937_64 random(7);
  std::vector<config::Cidr> allow, deny;
  for (int i = 0; i < 7000; ++i) allow.push_back(randomBlock(random));
  for (int i = 0; i < 3000; ++i) deny.push_back(randomBlock(random));
  AccessRules rules(allow, deny);
  std::vector<config::Cidr> both = allow;
  both.insert(both.end(), deny.begin(), deny.end());
  int admitted = 0, refused = 0;
  for (int i = 0; i < 3000; ++i) {
    Bytes address = randomAddress(random, both);
    bool expected = !linearContains(deny, address) && linearContains(allow, address);
    ASSERT_EQ(rules.admits(fromBytes(address, random() % 2 == 0)), expected) << "address " << i;
    (expected ? admitted : refused)++;
  }
  EXPECT_GT(admitted, 300);
  EXPECT_GT(refused, 300);
}

// The cost of a lookup does not grow with the number of blocks: at most
// the root and one node per bit. /128 and /32 blocks make the deepest paths.
int maxStepsOver(size_t count, std::mt19937_64& random) {
  std::vector<config::Cidr> blocks;
  for (size_t i = 0; i < count; ++i) {
    config::Cidr block = randomBlock(random);
    if (i % 3 == 0) block.prefix = 128;
    blocks.push_back(block);
  }
  AddressSet set(blocks);
  int most = 0;
  for (int i = 0; i < 20000; ++i) {
    int steps = set.lookupSteps(fromBytes(randomAddress(random, blocks), false));
    EXPECT_LE(steps, 129);
    most = std::max(most, steps);
  }
  for (const config::Cidr& block : blocks) {
    int steps = set.lookupSteps(fromBytes(block.address, true));
    EXPECT_LE(steps, 129);
    most = std::max(most, steps);
  }
  return most;
}

TEST(AddressSet, LookupVisitsAtMost129NodesFor10And10000Blocks) {
  std::mt19937_64 random(99);
  EXPECT_EQ(maxStepsOver(10, random), 129);
  EXPECT_EQ(maxStepsOver(10000, random), 129);
}

}  // namespace
}  // namespace lb::edge
