#include "config/edge_loader.h"

#include <fmt/format.h>

#include "config/choices.h"

namespace config {
namespace {

// The most a v2 header can be: 16 fixed bytes and a 16-bit length.
constexpr int kMaxProxyHeaderBytes = 16 + 65535;
// Limits per source stay within what one listener can hold at all.
constexpr int kMaxPerSource = 1'000'000;

Position positionOf(const toml::node& node) {
  const toml::source_position& begin = node.source().begin;
  return Position{static_cast<int>(begin.line), static_cast<int>(begin.column)};
}

}  // namespace

void EdgeLoader::loadListenerEdge(const toml::table& table, Listener& listener) {
  readProxy(table, listener);
  readCidrs(table, "allow", listener.allow);
  // An empty allow would read as "nobody" but mean "everyone": say which.
  if (const toml::node* allow = table.get("allow"); allow && allow->is_array() && allow->as_array()->empty())
    reader_.error(*allow, R"("allow" must not be empty (leave it out to allow every address))");
  readCidrs(table, "deny", listener.deny);
  reader_.readInt(table, "max_connections_per_source", 0, kMaxPerSource, listener.maxConnectionsPerSource);
  reader_.readInt(table, "connection_rate_per_source", 0, kMaxPerSource, listener.connectionRatePerSource);
}

// accept_proxy other than off needs the senders it trusts (proxy_from), and
// proxy_from means nothing without it: both mistakes are errors.
void EdgeLoader::readProxy(const toml::table& table, Listener& listener) {
  bool acceptRead = reader_.readEnum(table, "accept_proxy", "accept_proxy", kAcceptProxy, listener.acceptProxy);
  bool acceptValid = acceptRead || !table.contains("accept_proxy");
  const toml::node* proxyFrom = table.get("proxy_from");
  if (proxyFrom != nullptr) {
    readCidrs(table, "proxy_from", listener.proxyFrom);
    const toml::array* array = proxyFrom->as_array();
    if (array != nullptr && array->empty())
      reader_.error(*proxyFrom, R"("proxy_from" must not be empty (the addresses that send PROXY headers))");
    else if (array != nullptr && acceptValid && listener.acceptProxy == AcceptProxy::Off)
      reader_.error(*proxyFrom, fmt::format(R"("proxy_from" is set but accept_proxy is off{} (set accept_proxy )"
                                            R"(to "v1", "v2" or "any", or remove proxy_from))",
                                            acceptRead ? "" : " (the default)"));
  } else if (acceptRead && listener.acceptProxy != AcceptProxy::Off) {
    reader_.error(*table.get("accept_proxy"),
                  fmt::format(R"(accept_proxy "{}" needs "proxy_from" (the addresses of the balancers that )"
                              R"(send PROXY headers))",
                              nameOf(kAcceptProxy, listener.acceptProxy)));
  }
  reader_.readDuration(table, "proxy_timeout", listener.proxyTimeout);
  reader_.readInt(table, "proxy_max_header_bytes", 16, kMaxProxyHeaderBytes, listener.proxyMaxHeaderBytes);
}

bool EdgeLoader::readCidrs(const toml::table& table, std::string_view key, std::vector<Cidr>& out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return false;
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    reader_.error(*node, fmt::format(R"("{}" must be an array of address blocks such as )"
                                     R"(["10.0.0.0/8", "2001:db8::/32"], got {})",
                                     key, typeName(node->type())));
    return false;
  }
  std::vector<Cidr> blocks;
  for (const toml::node& element : *array) {
    const toml::value<std::string>* text = element.as_string();
    if (text == nullptr) {
      reader_.error(element, fmt::format(R"("{}" entries must be strings, got {})", key,
                                         typeName(element.type())));
      continue;
    }
    std::string whyNot;
    std::optional<Cidr> cidr = parseCidr(text->get(), &whyNot);
    if (!cidr) {
      reader_.error(element, fmt::format(R"("{}": {})", key, whyNot));
      continue;
    }
    cidr->position = positionOf(element);
    blocks.push_back(std::move(*cidr));
  }
  if (blocks.size() != array->size()) return false;
  out = std::move(blocks);
  return true;
}

}  // namespace config
