#include "lb/listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace lb {

namespace {
constexpr int kBacklog = 4096;
}

int openListenSocket(const config::Address& address, bool reusePort) {
  int fd = ::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  int result = 0;
  // TCP_NODELAY here is inherited by every accepted socket, so the data
  // path never sets it per connection.
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      (reusePort && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
      ::bind(fd, address.sockaddrPtr(), address.length) < 0 || ::listen(fd, kBacklog) < 0) {
    result = -errno;
    ::close(fd);
    return result;
  }
  return fd;
}

}  // namespace lb
