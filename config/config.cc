// The small public helpers of config.h and loadFile(); the schema itself is in
// loader.cc, the address and duration syntaxes in values.cc.

#include "config/config.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace config {
namespace {

std::string plural(size_t count, std::string_view noun) {
  return fmt::format("{} {}{}", count, noun, count == 1 ? "" : "s");
}

struct FileCloser {
  void operator()(FILE* file) const { std::fclose(file); }
};

// Reads all of `path` into `out`; returns 0 or an errno value.
int readWholeFile(const std::string& path, std::string& out) {
  std::unique_ptr<FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) return errno;
  char buffer[64 * 1024];
  size_t count;
  while ((count = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) out.append(buffer, count);
  if (std::ferror(file.get())) return errno != 0 ? errno : EIO;
  return 0;
}

}  // namespace

std::string_view toString(Balance balance) {
  switch (balance) {
    case Balance::RoundRobin:
      return "round_robin";
    case Balance::LeastConn:
      return "least_conn";
    case Balance::ConsistentHash:
      return "consistent_hash";
    case Balance::RandomTwo:
      return "random_two";
  }
  return "unknown";
}

std::string_view toString(LogLevel level) {
  switch (level) {
    case LogLevel::Error:
      return "error";
    case LogLevel::Warn:
      return "warn";
    case LogLevel::Info:
      return "info";
    case LogLevel::Debug:
      return "debug";
  }
  return "unknown";
}

const Pool* Config::findPool(std::string_view name) const {
  for (const Pool& pool : pools)
    if (pool.name == name) return &pool;
  return nullptr;
}

std::string formatError(const Error& error) {
  if (error.line == 0) return fmt::format("{}: {}", error.file, error.message);
  return fmt::format("{}:{}:{}: {}", error.file, error.line, error.column, error.message);
}

std::string summary(const Config& config) {
  size_t members = 0;
  for (const Pool& pool : config.pools) members += pool.members.size();
  return fmt::format("ok: {}, {}, {}", plural(config.listeners.size(), "listener"),
                     plural(config.pools.size(), "pool"), plural(members, "member"));
}

LoadResult loadFile(const std::string& path) {
  std::string text;
  errno = 0;
  if (int error = readWholeFile(path, text); error != 0) {
    LoadResult result;
    result.errors.push_back(
        Error{path, 0, 0, fmt::format("cannot read: {}", std::strerror(error))});
    return result;
  }
  return loadString(text, path);
}

}  // namespace config
