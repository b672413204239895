#include "lb/process.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "lb/access_log.h"
#include "lb/control.h"
#include "lb/listener.h"
#include "lb/log.h"
#include "lb/pool.h"
#include "lb/runtime.h"
#include "lb/systemd_notify.h"
#include "lb/tls/ktls.h"
#include "lb/worker.h"

namespace lb {
namespace {

int workerCount(const config::Config& config) {
  if (config.global.workers > 0) return config.global.workers;
  unsigned cpus = std::thread::hardware_concurrency();
  return cpus > 0 ? static_cast<int>(cpus) : 1;
}

void closeAll(std::vector<std::vector<int>>& fds) {
  for (auto& perWorker : fds)
    for (int fd : perWorker)
      if (fd >= 0) ::close(fd);
}

// Every worker's socket for every listener, bound before any thread starts,
// so a port in use, also by another process of the same user that
// SO_REUSEPORT would let share it, stops the process before it serves anything.
bool bindAll(const Runtime& runtime, int workers, std::vector<std::vector<int>>* fds) {
  fds->assign(workers, {});
  for (int w = 0; w < workers; ++w) {
    for (const auto& listener : runtime.listeners) {
      int fd = openListenSocket(listener->config.bind);
      if (fd < 0) {
        log::error("listener {}: cannot listen on {}: {}{}", config::printable(listener->config.name),
                   listener->config.bind.text, std::strerror(-fd),
                   fd == -EADDRINUSE ? " (another process listens there; ringlb does not share a port)" : "");
        closeAll(*fds);
        return false;
      }
      (*fds)[w].push_back(fd);
    }
  }
  return true;
}

// A session can hold six descriptors: its two sockets and, while both
// directions move bulk data, a pipe (two ends) for each. The limit must
// hold that for every session max_connections allows, plus what the
// process keeps besides (workers' listening sockets, rings and spare pipes,
// one socket per health probe, stdio, the control thread's ring, signalfd
// and admin endpoint). The soft limit is raised towards the hard one as far
// as needed; if that is not enough, say so: past the limit clients wait or
// are refused (local_error) and bulk transfers copy instead of splicing.
constexpr uint64_t kDescriptorsPerSession = 6;
constexpr uint64_t kProcessDescriptors = 64;

void checkDescriptorBudget(const config::Config& config, int workers) {
  uint64_t sessions = 0;
  for (const auto& listener : config.listeners) sessions += static_cast<uint64_t>(listener.maxConnections);
  uint64_t reserve = kProcessDescriptors +
                     static_cast<uint64_t>(workers) * Worker::descriptorsPerWorker(config.listeners.size());
  for (const auto& pool : config.pools)
    if (pool.health) reserve += pool.members.size();
  uint64_t needed = sessions * kDescriptorsPerSession + reserve;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < needed && limit.rlim_cur < limit.rlim_max) {
    rlimit raised{std::min<rlim_t>(limit.rlim_max, needed), limit.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  if (limit.rlim_cur >= needed) return;
  log::warn("open-file limit {} is below the {} descriptors max_connections allows: {} sessions at "
            "{} per session (2 sockets, 2 pipes) + {} for the process; past it new clients wait or "
            "are refused (local_error) and bulk transfers copy instead of splicing; raise the limit "
            "(LimitNOFILE=) or lower max_connections",
            limit.rlim_cur, needed, sessions, kDescriptorsPerSession, reserve);
}

sigset_t controlSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);  // reopen the access log
  return set;
}

}  // namespace

int runProcess(const std::string& configPath, const config::Config& config) {
  log::setLevel(config.global.logLevel);
  std::string error;
  auto sink = AccessLogSink::open(config.global.accessLog, &error);
  if (!sink) {
    log::error("{}", error);
    return 1;
  }
  tls::BuildReport report;
  std::shared_ptr<const Runtime> runtime = buildRuntime(config, nullptr, nullptr, &report);
  for (const config::Error& warning : tls::toConfigErrors(report.warnings, config.sourceName))
    log::warn("{}", config::formatError(warning));
  if (!runtime) {
    for (const config::Error& error : tls::toConfigErrors(report.errors, config.sourceName))
      log::error("{}", config::formatError(error));
    return 1;
  }
  if (runtime->usesTls()) log::info("{}", tls::describe(tls::detectKtls()));
  int count = workerCount(config);
  checkDescriptorBudget(config, count);
  std::vector<std::vector<int>> fds;
  if (!bindAll(*runtime, count, &fds)) return 1;
  int adminFd = -1;
  if (config.admin.listen) {
    adminFd = openListenSocket(*config.admin.listen, false);
    if (adminFd < 0) {
      log::error("admin: cannot listen on {}: {}", config.admin.listen->text, std::strerror(-adminFd));
      closeAll(fds);
      return 1;
    }
  }

  // Workers inherit a mask without the control signals; only the control
  // thread takes them, through a signalfd. SIGPIPE is ignored: a peer that
  // vanished shows up as EPIPE on its socket.
  signal(SIGPIPE, SIG_IGN);
  sigset_t signals = controlSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // Without the signalfd the process would ignore SIGTERM: refuse to start.
  int signalFd = signalfd(-1, &signals, SFD_CLOEXEC);
  if (signalFd < 0) {
    log::error("cannot start: signalfd: {}", std::strerror(errno));
    closeAll(fds);
    if (adminFd >= 0) ::close(adminFd);
    return 1;
  }

  std::vector<std::unique_ptr<Worker>> workers;
  for (int w = 0; w < count; ++w) {
    WorkerOptions options;
    options.index = w;
    options.runtime = runtime;
    options.listenFds = std::move(fds[w]);
    options.accessLog = sink;
    workers.push_back(std::make_unique<Worker>(std::move(options)));
  }

  std::atomic<int> running{count};
  std::vector<std::thread> threads;
  std::vector<std::future<int>> started;
  for (auto& worker : workers) {
    std::promise<int> promise;
    started.push_back(promise.get_future());
    threads.emplace_back([&running, w = worker.get(), promise = std::move(promise)]() mutable {
      int result = w->start();
      promise.set_value(result);
      if (result == 0) w->run();
      running.fetch_sub(1);
    });
  }
  int failed = 0;
  for (auto& future : started) {
    int result = future.get();
    if (result < 0) failed = result;
  }
  Control control(configPath, config, runtime, workers, running);
  control.setAccessLog(sink);
  if (failed == 0) failed = control.start(signalFd, adminFd);
  adminFd = -1;  // the control thread owns it now
  if (failed < 0) {
    log::error("cannot start: io_uring: {}", std::strerror(-failed));
    for (auto& worker : workers) worker->requestStop();
  } else {
    for (const auto& listener : runtime->listeners)
      log::info("listener {} on {} -> pool {} ({} members, {})", config::printable(listener->config.name),
                listener->config.bind.text, config::printable(listener->pool->name()),
                listener->pool->members().size(), config::toString(listener->pool->config().balance));
    log::neverWait();  // before "ready": what it opens is there once ready is seen
    log::info("ready: {} listeners, {} workers", runtime->listeners.size(), count);
    notifySystemd("READY=1\nSTATUS=serving");
    control.run();
  }
  for (auto& thread : threads) thread.join();
  ::close(signalFd);
  if (failed < 0) return 1;
  uint64_t left = 0;
  for (auto& worker : workers) left += worker->stats().sessionsOpenAtDeadline.load();
  if (left > 0)
    log::warn("stopped: {} sessions were still open at the shutdown deadline and were closed", left);
  else
    log::info("stopped: every session ended before the shutdown deadline");
  return 0;
}

}  // namespace lb
