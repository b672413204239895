#include "lb/edge/proxy_header.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <type_traits>

#include "lb/edge/proxy_v1_readers.h"

namespace lb::edge {
namespace {

using v1text::DottedQuadReader;
using v1text::Ipv6Reader;
using v1text::PortReader;

constexpr std::array<uint8_t, 12> kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                  0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr uint8_t kV2Version = 0x20;  // high nibble of byte 13
constexpr uint8_t kV2CommandLocal = 0x0;
constexpr uint8_t kV2CommandProxy = 0x1;
constexpr uint8_t kV2FamilyUnspec = 0x0, kV2FamilyInet = 0x1, kV2FamilyInet6 = 0x2, kV2FamilyUnix = 0x3;
constexpr uint8_t kV2ProtocolUnspec = 0x0, kV2ProtocolStream = 0x1, kV2ProtocolDgram = 0x2;
constexpr size_t kV2Inet4Block = 12;  // 2 x 4 address bytes + 2 x 2 port bytes
constexpr size_t kV2Inet6Block = 36;  // 2 x 16 + 2 x 2
constexpr size_t kTlvHeaderBytes = 3;

constexpr uint8_t kTlvAlpn = 0x01;
constexpr uint8_t kTlvAuthority = 0x02;
constexpr uint8_t kTlvSsl = 0x20;
constexpr uint8_t kSubTlvSslVersion = 0x21;
constexpr uint8_t kSubTlvSslCipher = 0x23;
constexpr uint8_t kClientSsl = 0x01;
constexpr uint8_t kClientCertConn = 0x02;

ParsedHeader needMore() { return ParsedHeader{}; }

ParsedHeader invalid(std::string_view why) {
  ParsedHeader parsed;
  parsed.status = ParseStatus::Invalid;
  parsed.why = why;
  return parsed;
}

ParsedHeader done(int version, size_t headerBytes) {
  ParsedHeader parsed;
  parsed.status = ParseStatus::Done;
  parsed.version = version;
  parsed.headerBytes = headerBytes;
  return parsed;
}

void setInet(sockaddr_storage& storage, const uint8_t address[4], uint16_t port) {
  storage = {};
  auto& in = reinterpret_cast<sockaddr_in&>(storage);
  in.sin_family = AF_INET;
  in.sin_port = htons(port);
  std::memcpy(&in.sin_addr, address, 4);
}

void setInet6(sockaddr_storage& storage, const uint8_t address[16], uint16_t port) {
  storage = {};
  auto& in6 = reinterpret_cast<sockaddr_in6&>(storage);
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(port);
  std::memcpy(&in6.sin6_addr, address, 16);
}

// The rest of a TCP4/TCP6 line from `at` (just after "PROXY TCPx "):
// "src dst sport dport\r\n", single spaces.
template <class AddressReader>
ParsedHeader parseV1Addresses(std::span<const uint8_t> bytes, size_t at) {
  AddressReader source, destination;
  PortReader sourcePort, destinationPort;
  // 0..3: reading source, destination, source port, destination port;
  // 4: the CR was read, the LF must follow.
  int field = 0;
  const size_t end = std::min(bytes.size(), kMaxV1HeaderBytes);
  for (size_t i = at; i < end; ++i) {
    const char c = static_cast<char>(bytes[i]);
    auto step = [&](auto& reader, char terminator) -> bool {
      if (c == terminator) {
        ++field;
        return reader.complete();
      }
      return reader.feed(c);
    };
    const int reading = field;
    bool ok = false;
    switch (reading) {
      case 0: ok = step(source, ' '); break;
      case 1: ok = step(destination, ' '); break;
      case 2: ok = step(sourcePort, ' '); break;
      case 3: ok = step(destinationPort, '\r'); break;
      default: ok = c == '\n'; break;
    }
    if (!ok) {
      if (c == '\r' || c == '\n') return invalid("v1: a CR or LF that is not the line's CRLF");
      if (reading <= 1) return invalid("v1: an address not in the line's family's form");
      return invalid("v1: a port not in 0..65535 without leading zeros");
    }
    if (reading == 4) {
      ParsedHeader parsed = done(1, i + 1);
      parsed.hasAddresses = true;
      if constexpr (std::is_same_v<AddressReader, DottedQuadReader>) {
        setInet(parsed.source, source.bytes().data(), sourcePort.value());
        setInet(parsed.destination, destination.bytes().data(), destinationPort.value());
      } else {
        setInet6(parsed.source, source.bytes().data(), sourcePort.value());
        setInet6(parsed.destination, destination.bytes().data(), destinationPort.value());
      }
      return parsed;
    }
  }
  // The fewest bytes that could still end the line: the field being read,
  // then each later field at its shortest, its separator and the CRLF.
  constexpr size_t kPort = PortReader::kShortest;
  size_t rest = 0;
  switch (field) {
    case 0: rest = source.shortestRest() + 1 + AddressReader::kShortest + 1 + kPort + 1 + kPort + 2; break;
    case 1: rest = destination.shortestRest() + 1 + kPort + 1 + kPort + 2; break;
    case 2: rest = sourcePort.shortestRest() + 1 + kPort + 2; break;
    case 3: rest = destinationPort.shortestRest() + 2; break;
    default: rest = 1; break;
  }
  if (end + rest > kMaxV1HeaderBytes) return invalid("v1: no CRLF within 107 bytes");
  return needMore();
}

// "PROXY UNKNOWN", then the CRLF at once or a space and anything but CR and
// LF up to it. The connection's own addresses stand.
ParsedHeader parseV1Unknown(std::span<const uint8_t> bytes, size_t at) {
  for (size_t i = at; i < bytes.size(); ++i) {
    const uint8_t c = bytes[i];
    if (c == '\r') {
      if (i + 2 > kMaxV1HeaderBytes) return invalid("v1: no CRLF within 107 bytes");
      if (i + 1 == bytes.size()) return needMore();
      if (bytes[i + 1] != '\n') return invalid("v1: a CR or LF that is not the line's CRLF");
      return done(1, i + 2);
    }
    if (c == '\n') return invalid("v1: a CR or LF that is not the line's CRLF");
    if (i == at && c != ' ') return invalid("v1: UNKNOWN not followed by a space or CRLF");
    if (i + 1 + 2 > kMaxV1HeaderBytes) return invalid("v1: no CRLF within 107 bytes");
  }
  return needMore();
}

ParsedHeader parseV1(std::span<const uint8_t> bytes) {
  constexpr std::string_view kTcp4 = "PROXY TCP4 ", kTcp6 = "PROXY TCP6 ", kUnknown = "PROXY UNKNOWN";
  const std::string_view seen(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  auto starts = [&](std::string_view word) { return seen.substr(0, word.size()) == word.substr(0, seen.size()); };
  if (seen.starts_with(kTcp4)) return parseV1Addresses<DottedQuadReader>(bytes, kTcp4.size());
  if (seen.starts_with(kTcp6)) return parseV1Addresses<Ipv6Reader>(bytes, kTcp6.size());
  if (seen.starts_with(kUnknown)) return parseV1Unknown(bytes, kUnknown.size());
  if (starts(kTcp4) || starts(kTcp6) || starts(kUnknown)) return needMore();
  return invalid("v1: not \"PROXY TCP4|TCP6|UNKNOWN\"");
}

// ---- v2: 16 fixed bytes, an address block, TLVs ----

ParsedHeader parseV2(std::span<const uint8_t> bytes, size_t maxV2Bytes) {
  const size_t have = bytes.size();
  const size_t signatureSeen = std::min(have, kV2Signature.size());
  if (!std::equal(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(signatureSeen), kV2Signature.begin())) {
    return invalid("v2: signature mismatch");
  }
  if (have < 13) return needMore();
  if ((bytes[12] & 0xF0) != kV2Version) return invalid("v2: version is not 2");
  const uint8_t command = bytes[12] & 0x0F;
  if (command != kV2CommandLocal && command != kV2CommandProxy) return invalid("v2: unknown command");
  if (have < 14) return needMore();

  // LOCAL: the family and the whole block are ignored. PROXY: TCP only;
  // an unspecified family or protocol means "use the connection's own
  // addresses" (the spec lets a receiver accept it).
  size_t addressBlock = 0;
  const uint8_t family = bytes[13] >> 4, protocol = bytes[13] & 0x0F;
  if (command == kV2CommandProxy) {
    if (family > kV2FamilyUnix || protocol > kV2ProtocolDgram) return invalid("v2: unknown family or protocol");
    if (family == kV2FamilyUnix) return invalid("v2: AF_UNIX is not proxied");
    if (protocol == kV2ProtocolDgram) return invalid("v2: DGRAM is not proxied");
    if (family != kV2FamilyUnspec && protocol == kV2ProtocolStream) {
      addressBlock = family == kV2FamilyInet ? kV2Inet4Block : kV2Inet6Block;
    }
  }

  // The length, judged on its high byte alone as soon as it arrives.
  if (have < 15) return needMore();
  const size_t lengthHigh = size_t{bytes[14]} << 8;
  if (kV2FixedBytes + lengthHigh > maxV2Bytes) return invalid("v2: longer than proxy_max_header_bytes");
  if ((lengthHigh | 0xFF) < addressBlock) return invalid("v2: length shorter than its address block");
  if (have < 16) return needMore();
  const size_t total = kV2FixedBytes + (lengthHigh | bytes[15]);
  if (total > maxV2Bytes) return invalid("v2: longer than proxy_max_header_bytes");
  if (total < kV2FixedBytes + addressBlock) return invalid("v2: length shorter than its address block");

  // TLVs follow the addresses and must tile the rest of the header exactly.
  // (Only after a known address block: LOCAL and unspecified bodies are
  // skipped whole.)
  if (addressBlock > 0) {
    size_t at = kV2FixedBytes + addressBlock;
    while (at < total) {
      if (total - at < kTlvHeaderBytes) return invalid("v2: a TLV runs past the header");
      if (at + 2 > have) break;
      const size_t shortestEnd = at + kTlvHeaderBytes + (size_t{bytes[at + 1]} << 8);
      if (shortestEnd > total) return invalid("v2: a TLV runs past the header");
      if (at + 3 > have) break;
      const size_t end = shortestEnd + bytes[at + 2];
      if (end > total) return invalid("v2: a TLV runs past the header");
      at = end;
    }
  }
  if (have < total) return needMore();

  ParsedHeader parsed = done(2, total);
  if (addressBlock == kV2Inet4Block) {
    const uint8_t* block = bytes.data() + kV2FixedBytes;
    setInet(parsed.source, block, static_cast<uint16_t>(block[8] << 8 | block[9]));
    setInet(parsed.destination, block + 4, static_cast<uint16_t>(block[10] << 8 | block[11]));
    parsed.hasAddresses = true;
  } else if (addressBlock == kV2Inet6Block) {
    const uint8_t* block = bytes.data() + kV2FixedBytes;
    setInet6(parsed.source, block, static_cast<uint16_t>(block[32] << 8 | block[33]));
    setInet6(parsed.destination, block + 16, static_cast<uint16_t>(block[34] << 8 | block[35]));
    parsed.hasAddresses = true;
  }
  return parsed;
}

// ---- Writing ----

// Appends to a fixed buffer; once something did not fit, nothing more is
// written and size() is 0.
class Writer {
 public:
  explicit Writer(std::span<uint8_t> out) : out_(out) {}
  void byte(uint8_t value) {
    if (failed_ || at_ == out_.size()) {
      failed_ = true;
      return;
    }
    out_[at_++] = value;
  }
  void bytes(std::span<const uint8_t> values) {
    for (uint8_t value : values) byte(value);
  }
  void text(std::string_view value) {
    for (char c : value) byte(static_cast<uint8_t>(c));
  }
  void u16(size_t value) {
    if (value > 0xFFFF) failed_ = true;
    byte(static_cast<uint8_t>(value >> 8));
    byte(static_cast<uint8_t>(value));
  }
  void u32(uint32_t value) {
    for (int shift = 24; shift >= 0; shift -= 8) byte(static_cast<uint8_t>(value >> shift));
  }
  void decimal(unsigned value) {
    char digits[10];
    size_t count = 0;
    do {
      digits[count++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value > 0);
    while (count > 0) byte(static_cast<uint8_t>(digits[--count]));
  }
  void hex(unsigned value) {  // lower case, no leading zeros
    constexpr char kDigits[] = "0123456789abcdef";
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      const unsigned digit = (value >> shift) & 0xF;
      if (digit != 0 || started || shift == 0) {
        byte(static_cast<uint8_t>(kDigits[digit]));
        started = true;
      }
    }
  }
  size_t at() const { return at_; }
  void patchU16(size_t at, size_t value) {
    if (value > 0xFFFF) failed_ = true;
    if (failed_) return;
    out_[at] = static_cast<uint8_t>(value >> 8);
    out_[at + 1] = static_cast<uint8_t>(value);
  }
  size_t size() const { return failed_ ? 0 : at_; }

 private:
  std::span<uint8_t> out_;
  size_t at_ = 0;
  bool failed_ = false;
};

// Both ends as the header carries them: both IPv4, or both IPv6 (an IPv4
// end next to an IPv6 one becomes ::ffff:a.b.c.d), or not IP at all.
struct Endpoints {
  bool ip = false;
  bool v6 = false;
  std::array<uint8_t, 16> source{}, destination{};  // IPv4: the first 4 bytes
  uint16_t sourcePort = 0, destinationPort = 0;
};

void readEndpoint(const sockaddr_storage& storage, bool asV6, std::array<uint8_t, 16>& address, uint16_t& port) {
  if (storage.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(storage);
    std::memcpy(address.data(), &in6.sin6_addr, 16);
    port = ntohs(in6.sin6_port);
    return;
  }
  const auto& in = reinterpret_cast<const sockaddr_in&>(storage);
  port = ntohs(in.sin_port);
  if (!asV6) {
    std::memcpy(address.data(), &in.sin_addr, 4);
    return;
  }
  address = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  std::memcpy(address.data() + 12, &in.sin_addr, 4);
}

Endpoints endpointsOf(const sockaddr_storage& source, const sockaddr_storage& destination) {
  Endpoints ends;
  auto isIp = [](const sockaddr_storage& s) { return s.ss_family == AF_INET || s.ss_family == AF_INET6; };
  if (!isIp(source) || !isIp(destination)) return ends;
  ends.ip = true;
  ends.v6 = source.ss_family == AF_INET6 || destination.ss_family == AF_INET6;
  readEndpoint(source, ends.v6, ends.source, ends.sourcePort);
  readEndpoint(destination, ends.v6, ends.destination, ends.destinationPort);
  return ends;
}

// RFC 5952 text: lower case, the longest run of two or more zero groups
// (the first of equals) written "::", no dotted quad.
void writeIpv6Text(Writer& out, const std::array<uint8_t, 16>& address) {
  std::array<unsigned, 8> words{};
  for (size_t i = 0; i < 8; ++i) words[i] = unsigned{address[2 * i]} << 8 | address[2 * i + 1];
  size_t runStart = 8, runLength = 0;
  for (size_t i = 0; i < 8;) {
    size_t j = i;
    while (j < 8 && words[j] == 0) ++j;
    if (j - i >= 2 && j - i > runLength) {
      runStart = i;
      runLength = j - i;
    }
    i = j == i ? i + 1 : j;
  }
  for (size_t i = 0; i < 8; ++i) {
    if (i == runStart) {
      out.text("::");
      i += runLength - 1;
      continue;
    }
    if (i > 0 && i != runStart + runLength) out.byte(':');
    out.hex(words[i]);
  }
}

void writeV1(Writer& out, const Endpoints& ends) {
  if (!ends.ip) {
    out.text("PROXY UNKNOWN\r\n");
    return;
  }
  out.text(ends.v6 ? "PROXY TCP6 " : "PROXY TCP4 ");
  for (const auto* address : {&ends.source, &ends.destination}) {
    if (ends.v6) {
      writeIpv6Text(out, *address);
    } else {
      for (size_t i = 0; i < 4; ++i) {
        if (i > 0) out.byte('.');
        out.decimal((*address)[i]);
      }
    }
    out.byte(' ');
  }
  out.decimal(ends.sourcePort);
  out.byte(' ');
  out.decimal(ends.destinationPort);
  out.text("\r\n");
}

void writeTlv(Writer& out, uint8_t type, std::string_view value) {
  if (value.empty()) return;
  out.byte(type);
  out.u16(value.size());
  out.text(value);
}

void writeV2(Writer& out, const Endpoints& ends, const HeaderExtras& extras) {
  out.bytes(kV2Signature);
  out.byte(kV2Version | kV2CommandProxy);
  // Not IP: PROXY with an unspecified family (the spec's advice for
  // families it cannot carry); the member uses the connection's addresses.
  const uint8_t family = !ends.ip ? kV2FamilyUnspec : ends.v6 ? kV2FamilyInet6 : kV2FamilyInet;
  out.byte(static_cast<uint8_t>(family << 4 | (ends.ip ? kV2ProtocolStream : kV2ProtocolUnspec)));
  const size_t lengthAt = out.at();
  out.u16(0);
  if (ends.ip) {
    const size_t addressBytes = ends.v6 ? 16 : 4;
    out.bytes(std::span(ends.source).first(addressBytes));
    out.bytes(std::span(ends.destination).first(addressBytes));
    out.u16(ends.sourcePort);
    out.u16(ends.destinationPort);
  }
  writeTlv(out, kTlvAlpn, extras.alpn);
  writeTlv(out, kTlvAuthority, extras.authority);
  if (extras.tls) {
    // pp2_tlv_ssl: client flags, verify (0 only when a client certificate
    // was presented and verified, as the spec words it), then sub-TLVs.
    const auto subTlvBytes = [](std::string_view value) { return value.empty() ? 0 : kTlvHeaderBytes + value.size(); };
    out.byte(kTlvSsl);
    out.u16(1 + 4 + subTlvBytes(extras.tlsVersion) + subTlvBytes(extras.tlsCipher));
    out.byte(extras.clientCertVerified ? kClientSsl | kClientCertConn : kClientSsl);
    out.u32(extras.clientCertVerified ? 0 : 1);
    writeTlv(out, kSubTlvSslVersion, extras.tlsVersion);
    writeTlv(out, kSubTlvSslCipher, extras.tlsCipher);
  }
  out.patchU16(lengthAt, out.at() - kV2FixedBytes);
}

constexpr std::array<uint8_t, 16> kLocalV2 = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51,
                                              0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00};
constexpr std::array<uint8_t, 15> kUnknownV1 = {'P', 'R', 'O', 'X', 'Y', ' ', 'U', 'N',
                                                'K', 'N', 'O', 'W', 'N', '\r', '\n'};

}  // namespace

ParsedHeader parseHeader(std::span<const uint8_t> bytes, config::AcceptProxy accepted, size_t maxV2Bytes) {
  using config::AcceptProxy;
  if (accepted == AcceptProxy::Off) return invalid("this listener takes no PROXY header");
  if (bytes.empty()) return needMore();
  if (bytes[0] == 'P') {
    if (accepted == AcceptProxy::V2) return invalid("not a PROXY v2 header (v1 is not accepted here)");
    return parseV1(bytes);
  }
  if (bytes[0] == kV2Signature[0]) {
    if (accepted == AcceptProxy::V1) return invalid("not a PROXY v1 header (v2 is not accepted here)");
    return parseV2(bytes, maxV2Bytes);
  }
  return invalid("no PROXY header");
}

size_t writeHeader(config::ProxyVersion version, const sockaddr_storage& source,
                   const sockaddr_storage& destination, const HeaderExtras& extras, std::span<uint8_t> out) {
  Writer writer(out);
  const Endpoints ends = endpointsOf(source, destination);
  switch (version) {
    case config::ProxyVersion::Off: return 0;
    case config::ProxyVersion::V1: writeV1(writer, ends); break;
    case config::ProxyVersion::V2: writeV2(writer, ends, extras); break;
  }
  return writer.size();
}

std::span<const uint8_t> localHeader(config::ProxyVersion version) {
  switch (version) {
    case config::ProxyVersion::Off: return {};
    case config::ProxyVersion::V1: return kUnknownV1;
    case config::ProxyVersion::V2: return kLocalV2;
  }
  return {};
}

}  // namespace lb::edge
