// Fuzzes lb::edge::parseHeader (the PROXY protocol header a front balancer
// sends) and lb::edge::writeHeader (the one ringlb sends to members).
//
// Input: one byte that picks a small v2 cap (16 + byte) and how the
// round-trip addresses are drawn, then the bytes a sender sends.
// Properties, under every `accepted` mode and both a small and the largest
// cap: the verdict over the prefixes of the input is NeedMore until one
// length, then stays the same final verdict (a prefix of a Done input is
// never Invalid; Invalid is never taken back); Done means headerBytes <=
// size and parsing exactly the header's bytes gives the same header; v1 is
// at most 107 bytes ending in its only CRLF, v2 at most the cap; NeedMore
// never outlives the bounds; Off takes nothing; Any agrees with V1 and V2;
// a larger cap never turns Done into something else; a TCP4/TCP6 line gets
// the verdict and addresses of a reference reading built on inet_pton.
// Then writeHeader:
// for addresses drawn from the input (and those a Done header gave), what
// it writes parses back, whole, to the same addresses, and a buffer one
// byte short gets nothing.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <utility>

#include "lb/edge/proxy_header.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using lb::edge::ParsedHeader;
using lb::edge::ParseStatus;
using config::AcceptProxy;
using config::ProxyVersion;

constexpr size_t kLargestCap = lb::edge::kV2FixedBytes + 0xFFFF;

bool same(const ParsedHeader& a, const ParsedHeader& b) {
  return a.status == b.status && a.headerBytes == b.headerBytes && a.version == b.version &&
         a.hasAddresses == b.hasAddresses && std::memcmp(&a.source, &b.source, sizeof a.source) == 0 &&
         std::memcmp(&a.destination, &b.destination, sizeof a.destination) == 0 && a.why == b.why;
}

// The lengths whose prefixes are parsed: all of the first ones (where v1
// lives and v2's fixed part and address block are read), then a spread,
// the header's end and its neighbours, and the whole.
template <class Check>
void forSomePrefixes(size_t size, size_t headerBytes, Check check) {
  for (size_t length = 0; length <= std::min<size_t>(size, 160); ++length) check(length);
  const size_t step = std::max<size_t>(1, size / 48);
  for (size_t length = 160; length <= size; length += step) check(length);
  for (size_t length : {headerBytes - 1, headerBytes, headerBytes + 1, size}) {
    if (length <= size) check(length);
  }
}

void checkParse(std::span<const uint8_t> bytes, AcceptProxy accepted, size_t cap, bool sweepPrefixes) {
  const ParsedHeader whole = lb::edge::parseHeader(bytes, accepted, cap);
  if (accepted == AcceptProxy::Off) {
    FUZZ_CHECK(whole.status == ParseStatus::Invalid);
    return;
  }
  FUZZ_CHECK((whole.status == ParseStatus::Invalid) == !whole.why.empty());

  if (whole.status == ParseStatus::NeedMore) {
    // Every byte so far could begin a header: bounded by 107 (v1) or the cap (v2).
    FUZZ_CHECK(bytes.size() < std::max(lb::edge::kMaxV1HeaderBytes, cap));
    if (!bytes.empty() && bytes[0] == 'P') FUZZ_CHECK(bytes.size() < lb::edge::kMaxV1HeaderBytes);
  }
  if (whole.status == ParseStatus::Done) {
    FUZZ_CHECK(whole.headerBytes <= bytes.size());
    const auto header = bytes.first(whole.headerBytes);
    FUZZ_CHECK(same(lb::edge::parseHeader(header, accepted, cap), whole));
    if (whole.version == 1) {
      FUZZ_CHECK(accepted != AcceptProxy::V2 && header[0] == 'P');
      FUZZ_CHECK(header.size() >= 15 && header.size() <= lb::edge::kMaxV1HeaderBytes);
      FUZZ_CHECK(header[header.size() - 2] == '\r' && header[header.size() - 1] == '\n');
      for (size_t i = 0; i + 2 < header.size(); ++i) FUZZ_CHECK(header[i] != '\r' && header[i] != '\n');
    } else {
      FUZZ_CHECK(whole.version == 2 && accepted != AcceptProxy::V1 && header[0] == '\r');
      FUZZ_CHECK(header.size() >= lb::edge::kV2FixedBytes && header.size() <= cap);
      FUZZ_CHECK(header.size() == lb::edge::kV2FixedBytes + (size_t{header[14]} << 8 | header[15]));
    }
    if (whole.hasAddresses) {
      const sa_family_t family = whole.source.ss_family;
      FUZZ_CHECK(family == AF_INET || family == AF_INET6);
      FUZZ_CHECK(whole.destination.ss_family == family);
    } else {
      FUZZ_CHECK(whole.source.ss_family == AF_UNSPEC && whole.destination.ss_family == AF_UNSPEC);
    }
  }

  // Over growing prefixes: NeedMore, then one final verdict for good.
  if (!sweepPrefixes) return;
  const size_t headerEnd = whole.status == ParseStatus::Done ? whole.headerBytes : bytes.size();
  forSomePrefixes(bytes.size(), headerEnd, [&](size_t length) {
    const ParsedHeader prefix = lb::edge::parseHeader(bytes.first(length), accepted, cap);
    if (whole.status == ParseStatus::NeedMore) {
      FUZZ_CHECK(prefix.status == ParseStatus::NeedMore);
    } else if (whole.status == ParseStatus::Done) {
      FUZZ_CHECK(length < whole.headerBytes ? prefix.status == ParseStatus::NeedMore : same(prefix, whole));
    } else if (prefix.status != ParseStatus::NeedMore) {
      FUZZ_CHECK(prefix.status == ParseStatus::Invalid);  // and so every longer prefix
    }
  });
}

// Every mode and cap, and how they relate.
void checkModes(std::span<const uint8_t> bytes, size_t smallCap) {
  for (AcceptProxy accepted : {AcceptProxy::Off, AcceptProxy::V1, AcceptProxy::V2, AcceptProxy::Any}) {
    // V1 and V2 alone sweep no prefixes: they must agree with Any (below).
    for (size_t cap : {smallCap, kLargestCap}) checkParse(bytes, accepted, cap, accepted == AcceptProxy::Any);
  }
  for (size_t cap : {smallCap, kLargestCap}) {
    const ParsedHeader any = lb::edge::parseHeader(bytes, AcceptProxy::Any, cap);
    const ParsedHeader v1 = lb::edge::parseHeader(bytes, AcceptProxy::V1, cap);
    const ParsedHeader v2 = lb::edge::parseHeader(bytes, AcceptProxy::V2, cap);
    if (!bytes.empty() && bytes[0] == 'P') FUZZ_CHECK(same(any, v1) && v2.status == ParseStatus::Invalid);
    if (!bytes.empty() && bytes[0] == '\r') FUZZ_CHECK(same(any, v2) && v1.status == ParseStatus::Invalid);
  }
  const ParsedHeader small = lb::edge::parseHeader(bytes, AcceptProxy::Any, smallCap);
  const ParsedHeader large = lb::edge::parseHeader(bytes, AcceptProxy::Any, kLargestCap);
  if (small.status == ParseStatus::Done) FUZZ_CHECK(same(small, large));
  if (large.status == ParseStatus::Invalid) FUZZ_CHECK(small.status == ParseStatus::Invalid);
}

// A reference reading of a TCP4/TCP6 line, written apart from the parser:
// find the first CRLF within 107 bytes, split the line on spaces, and ask
// inet_pton and a strict decimal reading. The parser must agree whenever the
// reference can tell (a CRLF was found, or 107 bytes without one).
bool decimalPort(std::string_view text) {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return false;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value <= 65535;
}

void checkV1AgainstReference(std::span<const uint8_t> bytes) {
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  const bool tcp4 = text.starts_with("PROXY TCP4 "), tcp6 = text.starts_with("PROXY TCP6 ");
  if (!tcp4 && !tcp6) return;
  const ParsedHeader parsed = lb::edge::parseHeader(bytes, AcceptProxy::V1, kLargestCap);
  const size_t crlf = text.substr(0, lb::edge::kMaxV1HeaderBytes).find("\r\n");
  if (crlf == std::string_view::npos) {
    if (text.size() >= lb::edge::kMaxV1HeaderBytes) FUZZ_CHECK(parsed.status == ParseStatus::Invalid);
    return;
  }
  const std::string_view line = text.substr(0, crlf);
  std::string_view fields[6];
  size_t count = 0, at = 0;
  bool valid = line.find_first_of("\r\n") == std::string_view::npos;
  while (valid) {
    const size_t space = line.find(' ', at);
    if (count == 6) {
      valid = false;
      break;
    }
    fields[count++] = line.substr(at, space == std::string_view::npos ? std::string_view::npos : space - at);
    if (space == std::string_view::npos) break;
    at = space + 1;
  }
  valid = valid && count == 6 && decimalPort(fields[4]) && decimalPort(fields[5]);
  uint8_t source[16], destination[16];
  const int family = tcp4 ? AF_INET : AF_INET6;
  for (auto [field, out] : {std::pair{2, source}, std::pair{3, destination}}) {
    char buffer[128] = {};
    if (!valid || fields[field].size() >= sizeof buffer) {
      valid = false;
      break;
    }
    std::memcpy(buffer, fields[field].data(), fields[field].size());
    valid = inet_pton(family, buffer, out) == 1;
  }
  if (!valid) {
    FUZZ_CHECK(parsed.status == ParseStatus::Invalid);
    return;
  }
  FUZZ_CHECK(parsed.status == ParseStatus::Done && parsed.headerBytes == crlf + 2 && parsed.hasAddresses);
  const size_t length = tcp4 ? 4 : 16;
  const auto addressOf = [&](const sockaddr_storage& storage) -> const void* {
    if (tcp4) return &reinterpret_cast<const sockaddr_in&>(storage).sin_addr;
    return &reinterpret_cast<const sockaddr_in6&>(storage).sin6_addr;
  };
  FUZZ_CHECK(parsed.source.ss_family == family && std::memcmp(addressOf(parsed.source), source, length) == 0);
  FUZZ_CHECK(std::memcmp(addressOf(parsed.destination), destination, length) == 0);
}

// What a parsed address should be once written and read back: the same,
// or mapped into IPv6 when the other end is IPv6.
bool sameEndpoint(const sockaddr_storage& got, const sockaddr_storage& sent, bool mapped) {
  if (!mapped) {
    return got.ss_family == sent.ss_family &&
           std::memcmp(&got, &sent, sent.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6)) == 0;
  }
  const auto& in = reinterpret_cast<const sockaddr_in&>(sent);
  const auto& in6 = reinterpret_cast<const sockaddr_in6&>(got);
  static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  return got.ss_family == AF_INET6 && in6.sin6_port == in.sin_port &&
         std::memcmp(&in6.sin6_addr, kMappedPrefix, 12) == 0 &&
         std::memcmp(reinterpret_cast<const uint8_t*>(&in6.sin6_addr) + 12, &in.sin_addr, 4) == 0;
}

void checkRoundTrip(const sockaddr_storage& source, const sockaddr_storage& destination,
                    const lb::edge::HeaderExtras& extras) {
  const bool mixed = source.ss_family != destination.ss_family;
  for (ProxyVersion version : {ProxyVersion::V1, ProxyVersion::V2}) {
    uint8_t out[lb::edge::kMaxWrittenHeaderBytes];
    const size_t length = lb::edge::writeHeader(version, source, destination, extras, out);
    FUZZ_CHECK(length > 0);
    const ParsedHeader parsed = lb::edge::parseHeader(std::span<const uint8_t>(out, length),
                                                      version == ProxyVersion::V1 ? AcceptProxy::V1 : AcceptProxy::V2,
                                                      kLargestCap);
    FUZZ_CHECK(parsed.status == ParseStatus::Done && parsed.headerBytes == length && parsed.hasAddresses);
    FUZZ_CHECK(sameEndpoint(parsed.source, source, mixed && source.ss_family == AF_INET));
    FUZZ_CHECK(sameEndpoint(parsed.destination, destination, mixed && destination.ss_family == AF_INET));
    FUZZ_CHECK(lb::edge::writeHeader(version, source, destination, extras, std::span(out, length - 1)) == 0);
  }
}

sockaddr_storage endpointFrom(const uint8_t* bytes, bool v6) {
  sockaddr_storage storage{};
  if (v6) {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(storage);
    in6.sin6_family = AF_INET6;
    std::memcpy(&in6.sin6_addr, bytes, 16);
    std::memcpy(&in6.sin6_port, bytes + 16, 2);
  } else {
    auto& in = reinterpret_cast<sockaddr_in&>(storage);
    in.sin_family = AF_INET;
    std::memcpy(&in.sin_addr, bytes, 4);
    std::memcpy(&in.sin_port, bytes + 4, 2);
  }
  return storage;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  const std::span<const uint8_t> bytes(data + 1, size - 1);
  checkModes(bytes, lb::edge::kV2FixedBytes + selector);
  checkV1AgainstReference(bytes);

  // Extras drawn from the input's tail; ALPN and SNI at most 255 bytes, as TLS has them.
  lb::edge::HeaderExtras extras;
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  extras.alpn = text.substr(std::min<size_t>(text.size(), 36), selector & 0x0F);
  extras.authority = text.substr(std::min<size_t>(text.size(), 52), std::min<size_t>(selector, 255));
  extras.tls = (selector & 0x10) != 0;
  extras.clientCertVerified = (selector & 0x20) != 0;
  extras.tlsVersion = text.substr(std::min<size_t>(text.size(), 40), (selector >> 4) & 0x07);
  extras.tlsCipher = text.substr(std::min<size_t>(text.size(), 44), (selector >> 3) & 0x1F);

  const ParsedHeader parsed = lb::edge::parseHeader(bytes, AcceptProxy::Any, kLargestCap);
  if (parsed.status == ParseStatus::Done && parsed.hasAddresses) checkRoundTrip(parsed.source, parsed.destination, extras);
  if (bytes.size() >= 36) {
    const bool sourceV6 = (selector & 0x40) != 0, destinationV6 = (selector & 0x80) != 0;
    checkRoundTrip(endpointFrom(bytes.data(), sourceV6), endpointFrom(bytes.data() + 18, destinationV6), extras);
  }
  return 0;
}
