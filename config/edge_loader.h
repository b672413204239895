#pragma once
// Private to config/: the edge keys of a [[listener]] table (issue 11):
// PROXY protocol from a front balancer (accept_proxy, proxy_from,
// proxy_timeout, proxy_max_header_bytes), access control (allow, deny) and
// per-source limits, read the way loader.cc reads the rest.

#include <toml++/toml.h>

#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/toml_reader.h"

namespace config {

class EdgeLoader {
 public:
  explicit EdgeLoader(TomlReader& reader) : reader_(reader) {}

  // Reads the edge keys of `table` into `listener`; errors go to the reader.
  void loadListenerEdge(const toml::table& table, Listener& listener);

 private:
  void readProxy(const toml::table& table, Listener& listener);
  // An array of address blocks; each bad element is reported at its own
  // position. Returns false when the key is absent or anything was wrong.
  bool readCidrs(const toml::table& table, std::string_view key, std::vector<Cidr>& out);

  TomlReader& reader_;
};

}  // namespace config
