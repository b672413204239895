#include "lb/edge/proxy_header.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "lb/address_text.h"

namespace lb::edge {
namespace {

using namespace std::string_view_literals;
using config::AcceptProxy;
using config::ProxyVersion;
using Bytes = std::vector<uint8_t>;

constexpr size_t kCap = 4096;

Bytes bytesOf(std::string_view text) { return Bytes(text.begin(), text.end()); }

Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

ParsedHeader parse(const Bytes& bytes, AcceptProxy accepted = AcceptProxy::Any, size_t cap = kCap) {
  return parseHeader(bytes, accepted, cap);
}
ParsedHeader parse(std::string_view text, AcceptProxy accepted = AcceptProxy::Any) {
  return parse(bytesOf(text), accepted);
}

Bytes prefix(const Bytes& bytes, size_t length) {
  return Bytes(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(length));
}

// Fed one byte more at a time: NeedMore until the header's last byte, then
// Done with the header's length, whatever payload follows.
void expectDoneExactlyAt(const Bytes& bytes, size_t headerBytes, AcceptProxy accepted = AcceptProxy::Any) {
  for (size_t length = 0; length < headerBytes; ++length) {
    const ParsedHeader parsed = parse(prefix(bytes, length), accepted);
    ASSERT_EQ(parsed.status, ParseStatus::NeedMore) << "after " << length << " bytes: " << parsed.why;
  }
  for (size_t length = headerBytes; length <= bytes.size(); ++length) {
    const ParsedHeader parsed = parse(prefix(bytes, length), accepted);
    ASSERT_EQ(parsed.status, ParseStatus::Done) << "after " << length << " bytes: " << parsed.why;
    EXPECT_EQ(parsed.headerBytes, headerBytes);
  }
}

// NeedMore while the bytes could still begin a header, Invalid from the
// first byte that proves they cannot.
void expectInvalidExactlyAt(const Bytes& bytes, size_t firstBadLength, AcceptProxy accepted = AcceptProxy::Any,
                            size_t cap = kCap) {
  for (size_t length = 0; length < firstBadLength; ++length) {
    const ParsedHeader parsed = parse(prefix(bytes, length), accepted, cap);
    ASSERT_EQ(parsed.status, ParseStatus::NeedMore) << "after " << length << " bytes: " << parsed.why;
  }
  for (size_t length = firstBadLength; length <= bytes.size(); ++length) {
    const ParsedHeader parsed = parse(prefix(bytes, length), accepted, cap);
    ASSERT_EQ(parsed.status, ParseStatus::Invalid) << "after " << length << " bytes";
    EXPECT_FALSE(parsed.why.empty());
  }
}
void expectInvalidExactlyAt(std::string_view text, size_t firstBadLength) {
  expectInvalidExactlyAt(bytesOf(text), firstBadLength);
}

sockaddr_storage endpoint(const char* address, uint16_t port) {
  sockaddr_storage storage{};
  auto& in = reinterpret_cast<sockaddr_in&>(storage);
  auto& in6 = reinterpret_cast<sockaddr_in6&>(storage);
  if (inet_pton(AF_INET, address, &in.sin_addr) == 1) {
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, address, &in6.sin6_addr), 1) << address;
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(port);
  }
  return storage;
}

// ---- v1 ----

TEST(ProxyV1, Tcp4LineGivesAddressesAndLeavesThePayload) {
  const auto text = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n"sv;
  const ParsedHeader parsed = parse(text);
  ASSERT_EQ(parsed.status, ParseStatus::Done) << parsed.why;
  EXPECT_EQ(parsed.version, 1);
  EXPECT_EQ(parsed.headerBytes, text.find("GET"));
  EXPECT_TRUE(parsed.hasAddresses);
  EXPECT_EQ(formatAddress(parsed.source), "192.168.0.1:56324");
  EXPECT_EQ(formatAddress(parsed.destination), "192.168.0.11:443");
  expectDoneExactlyAt(bytesOf(text), text.find("GET"));
}

TEST(ProxyV1, Tcp6LineGivesAddresses) {
  const auto text = "PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n"sv;
  const ParsedHeader parsed = parse(text);
  ASSERT_EQ(parsed.status, ParseStatus::Done) << parsed.why;
  EXPECT_EQ(parsed.headerBytes, text.size());
  EXPECT_EQ(formatAddress(parsed.source), "[2001:db8::1]:0");
  EXPECT_EQ(formatAddress(parsed.destination), "[::ffff:10.0.0.1]:65535");
  expectDoneExactlyAt(bytesOf(text), text.size());
}

TEST(ProxyV1, LongestLinesOfTheSpecFit) {
  const std::string ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const std::string tcp6 = "PROXY TCP6 " + ffff + " " + ffff + " 65535 65535\r\n";
  ASSERT_EQ(tcp6.size(), 104u);
  expectDoneExactlyAt(bytesOf(tcp6), 104);
  const std::string unknown = "PROXY UNKNOWN " + ffff + " " + ffff + " 65535 65535\r\n";
  ASSERT_EQ(unknown.size(), kMaxV1HeaderBytes);
  expectDoneExactlyAt(bytesOf(unknown), kMaxV1HeaderBytes);
  EXPECT_FALSE(parse(unknown).hasAddresses);
  const auto tcp4 = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"sv;
  ASSERT_EQ(tcp4.size(), 56u);
  expectDoneExactlyAt(bytesOf(tcp4), 56);
}

TEST(ProxyV1, UnknownKeepsTheConnectionsAddresses) {
  const ParsedHeader bare = parse("PROXY UNKNOWN\r\npayload"sv);
  ASSERT_EQ(bare.status, ParseStatus::Done);
  EXPECT_EQ(bare.headerBytes, 15u);
  EXPECT_FALSE(bare.hasAddresses);
  const ParsedHeader anything = parse("PROXY UNKNOWN whatever \x01\xff the sender says\r\n"sv);
  ASSERT_EQ(anything.status, ParseStatus::Done);
  EXPECT_FALSE(anything.hasAddresses);
  expectInvalidExactlyAt("PROXY UNKNOWNX\r\n"sv, 14);
}

TEST(ProxyV1, NoCrlfWithin107BytesIsInvalidAtTheFirstByteThatProvesIt) {
  // UNKNOWN: 105 bytes still leave room for CRLF; a 106th that is not CR does not.
  const std::string unknown = "PROXY UNKNOWN " + std::string(93, 'x') + "\r\n";
  ASSERT_EQ(unknown.size(), 109u);
  expectInvalidExactlyAt(bytesOf(unknown), 106);
  // The CRLF at bytes 106-107 is the latest a line can end; a lone CR there is not one.
  const std::string crLast = "PROXY UNKNOWN " + std::string(91, 'x') + "\r\r";
  expectInvalidExactlyAt(bytesOf(crLast), 107);
  // TCP6 with two dotted-quad tails and every group written would be 116
  // bytes: known at the destination's last digit, byte 102, since " 0 0\r\n"
  // no longer fits after it.
  const std::string full = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
  const std::string tooLong = "PROXY TCP6 " + full + " " + full + " 65535 65535\r\n";
  ASSERT_EQ(tooLong.size(), 116u);
  expectInvalidExactlyAt(bytesOf(tooLong), 102);
  const std::string mapped = "::ffff:255.255.255.255";
  const std::string longTcp6 = "PROXY TCP6 " + mapped + " " + mapped + " 65535 65535\r\n";
  ASSERT_EQ(longTcp6.size(), 70u);
  expectDoneExactlyAt(bytesOf(longTcp6), 70);
}

TEST(ProxyV1, LoneCrOrLfIsInvalid) {
  expectInvalidExactlyAt("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"sv, 32);
  expectInvalidExactlyAt("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"sv, 31);
  expectInvalidExactlyAt("PROXY TCP4 1.2.3.4\r\n"sv, 19);
  expectInvalidExactlyAt("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"sv, 29);
  expectInvalidExactlyAt("PROXY UNKNOWN\n"sv, 14);
  expectInvalidExactlyAt("PROXY UNKNOWN a\rb\r\n"sv, 17);
  expectInvalidExactlyAt("PROXY UNKNOWN a\nb\r\n"sv, 16);
  expectInvalidExactlyAt("PROXY\r\n"sv, 6);
}

TEST(ProxyV1, LeadingZerosAreInvalid) {
  expectInvalidExactlyAt("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"sv, 13);
  expectInvalidExactlyAt("PROXY TCP4 1.2.3.4 5.6.7.00 1 2\r\n"sv, 27);
  expectInvalidExactlyAt("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n"sv, 29);
  expectInvalidExactlyAt("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n"sv, 31);
  expectInvalidExactlyAt("PROXY TCP6 ::1 ::ffff:1.02.3.4 1 2\r\n"sv, 26);
  // A lone zero is a number, not a leading zero.
  const ParsedHeader zeros = parse("PROXY TCP4 0.0.0.0 10.0.0.0 0 0\r\n"sv);
  ASSERT_EQ(zeros.status, ParseStatus::Done) << zeros.why;
  EXPECT_EQ(formatAddress(zeros.destination), "10.0.0.0:0");
}

TEST(ProxyV1, NumbersOutOfRangeAreInvalid) {
  expectInvalidExactlyAt("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"sv, 32);
  expectInvalidExactlyAt("PROXY TCP4 1.2.3.4 5.6.7.8 1 70000\r\n"sv, 34);
  expectInvalidExactlyAt("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"sv, 20);
  expectInvalidExactlyAt("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n"sv, 19);
  expectInvalidExactlyAt("PROXY TCP6 ::1 12345:: 1 2\r\n"sv, 20);
  const ParsedHeader top = parse("PROXY TCP4 1.2.3.4 5.6.7.8 65535 0\r\n"sv);
  ASSERT_EQ(top.status, ParseStatus::Done) << top.why;
  EXPECT_EQ(formatAddress(top.source), "1.2.3.4:65535");
}

TEST(ProxyV1, FamilyMustMatchTheAddresses) {
  expectInvalidExactlyAt("PROXY TCP4 ::1 ::1 1 2\r\n"sv, 12);
  expectInvalidExactlyAt("PROXY TCP4 1.2.3.4 ::1 1 2\r\n"sv, 20);
  // "1.2.3.4" could begin only an IPv6 address whose last 32 bits it is.
  expectInvalidExactlyAt("PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n"sv, 13);
  expectInvalidExactlyAt("PROXY TCP6 ::1 5.6.7.8 1 2\r\n"sv, 17);
}

TEST(ProxyV1, SpacingAndWordsAreExact) {
  expectInvalidExactlyAt("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"sv, 7);
  expectInvalidExactlyAt("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"sv, 12);
  expectInvalidExactlyAt("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"sv, 31);
  expectInvalidExactlyAt("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"sv, 19);
  expectInvalidExactlyAt("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"sv, 7);
  expectInvalidExactlyAt("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"sv, 10);
  expectInvalidExactlyAt("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"sv, 8);  // "PROXY U" may begin UNKNOWN
  expectInvalidExactlyAt("PROXZ"sv, 5);
  expectInvalidExactlyAt("GET / HTTP/1.1\r\n"sv, 1);
  expectInvalidExactlyAt("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"sv, 28);
  expectInvalidExactlyAt("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n"sv, 32);
}

// The IPv6 reader against the C library's inet_pton, byte for byte.
TEST(ProxyV1, Ipv6FormsAreExactlyThoseInetPtonTakes) {
  const char* forms[] = {
      "::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1::8",
      "::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "::1.2.3.4", "1::1.2.3.4", "ABCD:ef01::", "0001:0:00::",
      "fe80::1:2:3:4:5", "1:2:3:4:5:6:7::8", ":1::", ":", "1:", "1:::2", "1::2::3", ":::",
      "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", "12345::", "::1.2.3", "::01.2.3.4", "::1.2.3.256",
      "1:2:3:4:5:6:7:1.2.3.4", "1.2.3.4", "::g", "::1.2.3.4:5", "::a.2.3.4", "::1..2.3", "::1.2.3.4.5",
      "1:2:3:4:5:6::1.2.3.4", "1:2:3:4:5::1.2.3.4", "::ffff:1.2.3.4::", "1::2:3:4:5:6:7", "1::2:3:4:5:6:7:8",
      "::1234.5.6.7", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"};
  for (const char* form : forms) {
    in6_addr expected{};
    const bool valid = inet_pton(AF_INET6, form, &expected) == 1;
    const std::string line = std::string("PROXY TCP6 ") + form + " ::1 1 2\r\n";
    const ParsedHeader parsed = parse(line);
    ASSERT_EQ(parsed.status, valid ? ParseStatus::Done : ParseStatus::Invalid) << form;
    if (valid) {
      const auto& source = reinterpret_cast<const sockaddr_in6&>(parsed.source);
      EXPECT_EQ(std::memcmp(&source.sin6_addr, &expected, 16), 0) << form;
    }
    // A valid prefix is never called Invalid: inet_pton's verdict on the
    // whole line is reached at the latest at the space after the address.
    if (valid) expectDoneExactlyAt(bytesOf(line), line.size());
  }
}

TEST(ProxyV1, Ipv4FormsAreExactlyThoseInetPtonTakes) {
  const char* forms[] = {"0.0.0.0", "1.2.3.4", "255.255.255.255", "10.0.0.1", "01.2.3.4", "1.2.3", "1.2.3.4.",
                         "1..2.3", ".1.2.3", "256.1.1.1", "1.2.3.0400", "1.2.3.4a", "0x1.2.3.4", "1.2.3.00"};
  for (const char* form : forms) {
    in_addr expected{};
    const bool valid = inet_pton(AF_INET, form, &expected) == 1;
    const ParsedHeader parsed = parse(std::string("PROXY TCP4 ") + form + " 1.1.1.1 1 2\r\n");
    ASSERT_EQ(parsed.status, valid ? ParseStatus::Done : ParseStatus::Invalid) << form;
    if (valid) {
      const auto& source = reinterpret_cast<const sockaddr_in&>(parsed.source);
      EXPECT_EQ(source.sin_addr.s_addr, expected.s_addr) << form;
    }
  }
}

// ---- v2 ----

constexpr uint8_t kSignature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

Bytes v2(uint8_t versionCommand, uint8_t familyProtocol, const Bytes& body, size_t length) {
  Bytes out(kSignature, kSignature + 12);
  out.push_back(versionCommand);
  out.push_back(familyProtocol);
  out.push_back(static_cast<uint8_t>(length >> 8));
  out.push_back(static_cast<uint8_t>(length));
  return out + body;
}
Bytes v2(uint8_t versionCommand, uint8_t familyProtocol, const Bytes& body) {
  return v2(versionCommand, familyProtocol, body, body.size());
}

const Bytes kInet4Block = {192, 0, 2, 1, 198, 51, 100, 2, 0xC8, 0x22, 0x01, 0xBB};  // ports 51234, 443

TEST(ProxyV2, Inet4GivesAddressesAndLeavesThePayload) {
  const Bytes header = v2(0x21, 0x11, kInet4Block);
  const Bytes bytes = header + bytesOf("payload");
  const ParsedHeader parsed = parse(bytes);
  ASSERT_EQ(parsed.status, ParseStatus::Done) << parsed.why;
  EXPECT_EQ(parsed.version, 2);
  EXPECT_EQ(parsed.headerBytes, 28u);
  EXPECT_TRUE(parsed.hasAddresses);
  EXPECT_EQ(formatAddress(parsed.source), "192.0.2.1:51234");
  EXPECT_EQ(formatAddress(parsed.destination), "198.51.100.2:443");
  expectDoneExactlyAt(bytes, 28);
}

TEST(ProxyV2, Inet6WithTlvsGivesAddresses) {
  Bytes block(36, 0);
  block[0] = 0x20, block[1] = 0x01, block[2] = 0x0d, block[3] = 0xb8, block[15] = 0x01;  // 2001:db8::1
  block[16 + 10] = 0xff, block[16 + 11] = 0xff, block[16 + 12] = 10, block[16 + 15] = 7;  // ::ffff:10.0.0.7
  block[32] = 0x00, block[33] = 0x50, block[34] = 0xff, block[35] = 0xff;
  const Bytes tlvs = {0x01, 0x00, 0x02, 'h', '2', 0x04, 0x00, 0x00, 0xE0, 0x00, 0x01, 0x00};
  const Bytes bytes = v2(0x21, 0x21, block + tlvs) + bytesOf("\r\n\r\n");
  const ParsedHeader parsed = parse(bytes);
  ASSERT_EQ(parsed.status, ParseStatus::Done) << parsed.why;
  EXPECT_EQ(parsed.headerBytes, 16u + 36 + 12);
  EXPECT_EQ(formatAddress(parsed.source), "[2001:db8::1]:80");
  EXPECT_EQ(formatAddress(parsed.destination), "[::ffff:10.0.0.7]:65535");
  expectDoneExactlyAt(bytes, 64);
}

TEST(ProxyV2, SignatureMismatchIsInvalidAtTheMismatchingByte) {
  const Bytes good = v2(0x21, 0x11, kInet4Block);
  for (size_t at = 1; at < 12; ++at) {
    Bytes bad = good;
    bad[at] ^= 0x40;
    expectInvalidExactlyAt(bad, at + 1);
  }
  expectInvalidExactlyAt(bytesOf("\r\n\r\n\r\n"), 5);
}

TEST(ProxyV2, VersionOtherThanTwoIsInvalid) {
  for (uint8_t version : {0x01, 0x11, 0x31, 0xF1}) expectInvalidExactlyAt(v2(version, 0x11, kInet4Block), 13);
}

TEST(ProxyV2, UnknownCommandIsInvalid) {
  for (uint8_t command : {0x22, 0x23, 0x2F}) expectInvalidExactlyAt(v2(command, 0x11, kInet4Block), 13);
}

TEST(ProxyV2, LocalSkipsItsBodyWhateverTheFamily) {
  const ParsedHeader empty = parse(v2(0x20, 0x00, {}));
  ASSERT_EQ(empty.status, ParseStatus::Done) << empty.why;
  EXPECT_EQ(empty.headerBytes, 16u);
  EXPECT_FALSE(empty.hasAddresses);
  // LOCAL with a length: the block is skipped, addresses and all.
  const Bytes withBlock = v2(0x20, 0x11, kInet4Block) + bytesOf("GET");
  expectDoneExactlyAt(withBlock, 28);
  EXPECT_FALSE(parse(withBlock).hasAddresses);
  // An AF_UNIX block and garbage families are ignored too.
  expectDoneExactlyAt(v2(0x20, 0x31, Bytes(216, 0x41)), 16 + 216);
  expectDoneExactlyAt(v2(0x20, 0xFF, Bytes(3, 0xFF)), 19);
}

TEST(ProxyV2, ProxyOfNonTcpFamiliesIsInvalid) {
  expectInvalidExactlyAt(v2(0x21, 0x31, Bytes(216, 0)), 14);  // UNIX stream
  expectInvalidExactlyAt(v2(0x21, 0x32, Bytes(216, 0)), 14);  // UNIX datagram
  expectInvalidExactlyAt(v2(0x21, 0x12, kInet4Block), 14);    // UDP
  expectInvalidExactlyAt(v2(0x21, 0x41, kInet4Block), 14);    // no such family
  expectInvalidExactlyAt(v2(0x21, 0x13, kInet4Block), 14);    // no such protocol
}

TEST(ProxyV2, ProxyWithUnspecifiedFamilyKeepsTheConnectionsAddresses) {
  const ParsedHeader parsed = parse(v2(0x21, 0x00, Bytes(5, 0)));
  ASSERT_EQ(parsed.status, ParseStatus::Done) << parsed.why;
  EXPECT_EQ(parsed.headerBytes, 21u);
  EXPECT_FALSE(parsed.hasAddresses);
}

TEST(ProxyV2, LengthMustCoverTheAddressBlock) {
  expectInvalidExactlyAt(v2(0x21, 0x11, prefix(kInet4Block, 11)), 16);
  expectInvalidExactlyAt(v2(0x21, 0x21, Bytes(35, 0)), 16);
  expectInvalidExactlyAt(v2(0x21, 0x21, Bytes(12, 0)), 16);
}

TEST(ProxyV2, TlvRunningPastTheHeaderIsInvalid) {
  // The TLV says 5 value bytes, the header leaves 4: known at its length's low byte.
  const Bytes past = v2(0x21, 0x11, kInet4Block + Bytes{0x04, 0x00, 0x05, 1, 2, 3, 4}) + bytesOf("payload");
  expectInvalidExactlyAt(past, 16 + 12 + 3);
  // A length high byte alone proves it.
  const Bytes farPast = v2(0x21, 0x11, kInet4Block + Bytes{0x04, 0x01, 0x00, 1, 2, 3, 4});
  expectInvalidExactlyAt(farPast, 16 + 12 + 2);
  // One or two bytes after the addresses cannot hold a TLV: known from the length.
  expectInvalidExactlyAt(v2(0x21, 0x11, kInet4Block + Bytes{0x04, 0x00}), 16);
  expectInvalidExactlyAt(v2(0x21, 0x11, kInet4Block + Bytes{0x04}), 16);
  // The second of two TLVs runs past.
  const Bytes second = v2(0x21, 0x11, kInet4Block + Bytes{0x01, 0x00, 0x01, 'x', 0x02, 0x00, 0x02, 'a'});
  expectInvalidExactlyAt(second, 16 + 12 + 4 + 3);
  // Exactly filling the header is fine, an empty value too.
  expectDoneExactlyAt(v2(0x21, 0x11, kInet4Block + Bytes{0x01, 0x00, 0x01, 'x', 0x04, 0x00, 0x00}), 35);
}

TEST(ProxyV2, LengthOverTheCapIsInvalidAsSoonAsItIsRead) {
  const Bytes body = kInet4Block + Bytes{0x04, 0x00, 0x11} + Bytes(17, 0);  // 16 + 32 = 48 bytes in all
  for (size_t cap : {size_t{48}, size_t{100}}) {
    const ParsedHeader parsed = parseHeader(v2(0x21, 0x11, body), AcceptProxy::Any, cap);
    ASSERT_EQ(parsed.status, ParseStatus::Done) << parsed.why;
  }
  expectInvalidExactlyAt(v2(0x21, 0x11, body), 16, AcceptProxy::Any, 47);
  // 0x0100 and more: the high byte alone is over a cap of 200.
  expectInvalidExactlyAt(v2(0x21, 0x11, Bytes(300, 0), 300), 15, AcceptProxy::Any, 200);
  expectInvalidExactlyAt(v2(0x20, 0x00, Bytes(300, 0), 300), 15, AcceptProxy::Any, 200);
  // The largest a length can say.
  const Bytes largest = v2(0x20, 0x00, Bytes(0xFFFF, 0));
  EXPECT_EQ(parse(largest, AcceptProxy::Any, 16 + 0xFFFF).status, ParseStatus::Done);
  EXPECT_EQ(parse(prefix(largest, 16), AcceptProxy::Any, 16 + 0xFFFE).status, ParseStatus::Invalid);
}

// ---- Which versions a listener takes ----

TEST(ProxyAccepted, VersionsOutsideTheListenersChoiceAreInvalid) {
  const Bytes one = bytesOf("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
  const Bytes two = v2(0x21, 0x11, kInet4Block);
  EXPECT_EQ(parse(one, AcceptProxy::V1).status, ParseStatus::Done);
  EXPECT_EQ(parse(one, AcceptProxy::Any).status, ParseStatus::Done);
  expectInvalidExactlyAt(one, 1, AcceptProxy::V2);
  EXPECT_EQ(parse(two, AcceptProxy::V2).status, ParseStatus::Done);
  EXPECT_EQ(parse(two, AcceptProxy::Any).status, ParseStatus::Done);
  expectInvalidExactlyAt(two, 1, AcceptProxy::V1);
  EXPECT_EQ(parse(one, AcceptProxy::Off).status, ParseStatus::Invalid);
  EXPECT_EQ(parse(two, AcceptProxy::Off).status, ParseStatus::Invalid);
}

// ---- Writing ----

std::string written(ProxyVersion version, const sockaddr_storage& source, const sockaddr_storage& destination,
                    const HeaderExtras& extras = {}) {
  uint8_t out[kMaxWrittenHeaderBytes];
  const size_t length = writeHeader(version, source, destination, extras, out);
  return std::string(reinterpret_cast<const char*>(out), length);
}

Bytes fromHex(std::string_view hex) {
  Bytes out;
  for (size_t i = 0; i < hex.size();) {
    if (hex[i] == ' ') {
      ++i;
      continue;
    }
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
    i += 2;
  }
  return out;
}

TEST(ProxyWrite, V1BytesAreExact) {
  EXPECT_EQ(written(ProxyVersion::V1, endpoint("192.0.2.1", 51234), endpoint("198.51.100.2", 443)),
            "PROXY TCP4 192.0.2.1 198.51.100.2 51234 443\r\n");
  EXPECT_EQ(written(ProxyVersion::V1, endpoint("2001:db8:0:0:1:0:0:1", 0), endpoint("::", 65535)),
            "PROXY TCP6 2001:db8::1:0:0:1 :: 0 65535\r\n");
  EXPECT_EQ(written(ProxyVersion::V1, endpoint("1:0:2:0:0:3:0:0", 1), endpoint("0:0:1:0:0:0:0:0", 2)),
            "PROXY TCP6 1:0:2::3:0:0 0:0:1:: 1 2\r\n");
  EXPECT_EQ(written(ProxyVersion::V1, endpoint("10.0.0.1", 7), endpoint("fe80::1", 8)),
            "PROXY TCP6 ::ffff:a00:1 fe80::1 7 8\r\n");
  EXPECT_EQ(written(ProxyVersion::V1, sockaddr_storage{}, endpoint("10.0.0.1", 1)), "PROXY UNKNOWN\r\n");
}

TEST(ProxyWrite, V2BytesWithTlvsAreExact) {
  HeaderExtras extras;
  extras.alpn = "h2";
  extras.authority = "example.com";
  extras.tls = true;
  extras.clientCertVerified = true;
  extras.tlsVersion = "TLSv1.3";
  extras.tlsCipher = "TLS_AES_128_GCM_SHA256";
  const Bytes expected =
      fromHex("0D0A0D0A000D0A515549540A"  // signature
              "21 11 004A"                // v2 PROXY, TCP over IPv4, 74 bytes follow
              "C0000201 C6336402 C822 01BB") +
      fromHex("01 0002") + bytesOf("h2") +          // PP2_TYPE_ALPN
      fromHex("02 000B") + bytesOf("example.com") +  // PP2_TYPE_AUTHORITY
      fromHex("20 0028 03 00000000") +               // PP2_TYPE_SSL: 40 bytes, SSL|CERT_CONN, verified
      fromHex("21 0007") + bytesOf("TLSv1.3") +      // PP2_SUBTYPE_SSL_VERSION
      fromHex("23 0016") + bytesOf("TLS_AES_128_GCM_SHA256");  // PP2_SUBTYPE_SSL_CIPHER
  ASSERT_EQ(expected.size(), 90u);
  const std::string out = written(ProxyVersion::V2, endpoint("192.0.2.1", 51234), endpoint("198.51.100.2", 443), extras);
  EXPECT_EQ(out, std::string(expected.begin(), expected.end()));
  const ParsedHeader parsed = parse(bytesOf(out));
  ASSERT_EQ(parsed.status, ParseStatus::Done) << parsed.why;
  EXPECT_EQ(parsed.headerBytes, 90u);
}

TEST(ProxyWrite, V2SslWithoutAVerifiedCertificateSaysSo) {
  HeaderExtras extras;
  extras.tls = true;
  const std::string out = written(ProxyVersion::V2, endpoint("192.0.2.1", 1), endpoint("192.0.2.2", 2), extras);
  const Bytes expected = v2(0x21, 0x11, Bytes{192, 0, 2, 1, 192, 0, 2, 2, 0, 1, 0, 2} +
                                            fromHex("20 0005 01 00000001"));
  EXPECT_EQ(out, std::string(expected.begin(), expected.end()));
}

TEST(ProxyWrite, V2OfNonIpEndsIsUnspecified) {
  HeaderExtras extras;
  extras.authority = "a";
  const std::string out = written(ProxyVersion::V2, sockaddr_storage{}, sockaddr_storage{}, extras);
  const Bytes expected = v2(0x21, 0x00, fromHex("02 0001") + bytesOf("a"));
  EXPECT_EQ(out, std::string(expected.begin(), expected.end()));
  const ParsedHeader parsed = parse(bytesOf(out));
  ASSERT_EQ(parsed.status, ParseStatus::Done);
  EXPECT_FALSE(parsed.hasAddresses);
}

struct RoundTrip {
  const char* source;
  const char* destination;
  const char* expectedSource;
  const char* expectedDestination;
};

TEST(ProxyWrite, RoundTripsThroughTheParser) {
  const RoundTrip cases[] = {
      {"192.0.2.1", "198.51.100.2", "192.0.2.1:1000", "198.51.100.2:443"},
      {"0.0.0.0", "255.255.255.255", "0.0.0.0:1000", "255.255.255.255:443"},
      {"2001:db8::1", "::", "[2001:db8::1]:1000", "[::]:443"},
      {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:1.2.3.4", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:1000",
       "[::ffff:1.2.3.4]:443"},
      {"192.0.2.1", "2001:db8::2", "[::ffff:192.0.2.1]:1000", "[2001:db8::2]:443"},
      {"2001:db8::2", "10.1.2.3", "[2001:db8::2]:1000", "[::ffff:10.1.2.3]:443"},
  };
  HeaderExtras extras;
  extras.alpn = "http/1.1";
  extras.authority = std::string_view("x.example");
  extras.tls = true;
  extras.tlsVersion = "TLSv1.2";
  for (const RoundTrip& c : cases) {
    for (ProxyVersion version : {ProxyVersion::V1, ProxyVersion::V2}) {
      const std::string out = written(version, endpoint(c.source, 1000), endpoint(c.destination, 443), extras);
      ASSERT_FALSE(out.empty());
      const Bytes bytes = bytesOf(out) + bytesOf("payload");
      const ParsedHeader parsed = parse(bytes, version == ProxyVersion::V1 ? AcceptProxy::V1 : AcceptProxy::V2);
      ASSERT_EQ(parsed.status, ParseStatus::Done) << out << ": " << parsed.why;
      EXPECT_EQ(parsed.version, version == ProxyVersion::V1 ? 1 : 2);
      EXPECT_EQ(parsed.headerBytes, out.size());
      EXPECT_TRUE(parsed.hasAddresses);
      EXPECT_EQ(formatAddress(parsed.source), c.expectedSource) << out;
      EXPECT_EQ(formatAddress(parsed.destination), c.expectedDestination) << out;
    }
  }
}

TEST(ProxyWrite, TooSmallOrTooLongWritesNothing) {
  HeaderExtras extras;
  extras.alpn = "h2";
  extras.tls = true;
  extras.tlsCipher = "TLS_AES_256_GCM_SHA384";
  const sockaddr_storage source = endpoint("2001:db8::1", 1), destination = endpoint("2001:db8::2", 2);
  for (ProxyVersion version : {ProxyVersion::V1, ProxyVersion::V2}) {
    uint8_t out[kMaxWrittenHeaderBytes];
    const size_t full = writeHeader(version, source, destination, extras, out);
    ASSERT_GT(full, 0u);
    for (size_t room = 0; room < full; ++room) {
      EXPECT_EQ(writeHeader(version, source, destination, extras, std::span(out, room)), 0u) << room;
    }
    EXPECT_EQ(writeHeader(version, source, destination, extras, std::span(out, full)), full);
  }
  // A value a TLV length cannot say is not cut short.
  const std::string huge(0x10000, 'a');
  extras.authority = huge;
  std::vector<uint8_t> big(0x20000);
  EXPECT_EQ(writeHeader(ProxyVersion::V2, source, destination, extras, big), 0u);
  EXPECT_EQ(writeHeader(ProxyVersion::Off, source, destination, {}, big), 0u);
  // Largest extras the header promises room for.
  const std::string name(255, 'n');
  HeaderExtras largest;
  largest.alpn = name;
  largest.authority = name;
  largest.tls = true;
  largest.clientCertVerified = true;
  largest.tlsVersion = "TLSv1.3";
  largest.tlsCipher = "TLS_CHACHA20_POLY1305_SHA256_AND_SOME_LONGER_NAME";
  uint8_t out[kMaxWrittenHeaderBytes];
  EXPECT_GT(writeHeader(ProxyVersion::V2, source, destination, largest, out), 0u);
}

TEST(ProxyWrite, LocalHeadersParseAsLocal) {
  EXPECT_TRUE(localHeader(ProxyVersion::Off).empty());
  const auto v1 = localHeader(ProxyVersion::V1);
  EXPECT_EQ(std::string(v1.begin(), v1.end()), "PROXY UNKNOWN\r\n");
  const auto two = localHeader(ProxyVersion::V2);
  const Bytes expected = v2(0x20, 0x00, {});
  EXPECT_EQ(Bytes(two.begin(), two.end()), expected);
  for (auto header : {v1, two}) {
    const ParsedHeader parsed = parse(Bytes(header.begin(), header.end()));
    ASSERT_EQ(parsed.status, ParseStatus::Done);
    EXPECT_EQ(parsed.headerBytes, header.size());
    EXPECT_FALSE(parsed.hasAddresses);
  }
}

}  // namespace
}  // namespace lb::edge
