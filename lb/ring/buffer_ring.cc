#include "lb/ring/buffer_ring.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>

#include "lb/check.h"

namespace lb {

BufferRing::~BufferRing() {
  if (ring_) munmap(ring_, ringBytes_);
  std::free(data_);
}

// liburing 2.3 (Debian 12) has io_uring_register_buf_ring but not
// io_uring_setup_buf_ring, so the ring's memory is mapped here.
int BufferRing::setup(io_uring* ring, unsigned count, unsigned size, uint16_t group) {
  ringBytes_ = count * sizeof(io_uring_buf);
  void* mapped = mmap(nullptr, ringBytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mapped == MAP_FAILED) return -errno;
  data_ = static_cast<char*>(std::aligned_alloc(4096, size_t{count} * size));
  if (!data_) {
    munmap(mapped, ringBytes_);
    return -ENOMEM;
  }
  auto* bufRing = static_cast<io_uring_buf_ring*>(mapped);
  io_uring_buf_ring_init(bufRing);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(mapped);
  reg.ring_entries = count;
  reg.bgid = group;
  int result = io_uring_register_buf_ring(ring, &reg, 0);
  if (result < 0) {
    munmap(mapped, ringBytes_);
    std::free(data_);
    data_ = nullptr;
    return result;
  }
  ring_ = bufRing;
  count_ = count;
  size_ = size;
  group_ = group;
  int mask = io_uring_buf_ring_mask(count);
  for (unsigned id = 0; id < count; ++id)
    io_uring_buf_ring_add(ring_, buffer(static_cast<uint16_t>(id)), size, static_cast<uint16_t>(id), mask,
                          static_cast<int>(id));
  io_uring_buf_ring_advance(ring_, static_cast<int>(count));
  inRing_.assign(count, true);
  return 0;
}

void BufferRing::claim(uint16_t id) {
  RINGLB_ENFORCE(id < count_ && inRing_[id]);
  inRing_[id] = false;
}

void BufferRing::recycle(uint16_t id) {
  RINGLB_ENFORCE(id < count_ && !inRing_[id]);
  inRing_[id] = true;
  io_uring_buf_ring_add(ring_, buffer(id), size_, id, io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(ring_, 1);
}

}  // namespace lb
