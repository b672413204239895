// How parsed answers become a LookupResult: ports, answer order, duplicates,
// TTLs, SRV targets (bounded, "." skipped) and how a target's failure fails
// the whole SRV result.

#include "lb/discovery/lookup_result.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lb::discovery {
namespace {

AddressRecord address(const std::string& owner, const char* ip, uint32_t ttl) {
  AddressRecord record;
  record.owner = owner;
  record.ttl = ttl;
  if (std::string(ip).find(':') != std::string::npos) {
    auto& v6 = reinterpret_cast<sockaddr_in6&>(record.address);
    v6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &v6.sin6_addr);
  } else {
    auto& v4 = reinterpret_cast<sockaddr_in&>(record.address);
    v4.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &v4.sin_addr);
  }
  return record;
}

SrvRecord srv(const std::string& target, uint16_t port, uint16_t priority, uint16_t weight, uint32_t ttl) {
  return SrvRecord{"_s._tcp.test", priority, weight, port, target, ttl};
}

// "ip:port/priority/weight"
std::string text(const Record& record) {
  char ip[INET6_ADDRSTRLEN] = "";
  uint16_t port = 0;
  if (record.address.ss_family == AF_INET) {
    auto& v4 = reinterpret_cast<const sockaddr_in&>(record.address);
    inet_ntop(AF_INET, &v4.sin_addr, ip, sizeof ip);
    port = ntohs(v4.sin_port);
  } else {
    auto& v6 = reinterpret_cast<const sockaddr_in6&>(record.address);
    inet_ntop(AF_INET6, &v6.sin6_addr, ip, sizeof ip);
    port = ntohs(v6.sin6_port);
  }
  return std::string(ip) + ":" + std::to_string(port) + "/" + std::to_string(record.priority) + "/" +
         std::to_string(record.weight);
}

std::vector<std::string> texts(const LookupResult& result) {
  std::vector<std::string> out;
  for (const Record& record : result.records) out.push_back(text(record));
  return out;
}

TEST(AddressResult, PortsOrderAndDuplicates) {
  DnsAnswer answer;
  answer.addresses = {address("a", "10.0.0.2", 30), address("a", "10.0.0.1", 20), address("a", "10.0.0.2", 30),
                      address("a", "::1", 30)};
  answer.ttl = 20;
  LookupResult result = addressResult(answer, 8080);
  EXPECT_EQ(result.status, LookupStatus::Ok);
  EXPECT_EQ(texts(result), (std::vector<std::string>{"10.0.0.2:8080/0/0", "10.0.0.1:8080/0/0", "::1:8080/0/0"}));
  EXPECT_EQ(result.ttl, std::chrono::seconds(20));
}

TEST(AddressResult, NoAddressIsNoData) {
  DnsAnswer answer;
  answer.canonicalName = "gone.test";
  EXPECT_EQ(addressResult(answer, 80).status, LookupStatus::NoData);
}

TEST(SrvTargets, DistinctInAnswerOrderWithoutTheRootAndAtMost64) {
  DnsAnswer answer;
  answer.services = {srv("b", 1, 0, 0, 9), srv("", 1, 0, 0, 9), srv("a", 2, 0, 0, 9), srv("b", 3, 0, 0, 9)};
  EXPECT_EQ(srvTargets(answer), (std::vector<std::string>{"b", "a"}));
  answer.services.clear();
  for (int i = 0; i < 100; ++i) answer.services.push_back(srv("t" + std::to_string(i), 1, 0, 0, 9));
  std::vector<std::string> targets = srvTargets(answer);
  ASSERT_EQ(targets.size(), kMaxSrvTargets);
  EXPECT_EQ(targets.back(), "t63");
}

TEST(SrvResult, OneRecordPerTargetAddressInAnswerOrder) {
  DnsAnswer answer;
  answer.services = {srv("b", 9000, 20, 5, 300), srv("a", 8000, 10, 60, 200), srv("a", 8001, 30, 1, 250)};
  answer.ttl = 200;
  std::vector<TargetAddresses> targets = {
      {"b", LookupStatus::Ok, "", {address("b", "10.0.0.2", 100)}},
      {"a", LookupStatus::Ok, "", {address("a", "10.0.0.1", 400), address("a", "2001:db8::1", 50)}},
  };
  LookupResult result = srvResult(answer, targets);
  ASSERT_EQ(result.status, LookupStatus::Ok) << result.detail;
  EXPECT_EQ(texts(result), (std::vector<std::string>{"10.0.0.2:9000/20/5", "10.0.0.1:8000/10/60",
                                                     "2001:db8::1:8000/10/60", "10.0.0.1:8001/30/1",
                                                     "2001:db8::1:8001/30/1"}));
  EXPECT_EQ(result.ttl, std::chrono::seconds(50));  // a's AAAA record
}

TEST(SrvResult, TheSameEndpointTwiceIsOneRecordTheFirst) {
  DnsAnswer answer;
  // Two names for one host, same port: one member, with the first record's
  // priority and weight.
  answer.services = {srv("a", 80, 1, 10, 60), srv("alias", 80, 2, 20, 60)};
  answer.ttl = 60;
  std::vector<TargetAddresses> targets = {{"a", LookupStatus::Ok, "", {address("a", "10.0.0.1", 60)}},
                                          {"alias", LookupStatus::Ok, "", {address("alias", "10.0.0.1", 60)}}};
  EXPECT_EQ(texts(srvResult(answer, targets)), (std::vector<std::string>{"10.0.0.1:80/1/10"}));
}

TEST(SrvResult, ATargetWithNoAddressAddsNothing) {
  DnsAnswer answer;
  answer.services = {srv("gone", 80, 1, 1, 60), srv("a", 81, 1, 1, 60)};
  answer.ttl = 60;
  std::vector<TargetAddresses> targets = {{"gone", LookupStatus::NoSuchName, "NXDOMAIN", {}},
                                          {"a", LookupStatus::NoData, "", {address("a", "10.0.0.1", 70)}}};
  LookupResult result = srvResult(answer, targets);
  ASSERT_EQ(result.status, LookupStatus::Ok);
  EXPECT_EQ(texts(result), (std::vector<std::string>{"10.0.0.1:81/1/1"}));
  EXPECT_EQ(result.ttl, std::chrono::seconds(60));

  targets[1].addresses.clear();
  result = srvResult(answer, targets);
  EXPECT_EQ(result.status, LookupStatus::NoData);
  EXPECT_TRUE(result.records.empty());
}

TEST(SrvResult, AFailedTargetFailsTheWholeResult) {
  DnsAnswer answer;
  answer.services = {srv("a", 80, 1, 1, 60), srv("b", 81, 1, 1, 60)};
  for (LookupStatus failure : {LookupStatus::Timeout, LookupStatus::ServerFailure, LookupStatus::Malformed,
                               LookupStatus::LocalError}) {
    std::vector<TargetAddresses> targets = {{"a", LookupStatus::Ok, "", {address("a", "10.0.0.1", 60)}},
                                            {"b", failure, "why", {}}};
    LookupResult result = srvResult(answer, targets);
    EXPECT_EQ(result.status, failure);
    EXPECT_TRUE(result.records.empty());
    EXPECT_NE(result.detail.find("b: why"), std::string::npos) << result.detail;
  }
}

TEST(SrvResult, TargetsBeyondThoseLookedUpAreLeftOut) {
  DnsAnswer answer;
  answer.services = {srv("a", 80, 1, 1, 60), srv("not-looked-up", 81, 1, 1, 60)};
  std::vector<TargetAddresses> targets = {{"a", LookupStatus::Ok, "", {address("a", "10.0.0.1", 60)}}};
  EXPECT_EQ(texts(srvResult(answer, targets)), (std::vector<std::string>{"10.0.0.1:80/1/1"}));
}

TEST(AdditionalAddresses, OnlyTheTargetsOwn) {
  DnsAnswer answer;
  answer.additional = {address("a", "10.0.0.1", 1), address("b", "10.0.0.2", 1), address("a", "::1", 1)};
  std::vector<AddressRecord> found = additionalAddresses(answer, "a");
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[1].address.ss_family, AF_INET6);
  EXPECT_TRUE(additionalAddresses(answer, "c").empty());
}

}  // namespace
}  // namespace lb::discovery
