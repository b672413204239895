#pragma once
// How parsed answers become a lookup's result: the Resolver's pure part,
// in a header of its own so that tests can reach it.
//
// Records keep answer order (SRV: the SRV records' order, and for each its
// target's addresses, IPv4 first); an endpoint already there (same address
// and port) is not added again. The TTL is the smallest of every record
// used: the asked records', and for SRV the targets' address records'.

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "lb/discovery/dns_answer.h"
#include "lb/discovery/resolver.h"

namespace lb::discovery {

// Targets whose addresses one SRV lookup uses (and looks up) at most.
constexpr size_t kMaxSrvTargets = 64;

// The addresses of one SRV target and how they were found.
struct TargetAddresses {
  std::string name;
  // Ok, NoData or NoSuchName: `addresses` is all there is (maybe nothing);
  // anything else: the target's lookup failed (`detail` says how).
  LookupStatus status = LookupStatus::Ok;
  std::string detail;
  std::vector<AddressRecord> addresses;
};

// A failed lookup, as opposed to one that found the name has no address.
inline bool lookupFailed(LookupStatus status) {
  return status != LookupStatus::Ok && status != LookupStatus::NoData && status != LookupStatus::NoSuchName;
}

inline bool sameEndpoint(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
  const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
  return x.sin6_port == y.sin6_port && std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
}

inline sockaddr_storage withPort(sockaddr_storage address, uint16_t port) {
  if (address.ss_family == AF_INET) reinterpret_cast<sockaddr_in&>(address).sin_port = htons(port);
  if (address.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6&>(address).sin6_port = htons(port);
  return address;
}

// Appends unless the endpoint is already there (the first one stays).
inline void addRecord(std::vector<Record>* records, const Record& record) {
  for (const Record& existing : *records) {
    if (sameEndpoint(existing.address, record.address)) return;
  }
  records->push_back(record);
}

inline LookupResult failedLookup(LookupStatus status, std::string detail) {
  LookupResult result;
  result.status = status;
  result.detail = std::move(detail);
  return result;
}

// An A or AAAA answer: one Record per address, with `port`.
inline LookupResult addressResult(const DnsAnswer& answer, uint16_t port) {
  if (answer.addresses.empty()) return failedLookup(LookupStatus::NoData, "no records of the type (after CNAMEs)");
  LookupResult result;
  for (const AddressRecord& address : answer.addresses)
    addRecord(&result.records, Record{withPort(address.address, port), 0, 0});
  result.ttl = std::chrono::seconds(answer.ttl);
  return result;
}

// The distinct targets of an SRV answer, in answer order, at most
// kMaxSrvTargets; "." (no service here, RFC 2782) is none.
inline std::vector<std::string> srvTargets(const DnsAnswer& srv) {
  std::vector<std::string> targets;
  for (const SrvRecord& record : srv.services) {
    if (record.target.empty() || std::find(targets.begin(), targets.end(), record.target) != targets.end()) continue;
    if (targets.size() == kMaxSrvTargets) break;
    targets.push_back(record.target);
  }
  return targets;
}

// The additional section's addresses of `target` (nothing: look it up).
inline std::vector<AddressRecord> additionalAddresses(const DnsAnswer& srv, const std::string& target) {
  std::vector<AddressRecord> addresses;
  for (const AddressRecord& address : srv.additional) {
    if (address.owner == target) addresses.push_back(address);
  }
  return addresses;
}

// An SRV answer and its targets' addresses: one Record per (SRV record,
// target address). A target whose lookup failed fails the whole result
// with its status, so that discovery keeps its last good set rather than
// lose that target's members; a target with no address adds nothing; no
// record at all is NoData.
inline LookupResult srvResult(const DnsAnswer& srv, const std::vector<TargetAddresses>& targets) {
  for (const TargetAddresses& target : targets) {
    if (lookupFailed(target.status))
      return failedLookup(target.status, "SRV target " + target.name + ": " + target.detail);
  }
  LookupResult result;
  uint32_t ttl = srv.ttl;
  for (const SrvRecord& record : srv.services) {
    auto target = std::find_if(targets.begin(), targets.end(),
                               [&](const TargetAddresses& t) { return t.name == record.target; });
    if (target == targets.end()) continue;  // "." or beyond the targets looked up
    for (const AddressRecord& address : target->addresses) {
      addRecord(&result.records, Record{withPort(address.address, record.port), record.priority, record.weight});
      ttl = std::min(ttl, address.ttl);
    }
  }
  if (result.records.empty()) return failedLookup(LookupStatus::NoData, "no SRV target has an address");
  result.ttl = std::chrono::seconds(ttl);
  return result;
}

}  // namespace lb::discovery
