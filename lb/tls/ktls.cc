#include "lb/tls/ktls.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace lb::tls {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string failed(const char* step) { return fmt::format("{}: {}", step, std::strerror(errno)); }

}  // namespace

KtlsSupport probeKtls() {
  // The ULP can only be set on an established TCP socket: make a loopback
  // pair on an ephemeral port.
  Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (listener.get() < 0) return {false, failed("socket")};
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    return {false, failed("bind")};
  if (::listen(listener.get(), 1) != 0) return {false, failed("listen")};
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0)
    return {false, failed("getsockname")};
  Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (client.get() < 0) return {false, failed("socket")};
  if (::connect(client.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    return {false, failed("connect")};
  Fd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (accepted.get() < 0) return {false, failed("accept")};
  if (::setsockopt(accepted.get(), SOL_TCP, TCP_ULP, "tls", sizeof "tls") != 0) {
    if (errno == ENOENT) return {false, "the kernel has no tls module"};
    return {false, failed("setsockopt(TCP_ULP, \"tls\")")};
  }
  return {true, ""};
}

const KtlsSupport& detectKtls() {
  static const KtlsSupport support = probeKtls();
  return support;
}

bool offerKernelTx() {
  static const bool offer = [] {
    const char* forced = std::getenv("RINGLB_KTLS_OFFER");
    return detectKtls().available || (forced && std::strcmp(forced, "always") == 0);
  }();
  return offer;
}

std::string describe(const KtlsSupport& support) {
  if (support.available)
    return "kTLS: in use: after each client handshake the kernel encrypts what ringlb sends to the client "
           "(TLS_TX; member bytes splice again); what clients send is decrypted in user space";
  return fmt::format("kTLS: not available ({}): TLS records are handled in user space", support.why);
}

}  // namespace lb::tls
