#pragma once
// A worker's provided-buffer ring (io_uring buffer group): receives pick a
// buffer only when data arrives, so a waiting receive holds no memory and
// memory is bounded by buffers in flight, not by connections.
//
// Invariant: every buffer is either in the ring (the kernel may pick it) or
// owned by exactly one flow between its receive and its send's completion.
// Checked (always: a buffer in the ring twice would hand one buffer to two
// receives): claim() takes one out that the kernel reported, recycle() puts
// one back that was out.

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lb {

class BufferRing {
 public:
  BufferRing() = default;
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  // Registers `count` (a power of two) buffers of `size` bytes as group
  // `group` on `ring`; 0 or -errno (then receives fall back to splice).
  int setup(io_uring* ring, unsigned count, unsigned size, uint16_t group);
  bool ready() const { return ring_ != nullptr; }
  uint16_t group() const { return group_; }
  unsigned bufferSize() const { return size_; }
  char* buffer(uint16_t id) const { return data_ + size_t{id} * size_; }
  // A completion reported buffer `id` filled: it is out of the ring now.
  void claim(uint16_t id);
  // Hands a buffer back to the kernel.
  void recycle(uint16_t id);

 private:
  io_uring_buf_ring* ring_ = nullptr;
  size_t ringBytes_ = 0;
  char* data_ = nullptr;
  unsigned count_ = 0;
  unsigned size_ = 0;
  uint16_t group_ = 0;
  std::vector<bool> inRing_;  // by buffer id
};

}  // namespace lb
