#pragma once
// The keys each table of the file accepts: the loader rejects any other, and
// tests/unit/config_test.cc changes each one in turn and expects the reload
// preview (diff.h) to show it. A new key goes here first.

#include <string_view>

namespace config::keys {

inline constexpr std::string_view kGlobal[] = {"workers",          "log_level",
                                               "access_log",       "shutdown_timeout",
                                               "removed_member_timeout", "upgrade_timeout",
                                               "user",             "group",
                                               "max_connections",  "source_table_size",
                                               "dns"};
// [global.dns]: how discovery asks (config/discover_loader.cc).
inline constexpr std::string_view kDns[] = {"servers", "timeout", "attempts", "min_interval"};
inline constexpr std::string_view kAdmin[] = {"listen", "token", "token_file", "require_token_for_reads",
                                              "reload_min_interval"};
inline constexpr std::string_view kListener[] = {"name",         "bind",          "pool",
                                                 "max_connections", "idle_timeout", "preread_timeout",
                                                 "tls",          "route",
                                                 // the edge: config/edge_loader.cc
                                                 "accept_proxy", "proxy_from", "proxy_timeout",
                                                 "proxy_max_header_bytes", "allow", "deny",
                                                 "max_connections_per_source",
                                                 "connection_rate_per_source"};
inline constexpr std::string_view kListenerTls[] = {"certificates",  "min_version",
                                                    "alpn",          "client_ca",
                                                    "verify_client", "handshake_timeout"};
// One element of [listener.tls] certificates.
inline constexpr std::string_view kCertificate[] = {"cert", "key"};
inline constexpr std::string_view kRoute[] = {"server_names", "pool"};
inline constexpr std::string_view kPool[] = {"balance",    "hash_key",
                                             "connect_timeout", "retries",
                                             "when_all_down",   "table_size",
                                             "hash_balance_factor", "member",
                                             "health",          "tls",
                                             "send_proxy",      "discover"};
inline constexpr std::string_view kPoolTls[] = {"server_name", "ca", "verify", "cert", "key"};
inline constexpr std::string_view kMember[] = {"name",   "address",        "weight",
                                               "backup", "health_address", "health_port",
                                               "send_proxy"};
inline constexpr std::string_view kDiscover[] = {"name", "type", "port", "interval", "remove_grace"};
inline constexpr std::string_view kHealth[] = {"kind", "interval", "timeout", "rise",
                                               "fall", "path", "expect_status", "host",
                                               "down_interval", "passive_fall", "on_down"};

}  // namespace config::keys
