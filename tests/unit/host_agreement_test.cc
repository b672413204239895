// Hosts that agree, without sockets: two Pools built from the same members
// stand for two ringlb hosts. Under consistent_hash they must send every
// client to the same member whatever differs between the processes: the
// order of the members in the file (or of a DNS answer), the workers'
// random seeds, and whether the listening socket sees an IPv4 client as
// itself or as an IPv4-mapped IPv6 address (a "[::]" listener). What each
// host sees for itself (health, drain, load) is set equal here; the README
// ("Several hosts") says why those can make hosts disagree.

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lb/pool.h"
#include "tests/unit/member_lines.h"

namespace lb {
namespace {

// Twelve members with mixed weights; the last three are backups.
std::vector<MemberLine> fleet() {
  std::vector<MemberLine> lines;
  for (int i = 0; i < 12; ++i)
    lines.push_back({"m" + std::to_string(i), "10.0.0." + std::to_string(i + 1) + ":80", 1 + i % 3, i >= 9});
  return lines;
}

std::vector<MemberLine> shuffled(std::vector<MemberLine> lines, uint64_t seed) {
  std::mt19937_64 shuffler(seed);
  std::shuffle(lines.begin(), lines.end(), shuffler);
  return lines;
}

config::Pool poolConfig(const std::vector<MemberLine>& lines, config::HashKey hashKey = config::HashKey::SourceIp) {
  config::Pool pool;
  pool.name = "p";
  pool.balance = config::Balance::ConsistentHash;
  pool.hashKey = hashKey;
  pool.members = membersOf(lines);
  return pool;
}

sockaddr_storage ipv4Client(uint32_t n, uint16_t port = 40000) {
  sockaddr_storage storage{};
  auto& v4 = reinterpret_cast<sockaddr_in&>(storage);
  v4.sin_family = AF_INET;
  v4.sin_addr.s_addr = htonl(0x0a010000u + n);
  v4.sin_port = htons(port);
  return storage;
}

// The same client as a dual-stack ("[::]") listener reports it: ::ffff:a.b.c.d.
sockaddr_storage mappedClient(uint32_t n, uint16_t port = 40000) {
  sockaddr_storage storage{};
  auto& v6 = reinterpret_cast<sockaddr_in6&>(storage);
  v6.sin6_family = AF_INET6;
  v6.sin6_addr.s6_addr[10] = v6.sin6_addr.s6_addr[11] = 0xff;
  uint32_t address = htonl(0x0a010000u + n);
  std::memcpy(&v6.sin6_addr.s6_addr[12], &address, 4);
  v6.sin6_port = htons(port);
  return storage;
}

sockaddr_storage ipv6Client(uint32_t n) {
  sockaddr_storage storage{};
  auto& v6 = reinterpret_cast<sockaddr_in6&>(storage);
  v6.sin6_family = AF_INET6;
  v6.sin6_addr.s6_addr[0] = 0x20;
  v6.sin6_addr.s6_addr[1] = 0x01;
  v6.sin6_addr.s6_addr[14] = static_cast<uint8_t>(n >> 8);
  v6.sin6_addr.s6_addr[15] = static_cast<uint8_t>(n);
  return storage;
}

// One host: its pool and one worker's picker (seeded like no other host's).
struct Host {
  Host(const config::Pool& config, uint64_t seed) : pool(config), picker(pool, seed) {}
  Pool pool;
  PoolPicker picker;

  std::string pick(const sockaddr_storage& client) {
    Member* member = picker.pick(client, {});
    return member ? member->name : "(none)";
  }
  // Every member this client is sent to, in order, when each connect fails:
  // the first pick and its retries until nothing is left.
  std::vector<std::string> pickWithRetries(const sockaddr_storage& client, size_t attempts) {
    std::vector<Member*> tried;
    std::vector<std::string> names;
    while (tried.size() < attempts) {
      Member* member = picker.pick(client, tried);
      if (!member) break;
      tried.push_back(member);
      names.push_back(member->name);
    }
    return names;
  }
  void setUp(const std::string& name, bool up) { pool.findMember(name)->up = up; }
};

TEST(HostsAgree, MemberOrderAndWorkerSeedsDoNotMatter) {
  Host a(poolConfig(fleet()), 1);
  Host b(poolConfig(shuffled(fleet(), 7)), 0x5eed5eed5eedull);
  for (uint32_t n = 0; n < 3000; ++n) {
    ASSERT_EQ(a.pick(ipv4Client(n)), b.pick(ipv4Client(n))) << "IPv4 client " << n;
    ASSERT_EQ(a.pick(ipv6Client(n)), b.pick(ipv6Client(n))) << "IPv6 client " << n;
  }
}

TEST(HostsAgree, SourceIpPortAgreesPerPort) {
  Host a(poolConfig(fleet(), config::HashKey::SourceIpPort), 1);
  Host b(poolConfig(shuffled(fleet(), 11), config::HashKey::SourceIpPort), 2);
  std::vector<std::string> seen;
  for (uint16_t port = 40000; port < 42000; ++port) {
    std::string member = a.pick(ipv4Client(5, port));
    ASSERT_EQ(member, b.pick(ipv4Client(5, port))) << "port " << port;
    seen.push_back(member);
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_GT(std::unique(seen.begin(), seen.end()) - seen.begin(), 5) << "the port does not reach the key";
}

TEST(HostsAgree, RetriesPastFailedAndDownMembersAgree) {
  Host a(poolConfig(fleet()), 1);
  Host b(poolConfig(shuffled(fleet(), 3)), 99);
  for (const char* down : {"m1", "m4", "m5"}) {
    a.setUp(down, false);
    b.setUp(down, false);
  }
  for (uint32_t n = 0; n < 1000; ++n) {
    std::vector<std::string> first = a.pickWithRetries(ipv4Client(n), 4);
    ASSERT_EQ(first.size(), 4u);
    ASSERT_EQ(first, b.pickWithRetries(ipv4Client(n), 4)) << "client " << n;
    for (const std::string& name : first) EXPECT_TRUE(name != "m1" && name != "m4" && name != "m5");
  }
}

TEST(HostsAgree, BackupsAndUseAllAgree) {
  config::Pool configA = poolConfig(fleet());
  config::Pool configB = poolConfig(shuffled(fleet(), 5));
  configA.whenAllDown = configB.whenAllDown = config::WhenAllDown::UseAll;
  Host a(configA, 1);
  Host b(configB, 2);
  for (int i = 0; i < 9; ++i) {
    a.setUp("m" + std::to_string(i), false);
    b.setUp("m" + std::to_string(i), false);
  }
  for (uint32_t n = 0; n < 500; ++n) {
    std::string member = a.pick(ipv4Client(n));
    ASSERT_TRUE(member == "m9" || member == "m10" || member == "m11") << member;
    ASSERT_EQ(member, b.pick(ipv4Client(n))) << "client " << n;
  }
  for (int i = 9; i < 12; ++i) {
    a.setUp("m" + std::to_string(i), false);
    b.setUp("m" + std::to_string(i), false);
  }
  for (uint32_t n = 0; n < 500; ++n) ASSERT_EQ(a.pick(ipv4Client(n)), b.pick(ipv4Client(n))) << "client " << n;
}

TEST(HostsAgree, BoundedLoadsAgreeWhileTheLoadsAreTheSame) {
  config::Pool configA = poolConfig(fleet());
  config::Pool configB = poolConfig(shuffled(fleet(), 13));
  configA.hashBalanceFactor = configB.hashBalanceFactor = 1.25;
  Host a(configA, 1);
  Host b(configB, 2);
  // m2 is far above its bound on both hosts: both send its clients elsewhere,
  // to the same place.
  for (int i = 0; i < 12; ++i) {
    int64_t active = i == 2 ? 500 : 20;
    a.pool.findMember("m" + std::to_string(i))->active.value = active;
    b.pool.findMember("m" + std::to_string(i))->active.value = active;
  }
  for (uint32_t n = 0; n < 1000; ++n) {
    std::string member = a.pick(ipv4Client(n));
    ASSERT_NE(member, "m2");
    ASSERT_EQ(member, b.pick(ipv4Client(n))) << "client " << n;
  }
}

// A host listening on "[::]:PORT" sees an IPv4 client as ::ffff:a.b.c.d;
// a host on "0.0.0.0:PORT" sees a.b.c.d. Both are one client.
TEST(HostsAgree, AnIpv4ClientIsOneKeyWhateverTheListenerFamily) {
  for (config::HashKey key : {config::HashKey::SourceIp, config::HashKey::SourceIpPort}) {
    Host host(poolConfig(fleet(), key), 1);
    for (uint32_t n = 0; n < 2000; ++n)
      ASSERT_EQ(host.pick(ipv4Client(n, 40000 + n)), host.pick(mappedClient(n, 40000 + n))) << "client " << n;
  }
}

}  // namespace
}  // namespace lb
