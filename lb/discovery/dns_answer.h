#pragma once
// Reading a DNS response (RFC 1035 section 4, RFC 2782 for SRV) into the
// records discovery needs. Pure: no sockets, no clock. c-ares delivers the
// raw message; this parser, not c-ares's, reads it, because discovery needs
// what c-ares's helpers drop: the TTL of SRV records, the TTL of the record
// that was asked for at the end of a CNAME chain, and SRV targets' addresses
// from the additional section.
//
// Bounded and hostile-input safe: names are followed through at most 16
// compression pointers each, never outside the message; any read past the
// end, a label over 63 bytes or a name over 255 bytes makes the whole
// message Malformed (nothing of it is used).

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace lb::discovery {

enum class Rcode : uint8_t { NoError = 0, FormErr = 1, ServFail = 2, NxDomain = 3, NotImp = 4, Refused = 5 };

struct AddressRecord {
  std::string owner;     // lower case, no trailing dot
  sockaddr_storage address{};  // AF_INET or AF_INET6, port 0
  uint32_t ttl = 0;
};

struct SrvRecord {
  std::string owner;
  uint16_t priority = 0;
  uint16_t weight = 0;
  uint16_t port = 0;
  std::string target;    // lower case, no trailing dot
  uint32_t ttl = 0;
};

struct DnsAnswer {
  uint16_t rcode = 0;      // Rcode values; others kept as numbers
  bool truncated = false;  // TC bit
  // The name the question's records belong to after following the answer
  // section's CNAMEs from the question name (the question name if none).
  std::string canonicalName;
  // Records of the asked type owned by canonicalName, in message order.
  std::vector<AddressRecord> addresses;  // qtype A or AAAA
  std::vector<SrvRecord> services;       // qtype SRV
  // The smallest TTL among those records (0 when there are none).
  uint32_t ttl = 0;
  // A and AAAA records from the additional section (SRV targets' addresses).
  std::vector<AddressRecord> additional;
};

// Parses a response to the question (`name`, `type`); nullopt with a reason
// when the message is malformed or does not answer that question (its
// question section names another name or type).
std::optional<DnsAnswer> parseDnsAnswer(std::span<const uint8_t> message, std::string_view name,
                                        config::DiscoverType type, std::string* whyNot);

}  // namespace lb::discovery
