#pragma once
// The validated, typed form of ringlb's TOML file (format: README "Config").
// Everything here is plain data: loading never binds, connects or resolves.

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace config {

using Duration = std::chrono::milliseconds;

// A numeric socket address ("127.0.0.1:9001" or "[::1]:9001").
struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  std::string text;  // as written in the file, normalised ("ip:port" / "[ip]:port")

  const sockaddr* sockaddrPtr() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  uint16_t port() const;
};

// Parses "a.b.c.d:port" or "[v6]:port"; returns an explanation on failure.
std::optional<Address> parseAddress(std::string_view text, std::string* whyNot);
// Parses "250ms", "2s", "1m", "1h" (a non-negative integer and a unit).
std::optional<Duration> parseDuration(std::string_view text, std::string* whyNot);

enum class LogLevel { Error, Warn, Info, Debug };
enum class Balance { RoundRobin, LeastConn, ConsistentHash, RandomTwo };
enum class HashKey { SourceIp, SourceIpPort };
enum class WhenAllDown { Reject, UseAll };
enum class HealthKind { Tcp, Http, Tls, Https };  // tls: a verified handshake; https: http over TLS
enum class OnDown { Keep, Close };  // established sessions when their member goes down
enum class ProxyVersion { Off, V1, V2 };        // send_proxy: the PROXY header written to members
enum class AcceptProxy { Off, V1, V2, Any };    // accept_proxy: the header required from proxy_from
enum class DiscoverType { A, AAAA, SRV };       // [[pool.NAME.discover]] type

std::string_view toString(Balance);
std::string_view toString(LogLevel);

// Where a key was written, for errors found after loading (a certificate
// that does not parse names the file and the key's line and column).
struct Position {
  int line = 0;
  int column = 0;
};

struct Global {
  int workers = 0;  // 0: one per online CPU
  LogLevel logLevel = LogLevel::Info;
  std::string accessLog = "stdout";  // a path, "stdout" or "off"
  Duration shutdownTimeout = std::chrono::seconds(30);
  // After a reload removes a member, its sessions are closed once this has
  // passed; zero (unset): they run until they end on their own.
  Duration removedMemberTimeout{0};
  // upgrade_timeout: how long a process started by SIGUSR2 may take to say
  // it is ready; then it is killed and this one serves on.
  Duration upgradeTimeout = std::chrono::seconds(60);
  // Started as root: after binding and opening every file, drop to these
  // (empty: stay; `user` alone also takes that user's primary group).
  std::string user;
  std::string group;
  // Where user and group were written (zero: not in the file), for the
  // error that refuses a reload changing them.
  Position userPosition;
  Position groupPosition;
  // All listeners' sessions together; 0 (unset): derived from RLIMIT_NOFILE
  // after it is raised to its hard limit (a session costs up to two sockets
  // and a pipe pair).
  int maxConnections = 0;
  // Sources tracked by each listener's per-source limits (idle entries are
  // evicted first; when full of active sources a new source is refused).
  int sourceTableSize = 65536;
  // [global.dns]: how discovery asks (DESIGN "Config, part 2").
  struct Dns {
    // servers: "ip:port" or "ip" (port 53); empty: those of /etc/resolv.conf.
    std::vector<Address> servers;
    Duration timeout = std::chrono::seconds(2);  // timeout: one attempt at one server
    int attempts = 2;                            // attempts: tries per server before giving up
    // min_interval: the floor between two resolutions of one name, whatever
    // a record's TTL says (protects the DNS server from TTL 0 answers).
    Duration minInterval = std::chrono::seconds(1);
    Position position;  // of the [global.dns] table; zero when absent
  } dns;
};


// A file named in the config: `path` is resolved against the config file's
// directory when relative; `position` is the key's.
struct FilePath {
  std::string path;
  Position position;
};

struct Admin {
  std::optional<Address> listen;  // absent: no admin endpoint
  std::string token;              // empty: no token required (loopback only); from token_file when set
  // token_file: the token read from this file (trailing newline dropped);
  // exclusive with `token`.
  std::optional<FilePath> tokenFile;
  bool requireTokenForReads = false;              // require_token_for_reads: GETs need it too
  Duration reloadMinInterval = std::chrono::seconds(1);  // reload_min_interval: admin reloads at most this often
};

enum class TlsVersion { V1_2, V1_3 };
enum class VerifyClient { None, Optional, Required };

struct CertificateFiles {
  FilePath cert;  // PEM: the certificate, then its chain
  FilePath key;   // PEM: RSA or ECDSA private key
};

// [listener.tls]: terminate TLS on this listener.
struct ListenerTls {
  std::vector<CertificateFiles> certificates;  // at least one; the first is the default
  TlsVersion minVersion = TlsVersion::V1_2;
  std::vector<std::string> alpn;               // offered in this order
  std::optional<FilePath> clientCa;
  VerifyClient verifyClient = VerifyClient::None;  // optional/required need client_ca
  Duration handshakeTimeout = std::chrono::seconds(10);
};

// [[listener.route]]: connections whose SNI matches go to `pool`.
struct Route {
  std::vector<std::string> serverNames;  // lower case, no trailing dot; "*.x" wildcards
  std::string pool;
  Position position;
};

// An address block from allow, deny or proxy_from. IPv4 blocks are kept
// IPv4-mapped (::ffff:a.b.c.d, prefix + 96), so one 128-bit table answers
// both families and an IPv4-mapped client matches the IPv4 rules.
struct Cidr {
  std::array<uint8_t, 16> address{};  // host bits beyond `prefix` are zero
  int prefix = 0;                     // 0..128, over the 128-bit form
  std::string text;                   // as written
  Position position;
};

// Parses "10.0.0.0/8", "::1/128" or a bare address (a /32 or /128); host
// bits set beyond the prefix are an error (say what was meant).
std::optional<Cidr> parseCidr(std::string_view text, std::string* whyNot);

struct Listener {
  std::string name;
  Address bind;
  std::string pool;  // the default: no route matched, no SNI, not TLS
  int maxConnections = 10000;
  Duration idleTimeout = std::chrono::hours(1);
  Duration prereadTimeout = std::chrono::seconds(5);  // routes without tls: ClientHello peek
  std::optional<ListenerTls> tls;
  std::vector<Route> routes;  // in file order; exact names win over wildcards
  // PROXY protocol from a front balancer: senders in proxyFrom must send a
  // header (of an accepted version); senders outside it are closed.
  AcceptProxy acceptProxy = AcceptProxy::Off;
  std::vector<Cidr> proxyFrom;  // required (non-empty) when acceptProxy is not Off
  Duration proxyTimeout = std::chrono::seconds(3);
  int proxyMaxHeaderBytes = 4096;  // proxy_max_header_bytes: v2 header cap (16..65551)
  // Access control on the client address (the PROXY header's when there is
  // one): empty allow = everyone; deny wins.
  std::vector<Cidr> allow;
  std::vector<Cidr> deny;
  int maxConnectionsPerSource = 0;   // concurrent, per source (IPv6 by /64); 0: no limit
  int connectionRatePerSource = 0;   // new per second, burst the same; 0: no limit
};

// [pool.NAME.tls]: originate TLS to the members.
struct PoolTls {
  // SNI sent and name verified (lower case, no trailing dot); an IP address
  // is verified but not sent (SNI carries host names only); empty: none
  // sent, no name check.
  std::string serverName;
  std::optional<FilePath> ca;  // absent: the system's default trust store
  bool verify = true;
  std::optional<CertificateFiles> clientCertificate;  // cert and key: mTLS to members
  Position position;  // of the [pool.NAME.tls] table
};

struct Member {
  std::string name;  // stable identity; defaults to address.text
  Address address;
  int weight = 1;  // 1..256
  bool backup = false;
  // Where health probes go when not to `address` (health_address and/or
  // health_port given); absent: probe `address`.
  std::optional<Address> healthAddress;
  std::optional<ProxyVersion> sendProxy;  // send_proxy on the member: overrides the pool's
  // Set only on members discovery made (never by the loader): the DNS name
  // of the [[pool.NAME.discover]] that found it. Such a member is named
  // "DNSNAME/ADDRESS:PORT".
  std::string discoveredBy;
};

// [[pool.NAME.discover]]: members from DNS, re-resolved.
struct Discover {
  std::string name;  // lower case, no trailing dot
  DiscoverType type = DiscoverType::A;
  uint16_t port = 0;  // A and AAAA: required; SRV: each record's own port (port is an error)
  Duration interval = std::chrono::seconds(5);  // at most this long between resolutions
  // remove_grace: how long NXDOMAIN or an empty answer must last before the
  // members it found are removed; zero (unset): one interval.
  Duration removeGrace{0};
  Position position;  // of this [[pool.NAME.discover]] table
};

struct Health {
  HealthKind kind = HealthKind::Tcp;
  Duration interval = std::chrono::seconds(2);
  Duration timeout = std::chrono::seconds(1);
  int rise = 2;
  int fall = 3;
  std::string path = "/health";
  std::vector<int> expectStatus{200};
  std::string host;              // http Host header; empty: the member's address
  Duration downInterval{0};      // probe period while down; 0: same as interval
  int passiveFall = 0;           // consecutive failed connects that take a member down; 0: off
  OnDown onDown = OnDown::Keep;
};

struct Pool {
  std::string name;
  Balance balance = Balance::RoundRobin;
  HashKey hashKey = HashKey::SourceIp;
  Duration connectTimeout = std::chrono::seconds(2);
  int retries = 2;  // further members tried after a failed connect
  WhenAllDown whenAllDown = WhenAllDown::Reject;
  uint32_t tableSize = 65537;     // consistent_hash: prime, >= 100 x members
  double hashBalanceFactor = 0;   // consistent_hash bounded loads: 0 off, else >= 1
  std::vector<Member> members;  // in file order (may be empty when discover is not)
  std::vector<Discover> discover;  // in file order
  std::optional<Health> health;
  std::optional<PoolTls> tls;
  ProxyVersion sendProxy = ProxyVersion::Off;
};

struct Config {
  std::string sourceName;  // the file it came from
  Global global;
  Admin admin;
  std::vector<Listener> listeners;  // in file order
  std::vector<Pool> pools;          // in file order

  const Pool* findPool(std::string_view name) const;
};

struct Error {
  std::string file;
  int line = 0;    // 1-based; 0 when the error has no position
  int column = 0;  // 1-based
  std::string message;
};

// "file:line:col: message", always one line: control characters that reach
// it anyway are escaped as printable() does.
std::string formatError(const Error& error);

// `text` made safe to quote inside one line of an error or log message:
// control characters become \n, \t, \r or \xNN, the Unicode line breaks
// U+0085, U+2028 and U+2029 become \u0085, \u2028 and \u2029, quotes and
// backslashes get a backslash, and text longer than maxChars characters
// (code points) is cut there and ends in "...".
std::string printable(std::string_view text, size_t maxChars = 64);

// The largest config file loadFile() reads (16 MiB).
inline constexpr size_t kMaxFileBytes = size_t{16} << 20;

struct LoadResult {
  std::optional<Config> config;  // set only when errors is empty
  std::vector<Error> errors;     // in file order
  std::vector<Error> warnings;   // e.g. a token file every user can read; the config still loads
};

// Reads only a regular file of at most kMaxFileBytes, and never blocks: a
// FIFO, a device, a socket or a directory is an error naming what it is.
// Relative paths of files named in it (certificates, keys, CAs) become
// paths in the file's directory.
LoadResult loadFile(const std::string& path);
// Relative file paths in `text` are resolved against the current directory,
// or against `baseDirectory`.
LoadResult loadString(std::string_view text, std::string_view sourceName);
LoadResult loadString(std::string_view text, std::string_view sourceName, std::string_view baseDirectory);

// One line for `ringlb --check`: "ok: 2 listeners, 2 pools, 5 members", or
// "ok: 2 listeners (1 with TLS), ..." when listeners terminate TLS, and
// "..., 5 members, 2 discoveries" when pools have [[pool.NAME.discover]]
// entries (members counts the static ones: nothing is resolved).
std::string summary(const Config& config);

}  // namespace config
