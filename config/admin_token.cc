#include "config/admin_token.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace config {

TokenFile readTokenFile(const std::string& path) {
  TokenFile result;
  std::string name = printable(path, 200);
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    result.error = fmt::format("cannot read token file {}: {}", name, std::strerror(errno));
    return result;
  }
  struct stat info {};
  std::string text;
  if (::fstat(fd, &info) != 0) {
    result.error = fmt::format("cannot read token file {}: {}", name, std::strerror(errno));
  } else if (!S_ISREG(info.st_mode)) {
    result.error = fmt::format("token file {} is not a regular file", name);
  } else {
    char buffer[kMaxTokenFileBytes + 1];
    for (;;) {
      ssize_t count = ::read(fd, buffer, sizeof buffer - text.size());
      if (count < 0 && errno == EINTR) continue;
      if (count < 0) result.error = fmt::format("cannot read token file {}: {}", name, std::strerror(errno));
      if (count <= 0) break;
      text.append(buffer, static_cast<size_t>(count));
      if (text.size() > kMaxTokenFileBytes) {
        result.error = fmt::format("token file {} is larger than {} bytes", name, kMaxTokenFileBytes);
        break;
      }
    }
  }
  ::close(fd);
  if (!result.error.empty()) return result;
  if (text.ends_with('\n')) text.pop_back();
  if (text.ends_with('\r')) text.pop_back();
  if (text.empty()) {
    result.error = fmt::format("token file {} is empty", name);
    return result;
  }
  for (char c : text) {
    if (c <= ' ' || c >= 127) {
      result.error = fmt::format(
          "token file {} must hold one token of visible ASCII characters (no spaces, no second line)", name);
      return result;
    }
  }
  if (info.st_mode & S_IROTH)
    result.warning = fmt::format("token file {} is readable by every user of this host (mode {:04o}); chmod o-r it",
                                 name, info.st_mode & 07777);
  result.token = std::move(text);
  return result;
}

bool isLoopback(const Address& address) {
  if (address.family() == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(address.sockaddrPtr());
    return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
  }
  if (address.family() != AF_INET6) return false;
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(address.sockaddrPtr());
  if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) return true;
  return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && sin6->sin6_addr.s6_addr[12] == 127;
}

}  // namespace config
