#include "lb/tls/client_hello.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace lb::tls {
namespace {

using Bytes = std::vector<uint8_t>;

// ---- Real ClientHellos, made by OpenSSL in memory (no sockets) ----

struct ClientOptions {
  int maxVersion = TLS1_3_VERSION;
  std::string serverName;             // empty: no SNI
  std::vector<std::string> alpn;      // empty: no ALPN
};

// The bytes an OpenSSL client writes first: its ClientHello record(s).
Bytes openSslClientHello(const ClientOptions& options) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  EXPECT_NE(ctx, nullptr);
  EXPECT_EQ(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION), 1);
  EXPECT_EQ(SSL_CTX_set_max_proto_version(ctx, options.maxVersion), 1);
  SSL* ssl = SSL_new(ctx);
  EXPECT_NE(ssl, nullptr);
  if (!options.serverName.empty()) {
    EXPECT_EQ(SSL_set_tlsext_host_name(ssl, options.serverName.c_str()), 1);
  }
  if (!options.alpn.empty()) {
    Bytes wire;
    for (const std::string& protocol : options.alpn) {
      wire.push_back(static_cast<uint8_t>(protocol.size()));
      wire.insert(wire.end(), protocol.begin(), protocol.end());
    }
    EXPECT_EQ(SSL_set_alpn_protos(ssl, wire.data(), static_cast<unsigned>(wire.size())), 0);  // 0: success
  }
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);  // ssl owns both now
  SSL_set_connect_state(ssl);
  EXPECT_EQ(SSL_do_handshake(ssl), -1);
  EXPECT_EQ(SSL_get_error(ssl, -1), SSL_ERROR_WANT_READ);
  Bytes hello(BIO_ctrl_pending(out));
  EXPECT_EQ(BIO_read(out, hello.data(), static_cast<int>(hello.size())), static_cast<int>(hello.size()));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return hello;
}

// ---- Hand-built ClientHellos ----

void put16(Bytes& out, size_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}
void put24(Bytes& out, size_t value) {
  out.push_back(static_cast<uint8_t>(value >> 16));
  put16(out, value);
}
void append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

Bytes vec8(const Bytes& content) {
  Bytes out{static_cast<uint8_t>(content.size())};
  append(out, content);
  return out;
}
Bytes vec16(const Bytes& content) {
  Bytes out;
  put16(out, content.size());
  append(out, content);
  return out;
}
Bytes text(std::string_view s) { return Bytes(s.begin(), s.end()); }

Bytes extension(uint16_t type, const Bytes& data) {
  Bytes out;
  put16(out, type);
  append(out, vec16(data));
  return out;
}
// server_name with the given (name_type, name) entries.
Bytes serverNameExtension(std::initializer_list<std::pair<uint8_t, std::string_view>> entries) {
  Bytes list;
  for (auto [type, name] : entries) {
    list.push_back(type);
    append(list, vec16(text(name)));
  }
  return extension(0, vec16(list));
}
Bytes sniExtension(std::string_view host) { return serverNameExtension({{0, host}}); }
Bytes alpnExtension(std::initializer_list<std::string_view> protocols) {
  Bytes list;
  for (std::string_view protocol : protocols) append(list, vec8(text(protocol)));
  return extension(16, vec16(list));
}

// The fields before the extensions: version, random, session id, two
// cipher suites, null compression.
Bytes helloPrefix() {
  Bytes body;
  put16(body, 0x0303);
  body.resize(body.size() + 32, 0xab);
  append(body, vec8(Bytes(32, 0x11)));
  append(body, vec16({0x13, 0x01, 0x00, 0x2f}));
  append(body, vec8({0}));
  return body;
}
Bytes helloBody(const Bytes& extensions) {
  Bytes body = helloPrefix();
  append(body, vec16(extensions));
  return body;
}
Bytes handshake(const Bytes& body, uint8_t type = 1) {
  Bytes out{type};
  put24(out, body.size());
  append(out, body);
  return out;
}
// `message` in handshake records of at most `recordSize` bytes each.
Bytes records(const Bytes& message, size_t recordSize = 16384) {
  Bytes out;
  for (size_t at = 0; at < message.size(); at += recordSize) {
    size_t size = std::min(recordSize, message.size() - at);
    append(out, Bytes{22, 3, 1});
    put16(out, size);
    out.insert(out.end(), message.begin() + static_cast<long>(at), message.begin() + static_cast<long>(at + size));
  }
  return out;
}
Bytes hello(const Bytes& extensions) { return records(handshake(helloBody(extensions))); }

// The handshake message inside one record's worth of OpenSSL output.
Bytes messageOf(const Bytes& singleRecord) {
  EXPECT_GE(singleRecord.size(), 5u);
  EXPECT_EQ(singleRecord[0], 22);
  size_t length = (size_t{singleRecord[3]} << 8) | singleRecord[4];
  EXPECT_EQ(singleRecord.size(), 5 + length) << "expected one record";
  return Bytes(singleRecord.begin() + 5, singleRecord.end());
}

// ---- Feeding ----

ClientHelloParser feedWhole(const Bytes& bytes) {
  ClientHelloParser parser;
  parser.feed(bytes.data(), bytes.size());
  return parser;
}

// Feeds one byte at a time; checks the state is NeedMore until the last
// byte and settles there.
ClientHelloParser feedByteByByte(const Bytes& bytes, HelloResult expected) {
  ClientHelloParser parser;
  for (size_t i = 0; i < bytes.size(); ++i) {
    HelloResult result = parser.feed(&bytes[i], 1);
    if (i + 1 < bytes.size()) {
      EXPECT_EQ(result, HelloResult::NeedMore) << "decided early, at byte " << i;
      if (result != HelloResult::NeedMore) break;
    }
  }
  EXPECT_EQ(parser.result(), expected);
  EXPECT_EQ(parser.consumed(), bytes.size());
  return parser;
}

// The state after `bytes` is the same at every cut into two feeds.
void expectSameAtEveryCut(const Bytes& bytes, const ClientHelloParser& whole) {
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    ClientHelloParser parser;
    parser.feed(bytes.data(), cut);
    parser.feed(bytes.data() + cut, bytes.size() - cut);
    ASSERT_EQ(parser.result(), whole.result()) << "cut at " << cut;
    ASSERT_EQ(parser.serverName(), whole.serverName()) << "cut at " << cut;
    ASSERT_EQ(parser.alpn(), whole.alpn()) << "cut at " << cut;
    ASSERT_EQ(parser.consumed(), bytes.size());
  }
}

using Strings = std::vector<std::string>;

// ---- OpenSSL clients ----

struct RealClient {
  const char* what;
  ClientOptions options;
};

class RealClientHello : public testing::TestWithParam<RealClient> {};

TEST_P(RealClientHello, WholeFindsServerNameAndAlpn) {
  const ClientOptions& options = GetParam().options;
  Bytes bytes = openSslClientHello(options);
  ClientHelloParser parser = feedWhole(bytes);
  EXPECT_EQ(parser.result(), HelloResult::Done) << parser.problem();
  EXPECT_EQ(parser.serverName(), options.serverName);
  EXPECT_EQ(parser.alpn(), options.alpn);
  EXPECT_EQ(parser.consumed(), bytes.size());
  EXPECT_TRUE(parser.problem().empty());
}

TEST_P(RealClientHello, OneByteAtATimeIsDoneAtTheLastByte) {
  const ClientOptions& options = GetParam().options;
  Bytes bytes = openSslClientHello(options);
  ClientHelloParser parser = feedByteByByte(bytes, HelloResult::Done);
  EXPECT_EQ(parser.serverName(), options.serverName);
  EXPECT_EQ(parser.alpn(), options.alpn);
}

TEST_P(RealClientHello, EveryCutIntoTwoFeedsAgrees) {
  Bytes bytes = openSslClientHello(GetParam().options);
  expectSameAtEveryCut(bytes, feedWhole(bytes));
}

TEST_P(RealClientHello, ResplitIntoManyRecords) {
  const ClientOptions& options = GetParam().options;
  Bytes message = messageOf(openSslClientHello(options));
  for (size_t recordSize : {1, 2, 3, 4, 5, 7, 64, 100, 511}) {
    Bytes bytes = records(message, recordSize);
    ClientHelloParser whole = feedWhole(bytes);
    EXPECT_EQ(whole.result(), HelloResult::Done) << "records of " << recordSize << ": " << whole.problem();
    EXPECT_EQ(whole.serverName(), options.serverName);
    EXPECT_EQ(whole.alpn(), options.alpn);
    ClientHelloParser bytewise = feedByteByByte(bytes, HelloResult::Done);
    EXPECT_EQ(bytewise.serverName(), options.serverName);
  }
}

TEST_P(RealClientHello, TruncatedByOneByteNeedsMore) {
  Bytes bytes = openSslClientHello(GetParam().options);
  bytes.pop_back();
  ClientHelloParser parser = feedWhole(bytes);
  EXPECT_EQ(parser.result(), HelloResult::NeedMore);
  EXPECT_TRUE(parser.serverName().empty());
}

INSTANTIATE_TEST_SUITE_P(
    OpenSsl, RealClientHello,
    testing::Values(
        RealClient{"tls13_sni_alpn", {TLS1_3_VERSION, "api.internal", {"h2", "http/1.1"}}},
        RealClient{"tls12_sni_alpn", {TLS1_2_VERSION, "Api.Internal", {"http/1.1"}}},
        RealClient{"tls13_sni_only", {TLS1_3_VERSION, "x.svc.internal", {}}},
        RealClient{"tls12_no_sni", {TLS1_2_VERSION, "", {"h2"}}},
        RealClient{"tls13_nothing", {TLS1_3_VERSION, "", {}}}),
    [](const testing::TestParamInfo<RealClient>& info) { return std::string(info.param.what); });

TEST(ClientHello, BytesAfterTheHelloAreCountedNotLookedAt) {
  Bytes bytes = openSslClientHello({TLS1_3_VERSION, "api.internal", {"h2"}});
  size_t helloSize = bytes.size();
  append(bytes, text("\x17\x03\x03\x00\x05hello"));  // early data, say
  ClientHelloParser parser = feedWhole(bytes);
  EXPECT_EQ(parser.result(), HelloResult::Done);
  EXPECT_EQ(parser.serverName(), "api.internal");
  EXPECT_EQ(parser.consumed(), bytes.size());
  // Final: more bytes change nothing but the count.
  EXPECT_EQ(parser.feed(bytes.data(), helloSize), HelloResult::Done);
  EXPECT_EQ(parser.consumed(), bytes.size() + helloSize);
  EXPECT_EQ(parser.serverName(), "api.internal");
}

TEST(ClientHello, RealHelloOverTheBoundIsTooLargeAtTheHandshakeHeader) {
  ClientOptions options{TLS1_3_VERSION, "api.internal", {}};
  for (int i = 0; i < 200; ++i) options.alpn.push_back(std::string(90, static_cast<char>('a' + i % 26)));
  Bytes bytes = openSslClientHello(options);
  ASSERT_GT(bytes.size(), kMaxClientHelloBytes + 5);
  ClientHelloParser parser;
  // Record header (5) and handshake header (4): the announced length decides.
  EXPECT_EQ(parser.feed(bytes.data(), 8), HelloResult::NeedMore);
  EXPECT_EQ(parser.feed(bytes.data() + 8, 1), HelloResult::TooLarge);
  EXPECT_FALSE(parser.problem().empty());
}

TEST(ClientHello, HelloWithinTheBoundButNotItsRecordsIsTooLargeAtTheBound) {
  // A message of 10,000 bytes in 100-byte records: 100 record headers and
  // the message are 10,504 bytes; in 2-byte records, 35,000.
  Bytes padding(10000 - helloPrefix().size() - 2 - 4 - 4, 0);
  Bytes message = handshake(helloBody(extension(21, padding)));
  ASSERT_EQ(message.size(), 10000u);
  EXPECT_EQ(feedWhole(records(message, 100)).result(), HelloResult::Done);

  Bytes bytes = records(message, 2);
  ClientHelloParser parser;
  EXPECT_EQ(parser.feed(bytes.data(), kMaxClientHelloBytes), HelloResult::NeedMore);
  EXPECT_EQ(parser.feed(bytes.data() + kMaxClientHelloBytes, 1), HelloResult::TooLarge);
  EXPECT_EQ(parser.consumed(), kMaxClientHelloBytes + 1);
}

TEST(ClientHello, HelloEndingExactlyAtTheBoundIsDone) {
  // One record header, then a message filling the rest of the bound.
  size_t messageSize = kMaxClientHelloBytes - 5;
  Bytes padding(messageSize - helloPrefix().size() - 2 - 4 - 4, 0);
  Bytes message = handshake(helloBody(extension(21, padding)));
  ASSERT_EQ(message.size(), messageSize);
  Bytes bytes = records(message);
  ASSERT_EQ(bytes.size(), kMaxClientHelloBytes);
  EXPECT_EQ(feedWhole(bytes).result(), HelloResult::Done);
  // One byte more of message would not fit.
  Bytes over = records(handshake(helloBody(extension(21, Bytes(padding.size() + 1, 0)))));
  EXPECT_EQ(feedWhole(over).result(), HelloResult::TooLarge);
}

// ---- Hand-built hellos ----

TEST(ClientHello, NoSniNoAlpn) {
  ClientHelloParser parser = feedByteByByte(hello(extension(10, {0x00, 0x02, 0x00, 0x1d})), HelloResult::Done);
  EXPECT_EQ(parser.serverName(), "");
  EXPECT_TRUE(parser.alpn().empty());
}

TEST(ClientHello, NoExtensionsAtAll) {
  // TLS 1.2 lets a ClientHello end after compression_methods.
  ClientHelloParser parser = feedWhole(records(handshake(helloPrefix())));
  EXPECT_EQ(parser.result(), HelloResult::Done) << parser.problem();
  EXPECT_EQ(parser.serverName(), "");
}

TEST(ClientHello, SniWithoutAlpnAndAsSent) {
  ClientHelloParser parser = feedWhole(hello(sniExtension("API.Internal.")));
  EXPECT_EQ(parser.result(), HelloResult::Done);
  EXPECT_EQ(parser.serverName(), "API.Internal.");
  EXPECT_TRUE(parser.alpn().empty());
}

TEST(ClientHello, OtherNameTypesBesideTheHostName) {
  ClientHelloParser parser = feedWhole(hello(serverNameExtension({{7, "xx"}, {0, "a.example"}, {9, ""}})));
  EXPECT_EQ(parser.result(), HelloResult::Done) << parser.problem();
  EXPECT_EQ(parser.serverName(), "a.example");
}

TEST(ClientHello, AlpnKeepsTheFirstProtocolsOnly) {
  Bytes list;
  for (int i = 0; i < 40; ++i) append(list, vec8(text("p" + std::to_string(i))));
  ClientHelloParser parser = feedWhole(hello(extension(16, vec16(list))));
  EXPECT_EQ(parser.result(), HelloResult::Done);
  ASSERT_EQ(parser.alpn().size(), kMaxAlpnProtocols);
  EXPECT_EQ(parser.alpn().front(), "p0");
  EXPECT_EQ(parser.alpn().back(), "p" + std::to_string(kMaxAlpnProtocols - 1));
}

TEST(ClientHello, PlainHttpIsNotTlsAtTheFirstByte) {
  Bytes bytes = text("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  ClientHelloParser parser;
  EXPECT_EQ(parser.feed(bytes.data(), 1), HelloResult::NotTls);
  EXPECT_EQ(parser.consumed(), 1u);
  EXPECT_EQ(parser.feed(bytes.data() + 1, bytes.size() - 1), HelloResult::NotTls);
  EXPECT_EQ(parser.consumed(), bytes.size());
}

TEST(ClientHello, NotTlsDecidedOnTheFirstTwoBytes) {
  struct Case {
    Bytes bytes;
    size_t decidedAt;  // bytes needed
  };
  const Case cases[] = {
      {{0x00}, 1},
      {{0x17, 0x03, 0x03}, 1},                    // application data first
      {{0x80, 0x2e, 0x01, 0x03, 0x01}, 1},        // SSLv2-compatible hello
      {{0x16, 0x02, 0x00, 0x00, 0x05}, 2},        // record version 2.x
      {{0x16, 0x16, 0x03, 0x01}, 2},
      {text("SSH-2.0-OpenSSH_9.2\r\n"), 1},
  };
  for (const Case& c : cases) {
    ClientHelloParser parser;
    for (size_t i = 0; i + 1 < c.decidedAt; ++i) ASSERT_EQ(parser.feed(&c.bytes[i], 1), HelloResult::NeedMore);
    EXPECT_EQ(parser.feed(&c.bytes[c.decidedAt - 1], 1), HelloResult::NotTls);
    EXPECT_FALSE(parser.problem().empty());
  }
}

TEST(ClientHello, EmptyInputNeedsMore) {
  ClientHelloParser parser;
  EXPECT_EQ(parser.feed(nullptr, 0), HelloResult::NeedMore);
  EXPECT_EQ(parser.consumed(), 0u);
}

struct MalformedCase {
  const char* what;
  Bytes bytes;
};

// Each is Malformed whole, byte by byte and at every cut, with the right
// problem (so none passes for another reason).
void expectMalformed(const MalformedCase& c, std::string_view problem) {
  SCOPED_TRACE(c.what);
  ClientHelloParser whole = feedWhole(c.bytes);
  EXPECT_EQ(whole.result(), HelloResult::Malformed);
  EXPECT_EQ(whole.problem(), problem);
  EXPECT_EQ(whole.serverName(), "");
  expectSameAtEveryCut(c.bytes, whole);
}

TEST(ClientHello, MalformedRecords) {
  Bytes good = hello(sniExtension("a.example"));
  Bytes emptyRecord{22, 3, 1, 0, 0};
  expectMalformed({"empty record", emptyRecord}, "empty handshake record");
  Bytes longRecord{22, 3, 1, 0x40, 0x01};
  longRecord.resize(5 + 16385, 1);
  expectMalformed({"record over 2^14", longRecord}, "record longer than 2^14");

  Bytes message = handshake(helloBody(sniExtension("a.example")));
  Bytes split = records(message, 50);
  Bytes alert = split;
  alert[55] = 21;  // the second record's type
  expectMalformed({"alert record mid-hello", alert}, "a record other than handshake in the ClientHello");
  Bytes version = split;
  version[56] = 2;
  expectMalformed({"second record version 2", version}, "record version is not 3.x");
}

TEST(ClientHello, MalformedHandshakeHeader) {
  expectMalformed({"server hello", records(handshake(helloBody({}), 2))},
                  "first handshake message is not a ClientHello");
  // Decided at the handshake type byte: the sixth.
  ClientHelloParser parser;
  Bytes bytes = records(handshake(helloBody({}), 11));
  EXPECT_EQ(parser.feed(bytes.data(), 5), HelloResult::NeedMore);
  EXPECT_EQ(parser.feed(bytes.data() + 5, 1), HelloResult::Malformed);
  expectMalformed({"zero length", records(Bytes{1, 0, 0, 0})}, "ClientHello fields overrun it");
}

TEST(ClientHello, MalformedFixedFields) {
  Bytes body = helloPrefix();
  Bytes version = body;
  version[0] = 2;
  expectMalformed({"version 2.3", records(handshake(version))}, "ClientHello version is not 3.x");

  Bytes sessionId = body;
  sessionId[34] = 33;  // session id length; the bytes then overrun
  expectMalformed({"session id 33", records(handshake(sessionId))}, "ClientHello fields overrun it");
  Bytes longSessionId;
  put16(longSessionId, 0x0303);
  longSessionId.resize(34, 0);
  append(longSessionId, vec8(Bytes(33, 1)));
  append(longSessionId, vec16({0x13, 0x01}));
  append(longSessionId, vec8({0}));
  expectMalformed({"session id 33 present", records(handshake(longSessionId))}, "session id longer than 32");

  Bytes odd;
  put16(odd, 0x0303);
  odd.resize(34, 0);
  append(odd, vec8({}));
  append(odd, vec16({0x13, 0x01, 0x00}));
  append(odd, vec8({0}));
  expectMalformed({"odd cipher suites", records(handshake(odd))}, "bad cipher_suites length");

  Bytes noCompression;
  put16(noCompression, 0x0303);
  noCompression.resize(34, 0);
  append(noCompression, vec8({}));
  append(noCompression, vec16({0x13, 0x01}));
  append(noCompression, vec8({}));
  expectMalformed({"no compression", records(handshake(noCompression))}, "no compression methods");

  Bytes truncated = helloPrefix();
  truncated.pop_back();
  expectMalformed({"compression cut", records(handshake(truncated))}, "ClientHello fields overrun it");
}

TEST(ClientHello, MalformedExtensionBlock) {
  Bytes extensions = sniExtension("a.example");
  Bytes longer = helloPrefix();
  put16(longer, extensions.size() + 1);
  append(longer, extensions);
  expectMalformed({"extensions longer than the rest", records(handshake(longer))}, "extensions length mismatch");

  Bytes shorter = helloPrefix();
  put16(shorter, extensions.size() - 1);
  append(shorter, extensions);
  expectMalformed({"extensions shorter than the rest", records(handshake(shorter))},
                  "extensions length mismatch");

  Bytes oneByte = helloPrefix();
  oneByte.push_back(0);
  expectMalformed({"half an extensions length", records(handshake(oneByte))}, "extensions length mismatch");

  Bytes overrun = extensions;
  overrun[3] += 1;  // the server_name extension's own length
  expectMalformed({"extension overruns", hello(overrun)}, "extension overruns the extensions");

  Bytes halfHeader = extensions;
  append(halfHeader, Bytes{0x00, 0x10, 0x00});
  expectMalformed({"half an extension header", hello(halfHeader)}, "extension overruns the extensions");
}

TEST(ClientHello, MalformedServerName) {
  expectMalformed({"no host_name", hello(serverNameExtension({{1, "x"}}))}, "server_name without a host_name");
  expectMalformed({"two host_names", hello(serverNameExtension({{0, "a.example"}, {0, "b.example"}}))},
                  "two host_names in server_name");
  expectMalformed({"empty host_name", hello(serverNameExtension({{0, ""}}))}, "empty host_name");
  expectMalformed({"empty list", hello(extension(0, vec16({})))}, "empty server_name list");
  expectMalformed({"empty extension", hello(extension(0, {}))}, "server_name length mismatch");
  expectMalformed({"list shorter than extension", hello(extension(0, [] {
                     Bytes data = vec16(Bytes{0, 0, 1, 'a'});
                     data.push_back(0);
                     return data;
                   }()))},
                  "server_name length mismatch");
  expectMalformed({"entry overruns list", hello(extension(0, vec16(Bytes{0, 0, 5, 'a'})))},
                  "server_name entry overruns its list");
  std::string longName(kMaxServerNameBytes + 1, 'a');
  expectMalformed({"host_name too long", hello(sniExtension(longName))}, "host_name too long");
  expectMalformed({"NUL", hello(sniExtension(std::string_view("a\0b.example", 11)))}, "NUL in host_name");
  expectMalformed({"two server_name extensions", hello([] {
                     Bytes twice = sniExtension("a.example");
                     append(twice, sniExtension("a.example"));
                     return twice;
                   }())},
                  "two server_name extensions");

  std::string longest(kMaxServerNameBytes, 'a');
  ClientHelloParser parser = feedWhole(hello(sniExtension(longest)));
  EXPECT_EQ(parser.result(), HelloResult::Done);
  EXPECT_EQ(parser.serverName(), longest);
}

TEST(ClientHello, MalformedAlpn) {
  expectMalformed({"empty protocol", hello(alpnExtension({"h2", ""}))}, "empty ALPN protocol");
  expectMalformed({"empty list", hello(extension(16, vec16({})))}, "empty ALPN list");
  expectMalformed({"empty extension", hello(extension(16, {}))}, "ALPN length mismatch");
  expectMalformed({"protocol overruns", hello(extension(16, vec16(Bytes{3, 'h', '2'})))},
                  "ALPN protocol overruns its list");
  Bytes twice = alpnExtension({"h2"});
  append(twice, alpnExtension({"h2"}));
  expectMalformed({"two ALPN extensions", hello(twice)}, "two ALPN extensions");
}

TEST(ClientHello, TrailingBytesAfterTheHelloInItsRecordAreIgnored) {
  // The record carries the message and more (a second handshake message
  // would be a client error, but the ClientHello itself is whole).
  Bytes message = handshake(helloBody(sniExtension("a.example")));
  Bytes withMore = message;
  append(withMore, Bytes{0xde, 0xad});
  ClientHelloParser parser = feedWhole(records(withMore));
  EXPECT_EQ(parser.result(), HelloResult::Done);
  EXPECT_EQ(parser.serverName(), "a.example");
}

TEST(ClientHello, ToStringNamesEveryResult) {
  EXPECT_EQ(toString(HelloResult::NeedMore), "need_more");
  EXPECT_EQ(toString(HelloResult::Done), "done");
  EXPECT_EQ(toString(HelloResult::NotTls), "not_tls");
  EXPECT_EQ(toString(HelloResult::TooLarge), "too_large");
  EXPECT_EQ(toString(HelloResult::Malformed), "malformed");
}

}  // namespace
}  // namespace lb::tls
