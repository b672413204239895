// parseDnsAnswer on hand-built messages: what it reads from good answers
// (A, AAAA, SRV, CNAME chains, compression) and that every kind of broken
// message is Malformed as a whole.

#include "lb/discovery/dns_answer.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lb::discovery {
namespace {

using config::DiscoverType;

constexpr uint16_t kA = 1, kCname = 5, kAaaa = 28, kSrv = 33, kOpt = 41;

// A DNS message written field by field.
struct Message {
  std::vector<uint8_t> bytes;

  Message& u8(uint8_t v) { bytes.push_back(v); return *this; }
  Message& u16(uint16_t v) { return u8(static_cast<uint8_t>(v >> 8)).u8(static_cast<uint8_t>(v)); }
  Message& u32(uint32_t v) { return u16(static_cast<uint16_t>(v >> 16)).u16(static_cast<uint16_t>(v)); }
  Message& header(uint16_t an, uint16_t ns = 0, uint16_t ar = 0, uint16_t flags = 0x8180, uint16_t qd = 1) {
    return u16(0x1234).u16(flags).u16(qd).u16(an).u16(ns).u16(ar);
  }
  // Labels of a dotted name, then the root (or a pointer to `pointer`).
  Message& name(std::string_view dotted, int pointer = -1) {
    while (!dotted.empty()) {
      size_t dot = dotted.find('.');
      std::string_view label = dotted.substr(0, dot);
      u8(static_cast<uint8_t>(label.size()));
      bytes.insert(bytes.end(), label.begin(), label.end());
      dotted = dot == std::string_view::npos ? "" : dotted.substr(dot + 1);
    }
    if (pointer >= 0) return u16(static_cast<uint16_t>(0xC000 | pointer));
    return u8(0);
  }
  Message& question(std::string_view qname, uint16_t type) { return name(qname).u16(type).u16(1); }
  // The fixed part of a record after its owner.
  Message& rr(uint16_t type, uint32_t ttl, uint16_t rdlength, uint16_t rclass = 1) {
    return u16(type).u16(rclass).u32(ttl).u16(rdlength);
  }
  Message& a(std::string_view owner, uint32_t ttl, const char* ip, int pointer = -1) {
    name(owner, pointer).rr(kA, ttl, 4);
    in_addr address{};
    inet_pton(AF_INET, ip, &address);
    auto* p = reinterpret_cast<const uint8_t*>(&address);
    bytes.insert(bytes.end(), p, p + 4);
    return *this;
  }
  Message& aaaa(std::string_view owner, uint32_t ttl, const char* ip, int pointer = -1) {
    name(owner, pointer).rr(kAaaa, ttl, 16);
    in6_addr address{};
    inet_pton(AF_INET6, ip, &address);
    auto* p = reinterpret_cast<const uint8_t*>(&address);
    bytes.insert(bytes.end(), p, p + 16);
    return *this;
  }
  Message& cname(std::string_view owner, uint32_t ttl, std::string_view target) {
    name(owner).rr(kCname, ttl, static_cast<uint16_t>(target.size() + 2));
    return name(target);
  }
  Message& srv(std::string_view owner, uint32_t ttl, uint16_t priority, uint16_t weight, uint16_t port,
               std::string_view target) {
    name(owner).rr(kSrv, ttl, static_cast<uint16_t>(6 + target.size() + 2 - (target.empty() ? 1 : 0)));
    return u16(priority).u16(weight).u16(port).name(target);
  }
  size_t size() const { return bytes.size(); }
};

std::string text(const sockaddr_storage& address) {
  char out[INET6_ADDRSTRLEN] = "";
  if (address.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(address).sin_addr, out, sizeof out);
  if (address.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(address).sin6_addr, out, sizeof out);
  return out;
}

std::optional<DnsAnswer> parse(const Message& m, std::string_view name, DiscoverType type, std::string* why = nullptr) {
  return parseDnsAnswer(m.bytes, name, type, why);
}

TEST(DnsAnswer, ARecordsInOrderWithTheSmallestTtl) {
  Message m;
  m.header(3).question("Api.Example.COM", kA);
  m.a("api.example.com", 60, "10.0.0.2").a("API.example.com", 30, "10.0.0.1").a("other.example.com", 5, "10.9.9.9");
  auto answer = parse(m, "api.example.com.", DiscoverType::A);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->rcode, 0);
  EXPECT_FALSE(answer->truncated);
  EXPECT_EQ(answer->canonicalName, "api.example.com");
  ASSERT_EQ(answer->addresses.size(), 2u);
  EXPECT_EQ(text(answer->addresses[0].address), "10.0.0.2");
  EXPECT_EQ(text(answer->addresses[1].address), "10.0.0.1");
  EXPECT_EQ(answer->addresses[1].owner, "api.example.com");
  EXPECT_EQ(answer->ttl, 30u);  // the other name's 5 is not ours
  EXPECT_TRUE(answer->services.empty());
}

TEST(DnsAnswer, AaaaRecords) {
  Message m;
  m.header(1).question("v6.test", kAaaa).aaaa("v6.test", 90, "2001:db8::7");
  auto answer = parse(m, "V6.test", DiscoverType::AAAA);
  ASSERT_TRUE(answer);
  ASSERT_EQ(answer->addresses.size(), 1u);
  EXPECT_EQ(answer->addresses[0].address.ss_family, AF_INET6);
  EXPECT_EQ(text(answer->addresses[0].address), "2001:db8::7");
  EXPECT_EQ(answer->ttl, 90u);
}

TEST(DnsAnswer, SrvRecordsAndTheAdditionalSection) {
  Message m;
  m.header(2, 0, 3).question("_http._tcp.svc.test", kSrv);
  m.srv("_http._tcp.svc.test", 120, 10, 60, 8080, "Node1.svc.test");
  m.srv("_http._tcp.svc.test", 100, 20, 0, 9090, "node2.svc.test");
  m.a("node1.svc.test", 50, "192.0.2.1").aaaa("node1.svc.test", 40, "2001:db8::1");
  m.name("").rr(kOpt, 0, 0, 4096);  // EDNS's OPT record: not an address
  auto answer = parse(m, "_http._tcp.svc.test", DiscoverType::SRV);
  ASSERT_TRUE(answer);
  ASSERT_EQ(answer->services.size(), 2u);
  EXPECT_EQ(answer->services[0].priority, 10);
  EXPECT_EQ(answer->services[0].weight, 60);
  EXPECT_EQ(answer->services[0].port, 8080);
  EXPECT_EQ(answer->services[0].target, "node1.svc.test");
  EXPECT_EQ(answer->services[1].port, 9090);
  EXPECT_EQ(answer->ttl, 100u);  // additional records' TTLs are the resolver's to use
  ASSERT_EQ(answer->additional.size(), 2u);
  EXPECT_EQ(answer->additional[0].owner, "node1.svc.test");
  EXPECT_EQ(text(answer->additional[1].address), "2001:db8::1");
  EXPECT_EQ(answer->additional[1].ttl, 40u);
  EXPECT_TRUE(answer->addresses.empty());
}

TEST(DnsAnswer, SrvRootTargetIsEmpty) {
  Message m;
  m.header(1).question("_x._tcp.t", kSrv).srv("_x._tcp.t", 10, 0, 0, 0, "");
  auto answer = parse(m, "_x._tcp.t", DiscoverType::SRV);
  ASSERT_TRUE(answer);
  ASSERT_EQ(answer->services.size(), 1u);
  EXPECT_EQ(answer->services[0].target, "");
}

TEST(DnsAnswer, CnameChainReportsTheAskedRecordsTtl) {
  Message m;
  m.header(5).question("www.test", kA);
  m.cname("www.test", 5, "a.test").cname("a.test", 3, "B.test");
  m.a("b.test", 300, "10.1.1.1").a("a.test", 1, "10.6.6.6").a("b.test", 200, "10.1.1.2");
  auto answer = parse(m, "www.test", DiscoverType::A);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->canonicalName, "b.test");
  ASSERT_EQ(answer->addresses.size(), 2u);
  EXPECT_EQ(text(answer->addresses[0].address), "10.1.1.1");
  EXPECT_EQ(text(answer->addresses[1].address), "10.1.1.2");
  EXPECT_EQ(answer->ttl, 200u);  // not the CNAMEs' 5 and 3
}

TEST(DnsAnswer, CnameWithoutRecordsIsAnEmptyAnswer) {
  Message m;
  m.header(1).question("www.test", kA).cname("www.test", 5, "gone.test");
  auto answer = parse(m, "www.test", DiscoverType::A);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->canonicalName, "gone.test");
  EXPECT_TRUE(answer->addresses.empty());
  EXPECT_EQ(answer->ttl, 0u);
}

TEST(DnsAnswer, CnameLoopIsMalformed) {
  Message m;
  m.header(2).question("a.test", kA).cname("a.test", 5, "b.test").cname("b.test", 5, "a.test");
  std::string why;
  EXPECT_FALSE(parse(m, "a.test", DiscoverType::A, &why));
  EXPECT_NE(why.find("CNAME"), std::string::npos) << why;
}

TEST(DnsAnswer, CnameChainOfSixteenIsFollowedSeventeenIsNot) {
  for (int hops : {16, 17}) {
    Message m;
    m.header(static_cast<uint16_t>(hops + 1)).question("n0.test", kA);
    for (int i = 0; i < hops; ++i)
      m.cname("n" + std::to_string(i) + ".test", 5, "n" + std::to_string(i + 1) + ".test");
    m.a("n" + std::to_string(hops) + ".test", 9, "10.0.0.1");
    auto answer = parse(m, "n0.test", DiscoverType::A);
    EXPECT_EQ(answer.has_value(), hops == 16) << hops;
  }
}

TEST(DnsAnswer, CompressedNames) {
  Message m;
  m.header(2).question("api.example.com", kA);  // question name at offset 12
  m.a("", 10, "10.0.0.1", 12);                  // owner: a pointer to it
  m.a("x", 10, "10.0.0.2", 12);                 // "x" + the pointer: another name
  auto answer = parse(m, "api.example.com", DiscoverType::A);
  ASSERT_TRUE(answer);
  ASSERT_EQ(answer->addresses.size(), 1u);
  EXPECT_EQ(text(answer->addresses[0].address), "10.0.0.1");

  Message s;  // an SRV target compressed against the question
  s.header(1, 0, 1).question("_a._tcp.svc.test", kSrv);
  // "_a._tcp.svc.test" at 12: "svc.test" at 12 + 3 + 5.
  s.name("", 12).rr(kSrv, 10, 6 + 5).u16(1).u16(2).u16(3).name("n1", 12 + 8);  // n1.svc.test
  s.a("", 10, "10.0.0.3", static_cast<int>(s.size() - 5));  // owner: a pointer to the target
  answer = parse(s, "_a._tcp.svc.test", DiscoverType::SRV);
  ASSERT_TRUE(answer);
  ASSERT_EQ(answer->services.size(), 1u);
  EXPECT_EQ(answer->services[0].target, "n1.svc.test");
  ASSERT_EQ(answer->additional.size(), 1u);
  EXPECT_EQ(answer->additional[0].owner, "n1.svc.test");
}

TEST(DnsAnswer, RcodeAndTruncationAreReported) {
  Message m;
  m.header(0, 0, 0, 0x8183).question("nx.test", kA);
  auto answer = parse(m, "nx.test", DiscoverType::A);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->rcode, static_cast<uint16_t>(Rcode::NxDomain));
  EXPECT_FALSE(answer->truncated);
  Message t;
  t.header(0, 0, 0, 0x8380 | 0x0200).question("big.test", kA);
  answer = parse(t, "big.test", DiscoverType::A);
  ASSERT_TRUE(answer);
  EXPECT_TRUE(answer->truncated);
}

TEST(DnsAnswer, TtlWithTheTopBitSetIsZero) {
  Message m;
  m.header(1).question("t.test", kA).a("t.test", 0x80000001u, "10.0.0.1");
  auto answer = parse(m, "t.test", DiscoverType::A);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->addresses[0].ttl, 0u);
}

TEST(DnsAnswer, OtherClassesAreIgnored) {
  Message m;
  m.header(2).question("t.test", kA);
  m.name("t.test").rr(kA, 10, 4, 3 /* CHAOS */).u32(0x0A000009);
  m.a("t.test", 10, "10.0.0.1");
  auto answer = parse(m, "t.test", DiscoverType::A);
  ASSERT_TRUE(answer);
  ASSERT_EQ(answer->addresses.size(), 1u);
  EXPECT_EQ(text(answer->addresses[0].address), "10.0.0.1");
}

// A full SRV answer with every section: each of its strict prefixes is
// Malformed, never a shorter answer.
TEST(DnsAnswer, TruncatedAtEveryByteIsMalformed) {
  Message m;
  m.header(2, 1, 2).question("_h._tcp.s.test", kSrv);
  m.srv("_h._tcp.s.test", 10, 1, 1, 80, "n.s.test");
  m.cname("x.s.test", 10, "y.s.test");
  m.name("s.test").rr(6 /* SOA-ish, skipped */, 10, 3).u8(1).u8(2).u8(3);
  m.a("n.s.test", 10, "10.0.0.1", -1).aaaa("n.s.test", 10, "::1");
  ASSERT_TRUE(parse(m, "_h._tcp.s.test", DiscoverType::SRV));
  for (size_t length = 0; length < m.size(); ++length) {
    std::span<const uint8_t> prefix(m.bytes.data(), length);
    std::string why;
    EXPECT_FALSE(parseDnsAnswer(prefix, "_h._tcp.s.test", DiscoverType::SRV, &why)) << length;
    EXPECT_FALSE(why.empty()) << length;
  }
}

TEST(DnsAnswer, PointerLoopsAndForwardPointersAreMalformed) {
  Message self;  // the owner's pointer points at itself
  self.header(1).question("t.test", kA);
  self.u16(static_cast<uint16_t>(0xC000 | self.size())).rr(kA, 1, 4).u32(1);
  EXPECT_FALSE(parse(self, "t.test", DiscoverType::A));

  Message forward;  // a pointer to a later (well-formed) name
  forward.header(1).question("t.test", kA);
  forward.u16(static_cast<uint16_t>(0xC000 | (forward.size() + 2 + 10 + 4))).rr(kA, 1, 4).u32(1).name("t.test");
  EXPECT_FALSE(parse(forward, "t.test", DiscoverType::A));

  Message header;  // into the header
  header.header(1).question("t.test", kA).u16(0xC004).rr(kA, 1, 4).u32(1);
  EXPECT_FALSE(parse(header, "t.test", DiscoverType::A));

  Message question;  // the question name itself is a loop
  question.header(0).u16(0xC00C).u16(kA).u16(1);
  EXPECT_FALSE(parse(question, "t.test", DiscoverType::A));
}

// A name that is a label and a pointer to a name that is a label and a
// pointer ... to the question: 16 pointers are followed, 17 are not.
TEST(DnsAnswer, AtMostSixteenPointersPerName) {
  for (int pointers : {16, 17}) {
    Message m;
    m.header(2).question("t.test", kA);  // "t.test" at 12; the question ends at 24
    // Answer 1, owned by the root, of an unknown type: its RDATA holds the
    // chain, element i ("p" + a pointer to element i-1, element 0's to the
    // question) at chainStart + 4i.
    const int elements = pointers - 1;  // the owner of answer 2 is a pointer too
    m.name("").rr(99, 1, static_cast<uint16_t>(elements * 4));
    const size_t chainStart = m.size();
    for (int i = 0; i < elements; ++i)
      m.u8(1).u8('p').u16(static_cast<uint16_t>(0xC000 | (i == 0 ? 12 : chainStart + 4 * (i - 1))));
    m.a("", 1, "10.0.0.1", static_cast<int>(chainStart + 4 * (elements - 1)));
    std::string why;
    auto answer = parseDnsAnswer(m.bytes, "t.test", DiscoverType::A, &why);
    if (pointers == 16) {
      ASSERT_TRUE(answer) << why;
      EXPECT_TRUE(answer->addresses.empty());  // owned by p.p....t.test, not ours
    } else {
      EXPECT_FALSE(answer);
      EXPECT_NE(why.find("16"), std::string::npos) << why;
    }
  }
}

TEST(DnsAnswer, LabelOver63AndNameOver255AreMalformed) {
  Message label;
  label.header(0).u8(64);
  for (int i = 0; i < 64; ++i) label.u8('a');
  label.u8(0).u16(kA).u16(1);
  EXPECT_FALSE(parse(label, std::string(64, 'a'), DiscoverType::A));

  auto longName = [](size_t labels) {
    std::string name;
    for (size_t i = 0; i < labels; ++i) name += (i ? "." : "") + std::string(63, 'a' + static_cast<char>(i));
    return name;
  };
  // 3 labels of 63 + one of 61: 4*64 - 2 + 1 = 255 bytes on the wire.
  std::string fits = longName(3) + "." + std::string(61, 'z');
  Message ok;
  ok.header(0).question(fits, kA);
  EXPECT_TRUE(parse(ok, fits, DiscoverType::A));
  std::string tooLong = longName(3) + "." + std::string(62, 'z');
  Message bad;
  bad.header(0).question(tooLong, kA);
  std::string why;
  EXPECT_FALSE(parse(bad, tooLong, DiscoverType::A, &why));
  EXPECT_NE(why.find("255"), std::string::npos) << why;
}

TEST(DnsAnswer, WrongQuestionIsRefused) {
  Message m;
  m.header(1).question("a.test", kA).a("a.test", 1, "10.0.0.1");
  EXPECT_TRUE(parse(m, "a.test", DiscoverType::A));
  EXPECT_FALSE(parse(m, "b.test", DiscoverType::A));
  EXPECT_FALSE(parse(m, "a.test", DiscoverType::AAAA));
  EXPECT_FALSE(parse(m, "a.test.x", DiscoverType::A));

  Message chaos;
  chaos.header(0).name("a.test").u16(kA).u16(3);
  EXPECT_FALSE(parse(chaos, "a.test", DiscoverType::A));
  Message none;
  none.header(0, 0, 0, 0x8180, 0);
  EXPECT_FALSE(parse(none, "a.test", DiscoverType::A));
  Message two;
  two.header(0, 0, 0, 0x8180, 2).question("a.test", kA).question("a.test", kA);
  EXPECT_FALSE(parse(two, "a.test", DiscoverType::A));
  Message query;  // QR = 0
  query.header(0, 0, 0, 0x0100).question("a.test", kA);
  EXPECT_FALSE(parse(query, "a.test", DiscoverType::A));
}

TEST(DnsAnswer, ALabelWithADotIsNotTwoLabels) {
  Message m;
  m.header(1).u8(3).u8('a').u8('.').u8('b').u8(0).u16(kA).u16(1).a("", 1, "10.0.0.1", 12);
  EXPECT_FALSE(parse(m, "a.b", DiscoverType::A));
  auto answer = parse(m, "a\\046b", DiscoverType::A);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->canonicalName, "a\\046b");
}

TEST(DnsAnswer, WrongDataLengthsAreMalformed) {
  Message a;
  a.header(1).question("a.test", kA).name("a.test").rr(kA, 1, 5).u32(1).u8(0);
  EXPECT_FALSE(parse(a, "a.test", DiscoverType::A));
  Message aaaa;
  aaaa.header(1).question("a.test", kAaaa).name("a.test").rr(kAaaa, 1, 4).u32(1);
  EXPECT_FALSE(parse(aaaa, "a.test", DiscoverType::AAAA));
  Message srv;  // RDATA one byte longer than the SRV fields
  srv.header(1).question("s.test", kSrv).name("s.test").rr(kSrv, 1, 6 + 3 + 1).u16(0).u16(0).u16(1).name("n").u8(0);
  EXPECT_FALSE(parse(srv, "s.test", DiscoverType::SRV));
  Message additional;  // a broken A record in the additional section
  additional.header(0, 0, 1).question("a.test", kA).name("x").rr(kA, 1, 3).u16(0).u8(0);
  EXPECT_FALSE(parse(additional, "a.test", DiscoverType::A));
}

TEST(DnsAnswer, HugeCountsInATinyMessageAreMalformed) {
  Message m;
  m.header(0xFFFF, 0xFFFF, 0xFFFF).question("a.test", kA);
  EXPECT_FALSE(parse(m, "a.test", DiscoverType::A));
}

}  // namespace
}  // namespace lb::discovery
