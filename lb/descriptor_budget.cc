#include "lb/descriptor_budget.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <climits>

#include <fmt/format.h>

#include "lb/worker.h"

namespace lb {
namespace {

// The admin endpoint: its listening socket (and the control thread's
// descriptor of it, for an upgrade) and up to 64 connections (lb/admin.cc,
// kMaxConnections).
constexpr uint64_t kAdminDescriptors = 2 + 64;
// stdio (3), stderr reopened non-blocking (1), the access log (1, and 1 more
// while SIGUSR1 reopens it), the control thread's signalfd and ring (2),
// files a reload reads one at a time (config, certificates, keys, CA, token
// file) with room to spare, and an upgrade's readiness pipe and pidfd (2).
constexpr uint64_t kFixedDescriptors = 18;

// The most RLIMIT_NOFILE can be (a hard limit of RLIM_INFINITY cannot be
// given to the soft one).
uint64_t kernelMaxOpenFiles() {
  std::ifstream file("/proc/sys/fs/nr_open");
  uint64_t value = 0;
  if (file >> value) return value;
  return 1 << 20;
}

}  // namespace

DescriptorReserve processReserve(const config::Config& config, int workers) {
  size_t listeners = config.listeners.size();
  // A reload binds the sockets of new or moved listeners, one per worker,
  // before the old ones are closed; the control thread holds a descriptor
  // of every listening socket to hand on at an upgrade (lb/upgrade.h).
  uint64_t perWorker = Worker::descriptorsPerWorker(listeners) + 2 * listeners;
  uint64_t probed = 0;
  for (const config::Pool& pool : config.pools)
    if (pool.health) probed += pool.members.size();
  // One socket per probed member, twice: after a reload the previous
  // generation's prober finishes the probes it has in flight.
  uint64_t probes = 2 * probed;
  uint64_t admin = config.admin.listen ? kAdminDescriptors : 0;
  DescriptorReserve reserve;
  reserve.total = static_cast<uint64_t>(workers) * perWorker + probes + admin + kFixedDescriptors;
  reserve.breakdown = fmt::format(
      "{} workers x {} (listening sockets, ring, eventfd, spare pipes) + {} health probes + {} admin + {} "
      "stdio, logs, signals, control ring and files read on reload",
      workers, perWorker, probes, admin, kFixedDescriptors);
  return reserve;
}

std::optional<SessionLimit> planSessions(const config::Config& config, int workers, uint64_t openFiles,
                                         std::string* whyNot) {
  DescriptorReserve reserve = processReserve(config, workers);
  uint64_t room = openFiles > reserve.total ? openFiles - reserve.total : 0;
  uint64_t fits = std::min<uint64_t>(room / kDescriptorsPerSession, INT_MAX);
  SessionLimit limit;
  int configured = config.global.maxConnections;
  if (configured > 0) {
    uint64_t needed = static_cast<uint64_t>(configured) * kDescriptorsPerSession + reserve.total;
    if (needed > openFiles) {
      *whyNot = fmt::format(
          "[global] max_connections = {} needs {} open files ({} x {} per session (its sockets) + {} for the "
          "process: {}) but the open-file limit is {} (room for {} sessions): lower max_connections or raise the "
          "hard limit (LimitNOFILE=, ulimit -Hn)",
          configured, needed, configured, kDescriptorsPerSession, reserve.total, reserve.breakdown, openFiles,
          fits);
      return std::nullopt;
    }
    limit.maxConnections = configured;
    limit.maxPipes = (openFiles - needed) / kDescriptorsPerPipe;
    limit.how = fmt::format("configured; needs {} of {} open files; the other {} allow {} pipes", needed, openFiles,
                            openFiles - needed, limit.maxPipes);
    return limit;
  }
  limit.derived = true;
  // sessions * kDescriptorsPerSession + sessions / kSessionsPerPipe * kDescriptorsPerPipe <= room
  uint64_t sessions = std::min<uint64_t>(
      room * kSessionsPerPipe / (kDescriptorsPerSession * kSessionsPerPipe + kDescriptorsPerPipe), INT_MAX);
  if (sessions == 0) {
    // Not the config's fault: start without a global maximum (as before
    // there was one) and say what running out will look like.
    limit.how = fmt::format(
        "none: the open-file limit {} leaves no room for a session after the {} the process may need for itself "
        "({}); past the limit clients wait or are refused (local_error) and bulk transfers copy; raise the hard "
        "limit (LimitNOFILE=, ulimit -Hn)",
        openFiles, reserve.total, reserve.breakdown);
    return limit;
  }
  limit.maxConnections = static_cast<int>(sessions);
  limit.maxPipes = (room - sessions * kDescriptorsPerSession) / kDescriptorsPerPipe;
  limit.how = fmt::format(
      "derived: {} open files - {} for the process, {} per session and a pipe ({}) per {} sessions; {} pipes",
      openFiles, reserve.total, kDescriptorsPerSession, kDescriptorsPerPipe, kSessionsPerPipe, limit.maxPipes);
  return limit;
}

OpenFileLimit raiseOpenFileLimit() {
  OpenFileLimit result;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    result.raiseError = errno;
    return result;
  }
  result.before = result.soft = limit.rlim_cur;
  result.hard = limit.rlim_max;
  rlim_t wanted = limit.rlim_max == RLIM_INFINITY ? kernelMaxOpenFiles() : limit.rlim_max;
  if (limit.rlim_cur >= wanted) return result;
  rlimit raised{wanted, limit.rlim_max};
  if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
    result.raiseError = errno;
    return result;
  }
  result.soft = wanted;
  return result;
}

uint64_t currentOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  return limit.rlim_cur;
}

}  // namespace lb
