#pragma once
// Matching a TLS server name (SNI) against configured names: exact names
// first, then wildcards ("*.svc.internal" matches "a.svc.internal", not
// "svc.internal" nor "a.b.svc.internal"), case-insensitive, a trailing dot
// on either side ignored. Pure code: used by certificate choice on TLS
// listeners and by [[listener.route]].

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/server_name.h"

namespace lb::tls {

// Names are added in config::normalizeServerName's form (config/server_name.h).
// Names mapped to values (a certificate index, a pool index). Lookups
// allocate nothing.
class ServerNameTable {
 public:
  // `name` must be normalized; a name already present keeps its first value.
  void add(std::string_view name, uint32_t value);
  // The value of the exact name, else of the wildcard covering it, else
  // nullopt. `sni` is taken as sent (any case, maybe a trailing dot).
  std::optional<uint32_t> find(std::string_view sni) const;
  bool empty() const { return exact_.empty() && wildcard_.empty(); }

 private:
  struct Entry {
    std::string name;  // exact: the name; wildcard: the part after "*."
    uint32_t value;
  };
  // The value of `key` (any case) in `entries`, without allocating.
  static std::optional<uint32_t> lookup(const std::vector<Entry>& entries, std::string_view key);
  std::vector<Entry> exact_;     // sorted by name
  std::vector<Entry> wildcard_;  // sorted by name
};

}  // namespace lb::tls
