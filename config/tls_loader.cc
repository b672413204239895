#include "config/tls_loader.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <filesystem>

#include "config/choices.h"
#include "config/keys.h"
#include "config/server_name.h"

namespace config {
namespace {

// ALPN protocol names are 1 to 255 bytes on the wire (RFC 7301).
constexpr size_t kMaxAlpnBytes = 255;

Position positionOf(const toml::source_region& where) {
  return Position{static_cast<int>(where.begin.line), static_cast<int>(where.begin.column)};
}

bool isIpLiteral(const std::string& text) {
  in6_addr address{};
  return inet_pton(AF_INET, text.c_str(), &address) == 1 ||
         inet_pton(AF_INET6, text.c_str(), &address) == 1;
}

std::string who(std::string_view listenerName) {
  return listenerName.empty() ? std::string("listener")
                              : fmt::format(R"(listener "{}")", printable(listenerName));
}

}  // namespace

ListenerTls TlsLoader::loadListenerTls(const toml::table& table) {
  constexpr std::string_view where = "[listener.tls]";
  reader_.checkKeys(table, keys::kListenerTls, where);
  ListenerTls tls;
  if (reader_.require(table, "certificates", where)) loadCertificates(table, tls);
  if (const toml::node* node = table.get("min_version"); node && node->is_floating_point())
    reader_.error(*node, R"("min_version" must be a string, "1.2" or "1.3", got float)");
  else
    reader_.readEnum(table, "min_version", "min_version", kTlsVersions, tls.minVersion);
  readAlpn(table, tls.alpn);
  FilePath clientCa;
  if (readFilePath(table, "client_ca", clientCa)) tls.clientCa = std::move(clientCa);
  readVerifyClient(table, tls);
  reader_.readDuration(table, "handshake_timeout", tls.handshakeTimeout);
  return tls;
}

void TlsLoader::loadCertificates(const toml::table& table, ListenerTls& tls) {
  constexpr std::string_view where = "[listener.tls] certificates";
  const toml::array* certificates =
      reader_.tableArrayAt(table, "certificates", R"({ cert = "FILE", key = "FILE" })");
  if (certificates == nullptr) return;
  if (certificates->empty()) {
    reader_.error(*certificates, R"("certificates" must list at least one { cert = "FILE", key = "FILE" })");
    return;
  }
  for (const toml::node& node : *certificates) {
    const toml::table& entry = *node.as_table();
    reader_.checkKeys(entry, keys::kCertificate, where);
    CertificateFiles files;
    if (reader_.require(entry, "cert", where)) readFilePath(entry, "cert", files.cert);
    if (reader_.require(entry, "key", where)) readFilePath(entry, "key", files.key);
    tls.certificates.push_back(std::move(files));
  }
}

void TlsLoader::readAlpn(const toml::table& table, std::vector<std::string>& out) {
  const toml::node* node = table.get("alpn");
  if (node == nullptr) return;
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    reader_.error(*node, fmt::format(R"("alpn" must be an array of strings such as ["h2", "http/1.1"], got {})",
                                     typeName(node->type())));
    return;
  }
  FirstSeen seen;
  std::vector<std::string> protocols;
  for (const toml::node& element : *array) {
    const toml::value<std::string>* protocol = element.as_string();
    if (protocol == nullptr || protocol->get().empty() || protocol->get().size() > kMaxAlpnBytes) {
      std::string got = protocol ? fmt::format("{} bytes", protocol->get().size())
                                 : std::string(typeName(element.type()));
      reader_.error(element, fmt::format(R"("alpn" entries must be strings of 1 to {} bytes, got {})",
                                         kMaxAlpnBytes, got));
      continue;
    }
    if (!reader_.isDuplicate(seen, protocol->get(), element, "alpn protocol", ""))
      protocols.push_back(protocol->get());
  }
  if (protocols.size() == array->size()) out = std::move(protocols);
}

// Verifying client certificates needs the CA that signs them.
void TlsLoader::readVerifyClient(const toml::table& table, ListenerTls& tls) {
  if (!reader_.readEnum(table, "verify_client", "verify_client", kVerifyClient, tls.verifyClient)) return;
  if (tls.verifyClient == VerifyClient::None || table.contains("client_ca")) return;
  reader_.error(*table.get("verify_client"),
                fmt::format(R"(verify_client "{}" needs "client_ca" (the CA file client certificates )"
                            R"(are verified against))",
                            nameOf(kVerifyClient, tls.verifyClient)));
}

std::vector<Route> TlsLoader::loadRoutes(const toml::table& listenerTable, std::string_view listenerName) {
  std::vector<Route> routes;
  const toml::array* tables = reader_.tableArrayAt(listenerTable, "route", "[[listener.route]]");
  if (tables == nullptr) return routes;
  FirstSeen names;  // across all routes of this listener
  for (const toml::node& node : *tables) routes.push_back(loadRoute(*node.as_table(), listenerName, names));
  return routes;
}

Route TlsLoader::loadRoute(const toml::table& table, std::string_view listenerName, FirstSeen& names) {
  constexpr std::string_view where = "[[listener.route]]";
  reader_.checkKeys(table, keys::kRoute, where);
  Route route;
  route.position = positionOf(table.source());
  if (reader_.require(table, "server_names", where))
    readServerNames(table, listenerName, names, route.serverNames);
  if (reader_.require(table, "pool", where) && reader_.readNonEmptyString(table, "pool", route.pool) &&
      poolNames_.count(route.pool) == 0) {
    reader_.error(*table.get("pool"), fmt::format(R"(route of {} names pool "{}", which is not defined)",
                                                  who(listenerName), printable(route.pool)));
  }
  return route;
}

void TlsLoader::readServerNames(const toml::table& table, std::string_view listenerName, FirstSeen& seen,
                                std::vector<std::string>& out) {
  const toml::node& node = *table.get("server_names");
  const toml::array* array = node.as_array();
  if (array == nullptr) {
    reader_.error(node, fmt::format(R"("server_names" must be an array such as ["api.internal", )"
                                    R"("*.svc.internal"], got {})",
                                    typeName(node.type())));
    return;
  }
  if (array->empty()) {
    reader_.error(node, R"("server_names" must not be empty)");
    return;
  }
  std::string context = fmt::format(" in the routes of {}", who(listenerName));
  for (const toml::node& element : *array) {
    const toml::value<std::string>* text = element.as_string();
    if (text == nullptr) {
      reader_.error(element, fmt::format(R"("server_names" entries must be strings, got {})",
                                         typeName(element.type())));
      continue;
    }
    std::optional<std::string> name = normalizeServerName(text->get());
    if (!name) {
      reader_.error(element, fmt::format(R"(invalid server name "{}" (expected a host name such as )"
                                         R"("api.internal" or a wildcard such as "*.svc.internal"))",
                                         printable(text->get())));
      continue;
    }
    if (!reader_.isDuplicate(seen, *name, element, "server name", context)) out.push_back(std::move(*name));
  }
}

PoolTls TlsLoader::loadPoolTls(const toml::table& table, std::string_view poolName) {
  reader_.checkKeys(table, keys::kPoolTls, fmt::format("[pool.{}.tls]", printable(poolName)));
  PoolTls tls;
  tls.position = positionOf(table.source());
  readPoolServerName(table, tls.serverName);
  FilePath ca;
  if (readFilePath(table, "ca", ca)) tls.ca = std::move(ca);
  reader_.readBool(table, "verify", tls.verify);
  // A client certificate is a certificate and its key: both or neither.
  CertificateFiles client;
  bool hasCert = readFilePath(table, "cert", client.cert);
  bool hasKey = readFilePath(table, "key", client.key);
  if (hasCert && hasKey) {
    tls.clientCertificate = std::move(client);
  } else if (table.contains("cert") != table.contains("key")) {
    bool certOnly = table.contains("cert");
    reader_.error(*table.get(certOnly ? "cert" : "key"),
                  fmt::format(R"("{}" needs "{}" too (a client certificate and its private key go together))",
                              certOnly ? "cert" : "key", certOnly ? "key" : "cert"));
  }
  return tls;
}

// The name sent as SNI and verified in the member's certificate: a host
// name (wildcards are for matching, not for asking), or an IP address,
// which is verified but never sent as SNI.
void TlsLoader::readPoolServerName(const toml::table& table, std::string& out) {
  std::string text;
  if (!reader_.readNonEmptyString(table, "server_name", text)) return;
  if (isIpLiteral(text)) {
    out = std::move(text);
    return;
  }
  std::optional<std::string> name = normalizeServerName(text, false);
  if (!name) {
    reader_.error(*table.get("server_name"),
                  fmt::format(R"("server_name" must be a host name without wildcard or an IP address, got "{}")",
                              printable(text)));
    return;
  }
  out = std::move(*name);
}

bool TlsLoader::readFilePath(const toml::table& table, std::string_view key, FilePath& out) {
  std::string text;
  if (!reader_.readNonEmptyString(table, key, text)) return false;
  if (text.find('\0') != std::string::npos) {
    reader_.error(*table.get(key), fmt::format(R"("{}" must not contain a NUL character)", key));
    return false;
  }
  std::filesystem::path path(text);
  out.path = path.is_absolute() ? text : (std::filesystem::path(baseDirectory_) / path).string();
  out.position = positionOf(table.find(key)->first.source());
  return true;
}

}  // namespace config
