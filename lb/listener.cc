#include "lb/listener.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "lb/log.h"

namespace lb {

namespace {
constexpr int kBacklog = 4096;

// Inodes of the listening sockets this process opened. A socket is never
// removed: socket inode numbers are not reused in a process's lifetime in
// practice (a 32-bit counter over every socket of the host), and the set
// grows by one per socket and reload.
std::mutex gOwnMutex;
std::set<uint64_t> gOwnInodes;

void rememberOwn(int fd) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) return;
  uint64_t inode = info.st_ino;
  std::lock_guard lock(gOwnMutex);
  gOwnInodes.insert(inode);
}

bool isOwn(uint64_t inode) {
  std::lock_guard lock(gOwnMutex);
  return gOwnInodes.count(inode) != 0;
}

struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

// True when a socket listening on `found` takes connections for `address`
// too: the same port, and the same address or a wildcard on either side.
bool sameListenAddress(const config::Address& address, const inet_diag_sockid& found) {
  if (ntohs(found.idiag_sport) != address.port()) return false;
  if (address.family() == AF_INET) {
    in_addr_t mine = reinterpret_cast<const sockaddr_in*>(address.sockaddrPtr())->sin_addr.s_addr;
    in_addr_t theirs = found.idiag_src[0];
    return mine == theirs || mine == INADDR_ANY || theirs == INADDR_ANY;
  }
  const in6_addr& mine = reinterpret_cast<const sockaddr_in6*>(address.sockaddrPtr())->sin6_addr;
  in6_addr theirs{};
  std::memcpy(&theirs, found.idiag_src, sizeof theirs);
  return std::memcmp(&mine, &theirs, sizeof mine) == 0 || IN6_IS_ADDR_UNSPECIFIED(&mine) ||
         IN6_IS_ADDR_UNSPECIFIED(&theirs);
}

// Whether a TCP socket that this process did not open listens on `address`:
// 1 yes, 0 no, -errno when the kernel's socket diagnostics (NETLINK_SOCK_DIAG,
// what ss(8) reads) cannot say.
int foreignListener(const config::Address& address) {
  int sock = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (sock < 0) return -errno;
  FdCloser closer{sock};
  struct {
    nlmsghdr header;
    inet_diag_req_v2 body;
  } request{};
  request.header.nlmsg_len = sizeof request;
  request.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  request.body.sdiag_family = static_cast<uint8_t>(address.family());
  request.body.sdiag_protocol = IPPROTO_TCP;
  request.body.idiag_states = 1u << TCP_LISTEN;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(sock, &request, sizeof request, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
    return -errno;
  alignas(nlmsghdr) char buffer[32 * 1024];
  int found = 0;
  for (;;) {
    ssize_t length = ::recv(sock, buffer, sizeof buffer, 0);
    if (length < 0 && errno == EINTR) continue;
    if (length < 0) return -errno;
    if (length == 0) return -EPROTO;
    // NLMSG_OK/NLMSG_NEXT compare signed and unsigned lengths (clang warns):
    // the same walk, with the bounds spelled out.
    size_t size = static_cast<size_t>(length);
    for (size_t offset = 0; offset + sizeof(nlmsghdr) <= size;) {
      auto* header = reinterpret_cast<nlmsghdr*>(buffer + offset);
      if (header->nlmsg_len < sizeof(nlmsghdr) || header->nlmsg_len > size - offset) return -EPROTO;
      offset += NLMSG_ALIGN(header->nlmsg_len);
      if (header->nlmsg_type == NLMSG_DONE) return found;
      if (header->nlmsg_type == NLMSG_ERROR) {
        const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(header));
        return error->error < 0 ? error->error : -EPROTO;
      }
      if (header->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) return -EPROTO;
      const auto* message = static_cast<const inet_diag_msg*>(NLMSG_DATA(header));
      if (sameListenAddress(address, message->id) && !isOwn(message->idiag_inode)) found = 1;
    }
  }
}

// -EADDRINUSE when another process listens on `address`; 0 otherwise,
// including when that cannot be known (logged once).
int refuseShared(const config::Address& address) {
  int foreign = foreignListener(address);
  if (foreign > 0) return -EADDRINUSE;
  if (foreign < 0) {
    static std::atomic<bool> logged{false};
    if (!logged.exchange(true))
      log::warn("cannot list listening sockets ({}): a second process on a listener's port goes unnoticed",
                std::strerror(-foreign));
  }
  return 0;
}

}  // namespace

int openListenSocket(const config::Address& address, bool reusePort) {
  // SO_REUSEPORT lets any process of the same user join the port and take a
  // share of its connections. Checked before binding, so that a second
  // instance never takes a connection, and again once listening, so that of
  // two instances starting at the same moment at least one sees the other.
  if (reusePort) {
    if (int refused = refuseShared(address); refused < 0) return refused;
  }
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
  rememberOwn(fd);
  if (reusePort) {
    if (int refused = refuseShared(address); refused < 0) {
      ::close(fd);
      return refused;
    }
  }
  return fd;
}

bool boundTo(const sockaddr_storage& bound, const config::Address& address) {
  if (bound.ss_family != address.family()) return false;
  if (bound.ss_family == AF_INET) {
    const auto& mine = *reinterpret_cast<const sockaddr_in*>(&bound);
    const auto& wanted = *reinterpret_cast<const sockaddr_in*>(address.sockaddrPtr());
    return mine.sin_port == wanted.sin_port && mine.sin_addr.s_addr == wanted.sin_addr.s_addr;
  }
  if (bound.ss_family == AF_INET6) {
    const auto& mine = *reinterpret_cast<const sockaddr_in6*>(&bound);
    const auto& wanted = *reinterpret_cast<const sockaddr_in6*>(address.sockaddrPtr());
    return mine.sin6_port == wanted.sin6_port &&
           std::memcmp(&mine.sin6_addr, &wanted.sin6_addr, sizeof mine.sin6_addr) == 0 &&
           mine.sin6_scope_id == wanted.sin6_scope_id;
  }
  return false;
}

std::string adoptListenSocket(int fd, const config::Address& address) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) return fmt::format("descriptor {} is not open: {}", fd, std::strerror(errno));
  if (!S_ISSOCK(info.st_mode)) return fmt::format("descriptor {} is not a socket", fd);
  int type = 0;
  int listening = 0;
  socklen_t size = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) != 0 || type != SOCK_STREAM)
    return fmt::format("descriptor {} is not a stream socket", fd);
  size = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || !listening)
    return fmt::format("descriptor {} is not a listening socket", fd);
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0)
    return fmt::format("descriptor {}: getsockname: {}", fd, std::strerror(errno));
  if (!boundTo(bound, address)) return fmt::format("descriptor {} is not bound to {}", fd, address.text);
  if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
    return fmt::format("descriptor {}: cannot set close-on-exec: {}", fd, std::strerror(errno));
  rememberOwn(fd);
  return {};
}

}  // namespace lb
