#pragma once
// Private to config/: DNS discovery (issue 12), read the way loader.cc reads
// the rest: the [[pool.NAME.discover]] tables of a pool and the [global.dns]
// table. Nothing is resolved here (`ringlb --check` checks syntax only).

#include <toml++/toml.h>

#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/toml_reader.h"

namespace config {

// DNS servers a c-ares channel is given at most: it asks them one after
// another, so each further server only makes a failed lookup slower (and
// resolv.conf, its default source, holds 3 as well).
inline constexpr size_t kMaxDnsServers = 3;
// One attempt at one server waits at most this long; c-ares takes the
// timeout in milliseconds as an int.
inline constexpr Duration kMaxDnsTimeout = std::chrono::minutes(1);
inline constexpr int kMaxDnsAttempts = 10;

class DiscoverLoader {
 public:
  explicit DiscoverLoader(TomlReader& reader) : reader_(reader) {}

  // The [[pool.NAME.discover]] entries of one [pool.NAME] table, in file
  // order; errors go to the reader.
  std::vector<Discover> loadDiscover(const toml::table& poolTable, std::string_view poolName);
  // [global.dns], given the [global] table (absent: the defaults stay).
  void loadDns(const toml::table& globalTable, Global::Dns& dns);

 private:
  Discover loadEntry(const toml::table& table, std::string_view poolName, FirstSeen& seen);
  bool readName(const toml::table& table, std::string_view poolName, std::string& out);
  void readRemoveGrace(const toml::table& table, Duration& out);
  void readPort(const toml::table& table, std::string_view where, bool typeKnown, Discover& entry);
  void readServers(const toml::table& table, std::vector<Address>& out);

  TomlReader& reader_;
};

// `text` as discovery asks for it: lower case, no trailing dot. nullopt for
// something that is not a DNS name: empty, over 253 bytes, a byte outside
// [A-Za-z0-9-_.] (underscores for SRV labels such as _http._tcp), or an
// empty label or one over 63 bytes.
std::optional<std::string> normalizeDnsName(std::string_view text);

// A [global.dns] servers entry: "IP" (port 53), "IP:port", "[IPv6]" or
// "[IPv6]:port"; a bare IPv6 address takes port 53 too.
std::optional<Address> parseDnsServer(std::string_view text, std::string* whyNot);

}  // namespace config
