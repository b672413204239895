#pragma once
// A worker's spare pipes for splice(2). A direction of a session holds a pipe
// only while bytes are on their way through it; an idle session holds none,
// so idle connections cost two sockets and no pipe fds.
//
// Invariant: every pipe in the pool is empty.

#include <cstddef>
#include <vector>

namespace lb {

struct Pipe {
  int readFd = -1;
  int writeFd = -1;
  bool valid() const { return readFd >= 0; }
};

class PipePool {
 public:
  // `pipeBytes` is the capacity asked of each new pipe (F_SETPIPE_SZ; if the
  // kernel refuses, for example over fs.pipe-user-pages-soft, the default
  // 64 KiB stays). At most `maxSpare` empty pipes are kept.
  PipePool(size_t pipeBytes, size_t maxSpare) : pipeBytes_(pipeBytes), maxSpare_(maxSpare) {}
  ~PipePool();
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;

  // A pipe from the pool or a new one; returns -errno when none can be made.
  int acquire(Pipe* pipe);
  // Returns an EMPTY pipe to the pool (or closes it when the pool is full).
  void release(Pipe* pipe);
  // Closes a pipe that may still hold bytes (its session ended mid-transfer).
  void drop(Pipe* pipe);

  size_t spare() const { return spare_.size(); }
  size_t inUse() const { return inUse_; }
  size_t capacity() const { return pipeBytes_; }

 private:
  size_t pipeBytes_;
  size_t maxSpare_;
  size_t inUse_ = 0;
  std::vector<Pipe> spare_;

  static void closePipe(Pipe* pipe);
};

}  // namespace lb
