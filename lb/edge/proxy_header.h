#pragma once
// The PROXY protocol header (HAProxy's doc/proxy-protocol.txt), versions 1
// and 2: reading one from a front balancer, writing one to a member.
// Pure code: no sockets, no clock, no allocation.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "config/config.h"

namespace lb::edge {

// v1 is at most 107 bytes with its CRLF; v2 is 16 bytes plus its length.
inline constexpr size_t kMaxV1HeaderBytes = 107;
inline constexpr size_t kV2FixedBytes = 16;

enum class ParseStatus {
  NeedMore,  // every byte so far can still begin a valid header: read more
  Done,      // a complete header of `headerBytes` bytes; the rest is payload
  Invalid,   // not a header this listener accepts: close (`why` says what)
};

struct ParsedHeader {
  ParseStatus status = ParseStatus::NeedMore;
  size_t headerBytes = 0;  // Done: bytes to drop before the payload
  int version = 0;         // Done: 1 or 2
  // Done: false for v2 LOCAL and v1 UNKNOWN (and v2 UNSPEC): the connection's
  // own addresses stand; true: source/destination carry the client's.
  bool hasAddresses = false;
  sockaddr_storage source{};
  sockaddr_storage destination{};
  std::string_view why;  // Invalid: a short static reason for the log
};

// Looks at the first `bytes` of a connection (everything received so far;
// call again with more). Returns NeedMore while every byte so far can still
// begin a header, Done once one is complete, and Invalid at the first byte
// that proves the bytes cannot be one: a first byte other than 'P' (v1) or
// CR (v2), a signature mismatch, v1 without CRLF within 107 bytes, a lone
// CR or LF, other than single spaces, leading zeros, a port over 65535, an
// address not in the form its family (TCP4/TCP6) says (inet_pton's forms);
// a v2 version nibble other than 2, a command other than LOCAL or PROXY, a
// PROXY header for AF_UNIX or DGRAM, a length short of its address block,
// TLVs running past the header, a total over `maxV2Bytes` (known from the
// length field alone). v1 UNKNOWN takes anything up to its CRLF; v2 LOCAL
// takes any family and length and skips its body; v2 PROXY with an
// unspecified family or protocol is taken like LOCAL (hasAddresses false).
// `accepted` says which versions the listener takes (Any: both; Off:
// Invalid). Bytes past headerBytes are payload: never looked at.
ParsedHeader parseHeader(std::span<const uint8_t> bytes, config::AcceptProxy accepted, size_t maxV2Bytes);

// What a header sent to a member carries besides the addresses (v2 TLVs;
// v1 ignores them). Empty views are left out.
struct HeaderExtras {
  std::string_view alpn;       // PP2_TYPE_ALPN: the protocol negotiated with the client
  std::string_view authority;  // PP2_TYPE_AUTHORITY: the SNI the client sent
  bool tls = false;            // PP2_TYPE_SSL is written when the client's TLS was terminated
  bool clientCertVerified = false;  // PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, verify = 0
  std::string_view tlsVersion;      // PP2_SUBTYPE_SSL_VERSION ("TLSv1.3")
  std::string_view tlsCipher;       // PP2_SUBTYPE_SSL_CIPHER
};

// Enough for a v2 header with every extra at its largest here (ALPN and SNI
// at 255 bytes each, a TLS version and cipher name).
inline constexpr size_t kMaxWrittenHeaderBytes = 1024;

// Writes the header for a connection from `source` to `destination` (both
// AF_INET or both AF_INET6; mixed families are written as IPv6 with the
// IPv4 one mapped) into `out` and returns its length. When either end is
// not IP, v1 writes "PROXY UNKNOWN" and v2 a PROXY command with family
// AF_UNSPEC (TLVs only). v2's PP2_TYPE_SSL says verify = 0 only when
// clientCertVerified (the spec: zero when a certificate was presented and
// verified, non-zero otherwise). Returns 0, having written nothing usable,
// when `out` is too small or a TLV value is over 65535 bytes (nothing is
// cut short), and for Off.
size_t writeHeader(config::ProxyVersion version, const sockaddr_storage& source,
                   const sockaddr_storage& destination, const HeaderExtras& extras, std::span<uint8_t> out);

// What a health probe sends first to a member that requires the header:
// v2 LOCAL, or v1 "PROXY UNKNOWN\r\n". Empty for Off.
std::span<const uint8_t> localHeader(config::ProxyVersion version);

}  // namespace lb::edge
