#pragma once
// Active health probes on an io_uring that the caller owns and drives (the
// control thread's ring; never a worker's). The prober takes SQEs and
// user_data from the ProbeRing it is given, identifying itself by `id`; the
// caller hands back every completion carrying that id, decoded, and calls
// onTick() often (every few tens of milliseconds): ticks start due probes and
// enforce probe deadlines.
//
// A probe: connect, send the prelude if there is one (tcp: then done), then
// for http send the request (in the same send) and read until the status
// line is complete. What is read is bounded by the status-line
// parser, so a member sending garbage or an endless stream fails the probe
// without growing memory. tls and https run a TlsProbe (health/tls_probe.h)
// after the connect: the ring's sends and receives carry its ciphertext.
//
// Invariant: a target starts a new probe only when none of its operations is
// in flight; completions of an abandoned probe (timed out) carry an old
// generation and only count down `inflight`.

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "health/http_status.h"
#include "health/probe_ring.h"
#include "health/state_machine.h"
#include "health/tls_probe.h"

namespace health {

struct ProbeSpec {
  std::string pool;    // for log lines and metrics
  std::string member;  // the member's stable name
  config::Address address;  // where to probe (the member, or its health_address/health_port)
  config::HealthKind kind = config::HealthKind::Tcp;
  std::string request;  // http: the whole request
  // Bytes sent first on every probe connection, before the request or the
  // TLS handshake (the PROXY header a member requires); empty: none.
  std::string prelude;
  std::vector<int> expectStatus;
  // tls, https: the pool's client context (shared by its probes; null: the
  // system's trust store) and the name sent as SNI and verified (empty:
  // none).
  SharedSslCtx tlsContext;
  std::string serverName;
  Options options;
  State initial = State::Up;  // a member kept across a reload keeps its state
};

struct ProbeStatus {
  Duration lastDuration{};  // of the last finished probe
  uint64_t probes = 0;
  uint64_t failures = 0;
};

class Prober {
 public:
  using OnTransition = std::function<void(size_t target, const Transition&)>;

  // `ring` must outlive the prober; `id` tells its completions from those
  // of every other prober alive on the same ring.
  Prober(ProbeRing* ring, uint16_t id, std::vector<ProbeSpec> specs, OnTransition onTransition,
         TimePoint now, uint64_t seed);
  ~Prober();
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  void onTick(TimePoint now);
  // Stops every probe in flight without judging it (this prober has been
  // replaced); completions still due only count down until idle().
  void abandon();
  uint16_t id() const { return id_; }
  void onCompletion(const ProbeOp& op, int result, TimePoint now);
  // Connect failures seen by the data plane since the last report (0: a
  // connect succeeded, which resets the passive count).
  void onPassiveFailures(size_t target, uint64_t failures, TimePoint now);

  size_t size() const { return targets_.size(); }
  const ProbeSpec& spec(size_t target) const { return targets_[target].spec; }
  const MemberHealth& health(size_t target) const { return targets_[target].health; }
  const ProbeStatus& status(size_t target) const { return targets_[target].status; }
  // Probes with an operation still in flight (for stopping cleanly).
  bool idle() const;

  // Probes that could not run because this host lacked something (a
  // descriptor, memory, a local port), by every prober of the process, and
  // the errno of the last one. Such a probe is no result: the member is not
  // blamed, and the probe is tried again after a pause.
  static uint64_t localErrors();
  static int lastLocalError();

 private:
  enum class Step : uint8_t { Connect = 1, Send, Recv };

  struct Target {
    ProbeSpec spec;
    MemberHealth health;
    ProbeStatus status;
    bool running = false;
    uint16_t generation = 0;
    uint32_t inflight = 0;
    int fd = -1;
    // tcp, http: the prelude then the http request, sent in one go after
    // the connect (tls, https: the TlsProbe sends the prelude).
    std::string plainOutput;
    size_t sent = 0;
    Step step = Step::Connect;
    TimePoint startedAt{};
    TimePoint deadline{};
    TimePoint retryAt{};  // after a local error, no probe before this
    StatusLineParser parser;
    std::array<char, 512> buffer{};
    // tls, https: from the connect on. Its buffers are the ones a send or
    // receive in flight points into, so it is freed only once the target
    // has no operation in flight (a stopped probe's late completion).
    std::unique_ptr<TlsProbe> tls = nullptr;
  };

  uint64_t userData(size_t index, Step step) const;
  void stop(size_t index);
  void start(size_t index, TimePoint now);
  void submit(size_t index, Step step);
  void onStep(size_t index, Step step, int result, TimePoint now);
  void onTlsStep(size_t index, Step step, int result, TimePoint now);
  void continueTls(size_t index, TlsProbe::Next next, TimePoint now);
  void finish(size_t index, bool passed, std::string reason, TimePoint now);
  void skip(size_t index, int error, TimePoint now);
  uint64_t nextRandom();

  ProbeRing* ring_;
  uint16_t id_;
  std::vector<Target> targets_;
  OnTransition onTransition_;
  uint64_t random_;
};

// "connect refused", "timeout after 1s", "status 503", ... from a -errno.
std::string connectFailureReason(int error);
// True for an errno that says this host ran out of something (descriptors,
// memory, socket buffers, local ports) rather than that the peer failed.
bool isLocalResourceError(int error);
// "250ms", "1s", "1.5s"
std::string formatDuration(Duration duration);

}  // namespace health
