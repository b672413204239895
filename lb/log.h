#pragma once
// Operational log lines on stderr: "2026-11-25T19:30:00.123Z info message".
// Each line is written with a single write(2), so lines from different
// threads never interleave.

#include <fmt/format.h>

#include <atomic>
#include <string>
#include <string_view>

#include "config/config.h"

namespace lb::log {

void setLevel(config::LogLevel level);
bool enabled(config::LogLevel level);
void write(config::LogLevel level, std::string_view message);

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
