#include "lb/log.h"

#include <time.h>
#include <unistd.h>

namespace lb::log {
namespace {

std::atomic<int> gLevel{static_cast<int>(config::LogLevel::Info)};

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

void write(config::LogLevel level, std::string_view message) {
  std::string line = fmt::format("{} {} {}\n", timestampNow(), config::toString(level), message);
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
    if (n <= 0) return;  // nowhere left to report it
    done += static_cast<size_t>(n);
  }
}

}  // namespace lb::log
