#pragma once
// An open descriptor and the way to write to it without ever waiting for a
// reader, for the access log and the operational log (stderr). Which way
// depends on what the descriptor is:
//
// - A regular file: write(2). It never waits for a reader, only for the
//   disk, as any log file does; O_NONBLOCK means nothing to a regular file,
//   and RWF_NOWAIT is refused (EOPNOTSUPP) for buffered writes on ext4.
// - A socket (stdout or stderr under systemd's journal): send(MSG_DONTWAIT),
//   a flag of the call, not of the shared description.
// - A pipe, FIFO, tty or other device: write(2) on a description of our own
//   opened with O_NONBLOCK, either the path itself or the inherited
//   descriptor reopened through /proc/self/fd/N. Setting O_NONBLOCK on fd 1
//   or 2 itself would change the file description shared with our parent
//   and, with 2>&1 or journald, with the other stream, whose blocking
//   writers would then fail with EAGAIN.
// - A descriptor that cannot be reopened (no /proc): pwritev2(RWF_NOWAIT),
//   which works on pipes on recent kernels; where the kernel refuses it, the
//   write fails and the caller counts the bytes as dropped.
//
// Writes of at most atomicLimit() bytes to a pipe, FIFO or socket are taken
// whole or not at all, so writers of whole lines never split each other's.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace lb {

class NonBlockingOutput {
 public:
  enum class Method : uint8_t { Write, Send, WriteNoWait };

  // For a descriptor the process inherited (stdout, stderr, a test's pipe);
  // it stays open when the output goes. Null, with `error` set, when `fd` is
  // not open.
  static std::unique_ptr<NonBlockingOutput> forDescriptor(int fd, std::string* error);

  // `owned`: close `fd` with the output. `atomicLimit`: the largest write
  // the destination takes whole (PIPE_BUF, or SIZE_MAX for a regular file).
  NonBlockingOutput(int fd, bool owned, Method method, size_t atomicLimit)
      : fd_(fd), owned_(owned), method_(method), atomicLimit_(atomicLimit) {}
  ~NonBlockingOutput();
  NonBlockingOutput(const NonBlockingOutput&) = delete;
  NonBlockingOutput& operator=(const NonBlockingOutput&) = delete;

  int fd() const { return fd_; }
  size_t atomicLimit() const { return atomicLimit_; }
  // Bytes written, or -errno (-EAGAIN: the destination takes nothing now).
  ssize_t write(const char* data, size_t size) const;

 private:
  const int fd_;
  const bool owned_;
  const Method method_;
  const size_t atomicLimit_;
};

}  // namespace lb
