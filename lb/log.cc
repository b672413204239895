#include "lb/log.h"

#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "lb/nonblocking_output.h"

namespace lb::log {
namespace {

std::atomic<int> gLevel{static_cast<int>(config::LogLevel::Info)};
std::atomic<uint64_t> gDropped{0};
// Set once by neverWait() and never freed: threads may log until the end.
std::atomic<const NonBlockingOutput*> gNoWait{nullptr};

// Writes `line` without waiting, whole or not at all where stderr is a pipe
// or socket; a line too long to go whole is cut to what does.
void writeWithoutWaiting(const NonBlockingOutput& out, std::string& line) {
  if (line.size() > out.atomicLimit()) {
    line.resize(out.atomicLimit() - 4);
    line += "...\n";
  }
  ssize_t n = out.write(line.data(), line.size());
  // A regular file may take part of a line (a full disk); the rest once more.
  if (n > 0 && static_cast<size_t>(n) < line.size())
    n = out.write(line.data() + n, line.size() - static_cast<size_t>(n));
  if (n < 0) gDropped.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

void setLevel(config::LogLevel level) { gLevel.store(static_cast<int>(level)); }

bool enabled(config::LogLevel level) {
  return static_cast<int>(level) <= gLevel.load(std::memory_order_relaxed);
}

std::string timestampNow() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  gmtime_r(&now.tv_sec, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                     now.tv_nsec / 1000000);
}

void neverWait() {
  if (gNoWait.load()) return;
  std::string error;
  auto output = NonBlockingOutput::forDescriptor(STDERR_FILENO, &error);
  if (output) gNoWait.store(output.release());  // stderr closed: writes fail as before
}

uint64_t droppedLines() { return gDropped.load(std::memory_order_relaxed); }

void write(config::LogLevel level, std::string_view message) {
  std::string line = fmt::format("{} {} {}\n", timestampNow(), config::toString(level), message);
  if (const NonBlockingOutput* out = gNoWait.load(std::memory_order_acquire))
    return writeWithoutWaiting(*out, line);
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
    if (n <= 0) return;  // nowhere left to report it
    done += static_cast<size_t>(n);
  }
}

}  // namespace lb::log
