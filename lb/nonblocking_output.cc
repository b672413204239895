#include "lb/nonblocking_output.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

#include <fmt/format.h>

namespace lb {

std::unique_ptr<NonBlockingOutput> NonBlockingOutput::forDescriptor(int fd, std::string* error) {
  struct stat st{};
  if (::fstat(fd, &st) < 0) {
    *error = fmt::format("descriptor {} is not open: {}", fd,
                         std::error_code(errno, std::generic_category()).message());
    return nullptr;
  }
  if (S_ISREG(st.st_mode)) return std::make_unique<NonBlockingOutput>(fd, false, Method::Write, SIZE_MAX);
  if (S_ISSOCK(st.st_mode)) return std::make_unique<NonBlockingOutput>(fd, false, Method::Send, PIPE_BUF);
  std::string own = fmt::format("/proc/self/fd/{}", fd);
  int reopened = ::open(own.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (reopened >= 0) return std::make_unique<NonBlockingOutput>(reopened, true, Method::Write, PIPE_BUF);
  return std::make_unique<NonBlockingOutput>(fd, false, Method::WriteNoWait, PIPE_BUF);
}

NonBlockingOutput::~NonBlockingOutput() {
  if (owned_) ::close(fd_);
}

ssize_t NonBlockingOutput::write(const char* data, size_t size) const {
  ssize_t n = -1;
  switch (method_) {
    case Method::Write: n = ::write(fd_, data, size); break;
    case Method::Send: n = ::send(fd_, data, size, MSG_DONTWAIT | MSG_NOSIGNAL); break;
    case Method::WriteNoWait: {
      iovec iov{const_cast<char*>(data), size};
      n = ::pwritev2(fd_, &iov, 1, -1, RWF_NOWAIT);
      break;
    }
  }
  return n < 0 ? -errno : n;
}

}  // namespace lb
