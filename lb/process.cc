#include "lb/process.h"

#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "lb/access_log.h"
#include "lb/control.h"
#include "lb/descriptor_budget.h"
#include "lb/listener.h"
#include "lb/log.h"
#include "lb/pool.h"
#include "lb/privileges.h"
#include "lb/runtime.h"
#include "lb/systemd_notify.h"
#include "lb/tls/ktls.h"
#include "lb/upgrade.h"
#include "lb/worker.h"

namespace lb {
namespace {

int workerCount(const config::Config& config) {
  if (config.global.workers > 0) return config.global.workers;
  unsigned cpus = std::thread::hardware_concurrency();
  return cpus > 0 ? static_cast<int>(cpus) : 1;
}

void closeAll(std::vector<std::vector<int>>& fds) {
  for (auto& perListener : fds)
    for (int fd : perListener)
      if (fd >= 0) ::close(fd);
}

// Every socket of every listener (one per worker at least), bound or taken
// over before any thread starts, so a port in use, also by another process
// of the same user that SO_REUSEPORT would let share it, stops the process
// before it serves anything. Started by an upgrade, a listener whose
// address the old process listens on takes over all of that process's
// sockets for it (each has its own accept queue: one nobody accepted from
// would strand its connections) and binds more only when there are more
// workers now. `sockets`: per runtime listener.
bool bindAll(const Runtime& runtime, int workers, upgrade::Inheritance* inherited,
             std::vector<std::vector<int>>* sockets) {
  sockets->assign(runtime.listeners.size(), {});
  for (size_t i = 0; i < runtime.listeners.size(); ++i) {
    const config::Listener& listener = runtime.listeners[i]->config;
    std::vector<int>& fds = (*sockets)[i];
    if (inherited) {
      std::string formerName;
      fds = inherited->takeListener(listener.bind, &formerName);
      if (!fds.empty())
        log::info("listener {}: took over {} sockets on {} from process {}{}", config::printable(listener.name),
                  fds.size(), listener.bind.text, inherited->from(),
                  formerName != listener.name ? fmt::format(" (its listener {})", config::printable(formerName))
                                              : std::string());
    }
    while (fds.size() < static_cast<size_t>(workers)) {
      int fd = openListenSocket(listener.bind);
      if (fd < 0) {
        log::error("listener {}: cannot listen on {}: {}{}", config::printable(listener.name), listener.bind.text,
                   std::strerror(-fd),
                   fd == -EADDRINUSE ? " (another process listens there; ringlb does not share a port)" : "");
        closeAll(*sockets);
        return false;
      }
      fds.push_back(fd);
    }
  }
  return true;
}

// Socket j of a listener goes to worker j % workers: each worker has one,
// some several when an upgrade brought more sockets than workers.
std::vector<std::vector<ListenFd>> assignSockets(const std::vector<std::vector<int>>& sockets, int workers) {
  std::vector<std::vector<ListenFd>> assigned(static_cast<size_t>(workers));
  for (size_t listener = 0; listener < sockets.size(); ++listener)
    for (size_t j = 0; j < sockets[listener].size(); ++j)
      assigned[j % assigned.size()].push_back(ListenFd{static_cast<uint32_t>(listener), sockets[listener][j]});
  return assigned;
}

// Raises the open-file limit, puts [global] max_connections in effect in
// `config` (configured or derived) and logs the figures; false when the
// config's limits cannot be met.
bool planDescriptors(config::Config* config, int workers, uint64_t* maxPipes) {
  OpenFileLimit files = raiseOpenFileLimit();
  if (files.raiseError != 0)
    log::warn("open files: cannot raise the soft limit {} to the hard limit {}: {}", files.before, files.hard,
              std::strerror(files.raiseError));
  std::string whyNot;
  auto limit = planSessions(*config, workers, files.soft, &whyNot);
  std::string raised =
      files.soft != files.before ? fmt::format(" (raised from {})", files.before) : std::string();
  if (!limit) {
    log::error("cannot start: open files: soft {}{}, hard {}; {}", files.soft, raised, files.hard, whyNot);
    return false;
  }
  if (limit->maxConnections > 0)
    log::info("open files: soft {}{}, hard {}; max_connections {} ({})", files.soft, raised, files.hard,
              limit->maxConnections, limit->how);
  else
    log::warn("open files: soft {}{}, hard {}; max_connections {}", files.soft, raised, files.hard, limit->how);
  config->global.maxConnections = limit->maxConnections;
  *maxPipes = limit->maxPipes;
  return true;
}

sigset_t controlSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);  // reopen the access log
  sigaddset(&set, SIGUSR2);  // in-place upgrade (lb/upgrade.h)
  return set;
}

}  // namespace

int runProcess(const std::string& configPath, const config::Config& config, upgrade::StartCommand command) {
  log::setLevel(config.global.logLevel);
  std::string error;
  std::optional<upgrade::Inheritance> inherited = upgrade::inheritedSockets(&error);
  if (!error.empty()) {
    log::error("cannot start: {}", error);
    return 1;
  }
  if (inherited)
    log::info("upgrade: process {} started by process {}, which hands on {} listening sockets", ::getpid(),
              inherited->from(), inherited->count());
  auto identity = resolveIdentity(config, &error);
  if (!identity || !canBecome(*identity, &error)) {
    log::error("cannot start: {}", error);
    return 1;
  }
  int count = workerCount(config);
  // The generation runs with the max_connections in effect; `config` stays
  // as written (reloads compare against it).
  config::Config effective = config;
  uint64_t maxPipes = kNoPipeLimit;
  if (!planDescriptors(&effective, count, &maxPipes)) return 1;
  auto sink = AccessLogSink::open(config.global.accessLog, &error);
  if (!sink) {
    log::error("{}", error);
    return 1;
  }
  tls::BuildReport report;
  std::shared_ptr<const Runtime> runtime = buildRuntime(effective, nullptr, nullptr, &report);
  for (const config::Error& warning : tls::toConfigErrors(report.warnings, config.sourceName))
    log::warn("{}", config::formatError(warning));
  if (!runtime) {
    for (const config::Error& error : tls::toConfigErrors(report.errors, config.sourceName))
      log::error("{}", config::formatError(error));
    return 1;
  }
  runtime->pipeBudget->setLimit(maxPipes);
  if (runtime->usesTls()) log::info("{}", tls::describe(tls::detectKtls()));
  std::vector<std::vector<int>> fds;
  if (!bindAll(*runtime, count, inherited ? &*inherited : nullptr, &fds)) return 1;
  int adminFd = -1;
  if (config.admin.listen) {
    if (inherited) adminFd = inherited->takeAdmin(*config.admin.listen);
    if (adminFd < 0) adminFd = openListenSocket(*config.admin.listen, false);
    if (adminFd < 0) {
      log::error("admin: cannot listen on {}: {}", config.admin.listen->text, std::strerror(-adminFd));
      closeAll(fds);
      return 1;
    }
  }

  if (inherited) {
    std::string closed = inherited->closeUnused();
    if (!closed.empty())
      log::info("upgrade: closed the sockets the config no longer listens on: {} (connections waiting there are "
                "reset when process {} stops)", closed, inherited->from());
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
  // stderr reopened non-blocking (through /proc/self/fd) while still able
  // to: after the switch a pipe made by root could not be opened again.
  log::neverWait();
  // Every socket is bound and every file open, and no thread or ring exists
  // yet: the workers, the control thread and io_uring's io-wq threads are
  // all created with the new credentials.
  if (!becomeIdentity(*identity, &error)) {
    log::error("cannot start: {}", error);
    closeAll(fds);
    if (adminFd >= 0) ::close(adminFd);
    ::close(signalFd);
    return 1;
  }

  std::vector<std::vector<ListenFd>> assigned = assignSockets(fds, count);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int w = 0; w < count; ++w) {
    WorkerOptions options;
    options.index = w;
    options.runtime = runtime;
    options.listenFds = std::move(assigned[w]);
    options.accessLog = sink;
    options.holdAccepts = std::any_of(config.pools.begin(), config.pools.end(),
                                      [](const config::Pool& pool) { return !pool.discover.empty(); });
    workers.push_back(std::make_unique<Worker>(std::move(options)));
  }

  std::atomic<int> running{count};
  std::vector<std::thread> threads;
  std::vector<std::future<int>> started;
  for (size_t index = 0; index < workers.size(); ++index) {
    std::promise<int> promise;
    started.push_back(promise.get_future());
    threads.emplace_back([&running, index, w = workers[index].get(), promise = std::move(promise)]() mutable {
      // "ringlb-w0", ...: what top -H and /proc/PID/task/*/comm show.
      std::string name = fmt::format("ringlb-w{}", index).substr(0, 15);
      pthread_setname_np(pthread_self(), name.c_str());
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
  {
    // Descriptors of every socket (the workers own theirs), for SIGUSR2.
    upgrade::HandedSockets handed;
    for (size_t i = 0; i < runtime->listeners.size(); ++i)
      handed.listeners.push_back({runtime->listeners[i]->config.name, runtime->listeners[i]->config.bind.text, fds[i]});
    handed.admin = adminFd;
    control.setUpgrade(std::move(command), handed);
  }
  if (failed == 0) failed = control.start(signalFd, adminFd);
  adminFd = -1;  // the control thread owns it now
  if (failed < 0) {
    log::error("cannot start: io_uring: {}", std::strerror(-failed));
    for (auto& worker : workers) worker->requestStop();
  } else {
    // With [[pool.NAME.discover]], ready once the first lookups have
    // answered (bounded): the pools then have their members.
    control.onReady([count, &inherited, &workers](const Runtime& current) {
      for (auto& worker : workers) worker->releaseAccepts();
      for (const auto& listener : current.listeners)
        log::info("listener {} on {} -> pool {} ({} members, {})", config::printable(listener->config.name),
                  listener->config.bind.text, config::printable(listener->pool->name()),
                  listener->pool->members().size(), config::toString(listener->pool->config().balance));
      log::info("ready: {} listeners, {} workers", current.listeners.size(), count);
      notifySystemd("READY=1\nSTATUS=serving");
      if (inherited) inherited->announceReady();
    });
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
