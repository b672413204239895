// Fuzzes config::loadString, the whole path from TOML text to a validated
// Config or a list of errors.
//
// Properties: exactly one of config and errors; every error names the source
// and points into the text (line 1..lines, column 1..line length + 1, or no
// position at all: 0:0) and the errors are in file order; a valid config
// holds what validation promises (pools exist, names unique, weights in
// range; TLS listeners have certificates, routes unique normalised names
// and existing pools, health over TLS a pool's TLS settings); loading is
// deterministic.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/server_name.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr std::string_view kSource = "fuzz.toml";

// Byte lengths of the text's lines ('\n' ends a line; a last line without
// one counts too; an empty text has one empty line).
std::vector<size_t> lineLengths(std::string_view text) {
  std::vector<size_t> lengths;
  size_t start = 0;
  for (size_t newline; (newline = text.find('\n', start)) != std::string_view::npos; start = newline + 1)
    lengths.push_back(newline - start);
  lengths.push_back(text.size() - start);
  return lengths;
}

void checkErrors(std::string_view text, const std::vector<config::Error>& errors) {
  const std::vector<size_t> lines = lineLengths(text);
  int lastLine = 1, lastColumn = 0;
  bool unpositionedSeen = false;
  for (const config::Error& error : errors) {
    FUZZ_CHECK(error.file == kSource);
    FUZZ_CHECK(!error.message.empty());
    FUZZ_CHECK(config::formatError(error).starts_with(std::string(kSource) + ":"));
    if (error.line == 0) {
      // Errors about the file as a whole come last.
      FUZZ_CHECK(error.column == 0);
      unpositionedSeen = true;
      continue;
    }
    FUZZ_CHECK(!unpositionedSeen);
    FUZZ_CHECK(error.line >= 1 && static_cast<size_t>(error.line) <= lines.size());
    // Columns count characters, so they never exceed bytes.
    FUZZ_CHECK(error.column >= 1 && static_cast<size_t>(error.column) <= lines[error.line - 1] + 1);
    FUZZ_CHECK(error.line > lastLine || (error.line == lastLine && error.column >= lastColumn));
    lastLine = error.line;
    lastColumn = error.column;
  }
}

void checkFile(const config::FilePath& file) {
  FUZZ_CHECK(!file.path.empty());
  FUZZ_CHECK(file.position.line >= 1 && file.position.column >= 1);
}

void checkListenerTls(const config::Config& config, const config::Listener& listener) {
  if (listener.tls) {
    FUZZ_CHECK(!listener.tls->certificates.empty());
    for (const config::CertificateFiles& files : listener.tls->certificates) {
      checkFile(files.cert);
      checkFile(files.key);
    }
    FUZZ_CHECK(listener.tls->verifyClient == config::VerifyClient::None || listener.tls->clientCa);
    for (const std::string& protocol : listener.tls->alpn) FUZZ_CHECK(!protocol.empty() && protocol.size() <= 255);
  }
  std::set<std::string> serverNames;
  for (const config::Route& route : listener.routes) {
    FUZZ_CHECK(config.findPool(route.pool) != nullptr);
    FUZZ_CHECK(!route.serverNames.empty());
    for (const std::string& name : route.serverNames) {
      FUZZ_CHECK(config::normalizeServerName(name) == name);
      FUZZ_CHECK(serverNames.insert(name).second);
    }
  }
}

void checkConfig(const config::Config& config) {
  FUZZ_CHECK(config.sourceName == kSource);
  FUZZ_CHECK(!config.listeners.empty());
  std::set<std::string> listenerNames, poolNames;
  for (const config::Listener& listener : config.listeners) {
    FUZZ_CHECK(listenerNames.insert(listener.name).second);
    FUZZ_CHECK(config.findPool(listener.pool) != nullptr);
    FUZZ_CHECK(listener.bind.length > 0);
    FUZZ_CHECK(listener.maxConnections > 0);
    checkListenerTls(config, listener);
  }
  for (const config::Pool& pool : config.pools) {
    FUZZ_CHECK(!pool.name.empty());
    FUZZ_CHECK(poolNames.insert(pool.name).second);
    // A pool that discovers its members may list none.
    FUZZ_CHECK(!pool.members.empty() || !pool.discover.empty());
    for (const config::Discover& discover : pool.discover) {
      FUZZ_CHECK(!discover.name.empty() && discover.name.back() != '.');
      FUZZ_CHECK(std::none_of(discover.name.begin(), discover.name.end(), [](char c) { return c >= 'A' && c <= 'Z'; }));
      FUZZ_CHECK((discover.type == config::DiscoverType::SRV) == (discover.port == 0));
      FUZZ_CHECK(discover.interval.count() > 0);
    }
    bool healthOverTls = pool.health && (pool.health->kind == config::HealthKind::Tls ||
                                         pool.health->kind == config::HealthKind::Https);
    FUZZ_CHECK(!healthOverTls || pool.tls.has_value());
    if (pool.tls && pool.tls->clientCertificate) {
      checkFile(pool.tls->clientCertificate->cert);
      checkFile(pool.tls->clientCertificate->key);
    }
    std::set<std::string> memberNames;
    for (const config::Member& member : pool.members) {
      FUZZ_CHECK(!member.name.empty());
      FUZZ_CHECK(memberNames.insert(member.name).second);
      FUZZ_CHECK(member.weight >= 1 && member.weight <= 256);
      FUZZ_CHECK(member.address.length > 0);
    }
  }
  FUZZ_CHECK(config::summary(config).starts_with("ok: "));
}

bool sameErrors(const std::vector<config::Error>& a, const std::vector<config::Error>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const config::Error& x, const config::Error& y) {
    return x.line == y.line && x.column == y.column && x.message == y.message;
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const config::LoadResult result = config::loadString(text, kSource);
  FUZZ_CHECK(result.config.has_value() == result.errors.empty());
  checkErrors(text, result.errors);
  if (result.config) checkConfig(*result.config);

  const config::LoadResult again = config::loadString(text, kSource);
  FUZZ_CHECK(again.config.has_value() == result.config.has_value());
  FUZZ_CHECK(sameErrors(again.errors, result.errors));
  return 0;
}
