#include "lb/ring/pipe_pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace lb {

PipePool::~PipePool() {
  for (Pipe& pipe : spare_) closePipe(&pipe);
}

int PipePool::acquire(Pipe* pipe) {
  if (budget_ && !budget_->tryTake()) return kBudgetSpent;
  if (!spare_.empty()) {
    *pipe = spare_.back();
    spare_.pop_back();
    ++inUse_;
    return 0;
  }
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
    int error = errno;
    if (budget_) budget_->give();
    return -error;
  }
  // Best effort: a refusal leaves the default size, which still works.
  (void)fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(pipeBytes_));
  pipe->readFd = fds[0];
  pipe->writeFd = fds[1];
  ++inUse_;
  return 0;
}

void PipePool::release(Pipe* pipe) {
  if (!pipe->valid()) return;
  --inUse_;
  if (budget_) budget_->give();
  if (spare_.size() < maxSpare_) {
    spare_.push_back(*pipe);
    *pipe = Pipe{};
  } else {
    closePipe(pipe);
  }
}

void PipePool::drop(Pipe* pipe) {
  if (!pipe->valid()) return;
  --inUse_;
  if (budget_) budget_->give();
  closePipe(pipe);
}

void PipePool::closePipe(Pipe* pipe) {
  ::close(pipe->readFd);
  ::close(pipe->writeFd);
  *pipe = Pipe{};
}

}  // namespace lb
