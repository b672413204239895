// Turns a parsed TOML document into a Config, checking the whole schema.
// Every problem is recorded; a Config is produced only when there are none.

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "config/admin_token.h"
#include "config/choices.h"
#include "config/config.h"
#include "config/discover_loader.h"
#include "config/edge_loader.h"
#include "config/keys.h"
#include "config/shared_limits.h"
#include "config/tls_loader.h"
#include "config/toml_reader.h"

namespace config {
namespace {

constexpr std::string_view kTopLevelTables = "[global], [admin], [[listener]] or [pool.NAME]";

class Loader {
 public:
  Loader(const std::string& file, std::string baseDirectory)
      : reader_(file), baseDirectory_(baseDirectory), tls_(reader_, std::move(baseDirectory), poolNames_),
        edge_(reader_), discover_(reader_) {
    config_.sourceName = file;
  }

  LoadResult load(const toml::table& root);

 private:
  void checkTopLevelKeys(const toml::table& root);
  void loadGlobal(const toml::table& table);
  void readAccountName(const toml::table& table, std::string_view key, std::string& out, Position& at);
  void loadAdmin(const toml::table& table);
  void readAdminTokenFile(const toml::table& table);
  void loadPools(const toml::table& pools);
  void loadPool(const std::string& name, const toml::table& table);
  void loadMembers(Pool& pool, const toml::table& poolTable);
  void loadMember(Pool& pool, const toml::table& table, FirstSeen& names, FirstSeen& addresses);
  void loadHealth(Pool& pool, const toml::table& table, bool poolHasTls);
  void readHealthHost(const toml::table& table, std::string& out);
  void readHealthAddress(Member& member, const toml::table& table);
  void checkConsistentHash(Pool& pool, const toml::table& table);
  void readHealthPath(const toml::table& table, std::string& out);
  void readExpectStatus(const toml::table& table, std::vector<int>& out);
  void loadListeners(const toml::table& root);
  void loadListener(const toml::table& table);
  void checkListenerPool(const Listener& listener, const toml::node& poolNode);
  void checkAdminListen();

  TomlReader reader_;
  std::string baseDirectory_;
  Config config_;
  std::vector<Error> warnings_;
  std::set<std::string, std::less<>> poolNames_;  // every [pool.NAME], even invalid ones
  FirstSeen listenerNames_;
  FirstSeen listenerBinds_;
  const toml::node* adminListen_ = nullptr;  // the [admin] listen value, when valid
  TlsLoader tls_;
  EdgeLoader edge_;
  DiscoverLoader discover_;
};

LoadResult Loader::load(const toml::table& root) {
  checkTopLevelKeys(root);
  if (const toml::table* global = reader_.tableAt(root, "global", "[global]")) loadGlobal(*global);
  if (const toml::table* admin = reader_.tableAt(root, "admin", "[admin]")) loadAdmin(*admin);
  if (const toml::table* pools = reader_.tableAt(root, "pool", "[pool.NAME]")) loadPools(*pools);
  loadListeners(root);  // after the pools, which listeners refer to
  checkAdminListen();
  LoadResult result;
  result.errors = reader_.takeErrors();
  result.warnings = std::move(warnings_);
  if (result.errors.empty()) result.config = std::move(config_);
  return result;
}

void Loader::checkTopLevelKeys(const toml::table& root) {
  for (auto&& [key, value] : root) {
    std::string_view name = key.str();
    if (name == "global" || name == "admin" || name == "listener" || name == "pool") continue;
    const toml::array* array = value.as_array();
    bool tableArray = array != nullptr && !array->empty() && array->is_array_of_tables();
    if (value.is_table() || tableArray) {
      std::string_view open = tableArray ? "[[" : "[";
      std::string_view close = tableArray ? "]]" : "]";
      reader_.error(key.source(), fmt::format("unknown table {}{}{} (expected {})", open, printable(name),
                                              close, kTopLevelTables));
    } else {
      reader_.error(key.source(), fmt::format(R"(unknown top-level key "{}" (expected {}))", printable(name),
                                              kTopLevelTables));
    }
  }
}

void Loader::loadGlobal(const toml::table& table) {
  reader_.checkKeys(table, keys::kGlobal, "[global]");
  Global& global = config_.global;
  reader_.readInt(table, "workers", 1, 1024, global.workers);
  reader_.readEnum(table, "log_level", "log_level", kLogLevels, global.logLevel);
  reader_.readNonEmptyString(table, "access_log", global.accessLog);
  reader_.readDuration(table, "shutdown_timeout", global.shutdownTimeout);
  reader_.readDuration(table, "removed_member_timeout", global.removedMemberTimeout);
  reader_.readDuration(table, "upgrade_timeout", global.upgradeTimeout);
  readAccountName(table, "user", global.user, global.userPosition);
  readAccountName(table, "group", global.group, global.groupPosition);
  // Its sessions' descriptors (lb/descriptor_budget.h) must still fit an int.
  reader_.readInt(table, "max_connections", 1, 100'000'000, global.maxConnections);
  reader_.readInt(table, "source_table_size", 16, 16'777'216, global.sourceTableSize);
  discover_.loadDns(table, global.dns);
}

// A user or group name goes to getpwnam()/getgrnam() as a C string: a NUL
// would cut it to another name.
void Loader::readAccountName(const toml::table& table, std::string_view key, std::string& out, Position& at) {
  std::string name;
  if (!reader_.readNonEmptyString(table, key, name)) return;
  const toml::node& node = *table.get(key);
  if (name.find('\0') != std::string::npos) {
    reader_.error(node, fmt::format(R"("{}" must not contain a NUL character)", key));
    return;
  }
  out = std::move(name);
  at = Position{static_cast<int>(node.source().begin.line), static_cast<int>(node.source().begin.column)};
}

void Loader::loadAdmin(const toml::table& table) {
  reader_.checkKeys(table, keys::kAdmin, "[admin]");
  Admin& admin = config_.admin;
  Address listen;
  if (reader_.readAddress(table, "listen", listen)) {
    admin.listen = std::move(listen);
    adminListen_ = table.get("listen");
  }
  reader_.readString(table, "token", admin.token);
  readAdminTokenFile(table);
  reader_.readBool(table, "require_token_for_reads", admin.requireTokenForReads);
  reader_.readDuration(table, "reload_min_interval", admin.reloadMinInterval);
  bool hasToken = !admin.token.empty() || table.contains("token_file");
  if (admin.requireTokenForReads && !hasToken)
    reader_.error(*table.get("require_token_for_reads"),
                  R"("require_token_for_reads" needs a "token" or "token_file")");
  // Off loopback, anyone who can reach the port could drain members and
  // reload: a token is required there.
  if (adminListen_ && !isLoopback(*admin.listen) && !hasToken)
    reader_.error(*adminListen_,
                  fmt::format(R"([admin] listen {} is not a loopback address: it needs a non-empty "token" or )"
                              R"("token_file")",
                              admin.listen->text));
}

// token_file: read now, so --check, a start and each reload see the file as
// it is then; relative to the config file's directory.
void Loader::readAdminTokenFile(const toml::table& table) {
  std::string text;
  if (!reader_.readNonEmptyString(table, "token_file", text)) return;
  const toml::node& node = *table.get("token_file");
  if (table.contains("token")) {
    reader_.error(node, R"("token_file" and "token" are exclusive: set one)");
    return;
  }
  std::filesystem::path path(text);
  FilePath file{path.is_absolute() ? text : (std::filesystem::path(baseDirectory_) / path).string(),
                Position{static_cast<int>(node.source().begin.line), static_cast<int>(node.source().begin.column)}};
  TokenFile read = readTokenFile(file.path);
  if (!read.error.empty()) {
    reader_.error(node, read.error);
    return;
  }
  if (!read.warning.empty())
    warnings_.push_back(Error{config_.sourceName, file.position.line, file.position.column, read.warning});
  config_.admin.token = std::move(read.token);
  config_.admin.tokenFile = std::move(file);
}

// Pools keep the order of their tables in the file (a TOML table is a map).
void Loader::loadPools(const toml::table& pools) {
  std::vector<std::pair<std::string, const toml::table*>> ordered;
  for (auto&& [key, value] : pools) {
    std::string name(key.str());
    poolNames_.insert(name);
    if (name.empty()) reader_.error(key.source(), "pool name must not be empty");
    if (const toml::table* table = reader_.tableAt(pools, name, fmt::format("[pool.{}]", printable(name))))
      ordered.emplace_back(name, table);
  }
  auto position = [](const toml::table* table) {
    const toml::source_position& begin = table->source().begin;
    return std::pair(begin.line, begin.column);
  };
  std::stable_sort(ordered.begin(), ordered.end(), [&](const auto& a, const auto& b) {
    return position(a.second) < position(b.second);
  });
  for (const auto& [name, table] : ordered) loadPool(name, *table);
}

void Loader::loadPool(const std::string& name, const toml::table& table) {
  reader_.checkKeys(table, keys::kPool, fmt::format("[pool.{}]", printable(name)));
  Pool pool;
  pool.name = name;
  reader_.readEnum(table, "balance", "balance", kBalances, pool.balance);
  reader_.readEnum(table, "hash_key", "hash_key", kHashKeys, pool.hashKey);
  reader_.readDuration(table, "connect_timeout", pool.connectTimeout);
  reader_.readInt(table, "retries", 0, 16, pool.retries);
  reader_.readEnum(table, "when_all_down", "when_all_down", kWhenAllDown, pool.whenAllDown);
  reader_.readEnum(table, "send_proxy", "send_proxy", kProxyVersions, pool.sendProxy);
  pool.discover = discover_.loadDiscover(table, name);
  loadMembers(pool, table);
  checkConsistentHash(pool, table);
  std::string tlsHeader = fmt::format("[pool.{}.tls]", printable(name));
  if (const toml::table* tls = reader_.tableAt(table, "tls", tlsHeader)) pool.tls = tls_.loadPoolTls(*tls, name);
  std::string healthHeader = fmt::format("[pool.{}.health]", printable(name));
  if (const toml::table* health = reader_.tableAt(table, "health", healthHeader))
    loadHealth(pool, *health, table.contains("tls"));
  config_.pools.push_back(std::move(pool));
}

// A pool needs members: written in the file, or found in DNS by its
// [[pool.NAME.discover]] entries (which may find none for a while; the pool
// then refuses connections as when every member is down).
void Loader::loadMembers(Pool& pool, const toml::table& poolTable) {
  std::string header = fmt::format("[[pool.{}.member]]", printable(pool.name));
  const toml::node* node = poolTable.get("member");
  const toml::array* members = reader_.tableArrayAt(poolTable, "member", header);
  auto isEmptyArray = [](const toml::node* n) { return n && n->is_array() && n->as_array()->empty(); };
  const toml::node* discover = poolTable.get("discover");
  bool noStatic = node == nullptr || isEmptyArray(node);
  bool noDiscover = discover == nullptr || isEmptyArray(discover);
  if (noStatic && noDiscover) {
    reader_.error(node ? *node : discover ? *discover : poolTable,
                  fmt::format(R"(pool "{}" has no members (add a {} or a [[pool.{}.discover]] table))",
                              printable(pool.name), header, printable(pool.name)));
  }
  if (members == nullptr) return;
  FirstSeen names;
  FirstSeen addresses;
  for (const toml::node& member : *members) loadMember(pool, *member.as_table(), names, addresses);
}

void Loader::loadMember(Pool& pool, const toml::table& table, FirstSeen& names,
                        FirstSeen& addresses) {
  std::string where = fmt::format("[[pool.{}.member]]", printable(pool.name));
  reader_.checkKeys(table, keys::kMember, where);
  Member member;
  std::string context = fmt::format(R"( in pool "{}")", printable(pool.name));
  bool hasName = table.contains("name");
  bool named = reader_.readNonEmptyString(table, "name", member.name);
  bool addressed = reader_.require(table, "address", where) &&
                   reader_.readAddress(table, "address", member.address);
  reader_.readInt(table, "weight", 1, 256, member.weight);
  reader_.readBool(table, "backup", member.backup);
  ProxyVersion sendProxy = ProxyVersion::Off;
  if (reader_.readEnum(table, "send_proxy", "send_proxy", kProxyVersions, sendProxy)) member.sendProxy = sendProxy;
  if (addressed) readHealthAddress(member, table);
  bool sameAddress = addressed && reader_.isDuplicate(addresses, member.address.text,
                                                      *table.get("address"), "member address", context);
  if (named) {
    reader_.isDuplicate(names, member.name, *table.get("name"), "member name", context);
  } else if (!hasName && addressed) {
    member.name = member.address.text;
    // A repeated address has been reported already; its default name would repeat too.
    if (!sameAddress)
      reader_.isDuplicate(names, member.name, *table.get("address"), "member name", context);
  }
  pool.members.push_back(std::move(member));
}

void Loader::loadHealth(Pool& pool, const toml::table& table, bool poolHasTls) {
  reader_.checkKeys(table, keys::kHealth, fmt::format("[pool.{}.health]", printable(pool.name)));
  Health health;
  if (reader_.readEnum(table, "kind", "health kind", kHealthKinds, health.kind) && !poolHasTls &&
      (health.kind == HealthKind::Tls || health.kind == HealthKind::Https)) {
    reader_.error(*table.get("kind"),
                  fmt::format(R"(health kind "{}" needs a [pool.{}.tls] table (the TLS settings probes use))",
                              nameOf(kHealthKinds, health.kind), printable(pool.name)));
  }
  reader_.readDuration(table, "interval", health.interval);
  reader_.readDuration(table, "timeout", health.timeout);
  reader_.readInt(table, "rise", 1, 100, health.rise);
  reader_.readInt(table, "fall", 1, 100, health.fall);
  readHealthPath(table, health.path);
  readExpectStatus(table, health.expectStatus);
  readHealthHost(table, health.host);
  reader_.readDuration(table, "down_interval", health.downInterval);
  reader_.readInt(table, "passive_fall", 0, 100, health.passiveFall);
  reader_.readEnum(table, "on_down", "on_down", kOnDown, health.onDown);
  pool.health = std::move(health);
}

// The Host header value goes into the request as one token.
void Loader::readHealthHost(const toml::table& table, std::string& out) {
  std::string host;
  if (!reader_.readNonEmptyString(table, "host", host)) return;
  bool printable = std::all_of(host.begin(), host.end(), [](char c) { return c > ' ' && c < 127; });
  if (!printable) {
    reader_.error(*table.get("host"), R"("host" must not contain spaces or control characters)");
    return;
  }
  out = std::move(host);
}

// health_address (an IP, no port) and health_port replace the parts of the
// member's address that probes use.
void Loader::readHealthAddress(Member& member, const toml::table& table) {
  std::string ip;
  int port = member.address.port();
  bool hasIp = reader_.readNonEmptyString(table, "health_address", ip);
  bool hasPort = reader_.readInt(table, "health_port", 1, 65535, port);
  if (!hasIp && !hasPort) return;
  if (!hasIp) {
    std::string text = member.address.text;
    ip = text.substr(0, text.rfind(':'));
  } else if (ip.find(':') != std::string::npos && ip.front() != '[') {
    ip = fmt::format("[{}]", ip);
  }
  std::string why;
  auto address = parseAddress(fmt::format("{}:{}", ip, port), &why);
  if (!address) {
    reader_.error(*table.get(hasIp ? "health_address" : "health_port"),
                  fmt::format(R"("health_address": {})", why));
    return;
  }
  member.healthAddress = std::move(address);
}

namespace {
bool isPrime(uint64_t n) {
  if (n < 2) return false;
  for (uint64_t d = 2; d * d <= n; ++d)
    if (n % d == 0) return false;
  return true;
}
}  // namespace

// Maglev needs a prime table, comfortably larger than the member count, so
// that every member gets slots in proportion to its weight.
void Loader::checkConsistentHash(Pool& pool, const toml::table& table) {
  int size = static_cast<int>(pool.tableSize);
  if (!table.contains("table_size")) {
    // Unset: 65537, or the first prime above 100 x members for big pools.
    uint64_t wanted = std::max<uint64_t>(pool.tableSize, 100 * pool.members.size());
    while (!isPrime(wanted)) ++wanted;
    pool.tableSize = static_cast<uint32_t>(wanted);
  } else if (reader_.readInt(table, "table_size", 3, 16777213, size)) {
    const toml::node& node = *table.get("table_size");
    if (!isPrime(static_cast<uint64_t>(size))) {
      uint64_t next = static_cast<uint64_t>(size) + 1;
      while (!isPrime(next)) ++next;
      reader_.error(node, fmt::format(R"("table_size" must be a prime number, got {} (try {}))", size, next));
    } else if (static_cast<size_t>(size) < 100 * pool.members.size()) {
      // Only the static members are known here: discovered ones are checked
      // against the table size when they arrive.
      std::string_view which = pool.discover.empty() ? "" : "static ";
      reader_.error(node, fmt::format(R"("table_size" must be at least 100 x the {} {}members, got {})",
                                      pool.members.size(), which, size));
    } else {
      pool.tableSize = static_cast<uint32_t>(size);
    }
  }
  double factor = 0;
  if (reader_.readNumber(table, "hash_balance_factor", factor)) {
    if (factor != 0 && !(factor >= kMinHashBalanceFactor && factor <= kMaxHashBalanceFactor))
      reader_.error(*table.get("hash_balance_factor"),
                    fmt::format(R"("hash_balance_factor" must be 0 (off) or from {} to {}, got {})",
                                kMinHashBalanceFactor, kMaxHashBalanceFactor, factor));
    else
      pool.hashBalanceFactor = factor;
  }
}

// The path goes into an HTTP request line, so it must be one token.
void Loader::readHealthPath(const toml::table& table, std::string& out) {
  std::string path;
  if (!reader_.readString(table, "path", path)) return;
  const toml::node& node = *table.get("path");
  if (path.empty() || path.front() != '/') {
    reader_.error(node, fmt::format(R"("path" must start with "/", got "{}")", printable(path)));
    return;
  }
  bool printable = std::all_of(path.begin(), path.end(), [](char c) { return c > ' ' && c < 127; });
  if (!printable) {
    reader_.error(node, R"("path" must not contain spaces or control characters)");
    return;
  }
  out = std::move(path);
}

void Loader::readExpectStatus(const toml::table& table, std::vector<int>& out) {
  const toml::node* node = table.get("expect_status");
  if (node == nullptr) return;
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    reader_.error(*node, fmt::format(R"("expect_status" must be an array such as [200], got {})",
                                     typeName(node->type())));
    return;
  }
  if (array->empty()) {
    reader_.error(*node, R"("expect_status" must not be empty)");
    return;
  }
  std::vector<int> codes;
  for (const toml::node& element : *array) {
    const toml::value<int64_t>* code = element.as_integer();
    if (code != nullptr && code->get() >= 100 && code->get() <= 599) {
      codes.push_back(static_cast<int>(code->get()));
      continue;
    }
    std::string got = code ? std::to_string(code->get()) : std::string(typeName(element.type()));
    reader_.error(
        element,
        fmt::format(R"("expect_status" entries must be integers from 100 to 599, got {})", got));
  }
  if (codes.size() == array->size()) out = std::move(codes);
}

void Loader::loadListeners(const toml::table& root) {
  const toml::node* node = root.get("listener");
  const toml::array* listeners = reader_.tableArrayAt(root, "listener", "[[listener]]");
  if (node == nullptr) reader_.errorWithoutPosition("no [[listener]] defined");
  if (listeners == nullptr) return;
  if (listeners->empty()) reader_.error(*node, "no [[listener]] defined");
  for (const toml::node& listener : *listeners) loadListener(*listener.as_table());
}

void Loader::loadListener(const toml::table& table) {
  constexpr std::string_view where = "[[listener]]";
  reader_.checkKeys(table, keys::kListener, where);
  Listener listener;
  if (reader_.require(table, "name", where) &&
      reader_.readNonEmptyString(table, "name", listener.name)) {
    reader_.isDuplicate(listenerNames_, listener.name, *table.get("name"), "listener name", "");
  }
  if (reader_.require(table, "bind", where) && reader_.readAddress(table, "bind", listener.bind))
    reader_.isDuplicate(listenerBinds_, listener.bind.text, *table.get("bind"), "listener bind address",
                "");
  if (reader_.require(table, "pool", where) &&
      reader_.readNonEmptyString(table, "pool", listener.pool)) {
    checkListenerPool(listener, *table.get("pool"));
  }
  reader_.readInt(table, "max_connections", 1, 1'000'000, listener.maxConnections);
  reader_.readDuration(table, "idle_timeout", listener.idleTimeout);
  reader_.readDuration(table, "preread_timeout", listener.prereadTimeout);
  if (const toml::table* tls = reader_.tableAt(table, "tls", "[listener.tls]"))
    listener.tls = tls_.loadListenerTls(*tls);
  listener.routes = tls_.loadRoutes(table, listener.name);
  edge_.loadListenerEdge(table, listener);
  config_.listeners.push_back(std::move(listener));
}

void Loader::checkListenerPool(const Listener& listener, const toml::node& poolNode) {
  if (poolNames_.count(listener.pool) != 0) return;
  std::string who =
      listener.name.empty() ? "listener" : fmt::format(R"(listener "{}")", printable(listener.name));
  reader_.error(poolNode,
                fmt::format(R"({} names pool "{}", which is not defined)", who, printable(listener.pool)));
}

namespace {
bool isWildcard(const Address& address) {
  if (address.family() == AF_INET)
    return reinterpret_cast<const sockaddr_in*>(address.sockaddrPtr())->sin_addr.s_addr == INADDR_ANY;
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(address.sockaddrPtr());
  return IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
}

// True when `wide` is a wildcard that takes connections for `other` too
// ("[::]" also takes IPv4, as ringlb leaves IPV6_V6ONLY off).
bool covers(const Address& wide, const Address& other) {
  return isWildcard(wide) && (wide.family() == other.family() || wide.family() == AF_INET6);
}

// True when sockets bound to both could not coexist without SO_REUSEPORT.
bool overlaps(const Address& a, const Address& b) {
  return a.port() == b.port() && (a.text == b.text || covers(a, b) || covers(b, a));
}
}  // namespace

// The admin endpoint binds its own socket, without SO_REUSEPORT: on a
// listener's address it could not start (or would take that listener's
// connections), so --check refuses it already.
void Loader::checkAdminListen() {
  if (adminListen_ == nullptr) return;
  const Address& admin = *config_.admin.listen;
  for (const Listener& listener : config_.listeners) {
    if (!overlaps(admin, listener.bind)) continue;
    reader_.error(*adminListen_,
                  fmt::format(R"([admin] listen {} collides with listener "{}" (bind = "{}"))",
                              admin.text, printable(listener.name), listener.bind.text));
    return;
  }
}

// toml++ reports the end of a file that ends in a newline as the column
// after that newline, on the line it ends; keep the column on that line
// (at most its length in characters + 1, as toml++ counts columns).
int columnOnText(std::string_view text, const toml::source_position& at) {
  size_t start = 0;
  for (uint32_t line = 1; line < at.line; ++line) {
    size_t newline = text.find('\n', start);
    if (newline == std::string_view::npos) return static_cast<int>(at.column);
    start = newline + 1;
  }
  std::string_view line = text.substr(start, text.find('\n', start) - start);
  size_t characters = std::count_if(line.begin(), line.end(),
                                    [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; });
  return static_cast<int>(std::min<size_t>(at.column, characters + 1));
}

}  // namespace

// toml++'s own messages quote the source they stopped at.
constexpr size_t kMaxParserMessageChars = 200;

LoadResult loadString(std::string_view text, std::string_view sourceName, std::string_view baseDirectory) {
  std::string file(sourceName);
  toml::table root;
  try {
    root = toml::parse(text, sourceName);
  } catch (const toml::parse_error& e) {
    const toml::source_position& begin = e.source().begin;
    LoadResult result;
    result.errors.push_back(Error{file, static_cast<int>(begin.line),
                                  columnOnText(text, begin),
                                  printable(e.description(), kMaxParserMessageChars)});
    return result;
  }
  return Loader(file, std::string(baseDirectory)).load(root);
}

}  // namespace config
