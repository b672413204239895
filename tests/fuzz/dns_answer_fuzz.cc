// Fuzzes lb::discovery::parseDnsAnswer (DNS responses c-ares hands over).
//
// Input: one selector byte (its low bits pick the asked type: A, AAAA, SRV),
// then the message. The asked name is the message's own question name,
// read here with a deliberately simple reader (plain labels at offset 12,
// no pointers; "a.test" when that fails), so most inputs get past the
// question check and into the records.
// Properties: no crash and no read outside the message (ASan); a refusal
// always says why; parsing twice gives the same answer; every returned
// record is owned by canonicalName and of the asked type's family; ttl is
// the smallest returned record's TTL (0 with none); names are lower case
// with no trailing dot; and since pointers only point backwards, bytes
// appended after an accepted message change nothing.

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "lb/discovery/dns_answer.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using lb::discovery::AddressRecord;
using lb::discovery::DnsAnswer;
using lb::discovery::SrvRecord;

std::string questionName(std::span<const uint8_t> message) {
  std::string name;
  size_t at = 12;
  while (at < message.size()) {
    uint8_t length = message[at];
    if (length == 0) return name;
    if (length > 63 || at + 1 + length > message.size()) break;
    if (!name.empty()) name += '.';
    for (size_t i = 0; i < length; ++i) {
      char c = static_cast<char>(message[at + 1 + i]);
      name += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    at += 1 + length;
  }
  return "a.test";
}

bool sameAddresses(const std::vector<AddressRecord>& a, const std::vector<AddressRecord>& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](const auto& x, const auto& y) {
           return x.owner == y.owner && x.ttl == y.ttl && std::memcmp(&x.address, &y.address, sizeof x.address) == 0;
         });
}

bool sameServices(const std::vector<SrvRecord>& a, const std::vector<SrvRecord>& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](const auto& x, const auto& y) {
           return x.owner == y.owner && x.ttl == y.ttl && x.priority == y.priority && x.weight == y.weight &&
                  x.port == y.port && x.target == y.target;
         });
}

bool same(const DnsAnswer& a, const DnsAnswer& b) {
  return a.rcode == b.rcode && a.truncated == b.truncated && a.canonicalName == b.canonicalName &&
         a.ttl == b.ttl && sameAddresses(a.addresses, b.addresses) && sameServices(a.services, b.services) &&
         sameAddresses(a.additional, b.additional);
}

bool normalName(const std::string& name) {
  if (!name.empty() && name.back() == '.') return false;
  return std::none_of(name.begin(), name.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

void checkAnswer(const DnsAnswer& answer, config::DiscoverType type) {
  FUZZ_CHECK(normalName(answer.canonicalName));
  FUZZ_CHECK(answer.rcode <= 15);
  const int family = type == config::DiscoverType::AAAA ? AF_INET6 : AF_INET;
  uint32_t smallest = UINT32_MAX;
  for (const AddressRecord& record : answer.addresses) {
    FUZZ_CHECK(type != config::DiscoverType::SRV);
    FUZZ_CHECK(record.owner == answer.canonicalName);
    FUZZ_CHECK(record.address.ss_family == family);
    FUZZ_CHECK(record.ttl <= 0x7FFFFFFF);
    smallest = std::min(smallest, record.ttl);
  }
  for (const SrvRecord& record : answer.services) {
    FUZZ_CHECK(type == config::DiscoverType::SRV);
    FUZZ_CHECK(record.owner == answer.canonicalName);
    FUZZ_CHECK(normalName(record.target));
    smallest = std::min(smallest, record.ttl);
  }
  FUZZ_CHECK(answer.ttl == (smallest == UINT32_MAX ? 0 : smallest));
  for (const AddressRecord& record : answer.additional) {
    FUZZ_CHECK(normalName(record.owner));
    FUZZ_CHECK(record.address.ss_family == AF_INET || record.address.ss_family == AF_INET6);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static constexpr config::DiscoverType kTypes[] = {config::DiscoverType::A, config::DiscoverType::AAAA,
                                                    config::DiscoverType::SRV};
  const config::DiscoverType type = kTypes[data[0] % 3];
  // A copy of exactly the message's bytes, so ASan sees a read past its end.
  std::vector<uint8_t> message(data + 1, data + size);
  const std::string name = questionName(message);

  std::string why;
  auto answer = lb::discovery::parseDnsAnswer(message, name, type, &why);
  std::string whyAgain;
  auto again = lb::discovery::parseDnsAnswer(message, name, type, &whyAgain);
  FUZZ_CHECK(answer.has_value() == again.has_value());
  if (!answer) {
    FUZZ_CHECK(!why.empty());
    FUZZ_CHECK(why == whyAgain);
    return 0;
  }
  FUZZ_CHECK(same(*answer, *again));
  checkAnswer(*answer, type);

  std::vector<uint8_t> longer = message;
  longer.insert(longer.end(), {0xC0, 0x0C, 0x00, 0x01, 0xFF});
  auto extended = lb::discovery::parseDnsAnswer(longer, name, type, nullptr);
  FUZZ_CHECK(extended && same(*answer, *extended));
  return 0;
}
