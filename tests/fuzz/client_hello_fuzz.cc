// Fuzzes lb::tls::ClientHelloParser, which peeks at a TLS ClientHello for
// SNI routing.
//
// Input: one byte that seeds how the rest is cut into feeds, then the bytes
// a client sends. Properties: the verdict, server name, ALPN list and
// problem do not depend on how the bytes are cut (one feed, fuzzer-chosen
// pieces, byte by byte); byte by byte, once final the state never changes;
// consumed() is every byte fed; NotTls exactly when byte 0 is not 22 or
// byte 1 is not 3; nothing past kMaxClientHelloBytes + 1 bytes matters and
// NeedMore never outlives the bound; a Done hello's server name is bounded,
// has no NUL and is in the records' payloads as sent (as are its ALPN
// protocols); a final state other than Done says why and keeps no name.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "lb/tls/client_hello.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using lb::tls::ClientHelloParser;
using lb::tls::HelloResult;

bool same(const ClientHelloParser& a, const ClientHelloParser& b) {
  return a.result() == b.result() && a.serverName() == b.serverName() && a.alpn() == b.alpn() &&
         a.problem() == b.problem();
}

// Piece sizes from a small generator seeded by the fuzzer's byte: mostly
// short pieces (1 to 8 bytes, the cuts that cross record and field edges),
// sometimes long ones.
class Cutter {
 public:
  explicit Cutter(uint8_t seed) : state_(seed * 2654435761u + 1) {}
  size_t next() {
    state_ = state_ * 1103515245u + 12345u;
    uint32_t bits = state_ >> 16;
    return (bits & 3) == 0 ? 1 + (bits >> 2) % 2048 : 1 + (bits >> 2) % 8;
  }

 private:
  uint32_t state_;
};

// The records' payloads joined: where a ClientHello's fields are read from,
// whichever record boundaries cut them.
std::string recordPayloads(const uint8_t* bytes, size_t length) {
  std::string payloads;
  size_t at = 0;
  while (at + 5 <= length) {
    const size_t recordLength = (size_t{bytes[at + 3]} << 8) | bytes[at + 4];
    const size_t end = std::min(length, at + 5 + recordLength);
    payloads.append(reinterpret_cast<const char*>(bytes + at + 5), end - (at + 5));
    at = end;
  }
  return payloads;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t seed = data[0];
  const uint8_t* bytes = data + 1;
  const size_t length = size - 1;

  ClientHelloParser whole;
  const HelloResult verdict = whole.feed(bytes, length);
  FUZZ_CHECK(whole.result() == verdict);
  FUZZ_CHECK(whole.consumed() == length);

  const bool notTls = (length >= 1 && bytes[0] != 22) || (length >= 2 && bytes[0] == 22 && bytes[1] != 3);
  FUZZ_CHECK((verdict == HelloResult::NotTls) == notTls);
  if (verdict == HelloResult::NeedMore) FUZZ_CHECK(length <= lb::tls::kMaxClientHelloBytes);
  if (verdict == HelloResult::Done) {
    const std::string_view name = whole.serverName();
    FUZZ_CHECK(name.size() <= lb::tls::kMaxServerNameBytes);
    FUZZ_CHECK(name.find('\0') == std::string_view::npos);
    const std::string payloads = recordPayloads(bytes, length);
    FUZZ_CHECK(payloads.find(name) != std::string::npos);
    FUZZ_CHECK(whole.alpn().size() <= lb::tls::kMaxAlpnProtocols);
    for (const auto& protocol : whole.alpn()) {
      FUZZ_CHECK(!protocol.empty() && protocol.size() <= 255);
      FUZZ_CHECK(payloads.find(protocol) != std::string::npos);
    }
    FUZZ_CHECK(whole.problem().empty());
  } else {
    FUZZ_CHECK(whole.serverName().empty() && whole.alpn().empty());
    FUZZ_CHECK(whole.problem().empty() == (verdict == HelloResult::NeedMore));
  }

  ClientHelloParser pieces;
  Cutter cutter(seed);
  for (size_t at = 0; at < length;) {
    const size_t piece = std::min(cutter.next(), length - at);
    pieces.feed(bytes + at, piece);
    at += piece;
  }
  FUZZ_CHECK(same(pieces, whole));
  FUZZ_CHECK(pieces.consumed() == length);

  ClientHelloParser byteByByte;
  for (size_t i = 0; i < length; ++i) {
    const HelloResult before = byteByByte.result();
    const HelloResult after = byteByByte.feed(bytes + i, 1);
    if (before != HelloResult::NeedMore) FUZZ_CHECK(after == before);
    FUZZ_CHECK(byteByByte.consumed() == i + 1);
  }
  FUZZ_CHECK(same(byteByByte, whole));

  // Only the first kMaxClientHelloBytes + 1 bytes can matter.
  ClientHelloParser bounded;
  bounded.feed(bytes, std::min(length, lb::tls::kMaxClientHelloBytes + 1));
  FUZZ_CHECK(same(bounded, whole));

  // More bytes after a final state change nothing but the count.
  if (verdict != HelloResult::NeedMore) {
    FUZZ_CHECK(whole.feed(bytes, length) == verdict);
    FUZZ_CHECK(whole.consumed() == 2 * length);
    FUZZ_CHECK(same(whole, byteByByte));
  }
  return 0;
}
