// The small public helpers of config.h and loadFile(); the schema itself is in
// loader.cc, the address and duration syntaxes in values.cc.

#include "config/config.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iterator>

#include "config/file_error.h"

namespace config {
namespace {

std::string plural(size_t count, std::string_view noun) {
  return fmt::format("{} {}{}", count, noun, count == 1 ? "" : "s");
}

const char* namedEscape(unsigned char c) {
  switch (c) {
    case '\n':
      return "\\n";
    case '\t':
      return "\\t";
    case '\r':
      return "\\r";
  }
  return nullptr;
}

// Escapes what could end or fake a line; with `quotes`, also `"` and `\`, so
// that a quoted value reads back unambiguously. Cuts after maxChars code points.
std::string escape(std::string_view text, size_t maxChars, bool quotes) {
  std::string out;
  out.reserve(std::min(text.size(), maxChars) + 8);
  size_t chars = 0;
  for (size_t i = 0; i < text.size();) {
    if (chars++ == maxChars) {
      out += "...";
      break;
    }
    auto byte = [&](size_t at) { return at < text.size() ? static_cast<unsigned char>(text[at]) : 0u; };
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0xC2 && byte(i + 1) == 0x85) {  // U+0085, next line
      out += "\\u0085";
      i += 2;
    } else if (c == 0xE2 && byte(i + 1) == 0x80 && (byte(i + 2) == 0xA8 || byte(i + 2) == 0xA9)) {
      out += byte(i + 2) == 0xA8 ? "\\u2028" : "\\u2029";  // line and paragraph separators
      i += 3;
    } else if (const char* named = namedEscape(c)) {
      out += named;
      ++i;
    } else if (c < 0x20 || c == 0x7F) {
      fmt::format_to(std::back_inserter(out), "\\x{:02x}", c);
      ++i;
    } else if (quotes && (c == '"' || c == '\\')) {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else {
      // One code point whole: its lead byte and any continuation bytes.
      size_t end = i + 1;
      while (end < text.size() && (byte(end) & 0xC0) == 0x80) ++end;
      out.append(text, i, end - i);
      i = end;
    }
  }
  return out;
}

// An absolute directory ("" when the current one is gone), so that file
// paths resolved against it keep meaning the same file. "." components are
// dropped; ".." ones stay, since "link/.." need not be where "link" is.
std::string absoluteDirectory(const std::filesystem::path& directory) {
  std::error_code error;
  std::filesystem::path absolute = std::filesystem::absolute(directory, error);
  if (error) return {};
  std::filesystem::path out;
  for (const std::filesystem::path& part : absolute)
    if (part != "." && !part.empty()) out /= part;
  return out.string();
}

struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

std::string_view fileKind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

std::string notRegular(mode_t mode) {
  return fmt::format("cannot read: not a regular file ({})", fileKind(mode));
}

std::string tooLarge() {
  return fmt::format("cannot read: larger than {} MiB, the limit for a config file",
                     kMaxFileBytes >> 20);
}

// Reads all of `path` into `out`; returns "" or why not. A FIFO would block
// the caller (the control thread, on reload) in open() or read(), and a device
// such as /dev/zero never ends, so only a regular file is read: stat() refuses
// the others before opening (opening some devices has effects), fstat()
// rechecks what was opened, and O_NONBLOCK keeps a FIFO swapped in between
// from blocking. At most kMaxFileBytes + 1 bytes are read, so a file that
// grows meanwhile is refused too.
std::string readWholeFile(const std::string& path, std::string& out) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return fmt::format("cannot read: {}", fileErrorText(errno));
  if (!S_ISREG(info.st_mode)) return notRegular(info.st_mode);
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return fmt::format("cannot read: {}", fileErrorText(errno));
  FdCloser closer{fd};
  if (::fstat(fd, &info) != 0) return fmt::format("cannot read: {}", fileErrorText(errno));
  if (!S_ISREG(info.st_mode)) return notRegular(info.st_mode);
  if (static_cast<uint64_t>(info.st_size) > kMaxFileBytes) return tooLarge();
  out.clear();
  out.reserve(static_cast<size_t>(info.st_size));
  char buffer[64 * 1024];
  for (;;) {
    size_t wanted = std::min(sizeof buffer, kMaxFileBytes + 1 - out.size());
    ssize_t count = ::read(fd, buffer, wanted);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return fmt::format("cannot read: {}", fileErrorText(errno));
    if (count == 0) return {};
    out.append(buffer, static_cast<size_t>(count));
    if (out.size() > kMaxFileBytes) return tooLarge();
  }
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

std::string printable(std::string_view text, size_t maxChars) { return escape(text, maxChars, true); }

std::string formatError(const Error& error) {
  constexpr size_t kWhole = std::string_view::npos;
  std::string file = escape(error.file, kWhole, false);
  std::string message = escape(error.message, kWhole, false);
  if (error.line == 0) return fmt::format("{}: {}", file, message);
  return fmt::format("{}:{}:{}: {}", file, error.line, error.column, message);
}

std::string summary(const Config& config) {
  size_t members = 0;
  for (const Pool& pool : config.pools) members += pool.members.size();
  size_t tlsListeners = std::count_if(config.listeners.begin(), config.listeners.end(),
                                      [](const Listener& listener) { return listener.tls.has_value(); });
  std::string tls = tlsListeners == 0 ? "" : fmt::format(" ({} with TLS)", tlsListeners);
  size_t discover = 0;
  for (const Pool& pool : config.pools) discover += pool.discover.size();
  std::string discovery =
      discover == 0 ? "" : fmt::format(", {} {}", discover, discover == 1 ? "discovery" : "discoveries");
  return fmt::format("ok: {}{}, {}, {}{}", plural(config.listeners.size(), "listener"), tls,
                     plural(config.pools.size(), "pool"), plural(members, "member"), discovery);
}

LoadResult loadFile(const std::string& path) {
  std::string text;
  if (std::string whyNot = readWholeFile(path, text); !whyNot.empty()) {
    LoadResult result;
    result.errors.push_back(Error{path, 0, 0, std::move(whyNot)});
    return result;
  }
  std::filesystem::path directory = std::filesystem::path(path).parent_path();
  return loadString(text, path, absoluteDirectory(directory.empty() ? "." : directory));
}

LoadResult loadString(std::string_view text, std::string_view sourceName) {
  return loadString(text, sourceName, absoluteDirectory("."));
}

}  // namespace config
