#include "config/discover_loader.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include "config/choices.h"
#include "config/keys.h"
#include "config/server_name.h"

namespace config {
namespace {

constexpr uint16_t kDnsPort = 53;

Position positionOf(const toml::node& node) {
  const toml::source_position& begin = node.source().begin;
  return Position{static_cast<int>(begin.line), static_cast<int>(begin.column)};
}

bool isIpLiteral(std::string_view text) {
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  std::string host(text);
  in6_addr address{};
  return host.find('\0') == std::string::npos &&
         (inet_pton(AF_INET, host.c_str(), &address) == 1 || inet_pton(AF_INET6, host.c_str(), &address) == 1);
}

// What someone who wrote an address instead of a name meant: a member.
bool looksLikeAddress(std::string_view text) {
  return isIpLiteral(text) || parseAddress(text, nullptr).has_value();
}

std::string entryKey(const Discover& entry) {
  if (entry.type == DiscoverType::SRV) return fmt::format("{} SRV", entry.name);
  return fmt::format("{} {} port {}", entry.name, nameOf(kDiscoverTypes, entry.type), entry.port);
}

}  // namespace

std::optional<std::string> normalizeDnsName(std::string_view text) {
  // The server-name rules without wildcards are exactly those of a DNS name.
  return normalizeServerName(text, false);
}

std::optional<Address> parseDnsServer(std::string_view text, std::string* whyNot) {
  std::string_view host = text;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (isIpLiteral(host)) {
    bool v6 = host.find(':') != std::string_view::npos;
    std::string withPort = v6 ? fmt::format("[{}]:{}", host, kDnsPort) : fmt::format("{}:{}", host, kDnsPort);
    return parseAddress(withPort, whyNot);
  }
  std::string why;
  std::optional<Address> address = parseAddress(text, &why);
  if (address) return address;
  if (whyNot) {
    // A port or an IPv6 address that is wrong says which; anything else
    // (a host name among them: a resolver is not found by name) gets the forms.
    if (why.starts_with("invalid port") || why.starts_with("invalid IPv6"))
      *whyNot = std::move(why);
    else
      *whyNot = fmt::format(R"(expected "IP", "IP:port" or "[IPv6]:port", got "{}")", printable(text));
  }
  return std::nullopt;
}

std::vector<Discover> DiscoverLoader::loadDiscover(const toml::table& poolTable, std::string_view poolName) {
  std::vector<Discover> entries;
  std::string header = fmt::format("[[pool.{}.discover]]", printable(poolName));
  const toml::array* tables = reader_.tableArrayAt(poolTable, "discover", header);
  if (tables == nullptr) return entries;
  FirstSeen seen;  // name, type and port: what makes an entry the same one across reloads
  for (const toml::node& node : *tables) entries.push_back(loadEntry(*node.as_table(), poolName, seen));
  return entries;
}

Discover DiscoverLoader::loadEntry(const toml::table& table, std::string_view poolName, FirstSeen& seen) {
  std::string where = fmt::format("[[pool.{}.discover]]", printable(poolName));
  reader_.checkKeys(table, keys::kDiscover, where);
  Discover entry;
  entry.position = positionOf(table);
  bool named = reader_.require(table, "name", where) && readName(table, poolName, entry.name);
  bool typeKnown = !table.contains("type") ||
                   reader_.readEnum(table, "type", "discover type", kDiscoverTypes, entry.type);
  readPort(table, where, typeKnown, entry);
  reader_.readDuration(table, "interval", entry.interval);
  readRemoveGrace(table, entry.removeGrace);
  bool portKnown = entry.type == DiscoverType::SRV || entry.port != 0;
  if (named && typeKnown && portKnown)
    reader_.isDuplicate(seen, entryKey(entry), *table.get("name"), "discover",
                        fmt::format(R"( in pool "{}")", printable(poolName)));
  return entry;
}

bool DiscoverLoader::readName(const toml::table& table, std::string_view poolName, std::string& out) {
  std::string text;
  if (!reader_.readNonEmptyString(table, "name", text)) return false;
  const toml::node& node = *table.get("name");
  std::optional<std::string> name = normalizeDnsName(text);
  if (looksLikeAddress(text) || (name && isIpLiteral(*name))) {
    reader_.error(node, fmt::format(R"("name" must be a DNS name, got the address "{}" (an address is a member: )"
                                    R"(add a [[pool.{}.member]] with address = "IP:PORT"))",
                                    printable(text), printable(poolName)));
    return false;
  }
  if (!name) {
    reader_.error(node, fmt::format(R"("name" must be a DNS name (letters, digits, "-", "_" and dots; labels of 1 )"
                                    R"(to 63 characters, at most 253 in all), got "{}")",
                                    printable(text)));
    return false;
  }
  out = std::move(*name);
  return true;
}

// Zero is how the default (one interval) is kept, so "0s" cannot also
// mean "at once": it is refused with what to write instead.
void DiscoverLoader::readRemoveGrace(const toml::table& table, Duration& out) {
  const toml::node* node = table.get("remove_grace");
  if (node && node->is_string() && parseDuration(node->as_string()->get(), nullptr) == Duration(0)) {
    reader_.error(*node, R"("remove_grace" must be greater than zero (leave it out for one interval))");
    return;
  }
  reader_.readDuration(table, "remove_grace", out);
}

// A and AAAA records carry addresses only: the port comes from the file.
// SRV records carry their own, so a port there would be ignored: an error.
void DiscoverLoader::readPort(const toml::table& table, std::string_view where, bool typeKnown, Discover& entry) {
  if (!typeKnown) {
    int ignored = 0;
    reader_.readInt(table, "port", 1, 65535, ignored);
    return;
  }
  if (entry.type == DiscoverType::SRV) {
    if (const toml::node* port = table.get("port"))
      reader_.error(*port, R"("port" must not be set with type "SRV" (each SRV record carries its own port))");
    return;
  }
  if (!table.contains("port")) {
    reader_.error(table, fmt::format(R"(missing required key "port" in {} (type "{}" records carry no port))",
                                     where, nameOf(kDiscoverTypes, entry.type)));
    return;
  }
  int port = 0;
  if (reader_.readInt(table, "port", 1, 65535, port)) entry.port = static_cast<uint16_t>(port);
}

void DiscoverLoader::loadDns(const toml::table& globalTable, Global::Dns& dns) {
  const toml::table* table = reader_.tableAt(globalTable, "dns", "[global.dns]");
  if (table == nullptr) return;
  reader_.checkKeys(*table, keys::kDns, "[global.dns]");
  dns.position = positionOf(*table);
  readServers(*table, dns.servers);
  Duration timeout{};
  if (reader_.readDuration(*table, "timeout", timeout)) {
    if (timeout > kMaxDnsTimeout)
      reader_.error(*table->get("timeout"), R"("timeout" must be at most 1m (it bounds one attempt at one server))");
    else
      dns.timeout = timeout;
  }
  reader_.readInt(*table, "attempts", 1, kMaxDnsAttempts, dns.attempts);
  reader_.readDuration(*table, "min_interval", dns.minInterval);
}

void DiscoverLoader::readServers(const toml::table& table, std::vector<Address>& out) {
  const toml::node* node = table.get("servers");
  if (node == nullptr) return;
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    reader_.error(*node, fmt::format(R"("servers" must be an array such as ["127.0.0.1:8600"], got {})",
                                     typeName(node->type())));
    return;
  }
  if (array->empty()) {
    reader_.error(*node, R"("servers" must not be empty (leave it out to use those of /etc/resolv.conf))");
    return;
  }
  if (array->size() > kMaxDnsServers) {
    reader_.error(*node, fmt::format(R"("servers" must list at most {} servers, got {} (c-ares asks them one )"
                                     R"(after another: more only make a failed lookup slower))",
                                     kMaxDnsServers, array->size()));
    return;
  }
  FirstSeen seen;
  std::vector<Address> servers;
  for (const toml::node& element : *array) {
    const toml::value<std::string>* text = element.as_string();
    if (text == nullptr) {
      reader_.error(element, fmt::format(R"("servers" entries must be strings, got {})", typeName(element.type())));
      continue;
    }
    std::string whyNot;
    std::optional<Address> server = parseDnsServer(text->get(), &whyNot);
    if (!server) {
      reader_.error(element, fmt::format(R"("servers": {})", whyNot));
      continue;
    }
    if (!reader_.isDuplicate(seen, server->text, element, "DNS server", "")) servers.push_back(std::move(*server));
  }
  if (servers.size() == array->size()) out = std::move(servers);
}

}  // namespace config
