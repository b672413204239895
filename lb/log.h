#pragma once
// Operational log lines on stderr: "2026-11-25T19:30:00.123Z info message".
// Each line is written with a single write(2), so lines from different
// threads never interleave.
//
// Until neverWait() is called (once ringlb serves), writes may wait: what
// --check and a failed start print must all arrive, however slowly it is
// read. From then on a worker must never stall on its log: stderr is written
// without waiting (lb/nonblocking_output.h), lines longer than a pipe takes
// whole are cut, and a line the reader has no room for is dropped and
// counted (droppedLines(), a metric).

#include <fmt/format.h>

#include <atomic>
#include <string>
#include <string_view>

#include "config/config.h"

namespace lb::log {

void setLevel(config::LogLevel level);
bool enabled(config::LogLevel level);
void write(config::LogLevel level, std::string_view message);
// From now on, never wait for stderr's reader (see above).
void neverWait();
// Lines dropped because stderr's reader had no room for them.
uint64_t droppedLines();

// "2026-11-25T19:30:00.123Z" for the current wall-clock time.
std::string timestampNow();

template <typename... Args>
void error(fmt::format_string<Args...> format, Args&&... args) {
  write(config::LogLevel::Error, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(config::LogLevel::Warn))
    write(config::LogLevel::Warn, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(config::LogLevel::Info))
    write(config::LogLevel::Info, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(config::LogLevel::Debug))
    write(config::LogLevel::Debug, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace lb::log
