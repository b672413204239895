#pragma once
// The control thread: one io_uring of its own for signals, health probes,
// the admin endpoint, reloads and a periodic tick. It never touches a
// worker's ring; what it learns reaches the workers through the members'
// atomics (Member::up, draining, weight) and pools' snapshots, which pickers
// read on every pick, and through Worker::adopt() for a new config
// generation.

#include <liburing.h>
#include <sys/signalfd.h>

#include <atomic>
#include <functional>
#include <map>
#include <unordered_map>
#include <memory>
#include <vector>

#include "config/config.h"
#include "health/prober.h"
#include "lb/admin.h"
#include "lb/discovery/discovery.h"
#include "lb/discovery/resolver.h"
#include "lb/event_log.h"
#include "lb/history.h"
#include "lb/log_throttle.h"
#include "lb/metrics.h"
#include "lb/ring/probe_ring_port.h"
#include "lb/ring/submitter.h"
#include "lb/runtime.h"
#include "lb/upgrade.h"
#include "lb/worker.h"

namespace lb {

// What a completed signalfd read means: a whole siginfo to act on, nothing
// to act on (re-arm the read and carry on), or a signalfd that cannot be
// read any more (the process would ignore SIGTERM: exit at once).
enum class SignalRead : uint8_t { Signal, Retry, Broken };
SignalRead classifySignalRead(int result);

// [global.dns] servers, timeout and attempts as one comparable text: the
// resolver takes them at its start only.
std::string resolverSettings(const config::Global::Dns& dns);

class Control final : public HealthView {
 public:
  Control(std::string configPath, config::Config config, std::shared_ptr<const Runtime> runtime,
          std::span<const std::unique_ptr<Worker>> workers, const std::atomic<int>& runningWorkers);
  ~Control();
  Control(const Control&) = delete;
  Control& operator=(const Control&) = delete;

  // Sets up the ring, takes the signalfd (the control signals must already
  // be blocked in every thread) and the admin listening socket (-1: none);
  // 0 or -errno.
  int start(int signalFd, int adminFd);
  // Serves until every worker has finished.
  void run();
  // Calls `announce` (with the generation then running) once the process
  // may say it is ready: at once without [[pool.NAME.discover]], else once
  // every discover entry has answered, or [global.dns] timeout x attempts
  // + 1 s after this call, whichever comes first. Call before run().
  void onReady(std::function<void(const Runtime&)> announce);
  // Loads the config file again and, if it is valid and its new listeners
  // can be bound, switches every worker to it. Otherwise the running config
  // stays and the errors are logged (and returned, for POST /reload).
  // `who` asked for it ("SIGHUP", "admin ADDRESS"), for the event log.
  bool reload(std::string* errors, std::string_view who = "SIGHUP");
  // The access log, which SIGUSR1 reopens (logrotate).
  void setAccessLog(std::shared_ptr<AccessLogSink> sink) { accessLog_ = std::move(sink); }
  // What SIGUSR2 starts, and the sockets it hands on (descriptors of its
  // own are taken; reloads keep them up to date).
  void setUpgrade(upgrade::StartCommand command, const upgrade::HandedSockets& sockets);

  const health::MemberHealth* healthOf(const Member& member) const override;
  const DurationHistogram* probeDurationsOf(const Member& member) const override;

 private:
  void onCompletion(const io_uring_cqe& cqe, health::TimePoint now);
  void armSignalRead();
  void onSignal(int result);
  // Stop accepting and let sessions finish (SIGTERM, SIGINT, or a new
  // process that took over: `upgradedTo`).
  void stop(std::string_view why, pid_t upgradedTo);
  void onUpgradeSignal();
  void onUpgradeCompletion(uint64_t userData, int result);
  void armTick();
  void onTick(health::TimePoint now);
  void readPassiveFailures(health::TimePoint now);
  void logProbeLocalErrors(health::TimePoint now);
  void onTransition(size_t target, const health::Transition& transition);
  void recordProbeDurations();
  std::optional<size_t> targetOf(const Member& member) const;
  void startProber(health::TimePoint now);
  bool bindNewListeners(const Runtime& next, std::vector<std::map<std::string, int>>* fds,
                        std::string* errors);
  // Makes `next` (accepted, its new listeners' sockets in `fds`) the running
  // generation: retires what it removed, logs the members added and
  // removed (prefixed with `why`), hands it to every worker and restarts
  // the prober with kept members' states. A reload and a change in DNS
  // answers both end here.
  void switchTo(std::shared_ptr<const Runtime> next, std::vector<std::map<std::string, int>> fds,
                std::string_view why);
  // DNS discovery, on each tick: grace periods, due lookups, and a new
  // generation when the discovered members changed.
  void runDiscovery(health::TimePoint now);
  void startResolver();
  void keepAdminWeights(const Runtime& next) const;
  bool applyDiscovered(health::TimePoint now);
  void checkReady(health::TimePoint now);
  // History and events (lb/history.h, lb/event_log.h).
  ReportSources reportSources();
  void sampleHistory();
  std::optional<double> lastProbeMillis(const Member& member, const SeriesKey& key) const;
  void addEvent(EventKind kind, std::string message, std::string pool = {}, std::string member = {},
                std::string who = {});
  void addCertificateEvents(std::string_view when);

  std::string configPath_;
  config::Config config_;
  std::shared_ptr<const Runtime> runtime_;
  std::span<const std::unique_ptr<Worker>> workers_;
  const std::atomic<int>& runningWorkers_;
  io_uring ring_{};
  bool ringReady_ = false;
  ring::Submitter submitter_{&ring_, "control"};
  ring::ProbeRingPort probeRing_{&submitter_};
  int signalFd_ = -1;
  signalfd_siginfo signalInfo_{};
  __kernel_timespec tick_{0, 20 * 1000 * 1000};
  bool stopping_ = false;

  // Health: the prober of the current generation, and those replaced by a
  // reload that still have probes in flight (each has its own id in
  // user_data, never one a live prober holds: ring::allocateProberId).
  std::unique_ptr<health::Prober> prober_;
  std::vector<std::unique_ptr<health::Prober>> retiredProbers_;
  uint16_t nextProberId_ = 0;
  std::vector<Member*> probed_;                          // parallel to the prober's targets
  std::unordered_map<const Member*, size_t> targetOf_;   // probed_ inverted, for reports
  std::vector<uint64_t> seenFailures_;                   // last Member::connectFailures snapshot
  std::vector<uint64_t> seenProbes_;                     // probes finished, per target
  std::unique_ptr<DurationHistogram[]> probeDurations_;  // per target
  uint64_t seenProbeLocalErrors_ = 0;
  LogThrottle probeLocalErrorLog_;

  // Discovery: which names to resolve when, and the members they found
  // (runtime_ is built from discovery_.withDiscovered(config_)). The
  // resolver is made at the first lookup, on this ring.
  discovery::Discovery discovery_;
  std::unique_ptr<discovery::Resolver> resolver_;
  bool discoveryChanged_ = false;  // set by a lookup's callback, acted on in runDiscovery
  health::TimePoint discoveryRetryAt_{};  // after a generation that could not be built
  std::function<void(const Runtime&)> announceReady_;  // until called
  health::TimePoint readyDeadline_{};

  // What the status page charts and lists. Sampled on the tick once
  // nextSample_ (steady clock) has come; samples are labelled with the wall
  // clock.
  History history_;
  EventLog events_;
  health::TimePoint nextSample_{};

  std::unique_ptr<Admin> admin_;
  std::shared_ptr<AccessLogSink> accessLog_;
  std::unique_ptr<upgrade::Upgrader> upgrader_;  // null only in tests without setUpgrade
};

}  // namespace lb
