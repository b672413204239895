// Compares two configs key by key. Each table's keys are listed once, with
// how to show a value; a key missing here is caught by the test that changes
// every key of config/keys.h in turn.

#include "config/diff.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iterator>
#include <map>
#include <set>
#include <string_view>

#include "config/choices.h"

namespace config {
namespace {

template <typename T>
struct Field {
  std::string_view key;
  std::string (*show)(const T&);
  std::string_view note = {};  // appended to the line, e.g. when a restart is needed
  bool secret = false;         // say that it changed, never the values
};

constexpr std::string_view kAtRestart = " (takes effect at the next restart)";
// The process dropped to user and group at start: no reload can undo that.
constexpr std::string_view kRefusesReload = " (needs a restart: a reload that changes it is refused)";

// Names and texts from the file are escaped, never cut: the preview must
// show where two long values differ.
std::string shown(std::string_view text) { return printable(text, std::string_view::npos); }
std::string quoted(std::string_view text) { return fmt::format("\"{}\"", shown(text)); }
std::string quotedOr(std::string_view text, std::string_view empty) {
  return text.empty() ? std::string(empty) : quoted(text);
}

std::string duration(Duration value) {
  int64_t ms = value.count();
  if (ms != 0 && ms % 3'600'000 == 0) return fmt::format("{}h", ms / 3'600'000);
  if (ms != 0 && ms % 60'000 == 0) return fmt::format("{}m", ms / 60'000);
  if (ms != 0 && ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

// What an unset (zero) value means, or the value.
std::string durationOr(Duration value, std::string_view zero) {
  return value.count() == 0 ? std::string(zero) : duration(value);
}
std::string numberOr(int value, std::string_view zero) {
  return value == 0 ? std::string(zero) : fmt::format("{}", value);
}

template <typename E, size_t N>
std::string name(const Choice<E> (&choices)[N], E value) {
  return std::string(nameOf(choices, value));
}

const Field<Global> kGlobalFields[] = {
    {"workers", [](const Global& g) { return numberOr(g.workers, "auto"); }, kAtRestart},
    {"log_level", [](const Global& g) { return name(kLogLevels, g.logLevel); }},
    {"access_log", [](const Global& g) { return quoted(g.accessLog); }, kAtRestart},
    {"shutdown_timeout", [](const Global& g) { return duration(g.shutdownTimeout); }},
    {"removed_member_timeout", [](const Global& g) { return durationOr(g.removedMemberTimeout, "off"); }},
    {"upgrade_timeout", [](const Global& g) { return duration(g.upgradeTimeout); }},
    {"user", [](const Global& g) { return quotedOr(g.user, "(unset)"); }, kRefusesReload},
    {"group", [](const Global& g) { return quotedOr(g.group, "(unset)"); }, kRefusesReload},
    {"max_connections", [](const Global& g) { return numberOr(g.maxConnections, "auto"); }},
    {"source_table_size", [](const Global& g) { return fmt::format("{}", g.sourceTableSize); }},
};

// The servers as normalised, in file order.
std::string dnsServers(const std::vector<Address>& servers) {
  if (servers.empty()) return "(/etc/resolv.conf)";
  std::vector<std::string> texts;
  for (const Address& a : servers) texts.push_back(a.text);
  return fmt::format("[{}]", fmt::join(texts, ", "));
}

const Field<Global::Dns> kDnsFields[] = {
    {"servers", [](const Global::Dns& d) { return dnsServers(d.servers); }},
    {"timeout", [](const Global::Dns& d) { return duration(d.timeout); }},
    {"attempts", [](const Global::Dns& d) { return fmt::format("{}", d.attempts); }},
    {"min_interval", [](const Global::Dns& d) { return duration(d.minInterval); }},
};

const Field<Admin> kAdminFields[] = {
    {"listen", [](const Admin& a) { return a.listen ? a.listen->text : std::string("off"); }, kAtRestart},
    {"token", [](const Admin& a) { return a.token; }, {}, true},
    {"token_file", [](const Admin& a) { return a.tokenFile ? quoted(a.tokenFile->path) : std::string("none"); }},
    {"require_token_for_reads", [](const Admin& a) { return std::string(a.requireTokenForReads ? "true" : "false"); }},
    {"reload_min_interval", [](const Admin& a) { return duration(a.reloadMinInterval); }},
};

std::string filePath(const FilePath& file) { return quoted(file.path); }
std::string filePathOr(const std::optional<FilePath>& file, std::string_view absent) {
  return file ? filePath(*file) : std::string(absent);
}

// Address blocks as written, in file order.
std::string blocks(const std::vector<Cidr>& cidrs, std::string_view none) {
  if (cidrs.empty()) return std::string(none);
  std::vector<std::string> texts;
  for (const Cidr& c : cidrs) texts.push_back(shown(c.text));
  return fmt::format("[{}]", fmt::join(texts, ", "));
}

// name and bind are the listener's identity and socket: see listenerLines().
// tls and route are tables of their own: see listenerTlsLines() and routeLines().

const Field<Listener> kListenerFields[] = {
    {"pool", [](const Listener& l) { return shown(l.pool); }},
    {"max_connections", [](const Listener& l) { return fmt::format("{}", l.maxConnections); }},
    {"idle_timeout", [](const Listener& l) { return duration(l.idleTimeout); }},
    {"preread_timeout", [](const Listener& l) { return duration(l.prereadTimeout); }},
    {"accept_proxy", [](const Listener& l) { return name(kAcceptProxy, l.acceptProxy); }},
    {"proxy_from", [](const Listener& l) { return blocks(l.proxyFrom, "(none)"); }},
    {"proxy_timeout", [](const Listener& l) { return duration(l.proxyTimeout); }},
    {"proxy_max_header_bytes", [](const Listener& l) { return fmt::format("{}", l.proxyMaxHeaderBytes); }},
    {"allow", [](const Listener& l) { return blocks(l.allow, "(everyone)"); }},
    {"deny", [](const Listener& l) { return blocks(l.deny, "(none)"); }},
    {"max_connections_per_source",
     [](const Listener& l) { return numberOr(l.maxConnectionsPerSource, "no limit"); }},
    {"connection_rate_per_source",
     [](const Listener& l) { return numberOr(l.connectionRatePerSource, "no limit"); }},
};

// Files are compared by path: a reload reads every file again anyway.
const Field<ListenerTls> kListenerTlsFields[] = {
    {"certificates",
     [](const ListenerTls& t) {
       std::vector<std::string> pairs;
       for (const CertificateFiles& c : t.certificates)
         pairs.push_back(fmt::format("{{cert {} key {}}}", filePath(c.cert), filePath(c.key)));
       return fmt::format("[{}]", fmt::join(pairs, ", "));
     }},
    {"min_version", [](const ListenerTls& t) { return name(kTlsVersions, t.minVersion); }},
    {"alpn",
     [](const ListenerTls& t) {
       std::vector<std::string> protocols;
       for (const std::string& p : t.alpn) protocols.push_back(quoted(p));
       return fmt::format("[{}]", fmt::join(protocols, ", "));
     }},
    {"client_ca", [](const ListenerTls& t) { return filePathOr(t.clientCa, "(none)"); }},
    {"verify_client", [](const ListenerTls& t) { return name(kVerifyClient, t.verifyClient); }},
    {"handshake_timeout", [](const ListenerTls& t) { return duration(t.handshakeTimeout); }},
};

// member, discover, health and tls are tables of their own: see poolChanges().
const Field<Pool> kPoolFields[] = {
    {"balance", [](const Pool& p) { return name(kBalances, p.balance); }},
    {"hash_key", [](const Pool& p) { return name(kHashKeys, p.hashKey); }},
    {"connect_timeout", [](const Pool& p) { return duration(p.connectTimeout); }},
    {"retries", [](const Pool& p) { return fmt::format("{}", p.retries); }},
    {"when_all_down", [](const Pool& p) { return name(kWhenAllDown, p.whenAllDown); }},
    {"table_size", [](const Pool& p) { return fmt::format("{}", p.tableSize); }},
    {"hash_balance_factor", [](const Pool& p) { return fmt::format("{}", p.hashBalanceFactor); }},
    {"send_proxy", [](const Pool& p) { return name(kProxyVersions, p.sendProxy); }},
};

// name is the member's identity. health_address and health_port make one
// probe address.
const Field<Member> kMemberFields[] = {
    {"address", [](const Member& m) { return m.address.text; }},
    {"weight", [](const Member& m) { return fmt::format("{}", m.weight); }},
    {"backup", [](const Member& m) { return fmt::format("{}", m.backup); }},
    {"health_address", [](const Member& m) { return m.healthAddress ? m.healthAddress->text : "(address)"; }},
    {"send_proxy", [](const Member& m) { return m.sendProxy ? name(kProxyVersions, *m.sendProxy) : "(pool's)"; }},
};

// name, type and port are the entry's identity: see discoverLines().
const Field<Discover> kDiscoverFields[] = {
    {"interval", [](const Discover& d) { return duration(d.interval); }},
    {"remove_grace", [](const Discover& d) { return durationOr(d.removeGrace, "(one interval)"); }},
};

const Field<Health> kHealthFields[] = {
    {"kind", [](const Health& h) { return name(kHealthKinds, h.kind); }},
    {"interval", [](const Health& h) { return duration(h.interval); }},
    {"timeout", [](const Health& h) { return duration(h.timeout); }},
    {"rise", [](const Health& h) { return fmt::format("{}", h.rise); }},
    {"fall", [](const Health& h) { return fmt::format("{}", h.fall); }},
    {"path", [](const Health& h) { return quoted(h.path); }},
    {"expect_status", [](const Health& h) { return fmt::format("[{}]", fmt::join(h.expectStatus, ", ")); }},
    {"host", [](const Health& h) { return h.host.empty() ? std::string("(the address)") : quoted(h.host); }},
    {"down_interval", [](const Health& h) { return durationOr(h.downInterval, "(interval)"); }},
    {"passive_fall", [](const Health& h) { return numberOr(h.passiveFall, "off"); }},
    {"on_down", [](const Health& h) { return name(kOnDown, h.onDown); }},
};

const Field<PoolTls> kPoolTlsFields[] = {
    {"server_name",
     [](const PoolTls& t) { return t.serverName.empty() ? std::string("(none)") : shown(t.serverName); }},
    {"ca", [](const PoolTls& t) { return filePathOr(t.ca, "(system default)"); }},
    {"verify", [](const PoolTls& t) { return fmt::format("{}", t.verify); }},
    {"cert",
     [](const PoolTls& t) { return t.clientCertificate ? filePath(t.clientCertificate->cert) : "(none)"; }},
    {"key", [](const PoolTls& t) { return t.clientCertificate ? filePath(t.clientCertificate->key) : "(none)"; }},
};

// One line "PREFIXkey old -> new" per field that differs.
template <typename T, size_t N>
void compare(const Field<T> (&fields)[N], const T& before, const T& after, std::string_view prefix,
             std::vector<std::string>& out) {
  for (const Field<T>& field : fields) {
    std::string old = field.show(before);
    std::string now = field.show(after);
    if (old == now) continue;
    if (field.secret)
      out.push_back(fmt::format("{}{} changed{}", prefix, field.key, field.note));
    else
      out.push_back(fmt::format("{}{} {} -> {}{}", prefix, field.key, old, now, field.note));
  }
}

template <typename T>
const T* findByName(const std::vector<T>& items, const std::string& wanted) {
  for (const T& item : items)
    if (item.name == wanted) return &item;
  return nullptr;
}

std::string listenerTlsSummary(const ListenerTls& t) {
  size_t count = t.certificates.size();
  return fmt::format("{} certificate{}, min_version {}", count, count == 1 ? "" : "s",
                     name(kTlsVersions, t.minVersion));
}

void listenerTlsLines(const Listener& before, const Listener& after, const std::string& prefix,
                      std::vector<std::string>& out) {
  if (before.tls && !after.tls)
    out.push_back(fmt::format("{}- tls ({})", prefix, listenerTlsSummary(*before.tls)));
  else if (!before.tls && after.tls)
    out.push_back(fmt::format("{}+ tls ({})", prefix, listenerTlsSummary(*after.tls)));
  else if (before.tls && after.tls)
    compare(kListenerTlsFields, *before.tls, *after.tls, prefix + "tls ", out);
}

// Server names are unique within a listener, so its routes are a map from
// name to pool, and the order of [[listener.route]] tables means nothing.
// A name without a route goes to the listener's pool: "(default)".
void routeLines(const Listener& before, const Listener& after, const std::string& prefix,
                std::vector<std::string>& out) {
  auto poolsByName = [](const Listener& l) {
    std::map<std::string, std::string, std::less<>> pools;
    for (const Route& route : l.routes)
      for (const std::string& serverName : route.serverNames) pools.emplace(serverName, route.pool);
    return pools;
  };
  auto old = poolsByName(before);
  auto now = poolsByName(after);
  auto poolOf = [](const auto& pools, const std::string& serverName) {
    auto it = pools.find(serverName);
    return it == pools.end() ? std::string("(default)") : shown(it->second);
  };
  std::set<std::string, std::less<>> names;  // both sides, sorted
  for (const auto& entry : old) names.insert(entry.first);
  for (const auto& entry : now) names.insert(entry.first);
  for (const std::string& serverName : names) {
    std::string was = poolOf(old, serverName);
    std::string is = poolOf(now, serverName);
    if (was != is) out.push_back(fmt::format("{}route {}: {} -> {}", prefix, shown(serverName), was, is));
  }
}

void listenerLines(const Config& before, const Config& after, std::vector<std::string>& out) {
  auto sameSocket = [](const Listener* a, const Listener& b) { return a && a->bind.text == b.bind.text; };
  for (const Listener& l : after.listeners) {
    const Listener* old = findByName(before.listeners, l.name);
    if (!sameSocket(old, l))
      out.push_back(fmt::format("+ listener {} on {} -> pool {}", shown(l.name), l.bind.text, shown(l.pool)));
  }
  for (const Listener& l : before.listeners)
    if (!sameSocket(findByName(after.listeners, l.name), l))
      out.push_back(fmt::format("- listener {} on {}", shown(l.name), l.bind.text));
  // TLS and routes apply to the connections a listener accepts next: its
  // socket stays.
  for (const Listener& l : after.listeners) {
    const Listener* old = findByName(before.listeners, l.name);
    if (!sameSocket(old, l)) continue;
    std::string prefix = fmt::format("~ listener {} ", shown(l.name));
    compare(kListenerFields, *old, l, prefix, out);
    listenerTlsLines(*old, l, prefix, out);
    routeLines(*old, l, prefix, out);
  }
}

std::string healthSummary(const Health& h) {
  return fmt::format("{} every {}", name(kHealthKinds, h.kind), duration(h.interval));
}

std::string poolTlsSummary(const PoolTls& t) {
  std::string serverName =
      t.serverName.empty() ? std::string() : fmt::format("server_name {}, ", shown(t.serverName));
  return fmt::format("{}verify {}{}", serverName, t.verify, t.clientCertificate ? ", client certificate" : "");
}

void memberLines(const Pool& before, const Pool& after, std::vector<std::string>& out) {
  std::vector<std::string> changed;
  for (const Member& m : after.members) {
    if (const Member* old = findByName(before.members, m.name))
      compare(kMemberFields, *old, m, fmt::format("~ member {} ", shown(m.name)), changed);
    else
      out.push_back(fmt::format("+ member {} ({})", shown(m.name), m.address.text));
  }
  for (const Member& m : before.members)
    if (!findByName(after.members, m.name))
      out.push_back(fmt::format("- member {} ({})", shown(m.name), m.address.text));
  out.insert(out.end(), std::make_move_iterator(changed.begin()), std::make_move_iterator(changed.end()));
}

// "NAME TYPE port PORT", or "NAME SRV": an entry is the same one across a
// reload (and keeps its members) only when all three are.
std::string discoverIdentity(const Discover& d) {
  if (d.type == DiscoverType::SRV) return fmt::format("{} SRV", shown(d.name));
  return fmt::format("{} {} port {}", shown(d.name), name(kDiscoverTypes, d.type), d.port);
}

const Discover* findDiscover(const std::vector<Discover>& entries, const std::string& identity) {
  for (const Discover& d : entries)
    if (discoverIdentity(d) == identity) return &d;
  return nullptr;
}

void discoverLines(const Pool& before, const Pool& after, std::vector<std::string>& out) {
  std::vector<std::string> changed;
  for (const Discover& d : after.discover) {
    std::string identity = discoverIdentity(d);
    if (const Discover* old = findDiscover(before.discover, identity))
      compare(kDiscoverFields, *old, d, fmt::format("~ discover {} ", identity), changed);
    else
      out.push_back(fmt::format("+ discover {} (every {})", identity, duration(d.interval)));
  }
  for (const Discover& d : before.discover)
    if (!findDiscover(after.discover, discoverIdentity(d)))
      out.push_back(fmt::format("- discover {}", discoverIdentity(d)));
  out.insert(out.end(), std::make_move_iterator(changed.begin()), std::make_move_iterator(changed.end()));
}

std::vector<std::string> poolChanges(const Pool& before, const Pool& after) {
  std::vector<std::string> out;
  compare(kPoolFields, before, after, "", out);
  if (before.health && !after.health) {
    out.push_back(fmt::format("- health ({})", healthSummary(*before.health)));
  } else if (!before.health && after.health) {
    out.push_back(fmt::format("+ health ({})", healthSummary(*after.health)));
  } else if (before.health && after.health) {
    compare(kHealthFields, *before.health, *after.health, "health ", out);
  }
  if (before.tls && !after.tls)
    out.push_back(fmt::format("- tls ({})", poolTlsSummary(*before.tls)));
  else if (!before.tls && after.tls)
    out.push_back(fmt::format("+ tls ({})", poolTlsSummary(*after.tls)));
  else if (before.tls && after.tls)
    compare(kPoolTlsFields, *before.tls, *after.tls, "tls ", out);
  memberLines(before, after, out);
  discoverLines(before, after, out);
  return out;
}

}  // namespace

std::vector<Error> reloadRefusals(const Config& before, const Config& after) {
  struct Account {
    std::string_view key;
    const std::string& was;
    const std::string& is;
    Position at;
  };
  const Account accounts[] = {
      {"user", before.global.user, after.global.user, after.global.userPosition},
      {"group", before.global.group, after.global.group, after.global.groupPosition},
  };
  std::vector<Error> errors;
  for (const Account& a : accounts) {
    if (a.was == a.is) continue;
    errors.push_back(Error{after.sourceName, a.at.line, a.at.column,
                           fmt::format(R"([global] "{}" cannot change on a reload ({} -> {}): restart ringlb )"
                                       R"(to apply it)",
                                       a.key, quotedOr(a.was, "unset"), quotedOr(a.is, "unset"))});
  }
  return errors;
}

Difference difference(const Config& before, const Config& after) {
  Difference result;
  compare(kGlobalFields, before.global, after.global, "[global] ", result.process);
  compare(kDnsFields, before.global.dns, after.global.dns, "[global.dns] ", result.process);
  compare(kAdminFields, before.admin, after.admin, "[admin] ", result.process);
  listenerLines(before, after, result.listeners);
  for (const Pool& pool : after.pools) {
    if (const Pool* old = findByName(before.pools, pool.name))
      result.pools.push_back({pool.name, PoolDifference::Kind::Kept, poolChanges(*old, pool)});
    else
      result.pools.push_back({pool.name, PoolDifference::Kind::Added, {}});
  }
  for (const Pool& pool : before.pools)
    if (!findByName(after.pools, pool.name))
      result.pools.push_back({pool.name, PoolDifference::Kind::Removed, {}});
  return result;
}

}  // namespace config
