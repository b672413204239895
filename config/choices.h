#pragma once
// Private to config/: the spelling of every enumerated value in the file, one
// table per enum, used to read values (loader.cc) and to show them (diff.cc).

#include <string_view>

#include "config/config.h"

namespace config {

template <typename E>
struct Choice {
  std::string_view name;
  E value;
};

inline constexpr Choice<LogLevel> kLogLevels[] = {{"error", LogLevel::Error},
                                                  {"warn", LogLevel::Warn},
                                                  {"info", LogLevel::Info},
                                                  {"debug", LogLevel::Debug}};
inline constexpr Choice<Balance> kBalances[] = {{"round_robin", Balance::RoundRobin},
                                                {"least_conn", Balance::LeastConn},
                                                {"consistent_hash", Balance::ConsistentHash},
                                                {"random_two", Balance::RandomTwo}};
inline constexpr Choice<HashKey> kHashKeys[] = {{"source_ip", HashKey::SourceIp},
                                                {"source_ip_port", HashKey::SourceIpPort}};
inline constexpr Choice<WhenAllDown> kWhenAllDown[] = {{"reject", WhenAllDown::Reject},
                                                       {"use_all", WhenAllDown::UseAll}};
inline constexpr Choice<OnDown> kOnDown[] = {{"keep", OnDown::Keep}, {"close", OnDown::Close}};
inline constexpr Choice<HealthKind> kHealthKinds[] = {{"tcp", HealthKind::Tcp},
                                                      {"http", HealthKind::Http},
                                                      {"tls", HealthKind::Tls},
                                                      {"https", HealthKind::Https}};
inline constexpr Choice<TlsVersion> kTlsVersions[] = {{"1.2", TlsVersion::V1_2},
                                                      {"1.3", TlsVersion::V1_3}};
inline constexpr Choice<VerifyClient> kVerifyClient[] = {{"none", VerifyClient::None},
                                                         {"optional", VerifyClient::Optional},
                                                         {"required", VerifyClient::Required}};
inline constexpr Choice<ProxyVersion> kProxyVersions[] = {
    {"off", ProxyVersion::Off}, {"v1", ProxyVersion::V1}, {"v2", ProxyVersion::V2}};
inline constexpr Choice<AcceptProxy> kAcceptProxy[] = {{"off", AcceptProxy::Off},
                                                       {"v1", AcceptProxy::V1},
                                                       {"v2", AcceptProxy::V2},
                                                       {"any", AcceptProxy::Any}};
inline constexpr Choice<DiscoverType> kDiscoverTypes[] = {
    {"A", DiscoverType::A}, {"AAAA", DiscoverType::AAAA}, {"SRV", DiscoverType::SRV}};

// The file's spelling of `value`.
template <typename E, size_t N>
constexpr std::string_view nameOf(const Choice<E> (&choices)[N], E value) {
  for (const Choice<E>& choice : choices)
    if (choice.value == value) return choice.name;
  return "unknown";
}

}  // namespace config
