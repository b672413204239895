#pragma once
// A worker's spare pipes for splice(2). A direction of a session holds a pipe
// only while bytes are on their way through it; an idle session holds none,
// so idle connections cost two sockets and no pipe fds.
//
// Invariant: every pipe in the pool is empty.

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

namespace lb {

struct Pipe {
  int readFd = -1;
  int writeFd = -1;
  bool valid() const { return readFd >= 0; }
};

// A PipeBudget's limit when there is none.
inline constexpr uint64_t kNoPipeLimit = std::numeric_limits<uint64_t>::max();

// Splice pipes in use over every worker, against the budget the open-file
// limit leaves them (lb/descriptor_budget.h): a worker takes one before it
// opens or reuses a pipe for a bulk direction and gives it back when the
// direction lets the pipe go. Past the budget the direction copies. Shared
// by every generation (Runtime::pipeBudget); the limit is set at start and
// by each accepted reload.
class PipeBudget {
 public:
  void setLimit(uint64_t limit) { limit_.store(limit, std::memory_order_relaxed); }
  uint64_t limit() const { return limit_.load(std::memory_order_relaxed); }
  // One more pipe in use, unless the budget is spent (false then). Each
  // true is matched by one give().
  bool tryTake() {
    uint64_t inUse = inUse_.fetch_add(1, std::memory_order_relaxed);
    if (inUse >= limit()) {
      inUse_.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }
  void give() { inUse_.fetch_sub(1, std::memory_order_relaxed); }
  uint64_t inUse() const { return inUse_.load(std::memory_order_relaxed); }

 private:
  alignas(64) std::atomic<uint64_t> inUse_{0};
  std::atomic<uint64_t> limit_{kNoPipeLimit};
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

  // Pipes this pool hands out count against `budget` (the process's; null:
  // no budget). Set before the first acquire().
  void setBudget(std::shared_ptr<PipeBudget> budget) { budget_ = std::move(budget); }
  // What acquire() returns when the budget is spent (not an errno of pipe2).
  static constexpr int kBudgetSpent = -EDQUOT;
  // A pipe from the pool or a new one; returns kBudgetSpent, or -errno when
  // none can be made.
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
  std::shared_ptr<PipeBudget> budget_;

  static void closePipe(Pipe* pipe);
};

}  // namespace lb
