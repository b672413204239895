#pragma once
// Private to config/: the TLS tables of the file ([listener.tls],
// [[listener.route]], [pool.NAME.tls]), read the way loader.cc reads the
// rest. Files named here are never opened: their paths are resolved and
// their keys' positions kept, and lb/tls reads them and reports problems
// at those positions.

#include <toml++/toml.h>

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/toml_reader.h"

namespace config {

class TlsLoader {
 public:
  // `baseDirectory`: what relative file paths are relative to (the config
  // file's directory). `poolNames`: every [pool.NAME], for routes to check.
  TlsLoader(TomlReader& reader, std::string baseDirectory,
            const std::set<std::string, std::less<>>& poolNames)
      : reader_(reader), baseDirectory_(std::move(baseDirectory)), poolNames_(poolNames) {}

  // Each returns what it could read; errors go to the reader.
  ListenerTls loadListenerTls(const toml::table& table);
  // The [[listener.route]] tables of one [[listener]] table.
  std::vector<Route> loadRoutes(const toml::table& listenerTable, std::string_view listenerName);
  PoolTls loadPoolTls(const toml::table& table, std::string_view poolName);

 private:
  void loadCertificates(const toml::table& table, ListenerTls& tls);
  void readAlpn(const toml::table& table, std::vector<std::string>& out);
  void readVerifyClient(const toml::table& table, ListenerTls& tls);
  Route loadRoute(const toml::table& table, std::string_view listenerName, FirstSeen& names);
  void readServerNames(const toml::table& table, std::string_view listenerName, FirstSeen& seen,
                       std::vector<std::string>& out);
  void readPoolServerName(const toml::table& table, std::string& out);
  // A non-empty path string; relative ones are resolved against baseDirectory_.
  bool readFilePath(const toml::table& table, std::string_view key, FilePath& out);

  TomlReader& reader_;
  std::string baseDirectory_;
  const std::set<std::string, std::less<>>& poolNames_;
};

}  // namespace config
