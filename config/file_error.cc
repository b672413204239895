#include "config/file_error.h"

#include <cerrno>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

namespace config {
namespace {

std::mutex gMutex;
std::string gRunningAs;  // empty: never switched user

}  // namespace

void setRunningAs(std::string user) {
  std::lock_guard lock(gMutex);
  gRunningAs = std::move(user);
}

std::string fileErrorText(int error) {
  if (error == EACCES) {
    std::lock_guard lock(gMutex);
    if (!gRunningAs.empty()) return fmt::format("permission denied (running as {})", gRunningAs);
  }
  return std::strerror(error);
}

}  // namespace config
